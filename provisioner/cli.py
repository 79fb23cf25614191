"""The `provision` command line: deploy, logs, status, run, and the labs.

Only typer is imported before the arguments are parsed: the engine, the stack, paramiko, jinja2
and rich come in inside the command that needs them, so `provision --help` and a usage error cost
an interpreter start and typer, nothing more (docs/performance.md; tests/unit/test_cli_imports.py).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Annotated, Optional

import typer
try:  # typer >= 0.20 carries its own copy of click: its usage errors are not click's
    from typer._click.exceptions import ClickException
except ImportError:
    from click.exceptions import ClickException

from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_UNREACHABLE, UserError
from .process_exit import exit_process
from .cli_common import (DEFAULT_FORKS, AppOpt, AskPass, Forks, HostOpt, InvOpt, _converge, _escape, _hosts,
                         _serial, _show_reports, _stream, _with_app, app)
from .config.cli_options import inventory_options

if TYPE_CHECKING:
    from .engine.findings import Finding
    from .inventory import Host


# The sub-apps, imported only when the command line names them (each pulls in its lab's machinery).
_SUB_APPS = {
    "lab": ("provisioner.labs.container.cli", "Local container lab: bare Debian 12 / 13 hosts (systemd-nspawn)."),
    "vm": ("provisioner.labs.vm.cli", "Vagrant VM lab (libvirt) and its inventory."),
}


def _named_command(argv: list[str]) -> str | None:
    """The command a command line names: its first word that is not an option (for shell
    completion, the words being completed)."""
    words = os.environ["COMP_WORDS"].split()[1:] if "COMP_WORDS" in os.environ else argv[1:]
    return next((w for w in words if not w.startswith("-")), None)


def _add_sub_apps(argv: list[str]) -> None:
    """Each sub-app: the real one when named, else an empty one that only lists it in --help."""
    import importlib
    named = _named_command(argv)
    for name, (module, help_text) in _SUB_APPS.items():
        sub = importlib.import_module(module).app if name == named else typer.Typer()
        app.add_typer(sub, name=name, help=help_text)


@app.command()
@inventory_options
def deploy(
    host: HostOpt,
    inventory: InvOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Plan only: change nothing; exit 4 if changes are pending.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Show unified diffs of files.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable report on stdout.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list what is already right, and why.")] = False,
    forks: Forks = DEFAULT_FORKS,
    ask_become_pass: AskPass = False,
    serial: Annotated[Optional[str], typer.Option(
        "--serial", metavar="N|N%", help="Rolling release: N hosts (or N% of them) at a time, each batch out "
        "of the balancers while it deploys; a failed batch stops the roll.")] = None,
    only_app: AppOpt = None,
):
    """Make the hosts match the roles: install, configure, restart what changed, verify."""
    from .remote.session import Sessions
    hosts = _with_app(_hosts(host, inventory, ask_become_pass), only_app)
    batch_size = _serial(serial, hosts)
    # All hosts at once: their logins start now, while the stack and the engine load.
    with contextlib.closing(Sessions(hosts, early=not batch_size and len(hosts) <= forks)) as sessions:
        from .stack import STACK  # the default stack: roles/, shipped as provisioner.stack
        reports, rolled = _converge(STACK, "deploy", hosts, inventory, batch_size, forks=forks, check=check,
                                    diff=diff, sessions=sessions)
    raise typer.Exit(_show_reports(reports, rolled, hosts, json_out=json_out, check=check, verbose=verbose))


def _log_sources(chosen: Optional[list[str]]) -> Optional[list[str]]:
    """--service: one of the default stack's log services (read from it only when `logs` runs)."""
    from .stack import STACK
    for name in chosen or ():
        if name not in STACK.log_services:
            names = ", ".join(repr(s) for s in STACK.log_services)
            raise typer.BadParameter(f"{name!r} is not one of {names}.")
    return chosen


