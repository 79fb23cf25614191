"""Files, templates, directories, links, and paths that must not exist.

Every one is about one path: its fact is what is at that path (probe.sh `stat_path`).
"""

from __future__ import annotations

import base64
import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .. import templating
from ..remote.quoting import Raw, cmd
from .base import Decision, Resource, SystemFacts


def _parse_stat(out: str) -> dict:
    first, _, rest = out.partition("\n")
    words = first.split()
    kind = words[0] if words else "absent"
    fact: dict = {"kind": kind}
    if kind == "link":
        fact["target"] = first[5:].strip()
    elif kind in ("file", "dir"):
        fact.update(mode=words[1].zfill(4), owner=words[2], group=words[3])
        if kind == "file":
            fact["sha256"] = words[4]
            fact["content_b64"] = rest.strip()
    return fact


def _owner_mode_fix(path: str, fact: dict, mode: str, owner: str, group: str) -> tuple[list[str], list[str]]:
    """What differs in mode/ownership, and the commands that fix it in place."""
    reasons, cmds = [], []
    if fact["mode"] != mode.zfill(4):
        reasons.append(f"mode {fact['mode']} -> {mode}")
        cmds.append(cmd("chmod", mode, path))
    if (fact["owner"], fact["group"]) != (owner, group):
        reasons.append(f"owner {fact['owner']}:{fact['group']} -> {owner}:{group}")
        cmds.append(cmd("chown", f"{owner}:{group}", path))
    return reasons, cmds


@dataclass
class PathResource(Resource):
    """A resource about one path: its fact is what is at that path (kind, mode, owner, target)."""

    path: str

    def probe(self, want_diff: bool = False) -> str:
        return cmd("stat_path", self.path)

    def parse(self, out: str) -> dict:
        return _parse_stat(out)


@dataclass
class File(PathResource):
    """A file with exact content, mode and owner; written atomically (temp file + rename)."""

    content: str
    mode: str = "0644"
    owner: str = "root"
    group: str = "root"
    secret: bool = False  # never shown in a diff

    def label(self) -> str:
        return f"file {self.path}"

    def probe(self, want_diff: bool = False) -> str:
        return cmd("stat_path", self.path, *(["--content"] if want_diff and not self.secret else []))

    def decide(self, fact: dict, system: SystemFacts, want_diff: bool = False) -> Decision:
        data = self.content.encode()
        digest = hashlib.sha256(data).hexdigest()
        backup = (self.path,)
        if fact["kind"] == "file" and fact["sha256"] == digest:
            reasons, cmds = _owner_mode_fix(self.path, fact, self.mode, self.owner, self.group)
            if not reasons:
                return self.ok(f"content, mode {self.mode} and owner {self.owner}:{self.group} as wanted")
            return self.change(", ".join(reasons), "\n".join(cmds) + self.after_write(), backup=backup,
                               after_rollback=self.after_write())
        if fact["kind"] == "dir":
            return self.refuse(f"{self.path} is a directory", f"{self.path} is a directory, not a file")
        reason = "does not exist" if fact["kind"] == "absent" else (
            "is a symlink" if fact["kind"] == "link" else "content differs")
        diff = self._diff(fact) if want_diff else None
        return self.change(reason, self.write_script(data) + self.after_write(), diff=diff, backup=backup,
                           after_rollback=self.after_write())

    def write_script(self, data: bytes) -> str:
        path = PurePosixPath(self.path)
        tmp = str(path.parent / f".{path.name}.provision-tmp")
        payload = base64.encodebytes(data).decode()
        return "\n".join([
            cmd("base64", "-d", Raw(">"), tmp, Raw("<<'PROVISION_EOF'")),
            payload + "PROVISION_EOF",
            " && ".join([cmd("chmod", self.mode, tmp), cmd("chown", f"{self.owner}:{self.group}", tmp),
                         cmd("mv", "-fT", tmp, self.path)]),
        ])

    def after_write(self) -> str:
        return ""

    def _diff(self, fact: dict) -> str:
        if self.secret:
            return f"--- {self.path}\n(content hidden: the file holds secrets)\n"
        old = ""
        if fact.get("content_b64"):
            old = base64.b64decode(fact["content_b64"]).decode(errors="replace")
        return "".join(difflib.unified_diff(
            old.splitlines(keepends=True), self.content.splitlines(keepends=True),
            fromfile=f"{self.path} (on host)", tofile=f"{self.path} (wanted)"))


@dataclass
class SystemdUnit(File):
    """A unit file: systemd re-reads its units after every write (and after a rollback)."""

    def label(self) -> str:
        return f"unit {self.path}"

    def after_write(self) -> str:
        return "\nsystemctl daemon-reload"


class Template:
    """A File (or a `kind` of File) whose content comes from a jinja2 template of the stack.

    Rendered when the stack is declared (engine/stack.py), so a template error stops the run before
    any host is touched.
    """

    def __init__(self, path: str, template: str, context: dict, *, kind: type[File] = File, **options):
        self.path, self.template, self.context, self.kind, self.options = path, template, context, kind, options

    def rendered(self, templates: Path) -> File:
        return self.kind(self.path, templating.render(self.template, self.context, templates), **self.options)


@dataclass
class Directory(PathResource):
    """A directory with a mode and owner (its contents are not managed)."""

    mode: str = "0755"
    owner: str = "root"
    group: str = "root"

    def label(self) -> str:
        return f"directory {self.path}"

    def decide(self, fact: dict, system: SystemFacts, want_diff: bool = False) -> Decision:
        if fact["kind"] == "absent":
            return self.change("does not exist", cmd("install", "-d", "-m", self.mode, "-o", self.owner,
                                                     "-g", self.group, self.path))
        if fact["kind"] != "dir":
            return self.refuse(f"is a {fact['kind']}, not a directory", f"{self.path} exists and is not a directory")
        reasons, cmds = _owner_mode_fix(self.path, fact, self.mode, self.owner, self.group)
        if not reasons:
            return self.ok(f"exists with mode {self.mode} and owner {self.owner}:{self.group}")
        return self.change(", ".join(reasons), "\n".join(cmds))


def link_script(path: str, target: str) -> str:
    tmp = f"{path}.provision-tmp"
    return cmd("ln", "-sfn", target, tmp) + " && " + cmd("mv", "-fT", tmp, path)


@dataclass
class Link(PathResource):
    """A symlink pointing at `target`; replaced atomically."""

    target: str

    def label(self) -> str:
        return f"link {self.path}"

    def decide(self, fact: dict, system: SystemFacts, want_diff: bool = False) -> Decision:
        if fact["kind"] == "link" and fact["target"] == self.target:
            return self.ok(f"points at {self.target}")
        if fact["kind"] == "dir":
            return self.refuse("is a directory", f"{self.path} is a directory, not a link")
        reason = {"absent": "does not exist", "file": "is a regular file"}.get(
            fact["kind"], f"points at {fact.get('target')}")
        return self.change(f"{reason}; wanted -> {self.target}", link_script(self.path, self.target),
                           backup=(self.path,))


@dataclass
class Absent(PathResource):
    """A file or symlink that must not exist (never a directory tree)."""

    def label(self) -> str:
        return f"absent {self.path}"

    def decide(self, fact: dict, system: SystemFacts, want_diff: bool = False) -> Decision:
        if fact["kind"] == "absent":
            return self.ok("already absent")
        if fact["kind"] == "dir":
            return self.refuse("is a directory", f"refusing to delete directory {self.path}")
        return self.change(f"exists ({fact['kind']})", cmd("rm", "-f", self.path), backup=(self.path,))
