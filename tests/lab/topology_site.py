"""The balanced site of tests/lab/test_topology.py: its lab hosts, the inventory that makes them one
site, and ways to look at them and load them (no tests here)."""

from __future__ import annotations

import ipaddress
import json
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import yaml
from test_deploy import http, provision

from provisioner.labs import common
from provisioner.labs import container as lab
from provisioner.labs.container import hosts as lab_hosts_mod
from provisioner.labs.container import network
from provisioner.labs.example_app import example_app
from provisioner.labs.load import post_script, run_slice


class Site:
    """Balancers and app hosts, the inventory that makes them a balanced site with one floating
    address, and ways to look at them."""

    def __init__(self, instance: str, balancers: list, apps: list, inventory: Path):
        self.instance, self.balancers, self.apps, self.inventory = instance, balancers, apps, inventory
        self.balancer = balancers[0]
        # A lab address no host has (hosts get .11-.210 by name, else .250 down): the site's address.
        self.floating = str(ipaddress.ip_address(self.balancer.address) - int(self.balancer.address.split(".")[3]) + 200)

    def write_inventory(self, apps: list | None = None, app_source: Path | None = None,
                        host_vars: dict | None = None, site_vars: dict | None = None,
                        groups: dict[str, list] | None = None) -> None:
        """The site's inventory: `apps` the app hosts (all by default), `site_vars` more vars for all,
        `groups` more groups (name -> its hosts)."""
        apps = self.apps if apps is None else apps
        everyone = [*self.balancers, *self.apps]
        data = {"all": {
            "vars": {"ansible_user": "deploy", "ansible_ssh_private_key_file": str(self.balancer.key_file),
                     "floating_address": f"{self.floating}/24",
                     **({"app_source": str(app_source)} if app_source else {}), **(site_vars or {})},
            "hosts": {h.name: {"ansible_host": h.address, **(host_vars or {}).get(h.name, {})} for h in everyone},
            "children": {"lb": {"hosts": {h.name: None for h in self.balancers}},
                         "app": {"hosts": {h.name: None for h in apps}},
                         **{name: {"hosts": {h.name: None for h in hosts}} for name, hosts in (groups or {}).items()}}}}
        self.inventory.write_text(yaml.safe_dump(data))

    def deploy(self, *args) -> tuple[int, dict]:
        result = provision("deploy", "-i", self.inventory, "--json", *args)
        return result.returncode, {h["host"]: h for h in json.loads(result.stdout)["hosts"]}

    def run(self, host, command: str) -> str:
        return provision("run", "-H", host.name, "-i", self.inventory, "--", command).stdout

    def record(self, host) -> dict:
        return lab.state.load_state(self.instance)["hosts"][host.name]

    def log(self, host) -> Path:
        """The host's site access log, read from its root on this machine (no SSH)."""
        return Path(self.record(host)["merged"]) / "var/log/nginx/model_api.access.log"

    def access_log_lines(self, host) -> int:
        """Requests the host's own nginx answered."""
        log = self.log(host)
        return len(log.read_text().splitlines()) if log.exists() else 0

    def failures_since(self, lines: dict[str, int]) -> list[tuple[float, str, str]]:
        """(time, balancer, status) of each answer that was not a 2xx (a client that left, 499, aside)
        in the balancers' access logs after `lines` (their line counts before)."""
        found = []
        for b in self.balancers:
            for line in self.log(b).read_text().splitlines()[lines[b.name]:]:
                fields = line.split()
                if not fields[8].startswith("2") and fields[8] != "499":
                    when = datetime.strptime(fields[3][1:] + " " + fields[4][:-1], "%d/%b/%Y:%H:%M:%S %z")
                    found.append((when.timestamp(), b.name, fields[8]))
        return found

    def holder(self):
        """The balancer that has the floating address on its interface (None: no one)."""
        for b in self.balancers:
            addresses = in_namespace(self, b, "ip", "-o", "-4", "addr", "show").stdout
            if f" {self.floating}/" in addresses:
                return b
        return None

    def power_off(self, host) -> None:
        """Stop the container: SIGTERM to its launcher is a clean poweroff (its disk is kept)."""
        rec = self.record(host)
        common.kill_pid(rec["launcher_pid"], signal.SIGTERM)
        assert common.wait_pid_gone(rec["launcher_pid"], 60), f"{host.name} did not power off"

    def power_on(self, host) -> None:
        """Start the container again (launched once more if its launcher dies while booting: hosts.boot)."""
        with lab.state.global_lock():
            st = lab.state.load_state(self.instance)
            rec = st["hosts"][host.name]
            lab_hosts_mod.launch(rec)
            lab.state.save_state(self.instance, st)
        lab_hosts_mod.boot(rec)
        with lab.state.global_lock():  # a second launch has a launcher of its own
            st = lab.state.load_state(self.instance)
            st["hosts"][host.name] = rec
            lab.state.save_state(self.instance, st)


