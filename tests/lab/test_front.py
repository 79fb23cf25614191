"""The production front on a real host, through the real CLI: one fresh host carries every check.

JSON error pages (405, 413, 429, 502) with the security headers, a request for an unknown host name
closed without an answer, a burst over the rate limit of POST /predict answered 429 while /healthz
under its own limit is not, and a re-deploy with all of it on that changes nothing (1 remote script).
"""

import http.client
import json
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from provisioner.labs.container import write_inventory
from tests.lab.test_deploy import deploy_json, own_known_hosts, remote  # noqa: F401  (an autouse fixture)

pytestmark = pytest.mark.lab

SITE = "api.lab.test"
FRONT = {"server_name": SITE, "allowed_methods": "GET POST", "client_max_body_size": "1k",
         "rate_limit": "50r/s", "rate_limit_locations": {"POST /predict": "2r/s burst=2", "/healthz": "100r/s burst=20"}}
SECURITY_HEADERS = ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")
PREDICT = json.dumps({"features": [5.1, 3.5, 1.4, 0.2]}).encode()


def ask(address, method, path, body=None, host=SITE):
    conn = http.client.HTTPConnection(address, 80, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Host": host, "Content-Type": "application/json"})
        answer = conn.getresponse()
        return answer.status, answer.headers, answer.read()
    finally:
        conn.close()


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

    remote(inventory, host.name, "systemctl stop uwsgi-model_api")
    error, _ = json_error(ask(host.address, "GET", "/healthz"), 502)
    assert error["error"] == "bad gateway: the app is not answering"
