"""Which caching proxy can be the lab's apt proxy: each candidate in front of a strict stand-in mirror.

    python3 bench/apt_proxy.py [--rounds 10] [--clients 16]

Candidates: the lab's nginx proxy (provisioner/labs/aptproxy.py), apt-cacher-ng 3.7.4 as the lab ran
it (InRelease not cached: `DontCacheRequested`), and apt-cacher-ng caching InRelease. Each round,
`--clients` clients ask for one InRelease at once, as apt asks a proxy (whole URL, max-age=0); the
mirror then publishes a new InRelease, so the next round is a concurrent refresh. Counted per
candidate: answers not 200, answers cut or mixed (not exactly one published version), requests the
strict mirror refused (a header sent twice: 400), and fetches that reached the mirror.
Needs root and apt-cacher-ng installed (`apt-get install apt-cacher-ng`; its distro service may be
stopped). Traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests" / "lab")]

from provisioner.labs import aptproxy, common  # noqa: E402
from strict_mirror import StrictMirror  # noqa: E402
from test_apt_proxy import IN_RELEASE, apt_get  # noqa: E402

ACNG_CONF = """\
CacheDir: {dir}/cache
LogDir: {dir}/log
SupportDir: /usr/lib/apt-cacher-ng
Port: {port}
SocketPath: {dir}/socket
BindAddress: 127.0.0.1
ExThreshold: 4
Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian
ForceManaged: 1
{extra}
"""


def free_port() -> int:
    """A free loopback port below 4000: apt-cacher-ng 3.7.4 neither binds nor reaches high ones
    here ("Error resolving address for binding"; "503 Connection refused" from a listening mirror)."""
    for port in range(3900, 4000):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 3900-3999")


def start_acng(workdir: Path, mirror_port: int, extra: str) -> tuple[int, int]:
    port = free_port()
    for d in ("conf", "cache", "log"):
        (workdir / d).mkdir(parents=True)
    (workdir / "conf" / "acng.conf").write_text(ACNG_CONF.format(dir=workdir, port=port, extra=extra))
    (workdir / "conf" / "backends_debian").write_text(f"http://127.0.0.1:{mirror_port}/debian/\n")
    proc = subprocess.Popen(["apt-cacher-ng", "-c", str(workdir / "conf"), "ForeGround=1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(500):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc.pid, port
        time.sleep(0.02)
    raise RuntimeError("apt-cacher-ng did not listen")


def start_nginx(workdir: Path, mirror_port: int, _extra: str) -> tuple[int, int]:
    port = free_port()
    pid = aptproxy.start(workdir, workdir / "cache", port, ["127.0.0.1"],
                         upstream=f"127.0.0.1:{mirror_port}", index_valid=1)
    return pid, port


CANDIDATES = {
    "nginx (the lab's)": (start_nginx, "", aptproxy.PROCESS),
    "apt-cacher-ng, InRelease not cached": (start_acng, "DontCacheRequested: /InRelease$", "apt-cacher-ng"),
    "apt-cacher-ng, InRelease cached": (start_acng, "", "apt-cacher-ng"),
}


def measure(name: str, rounds: int, clients: int) -> dict:
    start, extra, mark = CANDIDATES[name]
    mirror = StrictMirror()
    mirror.put(IN_RELEASE, b"Origin: Debian\n" + b"SHA256: 0\n" * 16000)
    server, mirror_port = mirror.serve(free_port())
    with tempfile.TemporaryDirectory() as tmp:
        pid, port = start(Path(tmp), mirror_port, extra)
        failed = cut = 0
        published = {mirror.files[IN_RELEASE]}  # a copy of any published version is whole
        try:
            for r in range(rounds):
                with ThreadPoolExecutor(clients) as pool:
                    answers = list(pool.map(lambda _: apt_get(port, IN_RELEASE), range(clients)))
                failed += sum(1 for s, _ in answers if s != 200)
                cut += sum(1 for s, b in answers if s == 200 and b not in published)
                time.sleep(1.1)
                mirror.put(IN_RELEASE, b"Origin: Debian\n" + f"SHA256: {r + 1}\n".encode() * 16000)
                published.add(mirror.files[IN_RELEASE])
        finally:
            common.stop_pid(pid, mark, timeout=5)
            server.shutdown()
    return {"requests": rounds * clients, "not 200": failed, "cut or mixed": cut,
            "refused by the mirror (400)": len(mirror.refused()), "fetches from the mirror": mirror.fetches(IN_RELEASE)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=16)
    args = ap.parse_args()
    rows = {name: measure(name, args.rounds, args.clients) for name in CANDIDATES}
    cols = list(next(iter(rows.values())))
    print("| candidate | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(str(row[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
