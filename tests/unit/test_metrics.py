"""Metrics (roles/metrics.py): the uWSGI stats translation and its HTTP side, the settings' checks,
the firewall rules, the units; and access_log_format json written by a real nginx."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import pytest

from provisioner import PROJECT_ROOT
from provisioner.errors import UserError
from provisioner.inventory import load_inventory
from provisioner.stack import STACK
from provisioner.stack.firewall import rules_context
from provisioner.templating import render
from tests.unit.test_templates import (NGINX, _free_port, _nginx_conf, _nginx_t, _request, _site_for_test, _wait,
                                       needs_nginx, settings)

pytestmark = pytest.mark.unit

EXPORTER = PROJECT_ROOT / "roles" / "uwsgi-exporter.py"
SAMPLE_LINE = re.compile(r'[a-z_]+(\{[a-z]+="[^"]*"\})? -?[0-9.e+-]+')
STATS = {"pid": 10, "listen_queue": 3, "listen_queue_errors": 1, "workers": [
    {"id": 1, "pid": 11, "requests": 120, "exceptions": 2, "harakiri_count": 0, "respawn_count": 1, "tx": 5000,
     "avg_rt": 2500, "status": "busy"},
    {"id": 2, "pid": 12, "requests": 80, "exceptions": 0, "harakiri_count": 1, "respawn_count": 1, "tx": 3000,
     "avg_rt": 1500, "status": "idle"}]}


def exporter():
    spec = importlib.util.spec_from_file_location("uwsgi_exporter", EXPORTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def samples(text: str) -> dict[str, float]:
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert all(SAMPLE_LINE.fullmatch(line) for line in lines), lines
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines}


def test_uwsgi_stats_become_prometheus_samples_with_help_and_type():
    text = exporter().metrics(STATS)
    got = samples(text)
    assert (got["uwsgi_up"], got["uwsgi_listen_queue"], got["uwsgi_listen_queue_errors_total"]) == (1, 3, 1)
    assert got["uwsgi_requests_total"] == 200
    assert (got['uwsgi_workers{status="busy"}'], got['uwsgi_workers{status="idle"}']) == (1, 1)
    assert (got['uwsgi_worker_requests_total{worker="1"}'], got['uwsgi_worker_requests_total{worker="2"}']) == (120, 80)
    assert got['uwsgi_worker_harakiri_total{worker="2"}'] == 1 and got['uwsgi_worker_exceptions_total{worker="1"}'] == 2
    assert got['uwsgi_worker_average_response_time_seconds{worker="1"}'] == pytest.approx(0.0025)
    assert "# TYPE uwsgi_worker_requests_total counter" in text and "# TYPE uwsgi_listen_queue gauge" in text
    names = {name.split("{")[0] for name in got}
    assert all(f"# HELP {name} " in text for name in names)


def test_a_stats_socket_that_does_not_answer_is_uwsgi_up_0_only(tmp_path):
    module = exporter()
    assert module.read_stats(str(tmp_path / "missing.sock")) is None
    assert samples(module.metrics(None)) == {"uwsgi_up": 0}


def test_the_exporter_serves_metrics_over_http_from_the_stats_socket(tmp_path):
    """The script as its unit runs it, on loopback, reading a stand-in stats socket per scrape."""
    import socket
    import threading

    stats = socket.socket(socket.AF_UNIX)
    stats.bind(str(tmp_path / "stats.sock"))
    stats.listen()

    def uwsgi():
        for requests in (200, 260):
            conn, _ = stats.accept()
            conn.sendall(json.dumps({**STATS, "workers": [{**STATS["workers"][0], "requests": requests}]}).encode())
            conn.close()

    serving = threading.Thread(target=uwsgi)
    serving.start()
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(EXPORTER), "127.0.0.1", str(port), str(tmp_path / "stats.sock")],
                            stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        _wait(lambda: _request(port, "GET", "/metrics")[0] == 200 if _listening(port) else False, 10, "the exporter")
        assert samples(urllib.request.urlopen(url, timeout=5).read().decode())["uwsgi_requests_total"] == 260
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
    finally:
        proc.terminate()
        proc.wait(10)
        serving.join(10)
        stats.close()
    assert proc.stderr.read() == b"", "a scrape is no line in the journal"


def _listening(port: int) -> bool:
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


SINGLE = """
all:
  vars: {{ansible_user: root, metrics_scraper: [10.0.0.5, "fd00:5::/64"]{extra}}}
  hosts:
    web1: {{ansible_host: {address}}}
