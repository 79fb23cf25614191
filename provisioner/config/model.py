"""What every inventory format reads into: groups (vars, parents, hosts, priority) and hosts' own vars,
each vars block already sorted by known_settings, with where each value was written and the directory
its relative paths are relative to. Several inventory files read into one model, as Ansible merges them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from provisioner.errors import UserError
from provisioner.config.values import RawVars, known_settings

NAME = re.compile(r"[^\s,]+")


def kind_of(value: Any) -> str:
    """What a wrong value is, for messages: 'a list', 'a string ('x')'."""
    kinds = {list: "a list", dict: "a mapping", str: "a string", bool: "a boolean", int: "a number",
             float: "a number"}
    kind = next((k for t, k in kinds.items() if isinstance(value, t)), type(value).__name__)
    return f"{kind} ({value!r})" if isinstance(value, (str, int, float)) else kind


def merge(into: RawVars, block: RawVars) -> None:
    """`block` over `into`, with the origins and base directories of its values."""
    into.update(block)
    into.origins.update(block.origins)
    into.bases.update(block.bases)


class Group:
    def __init__(self, name: str):
        self.name = name
        self.vars = RawVars()
        self.parents: set[str] = set()
        self.hosts: list[str] = []
        self.priority = 1


class Model:
    """Groups and hosts read so far; `warnings` collects what was ignored or looks wrong (each once)."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {"all": Group("all")}
        self.children: dict[str, list[str]] = {}   # group -> its child groups, in the order they were read
        self.host_vars: dict[str, RawVars] = {}
        self.files: dict[str, str] = {}          # host -> the source that named it first, for messages
        self.sources_with_hosts: set[str] = set()
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def vars_block(self, value: Mapping, where: str, at: str, lines: Mapping, base: Path) -> RawVars:
        """One block of vars written at `at` (file, or file:line with `lines[name]`), for `where` ("group api")."""
        raw = RawVars(value, origins={k: f"{where}, {at}:{lines[k]}" if k in lines else f"{where}, {at}"
                                      for k in value})
        kept, warnings = known_settings(raw, where=where, defer=True)
        for warning in warnings:
            self.warn(warning)
        kept.bases.update((name, base) for name in kept)
        return kept

    def group(self, name: str, parent: str | None = None) -> Group:
        group = self.groups.setdefault(name, Group(name))
        if parent:
            group.parents.add(parent)
            if name not in self.children.setdefault(parent, []):
                self.children[parent].append(name)
        return group

    def set_priority(self, group: Group, value: Any, at: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{at}: ansible_group_priority of group {group.name} must be an integer",
                            "write it like `ansible_group_priority: 10`")
        group.priority = value

    def add_host(self, name: str, group: str, kept: RawVars, source: str) -> None:
        """Host `name` in `group` with its own vars `kept`, read from `source`; a host listed again (in the
        same or another source) merges, the last value winning, as in Ansible."""
        self.files.setdefault(name, source)
        self.sources_with_hosts.add(source)
        merged = self.host_vars.setdefault(name, RawVars())
        for var, value in kept.items():
            if var in merged and merged[var] != value:
                self.warn(f"{var} of host {name} is set twice ({merged.origins[var]}; {kept.origins[var]}); "
                          "the last one wins")
        merge(merged, kept)
        if name not in self.group(group).hosts:
            self.groups[group].hosts.append(name)

    # --- after reading: depth, precedence, membership ----------------------------------------------

    def depths(self) -> dict[str, int]:
        """Each group's depth: its longest path from all (Ansible's rule: deeper groups win)."""
        depth: dict[str, int] = {"all": 0}

        def visit(name: str, path: tuple[str, ...]) -> int:
            if name in path:
                raise UserError(f"groups contain each other: {' > '.join(path + (name,))}",
                                "remove one of them from the other's children")
            if name not in depth:
                parents = self.groups[name].parents or {"all"}
                depth[name] = 1 + max(visit(parent, path + (name,)) for parent in parents)
            return depth[name]
        for name in self.groups:
            visit(name, ())
        return depth

    def ancestors(self, name: str) -> set[str]:
        found = {name}
        for parent in self.groups[name].parents:
            found |= self.ancestors(parent)
        return found

    def host_groups(self) -> dict[str, list[str]]:
        """host -> its groups (ancestors included, `all` not) in precedence order, weakest first."""
        depth = self.depths()
        direct: dict[str, set[str]] = {name: set() for name in self.host_vars}
        for group in self.groups.values():
            for host in group.hosts:
                direct[host] |= self.ancestors(group.name)
        for host, groups in direct.items():
            if groups <= {"all", "ungrouped"}:
                if host not in self.group("ungrouped", "all").hosts:
                    self.groups["ungrouped"].hosts.append(host)
                groups.add("ungrouped")
                depth.setdefault("ungrouped", 1)
        key = lambda g: (depth[g], self.groups[g].priority, g)   # noqa: E731
        return {host: sorted(groups - {"all"}, key=key) for host, groups in direct.items()}

    def members(self) -> dict[str, list[str]]:
        """group -> its hosts in Ansible's order: its own, then its children's, level by level (`all`:
        its own, then ungrouped's, then the top groups' in the order they were read)."""
        children = {name: list(self.children.get(name, ())) for name in self.groups}
        tops = [g for g in self.groups if g != "all" and not self.groups[g].parents - {"all"}]
        children["all"] = list(dict.fromkeys(["ungrouped"] * ("ungrouped" in self.groups) + tops))
        members = {}
        for name in self.groups:
            level, seen, hosts = [name], {name}, []
            while level:
                hosts += [h for g in level for h in self.groups[g].hosts]
                level = [c for g in level for c in children[g] if c not in seen and not seen.add(c)]
            members[name] = list(dict.fromkeys(hosts))
        return members
