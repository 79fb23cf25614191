"""`provision top` (on cli_common.app; cli.py imports this module): a live view of each host's served site.

The samples are taken per host by the engine (engine/top.py) on one session per host kept open;
here the command line is parsed and the rows drawn, in place on a terminal (rich's Live).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .cli_common import AskPass, HostOpt, InvOpt, _hosts, _stream, app
from .config.cli_options import inventory_options
from .errors import EXIT_UNREACHABLE, UserError

COLUMNS = ("host", "req/s", "4xx", "5xx", "p50 ms", "p99 ms", "busy/idle", "queue", "app MiB")


def _row(name: str, s: dict | UserError) -> tuple[str, ...]:
    if isinstance(s, UserError):
        return (name, s.cause, *[""] * (len(COLUMNS) - 2))
    ms = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    workers = f"{s['workers_busy']}/{s['workers_idle']}" if s["uwsgi"] else "-"
    return (name, f"{s['requests_per_s']:.0f}", f"{s['share_4xx']:.1%}", f"{s['share_5xx']:.1%}", ms(s["p50_ms"]),
            ms(s["p99_ms"]), workers, "-" if s["listen_queue"] is None else str(s["listen_queue"]),
            f"{s['app_memory_bytes'] / 2**20:.0f}" if s["uwsgi"] else "-")


def _rows(name: str, s: dict | UserError) -> list[tuple[str, ...]]:
    """The host's row, then (several apps) a row per app: the requests nginx passed to it."""
    apps = [] if isinstance(s, UserError) else s.get("apps", [])
    return [_row(name, s), *(_row(f"  {name}/{a['app']}", a) for a in apps)]


def _table(rows: list[tuple[str, ...]]):
    from rich.table import Table
    table = Table(*COLUMNS, box=None, pad_edge=False)
    for row in rows:
        table.add_row(*row)
    return table


@app.command()
@inventory_options
def top(host: HostOpt, inventory: InvOpt = None,
        once: Annotated[bool, typer.Option("--once", help="One sample, printed; then exit.")] = False,
        json_out: Annotated[bool, typer.Option("--json", help="Samples as JSON lines on stdout.")] = False,
        interval: Annotated[float, typer.Option("--interval", min=0.2, help="Seconds each sample covers.")] = 2.0,
        ask_become_pass: AskPass = False):
    """A live view of each host (and each of its apps): requests/s, 4xx/5xx, latency p50/p99, uWSGI
    workers, queue, memory."""
    from rich.live import Live

    from .engine.fanout import fan_out
    from .engine.top import sample
    from .remote.session import Session, close_all
    from .stack import STACK
    hosts = _hosts(host, inventory, ask_become_pass)
    sessions: dict[str, Session | UserError] = {}

    def one(h):
        try:
            if h.name not in sessions or isinstance(sessions[h.name], UserError):
                sessions[h.name] = Session(h).open()
            return sample(STACK, h, sessions[h.name], interval)
        except UserError as e:
            sessions[h.name] = e
            return e
        except (OSError, EOFError) as e:  # the connection was lost: the next round logs in again
            lost = sessions.pop(h.name, None)
            if lost is not None and not isinstance(lost, UserError):
                lost.close()
            return UserError(f"connection lost: {e}", "it is tried again at the next sample")

    def round_of_samples() -> list:
        """One sample of every host at once (an error is a host's sample: `one` never raises it)."""
        return [r.value for r in fan_out(hosts, one, forks=len(hosts))]

    console = _stream("console")
    try:
        if once:
            samples = round_of_samples()
            _print(console, hosts, samples, json_out)
            raise typer.Exit(EXIT_UNREACHABLE if any(isinstance(s, UserError) for s in samples) else 0)
        if json_out:
            while True:
                _print(console, hosts, round_of_samples(), json_out=True)
        with Live(_table([(h.name, "connecting") + ("",) * (len(COLUMNS) - 2) for h in hosts]),
                  console=console, auto_refresh=False) as live:
            while True:
                live.update(_table([r for h, s in zip(hosts, round_of_samples()) for r in _rows(h.name, s)]),
                            refresh=True)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    finally:
        close_all([s for s in sessions.values() if not isinstance(s, UserError)])


def _print(console, hosts, samples, json_out: bool) -> None:
    if json_out:
        for h, s in zip(hosts, samples):
            print(json.dumps({"host": h.name, **({"error": s.cause} if isinstance(s, UserError) else s)}), flush=True)
    else:
        console.print(_table([r for h, s in zip(hosts, samples) for r in _rows(h.name, s)]))
