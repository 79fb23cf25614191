"""The production front on real hosts, through the real CLI; each test's one fresh host carries many checks.

The front: JSON error pages (405, 413, 429, 502) with the security headers, a request for an unknown host name
closed without an answer, a burst over the rate limit of POST /predict answered 429 while /healthz
under its own limit is not, the micro-cache (MISS, HIT, never POST, the last answer while the app is
down), the WAF (SQL injection and XSS probes 403 and logged by rule id in block mode, passed and logged
in detect mode), and a re-deploy with all of it on that changes nothing (1 remote script).
HTTPS self-signed (h2, 308, unknown SNI refused, made once), then every cause of a 5xx broken on
purpose and named by `provision doctor` (the app's journal, the certificate, then the socket: a full listen
queue, the app down, a stale socket, a socket nginx may not write to). HTTPS by ACME: test_acme.py; on
Debian 13: test_tls_trixie.py.
"""

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest

from provisioner import PROJECT_ROOT
from provisioner.labs.container import write_inventory
from tests.lab.test_deploy import deploy_json, own_known_hosts, remote  # noqa: F401  (an autouse fixture)

pytestmark = pytest.mark.lab

SITE = "api.lab.test"
FRONT = {"server_name": SITE, "allowed_methods": "GET POST", "client_max_body_size": "1k",
         "rate_limit": "50r/s", "rate_limit_locations": {"POST /predict": "2r/s burst=2", "/healthz": "100r/s burst=20"},
         "cache_locations": ["/healthz"], "waf": "block"}
SECURITY_HEADERS = ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")
PREDICT = json.dumps({"features": [5.1, 3.5, 1.4, 0.2]}).encode()
SQLI, XSS = "/predict?id=" + quote("1' OR '1'='1"), "/predict?q=" + quote("<script>alert(1)</script>")


def ask(address, method, path, body=None, host=SITE):
    conn = http.client.HTTPConnection(address, 80, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Host": host, "Content-Type": "application/json"})
        answer = conn.getresponse()
        return answer.status, answer.headers, answer.read()
    finally:
        conn.close()


def on_host(inventory, host, command) -> str:
    """What a command printed on the host (`provision run` shows it under a "NAME rc=N" line, indented)."""
    return "".join(line[2:] + "\n" for line in remote(inventory, host, command).splitlines()[1:])


def waf_rule_ids(inventory, host) -> set[str]:
    return set(re.findall(r'\[id "(\d+)"\]', on_host(inventory, host, "cat /var/log/nginx/model_api.waf.log")))


def json_error(answer, status):
    code, headers, body = answer
    assert code == status, (code, body)
    assert headers["Content-Type"] == "application/json" and headers["Server"] == "nginx"
    assert all(headers[name] for name in SECURITY_HEADERS)
    error = json.loads(body)
    assert error["status"] == status
    return error, headers


def test_front_json_errors_unknown_host_and_rate_limits(lab_hosts, tmp_path):
    [host] = lab_hosts(1)
    inventory = write_inventory([host], tmp_path / "inv.yml", group_vars=FRONT)
    code, [first] = deploy_json(inventory)
    assert (code, first["status"]) == (0, "changed"), first

    assert ask(host.address, "POST", "/predict", PREDICT)[0] == 200
    with socket.create_connection((host.address, 80), timeout=10) as conn:   # asked by address
        conn.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host.address}\r\n\r\n".encode())
        assert conn.recv(1024) == b"", "an unknown host name is closed without an answer"

    _, headers = json_error(ask(host.address, "DELETE", "/predict"), 405)
    assert headers["Allow"] == "GET, HEAD, POST"
    json_error(ask(host.address, "POST", "/predict", b"[" + b"1," * 1024 + b"1]"), 413)

    with ThreadPoolExecutor(10) as pool:
        burst = list(pool.map(lambda _: ask(host.address, "POST", "/predict", PREDICT), range(10)))
        health = list(pool.map(lambda _: ask(host.address, "GET", "/healthz")[0], range(10)))
    statuses = [answer[0] for answer in burst]
    assert set(statuses) == {200, 429} and statuses.count(429) >= 5, statuses
    _, headers = json_error(next(a for a in burst if a[0] == 429), 429)
    assert headers["Retry-After"] == "1"
    assert health == [200] * 10, "traffic under its limit gets no 429"

    # A no-op re-deploy with all of it on: nothing changes, one remote script.
    code, [again] = deploy_json(inventory)
    assert (code, again["status"], again["changed"], again["handlers"]) == (0, "ok", 0, []), again
    assert again["remote"]["channels"] == 1

    for probe in (SQLI, XSS):
        assert json_error(ask(host.address, "GET", probe), 403)[0]["error"] == "forbidden"
    assert {"942100", "941100"} <= waf_rule_ids(inventory, host.name)

    time.sleep(2.5)   # past cache_valid (1 s)
    assert ask(host.address, "GET", "/healthz?fresh")[1]["X-Cache-Status"] == "MISS"
    status, headers, cached = ask(host.address, "GET", "/healthz?fresh")
    assert (status, headers["X-Cache-Status"]) == (200, "HIT")
    assert "X-Cache-Status" not in ask(host.address, "POST", "/predict", PREDICT)[1], "POST never meets the cache"

    remote(inventory, host.name, "systemctl stop uwsgi-model_api")
    time.sleep(2.5)
    status, headers, body = ask(host.address, "GET", "/healthz?fresh")
    assert (status, headers["X-Cache-Status"], body) == (200, "STALE", cached)
    error, _ = json_error(ask(host.address, "GET", "/predict"), 502)
    assert error["error"] == "bad gateway: the app is not answering"

    # detect mode (the deploy starts the app again): the same probes reach the app, and are logged
    inventory = write_inventory([host], tmp_path / "inv.yml", group_vars={**FRONT, "waf": "detect"})
    remote(inventory, host.name, "truncate -s 0 /var/log/nginx/model_api.waf.log")
    assert deploy_json(inventory)[0] == 0
    assert [ask(host.address, "GET", probe)[0] for probe in (SQLI, XSS)] == [405, 405], "the app's answer to a GET"
    assert {"942100", "941100"} <= waf_rule_ids(inventory, host.name)


