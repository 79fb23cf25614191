"""Ansible's YAML inventory: top-level groups (usually just `all`), each with `hosts` (a mapping; a host's
value is its vars or nothing), `children` (nested groups, any depth) and `vars`. Host names may carry a
port (`db1:2222`) and ranges (`web[01:20].example.com`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from provisioner.config.model import NAME, Model, kind_of, merge
from provisioner.errors import UserError
from provisioner.config.values import RawVars

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


def host_names(text: str, at: str) -> tuple[list[str], int | None]:
    """The hosts a host entry names ('web[01:03]:2222' -> web01..web03) and the port it gives, if any."""
    port = None
    if text.count(":") == 1 and text.rsplit(":", 1)[1].isdigit():
        text, port = text.rsplit(":", 1)[0], int(text.rsplit(":", 1)[1])
    try:
        return expand_host_pattern(text), port
    except ValueError as error:
        raise UserError(f"{at}: host {text}: {error}", "write ranges like web[01:20]") from None


def name_of(key: Any, what: str, at: str) -> str:
    name = str(key) if isinstance(key, (str, int, float)) and not isinstance(key, bool) else ""
    if not NAME.fullmatch(name):
        raise UserError(f"{at}: {what} name {key!r} is not valid",
                        f"a {what} name is one word without spaces or commas")
    return name


class YamlInventory:
    """Walks one YAML inventory into a Model; `name` is the file as shown in messages."""

    def __init__(self, model: Model, name: str, base: Path):
        self.model, self.name, self.base = model, name, base

    def at(self, line: int | None) -> str:
        return f"{self.name}:{line}" if line else self.name

    def read(self, data: Any) -> None:
        if data is None or data == {}:
            raise UserError(f"inventory {self.name} is empty",
                            "add hosts: `all:` / `  hosts:` / `    prod1:` (see inventories/production.yml)")
        if not isinstance(data, dict):
            raise UserError(f"{self.name}: the top level must be a mapping of groups (`all:`), "
                            f"got {kind_of(data)}",
                            "start the file with `all:` and put `hosts:`, `children:` and `vars:` under it")
        for name, body in data.items():
            self.group(name, body, None if name == "all" else "all", data.lines.get(name), ())

    def group(self, key: Any, body: Any, parent: str | None, line: int | None, trail: tuple[str, ...]) -> None:
        name = name_of(key, "group", self.at(line))
        if name == "all" and parent:
            raise UserError(f"{self.at(line)}: group all cannot be a child of {parent}", "all is the top group")
        if name in trail:
            raise UserError(f"{self.at(line)}: group {name} contains itself ({' > '.join(trail + (name,))})",
                            f"remove {name} from the children of {parent}")
        group = self.model.group(name, parent)
        if body is None:
            return
        if not isinstance(body, dict):
            raise UserError(f"{self.at(line)}: group {name} must be a mapping with hosts, children or vars, "
                            f"got {kind_of(body)}", f"write `{name}:` then `  hosts:` below it")
        for key, value in body.items():
            key_line = body.lines.get(key, line)
            if key == "vars":
                if isinstance(value, dict) and "ansible_group_priority" in value:
                    self.model.set_priority(group, value["ansible_group_priority"], self.at(key_line))
                merge(group.vars, self.vars_block(value, f"group {name}", key_line))
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
            raise UserError(f"{self.at(line)}: {what} must be a mapping, got {kind_of(value)}", f"write {example}")
        return value

    def vars_block(self, value: Any, where: str, line: int | None) -> RawVars:
        value = self.mapping(value, f"vars of {where}", line)
        lines = {key: getattr(value, "lines", {}).get(key, line) for key in value}
        return self.model.vars_block(value, where, self.name, {k: n for k, n in lines.items() if n}, self.base)

    def host(self, key: Any, body: Any, group: str, line: int | None) -> None:
        text = name_of(key, "host", self.at(line))
        names, port = host_names(text, self.at(line))
        if body is not None and not isinstance(body, dict):
            shown = text.rsplit(":", 1)[0] if port else text
            example = f"  ansible_host: {body}" if isinstance(body, str) else "  name: value"
            raise UserError(f"{self.at(line)}: host {shown} must have a mapping of vars (or nothing), "
                            f"got {kind_of(body)}",
                            f"write `{shown}:` then `{example}` below it")
        for name in names:
            kept = self.vars_block(body, f"host {name}", line)
            if port is not None and "ansible_port" not in kept:
                kept["ansible_port"] = port
                kept.origins["ansible_port"] = f"host {name}, {self.at(line)}"
                kept.bases["ansible_port"] = self.base
            self.model.add_host(name, group, kept, self.name)
