"""provision vs pyinfra 3 vs ansible-core (plain, pipelined) vs the floors: one command, one document.

    sudo python3 bench/compare.py [--hosts 1,10,50] [--rounds 5] [--cold-rounds 1] [--tools ...] [--keep]

Installs pyinfra, ansible-core and matplotlib into a bench venv (never the project's), brings up a
lab of max(--hosts) hosts, exports provision's end state (bench/compare_state.py), then for each N:
cold (fresh hosts, nothing -> serving; every contender checked afterwards with `provision deploy
--check` = 0 changes and bench/floor.sh = converged) and no-op (--rounds interleaved rounds, order
rotated each round; medians). Remote connections/channels are counted on the first host by its sshd.
Writes bench/results/compare.json and the deploy-speed section of docs/benchmarks.md + its plot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, bench_lab, install_provision  # noqa: E402
from compare_report import write_report  # noqa: E402
from compare_state import cold_script, export  # noqa: E402
from compare_tools import VENV, Channels, Contenders  # noqa: E402

from provisioner.inventory import load_inventory  # noqa: E402
from provisioner.labs import container as lab  # noqa: E402

TOOLS = ("provision", "pyinfra", "ansible", "ansible-pipelining", "floor", "probe-floor")
COLD_TOOLS = ("provision", "pyinfra", "ansible", "ansible-pipelining", "floor")
T0 = time.monotonic()


def ensure_venv() -> dict[str, str]:
    """The bench venv with pyinfra 3, ansible-core and matplotlib; their versions."""
    if not (VENV / "bin/python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin/pip"), "install", "-q", "pyinfra>=3,<4", "ansible-core", "matplotlib>=3.8"],
                   check=True)
    code = ("import importlib.metadata as m; print({p: m.version(p) for p in "
            "('pyinfra', 'ansible-core', 'matplotlib', 'paramiko')})")
    versions = eval(subprocess.run([str(VENV / "bin/python"), "-c", code], capture_output=True, text=True,
                                   check=True).stdout)  # a dict literal printed by our own line above
    versions["openssh"] = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    return versions


def converged(c: Contenders, n: int) -> str:
    """'' when `provision deploy --check` finds 0 changes and floor.sh finds nothing different."""
    check = c.provision(n, check=True)
    if not check.ok:
        return "provision --check: " + check.output[-400:]
    floor = c.floor_check(n)
    return "" if floor.ok else "floor.sh: " + floor.output[-400:]


def cold(c: Contenders, tool: str, n: int, instance: str, channels_on) -> dict:
    """Fresh hosts 1..n (removed and made again), then the contender; its cost, channels, end state."""
    names = [h.name for h in c.hosts[:n]]
    lab.remove_hosts(names, instance)
    lab.add_hosts(names, instance)
    ch = channels_on(c.hosts[0])
    ch.start()
    cost = c.run(tool, n, cold_script=c.cold if tool == "floor" else "")
    row = {"tool": tool, "n": n, "kind": "cold", "seconds": cost.seconds, "cpu": cost.cpu, "rss_mib": cost.max_rss_mib,
           "ok": cost.ok, **ch.stop()}
    row["end_state"] = converged(c, n) or "equal"
    if not cost.ok:
        row["error"] = cost.output[-1500:]
    return row


def noop_rounds(c: Contenders, tools: list[str], n: int, rounds: int, ansible_rounds: int, channels_on,
                figures: dict) -> None:
    """The no-op rounds of N hosts, their rows added to `figures` and saved after every round."""
    rows = figures["rows"]
    ch = channels_on(c.hosts[0])
    for r in range(rounds):
        order = tools[r % len(tools):] + tools[:r % len(tools)]
        order = [t for t in order if not t.startswith("ansible") or r < ansible_rounds]
        for tool in order:
            ch.start()
            cost = c.run(tool, n)
            rows.append({"tool": tool, "n": n, "kind": "noop", "round": r, "seconds": cost.seconds, "cpu": cost.cpu,
                         "rss_mib": cost.max_rss_mib, "ok": cost.ok, **ch.stop()})
            if not cost.ok:
                rows[-1]["error"] = cost.output[-1500:]
            print(f"  no-op N={n} round {r + 1}/{rounds} {tool}: {cost.seconds:.2f} s", flush=True)
        save(figures)


def machine() -> dict:
    mem = next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpu": model, "memory": mem.split(":")[1].strip(), "kernel": platform.release(),
            "python": platform.python_version(), "load_at_start": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", default="1,10", help="host counts, comma-separated (e.g. 1,10,50)")
    ap.add_argument("--rounds", type=int, default=5, help="no-op rounds (interleaved)")
    ap.add_argument("--ansible-rounds", type=int, default=None,
                    help="no-op rounds for the two ansible variants (default: --rounds); they are the slow ones")
    ap.add_argument("--cold-rounds", type=int, default=1, help="cold runs per contender and host count")
    ap.add_argument("--cold-max", type=int, default=10, help="largest N that gets cold runs")
    ap.add_argument("--tools", default=",".join(TOOLS), help="contenders, comma-separated")
    ap.add_argument("--forks", default="",
                    help="extra --forks values for provision's no-op, each a contender of its own (e.g. 5,10,25)")
    ap.add_argument("--instance", default="cmp")
    ap.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    ap.add_argument("--results", default="compare", help="bench/results/NAME.json (only 'compare' writes the doc)")
    args = ap.parse_args()
    counts = sorted({int(x) for x in args.hosts.split(",")})
    tools = [t for t in args.tools.split(",") if t] + [f"provision-forks{f}" for f in args.forks.split(",") if f]
    if not Path("/usr/bin/time").exists():
        raise SystemExit("bench/compare.py measures controller memory with GNU time: apt-get install time")
    figures = {"rss_method": "gnu-time", "machine": machine(), "versions": ensure_venv(), "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "rounds": args.rounds, "name": args.results, "cold_rounds": args.cold_rounds, "rows": []}
    provision = install_provision()
    with bench_lab(max(counts), args.instance, args.keep) as (_, inventory):
        hosts = load_inventory(inventory).select("all")
        state_dir = Path(os.environ["PROVISION_KNOWN_HOSTS"]).parent / "state"
        export(hosts[0], state_dir)
        c = Contenders(hosts, inventory, lab.known_hosts_path(args.instance), state_dir, provision)
        c.cold = cold_script(c.state)

        def channels_on(host):
            return Channels(host, c.known_hosts)

        for n in counts:
            if n <= args.cold_max:
                cold_tools = [t for t in tools if t in COLD_TOOLS]
                for r in range(args.cold_rounds):  # the order rotates, as in the no-op rounds
                    for tool in cold_tools[r % len(cold_tools):] + cold_tools[:r % len(cold_tools)]:
                        row = cold(c, tool, n, args.instance, channels_on)
                        figures["rows"].append(row)
                        print(f"cold N={n} {tool}: {row['seconds']:.1f} s, end state {row['end_state'][:200]}",
                              flush=True)
                        save(figures)
            else:
                c.provision(n)  # converge for the no-op rounds; not a figure (N above --cold-max)
            figures["ansible_rounds"] = args.rounds if args.ansible_rounds is None else args.ansible_rounds
            noop_rounds(c, tools, n, args.rounds, figures["ansible_rounds"], channels_on, figures)


def save(figures: dict) -> None:
    """bench/results/NAME.json and (for the main run) the document, after every step: a run cut
    short still reports what it measured."""
    figures["bench_minutes"] = round((time.monotonic() - T0) / 60, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{figures['name']}.json").write_text(json.dumps(figures, indent=2) + "\n")
    if figures["name"] == "compare":
        write_report(figures, extra_runs())


def extra_runs() -> list[dict]:
    """Rows of the other result files of bench/compare.py (e.g. a channel-count pass) for the doc."""
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob("compare-*.json"))]


if __name__ == "__main__":
    if "--report-only" in sys.argv:
        write_report(json.loads((RESULTS / "compare.json").read_text()), extra_runs())
    else:
        main()
