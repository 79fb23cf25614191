"""A balancer's `provision doctor` / `status` part, roles/doctor-upstream.sh, run for real with the
health checks the stack generates: one app host answering on a loopback port (a real HTTP server
started here), one refusing (a port nothing listens on). Each is a finding of its own, and "none
answers" is one more.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from provisioner.engine.findings import Level, parse
from provisioner.remote.quoting import function
from roles import HERE, STACK

pytestmark = pytest.mark.unit


class Healthy(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = b'{"status": "ok"}' if self.path == "/healthz" and self.headers["Host"] == "api.example.com" else b"no"
        self.send_response(200 if body != b"no" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def app_port():
    server = ThreadingHTTPServer(("127.0.0.2", 0), Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.3", 0))
        return s.getsockname()[1]


def findings(upstream: list[tuple[str, str]], port: int) -> dict:
    v = SimpleNamespace(upstream=upstream, http_port=port, server_name="api.example.com", health_path="/healthz")
    script = "\n".join([function("check_app_hosts", STACK._app_host_checks(v)),
                        (HERE / "doctor-upstream.sh").read_text()])
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, timeout=60).stdout
    found, lines = parse(out)
    assert not lines, lines
    return found


def test_each_app_host_is_asked_from_the_balancer(app_port):
    found = findings([("app1", "127.0.0.2"), ("app2", "127.0.0.3")], app_port)
    by_level = {(f.level, f.found.split(" ")[0]) for f in found}
    assert (Level.OK, "app1") in by_level
    assert (Level.FAIL, "app2") in by_level, found
    assert all(f.check == "app host" for f in found), "one app host answers: no 'none answers' finding"
    [fail] = [f for f in found if f.level == Level.FAIL]
    assert "127.0.0.3" in fail.found and "provision doctor -H app2" in fail.fix


def test_no_app_host_answering_is_said_once():
    found = findings([("app1", "127.0.0.3"), ("app2", "127.0.0.3")], closed_port())
    assert [f.check for f in found if f.level == Level.FAIL] == ["app host", "app host", "upstream"]
    assert "none of the 2 app hosts answers" in found[-1].found
