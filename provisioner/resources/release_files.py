"""The app's files in a release: which are left out, and each one's kind and content digest."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

EXCLUDED_DIRS = frozenset({
    "__pycache__", ".git", ".hg", ".svn", "venv", ".venv", ".tox", ".nox",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", ".idea", ".vscode",
})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
EXCLUDED_FILES = frozenset({".DS_Store"})


@dataclass(frozen=True)
class Entry:
    rel: str  # posix path relative to the app dir
    kind: str  # "dir", "file" or "link"
    executable: bool = False
    link: str = ""
    digest: str = ""


def _excluded_dir(path: Path) -> bool:
    return path.name in EXCLUDED_DIRS or (path / "pyvenv.cfg").is_file()


def collect(app_dir: Path) -> list[Entry]:
    """The app's files, sorted, with content digests; symlinks must stay inside the app."""
    entries: list[Entry] = []
    root = app_dir.resolve()
    for current, dirnames, filenames in os.walk(app_dir, followlinks=False):
        cur = Path(current)
        keep = []
        for d in sorted(dirnames):
            p = cur / d
            if p.is_symlink():
                if d not in EXCLUDED_DIRS:
                    filenames.append(d)  # a link to a dir is stored as a link
            elif not _excluded_dir(p):
                keep.append(d)
        dirnames[:] = keep
        if cur != app_dir:
            entries.append(Entry(cur.relative_to(app_dir).as_posix(), "dir"))
        for name in sorted(filenames):
            if name in EXCLUDED_FILES or name.endswith(EXCLUDED_SUFFIXES):
                continue
            p = cur / name
            rel = p.relative_to(app_dir).as_posix()
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(p)
                resolved = (p.parent / target).resolve()
                if os.path.isabs(target) or not resolved.is_relative_to(root):
                    raise UserError(
                        f"{p} is a symlink to {target}, outside the app directory",
                        "replace it with a copy, or a relative link inside the app",
                    )
                entries.append(Entry(rel, "link", link=target))
            elif stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
                entries.append(Entry(rel, "file", bool(st.st_mode & stat.S_IXUSR), digest=digest))
            else:
                raise UserError(
                    f"{p} is not a regular file, directory or symlink",
                    "remove it from the app directory",
                )
    entries.sort(key=lambda e: e.rel)
    return entries
