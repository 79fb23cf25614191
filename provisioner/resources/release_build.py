"""Plan a release of the app on the controller: the app's files, by content, and the wheels its venv needs.

Hosts never reach PyPI: the controller downloads wheels for the host's Python and machine, and the
host installs them offline. Nothing is packed into an archive: a release is a manifest of content
hashes, and only the files the host does not hold yet travel (resources/release_transfer.py).

    planned = plan_release(Path("examples/model_api"), "requirements.txt", "3.11", "x86_64")
    planned.id     "3f9c0a1b2d4e"  names the release on the host: the app's files + the venv key
    planned.tree   the app's files alone (path, kind, mode, content hash of each)
    planned.venv   "cp311-x86_64-<16 hex>": the requirements text (with its -r/-c includes), the
                   Python and the platform tags; one venv per key on the host, shared by releases

Host layout (release_install.sh, release_prune.sh):

    {app_root}/store/<sha256>[-x]        every file of every kept release, once (-x: mode 0755)
    {app_root}/releases/<id>/app/...     hard links into the store (a release that changes one file
                                         adds one file to the disk)
    {app_root}/releases/<id>/wheels/     hard links to the wheels, when its venv had to be built
    {app_root}/releases/<id>/venv        -> ../../venvs/<venv key>
    {app_root}/venvs/<venv key>/         built once per key (/usr/bin/python3 -m venv, pip offline)
    {app_root}/current                   -> releases/<id>

The controller's cache (<cache> is $XDG_CACHE_HOME/provision or ~/.cache/provision) keeps the
wheelhouse of each requirements key (the KEEP_WHEELHOUSES most recently used, and any used within
the hour), and no copy of the app: the transfer is written while it is sent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from provisioner import default_cache_dir
from provisioner.errors import UserError

from . import file_digest
from .release_files import Entry, collect
from .release_pip import pip_command

LAYOUT_VERSION = "2"
APP_DIR = "app"
WHEELS_DIR = "wheels"
KEEP_WHEELHOUSES = 5
# A wheelhouse used this recently may be read by another run right now: never pruned.
PRUNE_UNUSED_FOR = 3600
# Hosts deploying in parallel share one download.
_wheelhouse_lock = threading.Lock()

MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}

# Supported targets all have glibc >= 2.35 (Debian 12: 2.36, Ubuntu 22.04: 2.35, 24.04: 2.39,
# Debian 13: 2.41). pip matches --platform tags exactly (manylinux2014 also brings 2010/1), so every
# manylinux_2_N up to that floor is listed: many projects ship only manylinux_2_28 wheels now.
GLIBC_FLOOR = 35

# (ID, VERSION_ID) from /etc/os-release -> the python3 that OS ships.
PYTHON_FOR = {
    ("debian", "12"): "3.11",
    ("debian", "13"): "3.13",
    ("ubuntu", "22.04"): "3.10",
    ("ubuntu", "24.04"): "3.12",
}


def python_for(os_id: str, version_id: str) -> str:
    """The python3 version a supported OS ships (/etc/os-release ID and VERSION_ID)."""
    key = (os_id.strip().lower(), version_id.strip().strip('"'))
    try:
        return PYTHON_FOR[key]
    except KeyError:
        supported = ", ".join(f"{o} {v}" for o, v in PYTHON_FOR)
        raise UserError(
            f"unsupported OS {os_id} {version_id}: no known system python3 for it",
            f"use a host running one of: {supported}",
        ) from None


def platform_tags(machine: str) -> list[str]:
    return [f"manylinux2014_{machine}"] + [
        f"manylinux_2_{n}_{machine}" for n in range(17, GLIBC_FLOOR + 1)
    ]


def _target(python_version: str, machine: str) -> tuple[str, str]:
    if not re.fullmatch(r"3\.\d{1,2}", python_version or ""):
        raise UserError(
            f"python version {python_version!r} is not of the form 3.N",
            "pass the host's python3 version, e.g. 3.11 (see python_for)",
        )
    norm = MACHINES.get((machine or "").strip().lower())
    if norm is None:
        raise UserError(
            f"unsupported machine {machine!r}",
            f"hosts must be one of: {', '.join(sorted(set(MACHINES.values())))}",
        )
    return python_version, norm


def _requirements_text(path: Path, seen: set[Path] | None = None) -> bytes:
    """The requirements file plus every file it includes with -r/-c (for the wheel cache key)."""
    seen = seen if seen is not None else set()
    path = path.resolve()
    if path in seen:
        return b""
    seen.add(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read requirements file {path}: {e.strerror}",
                        "check app_requirements and the files it includes") from None
    out = [path.name.encode(), b"\0", data, b"\0"]
    for line in data.decode("utf-8", "replace").splitlines():
        m = re.match(r"\s*(?:-r|-c|--requirement|--constraint)(?:\s*=\s*|\s+)(\S+)", line)
        if m:
            out.append(_requirements_text(path.parent / m.group(1), seen))
    return b"".join(out)


def _has_requirements(path: Path) -> bool:
    return any(line.split("#", 1)[0].strip()
               for line in path.read_text(errors="replace").splitlines())


# --- wheelhouse ----------------------------------------------------------------------------------


def _pip_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["pip download failed without output"])[-1]


def _wheelhouse(req_file: Path, key: str, python_version: str, machine: str, cache: Path) -> Path:
    final = cache / "wheels" / key
    if (final / ".complete").is_file():
        os.utime(final)  # recently used: kept by _prune_wheelhouses
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{key}.", suffix=".tmp", dir=final.parent))
    try:
        if _has_requirements(req_file):
            cmd = [
                *pip_command(cache), "download", "--disable-pip-version-check", "--no-input",
                "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
            ]
            for tag in platform_tags(machine):
                cmd += ["--platform", tag]
            cmd += ["-d", str(tmp), "-r", str(req_file)]
            proc = subprocess.run(cmd, cwd=req_file.parent, capture_output=True, text=True)
            if proc.returncode != 0:
                raise UserError(
                    f"pip could not download wheels for {req_file.name} (CPython {python_version}, "
                    f"{machine}): {_pip_error(proc.stderr + proc.stdout)}",
                    "check the requirement names and versions; every package needs a wheel for the "
                    "host (pure-python or manylinux), since hosts install offline",
                )
        (tmp / ".complete").write_text("")
        try:
            tmp.rename(final)
        except OSError:  # another build finished first
            if not (final / ".complete").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _prune_wheelhouses(final.parent, final)
    return final


def _wheel_digests(house: Path) -> dict[str, str]:
    """Wheel file name -> sha256, computed once per wheelhouse (kept beside the wheels)."""
    index = house / ".digests.json"
    try:
        return json.loads(index.read_text())
    except (OSError, ValueError):
        pass
    digests = {p.name: file_digest.sha256(p) for p in sorted(house.iterdir()) if p.name.endswith(".whl")}
    tmp = index.with_name(f".digests.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(digests, indent=1, sort_keys=True))
    os.replace(tmp, index)
    return digests


def _prune_wheelhouses(wheels_dir: Path, keep: Path) -> None:
    """Keep the KEEP_WHEELHOUSES most recently used; one used within PRUNE_UNUSED_FOR may be in use by
    another run (parallel deploys and test workers share the cache): never pruned."""
    houses = sorted((p for p in wheels_dir.iterdir() if (p / ".complete").is_file()), key=_last_used, reverse=True)
    for old in houses[KEEP_WHEELHOUSES:]:
        if old != keep and time.time() - _last_used(old) > PRUNE_UNUSED_FOR:
            shutil.rmtree(old, ignore_errors=True)


def _last_used(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # another run pruned it meanwhile
        return 0.0


# --- plan ----------------------------------------------------------------------------------------


def object_name(entry: Entry) -> str:
    """The file's name in the host's store: its content hash, and its mode (hard links share one)."""
    return entry.digest + ("-x" if entry.executable else "")


@dataclass(frozen=True)
class AppTree:
    """The app's files by content, whatever the host: what the probe compares with the current release."""

    app_dir: Path
    entries: tuple[Entry, ...]
    req_file: Path
    requirements: str  # inside the release, e.g. "app/requirements.txt"
    tree: str  # 16 hex over every entry and the requirements path

    def objects(self) -> dict[str, Path]:
        """Store name -> the local file, for every file of the app."""
        return {object_name(e): self.app_dir / e.rel for e in self.entries if e.kind == "file"}


