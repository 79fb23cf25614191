"""The Vagrant VM lab: bare Debian 12 VMs (vagrant-libvirt) inside a network namespace.

`up` builds (once per recipe) and adds the locally built box (box.py, vagrant.py), creates network
namespace NETNS with a veth to the controller and an apt proxy on the controller end of it
(network.py: the VMs' only way out, no default route exists in the namespace), starts virtlogd +
libvirtd *inside* the namespace (libvirt.py: so the VM bridge and every VM address exist only
there), runs `vagrant up` inside it and writes `inventories/vagrant.yml` from `vagrant ssh-config`.
Anything that talks to the VMs runs inside the namespace too: prefix commands with `netns_prefix()`.

`down` undoes all of it (domains, volumes, pool, networks, daemons we started, namespace, veth),
works after a crashed run, and is idempotent. Processes are stopped by recorded PID only.

On another machine (real KVM or VirtualBox) users can also run `vagrant up` in vagrant/ by hand
and then `provision vm inventory` (see vagrant/README.md).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from typing import Iterable

from provisioner.errors import EXIT_FAILED, UserError
from provisioner.labs import aptproxy, common

from . import libvirt, network, vagrant
from .box import box_path
from .config import (APT_PROXY_ADDR, APT_PROXY_PORT, BUILD_BOX, INVENTORY, LIBVIRT_SOCK, LOG_DIR, NETNS, POOL_DIR,
                     STATE_DIR, STATE_FILE, VAGRANT_DIR, VETH_HOST, Log, in_netns, load_state, lock,
                     log_to_stderr, machine_names, netns_prefix, require_checkout, save_state)

__all__ = ["up", "down", "status", "missing_packages", "netns_prefix", "APT_PACKAGES"]

# apt packages the lab needs on the controller (checked by `up`).
APT_PACKAGES = (
    "vagrant", "vagrant-libvirt", "libvirt-daemon-system", "libvirt-clients", "qemu-system-x86",
    "qemu-utils", "dnsmasq-base", "iptables", "mmdebstrap", "extlinux", "fdisk", "nginx-light",
    "iproute2", "openssh-client",
)


def missing_packages(packages: Iterable[str] = APT_PACKAGES) -> list[str]:
    packages = list(packages)
    p = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *packages],
                       capture_output=True, text=True)
    installed = {ln.split()[0].split(":")[0] for ln in p.stdout.splitlines()
                 if ln.strip().endswith(" installed")}
    return [pkg for pkg in packages if pkg not in installed]


def check_prerequisites() -> None:
    if not sys.platform.startswith("linux"):
        raise UserError(f"the VM lab needs Linux (libvirt in a network namespace); this is {sys.platform}",
                        "use Vagrant directly (vagrant/README.md), then `provision vm inventory`")
    if os.geteuid() != 0:
        raise UserError("the VM lab needs root: it creates a network namespace and runs libvirtd",
                        "run it as root, e.g. `sudo provision vm up`")
    require_checkout()
    if not shutil.which("dpkg-query"):
        raise UserError("the VM lab's setup is made for Debian/Ubuntu (apt packages)",
                        "use Vagrant directly (vagrant/README.md), then `provision vm inventory`")
    missing = missing_packages()
    if missing:
        raise UserError(f"missing apt packages: {' '.join(missing)}",
                        f"apt-get install -y {' '.join(missing)}")


def leftovers() -> list[str]:
    """What a previous (maybe crashed) run left behind."""
    found = []
    if STATE_FILE.exists():
        found.append(str(STATE_FILE))
    if network.netns_exists():
        found.append(f"netns {NETNS}")
    if common.link_exists(VETH_HOST):
        found.append(f"link {VETH_HOST}")
    found += [str(p) for p in libvirt.config_files()]
    if POOL_DIR.exists() and any(POOL_DIR.iterdir()):
        found.append(str(POOL_DIR))
    return found


def up(names: list[str] | None = None, *, quiet: bool = False, log: Log = log_to_stderr) -> dict:
    """Bring the VM lab up; returns {"inventory", "hosts", "timings"}. Idempotent."""
    check_prerequisites()
    if names:
        os.environ["PROVISION_VM_NAMES"] = " ".join(names)
    names = machine_names()
    for n in names:
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", n):
            raise UserError(f"bad VM name {n!r}", "use lowercase letters, digits and '-', e.g. vm1")
    timings: dict[str, float] = {}
    with lock():
        st = load_state()
        healthy = st.get("up") and network.netns_exists() and libvirt.ours_running(st)
        if not healthy and leftovers():
            log("cleaning up what an earlier run left behind")
            _down_locked(log)
            st = {}
        t = time.monotonic()
        vagrant.ensure_box(log)
        timings["box"] = time.monotonic() - t
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        os.chmod(STATE_DIR, 0o755)   # libvirt-qemu reads the pool's images below it
        (LOG_DIR / "console").mkdir(parents=True, exist_ok=True)
        for old in (LOG_DIR / "console").glob("*.log"):
            old.unlink()
        st.setdefault("names", names)
        save_state(st)
        if not network.netns_exists():
            network.create_netns()
        network.start_aptproxy(st, log)
        libvirt.start_daemons(st, log)
        libvirt.define_objects(names)
        st["up"] = True
        save_state(st)
        log(f"vagrant up {' '.join(names)} (driver {libvirt.vm_driver()})")
        t = time.monotonic()
        out_path = LOG_DIR / "vagrant-up.log"
        with open(out_path, "w") as out:
            p = subprocess.run(in_netns(["vagrant", "up", "--provider=libvirt"]), env=vagrant.vagrant_env(),
                               cwd=VAGRANT_DIR, stdin=subprocess.DEVNULL,
                               stdout=out if quiet else None, stderr=subprocess.STDOUT if quiet else None)
        timings["vagrant_up"] = time.monotonic() - t
        if p.returncode != 0:
            cause = vagrant.error_from_log(out_path) if quiet else ""
            raise UserError(f"vagrant up failed (exit {p.returncode}): {cause}",
                            f"see {out_path} and the VMs' consoles {LOG_DIR}/console/*.log; "
                            "`provision vm down` cleans up", EXIT_FAILED)
        t = time.monotonic()
        vagrant.write_inventory(INVENTORY, lab=True, log=log)
        hosts = vagrant.load_inventory_hosts(INVENTORY)
        vagrant.install_hostkeys(hosts)
        timings["inventory"] = time.monotonic() - t
        st["timings"] = timings
        save_state(st)
        log("up: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
        return {"inventory": INVENTORY, "hosts": hosts, "timings": timings}


def down(log: Log = log_to_stderr) -> None:
    """Destroy everything `up` made. Idempotent; also cleans up after a crashed run."""
    if os.geteuid() != 0:
        raise UserError("the VM lab needs root", "run it as root, e.g. `sudo provision vm down`")
    with lock():
        _down_locked(log)


def _down_locked(log: Log) -> None:
    t0 = time.monotonic()
    st = load_state()
    ours = libvirt.ours_running(st)
    if not ours and libvirt.config_files():
        # A crashed run left libvirt objects: a libvirtd (ours, in the namespace) removes them.
        if not (LIBVIRT_SOCK.exists() and libvirt.answers()):
            STATE_DIR.mkdir(parents=True, exist_ok=True)
            if not network.netns_exists():
                common.run(["ip", "netns", "add", NETNS])
            try:
                libvirt.start_daemons(st, log)
            except Exception as e:  # removing by hand below is the fallback
                log(f"could not start libvirtd to clean up: {e}")
            ours = libvirt.ours_running(st)
    if ours:
        libvirt.power_off()
        if (STATE_DIR / "dotvagrant").exists() and shutil.which("vagrant"):
            p = common.run(in_netns(["vagrant", "destroy", "-f"]), check=False, env=vagrant.vagrant_env(),
                           cwd=VAGRANT_DIR, timeout=300)
            if p.returncode != 0:
                log(f"vagrant destroy: {(p.stderr or p.stdout).strip()[-300:]} (removing with virsh)")
        libvirt.remove_objects(log)
    libvirt.stop_daemons(st)
    common.stop_pid(st.get("aptproxy_pid"), aptproxy.PROCESS, timeout=5)
    network.delete_netns()
    libvirt.remove_leftover_files(st, log)
    if STATE_DIR.exists():
        shutil.rmtree(STATE_DIR, ignore_errors=True)
    INVENTORY.unlink(missing_ok=True)
    log(f"down in {time.monotonic() - t0:.0f} s")


def status() -> dict:
    st = load_state()

    def ours(exe: str) -> int | None:
        pid = st.get(f"{exe}_pid")
        return pid if common.pid_alive(pid, exe) else None

    info = {
        "netns": NETNS if network.netns_exists() else None,
        "libvirtd_pid": ours("libvirtd"),
        "virtlogd_pid": ours("virtlogd"),
        "aptproxy_pid": st.get("aptproxy_pid") if common.pid_alive(st.get("aptproxy_pid"), aptproxy.PROCESS) else None,
        "apt_proxy": f"http://{APT_PROXY_ADDR}:{APT_PROXY_PORT}",
        "box": str(box_path()) if BUILD_BOX.is_file() and box_path().exists() else None,
        "domains": libvirt.domains() if ours("libvirtd") else {},
        "inventory": str(INVENTORY) if INVENTORY.exists() else None,
        "leftovers": [],
    }
    info["up"] = bool(st.get("up") and info["libvirtd_pid"] and info["netns"])
    if not info["up"]:
        info["leftovers"] = leftovers()
    return info
