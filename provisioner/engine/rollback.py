"""`provision rollback`: a host back to a release it keeps, through the same line as a deploy.

A rollback is a deploy of a stack that wants one thing: the app's `current` link on the release
chosen (resources/release_switch.py), notifying what a new release notifies. So it takes the host's
deploy lock, restarts the app with zero downtime, proves its health, undoes the switch when the
release does not come up healthy, verifies the site and reports as a deploy does; `--serial` rolls
it through the balancers as `deploy --serial`; `--check` plans only. Everything else a deploy would
change (templates, packages) is left as it is: a rollback touches only the release.
"""

from __future__ import annotations

from typing import Any

from ..resources import AppRelease, Resource
from ..resources.release_switch import ReleaseSwitch
from .handlers import Handler
from .stack import Stack


class RollbackStack(Stack):
    """`stack` reduced to its app releases, each switched to `to` (empty: the previous one)."""

    def __init__(self, stack: Stack, to: str = ""):
        self.stack, self.to = stack, to
        self.templates = stack.templates
        self.log_services = stack.log_services

    def declare(self, v: Any) -> tuple[list[Resource], list[Handler]]:
        resources, handlers = self.stack.declare(v)
        switches: list[Resource] = [ReleaseSwitch(r.root, self.to, notify=r.notify)
                                    for r in resources if isinstance(r, AppRelease)]
        notified = {name for r in switches for name in r.notify}
        return switches, [h for h in handlers if h.name in notified]

    def health(self, v: Any, tries: int = 20) -> str:
        return self.stack.health(v, tries)

    def health_label(self, v: Any) -> str:
        return self.stack.health_label(v)

    def explain(self, v: Any) -> str:
        return self.stack.explain(v)

    def waves(self, hosts: list) -> list[list]:
        return self.stack.waves(hosts)

    def is_front(self, host: Any) -> bool:
        return self.stack.is_front(host)

    def drain(self, hosts: list, everyone: list, out: frozenset[str]) -> list[tuple[Any, str]]:
        return self.stack.drain(hosts, everyone, out)
