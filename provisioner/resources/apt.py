"""Debian packages."""

from __future__ import annotations

from dataclasses import dataclass

from ..remote.quoting import cmd
from ..remote.scripts import fragment
from .base import APT_STAMP, RUN_DIR, Decision, Resource, SystemFacts


@dataclass
class Packages(Resource):
    """Debian packages that must be installed (any version; upgrades are the admin's decision)."""

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
        # an earlier step of the same run (roles/base.py: all the stack's packages at once) may have
        # installed them meanwhile: then no second apt run
        query = cmd("dpkg-query", "-W", "-f=${db:Status-Status}\\n", *missing)
        script = f'if [ "$({query} 2>/dev/null | grep -cx installed)" != {len(missing)} ]; then\n{install}\nfi'
        reason = "not installed: " + ", ".join(missing) + (f" ({why}: apt-get update first)" if stale else "")
        return self.change(reason, script)
