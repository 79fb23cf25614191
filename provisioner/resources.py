"""The resource types roles declare: each knows how to look (probe + parse) and what to do (decide).

A resource never talks to the host itself. `probe()` is a shell snippet whose output the facts
step collects for all resources in one remote command; `decide(fact, system)` compares that fact
with the desired state and returns a Decision: either "ok, because ..." or "change, because ...,
with this shell". The apply step runs every change of a host in one script.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import shlex
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import templating

q = shlex.quote


@dataclass
class SystemFacts:
    """What every plan may need about the host, probed in the same command as the resources."""

    os_id: str = ""
    os_version: str = ""
    codename: str = ""
    machine: str = ""
    now: int = 0
    apt_lists_age: int | None = None  # seconds since the last apt-get update; None = never
    health: tuple[bool, str] | None = None  # the site's health answer (ok, text), when probed
    pending: tuple[str, ...] = ()  # marker names (pending_marker) of handlers an earlier run left to run


@dataclass
class Decision:
    resource: "Resource"
    changed: bool
    reason: str
    script: str = ""
    diff: str | None = None
    backup: tuple[str, ...] = ()  # paths saved before the change so a handler can roll it back
    after_rollback: str = ""  # shell to run after those paths were restored
    upload: Path | None = None  # local file the script needs on the host, at $UPLOAD


@dataclass
class Resource:
    notify: tuple[str, ...] = field(default=(), kw_only=True)

    def label(self) -> str:
        raise NotImplementedError

    def probe(self, want_diff: bool = False) -> str:
        raise NotImplementedError

    def parse(self, out: str) -> Any:
        return out.strip()

    def decide(self, fact: Any, system: SystemFacts, want_diff: bool = False) -> Decision:
        raise NotImplementedError

    def ok(self, reason: str) -> Decision:
        return Decision(self, False, reason)

    def change(self, reason: str, script: str, **kw) -> Decision:
        return Decision(self, True, reason, script, **kw)


# -- packages --------------------------------------------------------------------------------------

APT_ENV = "DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a"
APT_STAMP = "/var/lib/provision/apt-updated"
RUN_DIR = "/var/lib/provision/run"  # this run's backups and markers; root-only
# Handlers notified by a change that have not run yet: a marker file each, kept across runs, so a run
# interrupted between its changes and its handlers has them run by the next one.
PENDING_DIR = f"{RUN_DIR}.pending"


def pending_marker(handler: str) -> str:
    return f"{PENDING_DIR}/{handler.replace(' ', '-')}"


@dataclass
class Packages(Resource):
    """Debian packages that must be installed (any version; upgrades are the admin's decision)."""

    names: tuple[str, ...]
    cache_valid_time: int = 3600
    lock_timeout: int = 300

    def label(self) -> str:
        return "packages " + " ".join(self.names)

    def probe(self, want_diff: bool = False) -> str:
        return f"dpkg-query -W -f='${{Package}} ${{Version}} ${{db:Status-Status}}\\n' {' '.join(map(q, self.names))} 2>/dev/null"

    def parse(self, out: str) -> dict[str, str]:
        installed = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2] == "installed":
                installed[parts[0]] = parts[1]
        return installed

    def decide(self, fact: dict[str, str], system: SystemFacts, want_diff: bool = False) -> Decision:
        missing = [n for n in self.names if n not in fact]
        if not missing:
            return self.ok("installed: " + ", ".join(f"{n} {fact[n]}" for n in self.names))
        stale = system.apt_lists_age is None or system.apt_lists_age > self.cache_valid_time
        lock = f"-o DPkg::Lock::Timeout={self.lock_timeout}"
        update = (
            f"if [ ! -e {RUN_DIR}/apt-updated ]; then {APT_ENV} apt-get {lock} -q --error-on=any update || exit 1\n"
            f"touch {APT_STAMP} {RUN_DIR}/apt-updated; fi\n"
            if stale else ""
        )
        why = "apt lists are " + ("missing" if system.apt_lists_age is None else f"{system.apt_lists_age // 60} min old")
        script = (
            f"{update}{APT_ENV} apt-get {lock} -q -y -o Dpkg::Options::=--force-confdef "
            f"-o Dpkg::Options::=--force-confold install --no-install-recommends {' '.join(map(q, missing))}"
        )
        reason = "not installed: " + ", ".join(missing) + (f" ({why}: apt-get update first)" if stale else "")
        return self.change(reason, script)


# -- files, links, directories ---------------------------------------------------------------------


def _stat_probe(path: str, extra: str = "") -> str:
    p = q(path)
    return (
        f"if [ -L {p} ]; then echo link $(readlink {p}); "
        f"elif [ -d {p} ]; then echo dir $(stat -c '%a %U %G' {p}); "
        f"elif [ -f {p} ]; then echo file $(stat -c '%a %U %G' {p}) $(sha256sum < {p} | cut -c1-64){extra}; "
        f"else echo absent; fi"
    )


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
        cmds.append(f"chmod {mode} {q(path)}")
    if (fact["owner"], fact["group"]) != (owner, group):
        reasons.append(f"owner {fact['owner']}:{fact['group']} -> {owner}:{group}")
        cmds.append(f"chown {q(owner)}:{q(group)} {q(path)}")
    return reasons, cmds


