"""What the engine is given: a stack. The roles that describe a server (each yields resources and
handlers), the templates they render, and the commands that look at a deployed server: its health
check, what explains a failure, its logs. The engine never imports a stack; the CLI passes one in
(the default is roles/__init__.py).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol

from ..errors import UserError
from ..remote.quoting import Raw, cmd
from ..resources import Resource, Template
from ..resources.apt import joined
from .handlers import Handler


class Role(Protocol):
    """A module (or object) of a stack: what it wants on a host, and the handlers its changes notify."""

    def resources(self, v: Any) -> Iterable[Resource | Template]: ...

    def handlers(self, v: Any) -> list[Handler]: ...


@dataclass(frozen=True)
class Log:
    """A log a host keeps, shown by `provision logs`: a file, or a systemd unit's journal."""

    prefix: str  # what each of its lines is shown after
    file: str = ""
    unit: str = ""

    def reader(self, lines: int, follow: bool) -> str:
        """Shell: its last `lines` lines (then, with `follow`, every new one), each after the prefix."""
        if self.file:
            read = cmd("tail", *["-F"] * follow, "-q", "-n", lines, self.file, Raw("2>/dev/null"))
        else:
            read = cmd("journalctl", "-u", self.unit, "-n", lines, "-o", "short-iso", "--no-pager", *["-f"] * follow)
        return f"{read} | {cmd('sed', '-u', f's/^/{self.prefix} | /')}"


class Stack:
    """A server's description; subclasses say how its site is checked, explained and logged."""

    roles: tuple[Role, ...] = ()
    templates: Path
    log_services: tuple[str, ...] = ()  # the choices of `provision logs --service`

    def health(self, v: Any, tries: int = 20) -> str:
        """Shell: exit 0 when the deployed site answers (the deploy's last step)."""
        raise NotImplementedError

    def health_label(self, v: Any) -> str:
        """What `health` checks, for a report: "/healthz through nginx on port 80"."""
        raise NotImplementedError

    def explain(self, v: Any) -> str:
        """Shell: the lines that say why the site does not answer."""
        raise NotImplementedError

    def logs(self, v: Any) -> dict[str, tuple[Log, ...]]:
        """The logs of each of `log_services` on a host."""
        raise NotImplementedError

    def log_command(self, v: Any, services: list[str], lines: int, follow: bool) -> str:
        """Shell: every log of the chosen `services` (each log once), read or followed at the same time."""
        logs = self.logs(v)
        chosen = dict.fromkeys(log for service in services for log in logs[service])
        return " & ".join(log.reader(lines, follow) for log in chosen) + " & wait"

    def status(self, v: Any) -> str:
        """Shell: what `provision status` shows, "name: value" lines and findings (findings.py)."""
        raise NotImplementedError

    def doctor(self, v: Any) -> str:
        """Shell: what is wrong with a deployed host, as findings (findings.py). Changes nothing."""
        raise NotImplementedError

    def top(self, v: Any, seconds: float) -> str:
        """Shell: one sample of the served site over `seconds`, as one JSON object (`provision top`).
        Reads only."""
        raise NotImplementedError

    def waves(self, hosts: list) -> list[list]:
        """The hosts in the order a deploy must take them: each wave after the one before (one wave:
        all at once)."""
        return [hosts]

    def is_front(self, host: Any) -> bool:
        """Whether the host sends traffic to others (a balancer): a rolling release deploys it last."""
        return False

    def drain(self, hosts: list, everyone: list, out: frozenset[str]) -> list[tuple[Any, str]]:
        """For a rolling release (`everyone`: the inventory's hosts): `hosts` named in `out` leave the
        traffic, the other `hosts` take it again, and every host named in `out` stays out. The (host to
        run it on, shell) pairs; each shell returns once that is so, requests in flight finished. None:
        nothing to route."""
        return []

    def declare(self, v: Any) -> tuple[list[Resource], list[Handler]]:
        """The desired state of a host: every role's resources (templates rendered) and handlers, in
        role order, the packages of all roles joined into one install. Every `notify=` and `fulfils=`
        must name a declared handler."""
        resources: list[Resource] = []
        handlers: list[Handler] = []
        for role in self.roles:
            resources += [r.rendered(self.templates) if isinstance(r, Template) else r for r in role.resources(v)]
            handlers += role.handlers(v)
        _check_notify(resources, [h.name for h in handlers])
        return joined(resources), handlers


def _check_notify(resources: list[Resource], handlers: list[str]) -> None:
    for resource in resources:
        for verb, names in (("notifies", resource.notify), ("fulfils", resource.fulfils)):
            _check_names(resource, verb, names, handlers)


def _check_names(resource: Resource, verb: str, names: tuple[str, ...], handlers: list[str]) -> None:
    for name in names:
        if name not in handlers:
            close = difflib.get_close_matches(name, handlers, n=1)
            raise UserError(f"{resource.label()} {verb} '{name}', which no role declares",
                            f"did you mean '{close[0]}'?" if close
                            else f"declare a handler '{name}' (handlers: {', '.join(handlers) or 'none'})")
