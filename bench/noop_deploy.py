"""Benchmark: a no-op re-deploy of the full role set, at 1 host and at N converged lab hosts, beside its floor.

    sudo python bench/noop_deploy.py [--hosts 10] [--repeat 5] [--keep]
    sudo python bench/noop_deploy.py --inventory lab.yml [--before /path/to/older/checkout] [--forks 4,10]

Measures the whole `provision deploy` CLI process (wall time, median of --repeat interleaved rounds)
and, in the same rounds, provision's own floor: OpenSSH (one `ssh` per host, all hosts at once)
running exactly provision's probe script (the facts and the health check) and nothing else. The
ratio provision / floor is the controller's overhead (Python start-up, imports, planning, paramiko);
the floor itself is the probe's weight on the hosts. With --before, an older checkout runs in the
same rounds, for a before/after from one run (--before-path: more PYTHONPATH for it, e.g. another
typer, to compare a dependency's versions with --before set to this checkout). With --forks, the
N-host deploy is run once per value; with a 1-host inventory there is only the 1-host deploy.
Every process runs with its bytecode cached (as pip installs it), whatever PYTHONDONTWRITEBYTECODE
says, and after one untimed run per variant (bytecode, compiled templates).
Beside wall time, each provision variant's CPU seconds (user + sys of the process; on a loaded machine
they vary far less than wall time) and its hosts' part (the slowest host's own seconds in the report:
connect, probe, plan, without the interpreter start and imports).
Also once: what per-operation tools do, one SSH exec per fact (the same probe snippets, paramiko).
Figures on this machine are noisy: compare ratios from one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
from common import as_installed, bench_lab, save

from provisioner.engine import facts
from provisioner.inventory import load_inventory
from provisioner.stack import STACK

INSTANCE = "bench"
CHECKOUT = Path(__file__).resolve().parent.parent


CPU: dict[str, list[float]] = {}  # CPU seconds (user + sys) of each provision process, by variant


def cli(*args: str, checkout: Path = CHECKOUT, path: str = "") -> tuple[float, dict]:
    """One `provision` process from `checkout` (its own package, not the installed one; `path`: more
    PYTHONPATH after it, e.g. another version of a dependency); seconds and report.
    Its CPU time goes to CPU["last"]: on a loaded machine it varies far less than wall time."""
    pythonpath = os.pathsep.join(filter(None, (str(checkout), path)))
    env = as_installed({**os.environ, "PYTHONPATH": pythonpath})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "provisioner", *args, "--json"], capture_output=True, text=True,
                         env=env, cwd=checkout)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["last"] = [after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime]
    if out.returncode != 0:
        raise SystemExit(f"provision {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return seconds, json.loads(out.stdout)


def probe_floor(hosts: list, known_hosts: Path) -> float:
    """OpenSSH running provision's exact probe (facts + health check) on every host at once: seconds."""
    runs = []
    for host in hosts:
        resources, _ = STACK.declare(host.vars)
        script = facts.probe_script(resources, health=STACK.health(host.vars, tries=1))
        shell = "sh" if host.user == "root" else "sudo -n sh"
        argv = ["ssh", "-q", "-i", str(host.key_file), "-p", str(host.port), "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=no",
                f"{host.user}@{host.address}", shell]
        runs.append((argv, script))
    started = time.perf_counter()
    procs = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for argv, _ in runs]
    # every host fed at once: communicating with one after another ran the hosts' probes in turn
    with ThreadPoolExecutor(max_workers=len(procs)) as pool:
        outs = list(pool.map(lambda proc, script: proc.communicate(script)[0], procs, [s for _, s in runs]))
    for out in outs:
        if "@@provision health" not in out:
            raise SystemExit(f"the floor's probe did not run: {out[-500:]}")
    return time.perf_counter() - started


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


def noop(variant: tuple[Path, str], pattern: str, inventory: Path, forks: int, key: str = "") -> tuple[float, dict]:
    """A no-op deploy by `variant` (checkout, extra PYTHONPATH); under `key`, its CPU seconds and the
    slowest host's own seconds (the deploy after start-up and imports: connect, probe, plan)."""
    checkout, path = variant
    seconds, report = cli("deploy", "-H", pattern, "-i", str(inventory), "--forks", str(forks), checkout=checkout,
                          path=path)
    assert all(h["changed"] == 0 for h in report["hosts"]), report
    if key:
        CPU.setdefault(f"{key}_cpu", []).extend(CPU["last"])
        CPU.setdefault(f"{key}_hosts_part", []).append(max(h["seconds"] for h in report["hosts"]))
    return seconds, report


