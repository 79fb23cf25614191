"""What the user hands the controller itself, checked before it is used: a path that must be a regular
file (a FIFO would block open() forever) and a password prompt that needs a terminal."""

from __future__ import annotations

import sys
from pathlib import Path

from provisioner.errors import UserError


def refuse_special_file(path: Path, what: str, name: str, fix: str) -> None:
    """A FIFO, socket or device given as a file: refused before open() (a FIFO would block it forever)."""
    try:
        if path.exists() and not path.is_file() and not path.is_dir():
            raise UserError(f"{what} {name} is not a regular file (a pipe, socket or device)", fix)
    except OSError as error:
        raise UserError(f"cannot read {what} {name}: {error.strerror}", "check the path and its permissions") from None


def ask_on_terminal(option: str, fix: str) -> None:
    """`option` asks for a password: refused up front when there is no terminal to ask on (getpass would
    read the password from stdin after a warning, or end in EOF)."""
    try:
        with open("/dev/tty"):
            return
    except OSError:
        if not sys.stdin.isatty():
            raise UserError(f"{option} asks for a password, but there is no terminal to ask on", fix) from None