@dataclass(frozen=True)
class PlannedRelease:
    """A release known by its inputs (app files, requirements, target): its id, its venv key, and the
    wheels it needs, downloaded only when asked (`wheels()`), so `deploy --check` has no side effect."""

    id: str
    app: AppTree
    venv: str  # the venv key, e.g. cp311-x86_64-0123456789abcdef
    python_version: str
    machine: str
    cache: Path

    @property
    def requirements(self) -> str:
        return self.app.requirements

    def wheels(self) -> dict[str, Path]:
        """Store name -> wheel file, for every wheel the venv needs (downloaded once per venv key)."""
        with _wheelhouse_lock:
            house = _wheelhouse(self.app.req_file.resolve(), self.venv, self.python_version, self.machine,
                                self.cache)
        return {digest: house / name for name, digest in _wheel_digests(house).items()}

    def manifest(self, wheels: dict[str, Path] | None) -> dict:
        """What the host makes of the store: the release's directories, hard links and symlinks.
        With `wheels`, the venv is to be built from them."""
        entries = [["d", APP_DIR, ""]]
        for e in self.app.entries:
            path = f"{APP_DIR}/{e.rel}"
            entries.append({"dir": ["d", path, ""], "link": ["l", path, e.link],
                            "file": ["f", path, object_name(e)]}[e.kind])
        if wheels is not None:
            entries.append(["d", WHEELS_DIR, ""])
            entries += [["f", f"{WHEELS_DIR}/{path.name}", name] for name, path in sorted(wheels.items())]
        return {"layout": LAYOUT_VERSION, "id": self.id, "tree": self.app.tree, "venv": self.venv,
                "python": self.python_version, "machine": self.machine, "requirements": self.requirements,
                "entries": entries}


