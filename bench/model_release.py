"""Benchmark: releases of a real model endpoint on one lab host, beside their floors, in one run.

    sudo python bench/model_release.py [--weights-mb 200] [--instance bm] [--keep]

The app (provisioner/labs/model_app.py): numpy + scikit-learn + scipy wheels from PyPI and a weights
file of --weights-mb random bytes read at start-up. One fresh Debian 12 lab host; in order:

    cold          the first deploy (packages, the venv from the wheels, the weights)
    no-op         the same deploy again
    code change   one line of Python
    weights       the weights file rewritten
    requirements  one small package added (a new venv)
    restart       a uWSGI setting changed: the zero-downtime restart alone (floor 1)

then the code, weights and requirements changes again with the host's link shaped like a laptop's
uplink: 20 Mbit/s by `tc ... tbf` on the controller's end of the host's link (this kernel has no
netem: latency is NOT shaped). For every change, floor 2: `rsync -a --link-dest` of the app's tree
over one OpenSSH connection to a directory of its own on the host, plus the restart's time (floor 1).

Per step: wall time of the `provision deploy` process, bytes sent to the host (the transmit counter of
the controller's end of its link: SSH, scripts and files), the growth of the app's directory on the
host (`du` counts hard links once), and the controller's CPU seconds (user + sys of the process).
Figures on this machine are noisy (other work shares its 2 cores): compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

from common import CHECKOUT, as_installed, bench_lab, save

from provisioner.labs.container.inventory import write_inventory
from provisioner.labs.container.network import veth_name
from provisioner.labs.model_app import model_app

ROOT = "/srv/model_api"
SETTINGS = {"app_module": "model_app.wsgi", "app_callable": "app"}
EXTRA_REQUIREMENT = "six==1.17.0\n"


class Host:
    def __init__(self, host, work: Path):
        self.host, self.work = host, work
        self.veth = veth_name(host.instance, host.address)
        self.ssh = ["ssh", "-i", host.key_file, "-o", f"UserKnownHostsFile={host.known_hosts}",
                    "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"deploy@{host.address}"]

    def run(self, command: str) -> str:
        return subprocess.run([*self.ssh, f"sudo sh -c {shlex.quote(command)}"], capture_output=True, text=True,
                              check=True).stdout.strip()

    def sent(self) -> int:
        return int(Path(f"/sys/class/net/{self.veth}/statistics/tx_bytes").read_text())

    def disk(self) -> int:
        return int(self.run(f"du -sxb {ROOT} /srv/rsync-floor 2>/dev/null | awk '{{s += $1}} END {{print s + 0}}'"))

    def shape(self, on: bool) -> None:
        if on:
            subprocess.run(["tc", "qdisc", "replace", "dev", self.veth, "root", "tbf", "rate", "20mbit",
                            "burst", "32kbit", "latency", "400ms"], check=True)
        else:
            subprocess.run(["tc", "qdisc", "del", "dev", self.veth, "root"], check=False)


def measure(host: Host, action) -> dict:
    """Wall time, bytes to the host, host disk growth and controller CPU of `action()`."""
    disk, sent = host.disk(), host.sent()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    detail = action()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"seconds": round(seconds, 2), "sent": host.sent() - sent, "disk": host.disk() - disk,
            "cpu": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 2),
            "detail": detail}


def deploy(inventory: Path, host_name: str):
    def action() -> str:
        env = as_installed({**os.environ, "PYTHONPATH": str(CHECKOUT)})
        out = subprocess.run([sys.executable, "-m", "provisioner", "deploy", "-H", host_name, "-i", str(inventory),
                              "--json"], capture_output=True, text=True, env=env, cwd=CHECKOUT)
        if out.returncode != 0:
            raise SystemExit(f"deploy failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        [report] = json.loads(out.stdout)["hosts"]
        return next((r["reason"] for r in report["resources"] if r["resource"] == f"release {ROOT}/current"), "")
    return action


def rsync_floor(host: Host, app: Path, step: int):
    """The changed tree over one OpenSSH connection, sharing the previous copy's files (--link-dest)."""
    def action() -> str:
        ssh = " ".join(host.ssh[:-1])
        subprocess.run(["rsync", "-a", "--delete", "-e", ssh, "--rsync-path", "sudo rsync",
                        f"--link-dest=/srv/rsync-floor/{step - 1}", f"{app}/",
                        f"{host.ssh[-1]}:/srv/rsync-floor/{step}/"], check=True, capture_output=True)
        return "rsync"
    return action


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights-mb", type=int, default=200)
    parser.add_argument("--instance", default="bm")
    parser.add_argument("--keep", action="store_true", help="leave the lab host up afterwards")
    args = parser.parse_args()
    with bench_lab(1, args.instance, args.keep) as (hosts, _inventory):
        [lab_host] = hosts
        work = Path(os.environ["PROVISION_KNOWN_HOSTS"]).parent
        host = Host(lab_host, work)
        app = model_app(work / "app", weights_bytes=args.weights_mb * 10**6, scikit_learn=True)
        inventory = write_inventory(hosts, work / "model.yml", group_vars={**SETTINGS, "app_source": str(app)})
        restart_inventory = write_inventory(hosts, work / "restart.yml",
                                            group_vars={**SETTINGS, "app_source": str(app), "uwsgi_processes": 3})
        rows: dict[str, dict] = {}
        figures = {"weights_mb": args.weights_mb, "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "load": os.getloadavg()[0], "rows": rows}
        host.shape(False)
        rows["cold"] = measure(host, deploy(inventory, lab_host.name))
        host.run("apt-get install -q -y rsync >/dev/null && mkdir -p /srv/rsync-floor/0")
        rows["cold rsync floor"] = measure(host, rsync_floor(host, app, 1))
        rows["no-op"] = measure(host, deploy(inventory, lab_host.name))
        step = 1
        for shaped in (False, True):
            host.shape(shaped)
            suffix = " (20 Mbit/s)" if shaped else ""
            for change, edit in changes(app, args.weights_mb):
                edit()
                rows[change + suffix] = measure(host, deploy(inventory, lab_host.name))
                step += 1
                rows[change + " rsync" + suffix] = measure(host, rsync_floor(host, app, step))
            if not shaped:
                rows["restart"] = measure(host, deploy(restart_inventory, lab_host.name))
                rows["restart back"] = measure(host, deploy(inventory, lab_host.name))
        host.shape(False)
        figures["no_mercy"] = int(host.run("journalctl -u uwsgi-model_api* --no-pager | grep -c \"NO MERCY\" || :"))
        figures["venvs"] = host.run(f"ls {ROOT}/venvs").split()
        save("model-release", figures)
        report(figures)


def changes(app: Path, weights_mb: int) -> list:
    version = {"n": 1}

    def code() -> None:
        version["n"] += 1
        model_app(app, weights_bytes=weights_mb * 10**6, scikit_learn=True, version=version["n"])

    def weights() -> None:
        model_app(app, weights_bytes=weights_mb * 10**6, scikit_learn=True, version=version["n"],
                  weights_seed=f"weights {version['n']}".encode())

    def requirements() -> None:
        req = app / "requirements.txt"
        text = req.read_text()
        req.write_text(text.replace(EXTRA_REQUIREMENT, "") if EXTRA_REQUIREMENT in text else text + EXTRA_REQUIREMENT)
    return [("code change", code), ("weights change", weights), ("requirements change", requirements)]


def report(figures: dict) -> None:
    rows = figures["rows"]
    print(f"weights {figures['weights_mb']} MB, started {figures['started']}, load {figures['load']:.1f}; "
          f"NO MERCY lines: {figures['no_mercy']}; venvs: {len(figures['venvs'])}")
    print("| step | wall s | sent to the host MB | host disk +MB | controller CPU s |")
    print("|---|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['seconds']:.1f} | {row['sent'] / 1e6:.2f} | {row['disk'] / 1e6:.1f} | {row['cpu']:.1f} |")
    restart = rows["restart"]["seconds"]
    print(f"floor 1 (config-only restart): {restart:.1f} s; floor 2 = rsync + restart")
    for name in [n for n in rows if n.endswith("change") or n.endswith("(20 Mbit/s)")]:
        if " rsync" in name:
            continue
        floor_name = name.replace(" change", " change rsync")
        if floor_name in rows:
            floor = rows[floor_name]["seconds"] + restart
            print(f"{name}: {rows[name]['seconds'] / floor:.2f}x floor 2 ({floor:.1f} s), "
                  f"{rows[name]['seconds'] / restart:.2f}x floor 1")


if __name__ == "__main__":
    main()
