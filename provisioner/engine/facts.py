"""Facts: everything the plan needs about one host, read in ONE remote script (remote/scripts/probe.sh).

Each resource's probe becomes a function of the probe script, its output a section of its own;
`parse` lets each resource parse its part.
"""

from __future__ import annotations

import shlex

from ..remote import protocol, scripts
from ..resources import APT_STAMP, PENDING_DIR, Resource, SystemFacts


def probe_script(resources: list[Resource], want_diff: bool = False, health: str = "", lock_file: str = "") -> str:
    """`health` (a shell check of the running service) runs alongside the probes; when the plan
    turns out empty, its answer is the deploy's verification, and no second round trip is needed.
    With `lock_file`, the script refuses to run unless this session holds that lock (lock.sh)."""
    functions = {f"probe_{i}": r.probe(want_diff) for i, r in enumerate(resources)}
    if health:
        functions["health"] = health
    return scripts.script("probe.sh", functions, RESOURCES=len(resources), HEALTH=int(bool(health)),
                          LOCK_FILE=lock_file, APT_STAMP=APT_STAMP, PENDING_DIR=PENDING_DIR,
                          STAT_PATHS="\n".join(first_args(functions.values(), "stat_path")),
                          SERVICES="\n".join(first_args(functions.values(), "service_state")))


def first_args(probes, function: str) -> list[str]:
    """The argument of every probe that is one `FUNCTION ARG` call (stat_path, service_state):
    probe.sh reads all of them up front, with one program for all where it can."""
    calls = (shlex.split(probe) for probe in probes if probe.startswith(function + " ") and "\n" not in probe)
    return list(dict.fromkeys(words[1] for words in calls if len(words) >= 2))


def parse(output: str, resources: list[Resource]) -> tuple[SystemFacts, list]:
    sections = protocol.split(output)
    facts = protocol.by_first_arg(sections, "fact")
    system = next((s for s in sections if s.kind == "system"), protocol.Section("system"))
    found = _parse_system(system.lines)
    health = next((s for s in sections if s.kind == "health"), None)
    if health is not None:
        rc, *answer = health.lines or ["1"]
        found.health = (rc.strip() == "0", "\n".join(answer).strip())
    return found, [r.parse(facts[str(i)].text if str(i) in facts else "") for i, r in enumerate(resources)]


def _parse_system(lines: list[str]) -> SystemFacts:
    words = (lines[0].split() if lines else []) + [""] * 5
    now = int(words[4]) if words[4].isdigit() else 0
    stamp = lines[1].strip() if len(lines) > 1 else "never"
    age = now - int(stamp) if stamp.isdigit() else None
    pending = tuple(lines[2].split()[1:]) if len(lines) > 2 else ()
    nginx = lines[3].split()[1:2] if len(lines) > 3 else []
    return SystemFacts(os_id=words[0], os_version=words[1], codename=words[2], machine=words[3],
                       now=now, apt_lists_age=age, pending=pending, nginx_version=_version(nginx[0] if nginx else ""))


def _version(text: str) -> tuple[int, ...]:
    """'1.26.3' -> (1, 26, 3); () when the program is not installed."""
    return tuple(int(part) for part in text.split(".") if part.isdigit())
