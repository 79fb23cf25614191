"""System users."""

from __future__ import annotations

from dataclasses import dataclass

from ..remote.quoting import Raw, cmd
from .base import Decision, Resource, SystemFacts


@dataclass
class SystemUser(Resource):
    """A system user with its own group and no login shell, for running an app."""

    name: str
    home: str

    def label(self) -> str:
        return f"user {self.name}"

    def probe(self, want_diff: bool = False) -> str:
        return cmd("getent", "passwd", self.name, Raw("|"), "cut", "-d:", "-f3,6,7")

    def decide(self, fact: str, system: SystemFacts, want_diff: bool = False) -> Decision:
        if fact:
            return self.ok(f"exists (uid {fact.split(':')[0]})")
        return self.change("does not exist", cmd("useradd", "--system", "--user-group", "--home-dir", self.home,
                                                 "--no-create-home", "--shell", "/usr/sbin/nologin", self.name))
