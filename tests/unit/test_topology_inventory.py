"""A site of many hosts from the inventory: balancers (lb) in front of app hosts (app), their nginx
upstream accepted by the real nginx, the app hosts' firewall rules, and the settings' checks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from provisioner.errors import UserError
from provisioner.inventory import load_inventory
from provisioner.stack import STACK
from provisioner.stack.balancer import upstream_context
from provisioner.stack import floating
from provisioner.stack.firewall import down_context, rules_context
from provisioner.templating import render
from tests.unit.test_templates import _nginx_conf, _nginx_t, needs_nginx

pytestmark = pytest.mark.unit

SITE = """
all:
  vars: {{ansible_user: root{extra}}}
  children:
    lb:
      hosts:
        lb1: {{ansible_host: 10.0.0.1}}
    app:
      hosts:
        app1: {{ansible_host: 203.0.113.11, private_address: 10.0.0.11}}
        app2: {{ansible_host: 10.0.0.12}}
        app3: {{ansible_host: "fd00::13"}}
"""


def site(tmp_path: Path, extra: str = "", text: str = SITE):
    path = tmp_path / "site.yml"
    path.write_text(textwrap.dedent(text.format(extra=extra)))
    return load_inventory(path)


def labels(v) -> list[str]:
    return [r.label() for r in STACK.declare(v)[0]]


def test_balancer_upstream_is_the_app_group_at_private_addresses(tmp_path):
    hosts = site(tmp_path).hosts
    lb = hosts["lb1"].vars
    assert lb.site_tier == "balancer"
    assert lb.upstream == [("app1", "10.0.0.11"), ("app2", "10.0.0.12"), ("app3", "fd00::13")]
    assert [hosts[h].vars.site_tier for h in ("app1", "app2", "app3")] == ["app"] * 3
    assert hosts["app2"].vars.balancers == ["10.0.0.1"]


def test_a_balancer_runs_no_app_and_an_app_host_gets_the_firewall(tmp_path):
    hosts = site(tmp_path).hosts
    lb, app = labels(hosts["lb1"].vars), labels(hosts["app1"].vars)
    assert not any("uwsgi" in label for label in lb)
    assert "file /etc/nginx/conf.d/provision-model_api-upstream.conf" in lb
    assert "service provision-firewall-model_api" in app
    assert "absent /etc/nginx/conf.d/provision-model_api-upstream.conf" in app
    assert "service uwsgi-model_api" in app


def test_a_host_in_both_groups_or_alone_keeps_the_unix_socket(tmp_path):
    hosts = site(tmp_path, text="""
        all:
          vars: {{ansible_user: root}}
          children:
            lb: {{hosts: {{one: {{ansible_host: 10.0.0.1}}}}}}
            app: {{hosts: {{one: }}}}
            other: {{hosts: {{two: {{ansible_host: 10.0.0.2}}}}}}
        """).hosts
    for name in ("one", "two"):
        v = hosts[name].vars
        assert v.site_tier == "single"
        site_conf = render("nginx/site.conf.j2", upstream_context(v))
        assert f"uwsgi_pass unix:{v.uwsgi_socket};" in site_conf and "proxy_pass" not in site_conf


def test_a_balancer_with_no_app_host_behind_it_is_refused(tmp_path):
    with pytest.raises(UserError) as e:
        site(tmp_path, text="""
            all:
              children:
                lb: {{hosts: {{lb1: , both: }}}}
                app: {{hosts: {{both: }}}}
            """)
    assert "host lb1 is in group lb but no app host of group app is behind it" in e.value.cause


def test_group_names_are_settings(tmp_path):
    hosts = site(tmp_path, text="""
        all:
          vars: {{lb_group: front, app_hosts_group: workers}}
          children:
            front: {{hosts: {{f1: {{ansible_host: 10.0.0.1}}}}}}
            workers: {{hosts: {{w1: {{ansible_host: 10.0.0.2}}}}}}
        """).hosts
    assert hosts["f1"].vars.upstream == [("w1", "10.0.0.2")]


@pytest.mark.parametrize("name, value, wanted", [
    ("upstream_method", "least_con", "must be one of round_robin, least_conn, ip_hash, random"),
    ("serial", "0", "must be a number of hosts or a percentage"),
    ("serial", "120%", "must be a number of hosts or a percentage"),
    ("upsteam_method", "ip_hash", "did you mean 'upstream_method'?"),
])
def test_wrong_values_and_names_are_one_line_errors(tmp_path, name, value, wanted):
    with pytest.raises(UserError) as e:
        site(tmp_path, extra=f", {name}: '{value}'")
    assert wanted in e.value.cause


def test_upstream_retries_and_down_marks(tmp_path):
    lb = site(tmp_path, extra=", upstream_method: round_robin").hosts["lb1"].vars
    upstream = render("nginx/upstream.conf.j2", upstream_context(lb, down=frozenset({"app2"})))
    assert "least_conn" not in upstream
    assert "server 10.0.0.12:80 max_fails=1 fail_timeout=10s down;  # app2" in upstream
    assert "server [fd00::13]:80 max_fails=1 fail_timeout=10s;  # app3" in upstream
    site_conf = render("nginx/site.conf.j2", upstream_context(lb))
    assert "proxy_next_upstream error timeout http_502 http_503;" in site_conf
    assert "location /static/" not in site_conf
    retrying = site(tmp_path, extra=", upstream_retry_non_idempotent: true").hosts["lb1"].vars
    assert "http_503 non_idempotent;" in render("nginx/site.conf.j2", upstream_context(retrying))


def test_firewall_admits_the_balancers_only(tmp_path):
    hosts = site(tmp_path, extra=", tls: self-signed").hosts
    rules = render("nftables/app-firewall.nft.j2", rules_context(hosts["app1"].vars))
    assert 'iif "lo" accept' in rules
    assert "tcp dport { 80, 443 } ip saddr { 10.0.0.1 } accept" in rules
    assert rules.rstrip().endswith("tcp dport { 80, 443 } drop\n    }\n}")
    app_site = render("nginx/site.conf.j2", upstream_context(hosts["app1"].vars))
    assert "set_real_ip_from 10.0.0.1;" in app_site


def test_a_balancer_named_not_addressed_is_refused_by_the_firewall(tmp_path):
    hosts = site(tmp_path, text=SITE.replace("lb1: {{ansible_host: 10.0.0.1}}", "lb1: {{ansible_host: lb.example}}")).hosts
    with pytest.raises(UserError, match="is a name; the firewall admits addresses only"):
        STACK.declare(hosts["app1"].vars)
    unguarded = site(tmp_path, text=SITE.replace("10.0.0.1}}", "lb.example}}"), extra=", firewall: false")
    assert "service provision-firewall-model_api" not in labels(unguarded.hosts["app1"].vars)


@needs_nginx
def test_nginx_accepts_the_balancer_site_and_upstream(tmp_path):
    lb = site(tmp_path).hosts["lb1"].vars
    both = tmp_path / "balancer.conf"
    text = render("nginx/upstream.conf.j2", upstream_context(lb)) + render("nginx/site.conf.j2", upstream_context(lb))
    both.write_text(text.replace("/var/log/nginx/", f"{tmp_path}/logs/"))
    checked = _nginx_t(_nginx_conf(tmp_path, both), tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "[warn]" not in checked.stderr, checked.stderr



FLOATING_SITE = """
all:
  vars: {{ansible_user: root, floating_address: 10.0.0.100/24{extra}}}
  children:
    lb:
      hosts:
        lb1: {{ansible_host: 10.0.0.1}}
        lb2: {{ansible_host: 10.0.0.2}}
    app:
      hosts:
        app1: {{ansible_host: 10.0.0.11}}
