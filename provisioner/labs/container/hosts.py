"""One lab host: overlay over the shared rootfs, stable host keys, an nspawn launcher, readiness.

Without systemd as PID 1 on the controller, each host runs as
  launcher (bash, own cgroup) -> systemd-nspawn --boot --register=no --keep-unit
      --network-namespace-path=/run/netns/NS -D overlay  (looped on exit 133 = reboot)
and is stopped with SIGTERM to the launcher (forwarded to nspawn: clean poweroff).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from provisioner.labs import common

from . import network, state
from .state import CGROUP_NAME, CGROUP_ROOT, HOSTKEYS_DIR, KEY_FILE, STATE_ROOT

NSPAWN_RUN = Path("/run/systemd/nspawn")
GLOBAL_STATE = STATE_ROOT / "global.json"
READY_TIMEOUT = 90.0

_LAUNCHER = """#!/bin/bash
# provision container lab: launcher of one host (started detached; see provisioner/labs/container/hosts.py)
set -u
echo "launcher: start $(date +%T.%N)"
for cg in {cgroups}; do mkdir -p "$cg" && echo $$ > "$cg/cgroup.procs" || exit 97; done
{env}
stop=0; child=
trap 'stop=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT HUP
while :; do
  echo "launcher: nspawn $(date +%T.%N)"
  {nspawn} &
  child=$!
  echo "$child" > {pidfile}
  # wait on the explicit PID: a bare `wait` would also wait for the container's processes
  while :; do
    wait "$child"; rc=$?
    kill -0 "$child" 2>/dev/null || break
  done
  if [ "$stop" = 0 ] && [ "$rc" = 133 ]; then echo "launcher: reboot, starting again"; continue; fi
  break
