"""What the benchmarks share: a lab of their own for the run, and where their figures are written."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provisioner.labs import container as lab  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

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
