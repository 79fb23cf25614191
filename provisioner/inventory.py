"""Load an Ansible-format YAML inventory and select hosts from it.

The format is Ansible's: top-level groups (usually just `all`), each with `hosts` (a mapping; a host's
value is its vars or nothing), `children` (nested groups, any depth) and `vars`. Host names may carry
a port (`db1:2222`) and ranges (`web[01:20].example.com`). Vars precedence is Ansible's: all.vars <
groups, shallow before deep (same depth: by ansible_group_priority, then name) < host vars.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import provisioner
from provisioner.errors import UserError
from provisioner.variables import InventoryLoader, RawVars, Secret, Vars, known_settings, resolve

DEFAULT_INVENTORY = Path("inventories")


@dataclass(eq=False)
class Host:
    name: str
    address: str
    port: int
    user: str
    key_file: Path | None
    become: bool
    become_password: Secret | None
    groups: list[str]        # every group the host is in (not `all`), in precedence order
    vars: Vars = field(repr=False)

    def __str__(self) -> str:
        return self.name

    def secrets(self) -> list[str]:
        """The host's secrets: its settings' and a sudo password set after loading (`replace(h, ...)`)."""
        found = self.vars.secrets()
        if self.become_password and self.become_password not in found:
            found.append(str(self.become_password))
        return found


@dataclass
class Inventory:
    path: Path
    hosts: dict[str, Host]                     # in the order the file gives them
    groups: dict[str, list[str]]               # group -> its hosts (with its children's), `all` included
    warnings: list[str] = field(default_factory=list)

    def select(self, pattern: str) -> list[Host]:
        """Hosts named by `pattern`: a host, a group, `all`, a glob (`web*`), or a comma list of them."""
        items = [item.strip() for item in (pattern or "").split(",") if item.strip()]
        if not items:
            raise UserError("no host or group given", f"name a host or group of {self.path}, or all")
        chosen: set[str] = set()
        for item in items:
            chosen.update(self._match(item))
        return [host for name, host in self.hosts.items() if name in chosen]

    def _match(self, item: str) -> list[str]:
        if item in self.groups:
            if not self.groups[item]:
                raise UserError(f"group {item!r} of {self.path} has no hosts", "add hosts to it or choose another")
            return self.groups[item] + ([item] if item in self.hosts else [])
        if item in self.hosts:
            return [item]
        if any(c in item for c in "*?["):
            names = [n for n in self.hosts if fnmatch.fnmatchcase(n, item)]
            names += [h for g in self.groups if fnmatch.fnmatchcase(g, item) for h in self.groups[g]]
            if names:
                return names
        known = list(self.hosts) + list(self.groups)
        close = difflib.get_close_matches(item, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        hosts = ", ".join(list(self.hosts)[:20]) + (", ..." if len(self.hosts) > 20 else "")
        raise UserError(f"no host or group {item!r} in {self.path}{hint}",
                        f"choose from hosts: {hosts}; groups: {', '.join(self.groups)}")


def default_inventory_path() -> Path:
    """$PROVISION_INVENTORY, else the folder inventories/ here, else the project's.

    A folder means every inventory in it: production.yml and, once `provision lab up` ran, lab.yml.
    """
    if os.environ.get("PROVISION_INVENTORY"):
        return Path(os.environ["PROVISION_INVENTORY"]).expanduser()
    if DEFAULT_INVENTORY.is_dir():
        return DEFAULT_INVENTORY
    return Path(provisioner.PROJECT_ROOT) / DEFAULT_INVENTORY


def load_inventory(path: Path) -> Inventory:
    """One inventory file, or a directory of them (as Ansible reads one): every *.yml in it."""
    path = Path(path)
    if path.is_dir():
        return _load_directory(path)
    reader = _Reader(_shown(path))
    data = reader.parse(path)
    reader.read(data)
    for folder in ("group_vars", "host_vars"):
        if (path.parent / folder).is_dir():
            reader.warn(f"{_shown(path.parent / folder)}/ is not read: provision takes vars only from the "
                        "inventory file; move them into it")
    hosts = reader.hosts_with_vars(base_dir=path.parent.resolve())
    groups = reader.members()
    for name in set(groups) & set(hosts):
        reader.warn(f"{name!r} is both a host and a group in {reader.shown}; selecting it selects both")
    for host in hosts.values():
        for warning in host.vars.warnings:
            reader.warn(warning)
    return Inventory(path, hosts, groups, reader.warnings)


def _load_directory(folder: Path) -> Inventory:
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())
    if not files:
        raise UserError(f"inventory folder {_shown(folder)} has no .yml files",
                        "add an inventory file to it, or pass one with -i FILE")
    hosts: dict[str, Host] = {}
    groups: dict[str, list[str]] = {}
    warnings: list[str] = []
    origin: dict[str, Path] = {}
    for file in files:
        part = load_inventory(file)
        for name, host in part.hosts.items():
            if name in hosts:
                raise UserError(f"host {name!r} is defined in both {_shown(origin[name])} and {_shown(file)}",
                                "rename one of them, or select the file you mean with -i FILE")
            hosts[name], origin[name] = host, file
        for group, members in part.groups.items():
            groups.setdefault(group, []).extend(m for m in members if m not in groups[group])
        warnings += part.warnings
    return Inventory(folder, hosts, groups, warnings)


# --- reading -------------------------------------------------------------------------------------


def _shown(path: Path) -> str:
    """The path as a user would write it: relative to the current directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd())) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