done
echo "launcher: nspawn exited with $rc"
exit "$rc"
"""


# --- cgroups -------------------------------------------------------------------------------

def cgroup_bases() -> list[Path]:
    """Hierarchies to put each launcher in: hybrid -> name=systemd + unified; pure v2 -> root."""
    if (CGROUP_ROOT / "unified" / "cgroup.procs").exists() or (CGROUP_ROOT / "systemd" / "cgroup.procs").exists():
        return [p for p in (CGROUP_ROOT / "systemd", CGROUP_ROOT / "unified") if (p / "cgroup.procs").exists()]
    return [CGROUP_ROOT]


def unified_available() -> bool:
    return (CGROUP_ROOT / "unified" / "cgroup.procs").exists() or (CGROUP_ROOT / "cgroup.controllers").exists()


def cgroup_dirs(instance: str, host: str | None = None) -> list[Path]:
    return [b / CGROUP_NAME / instance / host if host else b / CGROUP_NAME / instance for b in cgroup_bases()]


def cgroup_pids(d: Path) -> list[int]:
    pids = []
    if d.is_dir():
        for root, _dirs, files in os.walk(d):
            if "cgroup.procs" in files:
                try:
                    pids += [int(x) for x in Path(root, "cgroup.procs").read_text().split()]
                except (OSError, ValueError):
                    pass
    return pids


def remove_cgroup_tree(d: Path, seconds: float = 60) -> None:
    """Kill what is left inside (our launcher/nspawn/container PIDs), then rmdir depth-first. A cgroup
    whose last processes are still exiting refuses rmdir with EBUSY (a 50-host lab at load 60+, its
    hosts in the middle of dpkg runs): kill and try again until `seconds` have passed."""
    def removed() -> bool:
        if not d.is_dir():
            return True
        pids = cgroup_pids(d)
        for pid in pids:
            common.kill_pid(pid, signal.SIGKILL)
        for pid in pids:
            common.wait_pid_gone(pid, 0.5)
        try:
            _rmdir_tree(d)
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            return False
        return not d.is_dir()
    if not common.wait_until(removed, seconds, every=0.2):
        _rmdir_tree(d)   # the last try: its EBUSY is the error


def _rmdir_tree(d: Path) -> None:
    """Remove an emptied cgroup and the cgroups under it, the deepest first."""
    for root, dirs, _files in os.walk(d, topdown=False):
        for sub in dirs:
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(os.path.join(root, sub))
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(d)


def remove_empty_cgroup_parents(instance: str) -> None:
    for b in cgroup_bases():
        for d in (b / CGROUP_NAME / instance, b / CGROUP_NAME):
            try:
                if d.is_dir() and not [x for x in d.iterdir() if x.is_dir()]:
                    os.rmdir(d)
            except OSError:
                pass


# --- the /run/systemd/nspawn tmpfs (shared by all instances) --------------------------------

def ensure_nspawn_tmpfs() -> None:
    NSPAWN_RUN.mkdir(parents=True, exist_ok=True)
    if str(NSPAWN_RUN) in common.mounts_under(NSPAWN_RUN) or common.fs_type_of(str(NSPAWN_RUN)) == "tmpfs":
        return
    common.run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", "provision-lab", str(NSPAWN_RUN)])
    common.write_atomic(GLOBAL_STATE, json.dumps({"nspawn_tmpfs": str(NSPAWN_RUN)}) + "\n")


def release_nspawn_tmpfs() -> None:
    """Unmount the tmpfs if we mounted it (called when no lab instance is left)."""
    try:
        st = json.loads(GLOBAL_STATE.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return
    if st.get("nspawn_tmpfs") and str(NSPAWN_RUN) in common.mounts_under(NSPAWN_RUN):
        for mp in common.mounts_under(NSPAWN_RUN):
            common.umount(mp)
    GLOBAL_STATE.unlink(missing_ok=True)


# --- host keys -----------------------------------------------------------------------------

def ensure_hostkeys(name: str) -> Path:
    """Host keys made once per host name and kept, so re-creating a host keeps its identity."""
    d = HOSTKEYS_DIR / name
    if (d / "etc/ssh/ssh_host_ed25519_key").exists():
        return d
    tmp = HOSTKEYS_DIR / f".{name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "etc/ssh").mkdir(parents=True)
    for t in ("ed25519", "ecdsa", "rsa"):
        common.run(["ssh-keygen", "-q", "-t", t, "-N", "", "-C", f"root@{name}",
                    "-f", str(tmp / f"etc/ssh/ssh_host_{t}_key")])
    shutil.rmtree(d, ignore_errors=True)
    os.replace(tmp, d)
    return d


def hostkey_lines(name: str, address: str) -> list[str]:
    d = ensure_hostkeys(name) / "etc/ssh"
    out = []
    for pub in sorted(d.glob("ssh_host_*_key.pub")):
        kt, key = pub.read_text().split()[:2]
        out.append(f"{address} {kt} {key}")
    return out


# --- create / start / stop -----------------------------------------------------------------

def host_dir(instance: str, name: str) -> Path:
    return state.instance_dir(instance) / "hosts" / name


def prepare(instance: str, name: str, address: str, subnet: str, rootfs: Path) -> dict:
    """Overlay, files, netns; returns the host's state record (nothing is running yet)."""
    hd = host_dir(instance, name)
    rec = {"name": name, "address": address, "dir": str(hd), "merged": str(hd / "root"),
           "netns": network.netns_name(instance, name), "veth": network.veth_name(instance, address),
           "cgroups": [str(c) for c in cgroup_dirs(instance, name)], "launcher_pid": None,
           "launcher": str(hd / "launch.sh"), "pidfile": str(hd / "nspawn.pid"), "log": str(hd / "console.log")}
    keys = ensure_hostkeys(name)
    for sub in ("upper", "work", "root"):
        (hd / sub).mkdir(parents=True, exist_ok=True)
    merged = hd / "root"
    common.run(["mount", "-t", "overlay", f"lab-{instance}-{name}", "-o",
                f"lowerdir={rootfs},upperdir={hd / 'upper'},workdir={hd / 'work'}", str(merged)])
    etc = merged / "etc"
    (etc / "hostname").write_text(name + "\n")
    (etc / "hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n{address}\t{name}.lab {name}\n"
        f"{network.PROXY_ADDR}\tapt-proxy\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
    (etc / "machine-id").write_text("")
    for f in (keys / "etc/ssh").iterdir():
        dst = etc / "ssh" / f.name
        shutil.copyfile(f, dst)
        os.chmod(dst, 0o644 if f.name.endswith(".pub") else 0o600)
    network.create_host_net(instance, name, address, subnet)
    return rec


def launch(rec: dict) -> None:
    """Start the detached launcher; records its PID in rec."""
    nspawn = " ".join([
        "systemd-nspawn",
        "--boot", "--quiet", "--register=no", "--keep-unit",
        f"--network-namespace-path=/run/netns/{rec['netns']}",
        # The host's own firewall (nftables) needs it; it reaches only the host's own netns.
        "--capability=CAP_NET_ADMIN",
        f"--directory={rec['merged']}", f"--machine={rec['name']}",
        "--link-journal=no", "--resolv-conf=off", "--timezone=off", "--console=read-only",
    ])
    env = "export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1" if unified_available() else ":"
    script = _LAUNCHER.format(cgroups=" ".join(rec["cgroups"]), env=env, nspawn=nspawn, pidfile=rec["pidfile"])
    Path(rec["launcher"]).write_text(script)
    os.chmod(rec["launcher"], 0o755)
    Path(rec["pidfile"]).unlink(missing_ok=True)
    with open(rec["log"], "ab") as log:
        p = subprocess.Popen(["/bin/bash", rec["launcher"]], stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    rec["launcher_pid"] = p.pid
    _launchers[p.pid] = p  # kept: how it ended is evidence when a host dies while booting


_launchers: dict[int, subprocess.Popen] = {}


def _how_it_ended(pid: int) -> str:
    """A launcher of this process that ended: its exit status (a signal is negative)."""
    p = _launchers.get(pid)
    return f" (launcher pid {pid} ended with {p.poll()})" if p is not None else f" (launcher pid {pid})"


def nspawn_pid(rec: dict) -> int | None:
    try:
        pid = int(Path(rec["pidfile"]).read_text().strip())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if common.pid_alive(pid, rec["merged"]) else None


def is_running(rec: dict) -> bool:
    return common.pid_alive(rec.get("launcher_pid"), rec.get("launcher", "\0")) and nspawn_pid(rec) is not None


def log_tail(rec: dict, n: int = 15) -> str:
    try:
        lines = Path(rec["log"]).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


class ExitedWhileBooting(RuntimeError):
    """A host's launcher was seen dead before the host answered."""


def boot(rec: dict) -> float:
    """Wait for a launched host (wait_ready). A launcher seen dead while booting, before it logged
    anything, happened in a few CI runs under load (cause not found): the host is launched once more,
    and the first failure printed on stderr. Returns seconds waited."""
    try:
        return wait_ready(rec)
    except ExitedWhileBooting as e:
        print(f"{e}\nlaunching {rec['name']} once more", file=sys.stderr)
        common.stop_pid(nspawn_pid(rec), rec["merged"])  # an nspawn its launcher left behind
        launch(rec)
        return wait_ready(rec)


def wait_ready(rec: dict, timeout: float = READY_TIMEOUT) -> float:
    """Wait until sshd answers and `systemctl is-system-running` says running/degraded (via SSH as
    deploy with the lab key and the host's known key). Returns seconds waited."""
    import paramiko

    t0 = time.monotonic()
    deadline = t0 + timeout
    addr = rec["address"]

    def alive_or_raise():
        if not common.pid_alive(rec["launcher_pid"], rec["launcher"]):
            raise ExitedWhileBooting(f"lab host {rec['name']} exited while booting"
                                     f"{_how_it_ended(rec['launcher_pid'])}:\n{log_tail(rec)}")

    def sshd_answers() -> bool:
        alive_or_raise()
        try:
            with socket.create_connection((addr, 22), timeout=0.5) as s:
                s.settimeout(2)
                return s.recv(8).startswith(b"SSH-")
        except OSError:
            return False
    if not common.wait_until(sshd_answers, timeout, every=0.05):
        raise RuntimeError(f"lab host {rec['name']} ({addr}): sshd not up after {timeout:.0f} s:\n{log_tail(rec)}")

    state = ""

    def booted() -> bool:
        nonlocal state
        alive_or_raise()
        client = paramiko.SSHClient()
        for line in hostkey_lines(rec["name"], addr):
            h, kt, key = line.split()
            client.get_host_keys().add(h, kt, paramiko.PKey.from_type_string(kt, base64.b64decode(key)))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(addr, username="deploy", key_filename=str(KEY_FILE), look_for_keys=False,
                           allow_agent=False, timeout=5, banner_timeout=5, auth_timeout=5)
            left = max(1, int(deadline - time.monotonic()))
            _, out, _ = client.exec_command(f"timeout {left} systemctl is-system-running --wait", timeout=left + 2)
            state = out.read().decode().strip()
            return state in ("running", "degraded")
        except (paramiko.SSHException, OSError, EOFError) as e:
            state = f"ssh: {e}"
            return False
        finally:
            client.close()
    if common.wait_until(booted, deadline - time.monotonic(), every=0.1):
        return time.monotonic() - t0
    raise RuntimeError(f"lab host {rec['name']} ({addr}) did not finish booting in {timeout:.0f} s "
                       f"(last: {state}):\n{log_tail(rec)}")


def destroy(rec: dict, timeout: float = 15.0) -> None:
    """Stop and remove everything of one host; safe on partial records and repeated calls."""
    lpid = rec.get("launcher_pid")
    if common.pid_alive(lpid, rec.get("launcher", "\0")):
        common.kill_pid(lpid, signal.SIGTERM)  # trap forwards SIGTERM to nspawn: clean poweroff
        if not common.wait_pid_gone(lpid, timeout):
            npid = nspawn_pid(rec)
            if npid:
                common.kill_pid(npid, signal.SIGKILL)
            common.kill_pid(lpid, signal.SIGKILL)
            common.wait_pid_gone(lpid, 5)
    else:
        npid = nspawn_pid(rec)
        if npid:  # launcher gone but nspawn left (should not happen): stop it directly
            common.stop_pid(npid, rec["merged"], timeout)
    for cg in rec.get("cgroups", []):
        remove_cgroup_tree(Path(cg))
    if rec.get("dir"):
        for mp in common.mounts_under(Path(rec["dir"])):
            common.umount(mp)
    network.delete_host_net(rec.get("netns"), rec.get("veth"))
    if rec.get("dir") and not common.mounts_under(Path(rec["dir"])):
        shutil.rmtree(rec["dir"], ignore_errors=True)