@dataclass
class PathResource(Resource):
    """A resource about one path: its fact is what is at that path (kind, mode, owner, target)."""

    path: str

    def probe(self, want_diff: bool = False) -> str:
        return _stat_probe(self.path)

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
        extra = f"; echo; base64 -w0 < {q(self.path)}; echo" if want_diff and not self.secret else ""
        return _stat_probe(self.path, extra)

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
        if fact["kind"] in ("dir",):
            return self.change(f"{self.path} is a directory", f"echo '{self.path} is a directory, not a file' >&2; exit 1")
        reason = "does not exist" if fact["kind"] == "absent" else (
            "is a symlink" if fact["kind"] == "link" else "content differs")
        diff = None
        if want_diff:
            diff = self._diff(fact)
        return self.change(reason, self.write_script(data) + self.after_write(), diff=diff, backup=backup,
                           after_rollback=self.after_write())

    def write_script(self, data: bytes) -> str:
        path = PurePosixPath(self.path)
        tmp = q(str(path.parent / f".{path.name}.provision-tmp"))
        payload = base64.encodebytes(data).decode()
        return (
            f"base64 -d > {tmp} <<'PROVISION_EOF'\n{payload}PROVISION_EOF\n"
            f"chmod {self.mode} {tmp} && chown {q(self.owner)}:{q(self.group)} {tmp} && mv -fT {tmp} {q(self.path)}"
        )

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


def Template(path: str, template: str, context: dict, *, kind: type[File] = File, **kw) -> File:
    """A File (or a `kind` of File) whose content comes from a jinja2 template.

    Rendered when the role is declared, so a template error stops the run before any host is touched.
    """
    return kind(path, templating.render(template, context), **kw)


@dataclass
class SystemdUnit(File):
    """A unit file: systemd re-reads its units after every write (and after a rollback)."""

    def label(self) -> str:
        return f"unit {self.path}"

    def after_write(self) -> str:
        return "\nsystemctl daemon-reload"


@dataclass
class Directory(PathResource):
    """A directory with a mode and owner (its contents are not managed)."""

    mode: str = "0755"
    owner: str = "root"
    group: str = "root"

    def label(self) -> str:
        return f"directory {self.path}"

    def decide(self, fact: dict, system: SystemFacts, want_diff: bool = False) -> Decision:
        make = f"install -d -m {self.mode} -o {q(self.owner)} -g {q(self.group)} {q(self.path)}"
        if fact["kind"] == "absent":
            return self.change("does not exist", make)
        if fact["kind"] != "dir":
            return self.change(f"is a {fact['kind']}, not a directory",
                               f"echo '{self.path} exists and is not a directory' >&2; exit 1")
        reasons, cmds = _owner_mode_fix(self.path, fact, self.mode, self.owner, self.group)
        if not reasons:
            return self.ok(f"exists with mode {self.mode} and owner {self.owner}:{self.group}")
        return self.change(", ".join(reasons), "\n".join(cmds))


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
            return self.change("is a directory", f"echo '{self.path} is a directory, not a link' >&2; exit 1")
        reason = {"absent": "does not exist", "file": "is a regular file"}.get(
            fact["kind"], f"points at {fact.get('target')}")
        return self.change(f"{reason}; wanted -> {self.target}", link_script(self.path, self.target),
                           backup=(self.path,))


def link_script(path: str, target: str) -> str:
    tmp = q(f"{path}.provision-tmp")
    return f"ln -sfn {q(target)} {tmp} && mv -fT {tmp} {q(path)}"


@dataclass
class Absent(PathResource):
    """A file or symlink that must not exist (never a directory tree)."""

    def label(self) -> str:
        return f"absent {self.path}"

    def decide(self, fact: dict, system: SystemFacts, want_diff: bool = False) -> Decision:
        if fact["kind"] == "absent":
            return self.ok("already absent")
        if fact["kind"] == "dir":
            return self.change("is a directory", f"echo 'refusing to delete directory {self.path}' >&2; exit 1")
        return self.change(f"exists ({fact['kind']})", f"rm -f {q(self.path)}", backup=(self.path,))


# -- users and services ----------------------------------------------------------------------------


@dataclass
class SystemUser(Resource):
    """A system user with its own group and no login shell, for running an app."""

    name: str
    home: str

    def label(self) -> str:
        return f"user {self.name}"

    def probe(self, want_diff: bool = False) -> str:
        return f"getent passwd {q(self.name)} | cut -d: -f3,6,7"

    def decide(self, fact: str, system: SystemFacts, want_diff: bool = False) -> Decision:
        if fact:
            return self.ok(f"exists (uid {fact.split(':')[0]})")
        return self.change("does not exist", (
            f"useradd --system --user-group --home-dir {q(self.home)} --no-create-home "
            f"--shell /usr/sbin/nologin {q(self.name)}"))


