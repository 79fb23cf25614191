"""Handlers: actions that run once, after all changes, only if a change notified them.

A handler may guard its action with a `check` (nginx -t): when the check fails, the changes that
notified it are rolled back and the action never runs, so a bad config never goes live. It may
prove its action with `verify` (a health check): when the action or the proof fails, the
changes are rolled back, the action runs again on the old state, and the failure is reported with
the lines of `explain` (the service's log) that say why.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from .apply import StepResult, restore_script
from .resources import pending_marker
from .ssh import Session

CHECK_FAILED = 3
ROLLED_BACK = 4
ROLLBACK_FAILED = 5
EXPLAIN = "@@provision-explain"
q = shlex.quote


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
    status: str  # ran | failed
    message: str
    output: str = ""
    explanation: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def handler_script(handler: Handler, rollback: str) -> str:
    """The handler's check, action and proof; once its action has run on what is on disk (the new
    state, or the old one after a rollback), its pending marker is removed."""
    rollback = rollback or ":"
    done = f"rm -f {q(pending_marker(handler.name))}"
    parts = []
    if handler.check:
        parts.append(f"{{ {handler.check}\n}} || {{ {rollback}\nexit {CHECK_FAILED}; }}")
    proof = f"{{ {{ {handler.run}\n}} && {{ {handler.verify or ':'}\n}}; }}"
    parts.append(
        f"if ! {proof}; then\n"
        f"  echo {EXPLAIN}\n  {{ {handler.explain or ':'}\n}}\n  echo {EXPLAIN}\n"
        f"  {rollback}\n"
        f"  if {proof} >/dev/null 2>&1; then {done}; exit {ROLLED_BACK}; else exit {ROLLBACK_FAILED}; fi\n"
        f"fi\n{done}"
    )
    return "\n".join(parts)


def run_handlers(session: Session, handlers: list[Handler], steps: list[StepResult],
                 left_pending: tuple[str, ...] = ()) -> list[HandlerResult]:
    """Run, in declared order, every handler that a successful change notified, or that an earlier
    run left pending (its changes were made, then the run was interrupted before its handlers)."""
    done = [(i, s) for i, s in enumerate(steps) if s.status == "changed"]
    results = []
    for handler in handlers:
        notifiers = [(i, s) for i, s in done if handler.name in s.decision.resource.notify]
        earlier = pending_marker(handler.name).rpartition("/")[2] in left_pending
        if not notifiers and not earlier:
            continue
        rollback = "\n".join(filter(None, (restore_script(i, s.decision) for i, s in reversed(notifiers))))
        result = session.run(handler_script(handler, rollback))
        labels = [s.decision.resource.label() for _, s in notifiers] + ["files of an interrupted earlier run"] * earlier
        results.append(_judge(handler, result.rc, result.out, labels))
    return results


def _judge(handler: Handler, rc: int, out: str, labels: list[str]) -> HandlerResult:
    before, _, rest = out.partition(EXPLAIN + "\n")
    explanation, _, after = rest.partition(EXPLAIN)
    output = (before + after).strip()
    what = ", ".join(labels)
    messages = {
        0: (f"ran ({what} changed)", "ran"),
        CHECK_FAILED: (f"check failed: `{handler.check}`; rolled back {what}; nothing was reloaded", "failed"),
        ROLLED_BACK: (f"failed; rolled back {what}; the previous state is running again", "failed"),
        ROLLBACK_FAILED: (f"failed, and the rolled-back state failed too ({what})", "failed"),
    }
    message, status = messages.get(rc, (f"failed with exit code {rc}", "failed"))
    return HandlerResult(handler, status, message, output, explanation.strip())
