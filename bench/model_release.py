"""Benchmark: releases of a real model endpoint on one lab host, beside their floors, in one run.

    sudo python bench/model_release.py [--weights-mb 200] [--instance bm] [--keep]

The app (provisioner/labs/model_app.py): numpy + scikit-learn + scipy wheels from PyPI and a weights
file of --weights-mb random bytes mapped at start-up. Two fresh Debian 12 lab hosts: the app's, and one
for the cold floor. In order:

    cold          the first deploy (packages, the venv from the wheels, the weights)
    cold floor    on the second host, over one OpenSSH connection (multiplexed): apt-get install of the
                  packages the cold deploy installed, rsync of the app's tree and of its wheels, a venv
                  pip-installed from them offline. No configuration, no service started.
    no-op         the same deploy again
    code change   one line of Python
    weights       the weights file rewritten
    requirements  one small package added (a new venv)
    restart       a uWSGI setting changed: the zero-downtime restart alone (floor 1), and back

then the code, weights and requirements changes again with the host's link shaped like a laptop's
uplink: 20 Mbit/s by `tc ... tbf` on the controller's end of the host's link (this kernel has no
netem: latency is NOT shaped). For every change, floor 2: `rsync -a --link-dest` of the app's tree
over one OpenSSH connection to a directory of its own on the host, plus floor 1. Last, the example
app (examples/model_api: Flask, a 1 KB model) on the same host and its config-only restart: the
baseline of the first goal.

Per step: wall time of the `provision deploy` process, bytes sent to the host (the transmit counter of
the controller's end of its link: SSH, scripts and files), the growth of the app's directory on the
host (`du` counts hard links once), and the controller's CPU seconds (user + sys of the process).
bench/model_report.py prints the table and the goals (ratios within this run) and draws the plot.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

from common import CHECKOUT, as_installed, bench_lab, save
from model_report import plot, report

from provisioner.labs.container.inventory import write_inventory
from provisioner.labs.container.network import veth_name
from provisioner.labs.model_app import model_app

ROOT = "/srv/model_api"
FLOORS = "/srv/rsync-floor /srv/cold-floor"
# Every release of the run stays on the host (3 would prune the first venv before the requirements
# change back could reuse it, and count the prune against the disk figures).
SETTINGS = {"app_module": "model_app.wsgi", "app_callable": "app", "keep_releases": 10}
EXAMPLE = {"app_source": str(CHECKOUT / "examples/model_api")}  # the example app: default module
EXTRA_REQUIREMENT = "six==1.17.0\n"
WHEELS = Path.home() / ".cache/provision/wheels"  # the controller's wheelhouse per requirements key


class Host:
    def __init__(self, host, work: Path):
        self.host = host
        self.veth = veth_name(host.instance, host.address)
        self.target = f"deploy@{host.address}"
        self.options = ["-i", host.key_file, "-o", f"UserKnownHostsFile={host.known_hosts}",
                        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                        "-o", f"ControlPath={work}/ssh-{host.name}", "-o", "ControlMaster=auto",
                        "-o", "ControlPersist=yes"]

    def run(self, command: str) -> str:
        return subprocess.run(["ssh", *self.options, self.target, f"sudo sh -c {shlex.quote(command)}"],
                              capture_output=True, text=True, check=True).stdout.strip()

    def rsync(self, source: str, dest: str, *options: str) -> None:
        subprocess.run(["rsync", "-a", "--delete", "-e", shlex.join(["ssh", *self.options]),
                        "--rsync-path", "sudo rsync", *options, source, f"{self.target}:{dest}"],
                       check=True, capture_output=True)

    def close(self) -> None:
        """Ends the multiplexed connection, so that the next step opens (and pays for) its own."""
        subprocess.run(["ssh", *self.options, "-O", "exit", self.target], capture_output=True)

    def sent(self) -> int:
        return int(Path(f"/sys/class/net/{self.veth}/statistics/tx_bytes").read_text())

    def disk(self) -> int:
        return int(self.run(f"du -sxbc {ROOT} {FLOORS} 2>/dev/null | tail -1 | cut -f1"))

    def packages(self) -> set[str]:
        return set(self.run("dpkg-query -W -f '${Package}\\n'").split())

    def shape(self, on: bool) -> None:
        if on:
            subprocess.run(["tc", "qdisc", "replace", "dev", self.veth, "root", "tbf", "rate", "20mbit",
                            "burst", "32kbit", "latency", "400ms"], check=True)
        else:
            subprocess.run(["tc", "qdisc", "del", "dev", self.veth, "root"], check=False, capture_output=True)


def measure(host: Host, action) -> dict:
    """Wall time, bytes to the host, host disk growth and controller CPU of `action()`."""
    disk, sent = host.disk(), host.sent()
    host.close()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    detail = action()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    host.close()
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
        shared = [f"--link-dest=/srv/rsync-floor/{step - 1}"] if step > 1 else []
        host.rsync(f"{app}/", f"/srv/rsync-floor/{step}/", *shared)
        return "rsync"
    return action


def cold_floor(host: Host, app: Path, packages: set[str], wheels: Path):
    """What the cold deploy must do at the least, by hand over one multiplexed OpenSSH connection: the
    same packages from apt, the app's tree and its wheels by rsync, the venv from those wheels."""
    def action() -> str:
        host.run("apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -q -y "
                 f"{' '.join(sorted(packages))} >/dev/null && mkdir -p /srv/cold-floor")
        host.rsync(f"{app}/", "/srv/cold-floor/app/")
        host.rsync(f"{wheels}/", "/srv/cold-floor/wheels/")
        host.run("python3 -m venv /srv/cold-floor/venv && /srv/cold-floor/venv/bin/pip install -q --no-index "
                 "--find-links /srv/cold-floor/wheels -r /srv/cold-floor/app/requirements.txt")
        return f"{len(packages)} packages"
    return action


