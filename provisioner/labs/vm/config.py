"""The VM lab's names, addresses, paths and state file: what every part of it agrees on."""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import Callable

from provisioner import PROJECT_ROOT
from provisioner.errors import UserError
from provisioner.labs import common

# --- names and addresses -------------------------------------------------------------------------
NETNS = "provision-vm"
STATE_DIR = Path("/var/lib/provision-vm")
STATE_FILE = STATE_DIR / "state.json"
KNOWN_HOSTS = STATE_DIR / "known_hosts"
LOCK_FILE = Path("/run/lock/provision-vm.lock")
CACHE_ROOT = Path("/var/cache/provision")
BOX_CACHE = CACHE_ROOT / "box"
VAGRANT_HOME = CACHE_ROOT / "vagrant-home"
HOSTKEY_DIR = CACHE_ROOT / "vm-hostkeys"          # stable SSH host keys per machine name
APT_CACHE_DIR = CACHE_ROOT / "vm-apt-proxy"   # our own apt proxy instance's cache
VAGRANT_DIR = PROJECT_ROOT / "vagrant"
BUILD_BOX = VAGRANT_DIR / "build-box.sh"
INVENTORY = common.inventories_dir() / "vagrant.yml"
LOG_DIR = Path("/var/log/provision-vm")            # vagrant-up.log, console/NAME.log (kept after down)

BOX_NAME = "provision/debian12"
DEFAULT_NAMES = ("vm1", "vm2")
GROUP = "vagrant"
DOMAIN_PREFIX = "provision-"          # libvirt domain = provision-vm1 (Vagrantfile default_prefix)
POOL = "provision-vm"                 # libvirt storage pool we define (and undefine)
POOL_DIR = STATE_DIR / "images"
NETWORK = "provision-vm"              # libvirt management network we define (and undefine)
BRIDGE = "pvmbr0"
MGMT_SUBNET = ipaddress.ip_network("192.168.121.0/24")   # exists only inside NETNS
MAC_PREFIX = "52:54:00:70:76:"        # vmN (N-th name) gets MAC_PREFIX%02x and MGMT .10+N
VETH_HOST, VETH_LAB = "pvm-host", "pvm-lab"
APT_PROXY_ADDR = "10.198.213.1"       # controller end of the veth; baked into the box (build-box.sh)
LAB_VETH_ADDR = "10.198.213.2"
VETH_PREFIX = 30
APT_PROXY_PORT = 3152
APT_PROXY_DIR = STATE_DIR / "aptproxy"  # its configuration, log/ and daemon.log
LIBVIRT_URI = "qemu:///system"
LIBVIRT_SOCK = Path("/run/libvirt/libvirt-sock")

Log = Callable[[str], None]


def log_to_stderr(msg: str) -> None:
    print(f"vm: {msg}", file=sys.stderr, flush=True)


def netns_prefix() -> list[str]:
    """argv prefix that runs a command inside the lab's network namespace."""
    return ["ip", "netns", "exec", NETNS]


def in_netns(cmd: list[str]) -> list[str]:
    return netns_prefix() + cmd


def machine_names() -> list[str]:
    return os.environ.get("PROVISION_VM_NAMES", " ".join(DEFAULT_NAMES)).split()


def machine_address(index: int) -> str:
    """The DHCP-reserved address of the index-th machine (0-based) inside the namespace."""
    return str(MGMT_SUBNET.network_address + 11 + index)


def load_state() -> dict:
    try:
        return json.loads(STATE_FILE.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def save_state(st: dict) -> None:
    common.write_atomic(STATE_FILE, json.dumps(st, indent=1, sort_keys=True) + "\n", 0o600)


def require_checkout() -> None:
    """The box recipe and the Vagrantfile live in the project's vagrant/ folder, not in the package."""
    if not BUILD_BOX.is_file():
        raise UserError(f"the VM lab needs the project's vagrant/ folder and {BUILD_BOX} is not there "
                        "(an installed provision does not carry it)",
                        "run `provision vm` from a clone of the project, or `vagrant up` with your own "
                        "Vagrantfile and then `provision vm inventory --no-lab`")


def lock():
    """One `provision vm` command at a time: a second one is told so at once."""
    return common.exclusive_lock(LOCK_FILE, busy=UserError(
        f"another `provision vm` command is running (lock held on {LOCK_FILE})", "wait for it to finish"))
