"""Handlers: actions that run once, after all changes, only if a change notified them
(remote/scripts/handler.sh).

A handler may guard its action with a `check` (nginx -t): when the check fails, the changes that
notified it are rolled back and the action never runs, so a bad config never goes live. It may
prove its action with `verify` (a health check): when the action or the proof fails, the
changes are rolled back, the action runs again on the old state, and the failure is reported with
the lines of `explain` (the service's log) that say why.

A change may perform a handler's action itself (`fulfils`: a service it started, after the changes
that notified the handler, already runs them): the handler then only proves it, and rolls back like
any other when the proof fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..remote import protocol, scripts
from ..remote.protocol import Exit
from ..remote.session import Session
from ..resources import RUN_DIR, pending_marker
from .apply import StepResult, rollback
from .status import HandlerStatus, StepStatus


@dataclass(frozen=True)
class Handler:
    name: str
    run: str
    check: str = ""
    verify: str = ""
    explain: str = ""


@dataclass
class HandlerResult:
    handler: Handler
    status: HandlerStatus
    message: str
    output: str = ""
    explanation: str = ""

    @property
    def failed(self) -> bool:
        return self.status == HandlerStatus.FAILED


def handler_script(handler: Handler, undo: str, acted: bool = False) -> str:
    """The handler's check, action and proof; `undo` (shell) rolls its notifying changes back.
    `acted`: a change already performed the action; it is proven, and runs again only after a rollback."""
    functions = {"check": handler.check, "act": handler.run, "prove": handler.verify, "explain": handler.explain,
                 "rollback": undo}
    return scripts.script("handler.sh", functions, RUN_DIR=RUN_DIR, PENDING_MARKER=pending_marker(handler.name),
                          ACTED=int(acted))


def run_handlers(session: Session, handlers: list[Handler], steps: list[StepResult],
                 left_pending: tuple[str, ...] = ()) -> list[HandlerResult]:
    """Run, in declared order, every handler that a successful change notified, or that an earlier
    run left pending (its changes were made, then the run was interrupted before its handlers)."""
    done = [(i, s) for i, s in enumerate(steps) if s.status == StepStatus.CHANGED]
    results = []
    for handler in handlers:
        notifiers = [(i, s) for i, s in done if handler.name in s.decision.resource.notify]
        earlier = pending_marker(handler.name).rpartition("/")[2] in left_pending
        if not notifiers and not earlier:
            continue
        undo = "\n".join(filter(None, (rollback(i, s.decision) for i, s in reversed(notifiers))))
        acted = _performed_by(handler, done, after=max((i for i, _ in notifiers), default=-1))
        result = session.run(handler_script(handler, undo, acted=acted is not None))
        labels = [s.decision.resource.label() for _, s in notifiers] + ["files of an interrupted earlier run"] * earlier
        results.append(_judge(handler, result.rc, result.out, labels, acted))
    return results


def _performed_by(handler: Handler, done: list[tuple[int, StepResult]], after: int) -> str | None:
    """The label of a change after index `after` that performed the handler's action, if one did."""
    return next((s.decision.resource.label() for i, s in done if i > after and handler.name in s.decision.fulfils),
                None)


def _judge(handler: Handler, rc: int, out: str, labels: list[str], acted: str | None = None) -> HandlerResult:
    sections = protocol.split(out)
    explanation = "\n".join(s.text for s in sections if s.kind == "explain")
    output = "\n".join(s.text for s in sections if s.kind != "explain").strip()
    what = ", ".join(labels)
    failed = HandlerStatus.FAILED
    messages = {
        Exit.OK: ((f"verified ({what} changed; {acted} started after)", HandlerStatus.VERIFIED) if acted
                  else (f"ran ({what} changed)", HandlerStatus.RAN)),
        Exit.CHECK_FAILED: (f"check failed: `{handler.check}`; rolled back {what}; nothing was reloaded", failed),
        Exit.ROLLED_BACK: (f"failed; rolled back {what}; the previous state is running again", failed),
        Exit.ROLLBACK_FAILED: (f"failed, and the rolled-back state failed too ({what})", failed),
    }
    message, status = messages.get(rc, (f"failed with exit code {rc}", failed))
    return HandlerResult(handler, status, message, output, explanation.strip())
