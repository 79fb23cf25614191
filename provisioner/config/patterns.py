"""Ansible's host patterns, evaluated as Ansible's InventoryManager does: `web`, `all`, `web:db` or `web,db`
(union), `web:!prod2` (but not), `web:&prod` (and also in), globs (`web*`), `~regex` (matched at the start
of the name), subscripts (`web[0]`, `web[1:3]`, `web[2:]`, `web[-1]`: the group's hosts counted from 0).
Hosts come out in the pattern's order, each group's hosts in the group's order (its own, then its
children's), which decides --serial batches. Stricter than Ansible (docs/settings.md): a name that
matches nothing is an error naming the close match, not a warning and an empty run."""

from __future__ import annotations

import difflib
import fnmatch
import re
from typing import Callable

from provisioner.errors import UserError

_TERM = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_BALANCED = re.compile(r"(?:[^\[\]]|\[[^\[\]]*\])*")
# Ansible's PATTERN_WITH_SUBSCRIPT: a pattern, then [N], [-N], [N:M], [N:] (or the removed [N-M]).
_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")
_SUBSCRIPT_HELP = "a subscript picks from a group's hosts, counted from 0: web[0], web[1:3], web[2:], web[-1]"


def split_pattern(pattern: str) -> list[str]:
    """'a,b' and 'a:b' -> ['a', 'b']; a comma list may hold colons (`~web:\\d`), a colon list may hold
    ranges (`web[1:3]`) as in Ansible. A `[` left open is an error (Ansible would drop it)."""
    if not _BALANCED.fullmatch(pattern):
        raise UserError(f"host pattern {pattern!r} has a '[' without its ']' (or a ']' without its '[')",
                        f"close the bracket; {_SUBSCRIPT_HELP}")
    parts = pattern.split(",") if "," in pattern else _TERM.findall(pattern)
    return [part.strip() for part in parts if part.strip()]


def select(pattern: str, hosts: list[str], groups: dict[str, list[str]], source: str) -> list[str]:
    """The hosts `pattern` names, in Ansible's order; `groups` maps each group to its hosts in Ansible's
    order; `source` is the inventory, for messages. A pattern that selects no host is an error."""
    terms = split_pattern(pattern or "")
    if not terms:
        raise UserError("no host or group given", f"name a host or group of {source}, or all")
    union = [t for t in terms if t[0] not in "!&"] or ["all"]
    chosen: list[str] = []
    for term in union + [t for t in terms if t[0] == "&"] + [t for t in terms if t[0] == "!"]:
        if term in hosts:
            chosen.append(term)
            continue
        that = _matches(term.lstrip("!&"), hosts, groups, source)
        if term[0] == "!":
            chosen = [h for h in chosen if h not in that]
        elif term[0] == "&":
            chosen = [h for h in chosen if h in that]
        else:
            chosen += that
    chosen = list(dict.fromkeys(chosen))
    if not chosen:
        empty = [g for g in (_split_subscript(t)[0] for t in union) if not groups.get(g, True)]
        why = f" (group {empty[0]!r} has no hosts)" if empty else ""
        raise UserError(f"host pattern {pattern!r} selects no host of {source}{why}",
                        "add hosts to that group, or name hosts or groups that have some")
    return chosen


def _matches(term: str, hosts: list[str], groups: dict[str, list[str]], source: str) -> list[str]:
    """Ansible's _match_one_pattern: the hosts of the groups the term matches (and the hosts it matches
    when no group does, or it is a glob or regex), then its subscript."""
    expr, subscript = _split_subscript(term)
    match = _matcher(expr)
    matching_groups = [g for g in groups if match(g)]
    found = [h for g in matching_groups for h in groups[g]]
    if not matching_groups or expr[0] == "~" or any(c in expr for c in ".?*["):
        found += [h for h in hosts if match(h)]
    if not found and not matching_groups:
        raise _no_match(term, expr, subscript, hosts, groups, source)
    return _apply_subscript(term, found, subscript) if subscript else found


def _split_subscript(term: str) -> tuple[str, tuple[int, int | None] | None]:
    match = _SUBSCRIPT.match(term) if term[0] != "~" else None
    if not match:
        return term, None
    expr, index, start, separator, end = match.groups()
    if index:
        return expr, (int(index), None)
    if separator == "-":
        raise UserError(f"host pattern {term!r}: Ansible removed the [x-y] subscript", f"write {expr}[{start}:{end}]")
    return expr, (int(start), int(end) if end else -1)


def _apply_subscript(term: str, found: list[str], subscript: tuple[int, int | None]) -> list[str]:
    """Ansible's _apply_subscript: [N] one host (N < 0 from the end), [N:M] N to M inclusive, [N:] N on."""
    start, end = subscript
    if not found:
        return found
    if end is None:
        if not -len(found) <= start < len(found):
            raise UserError(f"host pattern {term!r}: there is no host [{start}], the pattern before it selects "
                            f"{len(found)} (0 to {len(found) - 1})", _SUBSCRIPT_HELP)
        return [found[start]]
    picked = found[start:(len(found) - 1 if end == -1 else end) + 1]
    if not picked:
        raise UserError(f"host pattern {term!r} selects no host: the pattern before it selects {len(found)} "
                        f"(0 to {len(found) - 1})", _SUBSCRIPT_HELP)
    return picked


def _matcher(expr: str) -> Callable[[str], object]:
    if expr.startswith("~"):
        try:
            return re.compile(expr[1:]).match
        except re.error as error:
            raise UserError(f"host pattern {expr!r} is not a valid regular expression: {error}",
                            "fix the expression after ~ (Python syntax)") from None
    return re.compile(fnmatch.translate(expr)).match


def _no_match(term: str, expr: str, subscript, hosts: list[str], groups: dict[str, list[str]],
              source: str) -> UserError:
    if subscript:
        return UserError(f"no host or group {expr!r} in {source}: as in Ansible, {term!r} is {expr!r} with a "
                         "subscript, not a glob", f"name the hosts (a,b) or use a glob like {expr}?; {_SUBSCRIPT_HELP}")
    close = difflib.get_close_matches(expr.lstrip("~"), list(hosts) + list(groups), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    shown = ", ".join(hosts[:20]) + (", ..." if len(hosts) > 20 else "")
    return UserError(f"no host or group {expr!r} in {source}{hint}",
                     f"choose from hosts: {shown}; groups: {', '.join(groups)}")