def tree(app: Path) -> dict[str, tuple[int, str]]:
    """Each file of the app: its size and hash (what a change changed)."""
    return {str(p.relative_to(app)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(app.rglob("*")) if p.is_file()}


def changed_bytes(before: dict, after: dict) -> int:
    return sum(size for name, (size, digest) in after.items() if before.get(name, (None, None))[1] != digest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights-mb", type=int, default=200)
    parser.add_argument("--instance", default="bm")
    parser.add_argument("--keep", action="store_true", help="leave the lab hosts up afterwards")
    args = parser.parse_args()
    with bench_lab(2, args.instance, args.keep) as (hosts, _inventory):
        lab_host, floor_lab_host = hosts
        work = Path(os.environ["PROVISION_KNOWN_HOSTS"]).parent
        host, floor_host = Host(lab_host, work), Host(floor_lab_host, work)
        app = model_app(work / "app", weights_bytes=args.weights_mb * 10**6, scikit_learn=True)

        def inventory(name: str, **settings) -> Path:
            return write_inventory([lab_host], work / f"{name}.yml", group_vars=settings)
        model = inventory("model", **SETTINGS, app_source=str(app))
        rows: dict[str, dict] = {}
        figures = {"weights_mb": args.weights_mb, "load": [round(x, 1) for x in os.getloadavg()], "rows": rows}
        host.shape(False)
        fresh = floor_host.packages()
        rows["cold"] = measure(host, deploy(model, lab_host.name))
        installed = host.packages() - fresh | {"rsync"}  # rsync: the floor's transfer, not provision's
        [key] = host.run(f"ls {ROOT}/venvs").split()
        rows["cold floor"] = measure(floor_host, cold_floor(floor_host, app, installed, WHEELS / key))
        host.run("apt-get install -q -y rsync >/dev/null && mkdir -p /srv/rsync-floor")  # rsync makes one level
        rsync_floor(host, app, 1)()  # the tree as deployed: what the first change's rsync links to
        rows["no-op"] = measure(host, deploy(model, lab_host.name))
        step, figures["changed"] = 1, {}
        edits = changes(app, args.weights_mb)
        for shaped in (False, True):
            host.shape(shaped)
            suffix = " (20 Mbit/s)" if shaped else ""
            for change, edit in edits:
                before = tree(app)
                edit()
                figures["changed"][change + suffix] = changed_bytes(before, tree(app))
                rows[change + suffix] = measure(host, deploy(model, lab_host.name))
                step += 1
                rows[change + " rsync" + suffix] = measure(host, rsync_floor(host, app, step))
            if not shaped:
                restarted = inventory("restart", **SETTINGS, app_source=str(app), uwsgi_processes=3)
                rows["restart"] = measure(host, deploy(restarted, lab_host.name))
                rows["restart back"] = measure(host, deploy(model, lab_host.name))
        host.shape(False)
        figures["no_mercy"] = int(host.run("journalctl -u 'uwsgi-model_api*' --no-pager | grep -c 'NO MERCY' || :"))
        figures["venvs"] = host.run(f"ls {ROOT}/venvs").split()
        rows["example app deploy"] = measure(host, deploy(inventory("example", **EXAMPLE), lab_host.name))
        example_restart = inventory("example-restart", **EXAMPLE, uwsgi_processes=3)
        rows["example restart"] = measure(host, deploy(example_restart, lab_host.name))
        rows["example restart back"] = measure(host, deploy(work / "example.yml", lab_host.name))
        figures["load"] += [round(x, 1) for x in os.getloadavg()]
        save("model-release", figures)
        report(figures)
        plot(figures)


def changes(app: Path, weights_mb: int) -> list:
    """Each change and the edit that makes it; each edit makes a release the host has never seen (its
    count goes on from one pass to the next) and touches nothing else (the requirements stay as they are)."""
    version = {"n": 1}

    def rewrite(**what) -> None:
        requirements = (app / "requirements.txt").read_text()
        model_app(app, weights_bytes=weights_mb * 10**6, scikit_learn=True, version=version["n"], **what)
        (app / "requirements.txt").write_text(requirements)

    def code() -> None:
        version["n"] += 1
        rewrite()

    def weights() -> None:
        rewrite(weights_seed=f"weights {version['n']}".encode())

    def requirements() -> None:
        req = app / "requirements.txt"
        text = req.read_text()
        req.write_text(text.replace(EXTRA_REQUIREMENT, "") if EXTRA_REQUIREMENT in text else text + EXTRA_REQUIREMENT)
    return [("code change", code), ("weights change", weights), ("requirements change", requirements)]


if __name__ == "__main__":
    main()
