"""The one protocol between the controller and its remote scripts: section markers and exit codes.

A remote script marks the parts of its output with `mark KIND ARGS...` (defined by PRELUDE), which
prints the line `@@provision KIND ARGS...`; `split` cuts the output back into those sections. What a
script's exit code means is `Exit`, passed to every script as `$EXIT_<NAME>`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import IntEnum

from .quoting import assign, function

MARK = "@@provision"


class Exit(IntEnum):
    OK = 0
    FAILED = 1
    CHECK_FAILED = 3  # a handler's check (nginx -t) failed: its changes were rolled back, nothing ran
    ROLLED_BACK = 4  # a handler's action or proof failed: rolled back, the previous state runs again
    ROLLBACK_FAILED = 5  # ... and the previous state failed too
    LOCKED = 75  # another deploy holds the host's lock (EX_TEMPFAIL)


PRELUDE = "\n".join([function("mark", f'echo "{MARK} $*"'),
                     *(assign(f"EXIT_{code.name}", code.value) for code in Exit)])


@dataclass
class Section:
    """The lines a script printed after one marker (kind "" for those before the first marker)."""

    kind: str
    args: tuple[str, ...] = ()
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def split(output: str) -> list[Section]:
    sections = [Section("")]
    for line in output.splitlines():
        if line.startswith(MARK + " "):
            kind, *args = line[len(MARK) + 1:].split()
            sections.append(Section(kind, tuple(args)))
        else:
            sections[-1].lines.append(line)
    return sections


def by_first_arg(sections: list[Section], kind: str) -> dict[str, Section]:
    """The sections of one kind, by their first argument (`mark fact 3` -> "3")."""
    return {s.args[0]: s for s in sections if s.kind == kind and s.args}


def end_marker() -> str:
    """The line that ends a script's output on the session's shell, unguessable by the script."""
    return f"{MARK} end-{secrets.token_hex(8)}"
