"""What a host keeps about each release beside its files: where it came from and when it went live.

Two small files in each release directory, written by the step that installs or switches to it:
`.provision-release.json` (once, at install: who shipped it, the app source's git commit and whether
the tree was dirty, the requirements key) and `.provision-live` (each time it becomes current: the
host's clock in epoch seconds and who made it so). `provision releases` shows them, and a rollback
without `--to` goes to the kept release that was current last before the one now current.
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..remote.quoting import Raw, cmd
from ..remote.scripts import fragment

META_FILE = ".provision-release.json"
LIVE_FILE = ".provision-live"


def operator() -> str:
    """Who runs this controller: user@host, as the deploy lock also names it."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def source_info(app_dir: Path) -> dict:
    """The app source's git commit and whether its tree (below app_dir) has uncommitted changes;
    empty when it is not a git checkout (or git is not installed)."""
    git = shutil.which("git")
    if not git:
        return {}
    head = subprocess.run([git, "-C", str(app_dir), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return {}
    status = subprocess.run([git, "-C", str(app_dir), "status", "--porcelain", "--", "."],
                            capture_output=True, text=True)
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def describe(target: str, app_dir: Path, requirements_key: str) -> str:
    """Shell: write the release's metadata file (after its install)."""
    meta = {"shipped_by": operator(), "shipped_at": int(time.time()), "requirements_key": requirements_key,
            **source_info(app_dir)}
    path = f"{target}/{META_FILE}"
    return cmd("printf", "%s\\n", json.dumps(meta, sort_keys=True), Raw(">"), path)


def went_live(target: str) -> str:
    """Shell: stamp the release as made current now, by this controller's user."""
    return cmd("printf", "%s %s\\n", Raw('"$(date +%s)"'), operator(), Raw(">"), f"{target}/{LIVE_FILE}")


def live_file(target: str) -> str:
    return f"{target}/{LIVE_FILE}"


def list_script(root: str) -> str:
    """Shell: the current release and every complete one with its metadata (release_list.sh)."""
    return fragment("release_list.sh", ROOT=root, META_FILE=META_FILE, LIVE_FILE=LIVE_FILE)


@dataclass
class KeptRelease:
    """One complete release on a host, as release_list.sh reads it."""

    id: str
    installed: int  # epoch seconds: when its install completed
    current: bool = False
    live_at: int | None = None  # epoch seconds it last became current (None: before provision kept this)
    live_by: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def recency(self) -> tuple[bool, int]:
        """How recently it served: stamped releases by when they last became current, then the others
        by when they were installed (from before the stamps, or installed and never made current: a
        release whose restart was undone loses its stamp with the undo)."""
        return (self.live_at is not None, self.live_at if self.live_at is not None else self.installed)

    def as_dict(self) -> dict:
        return {"id": self.id, "current": self.current, "live_at": self.live_at, "live_by": self.live_by or None,
                "shipped_by": self.meta.get("shipped_by"), "shipped_at": self.meta.get("shipped_at"),
                "commit": self.meta.get("commit"), "dirty": self.meta.get("dirty"),
                "requirements_key": self.meta.get("requirements_key")}


def parse_list(out: str) -> list[KeptRelease]:
    """release_list.sh's lines -> the kept releases: the current one, then the most recently live."""
    current = ""
    kept: list[KeptRelease] = []
    for line in out.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "current":
            current = rest.strip()
        elif kind == "release":
            rid, _, installed = rest.partition(" ")
            kept.append(KeptRelease(rid, int(installed or 0)))
        elif kind == "live" and kept:
            at, _, by = rest.partition(" ")
            kept[-1].live_at, kept[-1].live_by = (int(at), by.strip()) if at.isdigit() else (None, "")
        elif kind == "meta" and kept:
            try:
                kept[-1].meta = json.loads(rest)
            except ValueError:
                pass  # a damaged metadata file: shown as unknown
    for release in kept:
        release.current = release.id == current
    return sorted(kept, key=lambda r: (r.current, r.recency), reverse=True)
