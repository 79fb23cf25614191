"""An app limited to some app hosts (per-app setting app_hosts, issue 22): where each app runs, what a
balancer routes where (its upstreams accepted by the real nginx; a site without limited apps renders
byte for byte as before the setting existed), and the inventories refused before any host is touched."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from provisioner import PROJECT_ROOT, TEMPLATES_DIR
from provisioner.config.apps import with_only_app
from provisioner.config.values import resolve
from provisioner.errors import UserError
from provisioner.inventory import load_inventory
from provisioner.resources import SystemFacts
from provisioner.stack import STACK
from provisioner.stack.balancer import route_around
from provisioner.stack.retire import app_names
from tests.unit.test_apps import vhosts
from tests.unit.test_templates import _nginx_conf, _nginx_t, needs_nginx

pytestmark = pytest.mark.unit

APPS = Path(__file__).parents[1] / "lab" / "apps"
FIXTURES = Path(__file__).parent / "fixtures" / "balancer"
SITE = """
all:
  vars:
    ansible_user: root
    server_name: api.example.com
    apps:
      accounts: {{path: /user, app_source: {apps}/accounts, app_module: accounts.wsgi{accounts}}}
      admin: {{path: /admin, app_source: {apps}/admin, app_module: admin.wsgi, app_hosts: {group}}}
      site: {{path: /, app_source: {apps}/frontpage, app_module: frontpage.wsgi{site}}}
  children:
    lb: {{hosts: {{lb1: {{ansible_host: 10.0.0.1}}, lb2: {{ansible_host: 10.0.0.2}}}}}}
    app: {{hosts: {{app1: {{ansible_host: 10.0.0.11}}, app2: {{ansible_host: 10.0.0.12}}, app3: {{ansible_host: 10.0.0.13}}}}}}
    admin_hosts: {{hosts: {{app2: , app3: }}}}
    {extra}
