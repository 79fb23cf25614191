"""The app's files in a release: which are left out, and each one's kind and content digest.

Left out, in gitignore syntax (the last matching line wins, so `!name` in a file takes a default back):
ALWAYS_IGNORED, then the app's own `.gitignore`, then its `.provisionignore` (both at the app's root),
and any directory holding a pyvenv.cfg (a virtualenv, whatever its name).

A file of LARGE_FILE or more that only `.gitignore` leaves out is an error, not a silent omission: such
a file is usually data the app reads (model weights, kept out of git), and `.provisionignore` says
whether it ships (`!name`) or not (`name`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pathspec

from ..errors import UserError
from . import file_digest

ALWAYS_IGNORED = (
    # version control, caches, bytecode, editors
    ".git/", ".hg/", ".svn/", "__pycache__/", "*.pyc", "*.pyo", ".DS_Store",
    ".pytest_cache/", ".mypy_cache/", ".ruff_cache/", ".tox/", ".nox/", ".idea/", ".vscode/",
    # local secrets, environments, dependencies and build outputs: never on a server from the app dir
    ".env", ".env.*", "venv/", ".venv/", "node_modules/", "/build/", "/dist/", "*.egg-info/",
)
IGNORE_FILES = (".gitignore", ".provisionignore")
LARGE_FILE = 10 * 2**20
# Files looked at inside a directory that only .gitignore leaves out, for a large one (a data directory
# may hold millions).
LOOK_INTO_AT_MOST = 1000


@dataclass(frozen=True)
class Entry:
    rel: str  # posix path relative to the app dir
    kind: str  # "dir", "file" or "link"
    executable: bool = False
    link: str = ""
    digest: str = ""


def _lines(app_dir: Path, name: str) -> list[str]:
    path = app_dir / name
    if not path.is_file():
        return []
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}", "check its permissions") from None


def _spec(app_dir: Path, lines: list[str]) -> pathspec.GitIgnoreSpec:
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except ValueError as error:
        raise UserError(f"a line of {app_dir}'s .gitignore or .provisionignore is not a pattern: {error}",
                        "fix that line (gitignore syntax)") from None


def ignored(app_dir: Path) -> pathspec.GitIgnoreSpec:
    """What the release leaves out of `app_dir`; match a directory as `rel + "/"`."""
    return _spec(app_dir, [*ALWAYS_IGNORED, *(line for name in IGNORE_FILES for line in _lines(app_dir, name))])


def _decided_without_gitignore(app_dir: Path) -> pathspec.GitIgnoreSpec:
    """The paths the defaults or a `.provisionignore` line (either way) decide about."""
    return _spec(app_dir, [*ALWAYS_IGNORED, *(line.lstrip().removeprefix("!")
                                             for line in _lines(app_dir, ".provisionignore"))])


def _refuse_large(app_dir: Path, rel: str, size: int, left_out: str) -> None:
    if size >= LARGE_FILE:
        raise UserError(
            f"{app_dir / rel} ({size / 1e6:.0f} MB) does not ship: {app_dir}/.gitignore leaves out {left_out}, "
            "and a file this large is usually data the app reads (model weights)",
            f"ship it with a line `!{left_out}` in {app_dir}/.provisionignore, or leave it out on purpose "
            f"with a line `{left_out}` there")


def _look_into(app_dir: Path, rel_dir: str) -> None:
    """A directory only .gitignore leaves out: refuse it if it holds a large file (among its first files)."""
    seen = 0
    for current, _dirs, filenames in os.walk(app_dir / rel_dir):
        for name in filenames:
            path = Path(current) / name
            if not path.is_symlink() and path.is_file():
                _refuse_large(app_dir, path.relative_to(app_dir).as_posix(), path.stat().st_size, rel_dir + "/")
            seen += 1
            if seen >= LOOK_INTO_AT_MOST:
                return


def collect(app_dir: Path) -> list[Entry]:
    """The app's files, sorted, with content digests; symlinks must stay inside the app."""
    entries: list[Entry] = []
    root = app_dir.resolve()
    skip = ignored(app_dir)
    decided = _decided_without_gitignore(app_dir)
    for current, dirnames, filenames in os.walk(app_dir, followlinks=False):
        cur = Path(current)
        keep = []
        for d in sorted(dirnames):
            p = cur / d
            rel = p.relative_to(app_dir).as_posix()
            if not p.is_symlink() and (p / "pyvenv.cfg").is_file():
                continue
            if skip.match_file(rel + "/"):
                if not decided.match_file(rel + "/") and not p.is_symlink():
                    _look_into(app_dir, rel)
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
            st = p.lstat()
            if skip.match_file(rel):
                if stat.S_ISREG(st.st_mode) and not decided.match_file(rel):
                    _refuse_large(app_dir, rel, st.st_size, rel)
                continue
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
                digest = file_digest.sha256(p)
                entries.append(Entry(rel, "file", bool(st.st_mode & stat.S_IXUSR), digest=digest))
            else:
                raise UserError(
                    f"{p} is not a regular file, directory or symlink",
                    "remove it from the app directory",
                )
    entries.sort(key=lambda e: e.rel)
    return entries
