"""Benchmark: what `provision --help` and a usage error cost, beside an interpreter doing nothing.

    python3 bench/cli_startup.py [--rounds 20]

Each round runs every command once, in turn (interleaved, so a busy moment hits all of them); the
table gives the wall time and the CPU time (user + sys) of each, minimum and median. The goal of
issue 11 is <= 0.15 s of wall time; on a loaded machine CPU time is the steadier figure.
Bytecode is cached as a pip install has it (bench/common.py's as_installed).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import as_installed

CHECKOUT = Path(__file__).resolve().parent.parent

COMMANDS = {
    "python3 -c pass (the floor)": ["-c", "pass"],
    "provision --help": ["-m", "provisioner", "--help"],
    "provision deploy --help": ["-m", "provisioner", "deploy", "--help"],
    "provision deploy (usage error: no --host)": ["-m", "provisioner", "deploy"],
}


def once(args: list[str]) -> tuple[float, float]:
    env = as_installed({**os.environ, "PYTHONPATH": str(CHECKOUT)})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], capture_output=True, env=env, cwd=CHECKOUT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    rounds = ap.parse_args().rounds
    for args in COMMANDS.values():
        once(args)  # bytecode written, files in the page cache
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    for _ in range(rounds):
        for name, args in COMMANDS.items():
            figures[name].append(once(args))
    print(f"{rounds} interleaved rounds, load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| command | wall s min / median | CPU s min / median |\n|---|---:|---:|")
    for name, runs in figures.items():
        wall, cpu = [r[0] for r in runs], [r[1] for r in runs]
        print(f"| {name} | {min(wall):.3f} / {statistics.median(wall):.3f} | {min(cpu):.3f} / {statistics.median(cpu):.3f} |")


if __name__ == "__main__":
    main()
