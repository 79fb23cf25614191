"""Facts: everything the plan needs about one host, read in ONE remote command.

The probe script is the system facts snippet followed by every resource's own probe, each
behind a marker line; `parse` splits the output and lets each resource parse its own part.
"""

from __future__ import annotations

from .resources import APT_STAMP, PENDING_DIR, Resource, SystemFacts

MARK = "@@provision-fact"

SYSTEM_PROBE = f"""\
. /etc/os-release 2>/dev/null
echo "$ID" "$VERSION_ID" "${{VERSION_CODENAME:-none}}" "$(uname -m)" "$(date +%s)"
newest=$(ls -t /var/lib/apt/lists/*Release {APT_STAMP} 2>/dev/null | head -n1)
[ -n "$newest" ] && stat -c %Y "$newest" || echo never
echo pending $(ls {PENDING_DIR} 2>/dev/null)"""


def probe_script(resources: list[Resource], want_diff: bool = False, health: str = "") -> str:
    """`health` (a shell check of the running service) runs alongside the probes; when the plan
    turns out empty, its answer is the deploy's verification, and no second round trip is needed."""
    parts = []
    if health:
        parts.append(f"provision_health=$(mktemp)\n{{ {health}\n}} >\"$provision_health\" 2>&1 & provision_health_pid=$!")
    parts += [f"echo {MARK} system", SYSTEM_PROBE]
    for index, resource in enumerate(resources):
        parts.append(f"echo {MARK} {index}")
        parts.append(f"{{ {resource.probe(want_diff)}\n}} 2>/dev/null")
    if health:
        parts.append(f"wait $provision_health_pid; echo {MARK} health; echo $?\n"
                     f"cat \"$provision_health\"; rm -f \"$provision_health\"")
    return "\n".join(parts)


def parse(output: str, resources: list[Resource]) -> tuple[SystemFacts, list]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith(MARK + " "):
            current = line.split()[1]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    system = _parse_system(sections.get("system", []))
    if "health" in sections:
        rc, *answer = sections["health"] or ["1"]
        system.health = (rc.strip() == "0", "\n".join(answer).strip())
    facts = [resource.parse("\n".join(sections.get(str(i), []))) for i, resource in enumerate(resources)]
    return system, facts


def _parse_system(lines: list[str]) -> SystemFacts:
    words = (lines[0].split() if lines else []) + [""] * 5
    now = int(words[4]) if words[4].isdigit() else 0
    stamp = lines[1].strip() if len(lines) > 1 else "never"
    age = now - int(stamp) if stamp.isdigit() else None
    pending = tuple(lines[2].split()[1:]) if len(lines) > 2 else ()
    return SystemFacts(os_id=words[0], os_version=words[1], codename=words[2], machine=words[3],
                       now=now, apt_lists_age=age, pending=pending)
