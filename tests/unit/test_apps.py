"""Several apps behind one site (setting `apps`, issue 22): validation before any host is touched,
each app's own settings and resources, and the site and inis accepted by the real nginx and uWSGI."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from provisioner import PROJECT_ROOT
from provisioner.config.apps import with_only_app
from provisioner.config.values import RawVars, resolve
from provisioner.errors import UserError
from provisioner.resources import SystemFacts
from provisioner.inventory import Host, load_inventory
from provisioner.stack import STACK
from provisioner.stack.layout import Layout
from provisioner.stack.nginx import site_context
from provisioner.templating import render
from tests.unit.test_templates import (_missing_release, _nginx_conf, _nginx_t, _uwsgi_parse, ctx, needs_nginx,
                                       needs_uwsgi)

pytestmark = pytest.mark.unit

APPS = Path(__file__).parents[1] / "lab" / "apps"
THREE = {"admin": {"path": "/admin", "app_source": "admin", "app_module": "admin.wsgi"},
         "accounts": {"path": "/user", "app_source": "accounts", "app_module": "accounts.wsgi", "uwsgi_processes": 4},
         "site": {"path": "/", "app_source": "frontpage", "app_module": "frontpage.wsgi"}}


def three(**over):
    raw = RawVars({"apps": THREE, "server_name": "api.example.com", **over},
                  origins={"apps": "group all, inventories/site.yml:4"})
    return resolve(raw, where="host web1", base_dir=APPS)


def refused(**raw) -> UserError:
    with pytest.raises(UserError) as e:
        resolve(RawVars(raw, origins={"apps": "group all, inventories/site.yml:4"}), where="host web1", base_dir=APPS)
    return e.value


def test_without_apps_the_host_runs_one_app_named_app_name():
    v = resolve({"app_name": "myapi"}, where="host web1", base_dir=PROJECT_ROOT)
    assert [a.app_name for a in v.each_app()] == ["myapi"] and v.each_app()[0] is v
    assert v.app_path == "/" and v.apps == {}


def test_each_app_has_its_own_names_paths_and_settings():
    apps = {a.app_name: a for a in three(uwsgi_threads=4).each_app()}
    assert list(apps) == ["admin", "accounts", "site"]
    admin, users = apps["admin"], apps["accounts"]
    assert (admin.app_path, admin.app_root, admin.uwsgi_socket, admin.app_user) == \
        ("/admin", "/srv/admin", "/run/admin/uwsgi.sock", "admin")
    assert admin.app_source == APPS / "admin" and admin.uwsgi_chown_socket == "admin:www-data"
    assert (users.uwsgi_processes, admin.uwsgi_processes) == (4, 2)
    assert users.uwsgi_threads == admin.uwsgi_threads == 4, "a per-app setting of the site is every app's default"
    assert {Layout.of(a).unit for a in apps.values()} == {"uwsgi-admin", "uwsgi-accounts", "uwsgi-site"}


@pytest.mark.parametrize("raw, cause, fix", [
    ({"apps": {"a": {"path": "/x", "app_source": "admin", "app_module": "admin.wsgi"},
               "b": {"path": "/x", "app_source": "accounts", "app_module": "accounts.wsgi"}}},
     "apps a and b of host web1 have the same path /x (set in group all, inventories/site.yml:4)",
     "give each app a path of its own (apps.b.path)"),
    ({"apps": {"a": {"path": "admin", "app_source": "admin", "app_module": "admin.wsgi"}}},
     "setting app_path of app a of host web1 must be a URL path prefix like /admin (or / for the whole site), "
     "got 'admin' (it needs a leading slash) (set in group all, inventories/site.yml:4)",
     "write it like `app_path: /admin`"),
    ({"apps": {"a": {"http_port": 8080}}},
     "setting http_port of app a of host web1 is not an app's own setting (set in group all, inventories/site.yml:4)",
     "move http_port out of apps.a into the host's or a group's vars (it is per site); "
     "docs/settings.md lists what an app may set"),
    ({"apps": {"a": {"app_source": "admin", "app_module": "admin.wsgi"}}, "app_path": "/a"},
     "app_path of host web1 is given for the whole site, but apps are listed (set in group all, inventories/site.yml:4)",
     "give each app its path in its entry of apps (`path: /admin`) and remove app_path"),
    ({"apps": {"a": {"app_name": "b"}}},
     "apps.a sets app_name (set in group all, inventories/site.yml:4); the entry's key is the app's name",
     "remove app_name from apps.a (rename the key to rename the app)"),
    ({"apps": {"a": {"path": "/a", "app_source": "admin", "app_module": "admin.wsgi"},
               "b": {"path": "/b", "app_source": "accounts", "app_module": "accounts.wsgi"}}, "uwsgi_socket": "/run/x.sock"},
     "apps a and b of host web1 have the same uwsgi_socket /run/x.sock (set in group all, inventories/site.yml:4)",
     "give each app a uwsgi_socket of its own (apps.b.uwsgi_socket)"),
    ({"apps": {"Admin": {}}},
     "setting apps of host web1 must be a mapping of app names to their settings, got {'Admin': {}} "
     "(app name 'Admin' is not an identifier [a-z][a-z0-9_]* of at most 32 characters) "
     "(set in group all, inventories/site.yml:4)", None),
])
def test_what_cannot_be_meant_is_refused_naming_the_app_and_the_setting(raw, cause, fix):
    error = refused(**raw)
    assert error.cause == cause
    if fix:
        assert error.fix == fix


def test_an_apps_source_is_relative_to_the_inventory_and_must_exist():
    error = refused(apps={"a": {"app_source": "nowhere", "app_module": "x.wsgi"}})
    assert error.cause.startswith(f"app_source of app a of host web1 is {APPS / 'nowhere'}, which is not a directory")


def test_each_app_gets_its_own_release_unit_and_restart_handler():
    resources, handlers = STACK.declare(three())
    labels = [r.label() for r in resources]
    for name in ("admin", "accounts", "site"):
        assert any(f"/etc/uwsgi/apps-provision/{name}.ini" in label for label in labels), labels
        assert any(f"/srv/{name}" in label for label in labels), labels
    restarts = {h.name: h for h in handlers if h.name.startswith("restart app")}
    assert list(restarts) == ["restart app admin", "restart app accounts", "restart app site"]
    ini = next(r for r in resources if "admin.ini" in r.label())
    assert ini.notify == ("restart app admin",), "a change to one app restarts only that app"
    assert "uwsgi-accounts" in restarts["restart app accounts"].run and "uwsgi-admin" not in restarts["restart app accounts"].run


def test_the_site_checks_every_apps_health_under_its_path():
    assert STACK.health_label(three()) == "/admin/healthz and /user/healthz and /healthz through nginx on port 80"
    assert STACK.health_label(resolve({}, where="host web1", base_dir=PROJECT_ROOT)) == \
        "/healthz through nginx on port 80"


def _site(v, tmp_path: Path) -> Path:
    site = tmp_path / "site.conf"
    site.write_text(render("nginx/site.conf.j2", site_context(v)).replace("/var/log/nginx/", f"{tmp_path}/logs/"))
    return site


def test_nginx_routes_each_prefix_to_its_app_with_script_name():
    text = render("nginx/site.conf.j2", site_context(three()))
    for prefix, name in (("/admin", "admin"), ("/user", "accounts")):
        for location in (f"location = {prefix} {{", f"location {prefix}/ {{"):
            block = text.split(location, 1)[1].split("}", 1)[0]
            assert f"uwsgi_param SCRIPT_NAME {prefix};" in block and f"uwsgi_pass unix:/run/{name}/uwsgi.sock;" in block
        assert f"location {prefix}/static/ {{\n        alias /srv/{name}/current/app/static/;" in text
    root = text.split("location / {", 1)[1].split("}", 1)[0]
    assert "SCRIPT_NAME" not in root and "uwsgi_pass unix:/run/site/uwsgi.sock;" in root


@needs_nginx
def test_nginx_accepts_the_site_of_three_apps(tmp_path):
    proc = _nginx_t(_nginx_conf(tmp_path, _site(three(), tmp_path)), tmp_path)
    assert proc.returncode == 0 and "[warn]" not in proc.stderr, proc.stderr


@needs_uwsgi
def test_uwsgi_strict_mode_accepts_an_app_under_a_prefix(tmp_path):
    admin = SimpleNamespace(**three().each_app()[0].as_dict())
    ini = tmp_path / "admin.ini"
    ini.write_text(render("uwsgi/app.ini.j2", _missing_release(admin, tmp_path)))
    assert "route-run = fixpathinfo:" in ini.read_text()
    for section in ("", ":standby"):
        out = _uwsgi_parse(ini, section)
        assert "unknown config directive" not in out and f"chdir() to {tmp_path}/missing/current/app" in out, out
    assert "fixpathinfo" not in render("uwsgi/app.ini.j2", ctx(SimpleNamespace(**three().each_app()[2].as_dict())))



def test_deploy_app_declares_only_that_apps_release_and_unit_but_the_whole_site():
    host = Host("web1", "192.0.2.1", 22, "deploy", None, True, None, [], three())
    [chosen] = with_only_app([host], "accounts")
    resources, handlers = STACK.declare(chosen.vars)
    labels = " ".join(r.label() for r in resources)
    assert "/srv/accounts/current" in labels and "/srv/admin" not in labels
    assert "unit /etc/systemd/system/uwsgi-accounts.service" in labels
    assert "unit /etc/systemd/system/uwsgi-site.service" not in labels, "another app's unit is left as it is"
    assert [h.name for h in handlers if h.name.startswith("restart")] == ["restart app accounts"]
    site = next(r for r in resources if "sites-available" in r.label())
    assert "unix:/run/admin/uwsgi.sock" in site.content, "the site still routes to every app"
    assert "apps other than admin, accounts, site" in labels, "the others are not retired"
    assert STACK.log_command(chosen.vars, ["uwsgi"], 5, False).count("journalctl") == 1


def test_deploy_app_names_an_app_of_the_host():
    with pytest.raises(UserError) as e:
        with_only_app([Host("web1", "192.0.2.1", 22, "deploy", None, True, None, [], three())], "billing")
    assert e.value.cause == "--app billing: host web1 has no app billing (its apps: admin, accounts, site)"


def test_two_apps_of_one_name_in_the_inventory_are_refused(tmp_path):
    inventory = tmp_path / "site.yml"
    inventory.write_text("all:\n  hosts:\n    web1: {ansible_host: 192.0.2.1}\n  vars:\n    apps:\n"
                         "      admin: {path: /admin}\n      admin: {path: /other}\n")
    with pytest.raises(UserError) as e:
        load_inventory(inventory)
    assert e.value.cause.endswith("site.yml:7: app admin is written twice in apps"), e.value.cause


def test_what_an_earlier_deploy_left_is_planned_for_retirement():
    resources, _ = STACK.declare(three())
    sites = next(r for r in resources if r.label() == "nginx sites other than model_api")
    disable = sites.decide(sites.parse("model_api\nbigmodel\n"), SystemFacts())
    assert disable.changed and disable.reason == "nginx site bigmodel no longer in the inventory: retired"
    assert disable.backup == ("/etc/nginx/sites-enabled/bigmodel", "/etc/nginx/sites-available/bigmodel")
    assert disable.resource.notify == ("reload nginx",)
    apps = next(r for r in resources if r.label() == "apps other than admin, accounts, site")
    assert not apps.decide(apps.parse("accounts\nadmin\nsite\n"), SystemFacts()).changed
    retire = apps.decide(apps.parse("admin\nmodel_api\n"), SystemFacts())
    assert retire.changed and retire.reason == "app model_api no longer in the inventory: retired"
    assert retire.resource.notify == ("retire apps",), "units stop in a handler, after nginx reloaded"


def vhosts(**over):
    apps = {**THREE, "admin": {**THREE["admin"], "path": "/", "server_name": "admin.example.com"}}
    return three(apps=apps, **over)


def test_an_app_of_its_own_server_name_is_a_virtual_host():
    text = render("nginx/site.conf.j2", site_context(vhosts()))
    first, second = text.split("\nserver {")[1:]
    assert "server_name api.example.com;" in first and "listen 80 backlog=4096;" in first
    assert "server_name admin.example.com;" in second and "listen 80;" in second, "options once per port"
    assert "unix:/run/admin/uwsgi.sock" in second and "unix:/run/admin/uwsgi.sock" not in first
    assert "unix:/run/site/uwsgi.sock" in first and "unix:/run/accounts/uwsgi.sock" in first
    assert STACK.health_label(vhosts()) == \
        "admin.example.com/healthz and /user/healthz and /healthz through nginx on port 80"


@needs_nginx
def test_nginx_accepts_virtual_hosts(tmp_path):
    proc = _nginx_t(_nginx_conf(tmp_path, _site(vhosts(), tmp_path)), tmp_path)
    assert proc.returncode == 0 and "[warn]" not in proc.stderr, proc.stderr


def test_a_server_name_of_its_own_needs_tls_off_for_now():
    with pytest.raises(UserError) as e:
        vhosts(tls="self-signed")
    assert e.value.cause == ("apps.admin of host web1 has a server_name of its own, and tls is self-signed "
                             "(set in group all, inventories/site.yml:4)")


def test_rollback_app_switches_that_apps_release_only():
    from provisioner.engine.rollback import RollbackStack
    [chosen] = with_only_app([Host("web1", "192.0.2.1", 22, "deploy", None, True, None, [], three())], "admin")
    switches, handlers = RollbackStack(STACK, "abc123").declare(chosen.vars)
    assert [s.label() for s in switches] == [s.label() for s in switches if "/srv/admin" in s.label()] != []
    assert [h.name for h in handlers] == ["restart app admin"]
    every, _ = RollbackStack(STACK).declare(three())
    assert len(every) == 3, "without --app each app goes back"


def test_a_balancer_passes_every_apps_path_and_name_and_runs_no_app():
    v = vhosts().computed(site_tier="balancer", upstream=[("app1", "10.0.0.11")])
    resources, handlers = STACK.declare(v)
    text = next(r for r in resources if "sites-available" in r.label()).content
    assert text.count("\nserver {") == 1 and "server_name api.example.com admin.example.com;" in text
    assert "uwsgi_pass" not in text and not [h for h in handlers if h.name.startswith("restart app")]
    assert STACK.health_label(v) == ("admin.example.com/healthz and /user/healthz and /healthz through nginx "
                                     "on port 80 to the app hosts")


def test_an_app_host_behind_balancers_refuses_them_while_any_of_its_apps_is_down():
    v = three(private_address="10.0.0.11").computed(site_tier="app", balancers=["10.0.0.1"])
    resources, handlers = STACK.declare(v)
    files = {r.path: r.content for r in resources if hasattr(r, "content")}
    for name in THREE:
        dropin = files[f"/etc/systemd/system/uwsgi-{name}.service.d/provision-firewall.conf"]
        assert f"nft delete table inet provision_{name}_down" in dropin
        assert f"nft -f /etc/nftables-provision-{name}-down.nft" in dropin
        assert "table inet provision_%s_down {" % name in files[f"/etc/nftables-provision-{name}-down.nft"]
    unit = files["/etc/systemd/system/provision-firewall-model_api.service"]
    assert [line for line in unit.splitlines() if line.startswith("ExecStartPost=")] == [
        f"ExecStartPost=/bin/sh -c 'systemctl is-active -q uwsgi-{name} || nft -f /etc/nftables-provision-{name}-down.nft'"
        for name in THREE]
    [refresh] = [h for h in handlers if h.name == "refresh app-down table"]
    assert all(f"nft list table inet provision_{name}_down" in refresh.run for name in THREE)


def test_a_package_named_like_a_standard_module_is_warned_about(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "__init__.py").write_text("")
    (tmp_path / "site" / "wsgi.py").write_text("app = None\n")
    v = resolve({"apps": {"home": {"app_source": str(tmp_path), "app_module": "site.wsgi"}}},
                where="host web1", base_dir=APPS)
    assert any("its package site has the name of a module of Python's standard library" in w for w in v.warnings)


def test_an_apps_rate_limits_and_cache_are_under_its_path():
    apps = {**THREE, "admin": {**THREE["admin"], "rate_limit_locations": {"POST /report": "1r/s", "/": "5r/s"},
                               "cache_locations": ["/static-list"]}}
    v = three(apps=apps, rate_limit_locations={"/user/7": "2r/s"}, cache_locations=["/healthz"])
    assert v.rate_limit_locations == {"POST /admin/report": {"rate": "1r/s", "burst": 0},
                                      "/admin/": {"rate": "5r/s", "burst": 0}, "/user/7": {"rate": "2r/s", "burst": 0}}
    assert v.cache_locations == ["/healthz", "/admin/static-list"]
    assert "rate_limit_locations" not in v.apps["admin"], "they are the site's, joined"


@needs_nginx
def test_nginx_accepts_an_apps_rate_limits_and_cache(tmp_path):
    apps = {**THREE, "admin": {**THREE["admin"], "rate_limit_locations": {"POST /report": "1r/s"},
                               "cache_locations": ["/list"]}}
    site = _site(three(apps=apps), tmp_path)
    (tmp_path / "cache").mkdir()
    text = site.read_text().replace("/var/cache/nginx/", f"{tmp_path}/cache/")
    site.write_text(text)
    assert '"~^POST:/admin/report"' in text and '"~^/admin/list"' in text
    proc = _nginx_t(_nginx_conf(tmp_path, site), tmp_path)
    assert proc.returncode == 0 and "[warn]" not in proc.stderr, proc.stderr
