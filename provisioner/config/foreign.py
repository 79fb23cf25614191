"""The variables other roles of an Ansible project read, so a shared inventory's `httpd_port` is taken for
theirs, not for a typo of provision's `http_port`.

A name counts as another role's when a file of the project uses it: an Ansible role's files
(roles/ROLE/{defaults,vars,tasks,handlers,templates}/...) or a playbook (a YAML list of plays, *.yml or
*.yaml, beside the inventory, in playbooks/ there, or in the current directory). Inventories and vars
files are mappings, never plays: a typo written in them is never taken for a use. Read only when some
host has a name close to a setting, once per run.
"""

from __future__ import annotations

import re
from pathlib import Path

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_FILES, _MAX_BYTES = 5000, 1 << 20     # a project's own files, not a vendored tree
_ROLE_PARTS = ("defaults", "vars", "tasks", "handlers", "templates")
_PLAY = re.compile(r"\A(?:\s*(?:#.*)?\n|---.*\n)*- ")


class ProjectNames:
    """`name in ProjectNames(folders)`: whether a file of the Ansible project in `folders` uses `name`."""

    def __init__(self, folders: list[Path]):
        self.folders = folders
        self._words: set[str] | None = None

    def __contains__(self, name: object) -> bool:
        if self._words is None:
            self._words = set()
            for path, play_only in self._files():
                text = _text(path)
                if not play_only or _PLAY.match(text):
                    self._words.update(_WORD.findall(text))
        return name in self._words

    def _files(self) -> list[tuple[Path, bool]]:
        """(file, whether it counts only when it is a playbook)."""
        found: list[tuple[Path, bool]] = []
        for folder in dict.fromkeys(f.resolve() for f in self.folders):
            for plays in (folder, folder / "playbooks"):
                found += [(p, True) for ext in ("*.yml", "*.yaml") for p in sorted(plays.glob(ext))]
            for part in _ROLE_PARTS:
                found += [(p, False) for p in sorted(folder.glob(f"roles/*/{part}/**/*")) if p.is_file()]
        return found[:_MAX_FILES]


def _text(path: Path) -> str:
    try:
        if path.stat().st_size > _MAX_BYTES:
            return ""
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
