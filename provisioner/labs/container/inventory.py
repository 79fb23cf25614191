"""The Ansible-format YAML inventory of lab hosts (what `provision deploy -i` reads)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from provisioner.labs import common


def inventory_dict(hosts: Iterable, user: str = "deploy", host_vars: dict | None = None,
                   group_vars: dict | None = None, group: str = "lab") -> dict:
    """all.hosts.NAME = {ansible_host, ansible_user, ansible_ssh_private_key_file, **host_vars[NAME]};
    group `group` lists every host; group_vars go to all.vars (they apply to every host)."""
    host_vars = host_vars or {}
    entries = {}
    for h in hosts:
        e = {"ansible_host": h.address, "ansible_user": user, "ansible_ssh_private_key_file": str(h.key_file)}
        e.update(host_vars.get(h.name, {}))
        entries[h.name] = e
    inv: dict = {"all": {"hosts": entries}}
    if group_vars:
        inv["all"]["vars"] = dict(group_vars)
    inv["all"]["children"] = {group: {"hosts": {name: {} for name in entries}}}
    return inv


def write_inventory(hosts: Iterable, path: str | os.PathLike, user: str = "deploy",
                    host_vars: dict | None = None, group_vars: dict | None = None,
                    group: str = "lab") -> Path:
    """Write the inventory for `hosts` (LabHost objects) to `path` (atomically); returns the path."""
    return common.write_inventory_file(Path(path), inventory_dict(hosts, user, host_vars, group_vars, group),
                                       "# written by provision's container lab\n")
