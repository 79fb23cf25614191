"""What the benchmarks share: a lab of their own for the run, and where their figures are written."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provisioner.labs import container as lab  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CHECKOUT = Path(__file__).resolve().parent.parent
INSTALLED = Path("/var/cache/provision/bench-provision-venv")

# Bytecode as an installed package has it (pip compiles it): written once per benchmark process,
# outside the checkouts, even where the environment says PYTHONDONTWRITEBYTECODE. Without it every
# provision process compiles its ~60 modules from source (~0.3 s) that no installed copy pays, while
# pyinfra and ansible run from a venv pip compiled.
PYCACHE = Path(tempfile.mkdtemp(prefix="provision-bench-pycache-"))


def as_installed(env: dict) -> dict:
    """`env` for a provision process that finds its bytecode as an installed copy does."""
    env = {**env, "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def install_provision() -> Path:
    """This checkout as a user has it: built into a wheel and pip-installed into a venv of its own
    (as pipx does); returns its `provision` script. The contenders' processes then start alike:
    pyinfra and ansible run from a venv too, and neither pays this machine's site-packages .pth
    files (an editable finder, a certifi patch run at every interpreter start) that a provision
    run from the checkout would."""
    wheels = Path(tempfile.mkdtemp(prefix="provision-bench-wheel-"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(CHECKOUT)],
                   check=True)
    [wheel] = wheels.glob("*.whl")
    if not (INSTALLED / "bin/python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(INSTALLED)], check=True)
    pip = [str(INSTALLED / "bin/pip"), "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, str(wheel)], check=True)  # its dependencies, from PyPI the first time
    subprocess.run([*pip, "--force-reinstall", "--no-deps", str(wheel)], check=True)  # this build, same version
    return INSTALLED / "bin/provision"


@contextlib.contextmanager
def bench_lab(count: int, instance: str, keep: bool) -> Iterator[tuple[list, Path]]:
    """`count` fresh lab hosts in `instance` and their inventory; removed afterwards unless `keep`.
    Host keys go to a known_hosts of the run's own, so the user's is never touched."""
    work = Path(tempfile.mkdtemp(prefix=f"provision-{instance}-"))
    os.environ["PROVISION_KNOWN_HOSTS"] = str(work / "known_hosts")
    inventory = work / f"{instance}.yml"
    try:
        yield lab.up(count, instance=instance, inventory_path=inventory), inventory
    finally:
        if not keep:
            lab.down(instance)


def save(name: str, figures: dict) -> None:
    """bench/results/NAME.json: the run's figures, for the closing notes."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
