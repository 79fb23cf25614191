"""The app's files in a release: which are left out, and each one's kind and content digest.

Left out, in gitignore syntax (the last matching line wins, so `!name` in a file takes a default back):
ALWAYS_IGNORED, then the app's own `.gitignore`, then its `.provisionignore` (both at the app's root),
and any directory holding a pyvenv.cfg (a virtualenv, whatever its name).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pathspec

from ..errors import UserError

ALWAYS_IGNORED = (
    # version control, caches, bytecode, editors
    ".git/", ".hg/", ".svn/", "__pycache__/", "*.pyc", "*.pyo", ".DS_Store",
    ".pytest_cache/", ".mypy_cache/", ".ruff_cache/", ".tox/", ".nox/", ".idea/", ".vscode/",
    # local secrets, environments, dependencies and build outputs: never on a server from the app dir
    ".env", ".env.*", "venv/", ".venv/", "node_modules/", "/build/", "/dist/", "*.egg-info/",
)
IGNORE_FILES = (".gitignore", ".provisionignore")


@dataclass(frozen=True)
class Entry:
    rel: str  # posix path relative to the app dir
    kind: str  # "dir", "file" or "link"
    executable: bool = False
    link: str = ""
    digest: str = ""


def ignored(app_dir: Path) -> pathspec.GitIgnoreSpec:
    """What the release leaves out of `app_dir`; match a directory as `rel + "/"`."""
    lines = list(ALWAYS_IGNORED)
    for name in IGNORE_FILES:
        path = app_dir / name
        if path.is_file():
            try:
                lines += path.read_text(errors="replace").splitlines()
            except OSError as error:
                raise UserError(f"cannot read {path}: {error.strerror}", "check its permissions") from None
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except ValueError as error:
        raise UserError(f"a line of {app_dir}'s .gitignore or .provisionignore is not a pattern: {error}",
                        "fix that line (gitignore syntax)") from None


def collect(app_dir: Path) -> list[Entry]:
    """The app's files, sorted, with content digests; symlinks must stay inside the app."""
    entries: list[Entry] = []
    root = app_dir.resolve()
    skip = ignored(app_dir)
    for current, dirnames, filenames in os.walk(app_dir, followlinks=False):
        cur = Path(current)
        keep = []
        for d in sorted(dirnames):
            p = cur / d
            rel = p.relative_to(app_dir).as_posix()
            if skip.match_file(rel + "/") or (not p.is_symlink() and (p / "pyvenv.cfg").is_file()):
                continue
            if p.is_symlink():
                filenames.append(d)  # a link to a dir is stored as a link
            else:
                keep.append(d)
        dirnames[:] = keep
        if cur != app_dir:
            entries.append(Entry(cur.relative_to(app_dir).as_posix(), "dir"))
        for name in sorted(filenames):
            p = cur / name
            rel = p.relative_to(app_dir).as_posix()
            if skip.match_file(rel):
                continue
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
