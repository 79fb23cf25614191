"""The day-two commands: `releases`, `rollback`, `history` (on cli_common.app; cli.py imports this module).

Each does its work per host in the engine (engine/releases.py, engine/rollback.py,
engine/history.py); here the command line is only parsed and the answers printed. As in cli.py,
the engine is imported inside the command that needs it.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Optional

import typer

from .cli_common import (DEFAULT_FORKS, AppOpt, AskPass, Forks, HostOpt, InvOpt, _converge, _escape, _hosts,
                         _serial, _show_reports, _stream, _with_app, app)
from .config.cli_options import inventory_options
from .errors import EXIT_UNREACHABLE, UserError

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]


def _each(hosts, forks: int, work) -> list:
    """`work(host, session)` on every host (engine/fanout.py): its value, or the UserError it met."""
    from .engine.fanout import in_sessions
    return [r.error if r.error is not None else r.value for r in in_sessions(hosts, work, forks=forks)]


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)) if epoch else "unknown"


@app.command()
@inventory_options
def releases(host: HostOpt, inventory: InvOpt = None, json_out: JsonOpt = False, forks: Forks = DEFAULT_FORKS,
             ask_become_pass: AskPass = False):
    """The releases each host keeps: when each went live and who shipped it, its commit, which is current."""
    from .engine.releases import read_releases
    from .stack import STACK
    hosts = _hosts(host, inventory, ask_become_pass)
    found = _each(hosts, forks, lambda h, session: read_releases(STACK, h.vars, session))
    unreachable = any(isinstance(f, UserError) for f in found)
    if json_out:
        print(json.dumps({"hosts": [
            {"host": h.name, "error": f.cause} if isinstance(f, UserError) else
            {"host": h.name, "apps": [{"root": root, "releases": [r.as_dict() for r in kept]}
                                      for root, kept in f.items()]}
            for h, f in zip(hosts, found)]}, indent=2))
        raise typer.Exit(EXIT_UNREACHABLE if unreachable else 0)
    console = _stream("console")
    for h, f in zip(hosts, found):
        if isinstance(f, UserError):
            console.print(f"[bold]{h.name}[/] [red]unreachable:[/] {_escape(f.cause)}")
            continue
        for root, kept in f.items() or [("", [])]:
            console.print(f"[bold]{h.name}[/] {root}" + ("" if kept else "  no release"), markup=True)
            for r in kept:
                source = (f"commit {r.meta['commit'][:12]}" + (" (dirty)" if r.meta.get("dirty") else "")
                          if r.meta.get("commit") else "not from a git checkout" if r.meta else "source unknown")
                console.print(f"  {'*' if r.current else ' '} {r.id}  live {_when(r.live_at)}"
                              f" by {r.live_by or 'unknown'}; shipped by {r.meta.get('shipped_by', 'unknown')};"
                              f" {source}; requirements {r.meta.get('requirements_key', 'unknown')}", markup=False)
    raise typer.Exit(EXIT_UNREACHABLE if unreachable else 0)


@app.command()
@inventory_options
def rollback(
    host: HostOpt,
    inventory: InvOpt = None,
    to: Annotated[Optional[str], typer.Option(
        "--to", metavar="RELEASE", help="The kept release to go to (an id or its unique start); default: the "
        "one current before the current one.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Say what would happen; change nothing; exit 4 if "
                                        "a host would change.")] = False,
    json_out: JsonOpt = False,
    forks: Forks = DEFAULT_FORKS,
    ask_become_pass: AskPass = False,
    serial: Annotated[Optional[str], typer.Option(
        "--serial", metavar="N|N%", help="N hosts (or N% of them) at a time, each batch out of the balancers "
        "while it switches; a failed batch stops the roll.")] = None,
    only_app: AppOpt = None,
):
    """Back to a release the hosts keep: no build, no upload; the app (each app) restarts as in a deploy."""
    from .engine.rollback import RollbackStack
    from .stack import STACK
    hosts = _with_app(_hosts(host, inventory, ask_become_pass), only_app)
    reports, rolled = _converge(RollbackStack(STACK, to or ""), "rollback", hosts, inventory, _serial(serial, hosts),
                                forks=forks, check=check)
    raise typer.Exit(_show_reports(reports, rolled, hosts, json_out=json_out, check=check, verbose=False))


@app.command()
@inventory_options
def history(host: HostOpt, inventory: InvOpt = None, last: Annotated[int, typer.Option(
        "--last", "-n", min=1, help="Entries per host.")] = 20, json_out: JsonOpt = False,
            forks: Forks = DEFAULT_FORKS, ask_become_pass: AskPass = False):
    """Each host's deploy history (deploys, rollbacks, failed attempts), several hosts merged by time."""
    from .engine.history import read_history
    hosts = _hosts(host, inventory, ask_become_pass)
    found = _each(hosts, forks, lambda h, session: read_history(session, last))
    merged = sorted(({"host": h.name, **e} for h, f in zip(hosts, found) if not isinstance(f, UserError) for e in f),
                    key=lambda e: e.get("at") or 0)
    errors = {h.name: f.cause for h, f in zip(hosts, found) if isinstance(f, UserError)}
    if json_out:
        print(json.dumps({"entries": merged, "unreachable": errors}, indent=2))
    else:
        console = _stream("console")
        for e in merged:
            console.print(f"{_when(e.get('at'))}  {e['host']}  {e.get('action')} {e.get('result')}  by {e.get('by')}"
                          f"  current {','.join(e.get('current') or []) or 'none'}", markup=False)
            for line in e.get("changes") or []:
                console.print(f"    {line}", markup=False)
            if e.get("error"):
                console.print(f"    error: {e['error']}", markup=False)
        for name, cause in errors.items():
            console.print(f"[bold]{name}[/] [red]unreachable:[/] {_escape(cause)}")
    raise typer.Exit(EXIT_UNREACHABLE if errors else 0)