def rounds(args, hosts: list, inventory: Path) -> dict[str, list[float]]:
    """--repeat interleaved rounds of every variant; the seconds of each."""
    known_hosts = Path(tempfile.mkdtemp(prefix="provision-floor-")) / "known_hosts"
    variants = {"provision": (CHECKOUT, "")}
    if args.before:
        variants["before"] = (Path(args.before), args.before_path)
    n, first = len(hosts), hosts[0]
    for variant in variants.values():  # not timed: bytecode and caches written, as after any first run
        noop(variant, first.name, inventory, 1)
    times: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        times.setdefault("floor_1", []).append(probe_floor([first], known_hosts))
        if n > 1:
            times.setdefault(f"floor_{n}", []).append(probe_floor(hosts, known_hosts))
        for name, variant in variants.items():
            times.setdefault(f"{name}_1", []).append(noop(variant, first.name, inventory, 1, f"{name}_1")[0])
            for forks in args.forks if n > 1 else ():
                key = f"{name}_{n}" + ("" if forks == n else f"_forks{forks}")
                times.setdefault(key, []).append(noop(variant, "all", inventory, forks, key)[0])
    return times


@contextlib.contextmanager
def lab_or_inventory(args):
    """The hosts: an existing converged lab (--inventory), or a bench lab brought up and converged."""
    if args.inventory:
        inventory = Path(args.inventory)
        yield load_inventory(inventory).select("all"), inventory
        return
    started = time.perf_counter()
    with bench_lab(args.hosts, INSTANCE, args.keep) as (hosts, inventory):
        print(f"lab: {len(hosts)} hosts up in {time.perf_counter() - started:.1f} s")
        seconds, first = cli("deploy", "-H", "all", "-i", str(inventory), "--forks", str(args.hosts))
        print(f"converge: {len(first['hosts'])} hosts deployed from bare in {seconds:.1f} s")
        yield load_inventory(inventory).select("all"), inventory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    parser.add_argument("--inventory", help="use these converged hosts (all of them) instead of a new lab")
    parser.add_argument("--before", help="an older provision checkout to run in the same rounds")
    parser.add_argument("--before-path", default="", help="more PYTHONPATH for --before (e.g. another typer)")
    parser.add_argument("--forks", default="", help="comma list of --forks values for the N-host deploy")
    args = parser.parse_args()

    with lab_or_inventory(args) as (hosts, inventory):
        args.forks = [int(f) for f in args.forks.split(",") if f] or [len(hosts)]
        times = rounds(args, hosts, inventory)
        _, report = noop((CHECKOUT, ""), hosts[0].name, inventory, 1)
        remote = report["hosts"][0]["remote"]
        baseline, operations = per_fact_baseline(inventory, hosts[0].name)

    n = len(hosts)
    figures: dict = {"hosts": n, "repeat": args.repeat, "medians_s": {}, "ratios": {}}
    for key, values in times.items():
        figures["medians_s"][key] = round(statistics.median(values), 3)
    medians = figures["medians_s"]
    for key, value in medians.items():
        if not key.startswith("floor"):
            count = key.split("_")[1]
            figures["ratios"][f"{key}_over_floor"] = round(value / medians[f"floor_{count}"], 2)
    figures["cpu_and_hosts_part_s"] = {key: round(statistics.median(values), 3)
                                       for key, values in CPU.items() if key != "last"}
    figures.update(remote_scripts_per_host=remote.get("scripts"), ssh_channels_per_host=remote.get("channels"),
                   baseline_one_exec_per_fact_s=round(baseline, 3), baseline_operations=operations)
    for key, value in medians.items():
        ratio = figures["ratios"].get(f"{key}_over_floor")
        print(f"{key:24} {value:6.3f} s" + (f"   {ratio:.2f}x its floor" if ratio else ""))
    for key, value in figures["cpu_and_hosts_part_s"].items():
        print(f"{key:24} {value:6.3f} s")
    print(f"remote per host: {remote.get('channels')} SSH channel, {remote.get('scripts')} script(s)")
    print(f"one exec per fact ({operations} facts, no planning, one host): {baseline:.3f} s")
    save("noop_deploy", figures)


if __name__ == "__main__":
    main()