def _a(value: Any) -> str:
    """What a wrong value is, for messages: 'a list', 'a string ('x')'."""
    kinds = {list: "a list", dict: "a mapping", str: "a string", bool: "a boolean", int: "a number",
             float: "a number"}
    kind = next((k for t, k in kinds.items() if isinstance(value, t)), type(value).__name__)
    return f"{kind} ({value!r})" if isinstance(value, (str, int, float)) else kind


_NAME = re.compile(r"[^\s,]+")
_RANGE = re.compile(r"\[([0-9]+|[a-zA-Z]):([0-9]+|[a-zA-Z])(?::([0-9]+))?\]")


def expand_host_pattern(pattern: str) -> list[str]:
    """Ansible's host ranges: 'web[01:03]' -> web01, web02, web03; 'db-[a:c]' -> db-a, db-b, db-c."""
    match = _RANGE.search(pattern)
    if not match:
        return [pattern]
    start, end, step = match.group(1), match.group(2), int(match.group(3) or 1)
    if start.isdigit() != end.isdigit() or step < 1:
        raise ValueError(f"range [{match.group(0)[1:-1]}] mixes numbers and letters or has a zero step")
    if start.isdigit():
        width = len(start) if start.startswith("0") else 1
        items = [str(i).zfill(width) for i in range(int(start), int(end) + 1, step)]
    else:
        items = [chr(c) for c in range(ord(start), ord(end) + 1, step)]
    if not items:
        raise ValueError(f"range {match.group(0)} is empty (the start is after the end)")
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [name for item in items for name in expand_host_pattern(head + item + tail)]


class _Group:
    def __init__(self, name: str):
        self.name = name
        self.vars = RawVars()
        self.parents: set[str] = set()
        self.hosts: list[str] = []
        self.priority = 1