def in_namespace(site, host, *argv: str) -> subprocess.CompletedProcess:
    """A command in the lab host's network namespace (from this machine: no SSH)."""
    return subprocess.run(["ip", "netns", "exec", network.netns_name(site.instance, host.name), *argv],
                          capture_output=True, text=True)


def can_connect(address: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def answers(address: str) -> bool:
    try:
        return http(address, "/healthz")[0] == 200
    except OSError:
        return False


def moved_from(site, old, seconds: float = 30):
    """The new holder, once it holds the address and the site answers there."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        new = site.holder()
        if new is not None and new is not old and answers(site.floating):
            return new
        time.sleep(0.05)
    raise AssertionError(f"the floating address did not move from {old.name} within {seconds} s")


class Prober:
    """GET /healthz at an address every 50 ms (a new connection each, 0.5 s to answer) until stopped:
    how long the address did not answer."""

    def __init__(self, address: str):
        self.address, self.results, self.stop = address, [], threading.Event()
        self.thread = threading.Thread(target=self._loop)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            started, ok = time.monotonic(), False
            try:
                with socket.create_connection((self.address, 80), timeout=0.5) as conn:
                    conn.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
                    ok = conn.recv(12).startswith(b"HTTP/1.1 200")
            except OSError:
                pass
            self.results.append((started, ok))
            time.sleep(0.05)

    def longest_outage(self) -> float:
        """Seconds from the first probe that failed to the next that was answered, the longest such span."""
        self.stop.set()
        self.thread.join()
        longest, failing_since = 0.0, None
        for at, ok in self.results:
            if not ok and failing_since is None:
                failing_since = at
            elif ok and failing_since is not None:
                longest, failing_since = max(longest, at - failing_since), None
        if failing_since is not None:
            longest = max(longest, self.results[-1][0] - failing_since)
        return longest


def rejoins(site, host, seconds: int = 60, through: str | None = None) -> float:
    """Seconds until a balancer sends the host requests again (6 at once, rounds until it does),
    at most `seconds`."""
    through = through or site.balancer.address
    started = time.monotonic()
    before, deadline = site.access_log_lines(host), started + seconds
    while site.access_log_lines(host) == before:
        assert time.monotonic() < deadline, f"{host.name} did not rejoin within {seconds} s"
        threads = [threading.Thread(target=answers, args=(through,)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(0.2)
    return time.monotonic() - started


def release_of(site, host) -> str:
    """The release the app host serves, asked at its own nginx on its loopback (a host left out of the
    traffic refuses the balancers)."""
    answer = in_namespace(site, host, "curl", "-sS", "--max-time", "5", "http://localhost/healthz")
    answer.check_returncode()
    return json.loads(answer.stdout)["release"]


def from_balancer(site, host) -> subprocess.CompletedProcess:
    """GET /healthz at the app host's own nginx from the balancer's network namespace."""
    return in_namespace(site, site.balancer, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                        "--max-time", "5", f"http://{host.address}/healthz")


def app_copy(tmp: Path, broken: bool = False) -> Path:
    """The example app with one change: a new release, or one whose module fails to import."""
    if broken:
        return example_app(tmp / "broken_app", wsgi_head="raise RuntimeError('a broken release, on purpose')\n")
    return example_app(tmp / "new_app", wsgi_head="# a new release\n")


def under_load(address: str, seconds: int, connections: int, events) -> tuple:
    """GET /healthz and POST /predict (`connections` each) at `address` for `seconds` while `events()`
    runs; returns (gets, posts, what events returned)."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        gets = pool.submit(run_slice, f"http://{address}/healthz", connections, seconds, None, 30)
        posts = pool.submit(run_slice, f"http://{address}/predict", connections, seconds, post_script(), 30)
        happened = pool.submit(events)
        return gets.result(), posts.result(), happened.result()


class Load:
    """GET and POST through the balancer in 4-second wrk slices until stopped."""

    def __init__(self, address: str):
        self.url, self.slices, self.stop = f"http://{address}", [], threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=2)
        self.runs = [self.pool.submit(self._loop, f"{self.url}/healthz", None),
                     self.pool.submit(self._loop, f"{self.url}/predict", post_script())]

    def _loop(self, url: str, script) -> None:
        while not self.stop.is_set():
            # A client timeout of 30 s, as tests/lab/test_zero_downtime.py: the shared CI machine can stall
            # a request for seconds, which is no failure of the site.
            self.slices.append(run_slice(url, 8, 4, script, timeout=30))

    def finish(self) -> tuple[int, int]:
        self.stop.set()
        for run in self.runs:
            run.result()
        self.pool.shutdown()
        failing = [s for s in self.slices if s.failed]
        if failing:
            print("slices with failures:", failing)
        return sum(s.answered for s in self.slices), sum(s.non_2xx for s in self.slices)

    @property
    def socket_errors(self) -> int:
        return sum(s.errors for s in self.slices)


def roll(site, *args) -> tuple[int, dict]:
    result = provision("deploy", "-H", "app", "-i", site.inventory, "--json", "--serial", "1", *args, check=False)
    return result.returncode, json.loads(result.stdout)
