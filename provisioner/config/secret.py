"""Secrets: values that are never shown (written `!secret`, decrypted from ansible-vault, sudo passwords)."""

from __future__ import annotations

import copy
from typing import Any

MASK = "******"


class Secret(str):
    """A string that is never shown: its repr is masked and `redact()` removes it from output."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"


def as_secrets(value: Any) -> Any:
    """`value` with every string in it (not the mapping keys) made a Secret: what a vault-encrypted file holds."""
    if isinstance(value, dict):
        secret = copy.copy(value)            # keeps a mapping's subclass and attributes (its key lines)
        secret.update((key, as_secrets(item)) for key, item in value.items())
        return secret
    if isinstance(value, list):
        return [as_secrets(item) for item in value]
    return Secret(value) if isinstance(value, str) else value
