"""Benchmark: what `provision --help` and a usage error cost, beside an interpreter doing nothing.

    python3 bench/cli_startup.py [--rounds 20]

Each round runs every command once, in turn (interleaved, so a busy moment hits all of them); the
table gives the wall time and the CPU time (user + sys) of each, minimum and median. The goal of
issue 11 is <= 0.15 s of wall time; on a loaded machine CPU time is the steadier figure.
provision runs as a user has it, from its wheel in a venv of its own (bench/common.py's
install_provision), and the floor is that venv's interpreter.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import time
from pathlib import Path

from common import install_provision

CHECKOUT = Path(__file__).resolve().parent.parent

COMMANDS = {
    "python3 -c pass (the floor)": ["python", "-c", "pass"],
    "provision --help": ["provision", "--help"],
    "provision deploy --help": ["provision", "deploy", "--help"],
    "provision deploy (usage error: no --host)": ["provision", "deploy"],
}


def once(bin_dir: Path, args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `args` (its program from `bin_dir`)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True, cwd=CHECKOUT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    rounds = ap.parse_args().rounds
    bin_dir = install_provision().parent
    for args in COMMANDS.values():
        once(bin_dir, args)  # files in the page cache
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    for _ in range(rounds):
        for name, args in COMMANDS.items():
            figures[name].append(once(bin_dir, args))
    print(f"{rounds} interleaved rounds, load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| command | wall s min / median | CPU s min / median |\n|---|---:|---:|")
    for name, runs in figures.items():
        wall, cpu = [r[0] for r in runs], [r[1] for r in runs]
        print(f"| {name} | {min(wall):.3f} / {statistics.median(wall):.3f} | {min(cpu):.3f} / {statistics.median(cpu):.3f} |")


if __name__ == "__main__":
    main()
