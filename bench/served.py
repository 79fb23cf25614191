"""Benchmark: POST /predict through the served stack on one lab host, provision's defaults against the
guides' configuration (nginx -> uWSGI, 4 processes x 2 threads, uWSGI's backlog of 100, Debian's nginx
defaults), gunicorn (4 sync workers) and Flask's development server, in the same run on the same host.

    sudo python3 bench/served.py [--rounds 3] [--slice 5] [--keep]     # ~10 minutes, then rewrites
    python3 bench/served.py --report                                  # the docs from the last run

wrk runs in the controller's namespace against the lab host's address, one 5-second slice per
concurrency (1, 32, 128, 512) per server per round; rounds interleave the servers, so a drift of the
shared machine touches each of them alike. Per slice: successful (2xx) requests/s, errors by kind
(non-2xx, connect, read, write, timeout), p50/p99 latency, and whether it had no answer at all.
The figures go to bench/results/served.json, the table and the plot to docs/benchmarks.md
(bench/served_report.py). Absolute figures drift about 2x between days on this machine: read the
ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
from pathlib import Path

from common import RESULTS, bench_lab, save
from served_report import write_report
from served_servers import SERVERS, SWEEP, Server, deploy, install_gunicorn, start_direct, wait_answering

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


def serve(server: Server, host, inventory: Path, deployed: list) -> None:
    """Make `server` answer on the host; a provision deploy only when the uWSGI settings change."""
    if server.settings is None:
        wait_answering(server.url(host.address))
    elif deployed != [server.settings]:
        deploy(inventory, server.settings)
        deployed[:] = [server.settings]
        wait_answering(server.url(host.address))


def summarize(slices: list[dict]) -> dict:
    """Per server and concurrency: medians over the rounds, errors summed by kind, dark slices counted."""
    table: dict = {}
    for name in dict.fromkeys(s["server"] for s in slices):
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
    script = post_script()
    slices: list[dict] = []
    with bench_lab(1, INSTANCE, keep) as ([host], inventory):
        deployed: list = []
        serve(servers[0], host, inventory, deployed)
        if any(server.settings is None for server in servers):
            install_gunicorn(host)
        for server in servers:
            if server.settings is None:
                start_direct(host, server)
        for round_no in range(1, rounds + 1):
            for server in servers:
                serve(server, host, inventory, deployed)
                url = server.url(host.address)
                wrk(url, 32, WARMUP_SECONDS, script)  # connections and workers warm, not counted
                for c in CONCURRENCY:
                    figures = {"server": server.name, "round": round_no, **wrk(url, c, slice_seconds, script)}
                    slices.append(figures)
                    errors = sum(figures[k] for k in ERROR_KINDS)
                    print(f"round {round_no} {server.name:<10} c={c:<4} {figures['ok_rps']:>7.0f} ok/s  "
                          f"p50 {figures['p50_ms']} ms  p99 {figures['p99_ms']} ms  errors {errors}", flush=True)
    return {"rounds": rounds, "slice_seconds": slice_seconds, "concurrency": list(CONCURRENCY),
            "servers": {s.name: s.settings if s.settings is not None else s.command for s in servers},
            "table": summarize(slices), "slices": slices}


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
