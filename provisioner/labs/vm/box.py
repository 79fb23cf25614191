"""The VM lab's Vagrant box: built locally from Debian packages by vagrant/build-box.sh, cached
per recipe (the script's content), because Vagrant Cloud is not reachable here."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

from provisioner.errors import EXIT_FAILED, UserError
from provisioner.labs import common

from .config import BOX_CACHE, BUILD_BOX, Log, log_to_stderr, require_checkout


def box_recipe() -> str:
    require_checkout()
    return hashlib.sha256(BUILD_BOX.read_bytes()).hexdigest()[:12]


def box_version() -> str:
    return f"12.{int(box_recipe()[:8], 16)}"


def box_path() -> Path:
    return BOX_CACHE / f"provision-debian12-{box_recipe()}.box"


def build_box(force: bool = False, log: Log = log_to_stderr) -> Path:
    """Build the box unless the cached one matches the recipe (build-box.sh's content)."""
    box = box_path()
    if box.exists() and box.with_suffix(".json").exists() and not force:
        return box
    log(f"building the Debian 12 box (~1 min): {box}")
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(BUILD_BOX), *(["--force"] if force else [])], capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise UserError(f"building the VM box failed: {common.oneline(p.stderr or p.stdout)}",
                        f"run `bash {BUILD_BOX}` to see the whole output", EXIT_FAILED)
    log(f"box built in {time.monotonic() - t0:.0f} s")
    return box
