"""A site of many hosts (issue 10, sections 1-2), on one lab of 4 real hosts shared by the tests here:
a balancer (group lb) in front of 3 app hosts (group app), deployed by the real CLI.

- the balancer proxies to every app host; only it reaches their app port (nftables): the controller's
  own lab address, which is not a balancer, cannot connect, and the balancer's network can;
- a no-op re-deploy of the 4 hosts is 1 remote script per host and changes nothing;
- removing an app host from the inventory updates the balancer (nginx -t, reload), adding it back too;
- failover: under GET and POST load through the balancer, uWSGI stopped on one app host, then the
  host powered off: no request fails (POSTs are retried: upstream_retry_non_idempotent); powered on
  again, the host rejoins by itself;
- rolling releases (section 3): `deploy --serial 1` of a new release across the 3 app hosts under load
  fails no request and meets no socket error (each app host drains itself: no balancer reload); a
  broken release stops the roll after its first batch while the site answers, its host left out of
  the traffic until a deploy of its own puts it back; `rollback --serial 1` (issue 23) takes every app
  host back to its previous release under load, one at a time, with no failed request.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from test_deploy import http, provision

from provisioner.labs import common
from provisioner.labs import container as lab
from provisioner.labs.container import hosts as lab_hosts_mod
from provisioner.labs.container import network
from provisioner.labs.example_app import example_app
from provisioner.labs.load import PREDICT_BODY, post_script, run_slice

pytestmark = pytest.mark.lab

APP_HOSTS = 3


class Site:
    """The 4 lab hosts, the inventory that makes them a balanced site, and ways to look at them."""

    def __init__(self, instance: str, balancer, apps: list, inventory: Path):
        self.instance, self.balancer, self.apps, self.inventory = instance, balancer, apps, inventory

    def write_inventory(self, apps: list | None = None, app_source: Path | None = None) -> None:
        apps = self.apps if apps is None else apps
        entry = lambda h: {"ansible_host": h.address}   # noqa: E731
        everyone = [self.balancer, *self.apps]
        data = {"all": {
            "vars": {"ansible_user": "deploy", "ansible_ssh_private_key_file": str(self.balancer.key_file),
                     "upstream_retry_non_idempotent": True,
                     **({"app_source": str(app_source)} if app_source else {})},
            "hosts": {h.name: entry(h) for h in everyone},
            "children": {"lb": {"hosts": {self.balancer.name: None}},
                         "app": {"hosts": {h.name: None for h in apps}}}}}
        self.inventory.write_text(yaml.safe_dump(data))

    def deploy(self, *args) -> tuple[int, dict]:
        result = provision("deploy", "-i", self.inventory, "--json", *args)
        return result.returncode, {h["host"]: h for h in json.loads(result.stdout)["hosts"]}

    def run(self, host, command: str) -> str:
        return provision("run", "-H", host.name, "-i", self.inventory, "--", command).stdout

    def record(self, host) -> dict:
        return lab.state.load_state(self.instance)["hosts"][host.name]

    def access_log_lines(self, host) -> int:
        """Requests the host's own nginx answered (read from its root on this machine: no SSH)."""
        log = Path(self.record(host)["merged"]) / "var/log/nginx/model_api.access.log"
        return len(log.read_text().splitlines()) if log.exists() else 0

    def power_off(self, host) -> None:
        """Stop the container: SIGTERM to its launcher is a clean poweroff (its disk is kept)."""
        rec = self.record(host)
        common.kill_pid(rec["launcher_pid"], signal.SIGTERM)
        assert common.wait_pid_gone(rec["launcher_pid"], 60), f"{host.name} did not power off"

    def power_on(self, host) -> None:
        with lab.state.global_lock():
            st = lab.state.load_state(self.instance)
            rec = st["hosts"][host.name]
            lab_hosts_mod.launch(rec)
            lab.state.save_state(self.instance, st)
        lab_hosts_mod.wait_ready(rec)


@pytest.fixture(scope="module")
def site(lab_base, tmp_path_factory):
    """1 balancer + 3 app hosts, deployed once for the module; removed at the end."""
    names = [f"{lab_base}lb1", *(f"{lab_base}app{k}" for k in range(1, APP_HOSTS + 1))]
    tmp = tmp_path_factory.mktemp("topology")
    old_known_hosts = os.environ.get("PROVISION_KNOWN_HOSTS")
    os.environ["PROVISION_KNOWN_HOSTS"] = str(tmp / "known_hosts")
    lab.remove_hosts(names, lab_base)
    try:
        made = lab.add_hosts(names, lab_base)
        site = Site(lab_base, made[0], made[1:], tmp / "site.yml")
        site.write_inventory()
        code, reports = site.deploy("-H", "all")
        assert code == 0, json.dumps(reports, indent=1)[-4000:]
        yield site
    finally:
        lab.remove_hosts(names, lab_base)
        if old_known_hosts is None:
            os.environ.pop("PROVISION_KNOWN_HOSTS", None)
        else:
            os.environ["PROVISION_KNOWN_HOSTS"] = old_known_hosts


