"""Shell one-liners from words: every word quoted (shlex.quote) unless it is marked as shell syntax.

    cmd("chmod", "0640", "/etc/x y")              -> chmod 0640 '/etc/x y'
    cmd("systemctl", "start", name, Raw("||"), "exit", 1)
"""

from __future__ import annotations

import shlex


class Raw(str):
    """Shell syntax the shell must see as is: an operator, a redirection, a glob."""


def cmd(*words: object) -> str:
    return " ".join(w if isinstance(w, Raw) else shlex.quote(str(w)) for w in words)


def assign(name: str, value: object) -> str:
    return f"{name}={shlex.quote(str(value))}"


def function(name: str, body: str) -> str:
    """A shell function definition; an empty body is `:` (sh refuses an empty one)."""
    return "\n".join([name + "() {", body.strip("\n") or ":", "}"])
