"""`provision top`: samples of each host's served site, read on a session that stays open between them.

What a sample holds is the stack's business (Stack.top: one JSON object); here it is only taken.
"""

from __future__ import annotations

import json

from ..errors import UserError
from ..inventory import Host
from ..remote.session import Session
from .stack import Stack


def sample(stack: Stack, host: Host, session: Session, seconds: float) -> dict:
    """One sample of the host over `seconds`: a dict of the stack's figures."""
    result = session.run(stack.top(host.vars, seconds))
    lines = result.out.strip().splitlines()
    if not result.ok or not lines:
        raise UserError(f"{host.name}: could not sample it: {lines[-1] if lines else f'exit code {result.rc}'}",
                        f"deploy it first, or see what is wrong: provision doctor -H {host.name}")
    return json.loads(lines[-1])