"""


def test_a_floating_address_gives_each_balancer_keepalived_with_its_peers(tmp_path):
    hosts = site(tmp_path, text=FLOATING_SITE).hosts
    lb1, lb2 = hosts["lb1"].vars, hosts["lb2"].vars
    assert (lb1.vrrp_peers, lb2.vrrp_peers) == ([("lb2", "10.0.0.2")], [("lb1", "10.0.0.1")])
    assert lb1.vrrp_priority > lb2.vrrp_priority and lb1.vrrp_router_id == lb2.vrrp_router_id == 100
    assert lb1.vrrp_password == lb2.vrrp_password and len(lb1.vrrp_password) == 8
    conf = render("keepalived/keepalived.conf.j2", {**upstream_context(lb2), "instance": "provision_model_api",
                                                    "check": "/etc/keepalived/check.sh"})
    for line in ("state BACKUP", "nopreempt", "virtual_router_id 100", "unicast_src_ip 10.0.0.2",
                 "        10.0.0.1\n", f"auth_pass {lb2.vrrp_password}", "10.0.0.100/24 dev eth0",
                 'script "/etc/keepalived/check.sh"'):
        assert line in conf, (line, conf)
    assert "vrrp_strict" not in conf
    rules = render("nftables/balancer-vrrp.nft.j2", rules_context(lb1))
    assert "ip protocol 112 ip saddr { 10.0.0.2 } accept" in rules and "meta l4proto 112 drop" in rules
    assert "service keepalived" in labels(lb1) and "service provision-firewall-model_api" in labels(lb1)
    assert not any("keepalived" in label for label in labels(hosts["app1"].vars))


def test_floating_standby_makes_the_check_fail(tmp_path):
    hosts = site(tmp_path, text=FLOATING_SITE, extra=", floating_standby: true").hosts
    assert "STANDBY=1" in floating.check_script(hosts["lb1"].vars)
    assert "STANDBY=0" in floating.check_script(site(tmp_path, text=FLOATING_SITE).hosts["lb1"].vars)


@pytest.mark.parametrize("text, wanted", [
    (FLOATING_SITE.replace("        lb2: {{ansible_host: 10.0.0.2}}\n", ""), "the only host of group lb"),
    (FLOATING_SITE.replace("lb2: {{ansible_host: 10.0.0.2}}", "lb2: {{ansible_host: lb2.example.com}}"),
     "VRRP for floating_address needs each balancer's IPv4 address"),
    (FLOATING_SITE.replace("10.0.0.100/24", "10.0.0.0/24"), "vrrp_router_id of balancer lb1 is 0"),
])
def test_a_floating_address_the_balancers_cannot_share_is_refused(tmp_path, text, wanted):
    with pytest.raises(UserError) as e:
        site(tmp_path, text=text)
    assert wanted in e.value.cause


def test_an_app_host_refuses_its_balancers_while_its_app_is_down(tmp_path):
    app = site(tmp_path, text=FLOATING_SITE).hosts["app1"].vars
    down = render("nftables/app-down.nft.j2", {**rules_context(app), "table": "provision_model_api_down"})
    assert "ip saddr { 10.0.0.1, 10.0.0.2 } tcp dport { 80 } counter reject with tcp reset" in down
    dropin = render("systemd/app-down.conf.j2", down_context(app))
    assert "ExecStartPost=-/bin/sh -c 'nft delete table inet provision_model_api_down" in dropin
    # not while a restart's standby serves nginx's socket (roles/uwsgi-swap.sh)
    refuse = ('/bin/sh -c \'if [ "$$(readlink /run/model_api/uwsgi.sock)" = uwsgi-standby.sock ] && systemctl '
              'is-active -q uwsgi-model_api-standby; then exit 0; fi; nft -f /etc/nftables-provision-model_api-down.nft\'')
    assert f"ExecStop={refuse}\n" in dropin and f"ExecStopPost={refuse}" in dropin
    assert "unit /etc/systemd/system/uwsgi-model_api.service.d/provision-firewall.conf" in labels(app)