@app.command()
@inventory_options
def logs(
    host: HostOpt,
    inventory: InvOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-F", help="Keep streaming until Ctrl-C.")] = False,
    service: Annotated[Optional[list[str]], typer.Option(
        "--service", "-s", metavar="[nginx|uwsgi|app]", callback=_log_sources,
        help="nginx, uwsgi or app (repeatable; default all).")] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines of history per log.")] = 20,
    ask_become_pass: AskPass = False,
    only_app: AppOpt = None,
):
    """Show (or follow) nginx's access and error logs and each app's uWSGI journal, host-prefixed."""
    from .config.values import redact
    from .engine.fanout import fan_out
    from .remote.session import Session, close_all
    from .stack import STACK
    hosts = _with_app(_hosts(host, inventory, ask_become_pass), only_app)
    sources = service or list(STACK.log_services)
    sessions: list[Session] = []
    width = max(len(h.name) for h in hosts)
    console, err = _stream("console"), _stream("err")   # made here: the hosts' threads share them
    errors: list[UserError] = []

    def pump(h: Host) -> None:
        """The host's log lines, printed as they come (each print is one whole line)."""
        try:
            session = Session(h).open()
            sessions.append(session)
            hide = h.secrets()
            for line in session.stream(STACK.log_command(h.vars, sources, lines, follow)):
                console.print(f"{h.name:<{width}} {redact(line, hide)}", markup=False, soft_wrap=True)
        except (OSError, EOFError):
            pass  # the stream was closed by Ctrl-C

    def failed(result) -> None:
        if result.error:
            errors.append(result.error)
            err.print(f"[red]error:[/] {_escape(result.error.cause)}\n  [dim]fix:[/] {_escape(result.error.fix)}")
    try:
        fan_out(hosts, pump, forks=len(hosts), finished=failed)
    except KeyboardInterrupt:
        pass
    finally:
        close_all(sessions)
    raise typer.Exit(EXIT_UNREACHABLE if errors else 0)


_LEVEL_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


def _print_finding(f: Finding, with_fix: bool) -> None:
    from .engine.findings import Level
    console = _stream("console")
    label = "" if f.level is Level.OK else f"[{_LEVEL_STYLE[f.level.value]}]{f.level.upper()}[/] "
    console.print(f"  {_escape(f.check)}: {label}{_escape(f.found)}")
    if with_fix and f.fix and f.level is not Level.OK:
        console.print(f"    [dim]fix:[/] {_escape(f.fix)}")


def _look(host: str, inventory, forks: int, ask_become_pass: bool, script, with_fix: bool,
          only_app: Optional[str] = None) -> int:
    """Run a stack's read-only script on each host and print its lines and findings; the exit code."""
    from .engine import findings
    from .engine.fanout import in_sessions
    hosts = _with_app(_hosts(host, inventory, ask_become_pass), only_app)
    console = _stream("console")
    code = 0
    for result in in_sessions(hosts, lambda h, session: session.run(script(h.vars)).out, forks=forks):
        console.print(f"[bold]{result.host.name}[/]")
        if result.error:
            code = EXIT_UNREACHABLE
            console.print(f"  [red]unreachable:[/] {_escape(result.error.cause)}")
            continue
        found, lines = findings.parse(result.value)
        for line in lines:
            console.print(f"  {line}", markup=False)
        for f in found:
            _print_finding(f, with_fix)
        if with_fix and any(f.level is findings.Level.FAIL for f in found):
            code = max(code, EXIT_FAILED)
    return code


@app.command()
@inventory_options
def status(host: HostOpt, inventory: InvOpt = None, forks: Forks = DEFAULT_FORKS, ask_become_pass: AskPass = False,
           only_app: AppOpt = None):
    """Services, versions, current release, workers and health of each host (of each app)."""
    from .stack import STACK
    raise typer.Exit(_look(host, inventory, forks, ask_become_pass, STACK.status, with_fix=False, only_app=only_app))