def can_connect(address: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def test_the_balancer_spreads_and_only_it_reaches_the_app_hosts(site):
    before = {h.name: site.access_log_lines(h) for h in site.apps}
    for _ in range(30):
        status, _, body = http(site.balancer.address, "/predict", PREDICT_BODY.encode(),
                               {"Content-Type": "application/json"})
        assert status == 200, body
    served = {h.name: site.access_log_lines(h) - before[h.name] for h in site.apps}
    assert all(count > 0 for count in served.values()), served

    # The controller's end of the lab bridge is a lab address that is not a balancer.
    app = site.apps[0]
    assert can_connect(app.address, 22), "the app host is not reachable at all: not the firewall's doing"
    assert not can_connect(app.address, 80), "a non-balancer reached an app host's port 80"
    answer = from_balancer(site, app)
    assert answer.stdout == "200", answer.stderr
    rules = site.run(app, "nft list table inet provision_model_api")
    assert f"ip saddr {site.balancer.address} accept" in rules, rules


def test_a_no_op_redeploy_is_one_script_per_host_and_changes_nothing(site):
    code, reports = site.deploy("-H", "all")
    assert code == 0
    for name, report in reports.items():
        assert (report["status"], report["changed"]) == ("ok", 0), (name, report)
        assert report["remote"]["channels"] == 1, (name, report["remote"])
        assert report["remote"].get("scripts", 1) == 1, (name, report["remote"])


def test_an_app_host_left_out_of_the_inventory_leaves_every_balancer(site):
    upstream = "/etc/nginx/conf.d/provision-model_api-upstream.conf"
    gone = site.apps[-1]
    site.write_inventory(site.apps[:-1])
    try:
        code, reports = site.deploy("-H", "lb")
        assert code == 0 and reports[site.balancer.name]["status"] == "changed", reports
        assert [h["name"] for h in reports[site.balancer.name]["handlers"]] == ["reload nginx"]
        assert f"# {gone.name}" not in site.run(site.balancer, f"cat {upstream}")
    finally:
        site.write_inventory()
    code, reports = site.deploy("-H", "lb")
    assert code == 0 and f"# {gone.name}" in site.run(site.balancer, f"cat {upstream}")


def test_failover_under_load_then_the_host_rejoins(site):
    """GET and POST load through the balancer; on one app host uWSGI stops, then the host powers off."""
    victim, url = site.apps[-1], f"http://{site.balancer.address}"
    seconds = 24

    def events():
        time.sleep(5)
        site.run(victim, "systemctl stop uwsgi-model_api")
        time.sleep(7)
        site.power_off(victim)

    with ThreadPoolExecutor(max_workers=3) as pool:
        gets = pool.submit(run_slice, f"{url}/healthz", 16, seconds)
        posts = pool.submit(run_slice, f"{url}/predict", 16, seconds, post_script())
        chaos = pool.submit(events)
        chaos.result()
        gets, posts = gets.result(), posts.result()
    print(f"failover: GET {gets.answered} answered, {gets.failed} failed; "
          f"POST {posts.answered} answered, {posts.failed} failed")
    assert gets.answered > 100 and posts.answered > 100, (gets, posts)
    assert (gets.failed, posts.failed) == (0, 0), (gets, posts)

    # doctor on the balancer names the app host that is down, and looks for no uWSGI of its own
    doctor = provision("doctor", "-H", site.balancer.name, "-i", site.inventory, check=False)
    assert doctor.returncode == 1 and f"app host: FAIL {victim.name} (" in doctor.stdout, doctor.stdout
    assert "uwsgi-model_api is inactive" not in doctor.stdout, doctor.stdout
    assert all(f"app host: {h.name} (" in doctor.stdout for h in site.apps[:-1]), doctor.stdout

    site.power_on(victim)
    rejoins(site, victim)
    doctor = provision("doctor", "-H", site.balancer.name, "-i", site.inventory)
    assert doctor.returncode == 0 and f"app host: {victim.name} (" in doctor.stdout, doctor.stdout


def rejoins(site, host, seconds: int = 60) -> None:
    """The balancer sends the host requests again (6 at once, rounds until it does) within `seconds`."""
    before, deadline = site.access_log_lines(host), time.monotonic() + seconds
    while site.access_log_lines(host) == before:
        assert time.monotonic() < deadline, f"{host.name} did not rejoin within {seconds} s"
        threads = [threading.Thread(target=http, args=(site.balancer.address, "/healthz")) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(0.5)


def release_of(site, host) -> str:
    """The release the app host serves, asked at its own nginx on its loopback (a host left out of the
    traffic refuses the balancers)."""
    answer = subprocess.run(["ip", "netns", "exec", network.netns_name(site.instance, host.name), "curl",
                             "-sS", "--max-time", "5", "http://localhost/healthz"],
                            capture_output=True, text=True, check=True).stdout
    return json.loads(answer)["release"]


def from_balancer(site, host) -> subprocess.CompletedProcess:
    """GET /healthz at the app host's own nginx from the balancer's network namespace."""
    return subprocess.run(["ip", "netns", "exec", network.netns_name(site.instance, site.balancer.name), "curl",
                           "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                           f"http://{host.address}/healthz"],
                          capture_output=True, text=True)


def app_copy(tmp: Path, broken: bool = False) -> Path:
    """The example app with one change: a new release, or one whose module fails to import."""
    if broken:
        return example_app(tmp / "broken_app", wsgi_head="raise RuntimeError('a broken release, on purpose')\n")
    return example_app(tmp / "new_app", wsgi_head="# a new release\n")


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


def test_a_rolling_release_under_load_fails_no_request(site, tmp_path):
    before = {h.name: release_of(site, h) for h in site.apps}
    site.write_inventory(app_source=app_copy(tmp_path))
    code, report = roll(site, "--check")
    assert report["roll"]["batches"] == [[h.name] for h in site.apps]
    load, started = Load(site.balancer.address), time.monotonic()
    try:
        code, report = roll(site)
    finally:
        took = time.monotonic() - started
        answered, failed = load.finish()
    # Socket errors too: no balancer reloads (a reload closes idle client connections, and wrk does not
    # retry a request it sent on one: docs/topology.md).
    print(f"rolling release: {answered} requests answered, {failed} non-2xx, {load.socket_errors} socket errors; "
          f"the roll took {took:.0f} s")
    assert code == 0, json.dumps(report, indent=1)[-3000:]
    assert report["roll"]["released"] == [h.name for h in site.apps]
    after = {h.name: release_of(site, h) for h in site.apps}
    assert len(set(after.values())) == 1 and not set(after.values()) & set(before.values()), (before, after)
    assert answered > 100 and (failed, load.socket_errors) == (0, 0), (answered, failed, load.socket_errors)


def test_a_broken_release_stops_the_roll_after_the_first_batch(site, tmp_path):
    before = {h.name: release_of(site, h) for h in site.apps}
    site.write_inventory(app_source=app_copy(tmp_path, broken=True))
    load = Load(site.balancer.address)
    try:
        code, report = roll(site)
    finally:
        answered, failed = load.finish()
        site.write_inventory()
    print(f"broken release: {answered} requests answered, {failed} non-2xx, {load.socket_errors} socket errors")
    first, rest = site.apps[0].name, [h.name for h in site.apps[1:]]
    assert code == 1, json.dumps(report, indent=1)[-3000:]
    assert report["roll"] == {"batches": [[h.name] for h in site.apps], "released": [], "rolled_back": [first],
                              "untouched": rest, "stopped_at_batch": 1}
    statuses = {h["host"]: h["status"] for h in report["hosts"]}
    assert statuses == {first: "failed", **{name: "pending" for name in rest}}
    assert {h.name: release_of(site, h) for h in site.apps} == before
    assert answered > 100 and (failed, load.socket_errors) == (0, 0), (answered, failed, load.socket_errors)
    # The failed host is left out of the traffic until a deploy of its own puts it back, which --check
    # shows first: its drain table resets the balancer's connections (curl: 7, could not connect).
    assert from_balancer(site, site.apps[0]).returncode == 7
    drain = "nftables table inet provision_model_api_drain"
    code, reports = site.deploy("-H", first, "--check")
    pending = {r["resource"]: r["status"] for r in reports[first]["resources"]}
    assert code == 4 and pending[drain] == "pending", json.dumps(reports[first], indent=1)[-3000:]
    code, reports = site.deploy("-H", first)
    done = {r["resource"]: r["status"] for r in reports[first]["resources"]}
    assert code == 0 and done[drain] == "changed", json.dumps(reports[first], indent=1)[-3000:]
    assert from_balancer(site, site.apps[0]).stdout == "200"
    rejoins(site, site.apps[0])


def test_a_serial_rollback_under_load_fails_no_request(site):
    """After the rolls above every app host keeps two releases or more: each goes back to the one it
    served before, one host at a time, out of the traffic while it switches."""
    kept = json.loads(provision("releases", "-H", "app", "-i", site.inventory, "--json").stdout)["hosts"]
    previous = {h["host"]: h["apps"][0]["releases"][1]["id"] for h in kept}
    load, started = Load(site.balancer.address), time.monotonic()
    try:
        result = provision("rollback", "-H", "app", "-i", site.inventory, "--json", "--serial", "1", check=False)
    finally:
        took = time.monotonic() - started
        answered, failed = load.finish()
    print(f"serial rollback: {answered} requests answered, {failed} non-2xx, {load.socket_errors} socket errors; "
          f"it took {took:.0f} s")
    report = json.loads(result.stdout)
    assert result.returncode == 0, json.dumps(report, indent=1)[-3000:]
    assert report["roll"]["batches"] == [[h.name] for h in site.apps] and report["roll"]["released"] == [
        h.name for h in site.apps]
    assert all(h["remote"].get("uploads", 0) == 0 for h in report["hosts"]), report["hosts"]
    assert {h.name: release_of(site, h) for h in site.apps} == previous
    assert answered > 100 and (failed, load.socket_errors) == (0, 0), (answered, failed, load.socket_errors)