"""


def site(tmp_path: Path, group: str = "admin_hosts", site_entry: str = "", extra: str = "", accounts: str = ""):
    path = tmp_path / "site.yml"
    path.write_text(textwrap.dedent(SITE.format(apps=APPS, group=group, site=site_entry, extra=extra,
                                                accounts=accounts)))
    return load_inventory(path)


def files(v) -> dict[str, str]:
    return {r.path: r.content for r in STACK.declare(v)[0] if hasattr(r, "content") and hasattr(r, "path")}


def test_an_app_runs_on_the_app_hosts_of_its_group_only(tmp_path):
    hosts = site(tmp_path).hosts
    outside, inside = hosts["app1"].vars, hosts["app2"].vars
    assert [a.app_name for a in outside.each_app()] == ["accounts", "site"]
    assert [a.app_name for a in inside.each_app()] == ["accounts", "admin", "site"]
    labels = " ".join(r.label() for r in STACK.declare(outside)[0])
    assert "uwsgi-admin" not in labels and "/srv/admin" not in labels
    assert "location /admin/" not in files(outside)["/etc/nginx/sites-available/model_api"]


def test_an_app_an_earlier_deploy_put_outside_its_group_is_retired(tmp_path):
    outside = site(tmp_path).hosts["app1"].vars
    assert app_names(outside) == ("accounts", "site")
    apps = next(r for r in STACK.declare(outside)[0] if r.label() == "apps other than accounts, site")
    retire = apps.decide(apps.parse("accounts\nadmin\nsite\n"), SystemFacts())
    assert retire.changed and retire.reason == "app admin no longer in the inventory: retired"


def test_a_balancer_routes_a_limited_app_to_its_hosts_only(tmp_path):
    lb = site(tmp_path).hosts["lb1"].vars
    assert lb.app_upstreams == {"admin": [("app2", "10.0.0.12"), ("app3", "10.0.0.13")]}
    text = files(lb)["/etc/nginx/conf.d/provision-model_api-upstream.conf"]
    every, admin = text.split("upstream provision_model_api_app-admin {")
    assert every.count("    server ") == 3 and admin.count("    server ") == 2 and "# app1" not in admin
    assert "zone provision_model_api_app-admin 64k;" in admin and "max_fails=1 fail_timeout=10s;  # app2" in admin
    page = files(lb)["/etc/nginx/sites-available/model_api"]
    for location in ("location = /admin {", "location /admin/ {"):
        assert "proxy_pass http://provision_model_api_app-admin;" in page.split(location, 1)[1].split("}", 1)[0]
    assert "proxy_pass http://provision_model_api_app;" in page.split("location / {", 1)[1].split("}", 1)[0]
    assert STACK.health_label(lb) == ("/user/healthz and /admin/healthz and /healthz through nginx on port 80 "
                                      "to the app hosts")


def test_a_limited_app_of_its_own_name_at_the_root_takes_that_names_root(tmp_path):
    entry = ", server_name: www.example.com, app_hosts: admin_hosts"
    lb = site(tmp_path, site_entry=entry).hosts["lb1"].vars
    page = files(lb)["/etc/nginx/sites-available/model_api"]
    api, www = page.split("server_name www.example.com;")
    assert "proxy_pass http://provision_model_api_app-site;" in www.split("location / {", 1)[1].split("}", 1)[0]
    assert www.count("location / {") == 1, "the name's root is the limited app's only"
    assert "proxy_pass http://provision_model_api_app;" in api.split("location / {", 1)[1].split("}", 1)[0]


@needs_nginx
@pytest.mark.parametrize("entry", ["", ", server_name: www.example.com, app_hosts: admin_hosts"],
                         ids=["by-path", "by-name"])
def test_nginx_accepts_a_balancer_with_limited_apps(tmp_path, entry):
    lb = site(tmp_path, site_entry=entry).hosts["lb1"].vars
    written = files(lb)
    upstream = tmp_path / "upstream.conf"
    upstream.write_text(written["/etc/nginx/conf.d/provision-model_api-upstream.conf"])
    page = tmp_path / "site.conf"
    page.write_text(f"include {upstream};\n" + written["/etc/nginx/sites-available/model_api"]
                    .replace("/var/log/nginx/", f"{tmp_path}/logs/"))
    proc = _nginx_t(_nginx_conf(tmp_path, page), tmp_path)
    assert proc.returncode == 0 and "[warn]" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("name", ["single", "apps"])
def test_without_a_limited_app_a_balancer_renders_as_before(tmp_path, name):
    """The fixtures were rendered by the code before app_hosts existed (a single app; three apps, one
    of its own server_name; since then only the access log's format gained the upstream): a balancer
    without limited apps writes the same bytes."""
    v = resolve({"server_name": "api.example.com"}, where="host lb1", base_dir=PROJECT_ROOT) \
        if name == "single" else vhosts()
    written = files(v.computed(site_tier="balancer", upstream=[("app1", "10.0.0.11"), ("app2", "10.0.0.12")]))
    assert written["/etc/nginx/sites-available/model_api"] == (FIXTURES / f"{name}.site.conf").read_text()
    assert written["/etc/nginx/conf.d/provision-model_api-upstream.conf"] == \
        (FIXTURES / f"{name}.upstream.conf").read_text()


def test_a_rolling_release_routes_around_a_host_in_every_upstream_it_is_in(tmp_path):
    lb = site(tmp_path).hosts["lb1"].vars
    shell = route_around(lb, frozenset({"app2"}), TEMPLATES_DIR)
    assert shell.count("10.0.0.12:80 max_fails=1 fail_timeout=10s down;") == 2


def test_deploy_app_leaves_the_hosts_outside_its_group_alone(tmp_path):
    hosts = site(tmp_path).hosts
    chosen = with_only_app([hosts[name] for name in ("lb1", "app1", "app2", "app3")], "admin")
    assert [h.name for h in chosen] == ["lb1", "app2", "app3"]
    with pytest.raises(UserError) as e:
        with_only_app([hosts["lb1"], hosts["app1"]], "admin")
    assert e.value.cause == "--app admin: app admin runs on none of the hosts selected (its app_hosts leave out app1)"


@pytest.mark.parametrize("group, extra, cause, fix", [
    ("admins", "",
     "app_hosts of app admin of host lb1 is admins, a group the inventory does not have (or one without hosts)",
     "name a group of app hosts in apps.admin.app_hosts, or leave app_hosts out (every app host)"),
    ("mixed", "mixed: {hosts: {app2:, lb1:}}",
     "app_hosts of app admin of host lb1 is mixed, whose host lb1 is not an app host (group app)",
     "put only app hosts in group mixed, or name a group of app hosts in apps.admin.app_hosts, "
     "or leave app_hosts out (every app host)"),
], ids=["no-such-group", "a-balancer-in-it"])
def test_a_group_of_no_app_hosts_is_refused_naming_the_app(tmp_path, group, extra, cause, fix):
    with pytest.raises(UserError) as e:
        site(tmp_path, group=group, extra=extra)
    assert (e.value.cause, e.value.fix) == (cause, fix)


def test_a_host_no_app_runs_on_is_refused(tmp_path):
    limited = ", app_hosts: admin_hosts"
    with pytest.raises(UserError) as e:
        site(tmp_path, site_entry=limited, accounts=limited)
    assert e.value.cause == "host app1 runs no app: the app_hosts of every app (accounts, admin, site) leave it out"
    assert e.value.fix == "add app1 to the app_hosts group of an app, or take it out of the app hosts"


def test_app_hosts_without_apps_is_refused(tmp_path):
    path = tmp_path / "single.yml"
    path.write_text("all:\n  hosts:\n    web1: {ansible_host: 192.0.2.1, app_hosts: web}\n")
    with pytest.raises(UserError) as e:
        load_inventory(path)
    assert e.value.cause.endswith("single.yml: app_hosts of host web1 names group web, but no apps are listed")


def test_without_balancers_the_group_limits_the_app_among_the_hosts(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(textwrap.dedent(f"""
        all:
          vars:
            apps:
              site: {{path: /, app_source: {APPS}/frontpage, app_module: frontpage.wsgi}}
              admin: {{path: /admin, app_source: {APPS}/admin, app_module: admin.wsgi, app_hosts: admins}}
          children:
            web: {{hosts: {{web1: {{ansible_host: 192.0.2.1}}, web2: {{ansible_host: 192.0.2.2}}}}}}
            admins: {{hosts: {{web2: }}}}
        """))
    hosts = load_inventory(path).hosts
    assert [[a.app_name for a in hosts[h].vars.each_app()] for h in ("web1", "web2")] == [["site"], ["site", "admin"]]
    assert hosts["web1"].vars.site_tier == "single"


def test_a_refused_app_host_in_the_group_is_no_stranger(tmp_path):
    """An app host whose settings are refused stops a run only once selected: the others still load."""
    path = tmp_path / "site.yml"
    path.write_text(textwrap.dedent(SITE.format(apps=APPS, group="admin_hosts", site="", accounts="",
                                                extra="broken: {hosts: {app3: }, vars: {http_port: none}}")))
    inventory = load_inventory(path, every_host=False)
    assert set(inventory.refused) == {"app3"}
    assert [a.app_name for a in inventory.hosts["app2"].vars.each_app()] == ["accounts", "admin", "site"]
