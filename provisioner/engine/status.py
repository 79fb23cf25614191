"""The statuses a deploy reports, shared by plan, apply, handlers and report (their JSON strings)."""

from enum import StrEnum


class HostStatus(StrEnum):
    OK = "ok"  # nothing to do, and the site answers
    CHANGED = "changed"
    PENDING = "pending"  # --check: changes would be made
    FAILED = "failed"
    UNREACHABLE = "unreachable"


class StepStatus(StrEnum):
    """What became of one planned change."""

    OK = "ok"  # nothing to change
    CHANGED = "changed"
    PENDING = "pending"  # --check: would change
    FAILED = "failed"
    SKIPPED = "skipped"  # an earlier change failed


class HandlerStatus(StrEnum):
    RAN = "ran"
    VERIFIED = "verified"  # a change performed its action (started the service): only its proof ran
    FAILED = "failed"
