"""What both labs need from the machine: commands, processes by PID, locks, links, files."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, TypeVar

import yaml

import provisioner
from provisioner.errors import UserError

T = TypeVar("T")


def run(cmd: list[str], *, check: bool = True, input: str | None = None, timeout: float | None = 120,
        env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a command, output captured; with `check`, a failure raises with the command's own words."""
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {(p.stderr or p.stdout).strip()[-1500:]}")
    return p


def which(tool: str) -> str | None:
    """Like shutil.which, but also looks in the sbin directories a non-login root PATH may lack."""
    for d in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":") + ["/usr/sbin", "/sbin"]:
        p = os.path.join(d, tool)
        if os.access(p, os.X_OK):
            return p
    return None


def oneline(text: str, limit: int = 800) -> str:
    """Command output as one line (a UserError's cause is one line)."""
    return " ".join(text.split())[-limit:]


def natural_key(name: str) -> list:
    """Sort key that puts lab2 before lab10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


# --- files -------------------------------------------------------------------------------------

def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Readers see the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def inventories_dir() -> Path:
    """Where the labs write their inventories: the checkout's inventories/ (where `provision deploy`
    looks without -i); an installed provision has no checkout: ./inventories/ then."""
    if provisioner.PROJECT_ROOT == provisioner.PACKAGE_DIR:
        return Path.cwd() / "inventories"
    return provisioner.PROJECT_ROOT / "inventories"


def write_inventory_file(path: Path, doc: dict, header: str) -> Path:
    """An Ansible-format YAML inventory, `header` (comment lines) first, written atomically."""
    write_atomic(Path(path), header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))
    return Path(path)


@contextlib.contextmanager
def exclusive_lock(path: Path, busy: UserError | None = None):
    """Hold an flock on `path`: wait for the holder, or raise `busy` at once if one is given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy else 0))
        except BlockingIOError:
            raise busy from None
        yield
    finally:
        os.close(fd)  # releases the lock


def read_pidfile(path: Path) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


# --- processes (ours only: by recorded PID, checked against its command line) ------------------

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
    except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
        return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def kill_pid(pid: int, sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_until(ready: Callable[[], T], seconds: float, every: float = 0.05) -> T | None:
    """Ask `ready()` every `every` seconds until its answer is true or `seconds` have passed (it is
    asked at least once): that answer, or None when time ran out. The labs' and bench's one wait loop;
    `ready` may raise to give up early."""
    deadline = time.monotonic() + seconds
    while True:
        answer = ready()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            return None
        time.sleep(every)


def wait_pid_gone(pid: int, timeout: float) -> bool:
    def gone() -> bool:
        _reap(pid)
        return not pid_alive(pid)
    return bool(wait_until(gone, timeout, every=0.02))


def stop_pid(pid: int | None, cmd_contains: str | None, timeout: float = 10.0) -> None:
    """SIGTERM one process we started (checked by command line), SIGKILL after timeout."""
    if not pid_alive(pid, cmd_contains):
        return
    kill_pid(pid, signal.SIGTERM)
    if not wait_pid_gone(pid, timeout):
        kill_pid(pid, signal.SIGKILL)
        wait_pid_gone(pid, 5)


# --- network namespaces and links --------------------------------------------------------------

def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


# --- mounts ------------------------------------------------------------------------------------

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
