"""apt-cacher-ng, the lab hosts' only way out: configured to forward only to Debian's mirror.

Each lab runs its own daemon (its own port and listen addresses) and tracks it by PID. The same
daemon serves every Debian release (bookworm, trixie, ...): it keys its cache by URL.

Its one known fault: when several hosts ask for the same InRelease in the same second (apt asks
with `Cache-Control: max-age=0`, so every request refreshes it), the refreshes collide ("Failure to
move file ... File exists" in its error log) and some hosts get the file cut short; their `apt-get
update` may then wait forever. Measured with 12-16 concurrent requests through a lab proxy: 1 to 7
cut answers in most rounds, and a CI run lost its topology module to it. So InRelease files are not
cached (`DontCacheRequested`): each request streams from the mirror (~0.25 MB per host and update),
and none was cut in 228 requests (15 rounds). Packages lists are fetched by hash and .debs never
change, so those stay cached.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import time
from pathlib import Path

from . import common

MIRROR = "http://deb.debian.org/debian/"
SECURITY_MIRROR = "http://deb.debian.org/debian-security/"

_CONF = """\
# written by provision; the daemon is started with -c {conf_dir}
CacheDir: {cache_dir}
LogDir: {log_dir}
SupportDir: /usr/lib/apt-cacher-ng
SocketPath: {socket}
Port: {port}
ReportPage: acng-report.html
ExThreshold: 4
Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian
Remap-secdeb: security.debian.org security.debian.org/debian-security deb.debian.org/debian-security /debian-security ; file:backends_debian_security
ForceManaged: 1
PassThroughPattern: ^no-passthrough-allowed\\.invalid:443$
DnsCacheSeconds: 1800
DontCacheRequested: /InRelease$
"""


CONF_DIGEST = hashlib.sha256(_CONF.encode()).hexdigest()[:16]  # a daemon started with another config is restarted


def url_for(address: str, port: int) -> str:
    return f"http://{address}:{port}/"


def start(workdir: Path, cache_dir: Path, port: int, addresses: list[str]) -> int:
    """Write the configuration under `workdir`, start the daemon listening on `addresses` (all
    local) and return its PID once it accepts connections on each of them."""
    conf_dir, log_dir = workdir / "conf", workdir / "log"
    for d in (conf_dir, log_dir, cache_dir):
        d.mkdir(parents=True, exist_ok=True)
    common.write_atomic(conf_dir / "acng.conf", _CONF.format(conf_dir=conf_dir, cache_dir=cache_dir, port=port,
                                                            log_dir=log_dir, socket=workdir / "socket"))
    common.write_atomic(conf_dir / "backends_debian", MIRROR + "\n")
    common.write_atomic(conf_dir / "backends_debian_security", SECURITY_MIRROR + "\n")
    out_path = workdir / "daemon.log"
    with open(out_path, "ab") as out:
        proc = subprocess.Popen(["apt-cacher-ng", "-c", str(conf_dir), "ForeGround=1",
                                 f"BindAddress={' '.join(addresses)}", f"Port={port}"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + 10
    pending = list(addresses)
    while pending and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"apt-cacher-ng exited with {proc.returncode}: {_tail(out_path)}")
        try:  # our own listening addresses only (loopback and the labs' controller-side links)
            with socket.create_connection((pending[0], port), timeout=0.5):
                pending.pop(0)
        except OSError:
            time.sleep(0.02)
    if pending:
        common.stop_pid(proc.pid, "apt-cacher-ng")
        raise RuntimeError(f"apt-cacher-ng does not listen on {', '.join(pending)} port {port}: {_tail(out_path)}")
    return proc.pid


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-800:]
