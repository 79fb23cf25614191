"""The container lab's paths, name checks, state files and its global lock."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from provisioner.errors import UserError
from provisioner.labs import common

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
    missing = [t for t in ("systemd-nspawn", "mmdebstrap", "nginx", "ip", "ssh-keygen")
               if not common.which(t)]
    if missing:
        raise UserError(
            f"the container lab needs {', '.join(missing)} which {'is' if len(missing) == 1 else 'are'} not installed",
            "apt-get install systemd-container mmdebstrap nginx-light iproute2 openssh-client",
        )


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
    common.write_atomic(state_file(instance), json.dumps(state, indent=2, sort_keys=True) + "\n")


def all_instances() -> list[str]:
    """Names of instances that have a container-lab state file."""
    out = []
    if STATE_ROOT.is_dir():
        for d in sorted(STATE_ROOT.iterdir()):
            if d.is_dir() and d.name not in _RESERVED and load_state(d.name) is not None:
                out.append(d.name)
    return out


def global_lock():
    """One lab operation at a time on this machine (instances share the proxy and subnets)."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(STATE_ROOT, 0o700)
    return common.exclusive_lock(STATE_ROOT / ".lock")
