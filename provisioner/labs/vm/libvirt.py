"""libvirt for the VM lab: our own libvirtd and virtlogd inside the lab's namespace (so the VM
bridge and every VM address exist only there), the pool, the management network, and their removal."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from provisioner.errors import UserError
from provisioner.labs import common

from .config import (BRIDGE, DOMAIN_PREFIX, LIBVIRT_SOCK, LIBVIRT_URI, MAC_PREFIX, MGMT_SUBNET, NETNS,
                     NETWORK, POOL, POOL_DIR, STATE_DIR, Log, in_netns, machine_address, save_state)

DAEMONS = ("virtlogd", "libvirtd")   # started in this order; their PIDs are kept as state[f"{exe}_pid"]


def virsh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return common.run(["virsh", "-q", "-c", LIBVIRT_URI, *args], check=check, timeout=timeout)


def answers() -> bool:
    return virsh("uri", check=False, timeout=20).returncode == 0


def ours_running(st: dict) -> bool:
    return common.pid_alive(st.get("libvirtd_pid"), "libvirtd")


def kvm_usable() -> bool:
    """Real hardware virtualization: /dev/kvm plus vmx/svm, and not a nested 'PVM' /dev/kvm."""
    if not Path("/dev/kvm").exists() or Path("/sys/module/kvm_pvm").exists():
        return False
    try:
        return bool(re.search(r"^flags\s*:.*\b(vmx|svm)\b", Path("/proc/cpuinfo").read_text(), re.M))
    except OSError:
        return False


def vm_driver() -> str:
    d = os.environ.get("PROVISION_VM_DRIVER", "auto")
    if d in ("", "auto"):
        return "kvm" if kvm_usable() else "qemu"
    if d not in ("kvm", "qemu"):
        raise UserError(f"PROVISION_VM_DRIVER must be kvm, qemu or auto, not {d!r}",
                        "unset it (auto) or set it to qemu")
    return d


def _fix_dev_kvm() -> None:
    # Without this libvirtd re-probes qemu on every call (~20 s each).
    if Path("/dev/kvm").exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError, RuntimeError):
            common.run(["chgrp", "kvm", "/dev/kvm"])
            os.chmod("/dev/kvm", 0o660)


def start_daemons(st: dict, log: Log) -> None:
    """virtlogd and libvirtd inside the namespace, unless ours already answer; another libvirtd
    on this machine is an error (the lab's objects would land in it)."""
    if ours_running(st) and answers():
        return
    if LIBVIRT_SOCK.exists() and answers():
        raise UserError("a libvirtd that the VM lab did not start is running on this machine",
                        "stop it first (the lab runs its own libvirtd inside network namespace "
                        f"{NETNS}), or use Vagrant directly: vagrant/README.md")
    _fix_dev_kvm()
    if not Path("/run/libvirt").exists():
        st["created_run_libvirt"] = True
    for exe in DAEMONS:
        key, pidfile = f"{exe}_pid", STATE_DIR / f"{exe}.pid"
        if common.pid_alive(st.get(key), exe):
            continue
        pidfile.unlink(missing_ok=True)
        common.run(in_netns([exe, "-d", "-p", str(pidfile)]), timeout=60)
        pid = common.wait_until(lambda: common.read_pidfile(pidfile), 10)
        if not common.pid_alive(pid, exe):
            raise RuntimeError(f"{exe} did not start (pid file {pidfile})")
        st[key] = pid
        save_state(st)
    if not common.wait_until(answers, 60, every=0.2):
        raise RuntimeError("libvirtd did not answer within 60 s")
    log(f"libvirtd (pid {st['libvirtd_pid']}) and virtlogd (pid {st['virtlogd_pid']}) in netns {NETNS}")


def stop_daemons(st: dict) -> None:
    """The daemons we started, by PID, libvirtd first."""
    for exe, timeout in (("libvirtd", 15), ("virtlogd", 10)):
        common.stop_pid(st.get(f"{exe}_pid"), exe, timeout=timeout)


def network_xml(names: list[str]) -> str:
    gw = MGMT_SUBNET.network_address + 1
    hosts = "\n".join(
        f"      <host mac='{MAC_PREFIX}{i + 1:02x}' name='{n}' ip='{machine_address(i)}'/>"
        for i, n in enumerate(names))
    return f"""<network>
  <name>{NETWORK}</name>
  <forward mode='nat'/>
  <bridge name='{BRIDGE}' stp='off' delay='0'/>
  <ip address='{gw}' netmask='{MGMT_SUBNET.netmask}'>
    <dhcp>
      <range start='{MGMT_SUBNET.network_address + 100}' end='{MGMT_SUBNET.network_address + 254}'/>
{hosts}
    </dhcp>
  </ip>
</network>
"""


def define_objects(names: list[str]) -> None:
    """Our storage pool and management network, defined and started (idempotent)."""
    if virsh("pool-info", POOL, check=False).returncode != 0:
        POOL_DIR.mkdir(parents=True, exist_ok=True)
        virsh("pool-define-as", POOL, "dir", "--target", str(POOL_DIR))
    if "running" not in virsh("pool-info", POOL).stdout.split("State:")[-1].split("\n")[0]:
        virsh("pool-start", POOL)
    if virsh("net-info", NETWORK, check=False).returncode != 0:
        xml = STATE_DIR / "network.xml"
        common.write_atomic(xml, network_xml(names))
        virsh("net-define", str(xml))
    if "Active:         yes" not in virsh("net-info", NETWORK).stdout:
        virsh("net-start", NETWORK)


def domains() -> dict[str, str]:
    """Our machines (by name, without the domain prefix) and their state."""
    found = {}
    for ln in virsh("list", "--all", check=False).stdout.splitlines():
        parts = ln.split(None, 2)
        if len(parts) == 3 and parts[1].startswith(DOMAIN_PREFIX):
            found[parts[1][len(DOMAIN_PREFIX):]] = parts[2].strip()
    return found


def power_off() -> None:
    """Hard power-off of our running domains (then `vagrant destroy` has nothing to wait for)."""
    for d in virsh("list", "--name", check=False).stdout.split():
        if d.startswith(DOMAIN_PREFIX):
            virsh("destroy", d, check=False)


def remove_objects(log: Log) -> None:
    """Remove our domains, pool (with every volume: VM disks and the box image) and network;
    stop the other networks this libvirtd started (they live in our namespace)."""
    for d in virsh("list", "--all", "--name", check=False).stdout.split():
        if d.startswith(DOMAIN_PREFIX):
            virsh("destroy", d, check=False)
            virsh("undefine", d, "--remove-all-storage", "--managed-save", "--snapshots-metadata", check=False)
            log(f"removed domain {d}")
    if virsh("pool-info", POOL, check=False).returncode == 0:
        virsh("pool-refresh", POOL, check=False)
        for vol in virsh("vol-list", POOL, check=False).stdout.splitlines():
            if vol.split():
                virsh("vol-delete", "--pool", POOL, vol.split()[0], check=False)
        virsh("pool-destroy", POOL, check=False)
        virsh("pool-undefine", POOL, check=False)
    for net in virsh("net-list", "--all", "--name", check=False).stdout.split():
        virsh("net-destroy", net, check=False)
        if net == NETWORK:
            virsh("net-undefine", net, check=False)


def config_files() -> list[Path]:
    """libvirt's files for our objects: present after `down` only if libvirtd could not remove them."""
    etc = Path("/etc/libvirt")
    return [*sorted((etc / "qemu").glob(f"{DOMAIN_PREFIX}*.xml")),
            *[p for p in (etc / "storage" / f"{POOL}.xml", etc / "qemu" / "networks" / f"{NETWORK}.xml")
              if p.exists()]]


def remove_leftover_files(st: dict, log: Log) -> None:
    """What libvirt leaves behind for our network and domains (stale configs, dnsmasq's files,
    qemu logs) and /run/libvirt if the lab made it."""
    for f in config_files():
        f.unlink(missing_ok=True)
        log(f"removed stale {f}")
    dnsmasq = Path("/var/lib/libvirt/dnsmasq")
    for p in (dnsmasq / f"{NETWORK}.conf", dnsmasq / f"{BRIDGE}.status", dnsmasq / f"{NETWORK}.hostsfile",
              Path("/run/libvirt/network") / f"{NETWORK}.pid",
              *Path("/var/log/libvirt/qemu").glob(f"{DOMAIN_PREFIX}*.log")):
        p.unlink(missing_ok=True)
    shutil.rmtree(Path("/run/libvirt/network") / NETWORK, ignore_errors=True)
    if st.get("created_run_libvirt") and not (LIBVIRT_SOCK.exists() and answers()):
        shutil.rmtree("/run/libvirt", ignore_errors=True)
