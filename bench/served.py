"""Benchmark: POST /predict through the served stack on one lab host, provision's defaults against the
guides' configuration (nginx -> uWSGI, 4 processes x 2 threads, uWSGI's backlog of 100, nginx's default
backlog), gunicorn (4 sync workers) and Flask's development server, in the same run on the same host.

    sudo python3 bench/served.py [--rounds 3] [--slice 5] [--keep]     # ~10 minutes, then rewrites
    python3 bench/served.py --report                                  # the docs from the last run
    sudo python3 bench/served.py --sweep                              # uWSGI processes x threads

wrk runs in the controller's namespace against the lab host's address. All servers run at once
(bench/served_servers.py); per round and concurrency (1, 32, 128, 512) each gets one 5-second slice in
turn, so a busy moment of the shared machine touches them alike. Per slice: successful (2xx)
requests/s, errors by kind (non-2xx, connect, read, write, timeout), p50/p99 latency, and whether it
had no answer at all. The figures go to bench/results/served.json, the table and the plot to
docs/benchmarks.md (bench/served_report.py). Absolute figures drift about 2x between days on this
machine: read the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
from pathlib import Path

from common import RESULTS, bench_lab, save
from served_report import write_report
from served_servers import SERVERS, SWEEP, Server, deploy, install_gunicorn, start

from provisioner.labs.load import _ms, post_script

INSTANCE = "served"
CONCURRENCY = (1, 32, 128, 512)
ERROR_KINDS = ("non_2xx", "connect", "read", "write", "timeout")
WARMUP_SECONDS = 2


def wrk(url: str, connections: int, seconds: int, script: Path) -> dict:
    """One wrk run; every figure the benchmark reports, parsed from wrk's --latency output."""
    argv = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency",
            "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    total = re.search(r"(\d+) requests in ([\d.]+(?:ms|s|m))\b", out)
    took = _ms(total.group(2)) / 1000
    answered = int(total.group(1))
    socket_errors = dict.fromkeys(ERROR_KINDS[1:], 0)
    for kind, count in re.findall(r"\b(connect|read|write|timeout) (\d+)", out):
        socket_errors[kind] = int(count)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s|m))\s*$", out, re.MULTILINE))
    return {"c": connections, "seconds": round(took, 2), "answered": answered,
            "ok_rps": round((answered - (int(non_2xx.group(1)) if non_2xx else 0)) / took, 1),
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0, **socket_errors,
            "p50_ms": _ms(latency["50"]) if "50" in latency else None,
            "p99_ms": _ms(latency["99"]) if "99" in latency else None}


def summarize(slices: list[dict], names: list[str]) -> dict:
    """Per server and concurrency: medians over the rounds, errors summed by kind, dark slices counted."""
    table: dict = {}
    for name in names:
        table[name] = {}
        for c in CONCURRENCY:
            mine = [s for s in slices if s["server"] == name and s["c"] == c]
            p50s = [s["p50_ms"] for s in mine if s["p50_ms"] is not None]
            p99s = [s["p99_ms"] for s in mine if s["p99_ms"] is not None]
            table[name][str(c)] = {
                "ok_rps": round(statistics.median(s["ok_rps"] for s in mine)),
                "errors": {k: sum(s[k] for s in mine) for k in ERROR_KINDS},
                "p50_ms": round(statistics.median(p50s), 2) if p50s else None,
                "p99_ms": round(statistics.median(p99s), 2) if p99s else None,
                "p99_worst_ms": round(max(p99s), 2) if p99s else None,
                "dark_slices": sum(s["answered"] == 0 for s in mine), "slices": len(mine)}
    return table


def goals(table: dict) -> dict:
    """Issue 10's goals as ratios within the run: provision against the others."""
    mine, others = table["provision"], {k: v for k, v in table.items() if k != "provision"}
    result = {}
    for c in map(str, CONCURRENCY):
        best = max(others, key=lambda k: others[k][c]["ok_rps"])
        result[c] = {"errors": sum(mine[c]["errors"].values()), "dark_slices": mine[c]["dark_slices"],
                     "best_other": best,
                     "rps_ratio": round(mine[c]["ok_rps"] / max(1, others[best][c]["ok_rps"]), 2)}
    guides_p99 = table["guides"]["32"]["p99_ms"] or 0
    result["p99_c32_vs_guides"] = round((mine["32"]["p99_ms"] or 0) / guides_p99, 2) if guides_p99 else None
    return result


def run(servers: tuple[Server, ...], rounds: int, slice_seconds: int, keep: bool) -> dict:
    """Deploy, start the others beside it, then per round and concurrency one slice of each server,
    the servers' order turning by one every round."""
    script = post_script()
    slices: list[dict] = []
    with bench_lab(1, INSTANCE, keep) as ([host], inventory):
        deploy(inventory)
        if any("/gunicorn " in server.command for server in servers):
            install_gunicorn(host)
        for server in servers:
            start(host, server)
            wrk(server.url(host.address), 32, WARMUP_SECONDS, script)  # workers warm, not counted
        for round_no in range(1, rounds + 1):
            for c in CONCURRENCY:
                turn = (round_no - 1) % len(servers)
                for server in servers[turn:] + servers[:turn]:
                    figures = {"server": server.name, "round": round_no,
                               **wrk(server.url(host.address), c, slice_seconds, script),
                               "load_1min": round(os.getloadavg()[0], 1)}
                    slices.append(figures)
                    errors = sum(figures[k] for k in ERROR_KINDS)
                    print(f"round {round_no} {server.name:<10} c={c:<4} {figures['ok_rps']:>7.0f} ok/s  "
                          f"p50 {figures['p50_ms']} ms  p99 {figures['p99_ms']} ms  errors {errors}  "
                          f"load {figures['load_1min']}", flush=True)
    return {"rounds": rounds, "slice_seconds": slice_seconds, "concurrency": list(CONCURRENCY),
            "servers": {s.name: s.describe() for s in servers},
            "table": summarize(slices, [s.name for s in servers]), "slices": slices,
            "load_1min": [min(s["load_1min"] for s in slices), max(s["load_1min"] for s in slices)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each one slice per server and concurrency")
    parser.add_argument("--slice", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    parser.add_argument("--report", action="store_true", help="only rewrite the docs from the last results")
    parser.add_argument("--sweep", action="store_true",
                        help="uWSGI processes x threads candidates only (bench/results/served-sweep.json)")
    args = parser.parse_args()
    if args.sweep:
        save("served-sweep", run(SWEEP, args.rounds, args.slice, args.keep))
        return
    if args.report:
        results = json.loads((RESULTS / "served.json").read_text())
    else:
        results = run(SERVERS, args.rounds, args.slice, args.keep)
        results["goals"] = goals(results["table"])
        save("served", results)
    print(json.dumps(results["goals"], indent=1))
    write_report(results)


if __name__ == "__main__":
    main()
