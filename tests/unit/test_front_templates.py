"""The production front (roles/front.py, templates/nginx/front-*.j2): its settings, and what a real
nginx answers with them: JSON error pages with the security headers, 405 for other methods, 429 over
a rate limit, and requests for an unknown host closed without an answer.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from provisioner import TEMPLATES_DIR
from provisioner.errors import UserError
from provisioner.templating import render
from roles import front
from tests.unit.test_templates import (NGINX, SECURITY_HEADERS, _free_port, _nginx_conf, _nginx_t, _port_open,
                                       _request, _wait, ctx, needs_nginx, settings)

pytestmark = pytest.mark.unit

EVERYTHING = dict(server_name="api.example.com", rate_limit="10r/s", rate_limit_burst=5, rate_limit_conn=20,
                  allowed_methods="GET POST",
                  rate_limit_locations={"POST /predict": "2r/s burst=1", "/healthz": {"rate": "50r/s"}})


# --- settings --------------------------------------------------------------------------------------


def test_front_settings_are_typed():
    v = settings(allowed_methods=["get", "post"], rate_limit=" 10r/s ",
                 rate_limit_locations={"/": "1r/s", "/healthz": "5r/s", "POST /predict": "2r/s burst=3",
                                       "/predict": {"rate": "3r/m", "burst": "4"}})
    assert v.allowed_methods == "GET HEAD POST"   # nginx answers HEAD wherever it answers GET
    assert v.rate_limit == "10r/s"
    assert v.rate_limit_locations == {   # most specific first
        "POST /predict": {"rate": "2r/s", "burst": 3}, "/predict": {"rate": "3r/m", "burst": 4},
        "/healthz": {"rate": "5r/s", "burst": 0}, "/": {"rate": "1r/s", "burst": 0}}


@pytest.mark.parametrize("name, value, words", [
    ("rate_limit", "10/s", "must be an nginx rate like 10r/s"),
    ("rate_limit", 10, "must be an nginx rate like 10r/s"),
    ("rate_limit_burst", -1, "must be an integer >= 0"),
    ("rate_limit_conn", "many", "must be an integer >= 0"),
    ("allowed_methods", "GET PO-ST", "must be HTTP methods"),
    ("rate_limit_locations", ["/predict"], "must be a mapping of '[METHOD ]/path' to a rate"),
    ("rate_limit_locations", {"predict": "1r/s"}, "'predict' is not '[METHOD ]/path'"),
    ("rate_limit_locations", {"/p": "1r/s burst=x"}, "/p: burst must be an integer >= 0"),
    ("rate_limit_locations", {"/p": {"rate": "fast"}}, "must be a mapping"),
])
def test_a_wrong_front_value_is_one_line_naming_setting_and_fix(name, value, words):
    with pytest.raises(UserError) as caught:
        settings(**{name: value})
    assert words in caught.value.cause and "\n" not in caught.value.cause
    assert f"`{name}: " in caught.value.fix


def test_a_misspelled_front_setting_names_the_right_one():
    with pytest.raises(UserError, match="did you mean 'rate_limit_burst'"):
        settings(rate_limit_brust=5)


# --- what the templates say -----------------------------------------------------------------------


def test_the_default_server_is_written_only_when_server_name_names_hosts():
    [absent] = front.resources(settings())
    assert absent.label() == "absent /etc/nginx/conf.d/provision-default-80.conf"
    [default] = front.resources(settings(server_name="api.example.com", http_port=8080))
    file = default.rendered(TEMPLATES_DIR)
    assert file.label() == "file /etc/nginx/conf.d/provision-default-8080.conf"
    assert "listen 8080 default_server;" in file.content and "return 444;" in file.content


def test_rate_limits_are_off_by_default():
    out = render("nginx/site.conf.j2", ctx(settings()))
    assert "limit_req" not in out and "limit_conn" not in out
    assert "error_page 502 @provision_error_502;" in out


# --- a real nginx ---------------------------------------------------------------------------------


class SilentUpstream:
    """A unix socket that accepts connections and never answers: the app taking too long."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen(16)
        os.chmod(path, 0o666)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        for conn in self.held:
            conn.close()
        self.sock.close()


