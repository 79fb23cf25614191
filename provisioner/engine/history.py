"""The deploy history each host keeps: every deploy that changed something or failed, and every
rollback (`provision history`).

One JSON line per entry in HISTORY_FILE on the host (root only), appended after the run by its own
short connection (history_append.sh): when it ended, who ran it from which controller, the action,
its result, what changed (or why it failed), and the release current afterwards. A deploy that
changes nothing and `--check` leave no entry: nothing happened to audit, and a no-op deploy stays
one remote script. Bounded: the last HISTORY_KEEP entries.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from ..errors import UserError
from ..inventory import Host
from ..remote import scripts
from ..remote.quoting import Raw, cmd
from ..remote.session import Session
from ..resources import AppRelease
from ..resources.release_meta import operator
from ..resources.release_switch import ReleaseSwitch
from ..config.values import redact
from .deploy import HostReport
from .status import HostStatus, StepStatus

# A directory of its own (root only): /var/lib/provision must stay open to nginx (the ACME webroot is in it)
HISTORY_FILE = "/var/lib/provision/history/history.jsonl"
HISTORY_KEEP = 1000  # ~300 bytes an entry: at most ~0.3 MB a host


def entry(action: str, report: HostReport) -> dict | None:
    """What a host's report adds to its history (None: nothing happened there to record, or the run
    failed before its remote shell started, e.g. on a template error, and the host stays untouched)."""
    if report.status not in (HostStatus.CHANGED, HostStatus.FAILED) or not report.metrics:
        return None
    changed = [s.decision for s in report.steps if s.status == StepStatus.CHANGED]
    planned = report.plan.changes if report.plan else []
    return {"at": round(time.time(), 3), "by": operator(), "action": action, "result": report.status.value,
            "changes": [f"{d.resource.label()}: {d.reason}" for d in changed or planned],
            "error": report.error or None, "seconds": round(report.seconds, 1)}


def _current_links(report: HostReport) -> list[str]:
    return [f"{d.resource.root}/current" for d in (report.plan.decisions if report.plan else [])
            if isinstance(d.resource, (AppRelease, ReleaseSwitch))]


def record_host(host: Host, action: str, report: HostReport) -> str:
    """Append the report's entry to the host's history; "" when done (or nothing to record), else why not."""
    found = entry(action, report)
    if found is None:
        return ""
    text = redact(json.dumps(found, sort_keys=True), host.secrets())
    script = scripts.fragment("history_append.sh", FILE=HISTORY_FILE, KEEP=HISTORY_KEEP, ENTRY=text[:-1],
                              LINKS="\n".join(_current_links(report)))
    try:
        with Session(host, {}) as session:
            result = session.run(script)
    except UserError as e:
        return e.cause
    return "" if result.ok else result.out.strip() or f"exit code {result.rc}"


def record(hosts: list[Host], action: str, reports: list[HostReport], forks: int) -> dict[str, str]:
    """Each host's entry, hosts in parallel; the hosts whose history could not be written, and why."""
    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(hosts)))) as pool:
        why = list(pool.map(lambda pair: record_host(pair[0], action, pair[1]), zip(hosts, reports)))
    return {h.name: w for h, w in zip(hosts, why) if w}


def read_history(session: Session, last: int) -> list[dict]:
    """The host's last `last` entries, oldest first (a damaged line is skipped)."""
    out = session.run(cmd("tail", "-n", last, HISTORY_FILE, Raw("2>/dev/null || true"))).out
    entries = []
    for line in out.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries
