"""Ansible's INI inventory: host lines (`web[01:03].example.com:2222 ansible_user=deploy`) before any
section or under `[group]`, `[group:vars]` lines `name=value`, `[group:children]` lines naming groups.
Values are read as Ansible reads them: a Python literal when one parses (`4`, `True`, `[1, 2]`), else the
text as written."""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from pathlib import Path
from typing import Any

from provisioner.config.inventory_yaml import host_names, name_of
from provisioner.config.model import Model, merge
from provisioner.config.secret import as_secrets
from provisioner.errors import UserError

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")
_SECTION_HELP = "write [group], [group:vars] or [group:children], without spaces"


def ini_value(text: str) -> Any:
    """Ansible's reading of an INI value: a Python literal if it is one, else the text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value) if isinstance(value, (complex, bytes, type(...))) else value


class IniInventory:
    """Reads one INI inventory into a Model; `name` is the file as shown in messages."""

    def __init__(self, model: Model, name: str, base: Path, secret: bool = False):
        self.model, self.name, self.base = model, name, base
        self.value = (lambda text: as_secrets(ini_value(text))) if secret else ini_value   # vault-encrypted file

    def read(self, text: str) -> None:
        group, state = "ungrouped", "hosts"
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            at = f"{self.name}:{number}"
            if not line or line[0] in "#;":
                continue
            section = _SECTION.match(line)
            if section:
                group, state = section.group(1), section.group(2) or "hosts"
                if state not in ("hosts", "vars", "children"):
                    raise UserError(f"{at}: section [{group}:{state}] has an unknown type {state!r}", _SECTION_HELP)
                self.model.group(name_of(group, "group", at))
            elif line.startswith("["):
                raise UserError(f"{at}: {line!r} is not a valid section header", _SECTION_HELP)
            elif state == "hosts":
                self.host_line(line, group, at)
            elif state == "vars":
                self.vars_line(line, group, at, number)
            else:
                self.model.group(name_of(line.split()[0], "group", at), parent=group)

    def host_line(self, line: str, group: str, at: str) -> None:
        try:
            words = shlex.split(line, comments=True)
        except ValueError as error:
            raise UserError(f"{at}: cannot read the host line: {error}", "close the quote on that line") from None
        names, port = host_names(name_of(words[0], "host", at), at)
        values = {}
        for word in words[1:]:
            if "=" not in word:
                raise UserError(f"{at}: {word!r} is not name=value",
                                "write host variables as name=value after the host")
            key, value = word.split("=", 1)
            values[key] = self.value(value)
        if port is not None:
            values.setdefault("ansible_port", port)
        for name in names:
            kept = self.model.vars_block(values, f"host {name}", at, {}, self.base)
            self.model.add_host(name, group, kept, self.name)

    def vars_line(self, line: str, group: str, at: str, number: int) -> None:
        if "=" not in line:
            raise UserError(f"{at}: {line!r} is not name=value", f"under [{group}:vars] write one name=value a line")
        key, value = (part.strip() for part in line.split("=", 1))
        value = self.value(value)
        if key == "ansible_group_priority":
            self.model.set_priority(self.model.group(group), value, at)
        merge(self.model.group(group).vars,
              self.model.vars_block({key: value}, f"group {group}", self.name, {key: number}, self.base))