@contextmanager
def serving(prefix: Path, site: str, port: int, head: str = ""):
    """A real nginx on 127.0.0.1:port with `site` (paths under /var/log/nginx moved under `prefix`),
    once `nginx -t` passes without a warning; `head` goes before its main config. Ends with the block."""
    prefix.mkdir(exist_ok=True)
    (prefix / "site.conf").write_text(site.replace("/var/log/nginx/", f"{prefix}/logs/")
                                      .replace(f"listen {port} ", f"listen 127.0.0.1:{port} "))
    conf = _nginx_conf(prefix, prefix / "site.conf", port_user=head + ("user root root;\n" if os.geteuid() == 0 else ""))
    checked = _nginx_t(conf, prefix)
    assert checked.returncode == 0 and "[warn]" not in checked.stderr, checked.stderr
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs" / "error.log"),
                             "-g", "daemon off;"])
    try:
        _wait(lambda: _port_open(port) or proc.poll() is not None, 20, "nginx to listen")
        yield
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(timeout=20)


@pytest.fixture
def front_nginx(tmp_path):
    """nginx with the site (every front feature on) and the default server, in front of a socket that
    never answers; uwsgi_read_timeout 1 s. Yields (port, v)."""
    port = _free_port()
    sock = tmp_path / "app.sock"
    v = settings(**EVERYTHING, http_port=port, uwsgi_socket=str(sock), uwsgi_harakiri=0,
                 uwsgi_read_timeout=1, client_max_body_size="1k")
    upstream = SilentUpstream(sock)
    try:
        with serving(tmp_path / "nginx", render("nginx/site.conf.j2", ctx(v)) +
                     render("nginx/default-server.conf.j2", ctx(v)), port):
            yield port, v
    finally:
        upstream.close()


def _json_error(answer: tuple, status: int) -> dict:
    code, headers, body = answer
    assert code == status, body
    assert headers["content-type"] == "application/json"
    for header in SECURITY_HEADERS:
        assert header.lower() in headers, header
    assert headers["server"] == "nginx"
    return json.loads(body)


@needs_nginx
def test_nginx_answers_its_errors_as_json_with_the_security_headers(front_nginx):
    port, _ = front_nginx
    site = {"Host": "api.example.com"}
    assert _json_error(_request(port, "GET", "/slow", headers=site), 504)["status"] == 504
    assert _json_error(_request(port, "POST", "/predict", b"x" * 4096, headers=site), 413) == {
        "error": "request body too large", "status": 413}
    answer = _request(port, "DELETE", "/predict", headers=site)
    assert _json_error(answer, 405)["error"] == "method not allowed"
    assert answer[1]["allow"] == "GET, HEAD, POST"


@needs_nginx
def test_a_burst_over_the_limit_gets_json_429s_with_retry_after(front_nginx):
    port, _ = front_nginx
    site = {"Host": "api.example.com"}
    # POST /predict: 2r/s burst 1 -> of 5 at once, at most two pass (to a 504: the app never answers)
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: _request(port, "POST", "/predict", b"{}", headers=site), range(5)))
    assert [a[0] for a in answers].count(429) >= 2, [a[0] for a in answers]
    limited = next(a for a in answers if a[0] == 429)
    assert _json_error(limited, 429)["error"] == "too many requests"
    assert limited[1]["retry-after"] == "1"
    # GET / counts against rate_limit (10r/s burst 5): a handful is under it
    assert [_request(port, "HEAD", "/static/x", headers=site)[0] for _ in range(4)] == [404] * 4


@needs_nginx
def test_an_unknown_host_is_closed_without_an_answer(front_nginx):
    port, _ = front_nginx
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: attacker.example\r\n\r\n")
        assert conn.recv(1024) == b""
