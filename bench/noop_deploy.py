"""Benchmark: a no-op re-deploy of the full role set, on 1 and on 10 converged lab hosts.

    sudo python bench/noop_deploy.py [--hosts 10] [--repeat 5] [--keep]

Prints, for the whole `provision deploy` CLI process (wall time, median of --repeat runs):
one host, ten hosts, and the remote commands per host (SSH channels opened and scripts run on
them). For scale it also runs, in the same process against the same host, a baseline that does
what per-operation tools do: one SSH exec per fact (the same probe snippets), on a plain
paramiko connection. Goals (issue #2): <= 0.5 s for one host, <= 1.5 s for ten, <= 2 commands.
Figures on this machine are noisy: compare ratios from one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import paramiko
from common import bench_lab, save

from provisioner.inventory import load_inventory
from provisioner.stack import STACK

INSTANCE = "bench"


def cli(*args: str) -> tuple[float, dict]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "provisioner", *args, "--json"], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"provision {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return seconds, json.loads(out.stdout)


def per_fact_baseline(inventory: Path, host_name: str) -> tuple[float, int]:
    """One exec channel per resource probe, as per-operation tools do; no deploy logic at all."""
    host = load_inventory(inventory).select(host_name)[0]
    resources, _ = STACK.declare(host.vars)
    started = time.perf_counter()
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(host.address, port=host.port, username=host.user, key_filename=str(host.key_file))
    for resource in resources:
        _, stdout, _ = client.exec_command(f"sudo -n sh -c {json.dumps(resource.probe())}")
        stdout.read()
    client.close()
    return time.perf_counter() - started, len(resources)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    args = parser.parse_args()

    started = time.perf_counter()
    with bench_lab(args.hosts, INSTANCE, args.keep) as (hosts, inventory):
        print(f"lab: {len(hosts)} hosts up in {time.perf_counter() - started:.1f} s")
        seconds, first = cli("deploy", "-H", "lab", "-i", str(inventory), "--forks", str(args.hosts))
        print(f"converge: {len(first['hosts'])} hosts deployed from bare in {seconds:.1f} s")

        one, ten, remote = [], [], None
        for _ in range(args.repeat):
            seconds, report = cli("deploy", "-H", hosts[0].name, "-i", str(inventory))
            assert report["hosts"][0]["changed"] == 0, report
            one.append(seconds)
            remote = report["hosts"][0]["remote"]
            seconds, report = cli("deploy", "-H", "lab", "-i", str(inventory), "--forks", str(args.hosts))
            assert all(h["changed"] == 0 for h in report["hosts"]), report
            ten.append(seconds)
        baseline, operations = per_fact_baseline(inventory, hosts[0].name)

        figures = {
            "one_host_s": round(statistics.median(one), 3),
            "ten_hosts_s": round(statistics.median(ten), 3),
            "hosts": len(hosts),
            "remote_scripts_per_host": remote.get("scripts"),
            "ssh_channels_per_host": remote.get("channels"),
            "baseline_one_exec_per_fact_s": round(baseline, 3),
            "baseline_operations": operations,
        }
        figures["baseline_over_provision"] = round(baseline / figures["one_host_s"], 2)
        print(f"no-op deploy, 1 host : {figures['one_host_s']:.3f} s (median of {args.repeat}; goal <= 0.5 s)")
        print(f"no-op deploy, {len(hosts)} hosts: {figures['ten_hosts_s']:.3f} s (goal <= 1.5 s)")
        print(f"remote per host      : {remote.get('channels')} SSH channel, {remote.get('scripts')} scripts "
              f"(goal <= 2 commands)")
        print(f"baseline, one exec per fact ({operations} facts, no planning, same host): {baseline:.3f} s "
              f"= {figures['baseline_over_provision']}x a whole provision no-op run")
        save("noop_deploy", figures)


if __name__ == "__main__":
    main()