def scan_app(app_dir: Path, requirements: str) -> AppTree:
    """The app's files with their content hashes (requirements: a path relative to app_dir)."""
    app_dir = Path(app_dir)
    if not app_dir.is_dir():
        raise UserError(f"app directory {app_dir} does not exist",
                        "set app_source to the directory of your app")
    req_rel = Path(requirements)
    req_file = app_dir / req_rel
    if req_rel.is_absolute() or ".." in req_rel.parts or not req_file.is_file():
        raise UserError(
            f"requirements file {requirements!r} not found in {app_dir}",
            "set app_requirements to a file inside app_source (default requirements.txt)",
        )
    entries = collect(app_dir)
    if not any(e.rel == req_rel.as_posix() for e in entries):
        raise UserError(f"requirements file {requirements!r} is excluded from the release",
                        "move it out of what .gitignore/.provisionignore exclude, or take it back there "
                        "with a `!` line")
    h = hashlib.sha256()
    for part in (LAYOUT_VERSION, req_rel.as_posix()):
        h.update(part.encode() + b"\0")
    for e in entries:
        h.update(f"{e.kind}\0{e.rel}\0{int(e.executable)}\0{e.link}\0{e.digest}\n".encode())
    return AppTree(app_dir, tuple(entries), req_file, f"{APP_DIR}/{req_rel.as_posix()}", h.hexdigest()[:16])


def plan_for(app: AppTree, python_version: str, machine: str, cache_dir: Path | None = None) -> PlannedRelease:
    """The release of `app` for CPython python_version on machine ("x86_64" or "aarch64")."""
    python_version, machine = _target(python_version, machine)
    target = f"cp{python_version.replace('.', '')}-{machine}"
    req_key = hashlib.sha256()
    for part in (LAYOUT_VERSION, target, " ".join(platform_tags(machine))):
        req_key.update(part.encode() + b"\0")
    req_key.update(_requirements_text(app.req_file))
    venv = f"{target}-{req_key.hexdigest()[:16]}"
    release_id = hashlib.sha256(f"{app.tree}\0{venv}".encode()).hexdigest()[:12]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return PlannedRelease(release_id, app, venv, python_version, machine, cache)


def plan_release(app_dir: Path, requirements: str, python_version: str, machine: str,
                 cache_dir: Path | None = None) -> PlannedRelease:
    """The release of app_dir for CPython python_version on machine; nothing is written."""
    return plan_for(scan_app(app_dir, requirements), python_version, machine, cache_dir)
