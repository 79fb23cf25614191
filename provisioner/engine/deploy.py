"""One deploy, per host: declare -> probe -> plan -> apply -> handlers -> verify. Hosts in parallel.

Remote round trips for a host with nothing to do: the probe and the final verify, on one channel.
"""

from __future__ import annotations

import contextlib
import getpass
import socket
import time
from dataclasses import dataclass, field
from typing import Callable

from ..errors import UserError
from ..inventory import Host
from ..remote import scripts
from ..remote.protocol import Exit
from ..remote.session import Session, Sessions, Unreachable
from ..resources import Resource
from . import facts
from .apply import EarlyUploads, StepResult, apply_changes
from .fanout import fan_out
from .handlers import HandlerResult, run_handlers
from .plan import Plan, make_plan
from .stack import Stack
from .status import HostStatus, StepStatus
from .verify import verify_site

LOCK_FILE = "/run/lock/provision-deploy.lock"

Progress = Callable[[str, str], None]


@dataclass
class HostReport:
    """What happened on one host."""

    host: str
    status: HostStatus = HostStatus.OK
    plan: Plan | None = None
    steps: list[StepResult] = field(default_factory=list)
    handlers: list[HandlerResult] = field(default_factory=list)
    verified: str = ""
    error: str = ""
    fix: str = ""
    details: str = ""
    seconds: float = 0.0
    metrics: dict = field(default_factory=dict)

    @property
    def changed_count(self) -> int:
        if self.steps:
            return sum(1 for s in self.steps if s.status == StepStatus.CHANGED)
        return len(self.plan.changes) if self.plan else 0


def _lock(timeout: int) -> str:
    """Main-shell statements: hold the host's deploy lock for as long as this connection lives."""
    return scripts.fragment("lock.sh", LOCK_FILE=LOCK_FILE, LOCK_TIMEOUT=timeout,
                            LOCK_OWNER=f"{getpass.getuser()}@{socket.gethostname()}")


def _plan(session: Session, stack: Stack, host: Host, resources: list[Resource], diff: bool,
          lock: bool = False) -> Plan:
    """One remote command: (take the host's deploy lock and) read every fact and how the site
    answers right now; then plan locally."""
    script = facts.probe_script(resources, want_diff=diff, health=stack.health(host.vars, tries=1) if lock else "",
                                lock_file=LOCK_FILE if lock else "")
    probe = session.run(script, in_main_shell=_lock(host.vars.deploy_lock_timeout) if lock else "")
    if probe.rc == Exit.LOCKED:
        raise UserError(f"another deploy is running on {host.name} (by {probe.out.strip() or 'unknown'})",
                        "wait for it to finish, or set deploy_lock_timeout to wait for it")
    system, found = facts.parse(probe.out, resources)
    return make_plan(resources, system, found, want_diff=diff)


def deploy_host(stack: Stack, host: Host, *, check: bool = False, diff: bool = False,
                progress: Progress = lambda h, m: None, sessions: Sessions | None = None) -> HostReport:
    report = HostReport(host.name)
    started = time.monotonic()
    try:
        resources, handlers = stack.declare(host.vars)
        progress(host.name, "connecting")
        with contextlib.closing((sessions or Sessions()).take(host)) as session:
            report.metrics = session.metrics
            progress(host.name, "reading facts")
            report.plan = _plan(session, stack, host, resources, diff, lock=True)
            if check:
                pending = report.plan.changes or report.plan.left_pending
                report.status = HostStatus.PENDING if pending else HostStatus.OK
                return report
            _apply(session, stack, host, resources, diff, report, progress)
            if report.steps or report.plan.left_pending:
                progress(host.name, "running handlers")
                report.handlers = run_handlers(session, handlers, report.steps, report.plan.left_pending)
            if not report.steps and not report.handlers and report.plan.health and report.plan.health[0]:
                report.verified = report.plan.health[1]  # nothing changed since the site answered
            elif not _mark_failure(report):
                progress(host.name, "verifying")
                _verify(session, stack, host, report)
    except Unreachable as e:
        report.status, report.error, report.fix = HostStatus.UNREACHABLE, e.cause, e.fix
    except UserError as e:
        report.status, report.error, report.fix = HostStatus.FAILED, e.cause, e.fix
    finally:
        report.seconds = time.monotonic() - started
    return report


def _apply(session: Session, stack: Stack, host: Host, resources: list[Resource], diff: bool, report: HostReport,
           progress: Progress) -> None:
    """Make the planned changes. Those that alter the host beyond themselves (`apply_first`: packages
    drop files of their own, like nginx's default site) go first and the rest is planned again against
    the host as it now is; the rest's uploads are sent while the first ones run."""
    firsts = [d for d in report.plan.changes if d.resource.apply_first]
    early = None
    if firsts:
        progress(host.name, "installing packages")
        # what the other changes upload (a release) travels meanwhile: it needs no package
        early = EarlyUploads(session, [d for d in report.plan.changes if not d.resource.apply_first])
        report.steps = apply_changes(session, firsts)
        if any(s.status == StepStatus.FAILED for s in report.steps):
            early.discard(session)
            return
        rest = _plan(session, stack, host, resources, diff)
        report.plan = Plan(firsts + [d for d in rest.decisions if not d.resource.apply_first], rest.left_pending)
    pending = [d for d in report.plan.changes if not d.resource.apply_first]
    if pending:
        progress(host.name, f"applying {len(pending)} change(s)")
        report.steps += apply_changes(session, pending, start=len(report.steps), early=early)
    elif early:
        early.discard(session)


def _mark_failure(report: HostReport) -> bool:
    """Mark the report failed by the first failed change, else the first failed handler; whether one failed."""
    step = next((s for s in report.steps if s.status == StepStatus.FAILED), None)
    handler = next((h for h in report.handlers if h.failed), None)
    if step:
        report.error = f"{step.decision.resource.label()}: {_last_error(step.output)}"
        report.details = step.output
    elif handler:
        report.error = f"handler '{handler.handler.name}' {handler.message}"
        report.details = "\n".join(filter(None, (handler.output, handler.explanation)))
    else:
        return False
    report.status = HostStatus.FAILED
    return True


def _last_error(output: str) -> str:
    """The line of a failed change's output that says why: apt's `E:` line, else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E: ")]
    return (errors or lines or ["failed without output"])[-1]


def _verify(session: Session, stack: Stack, host: Host, report: HostReport) -> None:
    ok, answer, logs = verify_site(session, stack.health(host.vars), stack.explain(host.vars))
    report.verified = answer
    if ok:
        report.status = HostStatus.CHANGED if report.changed_count else HostStatus.OK
    else:
        report.status = HostStatus.FAILED
        report.error = f"{stack.health_label(host.vars)} failed: {answer}"
        report.details = logs


def deploy(stack: Stack, hosts: list[Host], *, forks: int = 10, check: bool = False, diff: bool = False,
           progress: Progress = lambda h, m: None, sessions: Sessions | None = None) -> list[HostReport]:
    """Deploy to every host, at most `forks` at once; one host's failure never stops the others. Hosts
    go in the stack's waves (app hosts before the balancers whose health check goes through them).
    `sessions`: connections the caller started opening early (else each opens when its host starts)."""
    done: dict[str, HostReport] = {}
    for wave in stack.waves(hosts):
        results = fan_out(wave, lambda h: deploy_host(stack, h, check=check, diff=diff, progress=progress,
                                                      sessions=sessions), forks=forks)
        done.update((r.value.host, r.value) for r in results)   # deploy_host reports a host's error itself
    return [done[h.name] for h in hosts]
