"""The container lab's one apt proxy, shared by every instance: started, reused, stopped by PID.

It listens on 127.0.0.1 (rootfs builds) and on the proxy address every instance's bridge holds,
and caches .debs under /var/cache/provision/apt-proxy so repeat installs are local.
"""

from __future__ import annotations

import json
import socket

from provisioner.labs import aptproxy, common

from .state import CACHE_ROOT, STATE_ROOT

PORT = 3149  # not 3142: a distro apt-cacher-ng on the controller may hold that one
DIR = STATE_ROOT / "aptproxy"
STATE = DIR / "state.json"
LOG_DIR = DIR / "log"
CACHE_DIR = CACHE_ROOT / "apt-proxy"


def url_for(address: str) -> str:
    return aptproxy.url_for(address, PORT)


def _load() -> dict:
    try:
        return json.loads(STATE.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _healthy(st: dict, addresses=("127.0.0.1",)) -> bool:
    """Our daemon runs and accepts connections on each of `addresses` (all local)."""
    if not common.pid_alive(st.get("pid"), aptproxy.PROCESS):
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

    Reuses a healthy daemon started with today's configuration whose listen set already covers
    `addresses`; otherwise (re)starts it listening on those plus `also` (the caller holds the global
    lab lock).
    """
    st = _load()
    need = {"127.0.0.1", *addresses}
    if need <= set(st.get("bind", [])) and st.get("conf") == aptproxy.CONF_DIGEST and _healthy(st, sorted(need)):
        return st["pid"]
    want = sorted(need | set(also))
    stop()
    pid = aptproxy.start(DIR, CACHE_DIR, PORT, want)
    common.write_atomic(STATE, json.dumps({"pid": pid, "bind": want, "port": PORT, "conf": aptproxy.CONF_DIGEST}) + "\n")
    return pid


def stop() -> None:
    """Stop the daemon we started (by its recorded PID); idempotent. A lab brought up by an older
    provision recorded its apt-cacher-ng there: that one is stopped too, so the port is free."""
    pid = _load().get("pid")
    if pid:
        common.stop_pid(pid, aptproxy.PROCESS, timeout=5)
        common.stop_pid(pid, "apt-cacher-ng", timeout=5)
    STATE.unlink(missing_ok=True)
