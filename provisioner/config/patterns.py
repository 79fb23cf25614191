"""Ansible's host patterns: `web`, `all`, `web:db` or `web,db` (union), `web:!prod2` (but not),
`web:&prod` (and also in), globs (`web*`), `~regex` (matched at the start of the name). Every name must
match something: a typo is an error naming the close match, not an empty run."""

from __future__ import annotations

import difflib
import fnmatch
import re

from provisioner.errors import UserError

_TERM = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")


def split_pattern(pattern: str) -> list[str]:
    """'a,b' and 'a:b' -> ['a', 'b']; a comma list may hold colons (`~web:\\d`), a colon list may hold
    ranges (`web[1:3]`) as in Ansible."""
    parts = pattern.split(",") if "," in pattern else _TERM.findall(pattern)
    return [part.strip() for part in parts if part.strip()]


def select(pattern: str, hosts: list[str], groups: dict[str, list[str]], source: str) -> list[str]:
    """The hosts (in inventory order) `pattern` names; `source` is the inventory, for messages."""
    terms = split_pattern(pattern or "")
    if not terms:
        raise UserError("no host or group given", f"name a host or group of {source}, or all")
    union = [t for t in terms if t[0] not in "!&"] or ["all"]
    chosen: set[str] = set()
    for term in union:
        chosen |= _matches(term, hosts, groups, source, selecting=True)
    for term in (t[1:] for t in terms if t[0] == "&"):
        chosen &= _matches(term, hosts, groups, source)
    for term in (t[1:] for t in terms if t[0] == "!"):
        chosen -= _matches(term, hosts, groups, source)
    return [name for name in hosts if name in chosen]


def _matches(term: str, hosts: list[str], groups: dict[str, list[str]], source: str,
             selecting: bool = False) -> set[str]:
    if term in groups:
        if selecting and not groups[term]:
            raise UserError(f"group {term!r} of {source} has no hosts", "add hosts to it or choose another")
        return set(groups[term]) | ({term} if term in hosts else set())
    if term in hosts:
        return {term}
    if term.startswith("~"):
        try:
            regex = re.compile(term[1:])
        except re.error as error:
            raise UserError(f"host pattern {term!r} is not a valid regular expression: {error}",
                            "fix the expression after ~ (Python syntax)") from None
        match = regex.match
    elif any(c in term for c in "*?["):
        match = re.compile(fnmatch.translate(term)).match
    else:
        match = None
    if match:
        found = {h for h in hosts if match(h)} | {h for g in groups if match(g) for h in groups[g]}
        if found:
            return found
    close = difflib.get_close_matches(term.lstrip("~"), list(hosts) + list(groups), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    shown = ", ".join(hosts[:20]) + (", ..." if len(hosts) > 20 else "")
    raise UserError(f"no host or group {term!r} in {source}{hint}",
                    f"choose from hosts: {shown}; groups: {', '.join(groups)}")