@app.command()
@inventory_options
def doctor(host: HostOpt, inventory: InvOpt = None, forks: Forks = DEFAULT_FORKS, ask_become_pass: AskPass = False,
           only_app: AppOpt = None):
    """What is wrong with each host's served site, with what to do: exit 1 when something fails."""
    from .stack import STACK
    raise typer.Exit(_look(host, inventory, forks, ask_become_pass, STACK.doctor, with_fix=True, only_app=only_app))


@app.command()
@inventory_options
def run(host: HostOpt, inventory: InvOpt = None, forks: Forks = DEFAULT_FORKS, ask_become_pass: AskPass = False,
        words: Annotated[Optional[list[str]], typer.Argument(
            metavar="-- COMMAND...", help="The command, after -- (every option before it is run's own).")] = None):
    """Run an ad-hoc shell command (as root) on the hosts: provision run -H web -- uptime"""
    import shlex

    from .config.values import redact
    from .engine.fanout import in_sessions
    words = words or []
    command = words[0] if len(words) == 1 else shlex.join(words)   # one argument: a shell line, as ssh takes
    if not command:
        raise UserError("no command given", "put it after --, e.g. provision run -H lab1 -- uptime")
    hosts = _hosts(host, inventory, ask_become_pass)
    console = _stream("console")
    code = 0
    for outcome in in_sessions(hosts, lambda h, session: session.run(command), forks=forks):
        h = outcome.host
        if outcome.error:
            code = max(code, EXIT_UNREACHABLE)
            console.print(f"[bold]{h.name}[/] [red]unreachable:[/] {_escape(outcome.error.cause)}")
            continue
        result = outcome.value
        style = "green" if result.ok else "red"
        console.print(f"[bold]{h.name}[/] [{style}]rc={result.rc}[/]")
        for line in redact(result.out, h.secrets()).splitlines():
            console.print(f"  {line}", markup=False)
        if not result.ok:
            code = max(code, EXIT_FAILED)
    raise typer.Exit(code)


def _interrupt(signum, frame) -> None:
    """Ctrl-C: end every connection at once (threads waiting on a host give up), then stop.
    No connection was ever opened unless the session module was imported."""
    session = sys.modules.get(f"{__package__}.remote.session")
    if session is not None:
        session.interrupt_all()
    raise KeyboardInterrupt


def _json_error(cause: str, fix: str, code: int) -> None:
    """With --json, an error is a JSON object on stdout too, for the program reading it."""
    if "--json" in sys.argv:
        import json
        print(json.dumps({"error": cause, "fix": fix, "exit_code": code}))


from . import cli_releases, cli_top  # noqa: E402,F401  (register releases, rollback, history, top)


def main() -> None:
    import signal
    debug = "--debug" in sys.argv
    signal.signal(signal.SIGINT, _interrupt)
    if not debug:  # paramiko's own thread logs a lost or refused connection as tracebacks: we report it
        import logging
        logging.getLogger("paramiko").addHandler(logging.NullHandler())
    _add_sub_apps(sys.argv)
    try:
        code = app(standalone_mode=False)  # typer turns Ctrl-C into 130
    except UserError as e:
        _json_error(e.cause, e.fix, e.code)
        _stream("err").print(f"[red]error:[/] {_escape(e.cause)}")
        if e.fix:
            _stream("err").print(f"  [dim]fix:[/] {_escape(e.fix)}")
        if debug:
            raise
        code = e.code
    except typer.Abort:
        code = EXIT_INTERRUPTED
    except ClickException as e:  # usage: a missing or bad option (exit 2)
        _json_error(e.format_message(), "see provision --help", e.exit_code)
        e.show()
        code = e.exit_code
    except Exception as e:  # a bug, not the user's doing
        if debug:
            raise
        _stream("err").print(f"[red]internal error:[/] {type(e).__name__}: {e} (run again with --debug for the traceback)")
        code = EXIT_FAILED
    if code == EXIT_INTERRUPTED:
        _stream("err").print("[red]interrupted:[/] every connection was closed; a step already running on a host finishes there")
        _stream("err").print("  [dim]fix:[/] run the same command again; it converges")
    exit_process(code or 0)
