"""The pip that downloads a release's wheels: provision may run from a pipx or uv tool environment, whose
interpreter need not have pip.

`pip download` needs only some pip, of any Python 3: the host's Python version and platform are flags.
Tried in order:
  1. the running interpreter's pip (a venv or pipx install has one);
  2. `python3 -m pip` of the first other python3 on PATH that has pip (Debian: python3-pip);
  3. a venv of provision's own, made once by the running interpreter with its ensurepip
     (`python -m venv`, which installs pip), under <cache>/pip-venv.
uv is not asked: `uv pip` has no `download`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from provisioner.errors import UserError


def pip_command(cache: Path) -> list[str]:
    """argv that starts a pip able to `download`."""
    if _has_pip(sys.executable):
        return [sys.executable, "-m", "pip"]
    other = shutil.which("python3")
    if other and other != sys.executable and _has_pip(other):  # a venv of it may lack the pip it has
        return [other, "-m", "pip"]
    python = cache / "pip-venv" / "bin" / "python"
    if not _has_pip(str(python)):
        _make_pip_venv(cache / "pip-venv")
    return [str(python), "-m", "pip"]


def _has_pip(python: str) -> bool:
    if not os.access(python, os.X_OK):
        return False
    check = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True)
    return check.returncode == 0


def _make_pip_venv(final: Path) -> None:
    """A venv with pip, built beside `final` and renamed into place (two deploys at once: one wins)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="pip-venv.", suffix=".tmp", dir=final.parent))
    try:
        made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(tmp)], capture_output=True, text=True)
        if made.returncode != 0 or not _has_pip(str(tmp / "bin" / "python")):
            detail = (made.stderr or made.stdout).strip().splitlines()[-1:] or ["no pip in it"]
            raise UserError(f"no pip to download the app's wheels with: {sys.executable} has none, no python3 on "
                            f"PATH has one, and a venv with pip could not be made ({detail[0]})",
                            "install pip for python3 (Debian: apt-get install python3-pip python3-venv)")
        if not _has_pip(str(final / "bin" / "python")):  # else another deploy made it meanwhile
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
