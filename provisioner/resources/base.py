"""What every resource is: it knows how to look (probe + parse) and what to do (decide).

A resource never talks to the host itself. `probe()` is a shell snippet whose output the facts
step collects for all resources in one remote command (remote/scripts/probe.sh, whose helper
functions stat_path and service_state a probe may call); `decide(fact, system)` compares that fact
with the desired state and returns a Decision: either "ok, because ..." or "change, because ...,
with this shell". The apply step runs every change of a host in one script.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from ..remote.quoting import cmd

# This run's backups and markers on the host; root-only.
RUN_DIR = "/var/lib/provision/run"
# Handlers notified by a change that have not run yet: a marker file each, kept across runs, so a run
# interrupted between its changes and its handlers has them run by the next one.
PENDING_DIR = f"{RUN_DIR}.pending"
APT_STAMP = "/var/lib/provision/apt-updated"


def pending_marker(handler: str) -> str:
    return f"{PENDING_DIR}/{handler.replace(' ', '-')}"


@dataclass
class SystemFacts:
    """What every plan may need about the host, probed in the same command as the resources."""

    os_id: str = ""
    os_version: str = ""
    codename: str = ""
    machine: str = ""
    now: int = 0
    apt_lists_age: int | None = None  # seconds since the last apt-get update; None = never
    health: tuple[bool, str] | None = None  # the site's health answer (ok, text), when probed
    pending: tuple[str, ...] = ()  # marker names (pending_marker) of handlers an earlier run left to run
    nginx_version: tuple[int, ...] = ()  # (1, 26, 3); () before nginx is installed


@dataclass
class Decision:
    resource: "Resource"
    changed: bool
    reason: str
    script: str = ""
    diff: str | None = None
    backup: tuple[str, ...] = ()  # paths saved before the change so a handler can roll it back
    after_rollback: str = ""  # shell to run after those paths were restored
    # what the script needs on the host (at $UPLOAD), made only when the change is applied: a local file,
    # or a stream with `name` and `open()` (a release's transfer, resources/release_transfer.py)
    upload: Callable[[], Any] | None = None
    # what the upload holds, when known while planning: two plans with the same key upload the same bytes
    upload_key: str = ""
    # handlers whose action this change itself performed (a service it started reads what changed before it)
    fulfils: tuple[str, ...] = ()


@dataclass
class Resource:
    notify: tuple[str, ...] = field(default=(), kw_only=True)
    # Handlers whose action a change of this resource may perform itself (its decision says when it does).
    fulfils: tuple[str, ...] = field(default=(), kw_only=True)
    # Its change alters the host beyond itself: applied before the others, which are then planned again.
    apply_first: ClassVar[bool] = False

    def label(self) -> str:
        raise NotImplementedError

    def probe(self, want_diff: bool = False) -> str:
        raise NotImplementedError

    def parse(self, out: str) -> Any:
        return out.strip()

    def decide(self, fact: Any, system: SystemFacts, want_diff: bool = False) -> Decision:
        raise NotImplementedError

    def ok(self, reason: str) -> Decision:
        return Decision(self, False, reason)

    def change(self, reason: str, script: str, **kw) -> Decision:
        return Decision(self, True, reason, script, **kw)

    def refuse(self, reason: str, message: str) -> Decision:
        """A change that fails on purpose: the host's state is one only a person should resolve."""
        return self.change(reason, cmd("echo", message) + " >&2\nexit 1")
