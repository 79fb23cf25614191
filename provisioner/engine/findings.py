"""What `status` and `doctor` report of a deployed host: findings, one per line of the stack's script.

A finding line is LEVEL<TAB>CHECK<TAB>WHAT WAS FOUND<TAB>WHAT TO DO, LEVEL one of ok, warn, fail; the
stack's shell prints them (it knows its services), the engine only reads and ranks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str
    found: str
    fix: str = ""


def parse(out: str) -> tuple[list[Finding], list[str]]:
    """The findings in a script's output, and its other lines (plain "name: value" status lines)."""
    findings, other = [], []
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) == 4 and fields[0] in Level.__members__.values():
            findings.append(Finding(Level(fields[0]), *fields[1:]))
        elif line.strip():
            other.append(line)
    return findings, other
