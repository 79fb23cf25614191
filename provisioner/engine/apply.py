"""Apply: every change of a host in ONE remote script (remote/scripts/apply.sh), in declared order,
stopping at the first failure.

Before a change touches a path, the path is saved under RUN_DIR so a handler whose check fails
(nginx -t) or whose service does not come back healthy can put the old state back (`rollback`).
"""

from __future__ import annotations

import secrets as _random
import threading
from dataclasses import dataclass

from ..remote import protocol, scripts
from ..remote.quoting import cmd
from ..remote.session import Session
from ..resources import PENDING_DIR, RUN_DIR, Decision, pending_marker
from .status import StepStatus


@dataclass
class StepResult:
    decision: Decision
    status: StepStatus
    output: str = ""


def _upload_dir() -> str:
    return f"/tmp/provision-upload-{_random.token_hex(6)}"


def _upload_all(session: Session, keyed: list[tuple[int, Decision]], upload_dir: str) -> dict[int, str]:
    """Each change's upload into one directory (several apps: a release each), made by the first:
    key -> its path on the host."""
    return {key: session.upload(d.upload(), upload_dir, make_dir=not n) for n, (key, d) in enumerate(keyed)}


class EarlyUploads:
    """The uploads of changes planned before an earlier batch runs, sent while it runs (a release's
    files travel while the packages install: neither needs the other). A change planned again after
    that batch uses its upload when it uploads the same (same resource, same `upload_key`); a change
    without a key is not sent early."""

    def __init__(self, session: Session, changes: list[Decision]):
        self.dir = _upload_dir()
        self._sent: dict[int, tuple[str, str]] = {}  # id(resource) -> (upload_key, path on the host)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._send, args=(session, [d for d in changes if d.upload_key]),
                                        name="early uploads", daemon=True)
        self._thread.start()

    def _send(self, session: Session, changes: list[Decision]) -> None:
        try:
            paths = _upload_all(session, [(id(d.resource), d) for d in changes], self.dir)
            self._sent = {id(d.resource): (d.upload_key, paths[id(d.resource)]) for d in changes}
        except BaseException as e:  # noqa: BLE001 (raised where the upload is used)
            self._error = e

    def take(self, decision: Decision) -> str | None:
        """The host path of this change's upload, once sent; None if it was planned otherwise."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        key, path = self._sent.get(id(decision.resource), ("", ""))
        return path if path and key == decision.upload_key else None

    def discard(self, session: Session) -> None:
        """When no later batch runs: wait for the uploads and remove them from the host."""
        self._thread.join()
        session.run(cmd("rm", "-rf", self.dir))


def apply_changes(session: Session, changes: list[Decision], start: int = 0,
                  early: EarlyUploads | None = None) -> list[StepResult]:
    """Make `changes` on the host; `start` numbers them after the changes of an earlier batch of this run.
    A change's upload (a release) is made now, never while planning, unless `early` sent it already."""
    with_upload = [(i, d) for i, d in enumerate(changes, start) if d.upload]
    uploads = {i: early.take(d) for i, d in with_upload} if early else {}
    upload_dir = early.dir if early else _upload_dir()  # apply.sh removes it at its end
    if with_upload and not (uploads and all(uploads.values())):  # not sent early, or planned otherwise since
        if early:
            early.discard(session)
            upload_dir = _upload_dir()
        uploads = _upload_all(session, with_upload, upload_dir)
    result = session.run(apply_script(changes, uploads, upload_dir, start))
    return parse_results(result.out, changes, start)


def apply_script(changes: list[Decision], uploads: dict[int, str], upload_dir: str, start: int = 0) -> str:
    """The one script that makes every change, each saved first and marked in the output."""
    functions = {f"change_{i}": d.script for i, d in enumerate(changes, start)}
    functions["changes"] = "\n".join(
        cmd("step", i, uploads.get(i, ""), *d.backup, "--", *(pending_marker(h) for h in d.resource.notify))
        for i, d in enumerate(changes, start))
    return scripts.script("apply.sh", functions, RUN_DIR=RUN_DIR, PENDING_DIR=PENDING_DIR, UPLOAD_DIR=upload_dir,
                          FRESH=int(start == 0))


def rollback(index: int, decision: Decision) -> str:
    """Shell (for handler.sh) that puts the paths a change touched back as they were before this run."""
    if not decision.backup:
        return ""
    return "\n".join(filter(None, [cmd("restore", index, *decision.backup), decision.after_rollback.strip()]))


def parse_results(output: str, changes: list[Decision], start: int = 0) -> list[StepResult]:
    sections = protocol.split(output)
    outputs = {s.args[0]: s.text for s in sections if s.kind == "step"}
    codes = {s.args[0]: int(s.args[1]) for s in sections if s.kind == "ended" and len(s.args) == 2}
    results = []
    for i, decision in enumerate(changes, start):
        key = str(i)
        if key in codes:
            results.append(StepResult(decision, StepStatus.CHANGED if codes[key] == 0 else StepStatus.FAILED,
                                      outputs[key]))
        elif key in outputs or (i == start and not outputs):  # it began and never ended, or nothing ran
            results.append(StepResult(decision, StepStatus.FAILED, outputs[key] if key in outputs else output))
        else:
            results.append(StepResult(decision, StepStatus.SKIPPED, "an earlier change failed"))
    return results
