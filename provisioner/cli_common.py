"""What every command of the command line shares (cli.py, cli_releases.py, cli_top.py): the typer
app and its global options, the option types, the consoles, how hosts are selected, and a deploy's
run (`_converge`) and report (`_show_reports`), which a rollback reuses.

Like cli.py, it imports only typer before the arguments are parsed: the engine, paramiko, jinja2 and
rich come in inside the function that needs them.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .config.cli_options import selected_hosts
from .errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from .inventory import Host


app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Agentless provisioning over SSH: a WSGI API behind nginx + uWSGI, in one command.")


def __getattr__(name: str) -> "Console":
    """`console` (stdout) and `err` (stderr): rich consoles made on first use, so rich is not
    imported for --help; one message, one line: never wrapped."""
    if name not in ("console", "err"):
        raise AttributeError(name)
    from rich.console import Console
    made = globals()[name] = Console(stderr=name == "err", highlight=False, soft_wrap=True)
    return made


def _stream(name: str) -> "Console":
    return globals().get(name) or __getattr__(name)


def _escape(text: str) -> str:
    from rich.markup import escape
    return escape(text)


HostOpt = Annotated[str, typer.Option("--host", "-H", help="Host or group name (comma list; 'all').")]


InvOpt = Annotated[Optional[list[str]], typer.Option(
    "--inventory", "-i", help="Inventory file (YAML or INI), directory, or comma list of hosts (repeatable).")]


AskPass = Annotated[bool, typer.Option("--ask-become-pass", "-K", help="Ask for the sudo password.")]


# 50 at once: at 50 hosts 1.6x faster than 10 for +9 % controller CPU (docs/benchmarks.md, "--forks")
DEFAULT_FORKS = 50


Forks = Annotated[int, typer.Option("--forks", "-f", min=1, help="Hosts worked on at once.")]


def _version(shown: bool) -> None:
    if shown:
        import importlib.metadata
        print(f"provision {importlib.metadata.version('provision')}")
        raise typer.Exit()


@app.callback()
def _options(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
             version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                   help="Show the version and exit.")] = False):
    """Global options."""


AppOpt = Annotated[Optional[str], typer.Option(
    "--app", metavar="NAME", help="Only this app of the host's apps (setting apps; default: every app).")]


def _with_app(hosts: list, name: Optional[str]) -> list:
    """--app NAME: each host's settings narrowed to that app (config/apps.py)."""
    if not name:
        return hosts
    from .config.apps import with_only_app
    return with_only_app(hosts, name)


def _hosts(host: str, inventory: Optional[list[str]], ask_become_pass: bool = False) -> list[Host]:
    return selected_hosts(host, inventory, ask_become_pass,
                          warn=lambda w: _stream("err").print(f"[yellow]warning:[/] {_escape(w)}"),
                          show=lambda line: _stream("console").print(line, markup=False))


@contextlib.contextmanager
def _progress():
    """A deploy's progress on stderr: on a terminal, one line per host, redrawn in place; otherwise
    (CI logs, a pipe) one plain line per event as it happens. Silent once Ctrl-C came."""
    from .remote.session import interrupted
    err = _stream("err")
    if not err.is_terminal:
        def line(name: str, message: str) -> None:
            if not interrupted():
                err.print(f"{name}: {message}", markup=False)
        yield line
        return
    state: dict[str, str] = {}
    with err.status("starting", spinner="dots") as spinner:
        def progress(name: str, message: str) -> None:
            if not interrupted():
                state[name] = message
                spinner.update("\n".join(f"{h}: {m}" for h, m in state.items()))
        yield progress


def _secrets(hosts: list[Host]) -> dict[str, list[str]]:
    return {h.name: h.secrets() for h in hosts}


def _converge(stack, action: str, hosts: list[Host], inventory, batch_size: str, *, forks: int, check: bool,
              diff: bool = False, sessions=None):
    """Deploy `stack` to the hosts (in batches with --serial) and, unless --check, add each host's
    entry to its history (engine/history.py); the reports and the roll's summary (None: no roll)."""
    from .engine.deploy import deploy as run_deploy
    from .engine.history import record
    with _progress() as progress:
        if batch_size:
            from .engine.rolling import roll
            everyone = {h.name: h for h in hosts} | {h.name: h for h in selected_hosts(
                "all", inventory, False, warn=lambda w: None, show=lambda line: None, usable_only=True)}
            reports, rolled = roll(stack, hosts, list(everyone.values()), batch_size, forks=forks, check=check,
                                   diff=diff, progress=progress)
        else:
            reports, rolled = run_deploy(stack, hosts, forks=forks, check=check, diff=diff, progress=progress,
                                         sessions=sessions), None
    for name, why in (() if check else record(hosts, action, reports, forks).items()):
        _stream("err").print(f"[yellow]warning:[/] {name}: the {action} was not added to the host's history: "
                             f"{_escape(why)}")
    return reports, rolled


def _show_reports(reports, rolled, hosts: list[Host], *, json_out: bool, check: bool, verbose: bool) -> int:
    """The reports (and the roll's summary) for a person or, with --json, a program; the exit code."""
    from .engine import report
    if json_out:
        import json
        out = json.loads(report.as_json(reports, _secrets(hosts)))
        print(json.dumps(out | ({"roll": rolled.as_dict()} if rolled else {}), indent=2))
    else:
        report.show(_stream("console"), reports, _secrets(hosts), check=check, verbose=verbose)
        for line in rolled.lines() if rolled else ():
            _stream("console").print(f"roll: {line}", markup=False)
    return report.exit_code(reports, check)


def _serial(given: Optional[str], hosts: list[Host]) -> str:
    """--serial, else the hosts' `serial` setting (the first that sets one): "" for all at once."""
    from .config.kinds import Invalid
    from .config.topology import SERIAL
    if given is None:
        return next((h.vars.serial for h in hosts if h.vars.serial), "")
    try:
        return SERIAL.check(given)
    except Invalid:
        raise UserError(f"--serial {given!r} is not {SERIAL.desc}", "write it like --serial 1 or --serial 30%") from None