"""


def host_vars(tmp_path, address: str = "10.0.0.11", extra: str = ""):
    path = tmp_path / "site.yml"
    path.write_text(textwrap.dedent(SINGLE.format(address=address, extra=extra)))
    return load_inventory(path).hosts["web1"].vars


def test_a_single_host_with_metrics_admits_the_scrapers_to_the_exporters_only(tmp_path):
    v = host_vars(tmp_path)
    rules = render("nftables/app-firewall.nft.j2", rules_context(v))
    assert "tcp dport { 9113, 9117 } ip saddr { 10.0.0.5/32 } accept" in rules
    assert "tcp dport { 9113, 9117 } ip6 saddr { fd00:5::/64 } accept" in rules
    assert rules.rstrip().endswith("tcp dport { 9113, 9117 } drop\n    }\n}")
    assert "dport { 80" not in rules, "a single host serves everyone on http_port"
    resources, handlers = STACK.declare(v)
    labels = [r.label() for r in resources]
    assert {"service prometheus-nginx-exporter", "service provision-uwsgi-exporter-model_api",
            "service provision-firewall-model_api"} <= set(labels)
    assert [h.name for h in handlers] == ["reload firewall", "restart app", "reload nginx", "restart metrics", "retire apps"]
    units = {r.path: r.content for r in resources if hasattr(r, "content") and r.path.startswith("/etc/systemd/")}
    dropin = units["/etc/systemd/system/prometheus-nginx-exporter.service.d/provision.conf"]
    assert ("--web.listen-address=10.0.0.11:9113 --nginx.scrape-uri=http://127.0.0.1:8019/nginx_status" in dropin)
    unit = units["/etc/systemd/system/provision-uwsgi-exporter-model_api.service"]
    assert "User=model_api" in unit and "10.0.0.11 9117 /run/model_api/stats/main.sock" in unit
    assert all("NoNewPrivileges=yes" in text and "ProtectSystem=strict" in text for text in (dropin, unit))


def test_an_app_host_behind_balancers_keeps_its_balancer_rules_beside_the_metrics_rules(tmp_path):
    path = tmp_path / "site.yml"
    path.write_text(textwrap.dedent("""
        all:
          vars: {ansible_user: root, metrics_scraper: 10.0.0.5}
          children:
            lb: {hosts: {lb1: {ansible_host: 10.0.0.1}}}
            app: {hosts: {app1: {ansible_host: 10.0.0.11}}}
        """))
    hosts = load_inventory(path).hosts
    rules = render("nftables/app-firewall.nft.j2", rules_context(hosts["app1"].vars))
    assert "tcp dport { 80 } ip saddr { 10.0.0.1 } accept" in rules and "tcp dport { 80 } drop" in rules
    assert "tcp dport { 9113, 9117 } ip saddr { 10.0.0.5/32 } accept" in rules
    assert not any("exporter" in r.label() for r in STACK.declare(hosts["lb1"].vars)[0]), "a balancer runs no app"


def test_the_status_port_kept_apart_from_the_metrics_ports_is_the_status_page_top_reads():
    from provisioner.config.metrics import STATUS_PORT
    from provisioner.stack.nginx import STATUS_ADDRESS
    assert STATUS_ADDRESS == f"127.0.0.1:{STATUS_PORT}"


def test_metrics_off_leaves_no_exporter_and_a_host_that_turns_them_off_stops_them(tmp_path):
    v = settings()
    resources, handlers = STACK.declare(v)
    labels = [r.label() for r in resources]
    assert not any(label.startswith("service") and "exporter" in label for label in labels)
    assert "absent /etc/systemd/system/provision-uwsgi-exporter-model_api.service" in labels
    [stop] = [h for h in handlers if h.name == "stop metrics"]
    assert "systemctl stop prometheus-nginx-exporter provision-uwsgi-exporter-model_api" in stop.run
    unguarded = host_vars(tmp_path, extra=", firewall: false")
    assert "service provision-firewall-model_api" not in [r.label() for r in STACK.declare(unguarded)[0]]


@pytest.mark.parametrize("address, extra, cause", [
    ("web1.example", "", "its private_address is 'web1.example', not an IP address"),
    ("1.2.3.4", "", "its private_address 1.2.3.4 is not a private address"),  # never contacted
    ("10.0.0.11", ", metrics_nginx_port: 80", "metrics_nginx_port of host web1 is 80, which http_port uses"),
    ("10.0.0.11", ", metrics_uwsgi_port: 9113", "metrics_uwsgi_port of host web1 is 9113, which metrics_nginx_port"),
])
def test_metrics_settings_that_cannot_work_are_refused_before_any_host(tmp_path, address, extra, cause):
    with pytest.raises(UserError, match=re.escape(cause)) as error:
        host_vars(tmp_path, address, extra)
    assert error.value.fix.startswith("set ")


def test_a_scraper_that_is_no_address_is_refused_with_the_cli_exit_code(tmp_path):
    path = tmp_path / "site.yml"
    path.write_text(textwrap.dedent(SINGLE.format(address="10.0.0.11", extra="")).replace("10.0.0.5", "10.0.0.5;"))
    result = subprocess.run([sys.executable, "-m", "provisioner", "deploy", "-H", "all", "-i", str(path)],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "'10.0.0.5;' is not an IP address or network" in result.stdout + result.stderr


@needs_nginx
def test_nginx_writes_the_json_access_log_escaped(tmp_path):
    """access_log_format json through a real nginx: `nginx -t` passes without a warning, and a request
    whose user agent holds a quote and a backslash is one line json.loads reads back."""
    port = _free_port()
    v = settings(access_log_format="json", http_port=port)
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    site = _site_for_test(v, prefix, listen=f"127.0.0.1:{port}")
    conf = _nginx_conf(prefix, site, port_user="user nobody nogroup;\n" if os.geteuid() == 0 else "")
    checked = _nginx_t(conf, prefix)
    assert checked.returncode == 0 and "[warn]" not in checked.stderr, checked.stderr
    nginx = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs" / "error.log"),
                              "-g", "daemon off;"])
    try:
        _wait(lambda: _listening(port), 10, "nginx")
        status, _, _ = _request(port, "GET", "/static/missing.css?a=1", headers={"User-Agent": 'say "hi" \\ bye'})
    finally:
        nginx.terminate()
        nginx.wait(10)
    [line] = (prefix / "logs" / "model_api.access.log").read_text().splitlines()
    entry = json.loads(line)
    assert (entry["status"], entry["method"], entry["uri"], entry["user_agent"]) == (
        status, "GET", "/static/missing.css?a=1", 'say "hi" \\ bye')
    assert isinstance(entry["request_time"], float) and isinstance(entry["body_bytes_sent"], int)



def test_several_apps_each_get_an_exporter_on_a_port_of_their_own_and_a_shared_port_is_refused(tmp_path):
    from tests.unit.test_apps import three
    metrics = {"metrics_scraper": "10.0.0.5", "private_address": "10.0.0.11"}
    ports = {"admin": 9117, "accounts": 9118, "site": 9119}
    v = three(**metrics, apps={name: {**entry, "metrics_uwsgi_port": ports[name]}
                               for name, entry in three().apps.items()})
    resources, handlers = STACK.declare(v)
    units = {r.path: r.content for r in resources if getattr(r, "path", "").startswith("/etc/systemd/system/provision-uwsgi")}
    assert sorted(units) == [f"/etc/systemd/system/provision-uwsgi-exporter-{n}.service" for n in sorted(ports)]
    for name, port in ports.items():
        unit = units[f"/etc/systemd/system/provision-uwsgi-exporter-{name}.service"]
        assert f"User={name}" in unit and f"10.0.0.11 {port} /run/{name}/stats/main.sock" in unit
    [restart] = [h for h in handlers if h.name == "restart metrics"]
    assert all(f"10.0.0.11:{port}/metrics" in restart.verify for port in ports.values())
    rules = render("nftables/app-firewall.nft.j2", rules_context(v))
    assert "tcp dport { 9113, 9117, 9118, 9119 } ip saddr { 10.0.0.5/32 } accept" in rules
    with pytest.raises(UserError) as e:
        three(**metrics)   # every app on the default 9117
    assert "apps.accounts.metrics_uwsgi_port of host web1 is 9117, which apps.admin.metrics_uwsgi_port uses" in str(e.value)
    assert "a port of its own" in e.value.fix
