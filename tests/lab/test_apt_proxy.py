"""The lab's real apt proxy configuration against a strict stand-in mirror on loopback.

What broke CI on a fresh machine: the old proxy sent two `Host:` headers for InRelease, and a strict
mirror answers that with 400; the proxy must also stay whole when many hosts refresh the same index
at once (the race that cut answers short). Needs root (nginx's workers run as www-data), no hosts.
"""

from __future__ import annotations

import http.client
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from provisioner.labs import aptproxy, common

from strict_mirror import StrictMirror

pytestmark = pytest.mark.lab

IN_RELEASE = "/debian/dists/bookworm/InRelease"
DEB = "/debian/pool/main/n/nginx/nginx-light_1.22.1-9_amd64.deb"
CLIENTS = 16


@pytest.fixture
def strict_proxy(tmp_path):
    """A strict mirror with an InRelease and a .deb, and the lab proxy in front of it (index files
    valid for 1 s, so a test can make every client refresh at once)."""
    mirror = StrictMirror()
    mirror.put(IN_RELEASE, b"Origin: Debian\n" + b"SHA256: x\n" * 16000)  # ~160 KiB, like bookworm's
    mirror.put(DEB, bytes(range(256)) * 4096)  # 1 MiB
    server, mirror_port = mirror.serve()
    port = _free_port()
    pid = aptproxy.start(tmp_path / "proxy", tmp_path / "cache", port, ["127.0.0.1"],
                         upstream=f"127.0.0.1:{mirror_port}", index_valid=1)
    try:
        yield mirror, port, tmp_path / "proxy"
    finally:
        common.stop_pid(pid, aptproxy.PROCESS, timeout=5)
        server.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def apt_get(port: int, path: str, host: str = aptproxy.MIRROR_HOST) -> tuple[int, bytes]:
    """One request as apt sends it to a proxy: the whole URL, and max-age=0 for index files."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", f"http://{host}{path}", headers={
            "Host": host, "Cache-Control": "max-age=0", "User-Agent": "Debian APT-HTTP/1.3 (2.6.1)"})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def all_at_once(port: int, path: str) -> list[tuple[int, bytes]]:
    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(lambda _: apt_get(port, path), range(CLIENTS)))


def test_sixteen_hosts_asking_for_one_inrelease_all_get_it_whole_from_one_fetch(strict_proxy):
    mirror, port, _ = strict_proxy
    answers = all_at_once(port, IN_RELEASE)
    statuses = [s for s, _ in answers]
    whole = sum(1 for s, body in answers if s == 200 and body == mirror.files[IN_RELEASE])
    assert whole == CLIENTS, f"{whole} of {CLIENTS} answers whole; statuses {statuses}"
    assert not mirror.refused(), f"the strict mirror refused: {mirror.refused()}"
    assert mirror.fetches(IN_RELEASE) == 1, f"the mirror served InRelease {mirror.fetches(IN_RELEASE)} times"


def test_sixteen_hosts_refreshing_an_expired_inrelease_all_get_a_whole_copy(strict_proxy):
    mirror, port, _ = strict_proxy
    old = mirror.files[IN_RELEASE]
    assert all(s == 200 for s, _ in all_at_once(port, IN_RELEASE))
    time.sleep(1.1)  # past the index validity, and a second later than old's Last-Modified
    mirror.put(IN_RELEASE, old.replace(b"SHA256: x", b"SHA256: y"))
    new = mirror.files[IN_RELEASE]
    time.sleep(0.5)
    answers = all_at_once(port, IN_RELEASE)
    bad = [(s, len(b)) for s, b in answers if s != 200 or b not in (old, new)]
    assert not bad, f"{len(bad)} of {CLIENTS} refreshes not whole: {bad}"
    assert not mirror.refused(), f"the strict mirror refused: {mirror.refused()}"
    time.sleep(0.5)  # the refresh that was under way has landed
    assert apt_get(port, IN_RELEASE) == (200, new)


def test_a_package_asked_for_by_sixteen_hosts_is_fetched_once_and_then_served_from_the_cache(strict_proxy):
    mirror, port, workdir = strict_proxy
    answers = all_at_once(port, DEB)
    assert sum(1 for s, b in answers if s == 200 and b == mirror.files[DEB]) == CLIENTS
    assert mirror.fetches(DEB) == 1
    assert apt_get(port, DEB) == (200, mirror.files[DEB]) and mirror.fetches(DEB) == 1
    assert "cache=HIT" in aptproxy.access_log(workdir).read_text()


def test_only_debians_mirror_is_reachable_through_the_proxy(strict_proxy):
    mirror, port, _ = strict_proxy
    status, _ = apt_get(port, "/debian/dists/bookworm/InRelease", host="attacker.example")
    assert status == 403
    assert apt_get(port, "/etc/passwd")[0] == 403
    assert not mirror.seen
