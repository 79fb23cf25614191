"""Apply: every change of a host in ONE remote script, in declared order, stopping at the first failure.

Before a change touches a path, the path is saved under RUN_DIR so a handler whose check fails
(nginx -t) or whose service does not come back healthy can put the old state back.
"""

from __future__ import annotations

import secrets as _random
import shlex
from dataclasses import dataclass

from .resources import PENDING_DIR, RUN_DIR, Decision, pending_marker
from .ssh import Session

q = shlex.quote
STEP = "@@provision-step"
DONE = "@@provision-done"


@dataclass
class StepResult:
    decision: Decision
    status: str  # changed | failed | skipped
    output: str = ""


def _saved(index: int, n: int) -> str:
    return f"{RUN_DIR}/step{index}-{n}"


def backup_script(index: int, decision: Decision) -> str:
    lines = []
    for n, path in enumerate(decision.backup):
        p, b = q(path), _saved(index, n)
        lines.append(f"if [ -e {p} ] || [ -L {p} ]; then cp -a {p} {b}; else : > {b}.absent; fi")
    return "\n".join(lines)


def restore_script(index: int, decision: Decision) -> str:
    """Shell that puts the paths a change touched back as they were before this run."""
    lines = []
    for n, path in enumerate(decision.backup):
        p, b = q(path), _saved(index, n)
        lines.append(f"if [ -e {b}.absent ]; then rm -f {p}; "
                     f"elif [ -e {b} ] || [ -L {b} ]; then cp -a {b} {p}.provision-rb && mv -fT {p}.provision-rb {p}; fi")
    if lines and decision.after_rollback:
        lines.append(decision.after_rollback.strip())
    return "\n".join(lines)


def apply_changes(session: Session, changes: list[Decision], start: int = 0) -> list[StepResult]:
    """Make `changes` on the host; `start` numbers them after the changes of an earlier batch of this run."""
    upload_dir = f"/tmp/provision-upload-{_random.token_hex(6)}"
    uploads = {i: session.upload(d.upload, upload_dir) for i, d in enumerate(changes, start) if d.upload}
    result = session.run(apply_script(changes, uploads, upload_dir, start))
    return parse_results(result.out, changes, start)


def apply_script(changes: list[Decision], uploads: dict[int, str], upload_dir: str, start: int = 0) -> str:
    """The one script that makes every change, each saved first and marked in the output."""
    fresh = f"rm -rf {RUN_DIR} && " if start == 0 else ""
    parts = ["break_at=", f"{fresh}mkdir -p -m 0700 {RUN_DIR} {PENDING_DIR} || exit 1"]
    for i, decision in enumerate(changes, start):
        upload = f"UPLOAD={q(uploads[i])}\n" if i in uploads else ""
        notify = " ".join(q(pending_marker(h)) for h in decision.resource.notify)
        parts.append(
            f"echo {STEP} {i}\n{backup_script(i, decision)}\n{upload}"
            f"( set -e\n{decision.script}\n)\nrc=$?\necho {DONE} {i} $rc\n"
            + (f"[ $rc -ne 0 ] || touch {notify}\n" if notify else "")
            + f"[ $rc -eq 0 ] || break_at={i}\n"
            f"[ -z \"$break_at\" ] || {{ rm -rf {upload_dir}; exit 1; }}"
        )
    parts.append(f"rm -rf {upload_dir}")
    return "\n".join(parts)


def parse_results(output: str, changes: list[Decision], start: int = 0) -> list[StepResult]:
    outputs: dict[int, list[str]] = {}
    codes: dict[int, int] = {}
    current = None
    for line in output.splitlines():
        words = line.split()
        if line.startswith(STEP + " "):
            current = int(words[1])
            outputs[current] = []
        elif line.startswith(DONE + " "):
            codes[int(words[1])] = int(words[2])
            current = None
        elif current is not None:
            outputs[current].append(line)
    results = []
    for i, decision in enumerate(changes, start):
        if i not in codes:
            text = "\n".join(outputs.get(i, [])) or (output if i == start and not outputs else "")
            status = "failed" if i in outputs or (i == start and not outputs) else "skipped"
            results.append(StepResult(decision, status, text if status == "failed" else "an earlier change failed"))
        else:
            results.append(StepResult(decision, "changed" if codes[i] == 0 else "failed", "\n".join(outputs[i])))
    return results
