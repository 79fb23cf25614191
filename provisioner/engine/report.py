"""Report: what happened, per host, for a person (rich) or a program (--json). Secrets are masked."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from ..errors import EXIT_CHANGES_PENDING, EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE
from ..config.values import redact
from .deploy import HostReport
from .status import HostStatus, StepStatus

STYLE = {HostStatus.OK: "green", HostStatus.CHANGED: "yellow", HostStatus.PENDING: "yellow",
         HostStatus.FAILED: "bold red", HostStatus.UNREACHABLE: "bold magenta"}


def exit_code(reports: list[HostReport], check: bool) -> int:
    statuses = {r.status for r in reports}
    if HostStatus.FAILED in statuses:
        return EXIT_FAILED
    if HostStatus.UNREACHABLE in statuses:
        return EXIT_UNREACHABLE
    if check and HostStatus.PENDING in statuses:
        return EXIT_CHANGES_PENDING
    return EXIT_OK


def show(console: Console, reports: list[HostReport], secrets: dict[str, list[str]], *,
         check: bool, verbose: bool) -> None:
    for r in reports:
        hide = secrets.get(r.host, [])
        console.print(Text.assemble((f"{r.host}", "bold"), "  ", (r.status.upper(), STYLE[r.status]),
                                    f"  ({r.seconds:.2f} s)"))
        if r.plan:
            steps = {id(s.decision): s for s in r.steps}
            for d in r.plan.decisions:
                step = steps.get(id(d))
                if not d.changed:
                    if verbose:
                        _entry(console, ("ok", "green"), d.resource.label(), d.reason)
                    continue
                status = "would change" if check else (step.status if step else StepStatus.SKIPPED)
                style = {StepStatus.CHANGED: "yellow", "would change": "yellow",
                         StepStatus.FAILED: "red"}.get(status, "dim")
                _entry(console, (status, style), d.resource.label(), redact(d.reason, hide))
                if d.diff:
                    console.print(Text(redact(d.diff, hide), style="cyan"), end="")
            if check and r.plan.left_pending:
                console.print(f"  [yellow]would run[/] handlers {escape(', '.join(r.plan.left_pending))}  "
                              "[dim]an interrupted earlier run changed files and did not run them[/]")
            ok = sum(1 for d in r.plan.decisions if not d.changed)
            if not verbose and ok:
                console.print(f"  [green]ok[/]       {ok} resource(s) already as wanted [dim](-v shows why)[/]")
        for h in r.handlers:
            style = "red" if h.failed else "blue"
            console.print(f"  [{style}]handler[/]  {escape(h.handler.name)}: {escape(redact(h.message, hide))}")
        if r.verified and r.status != HostStatus.FAILED:
            console.print(f"  [green]verified[/] {escape(redact(r.verified, hide))}")
        if r.error:
            console.print(f"  [red]error:[/] {escape(redact(r.error, hide))}")
            if r.fix:
                console.print(f"  [dim]fix:[/]   {escape(r.fix)}")
        if r.details:
            for line in redact(r.details, hide).strip().splitlines()[-40:]:
                console.print(Text("    | " + line, style="dim"))
    counts = {s: sum(1 for r in reports if r.status == s) for s in STYLE}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    changed = sum(r.changed_count for r in reports)
    console.print(f"[bold]summary:[/] {len(reports)} host(s): {summary}; "
                  f"{changed} change(s) {'pending' if check else 'made'}")


def _entry(console: Console, status: tuple[str, str], label: str, reason: str) -> None:
    """`  status   label  reason`, one line. On a terminal too narrow for it, the reason wraps under its
    own first word, or, when the label leaves it less than REASON_ROOM columns, goes under the label."""
    head = Text.assemble("  ", (f"{status[0]:<8}", status[1]), " ", label, "  ")
    body = Text(reason, style="dim")
    if not console.is_terminal or head.cell_len + body.cell_len <= console.width:
        console.print(Text.assemble(head, body))
        return
    beside = console.width - head.cell_len >= REASON_ROOM
    if beside:
        indent = head.cell_len
    else:
        head.rstrip()
        console.print(head)
        indent = head.cell_len - len(label) + 2   # under the label, two columns in
    for n, line in enumerate(body.wrap(console, max(REASON_ROOM // 2, console.width - indent))):
        line.rstrip()
        console.print(Text.assemble(head if beside and n == 0 else " " * indent, line))


REASON_ROOM = 40


def as_json(reports: list[HostReport], secrets: dict[str, list[str]]) -> str:
    out = []
    for r in reports:
        hide = secrets.get(r.host, [])
        steps = {id(s.decision): s for s in r.steps}
        resources = []
        for d in (r.plan.decisions if r.plan else []):
            step = steps.get(id(d))
            status = StepStatus.OK if not d.changed else (step.status if step else (
                StepStatus.PENDING if r.status == HostStatus.PENDING else StepStatus.SKIPPED))
            resources.append({"resource": d.resource.label(), "status": status, "reason": redact(d.reason, hide),
                              "diff": redact(d.diff, hide) if d.diff else None,
                              "output": (redact(step.output, hide) if step and step.status == StepStatus.FAILED
                                         else None)})
        out.append({
            "host": r.host, "status": r.status, "changed": r.changed_count, "seconds": round(r.seconds, 3),
            "resources": resources,
            "handlers": [{"name": h.handler.name, "status": h.status, "message": redact(h.message, hide)}
                         for h in r.handlers],
            "handlers_left_pending": list(r.plan.left_pending) if r.plan else [],
            "verified": redact(r.verified, hide), "error": redact(r.error, hide) or None, "fix": r.fix or None,
            "details": redact(r.details, hide) or None, "remote": r.metrics,
        })
    return json.dumps({"hosts": out}, indent=2)
