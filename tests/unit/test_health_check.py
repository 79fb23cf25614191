"""The health check through nginx (engine/verify.http_check) against real loopback HTTP servers: the
bash check answers a 2xx itself, reports a failure's status and body, and hands a redirect to python3."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading

import pytest

from provisioner.engine.verify import http_check

pytestmark = pytest.mark.unit


class Answers(http.server.BaseHTTPRequestHandler):
    """/ok: 200 with a JSON body; /down: 503; /moved: 308 to /ok; every request's Host header is kept."""
    seen_hosts: list[str] = []

    def do_GET(self):
        self.seen_hosts.append(self.headers["Host"])
        status, body, extra = {"/ok": (200, b'{"status": "ok"}\n', {}),
                               "/down": (503, b"model store unreachable", {}),
                               "/moved": (308, b"", {"Location": "/ok"})}[self.path]
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        yield httpd.server_address[1]
        httpd.shutdown()


def check(port: int, path: str, tries: int = 1) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", http_check(port, "api.example.com", path, tries)],
                          capture_output=True, text=True, timeout=30)


def test_a_2xx_answer_passes_with_status_and_body(server):
    result = check(server, "/ok")
    assert (result.returncode, result.stdout) == (0, '200 {"status": "ok"}\n')
    assert Answers.seen_hosts[-1] == "api.example.com"


def test_a_failing_answer_fails_with_its_status_and_body(server):
    result = check(server, "/down", tries=2)
    assert result.returncode != 0 and result.stdout == "503 model store unreachable\n"


def test_a_redirect_is_followed(server):
    result = check(server, "/moved")
    assert (result.returncode, result.stdout) == (0, '200 {"status": "ok"}\n')


def test_nothing_listening_fails_naming_the_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = check(port, "/ok")
    assert result.returncode != 0 and result.stdout == f"0 connection refused on 127.0.0.1:{port}\n"
    assert result.stderr == ""
