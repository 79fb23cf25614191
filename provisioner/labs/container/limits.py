"""Kernel limits the lab outgrows: inotify instances, raised for as long as a lab runs.

Every container's systemd, journald, logind, dbus and udev each hold inotify instances, all
counted against root (no user namespaces), and Debian's default of 128 per user ran out at about
25 hosts: PID 1 exited with "Failed to allocate manager object: Too many open files". The value
found before the first raise is kept in limits.json and put back by `restore()` when no lab
instance is left, unless someone else changed it meanwhile.
"""

from __future__ import annotations

import json
from pathlib import Path

from provisioner.labs import common

from .state import STATE_ROOT

SAVED = STATE_ROOT / "limits.json"
SYSCTL = Path("/proc/sys/fs/inotify")
# Measured on 50 booted Debian 12 hosts: 7 instances each (10 at most); more room for apt/dpkg/nginx.
INSTANCES_PER_HOST = 24
WATCHES_PER_HOST = 1024
FLOOR = {"max_user_instances": 256, "max_user_watches": 65536}


def _read(name: str) -> int:
    return int((SYSCTL / name).read_text())


def wanted(hosts: int) -> dict[str, int]:
    """The limits `hosts` running lab hosts (of all instances) need, on top of the machine's own use."""
    return {"max_user_instances": FLOOR["max_user_instances"] + INSTANCES_PER_HOST * hosts,
            "max_user_watches": FLOOR["max_user_watches"] + WATCHES_PER_HOST * hosts}


def ensure(hosts: int) -> dict[str, int]:
    """Raise (never lower) the inotify limits for `hosts` lab hosts; returns what was raised, old -> new."""
    try:
        saved = json.loads(SAVED.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        saved = {}
    raised = {}
    for name, need in wanted(hosts).items():
        have = _read(name)
        if have < need:
            saved.setdefault(name, {"original": have})
            (SYSCTL / name).write_text(f"{need}\n")
            saved[name]["set"] = need
            raised[name] = (have, need)
    if raised:
        common.write_atomic(SAVED, json.dumps(saved, indent=2) + "\n")
    return raised


def restore() -> None:
    """Put back the values found before the lab raised them (called when no instance is left)."""
    try:
        saved = json.loads(SAVED.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return
    for name, rec in saved.items():
        if _read(name) == rec.get("set"):
            (SYSCTL / name).write_text(f"{rec['original']}\n")
    SAVED.unlink(missing_ok=True)
