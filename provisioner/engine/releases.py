"""`provision releases`: the releases each host keeps, read in one remote script per host."""

from __future__ import annotations

from typing import Any

from ..remote.session import Session
from ..resources import AppRelease
from ..resources.release_meta import KeptRelease, list_script, parse_list
from .stack import Stack


def release_roots(stack: Stack, v: Any) -> list[str]:
    """Where the stack keeps the app's releases on a host (none on a host without an app)."""
    resources, _ = stack.declare(v)
    return [r.root for r in resources if isinstance(r, AppRelease)]


def read_releases(stack: Stack, v: Any, session: Session) -> dict[str, list[KeptRelease]]:
    """Per app root on the host: its kept releases, the current one first, then the most recently live."""
    return {root: parse_list(session.run(list_script(root)).out) for root in release_roots(stack, v)}
