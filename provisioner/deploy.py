"""One deploy, per host: declare -> probe -> plan -> apply -> handlers -> verify. Hosts in parallel.

Remote round trips for a host with nothing to do: the probe and the final verify, on one channel.
"""

from __future__ import annotations

import getpass
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from roles import ROLES
from roles.layout import Layout

from . import facts
from .apply import StepResult, apply_changes
from .errors import UserError
from .handlers import Handler, HandlerResult, run_handlers
from .inventory import Host
from .plan import Plan, make_plan
from .resources import Packages, Resource
from .ssh import Session, Unreachable
from .verify import site_check, verify_site

LOCK_FILE = "/run/lock/provision-deploy.lock"
LOCKED = 75

Progress = Callable[[str, str], None]


@dataclass
class HostReport:
    """What happened on one host; `status` is ok, changed, pending (check mode), failed or unreachable."""

    host: str
    status: str = "ok"
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
            return sum(1 for s in self.steps if s.status == "changed")
        return len(self.plan.changes) if self.plan else 0


def declare(host: Host) -> tuple[list[Resource], list[Handler]]:
    """The desired state of a host: every role's resources and handlers, in role order."""
    resources: list[Resource] = []
    handlers: list[Handler] = []
    for role in ROLES:
        resources.extend(role.resources(host.vars))
        handlers.extend(role.handlers(host.vars))
    return resources, handlers


def _lock(timeout: int) -> str:
    """Main-shell statements: hold the host's deploy lock for as long as this connection lives."""
    owner = f"{getpass.getuser()}@{socket.gethostname()} since $(date '+%F %T')"
    return (f"exec 9>>{LOCK_FILE}; if flock -w {timeout} 9; then PROVISION_LOCKED=1; "
            f"echo \"{owner}\" > {LOCK_FILE}.owner; else PROVISION_LOCKED=; fi")


def _plan(session: Session, host: Host, resources: list[Resource], diff: bool, lock: bool = False) -> Plan:
    """One remote command: (take the host's deploy lock and) read every fact and how the site
    answers right now; then plan locally."""
    script = facts.probe_script(resources, want_diff=diff, health=site_check(host.vars, tries=1) if lock else "")
    if lock:
        script = f"[ -n \"$PROVISION_LOCKED\" ] || {{ cat {LOCK_FILE}.owner 2>/dev/null; exit {LOCKED}; }}\n" + script
    probe = session.run(script, in_main_shell=_lock(host.vars.deploy_lock_timeout) if lock else "")
    if probe.rc == LOCKED:
        raise UserError(f"another deploy is running on {host.name} (by {probe.out.strip() or 'unknown'})",
                        "wait for it to finish, or set deploy_lock_timeout to wait for it")
    system, found = facts.parse(probe.out, resources)
    return make_plan(resources, system, found, want_diff=diff)


def deploy_host(host: Host, *, check: bool = False, diff: bool = False,
                progress: Progress = lambda h, m: None) -> HostReport:
    report = HostReport(host.name)
    started = time.monotonic()
    try:
        resources, handlers = declare(host)
        progress(host.name, "connecting")
        with Session(host, report.metrics) as session:
            progress(host.name, "reading facts")
            report.plan = _plan(session, host, resources, diff, lock=True)
            if check:
                report.status = "pending" if report.plan.changes or report.plan.left_pending else "ok"
                return report
            _apply(session, host, resources, diff, report, progress)
            if report.steps or report.plan.left_pending:
                progress(host.name, "running handlers")
                report.handlers = run_handlers(session, handlers, report.steps, report.plan.left_pending)
            if not report.steps and not report.handlers and report.plan.health and report.plan.health[0]:
                report.verified = report.plan.health[1]  # nothing changed since the site answered
            elif not _failed(report):
                progress(host.name, "verifying")
                _verify(session, host, report)
    except Unreachable as e:
        report.status, report.error, report.fix = "unreachable", e.cause, e.fix
    except UserError as e:
        report.status, report.error, report.fix = "failed", e.cause, e.fix
    finally:
        report.seconds = time.monotonic() - started
    return report


def _apply(session: Session, host: Host, resources: list[Resource], diff: bool, report: HostReport,
           progress: Progress) -> None:
    """Make the planned changes. Packages drop files of their own (nginx's default site), so they
    are installed first and the rest is planned again against the host as it now is."""
    installs = [d for d in report.plan.changes if isinstance(d.resource, Packages)]
    if installs:
        progress(host.name, "installing packages")
        report.steps = apply_changes(session, installs)
        if any(s.status == "failed" for s in report.steps):
            return
        rest = _plan(session, host, resources, diff)
        report.plan = Plan(installs + [d for d in rest.decisions if not isinstance(d.resource, Packages)],
                           rest.left_pending)
    pending = [d for d in report.plan.changes if not isinstance(d.resource, Packages)]
    if pending:
        progress(host.name, f"applying {len(pending)} change(s)")
        report.steps += apply_changes(session, pending, start=len(report.steps))


def _failed(report: HostReport) -> bool:
    """Mark the report failed by the first failed change, else the first failed handler."""
    step = next((s for s in report.steps if s.status == "failed"), None)
    handler = next((h for h in report.handlers if h.failed), None)
    if step:
        report.error = f"{step.decision.resource.label()}: {_last_error(step.output)}"
        report.details = step.output
    elif handler:
        report.error = f"handler '{handler.handler.name}' {handler.message}"
        report.details = "\n".join(filter(None, (handler.output, handler.explanation)))
    else:
        return False
    report.status = "failed"
    return True


def _last_error(output: str) -> str:
    """The line of a failed change's output that says why: apt's `E:` line, else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E: ")]
    return (errors or lines or ["failed without output"])[-1]


def _verify(session: Session, host: Host, report: HostReport) -> None:
    v = host.vars
    at = Layout.of(v)
    explain = (f"echo '--- {at.error_log}'; tail -n 15 {at.error_log} 2>/dev/null; "
               f"echo '--- journal of {at.unit}'; journalctl -u {at.unit} -n 15 --no-pager -o cat")
    ok, answer, logs = verify_site(session, v, explain)
    report.verified = answer
    if ok:
        report.status = "changed" if report.changed_count else "ok"
    else:
        report.status = "failed"
        report.error = f"{v.health_path} through nginx on port {v.http_port} failed: {answer}"
        report.details = logs


def deploy(hosts: list[Host], *, forks: int = 10, check: bool = False, diff: bool = False,
           progress: Progress = lambda h, m: None) -> list[HostReport]:
    """Deploy to every host, at most `forks` at once; one host's failure never stops the others."""
    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(hosts)))) as pool:
        futures = [pool.submit(deploy_host, h, check=check, diff=diff, progress=progress) for h in hosts]
        return [f.result() for f in futures]
