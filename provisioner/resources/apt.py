"""Debian packages."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from ..remote.quoting import cmd
from ..remote.scripts import fragment
from .base import APT_STAMP, RUN_DIR, Decision, Resource, SystemFacts


@dataclass
class Packages(Resource):
    """Debian packages that must be installed (any version; upgrades are the admin's decision). A stack
    installs all of a host's at once (`joined`); they are applied first, as they drop files of their own
    (nginx's default site) that later resources look at."""

    apply_first: ClassVar[bool] = True

    names: tuple[str, ...]
    cache_valid_time: int = 3600
    lock_timeout: int = 300
    update_timeout: int = 120  # seconds per attempt of apt-get update (remote/scripts/apt_install.sh)
    update_attempts: int = 3

    def label(self) -> str:
        return "packages " + " ".join(self.names)

    def probe(self, want_diff: bool = False) -> str:
        return cmd("dpkg-query", "-W", "-f=${Package} ${Version} ${db:Status-Status}\\n", *self.names)

    def parse(self, out: str) -> dict[str, str]:
        installed = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2] == "installed":
                installed[parts[0]] = parts[1]
        return installed

    def decide(self, fact: dict[str, str], system: SystemFacts, want_diff: bool = False) -> Decision:
        missing = [n for n in self.names if n not in fact]
        if not missing:
            return self.ok("installed: " + ", ".join(f"{n} {fact[n]}" for n in self.names))
        age = system.apt_lists_age
        stale = age is None or age > self.cache_valid_time
        why = "apt lists are " + ("missing" if age is None else f"{age // 60} min old")
        install = fragment("apt_install.sh", PACKAGES=" ".join(missing), UPDATE=int(stale),
                           LOCK_TIMEOUT=self.lock_timeout, UPDATE_TIMEOUT=self.update_timeout,
                           UPDATE_ATTEMPTS=self.update_attempts, RUN_DIR=RUN_DIR, APT_STAMP=APT_STAMP)
        reason = "not installed: " + ", ".join(missing) + (f" ({why}: apt-get update first)" if stale else "")
        return self.change(reason, install)


def joined(resources: list) -> list:
    """`resources` with every Packages among them as one, in the place of the first: one apt
    transaction for the whole host (names in declaration order, each once)."""
    wanted = [r for r in resources if isinstance(r, Packages)]
    if len(wanted) < 2:
        return resources
    first = replace(wanted[0], names=tuple(dict.fromkeys(n for r in wanted for n in r.names)),
                    notify=tuple(dict.fromkeys(n for r in wanted for n in r.notify)))
    return [first if r is wanted[0] else r for r in resources if r is wanted[0] or not isinstance(r, Packages)]
