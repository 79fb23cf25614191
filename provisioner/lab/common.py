"""Shared paths, checks, process and state helpers of the container lab."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from provisioner.errors import UserError

STATE_ROOT = Path("/var/lib/provision-lab")
CACHE_ROOT = Path("/var/cache/provision")
KEY_FILE = STATE_ROOT / "id_ed25519"
HOSTKEYS_DIR = STATE_ROOT / "hostkeys"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_NAME = "provision-lab"
STATE_KIND = "provision-container-lab"

DEFAULT_INSTANCE = "lab"
_RESERVED = {"hostkeys", "aptproxy"}
_INSTANCE_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
_HOST_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def check_platform(tools: bool = True) -> None:
    """Raise UserError unless we are root on Linux (with the needed tools, if `tools`)."""
    if not sys.platform.startswith("linux"):
        raise UserError(
            f"the container lab needs Linux (systemd-nspawn, network namespaces); this is {sys.platform}",
            "run it on a Debian/Ubuntu machine, or use the Vagrant VM lab",
        )
    if os.geteuid() != 0:
        raise UserError(
            "the container lab needs root: it creates network namespaces, overlay mounts and containers",
            "run it as root, e.g. `sudo provision lab up`",
        )
    if not tools:
        return
    missing = [t for t in ("systemd-nspawn", "mmdebstrap", "apt-cacher-ng", "ip", "ssh-keygen")
               if not _which(t)]
    if missing:
        raise UserError(
            f"the container lab needs {', '.join(missing)} which {'is' if len(missing) == 1 else 'are'} not installed",
            "apt-get install systemd-container mmdebstrap apt-cacher-ng iproute2 openssh-client",
        )


def _which(tool: str) -> str | None:
    for d in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":") + ["/usr/sbin", "/sbin"]:
        p = os.path.join(d, tool)
        if os.access(p, os.X_OK):
            return p
    return None


def check_instance(instance: str) -> str:
    if not _INSTANCE_RE.match(instance or "") or instance in _RESERVED:
        raise UserError(
            f"bad lab instance name {instance!r}: use 1-8 lowercase letters/digits, starting with a letter",
            "e.g. `lab` (the default) or `t`",
        )
    return instance


def check_host_name(name: str) -> str:
    if not _HOST_RE.match(name or ""):
        raise UserError(
            f"bad lab host name {name!r}: use lowercase letters, digits and '-', starting with a letter",
            "e.g. `lab1`",
        )
    return name


def instance_dir(instance: str) -> Path:
    return STATE_ROOT / instance


def state_file(instance: str) -> Path:
    return instance_dir(instance) / "state.json"


def load_state(instance: str) -> dict | None:
    try:
        data = json.loads(state_file(instance).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if data.get("kind") == STATE_KIND else None


def save_state(instance: str, state: dict) -> None:
    write_atomic(state_file(instance), json.dumps(state, indent=2, sort_keys=True) + "\n")


def all_instances() -> list[str]:
    """Names of instances that have a container-lab state file."""
    out = []
    if STATE_ROOT.is_dir():
        for d in sorted(STATE_ROOT.iterdir()):
            if d.is_dir() and d.name not in _RESERVED and load_state(d.name) is not None:
                out.append(d.name)
    return out


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


@contextlib.contextmanager
def global_lock():
    """One lab operation at a time on this machine (instances share the proxy and subnets)."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(STATE_ROOT, 0o700)
    fd = os.open(STATE_ROOT / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def run(cmd: list[str], check: bool = True, input: str | None = None, quiet: bool = False,
        timeout: float | None = 120) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {(p.stderr or p.stdout).strip()}")
    return p


# --- processes -----------------------------------------------------------------------------

def pid_alive(pid: int | None, cmd_contains: str | None = None) -> bool:
    """True if pid runs (not a zombie) and, if given, its command line contains cmd_contains."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            _reap(pid)
            return False
        if cmd_contains is not None:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            return cmd_contains in cmdline
        return True
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def kill_pid(pid: int, sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return not pid_alive(pid)


def stop_pid(pid: int | None, cmd_contains: str | None, timeout: float = 10.0) -> None:
    """SIGTERM one process we started (checked by command line), SIGKILL after timeout."""
    if not pid_alive(pid, cmd_contains):
        return
    kill_pid(pid, signal.SIGTERM)
    if not wait_pid_gone(pid, timeout):
        kill_pid(pid, signal.SIGKILL)
        wait_pid_gone(pid, 5)


# --- mounts --------------------------------------------------------------------------------

def mounts_under(prefix: Path) -> list[str]:
    """Mount points at or below prefix, deepest first."""
    pre = str(prefix).rstrip("/")
    out = []
    for line in Path("/proc/mounts").read_text().splitlines():
        mp = line.split()[1].replace("\\040", " ")
        if mp == pre or mp.startswith(pre + "/"):
            out.append(mp)
    return sorted(set(out), key=len, reverse=True)


def fs_type_of(path: str) -> str | None:
    best, typ = "", None
    for line in Path("/proc/mounts").read_text().splitlines():
        f = line.split()
        mp = f[1]
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
            best, typ = mp, f[2]
    return typ


def umount(path: str) -> None:
    if run(["umount", path], check=False).returncode != 0:
        run(["umount", "-l", path], check=False)
