"""Build a release of the app on the controller: the app's files plus a wheelhouse, in one archive.

Hosts never reach PyPI: the controller downloads wheels for the host's Python and machine, and the
host installs them offline.

    release = build_release(Path("examples/model_api"), "requirements.txt", "3.11", "x86_64")
    release.id        "3f9c0a1b2d4e"  (12 hex: same app content + requirements + target -> same id)
    release.archive   ~/.cache/provision/releases/3f9c0a1b2d4e-cp311-x86_64.tar.gz

Archive layout (a deterministic tar.gz: sorted entries, fixed mtime, root:root, modes 0644/0755):

    release.json            {"id", "python", "machine", "requirements": "app/<app_requirements>",
                             "files", "wheels": [...]}
    app/...                 the app directory, less what release_files.py leaves out (.git, .env,
                            venvs, node_modules, build outputs, .gitignore and .provisionignore)
    wheels/*.whl            every wheel `pip install` needs, for CPython <python> on <machine>
                            (downloaded by the pip release_pip.py finds)

Host layout and install (done by the engine, one release per directory):

    {app_root}/releases/<id>.partial/       untar here
        python3 -m venv venv                (/usr/bin/python3: the uWSGI plugin links its libpython)
        venv/bin/pip install --no-index --find-links wheels -r app/<app_requirements>
    mv releases/<id>.partial releases/<id>  then point {app_root}/current at releases/<id>
    {app_root}/current/app                  uWSGI chdir (the app's modules import from here)
    {app_root}/current/venv                 uWSGI virtualenv
    {app_root}/current/app/<static_dir>/    nginx static files

The wheelhouse is cached on the controller under <cache>/wheels/<key>/ (key: the requirements
text, files it includes with -r/-c, and the target), the archive under <cache>/releases/, so a
re-deploy of the same content does no network and no packing. <cache> is
$XDG_CACHE_HOME/provision or ~/.cache/provision.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from provisioner import default_cache_dir
from provisioner.errors import UserError

from .release_files import Entry, collect
from .release_pip import pip_command

LAYOUT_VERSION = "1"
APP_DIR = "app"
WHEELS_DIR = "wheels"
MANIFEST = "release.json"

# Every archive entry gets this mtime (2000-01-01): byte-identical archives for identical input.
ARCHIVE_MTIME = 946684800
KEEP_ARCHIVES = 10
# An archive used this recently may be on its way to a host in another run (parallel deploys, parallel
# test workers share the cache): never pruned, however many there are.
PRUNE_UNUSED_FOR = 3600

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


@dataclass(frozen=True)
class Release:
    id: str
    archive: Path
    files: int  # app files in the archive (regular files and symlinks under app/)
    wheels: tuple[str, ...]
    requirements: str  # the requirements file inside the release, e.g. "app/requirements.txt"
    python_version: str
    machine: str

    @property
    def size(self) -> int:
        return self.archive.stat().st_size


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
    return final


# --- archive -------------------------------------------------------------------------------------


def _tarinfo(name: str, kind: str, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = ARCHIVE_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = mode
    if kind == "dir":
        info.type = tarfile.DIRTYPE
    elif kind == "link":
        info.type = tarfile.SYMTYPE
        info.linkname = link
    else:
        info.size = size
    return info


def _write_archive(path: Path, app_dir: Path, entries: list[Entry], wheel_dir: Path,
                   wheels: list[str], manifest: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6
        ) as gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
            data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
            tar.addfile(_tarinfo(MANIFEST, "file", 0o644, len(data)), io.BytesIO(data))
            tar.addfile(_tarinfo(APP_DIR, "dir", 0o755))
            for e in entries:
                name = f"{APP_DIR}/{e.rel}"
                if e.kind == "file":
                    src = app_dir / e.rel
                    content = src.read_bytes()
                    if hashlib.sha256(content).hexdigest() != e.digest:
                        raise UserError(f"{src} changed while the release was being built",
                                        "run the deploy again")
                    mode = 0o755 if e.executable else 0o644
                    tar.addfile(_tarinfo(name, "file", mode, len(content)), io.BytesIO(content))
                else:
                    tar.addfile(_tarinfo(name, e.kind, 0o755 if e.kind == "dir" else 0o777, link=e.link))
            tar.addfile(_tarinfo(WHEELS_DIR, "dir", 0o755))
            for w in wheels:
                content = (wheel_dir / w).read_bytes()
                tar.addfile(_tarinfo(f"{WHEELS_DIR}/{w}", "file", 0o644, len(content)),
                            io.BytesIO(content))
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _last_used(archive: Path) -> float:
    try:
        return archive.stat().st_mtime
    except FileNotFoundError:  # another run pruned it meanwhile
        return 0.0


def _prune(release_dir: Path, keep: Path) -> None:
    archives = sorted(release_dir.glob("*.tar.gz"), key=_last_used, reverse=True)
    for old in archives[KEEP_ARCHIVES:]:
        if old != keep and time.time() - _last_used(old) > PRUNE_UNUSED_FOR:
            old.unlink(missing_ok=True)
            old.with_name(old.name[: -len(".tar.gz")] + ".json").unlink(missing_ok=True)


@dataclass(frozen=True)
class PlannedRelease:
    """A release known by its inputs only (app files, requirements, target): its id, and how to build it.

    Planning reads files and writes nothing, so `deploy --check` has no side effect; `build()`
    makes the archive (downloading wheels) or takes it from the cache.
    """

    id: str
    app_dir: Path
    entries: tuple[Entry, ...]
    req_file: Path
    requirements: str  # inside the release, e.g. "app/requirements.txt"
    wheel_key: str
    target: str  # e.g. cp311-x86_64
    python_version: str
    machine: str
    cache: Path

    def build(self) -> Release:
        archive = self.cache / "releases" / f"{self.id}-{self.target}.tar.gz"
        meta = archive.with_name(archive.name[: -len(".tar.gz")] + ".json")
        files = sum(1 for e in self.entries if e.kind != "dir")
        if archive.is_file() and meta.is_file():
            try:
                wheels = tuple(json.loads(meta.read_text())["wheels"])
                os.utime(archive)  # recently used: kept by _prune
                return Release(self.id, archive, files, wheels, self.requirements, self.python_version, self.machine)
            except (ValueError, KeyError, TypeError):
                pass  # damaged metadata: build again
        wheel_dir = _wheelhouse(self.req_file.resolve(), self.wheel_key, self.python_version, self.machine,
                                self.cache)
        wheels = sorted(p.name for p in wheel_dir.iterdir() if p.name.endswith(".whl"))
        manifest = {
            "id": self.id,
            "python": self.python_version,
            "machine": self.machine,
            "requirements": self.requirements,
            "files": files,
            "wheels": wheels,
            "layout": LAYOUT_VERSION,
        }
        _write_archive(archive, self.app_dir, list(self.entries), wheel_dir, wheels, manifest)
        meta.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _prune(archive.parent, archive)
        return Release(self.id, archive, files, tuple(wheels), self.requirements, self.python_version, self.machine)


def plan_release(app_dir: Path, requirements: str, python_version: str, machine: str,
                 cache_dir: Path | None = None) -> PlannedRelease:
    """The release of app_dir (+ wheels for `requirements`, a path relative to app_dir) for CPython
    python_version on machine ("x86_64" or "aarch64"), identified by its inputs; nothing is written."""
    python_version, machine = _target(python_version, machine)
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
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entries = collect(app_dir)
    if not any(e.rel == req_rel.as_posix() for e in entries):
        raise UserError(f"requirements file {requirements!r} is excluded from the release",
                        "move it out of what .gitignore/.provisionignore exclude, or take it back there "
                        "with a `!` line")

    target = f"cp{python_version.replace('.', '')}-{machine}"
    req_key = hashlib.sha256()
    for part in (LAYOUT_VERSION, target, " ".join(platform_tags(machine))):
        req_key.update(part.encode() + b"\0")
    req_key.update(_requirements_text(req_file))
    wheel_key = f"{target}-{req_key.hexdigest()[:16]}"

    h = hashlib.sha256()
    for part in (LAYOUT_VERSION, target, req_rel.as_posix(), wheel_key):
        h.update(part.encode() + b"\0")
    for e in entries:
        h.update(f"{e.kind}\0{e.rel}\0{int(e.executable)}\0{e.link}\0{e.digest}\n".encode())
    return PlannedRelease(h.hexdigest()[:12], app_dir, tuple(entries), req_file, f"{APP_DIR}/{req_rel.as_posix()}",
                          wheel_key, target, python_version, machine, cache)


def build_release(app_dir: Path, requirements: str, python_version: str, machine: str,
                  cache_dir: Path | None = None) -> Release:
    """Plan and build a release. Cached: identical input costs milliseconds."""
    return plan_release(app_dir, requirements, python_version, machine, cache_dir).build()