@dataclass
class Command(Resource):
    """A command that runs only while its guard says it is needed.

    `unless` is a check that runs with the facts (so it must change nothing); when it succeeds,
    the state is already right and `run` is skipped. `why` says what the state is, for the report.
    """

    run: str
    unless: str
    why: str

    def label(self) -> str:
        return f"command {self.why}"

    def probe(self, want_diff: bool = False) -> str:
        return f"if {{ {self.unless}\n}} >/dev/null 2>&1; then echo yes; else echo no; fi"

    def decide(self, fact: str, system: SystemFacts, want_diff: bool = False) -> Decision:
        if fact == "yes":
            return self.ok("already so (its guard succeeds)")
        return self.change(f"its guard fails: will run `{self.run}`", self.run)


@dataclass
class Service(Resource):
    """A systemd service that must be enabled at boot and running now."""

    name: str

    def label(self) -> str:
        return f"service {self.name}"

    def probe(self, want_diff: bool = False) -> str:
        return f"systemctl show -p UnitFileState -p ActiveState {q(self.name)}"

    def parse(self, out: str) -> tuple[str, str]:
        props = dict(line.partition("=")[::2] for line in out.splitlines())
        return props.get("UnitFileState") or "not-found", props.get("ActiveState") or "unknown"

    def decide(self, fact: tuple[str, str], system: SystemFacts, want_diff: bool = False) -> Decision:
        enabled, active = fact
        cmds, reasons = [], []
        if enabled != "enabled":
            reasons.append(f"not enabled ({enabled})")
            cmds.append(f"systemctl enable -q {q(self.name)}")
        if active != "active":
            reasons.append(f"not running ({active})")
            cmds.append(f"systemctl start {q(self.name)} || {{ journalctl -u {q(self.name)} -n 20 --no-pager -o cat; exit 1; }}")
        if not cmds:
            return self.ok("enabled and running")
        return self.change(", ".join(reasons), "\n".join(cmds))


# -- the application release -----------------------------------------------------------------------

_build_lock = threading.Lock()


def _build_release(app_source: Path, requirements: str, python_version: str, machine: str):
    """Build (or take from the controller's cache) a release; hosts deploying in parallel share one build."""
    from .release import build_release

    with _build_lock:
        return build_release(app_source, requirements, python_version, machine)



@dataclass
class AppRelease(Resource):
    """The app shipped from the controller as an immutable release dir, made `current` by a link.

    The release (code + wheelhouse for the host's Python) is built on the controller, so the host
    needs no PyPI; a release that is already on the host is only switched to, never rebuilt.
    """

    app_source: Path
    requirements: str
    root: str
    keep: int = 3

    def label(self) -> str:
        return f"release {self.root}/current"

    def probe(self, want_diff: bool = False) -> str:
        r = q(self.root)
        return (f"readlink {r}/current; echo; "
                f"for d in {r}/releases/*/.complete; do [ -f \"$d\" ] && basename \"$(dirname \"$d\")\"; done")

    def parse(self, out: str) -> dict:
        current, _, rest = out.partition("\n")
        return {"current": current.strip(), "complete": set(rest.split())}

    def decide(self, fact: dict, system: SystemFacts, want_diff: bool = False) -> Decision:
        from .release import python_for

        build = _build_release(self.app_source, self.requirements,
                                     python_for(system.os_id, system.os_version), system.machine)
        target = f"{self.root}/releases/{build.id}"
        previous = PurePosixPath(fact["current"]).name
        if fact["current"] == target:
            return self.ok(f"release {build.id} is current")
        switch = link_script(f"{self.root}/current", target) + "\n" + self._prune(build.id, previous)
        backup = (f"{self.root}/current",)
        if build.id in fact["complete"]:
            return self.change(f"release {build.id} is on the host; switching current to it", switch,
                               backup=backup)
        reason = f"new release {build.id}" + (f" (current: {previous})" if previous else "")
        return self.change(reason, self._install(target) + "\n" + switch, backup=backup, upload=build.archive)

    def _install(self, target: str) -> str:
        t = q(target)
        return (
            f"rm -rf {t} && mkdir -p {t} && tar -xzf \"$UPLOAD\" -C {t}\n"
            f"/usr/bin/python3 -m venv {t}/venv\n"
            f"{t}/venv/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check "
            f"--find-links {t}/wheels -r {t}/app/{q(self.requirements)}\n"
            f"chown -R root:root {t} && chmod -R go-w {t} && touch {t}/.complete"
        )

    def _prune(self, new_id: str, previous: str) -> str:
        keep_others = max(self.keep - 1, 1)
        skip = " ".join(f"-e {q(x)}" for x in (new_id, previous) if x)
        return (f"(cd {q(self.root)}/releases && ls -1t | grep -vxF {skip} | tail -n +{keep_others} "
                f"| xargs -r rm -rf --)")