class _Reader:
    """Walks the YAML tree, collecting groups, hosts and their vars blocks, each vars block already
    sorted by known_settings (typos are errors, unknown names warnings) with where it was written."""

    def __init__(self, shown: str):
        self.shown = shown
        self.groups: dict[str, _Group] = {"all": _Group("all")}
        self.host_vars: dict[str, RawVars] = {}
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def at(self, line: int | None) -> str:
        return f"{self.shown}:{line}" if line else self.shown

    def parse(self, path: Path) -> Any:
        fix = f"point PROVISION_INVENTORY at your inventory, or copy {DEFAULT_INVENTORY} from the project"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"inventory {self.shown} not found", fix) from None
        except IsADirectoryError:
            raise UserError(f"inventory {self.shown} is a directory, not a YAML file", fix) from None
        except UnicodeDecodeError:
            raise UserError(f"inventory {self.shown} is not UTF-8 text", "save it as UTF-8 YAML") from None
        except OSError as error:
            raise UserError(f"cannot read inventory {self.shown}: {error.strerror}",
                            "check the path and its permissions") from None
        loader = InventoryLoader(text)
        try:
            data = loader.get_single_data()
        except yaml.MarkedYAMLError as error:
            raise self._yaml_error(error) from None
        except yaml.YAMLError as error:
            raise UserError(f"{self.shown}: {str(error).splitlines()[0]}", "fix the YAML syntax") from None
        finally:
            loader.dispose()
        for key, line in loader.duplicates:
            self.warn(f"{self.shown}:{line}: {key!r} is written twice in the same mapping; the last one wins")
        return data

    def _yaml_error(self, error: yaml.MarkedYAMLError) -> UserError:
        mark = error.problem_mark or error.context_mark
        where = f"{self.shown}:{mark.line + 1}:{mark.column + 1}" if mark else self.shown
        what = error.problem or error.context or "invalid YAML"
        if error.context and error.problem and error.context_mark and error.context_mark is not mark:
            what += f" ({error.context} at line {error.context_mark.line + 1})"
        fix = ("indent with spaces, not tabs" if "\\t" in what else
               "fix the YAML at that line: indent with spaces, put a space after ':', "
               "quote values that contain ': ' or ' #'")
        return UserError(f"{where}: {what}", fix)

    def read(self, data: Any) -> None:
        if data is None or data == {}:
            raise UserError(f"inventory {self.shown} is empty",
                            "add hosts: `all:` / `  hosts:` / `    prod1:` (see inventories/production.yml)")
        if not isinstance(data, dict):
            raise UserError(f"{self.shown}: the top level must be a mapping of groups (`all:`), got {_a(data)}",
                            "start the file with `all:` and put `hosts:`, `children:` and `vars:` under it")
        for name, body in data.items():
            self.group(name, body, None if name == "all" else "all", data.lines.get(name), ())
        if not self.host_vars:
            raise UserError(f"inventory {self.shown} has no hosts",
                            "add one: `all:` / `  hosts:` / `    prod1:` / `      ansible_host: 203.0.113.10`")

    def name(self, key: Any, what: str, line: int | None) -> str:
        name = str(key) if isinstance(key, (str, int, float)) and not isinstance(key, bool) else ""
        if not _NAME.fullmatch(name):
            raise UserError(f"{self.at(line)}: {what} name {key!r} is not valid",
                            f"a {what} name is one word without spaces or commas")
        return name

    def group(self, key: Any, body: Any, parent: str | None, line: int | None, trail: tuple[str, ...]) -> None:
        name = self.name(key, "group", line)
        if name == "all" and parent:
            raise UserError(f"{self.at(line)}: group all cannot be a child of {parent}", "all is the top group")
        if name in trail:
            raise UserError(f"{self.at(line)}: group {name} contains itself ({' > '.join(trail + (name,))})",
                            f"remove {name} from the children of {parent}")
        group = self.groups.setdefault(name, _Group(name))
        if parent:
            group.parents.add(parent)
        if body is None:
            return
        if not isinstance(body, dict):
            raise UserError(f"{self.at(line)}: group {name} must be a mapping with hosts, children or vars, "
                            f"got {_a(body)}", f"write `{name}:` then `  hosts:` below it")
        for key, value in body.items():
            key_line = body.lines.get(key, line)
            if key == "vars":
                self.group_vars(group, value, key_line)
            elif key == "hosts":
                for host_key, host_body in self.mapping(value, f"hosts of group {name}", key_line).items():
                    self.host(host_key, host_body, name, value.lines.get(host_key, key_line))
            elif key == "children":
                for child, child_body in self.mapping(value, f"children of group {name}", key_line).items():
                    self.group(child, child_body, name, value.lines.get(child, key_line), trail + (name,))
            else:
                raise UserError(f"{self.at(key_line)}: group {name} has {key!r}, but a group has only hosts, "
                                "children and vars", f"to set {key} for the group, put it under `vars:`")

    def mapping(self, value: Any, what: str, line: int | None) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            example = "`hosts:` then `  prod1:` (names as keys, not `- prod1`)" if what.startswith("hosts") \
                else "name: value pairs, one a line"
            raise UserError(f"{self.at(line)}: {what} must be a mapping, got {_a(value)}", f"write {example}")
        return value

    def vars_block(self, value: Any, where: str, line: int | None) -> RawVars:
        value = self.mapping(value, f"vars of {where}", line)
        lines = getattr(value, "lines", {})
        raw = RawVars(value, origins={k: f"{where}, {self.at(lines.get(k, line))}" for k in value})
        kept, warnings = known_settings(raw, where=where)
        for warning in warnings:
            self.warn(warning)
        return kept

    def group_vars(self, group: _Group, value: Any, line: int | None) -> None:
        priority = value.get("ansible_group_priority", group.priority) if isinstance(value, dict) else group.priority
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise UserError(f"{self.at(line)}: ansible_group_priority of group {group.name} must be an integer",
                            "write it like `ansible_group_priority: 10`")
        group.priority = priority
        kept = self.vars_block(value, f"group {group.name}", line)
        group.vars.update(kept)
        group.vars.origins.update(kept.origins)

    def host(self, key: Any, body: Any, group: str, line: int | None) -> None:
        text = self.name(key, "host", line)
        port = None
        if text.count(":") == 1 and text.rsplit(":", 1)[1].isdigit():
            text, port = text.rsplit(":", 1)[0], int(text.rsplit(":", 1)[1])
        try:
            names = expand_host_pattern(text)
        except ValueError as error:
            raise UserError(f"{self.at(line)}: host {text}: {error}", "write ranges like web[01:20]") from None
        if body is not None and not isinstance(body, dict):
            example = f"  ansible_host: {body}" if isinstance(body, str) else "  name: value"
            raise UserError(f"{self.at(line)}: host {text} must have a mapping of vars (or nothing), got {_a(body)}",
                            f"write `{text}:` then `{example}` below it")
        for name in names:
            kept = self.vars_block(body, f"host {name}", line)
            if port is not None:
                kept.setdefault("ansible_port", port)
                kept.origins.setdefault("ansible_port", f"host {name}, {self.at(line)}")
            merged = self.host_vars.setdefault(name, RawVars())
            for var, value in kept.items():
                if var in merged and merged[var] != value:
                    self.warn(f"{var} of host {name} is set twice ({merged.origins[var]}; {kept.origins[var]}); "
                              "the last one wins")
            merged.update(kept)
            merged.origins.update(kept.origins)
            if name not in self.groups[group].hosts:
                self.groups[group].hosts.append(name)

    # --- after reading: depth, precedence, membership ----------------------------------------------

    def depths(self) -> dict[str, int]:
        """Each group's depth: its longest path from all (Ansible's rule: deeper groups win)."""
        depth: dict[str, int] = {"all": 0}

        def visit(name: str, path: tuple[str, ...]) -> int:
            if name in path:
                raise UserError(f"{self.shown}: groups contain each other: {' > '.join(path + (name,))}",
                                "remove one of them from the other's children")
            if name not in depth:
                depth[name] = 1 + max(visit(parent, path + (name,)) for parent in self.groups[name].parents)
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
            if groups <= {"all"}:
                self.groups.setdefault("ungrouped", _Group("ungrouped")).parents.add("all")
                if host not in self.groups["ungrouped"].hosts:
                    self.groups["ungrouped"].hosts.append(host)
                groups.add("ungrouped")
                depth.setdefault("ungrouped", 1)
        key = lambda g: (depth[g], self.groups[g].priority, g)   # noqa: E731
        return {host: sorted(groups - {"all"}, key=key) for host, groups in direct.items()}

    def hosts_with_vars(self, base_dir: Path) -> dict[str, Host]:
        hosts = {}
        for name, groups in self.host_groups().items():
            raw = RawVars()
            for block in [self.groups["all"].vars] + [self.groups[g].vars for g in groups] + [self.host_vars[name]]:
                raw.update(block)
                raw.origins.update(block.origins)
            raw.setdefault("ansible_host", name)
            try:
                v = resolve(raw, where=f"host {name}", base_dir=base_dir)
            except UserError as error:
                cause = error.cause if self.shown in error.cause else f"{self.shown}: {error.cause}"
                raise UserError(cause, error.fix, error.code) from None
            hosts[name] = Host(name, v.ansible_host, v.ansible_port, v.ansible_user, v.ansible_ssh_private_key_file,
                               v.ansible_become, v.ansible_become_password, groups, v)
        return hosts

    def members(self) -> dict[str, list[str]]:
        order = list(self.host_vars)
        groups = {}
        for name in self.groups:
            inside = {h for g in self.groups.values() if name in self.ancestors(g.name) for h in g.hosts}
            groups[name] = [h for h in order if h in inside or name == "all"]
        return groups
