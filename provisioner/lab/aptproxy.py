"""apt-cacher-ng as the lab hosts' only way out: a daemon we start and track by PID.

It listens on 127.0.0.1 (rootfs builds) and on the controller-side bridge address of every lab
instance, forwards only to Debian's mirror (ForceManaged, no CONNECT) and caches .debs under
/var/cache/provision/apt-cacher-ng so repeat installs are local.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

from . import common
from .common import CACHE_ROOT, STATE_ROOT

PORT = 3149  # not 3142: a distro apt-cacher-ng started by its package may hold that one
DIR = STATE_ROOT / "aptproxy"
CONF_DIR = DIR / "conf"
STATE = DIR / "state.json"
LOG_DIR = DIR / "log"
CACHE_DIR = CACHE_ROOT / "apt-cacher-ng"
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
"""


def write_config(conf_dir, cache_dir, log_dir, socket, port: int) -> None:
    """An apt-cacher-ng configuration that forwards only to Debian's mirrors (deb.debian.org)."""
    for d in (conf_dir, log_dir, cache_dir):
        d.mkdir(parents=True, exist_ok=True)
    common.write_atomic(conf_dir / "acng.conf", _CONF.format(conf_dir=conf_dir, cache_dir=cache_dir,
                                                            log_dir=log_dir, socket=socket, port=port))
    common.write_atomic(conf_dir / "backends_debian", MIRROR + "\n")
    common.write_atomic(conf_dir / "backends_debian_security", SECURITY_MIRROR + "\n")


def url_for(address: str) -> str:
    return f"http://{address}:{PORT}/"


def _load() -> dict:
    try:
        return json.loads(STATE.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _healthy(st: dict, addresses=("127.0.0.1",)) -> bool:
    """Our daemon runs and accepts connections on each of `addresses` (all local)."""
    if not common.pid_alive(st.get("pid"), "apt-cacher-ng"):
        return False
    for addr in addresses:
        try:
            with socket.create_connection((addr, PORT), timeout=1):
                pass
        except OSError:
            return False
    return True


def ensure(addresses: list[str], also: list[str] = ()) -> int:
    """Make sure the proxy runs and listens on 127.0.0.1 plus `addresses`; returns its PID.

    Reuses a healthy daemon whose listen set already covers `addresses`; otherwise (re)starts it
    listening on those plus `also` (the caller holds the global lab lock).
    """
    st = _load()
    need = {"127.0.0.1", *addresses}
    if need <= set(st.get("bind", [])) and _healthy(st, sorted(need)):
        return st["pid"]
    want = sorted(need | set(also))
    stop()
    write_config(CONF_DIR, CACHE_DIR, LOG_DIR, DIR / "socket", PORT)
    cmd = ["apt-cacher-ng", "-c", str(CONF_DIR), "ForeGround=1", f"BindAddress={' '.join(want)}",
           f"Port={PORT}"]
    with open(DIR / "daemon.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + 10
    pending = list(want)
    while pending and time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (DIR / "daemon.log").read_text(errors="replace")[-800:]
            raise RuntimeError(f"apt-cacher-ng exited with {proc.returncode}: {tail}")
        try:  # our own listening addresses only (loopback and the lab bridges)
            with socket.create_connection((pending[0], PORT), timeout=0.5):
                pending.pop(0)
        except OSError:
            time.sleep(0.02)
    if pending:
        common.stop_pid(proc.pid, "apt-cacher-ng")
        tail = (DIR / "daemon.log").read_text(errors="replace")[-800:]
        raise RuntimeError(f"apt-cacher-ng does not listen on {', '.join(pending)} port {PORT}: {tail}")
    common.write_atomic(STATE, json.dumps({"pid": proc.pid, "bind": want, "port": PORT}) + "\n")
    return proc.pid


def stop() -> None:
    """Stop the daemon we started (by its recorded PID); idempotent."""
    st = _load()
    pid = st.get("pid")
    if pid:
        common.stop_pid(pid, "apt-cacher-ng", timeout=5)
    try:
        os.unlink(STATE)
    except FileNotFoundError:
        pass
