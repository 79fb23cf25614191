"""Rolling releases (`deploy --serial N|N%`): the hosts in batches, each batch out of the traffic while
it is deployed.

Per batch: its hosts are taken out of the traffic, their requests in flight finished (`Stack.drain`);
the batch deploys, each host verifying its own health as every deploy does; the healthy ones go back
in, and the next batch waits until they take traffic again. A batch with a failed host stops the roll:
its failed hosts stay out (rolled back as any failed deploy), the batches after it are not touched,
and the fronts (balancers) are deployed last, only after a complete roll. How a host is taken out is
the stack's business; the engine only orders the steps.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ..errors import UserError
from ..inventory import Host
from ..remote.session import Session, Unreachable
from .deploy import HostReport, Progress, deploy
from .fanout import fan_out
from .stack import Stack
from .status import HostStatus


def batches(hosts: list[Host], serial: str) -> list[list[Host]]:
    """`serial` hosts a batch ("2"), or that share of them rounded up ("30%"); "" is one batch."""
    if not serial or not hosts:
        return [hosts] if hosts else []
    size = math.ceil(len(hosts) * int(serial[:-1]) / 100) if serial.endswith("%") else int(serial)
    size = max(1, size)
    return [hosts[i:i + size] for i in range(0, len(hosts), size)]


@dataclass
class Roll:
    """What a roll did, for the report: the batches, and which host holds which release now."""

    batches: list[list[str]]
    released: list[str] = field(default_factory=list)     # deployed and healthy, back in the traffic
    rolled_back: list[str] = field(default_factory=list)  # failed: previous state, left out of the traffic
    untouched: list[str] = field(default_factory=list)    # after the failed batch: not deployed
    stopped_at: int = 0                                   # the failed batch (1-based), 0 if none

    def as_dict(self) -> dict:
        return {"batches": self.batches, "released": self.released, "rolled_back": self.rolled_back,
                "untouched": self.untouched, "stopped_at_batch": self.stopped_at or None}

    def lines(self) -> list[str]:
        out = [f"batch {n}: {', '.join(names)}" for n, names in enumerate(self.batches, 1)]
        if self.stopped_at:
            out.append(f"the roll stopped at batch {self.stopped_at}: new release on "
                       f"{', '.join(self.released) or 'no host'}; previous release (left out of the traffic) on "
                       f"{', '.join(self.rolled_back)}; not deployed: {', '.join(self.untouched) or 'none'}")
        return out


def roll(stack: Stack, hosts: list[Host], everyone: list[Host], serial: str, *, forks: int = 10,
         check: bool = False, diff: bool = False, progress: Progress = lambda h, m: None
         ) -> tuple[list[HostReport], Roll]:
    """Deploy `hosts` (of the inventory's `everyone`) batch by batch; fronts among them last."""
    fronts = [h for h in hosts if stack.is_front(h)]
    rolled = [h for h in hosts if not stack.is_front(h)]
    plan = batches(rolled, serial)
    summary = Roll([[h.name for h in batch] for batch in plan])
    if check:
        return deploy(stack, hosts, forks=forks, check=True, diff=diff, progress=progress), summary
    done: dict[str, HostReport] = {}
    for number, batch in enumerate(plan, 1):
        _drain(stack, batch, everyone, frozenset(h.name for h in batch), progress)
        results = deploy(stack, [_in_roll(h) for h in batch], forks=forks, diff=diff, progress=progress)
        done.update((r.host, r) for r in results)
        failed = {r.host for r in results if r.status in (HostStatus.FAILED, HostStatus.UNREACHABLE)}
        _drain(stack, [h for h in batch if h.name not in failed], everyone, frozenset(failed), progress)
        summary.released += [h.name for h in batch if h.name not in failed]
        summary.rolled_back += [h.name for h in batch if h.name in failed]
        if failed:
            summary.stopped_at = number
            break
    left = [h for h in rolled + fronts if h.name not in done] if summary.stopped_at else []
    summary.untouched = [h.name for h in left]
    for host in left:
        done[host.name] = HostReport(host.name, HostStatus.PENDING,
                                     error=f"not deployed: the roll stopped at batch {summary.stopped_at}",
                                     fix="make the failed batch healthy, then deploy again")
    if not summary.stopped_at and fronts:
        done.update((r.host, r) for r in deploy(stack, fronts, forks=forks, diff=diff, progress=progress))
    return [done[h.name] for h in hosts], summary


def _in_roll(host: Host) -> Host:
    """The host as its batch deploys it: `rolling` tells the stack that the roll, not this deploy, puts
    it back into the traffic (once it is healthy)."""
    return dataclasses.replace(host, vars=host.vars.computed(rolling=True))


def _drain(stack: Stack, hosts: list[Host], everyone: list[Host], out: frozenset[str], progress: Progress) -> None:
    """`hosts` named in `out` leave the traffic, the others come back; every host in `out` stays out."""
    if not hosts:
        return
    back = [h.name for h in hosts if h.name not in out]
    leave = sorted(h.name for h in hosts if h.name in out)
    doing = "; ".join(filter(None, [leave and f"taking {', '.join(leave)} out of the traffic",
                                    back and f"putting {', '.join(back)} back into the traffic"]))

    def one(pair: tuple[Host, str]) -> None:
        target, script = pair
        progress(target.name, doing)
        try:
            with Session(target, {}) as session:
                result = session.run(script)
        except Unreachable as e:
            raise UserError(f"{target.name} is unreachable: {e.cause}", e.fix) from None
        if result.rc != 0:
            lines = result.out.strip().splitlines()
            raise UserError(f"{target.name} failed {doing}: {lines[-1] if lines else 'no output'}",
                            f"look at {target.name} (provision doctor -H {target.name}), then deploy again")

    pairs = stack.drain(hosts, everyone, out)
    error = next((r.error for r in fan_out(pairs, one, forks=len(pairs)) if r.error), None)
    if error:
        raise error
