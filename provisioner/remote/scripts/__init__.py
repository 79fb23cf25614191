"""The remote scripts, as files: each one plain POSIX sh (linted by shellcheck and `sh -n` in the
unit tier) that reads its parameters from UPPERCASE variables and calls functions the caller defines.

`script(name, ...)` is a whole remote script: the protocol's prelude, the parameters as quoted
assignments, the functions, then the file. `fragment(name, ...)` is a piece for another script
(a handler's action, a change): the parameters, then the file.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from ..protocol import PRELUDE
from ..quoting import assign, cmd, function

HERE = Path(__file__).parent


@cache
def text(name: str) -> str:
    return (HERE / name).read_text()


def fragment(name: str, **params: object) -> str:
    return "\n".join([*(assign(k, v) for k, v in params.items()), text(name)])


def script(name: str, functions: dict[str, str] | None = None, **params: object) -> str:
    return "\n".join([PRELUDE, *(function(n, body) for n, body in (functions or {}).items()),
                      fragment(name, **params)])


def bash(name: str, *args: object) -> str:
    """Shell: run one of the bash programs here with bash on the host (on stdin: no file to copy)."""
    return f"{cmd('bash', '-s', '--', *args)} <<'PROVISION_BASH'\n{text(name)}PROVISION_BASH"


def python(name: str, *args: object) -> str:
    """Shell: run one of the Python programs here with python3 on the host (on stdin: no file to copy)."""
    return f"{cmd('python3', '-', *args)} <<'PROVISION_PY'\n{text(name)}PROVISION_PY"
