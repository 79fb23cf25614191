"""Vars from outside the inventory file: group_vars/ and host_vars/ (beside the inventory and beside the
current directory, as Ansible reads them beside the inventory and the playbook) and -e/--extra-vars."""

from __future__ import annotations

import shlex
from pathlib import Path

from provisioner.config.model import Model, merge
from provisioner.config.reading import load_yaml, parse_yaml, shown
from provisioner.config.vault import Vault
from provisioner.errors import UserError
from provisioner.config.values import RawVars

VARS_EXTENSIONS = (".yml", ".yaml", ".json")


def vars_files(folder: Path, name: str) -> list[Path]:
    """Ansible's lookup of `name` in group_vars/ or host_vars/: a file with no extension or .yml/.yaml/.json,
    or a directory of such files (read in name order, subdirectories too; hidden files and backups~ skipped)."""
    found: list[Path] = []
    for candidate in [folder / name] + [folder / f"{name}{ext}" for ext in VARS_EXTENSIONS]:
        if candidate.is_dir():
            found += _files_in(candidate)
        elif candidate.is_file():
            found.append(candidate)
    return found


def _files_in(folder: Path) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name.endswith("~"):
            continue
        if entry.is_dir() and not entry.suffix:
            found += _files_in(entry)
        elif entry.is_file() and (not entry.suffix or entry.suffix in VARS_EXTENSIONS):
            found.append(entry)
    return found


class VarsDirs:
    """The group_vars/ and host_vars/ of some directories (each relative path in them is relative to its
    directory), each file read once."""

    def __init__(self, model: Model, folders: list[Path], vault: Vault):
        self.model, self.vault = model, vault
        self.folders = [f for i, f in enumerate(folders) if f.resolve() not in {g.resolve() for g in folders[:i]}]
        self.cache: dict[tuple[Path, str, str], RawVars] = {}

    def of(self, folder: Path, kind: str, name: str) -> RawVars:
        """The vars `folder`/`kind` (group_vars or host_vars) gives group or host `name`."""
        key = (folder, kind, name)
        if key not in self.cache:
            merged = RawVars()
            for path in vars_files(folder / kind, name):
                where = f"{'group' if kind == 'group_vars' else 'host'} {name}"
                merge(merged, self._load(path, where, folder))
            self.cache[key] = merged
        return self.cache[key]

    def _load(self, path: Path, where: str, base: Path) -> RawVars:
        data, warnings = load_yaml(path, "vars file", self.vault)
        for warning in warnings:
            self.model.warn(warning)
        if data is None:
            return RawVars()
        if not isinstance(data, dict):
            raise UserError(f"{shown(path)}: a vars file must be a mapping of names to values",
                            "write one `name: value` a line")
        return self.model.vars_block(data, where, shown(path), getattr(data, "lines", {}), base)

    def warn_about_strays(self, groups: set[str], hosts: set[str]) -> None:
        """A group_vars/ or host_vars/ entry that names no group or host is never read: say so (a typo there
        would otherwise deploy without those settings)."""
        for folder in self.folders:
            for kind, names, what in (("group_vars", groups, "group"), ("host_vars", hosts, "host")):
                entries = sorted((folder / kind).iterdir()) if (folder / kind).is_dir() else []
                for entry in entries:
                    name = entry.stem if entry.is_file() and entry.suffix in VARS_EXTENSIONS else entry.name
                    if name not in names and not entry.name.startswith(".") and not entry.name.endswith("~"):
                        self.model.warn(f"{shown(entry)} is not read: the inventory has no {what} {name!r}")


def extra_vars(items: list[str], model: Model, vault: Vault) -> RawVars:
    """-e/--extra-vars, later ones winning: `name=value ...` (values are strings, as in Ansible), a JSON or
    YAML mapping, or `@FILE` (YAML/JSON, may be vault-encrypted). Relative paths are relative to here."""
    merged = RawVars()
    for item in items:
        if item.startswith("@"):
            path = Path(item[1:]).expanduser()
            data, warnings = load_yaml(path, "extra vars file", vault, "give an existing file after @")
            name = shown(path)
        elif item.lstrip().startswith(("{", "[")):
            (data, warnings), name = parse_yaml(item, "-e", vault), "-e"
        else:
            data, warnings, name = _pairs(item), [], "-e"
        if not isinstance(data, dict):
            raise UserError(f"extra vars {item[:40]!r} are not a mapping of names to values",
                            "write -e name=value, -e '{\"name\": \"value\"}' or -e @vars.yml")
        for warning in warnings:
            model.warn(warning)
        merge(merged, model.vars_block(data, "extra vars", name, getattr(data, "lines", {}), Path.cwd()))
    return merged


def _pairs(item: str) -> dict[str, str]:
    try:
        words = shlex.split(item)
    except ValueError as error:
        raise UserError(f"cannot read -e {item[:40]!r}: {error}", "close the quote") from None
    bad = [word for word in words if "=" not in word or word.startswith("=")]
    if bad or not words:
        raise UserError(f"-e {item[:40]!r}: {bad[0] if bad else 'nothing'} is not name=value",
                        "write -e name=value, -e '{\"name\": \"value\"}' or -e @vars.yml")
    return dict(word.split("=", 1) for word in words)
