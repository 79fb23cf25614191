"""systemd services: whether one runs now, and whether it starts at boot."""

from __future__ import annotations

from dataclasses import dataclass

from ..remote.quoting import cmd
from .base import Decision, Resource, SystemFacts

# `systemctl is-enabled` states in which the unit starts at boot (it exits 0 for them)
STARTS_AT_BOOT = frozenset({"enabled", "enabled-runtime", "alias", "static", "indirect", "generated", "transient"})
# `systemctl is-active` states of a unit that runs or is about to
RUNS = frozenset({"active", "activating", "reloading"})


@dataclass
class Service(Resource):
    """A systemd service that must be running (or stopped) now and enabled (or disabled) at boot.
    `fulfils`: the handlers that restart it, whose action starting it performs."""

    name: str
    running: bool = True
    enabled: bool = True

    def label(self) -> str:
        return f"service {self.name}"

    def probe(self, want_diff: bool = False) -> str:
        return cmd("service_state", self.name)

    def parse(self, out: str) -> tuple[str, str]:
        props = dict(line.partition("=")[::2] for line in out.splitlines())
        return props.get("enabled") or "not-found", props.get("active") or "unknown"

    def decide(self, fact: tuple[str, str], system: SystemFacts, want_diff: bool = False) -> Decision:
        enabled, active = fact
        cmds, wanted, found = [], [], []
        if self.enabled and enabled != "enabled":
            wanted.append("enabled at boot")
            found.append(enabled)
            cmds.append(cmd("systemctl", "enable", "-q", self.name))
        if not self.enabled and enabled in STARTS_AT_BOOT:
            wanted.append("disabled at boot")
            found.append(enabled)
            cmds.append(cmd("systemctl", "disable", "-q", self.name))
        if self.running and active != "active":
            wanted.append("running")
            found.append(active)
            journal = cmd("journalctl", "-u", self.name, "-n", 20, "--no-pager", "-o", "cat")
            cmds.append(f"if ! {cmd('systemctl', 'start', self.name)}; then {journal}; exit 1; fi")
        if not self.running and active in RUNS:
            wanted.append("stopped")
            found.append(active)
            cmds.append(cmd("systemctl", "stop", self.name))
        if not cmds:
            return self.ok(f"{'enabled' if self.enabled else 'disabled'} and "
                           f"{'running' if self.running else 'stopped'}")
        # the state wanted first: a service being stopped must not read as if it should run
        # A service this change starts loads what changed before it: that is its restart handlers' action.
        starts = self.running and active != "active"
        return self.change(f"wanted {' and '.join(wanted)}; found {', '.join(found)}", "\n".join(cmds),
                           fulfils=self.fulfils if starts else ())
