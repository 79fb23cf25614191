"""What every lab of test hosts offers, whatever makes its hosts (systemd-nspawn containers in
labs/container/, Vagrant VMs in labs/vm/): one contract, as pyinfra's connectors share one, so a
command, a test or a bench can take either lab.

A lab is made with what it needs to know (how many hosts, which release, where its inventory goes);
then `up()` starts its hosts (idempotent) and returns them, `status()` lists the hosts it knows and
whether each runs, `inventory()` is the Ansible-format inventory file that names them, and `down()`
removes everything `up` made (idempotent, also after a crashed run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class LabHost:
    """A host a lab made: where it answers and how to log in to it."""

    name: str
    address: str
    user: str = "deploy"
    key_file: str = ""
    instance: str = "lab"
    known_hosts: str = ""  # an ssh known_hosts file with this host's (stable) keys
    release: str = "bookworm"


class Lab(Protocol):
    def up(self) -> list[LabHost]: ...

    def status(self) -> list[tuple[LabHost, bool]]: ...

    def inventory(self) -> Path: ...

    def down(self) -> None: ...