SLOW_APP = '''"""Test app: the example app, and /slow?s=N answering after N seconds (harakiri, read timeout)."""
import time
from urllib.parse import parse_qs

from model_api.wsgi import app as model_app


def app(environ, start_response):
    if environ["PATH_INFO"] != "/slow":
        return model_app(environ, start_response)
    time.sleep(float(parse_qs(environ["QUERY_STRING"])["s"][0]))
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b"{}"]
'''
# Small limits so that each cause of a 5xx is easy to reach on purpose.
BREAKABLE = {"app_module": "slow_wsgi", "uwsgi_harakiri": 4, "uwsgi_read_timeout": 2, "uwsgi_buffer_size": 4096}


def ask_tls(address, path, cafile, headers=None):
    """GET over HTTPS naming SITE (SNI and Host) at `address`."""
    context = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection(SITE, 443, timeout=20, context=context)
    conn.sock = context.wrap_socket(socket.create_connection((address, 443), timeout=20), server_hostname=SITE)
    try:
        conn.request("GET", path, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.headers, answer.read()
    finally:
        conn.close()


def test_https_self_signed_then_doctor_names_each_cause(lab_hosts, tmp_path):
    [host] = lab_hosts(1)
    app = tmp_path / "app"
    shutil.copytree(PROJECT_ROOT / "examples" / "model_api", app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "slow_wsgi.py").write_text(SLOW_APP)
    inventory = write_inventory([host], tmp_path / "inv.yml", group_vars={
        "server_name": SITE, "tls": "self-signed", "app_source": str(app), **BREAKABLE})
    code, [first] = deploy_json(inventory)
    assert (code, first["status"]) == (0, "changed"), first
    cert = tmp_path / "cert.pem"
    cert.write_text(on_host(inventory, host.name, "cat /etc/ssl/provision/model_api/fullchain.pem"))
    assert on_host(inventory, host.name, "stat -c '%a %U' /etc/ssl/provision/model_api/privkey.pem").split() == [
        "600", "root"]

    context = ssl.create_default_context(cafile=str(cert))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((host.address, 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=SITE) as conn:
            assert (conn.version(), conn.selected_alpn_protocol()) == ("TLSv1.3", "h2")
    with socket.create_connection((host.address, 443), timeout=10) as raw, pytest.raises(ssl.SSLError):
        context.wrap_socket(raw, server_hostname="other.lab.test")
    status, headers, _ = ask(host.address, "POST", "/predict", PREDICT)
    assert status == 308 and headers["Location"] == f"https://{SITE}/predict"

    code, [again] = deploy_json(inventory)
    assert (code, again["status"], again["changed"], again["handlers"]) == (0, "ok", 0, []), again
    assert again["remote"]["channels"] == 1
    assert on_host(inventory, host.name, "cat /etc/ssl/provision/model_api/fullchain.pem") == cert.read_text(), \
        "made once, kept"

    # Each cause of a 5xx on purpose, then `provision doctor` names every one.
    assert json_error(ask_tls(host.address, "/slow?s=6", cert), 504)[0]["error"].startswith("gateway timeout")
    headers = {f"X-Pad-{i}": "x" * 2000 for i in range(3)}   # over uwsgi_buffer_size, under nginx's limits
    assert json_error(ask_tls(host.address, "/healthz", cert, headers), 502)[0]["status"] == 502
    time.sleep(4)   # harakiri (4 s) ends the slow request nginx gave up on after 2 s
    on_host(inventory, host.name, "cd /etc/ssl/provision/model_api && openssl req -x509 -newkey ec "
            "-pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3 -subj /CN=old.lab.test "
            "-addext subjectAltName=DNS:old.lab.test -keyout privkey.pem -out fullchain.pem 2>/dev/null")
    on_host(inventory, host.name, "sed -i -e '/^plugins/d' -e 's/^strict = true/strict = false/' "
            "-e 's/^need-app = true/need-app = false/' /etc/uwsgi/apps-provision/model_api.ini && "
            "systemctl restart uwsgi-model_api")
    json_error(ask_tls(host.address, "/healthz?plugin", cert), 502)
    doctor = subprocess.run([sys.executable, "-m", "provisioner", "doctor", "-H", host.name, "-i", inventory],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "1000"})
    out = doctor.stdout + doctor.stderr
    assert doctor.returncode == 1, out
    for cause in ("unavailable modifier requested: 0", "HARAKIRI", "invalid request block size",
                  "upstream timed out", f"does not cover {SITE}", "in less than 14 days"):
        assert cause in out, (cause, out)

    # The socket's causes, the app put back by a re-deploy (listen queue 2): a full queue (the app frozen),
    # the app down, a stale socket nothing listens on, a socket nginx may not write to.
    inventory = write_inventory([host], tmp_path / "inv.yml", group_vars={
        "server_name": SITE, "tls": "self-signed", "app_source": str(app), **BREAKABLE, "uwsgi_listen": 2})
    assert deploy_json(inventory)[0] == 0
    cert.write_text(on_host(inventory, host.name, "cat /etc/ssl/provision/model_api/fullchain.pem"))
    on_host(inventory, host.name, "truncate -s 0 /var/log/nginx/model_api.error.log /var/log/nginx/error.log")
    on_host(inventory, host.name, "systemctl kill -s STOP uwsgi-model_api")
    with ThreadPoolExecutor(12) as pool:
        frozen = list(pool.map(lambda _: ask_tls(host.address, "/healthz", cert)[0], range(12)))
    on_host(inventory, host.name, "systemctl kill -s CONT uwsgi-model_api")
    assert 502 in frozen, frozen
    stale = on_host(inventory, host.name, "readlink -f /run/model_api/uwsgi.sock").strip()
    on_host(inventory, host.name, f"systemctl stop uwsgi-model_api && rm -f {stale}")
    assert ask_tls(host.address, "/healthz", cert)[0] == 502
    on_host(inventory, host.name, "python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "
            f"{stale} && chmod 666 {stale}")
    assert ask_tls(host.address, "/healthz", cert)[0] == 502
    on_host(inventory, host.name, f"chmod 600 {stale}")
    assert ask_tls(host.address, "/healthz", cert)[0] == 502
    doctor = subprocess.run([sys.executable, "-m", "provisioner", "doctor", "-H", host.name, "-i", inventory],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "1000"})
    out = doctor.stdout + doctor.stderr
    assert doctor.returncode == 1, out
    for cause in ("(11: Resource temporarily unavailable)", "uwsgi-model_api is inactive",
                  "(2: No such file or directory)", "(111: Connection refused)", "(13: Permission denied)",
                  "www-data cannot write"):
        assert cause in out, (cause, out)
