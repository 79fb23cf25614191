"""The micro-cache (cache_locations): a real nginx in front of a small uwsgi-protocol app: MISS then
HIT, keyed by path and arguments, never POST, never with Authorization or Set-Cookie, and the last
answer served while the app is down.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from provisioner.errors import UserError
from provisioner.templating import render
from tests.unit.test_front_templates import serving
from tests.unit.test_templates import _free_port, _request, ctx, needs_nginx, settings

pytestmark = pytest.mark.unit


class CountingApp:
    """Speaks the uwsgi protocol on a unix socket: answers "N" (its N-th request), with Set-Cookie
    for paths under /session."""

    def __init__(self, path: Path):
        self.path, self.count = path, 0
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)
        self.sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                _, size, _ = struct.unpack("<BHB", conn.recv(4, socket.MSG_WAITALL))
                packet = conn.recv(size, socket.MSG_WAITALL)
                self.count += 1
                cookie = b"Set-Cookie: id=1\r\n" if b"/session" in packet else b""
                body = str(self.count).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + cookie +
                             b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def stop(self):
        self.sock.close()
        self.path.unlink()


def test_cache_locations_are_path_prefixes():
    assert settings(cache_locations=["/healthz", "/healthz", "/v1/models"]).cache_locations == ["/healthz", "/v1/models"]
    for wrong in ("/healthz", ["healthz"], ["/a b"]):
        with pytest.raises(UserError, match="cache_locations of test must be a list of URL path prefixes"):
            settings(cache_locations=wrong)


def test_no_cache_by_default():
    assert "uwsgi_cache" not in render("nginx/site.conf.j2", ctx(settings()))


@pytest.fixture
def cached_site(tmp_path):
    port = _free_port()
    v = settings(cache_locations=["/cached", "/healthz"], cache_valid="1s", http_port=port,
                 uwsgi_socket=str(tmp_path / "app.sock"))
    prefix = tmp_path / "nginx"
    app = CountingApp(tmp_path / "app.sock")
    try:
        with serving(prefix, render("nginx/site.conf.j2", ctx(v)).replace("/var/cache/nginx/", f"{prefix}/"), port):
            yield port, app
    finally:
        app.sock.close()


def _get(port, path, method="GET", **headers):
    status, answer, body = _request(port, method, path, headers=headers)
    return status, answer.get("x-cache-status"), body


@needs_nginx
def test_get_is_cached_by_host_path_and_arguments(cached_site):
    port, _ = cached_site
    first = _get(port, "/cached/x?a=1")
    assert first[:2] == (200, "MISS")
    assert _get(port, "/cached/x?a=1") == (200, "HIT", first[2])
    assert _get(port, "/cached/x?a=2")[1] == "MISS"
    assert _get(port, "/cached/x?a=1", Host="other.example")[1] == "MISS"
    assert _get(port, "/elsewhere")[1] == "BYPASS" and _get(port, "/elsewhere")[1] == "BYPASS"
    assert [_get(port, "/healthz?x")[1] for _ in range(2)] == ["MISS", "HIT"], "the health path with arguments"


@needs_nginx
def test_never_post_authorization_or_set_cookie(cached_site):
    port, _ = cached_site
    _get(port, "/cached/p")
    assert _get(port, "/cached/p", method="POST")[1] is None, "POST never meets the cache"
    assert _get(port, "/cached/p", Authorization="Bearer x")[1] == "BYPASS"
    assert _get(port, "/healthz")[1] == "BYPASS", "the deploy's health check always reaches the app"
    assert [_get(port, "/cached/session")[1] for _ in range(2)] == ["MISS", "MISS"], "Set-Cookie is never kept"


@needs_nginx
def test_the_last_answer_is_served_while_the_app_is_down(cached_site):
    port, app = cached_site
    _, _, body = _get(port, "/cached/stale")
    app.stop()
    time.sleep(3)   # past cache_valid
    assert _get(port, "/cached/stale") == (200, "STALE", body)
    assert _get(port, "/cached/other")[0] == 502
