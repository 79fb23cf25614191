"""Benchmark: the served stack under wrk, in short slices, with provision's defaults and with the
earlier ones (per-worker recycling at 5000 requests, uWSGI logging every request, nginx's own
listen backlog) on the same lab host in the same run.

    sudo python3 bench/served.py [--seconds 60] [--slice 5] [--keep]

Prints, per configuration and concurrency: requests/s (median slice), p99 latency (worst slice),
failed requests, and slices with no answer at all (the stall of the recycling issue). Figures on this
machine drift about 2x between days: compare the two configurations of one run, not runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml
from common import bench_lab, save

from provisioner.labs.load import Slice, post_script, soak

INSTANCE = "served"
CONCURRENCY = (1, 32, 128, 512)
EARLIER_DEFAULTS = {"uwsgi_max_requests": 5000, "uwsgi_request_logging": True, "nginx_listen_backlog": 511}


def deploy(inventory: Path, settings: dict) -> None:
    """Converge the host to `settings` on top of the inventory the lab wrote."""
    data = yaml.safe_load(inventory.read_text())
    data["all"]["vars"] = settings
    inventory.write_text(yaml.safe_dump(data))
    out = subprocess.run([sys.executable, "-m", "provisioner", "deploy", "-H", "all", "-i", str(inventory)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"deploy failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")


def summary(name: str, slices: list[Slice]) -> dict:
    rows = {}
    for c in CONCURRENCY:
        mine = [s for s in slices if s.connections == c]
        rows[c] = {"rps": round(statistics.median(s.rate for s in mine)), "p99_ms": max(s.p99_ms for s in mine),
                   "failed": sum(s.failed for s in mine), "dark_slices": sum(s.answered == 0 for s in mine),
                   "slices": len(mine)}
        print(f"{name:<16} c={c:<4} {rows[c]['rps']:>6} req/s  p99 {rows[c]['p99_ms']:8.1f} ms  "
              f"failed {rows[c]['failed']:>5}  slices without an answer {rows[c]['dark_slices']}/{len(mine)}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="load per configuration")
    parser.add_argument("--slice", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    args = parser.parse_args()

    script = post_script()
    results = {}
    with bench_lab(1, INSTANCE, args.keep) as ([host], inventory):
        url = f"http://{host.address}/predict"
        for name, settings in (("earlier defaults", EARLIER_DEFAULTS), ("provision", {})):
            deploy(inventory, settings)
            time.sleep(1)
            results[name] = summary(name, soak(url, args.seconds, args.slice, CONCURRENCY, script))
        for c in CONCURRENCY:
            ratio = results["provision"][c]["rps"] / max(1, results["earlier defaults"][c]["rps"])
            print(f"provision / earlier defaults, c={c}: {ratio:.2f}x requests/s")
        save("served", results)


if __name__ == "__main__":
    main()
