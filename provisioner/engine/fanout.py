"""One way to run work on many hosts at once, used by deploy, a rolling release's drains, run, logs,
status and doctor: `fan_out(hosts, work, forks=N)` runs `work(host)` for every host, at most N at a
time, and gives one HostResult per host, in the hosts' order: what `work` returned, or the UserError
(an unreachable host is one) it raised. One host's error never stops the others; any other exception
is a bug and ends the run.

Ctrl-C: the CLI's SIGINT handler closes every connection and refuses new ones
(remote/session.interrupt_all), so the hosts at work end at once; hosts not started yet are never
started, and the KeyboardInterrupt goes on to the caller.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

from ..errors import UserError
from ..remote.session import Session

T = TypeVar("T")


@dataclass(frozen=True)
class HostResult(Generic[T]):
    """One host's outcome: `value` when its work ended, else `error`."""

    host: Any
    value: T | None = None
    error: UserError | None = None


def fan_out(hosts: Sequence[Any], work: Callable[[Any], T], *, forks: int,
            finished: Callable[[HostResult[T]], None] = lambda result: None) -> list[HostResult[T]]:
    """`work(host)` for every host, `forks` at once; `finished(result)` is called (in the host's
    thread) as each host ends, for a caller that shows results as they come."""
    if not hosts:
        return []

    def one(host: Any) -> HostResult[T]:
        try:
            result = HostResult(host, value=work(host))
        except UserError as e:
            result = HostResult(host, error=e)
        finished(result)
        return result

    pool = ThreadPoolExecutor(max_workers=max(1, min(forks, len(hosts))), thread_name_prefix="host")
    try:
        futures = [pool.submit(one, host) for host in hosts]
        results = [future.result() for future in futures]
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def in_sessions(hosts: Sequence[Any], work: Callable[[Any, Any], T], *, forks: int) -> list[HostResult[T]]:
    """`work(host, session)` on every host over a connection of its own, closed after it."""
    def one(host: Any) -> T:
        with Session(host) as session:
            return work(host, session)
    return fan_out(hosts, one, forks=forks)
