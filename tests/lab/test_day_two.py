"""Day two on one host (issue 23): releases, history, rollback and top, through the CLI.

The host is shared by the module's tests, which run in order: three deploys from a git checkout
(a commit, a second commit, then uncommitted edits), a config-only restart and a rollback under wrk
load, a healthy-but-wrong release rolled back, a rollback to a release the host does not keep, and
`top` counting what wrk sent.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from provisioner.labs import container as lab
from provisioner.labs.container import network, write_inventory
from provisioner.labs.example_app import example_app
from provisioner.labs.load import run_slice
from test_zero_downtime import Load, healthz

pytestmark = pytest.mark.lab

GIT = ("git", "-c", "user.name=Tester", "-c", "user.email=tester@example.invalid")
WRONG_MODEL = "from model_api.model import Model as _Model\n_Model.predict = lambda self, x: {'wrong': 1.0}\n"


@dataclass
class Host:
    host: lab.LabHost
    tmp: Path
    env: dict
    checkout: Path
    commits: list[str] = field(default_factory=list)
    releases: dict[str, str] = field(default_factory=dict)  # what was deployed -> its release id

    def inventory(self, name: str, app: Path | None = None, **group_vars) -> Path:
        return write_inventory([self.host], self.tmp / f"{name}.yml",
                               group_vars={"app_source": str(app or self.checkout), **group_vars})

    def provision(self, command: str, *args: str, inventory: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "provisioner", command, "-H", self.host.name,
                               "-i", str(inventory or self.inventory("checkout")), *args],
                              capture_output=True, text=True, timeout=600, env=self.env)

    def deploy(self, name: str, inventory: Path | None = None) -> None:
        result = self.provision("deploy", inventory=inventory)
        assert result.returncode == 0, result.stdout + result.stderr
        self.releases[name] = self.release()

    def json(self, *args: str) -> dict:
        result = self.provision(*args, "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)

    def release(self) -> str:
        status, body = healthz(self.host.address)
        assert status == 200, body
        return json.loads(body)["release"]

    def predicted(self) -> str:
        request = urllib.request.Request(f"http://{self.host.address}/predict", method="POST",
                                         data=b'{"features": [5.1, 3.5, 1.4, 0.2]}',
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())["class"]

    def commit(self, message: str) -> None:
        edit(self.checkout, f"\n# {message}\n")
        subprocess.run([*GIT, "-C", str(self.checkout), "commit", "-qam", message], check=True)
        self.commits.append(head(self.checkout))


def edit(app: Path, tail: str) -> None:
    wsgi = app / "model_api" / "wsgi.py"
    wsgi.write_text(wsgi.read_text() + tail)


def head(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def site(lab_base, tmp_path_factory) -> Host:
    """One bookworm host, and the example app as a git checkout of two commits; removed after the module."""
    tmp = tmp_path_factory.mktemp("day-two")
    checkout = example_app(tmp / "checkout")
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    subprocess.run([*GIT, "-C", str(checkout), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(checkout), "commit", "-qm", "first"], check=True)
    name = f"{lab_base}day2"
    lab.remove_host(name, lab_base)
    [host] = lab.add_hosts([name], lab_base, "bookworm")
    s = Host(host, tmp, dict(os.environ, PROVISION_KNOWN_HOSTS=str(tmp / "known_hosts")), checkout, [head(checkout)])
    yield s
    lab.remove_host(name, lab_base)


def test_releases_and_history_after_deploys_from_a_git_checkout(site):
    site.deploy("first")
    site.commit("second")
    site.deploy("second")
    edit(site.checkout, "\n# not committed\n")
    site.deploy("dirty")
    assert site.provision("deploy").returncode == 0  # changes nothing: no history entry

    [app] = site.json("releases")["hosts"][0]["apps"]
    kept = {r["id"]: r for r in app["releases"]}
    assert [r["id"] for r in app["releases"]] == [site.releases[n] for n in ("dirty", "second", "first")]
    assert [r["current"] for r in app["releases"]] == [True, False, False]
    shipped = {name: kept[site.releases[name]] for name in ("first", "second", "dirty")}
    assert [(r["commit"], r["dirty"]) for r in shipped.values()] == [
        (site.commits[0], False), (site.commits[1], False), (site.commits[1], True)]
    operator = f"{getpass.getuser()}@{socket.gethostname()}"
    assert shipped["first"]["shipped_by"] == operator
    assert all(r["live_by"] == operator and r["requirements_key"] for r in shipped.values())
    assert len({r["requirements_key"] for r in shipped.values()}) == 1  # the requirements did not change
    lives = [r["live_at"] for r in shipped.values()]
    assert lives == sorted(lives) and abs(lives[-1] - time.time()) < 300, lives

    entries = site.json("history")["entries"]
    assert [(e["action"], e["result"], e["current"]) for e in entries] == [
        ("deploy", "changed", [site.releases[n]]) for n in ("first", "second", "dirty")]
    assert all(e["by"] == operator for e in entries)
    assert any("new release" in change for change in entries[-1]["changes"]), entries[-1]


def test_rollback_under_load_fails_no_request(site):
    restart_started = time.monotonic()
    with Load(site.host.address) as restart_load:
        restart = site.provision("deploy", "--json", inventory=site.inventory("restart", uwsgi_processes=3))
        restart_seconds = time.monotonic() - restart_started
    assert restart.returncode == 0, restart.stdout + restart.stderr
    restart_load.assert_nothing_failed()

    rollback_started = time.monotonic()
    with Load(site.host.address) as load:
        rolled = site.provision("rollback", "--json", inventory=site.inventory("restart", uwsgi_processes=3))
        rollback_seconds = time.monotonic() - rollback_started
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    print(f"config-only restart: {restart_seconds:.2f} s ({restart_load.summary()}); "
          f"rollback: {rollback_seconds:.2f} s ({load.summary()}); ratio {rollback_seconds / restart_seconds:.2f}")
    load.assert_nothing_failed()
    [report] = json.loads(rolled.stdout)["hosts"]
    assert report["remote"].get("uploads", 0) == 0, report["remote"]  # nothing built, nothing uploaded
    assert [h["name"] for h in report["handlers"]] == ["restart app"], report
    assert site.release() == site.releases["second"]
    # the switch back is what a deploy of the checkout would do now
    ahead = site.provision("deploy", "--check", inventory=site.inventory("restart", uwsgi_processes=3))
    assert ahead.returncode == 4 and f"release {site.releases['dirty']} is on the host" in ahead.stdout, ahead.stdout


def test_a_healthy_but_wrong_release_is_rolled_back(site):
    wrong = example_app(site.tmp / "wrong", wsgi_head=WRONG_MODEL)
    site.deploy("wrong", site.inventory("wrong", wrong))
    assert site.predicted() == "wrong"
    result = site.provision("rollback")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"rolling back from {site.releases['wrong']} to {site.releases['second']}" in result.stdout, result.stdout
    assert site.release() == site.releases["second"] and site.predicted() == "setosa"
    last = site.json("history")["entries"][-1]
    assert (last["action"], last["result"], last["current"]) == ("rollback", "changed", [site.releases["second"]])


def test_a_rollback_to_a_release_the_host_does_not_keep_is_refused(site):
    missing = site.provision("rollback", "--to", "0000000")
    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert "release '0000000' is not kept on this host" in missing.stdout, missing.stdout
    wrong = site.releases["wrong"]
    planned = site.provision("rollback", "--check", "--to", wrong[:6])
    assert planned.returncode == 4 and f"to {wrong}" in planned.stdout, planned.stdout
    assert site.release() == site.releases["second"]  # neither changed anything
    last = site.json("history")["entries"][-1]
    assert (last["action"], last["result"]) == ("rollback", "failed") and "0000000" in last["error"], last


def top_around_wrk(site, url: str, interval: int, after: float, connections: int, seconds: int):
    """One `top --once --json` sample of `interval` s, with wrk started `after` s into it (top's start
    and login take seconds on a busy machine): the sample and wrk's counts."""
    sampled = {}
    top = threading.Thread(target=lambda: sampled.update(result=site.provision("top", "--once", "--json",
                                                                              "--interval", str(interval))))
    top.start()
    time.sleep(after)
    wrk = run_slice(url, connections, seconds)
    top.join()
    result = sampled["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout), wrk


def test_top_counts_what_wrk_sent_and_reads_only_where_it_may(site):
    """One `top --once` sample of 20 s around 6 s of wrk (started 7 s after top, whose start and login
    take seconds on a busy machine): nginx's count of requests and its share of errors agree with
    wrk's (within 10 %); the status page and uWSGI's stats are closed to others."""
    sample, wrk = top_around_wrk(site, f"http://{site.host.address}/healthz", interval=20, after=7,
                                 connections=16, seconds=6)
    counted = sample["requests_per_s"] * sample["seconds"]
    print(f"top: {counted:.0f} requests ({sample['logged']} logged), p50 {sample['p50_ms']} ms, p99 "
          f"{sample['p99_ms']} ms, sampler {sample['sampler_cpu_seconds']} CPU s over {sample['seconds']} s; "
          f"wrk: {wrk.answered} answered, {wrk.failed} failed, {wrk.rate:.0f}/s, p99 {wrk.p99_ms:.0f} ms")
    assert wrk.answered > 1000 and wrk.failed == 0, wrk
    assert abs(counted - wrk.answered) <= 0.1 * wrk.answered, (sample, wrk)
    assert abs(sample["logged"] - wrk.answered) <= 0.1 * wrk.answered, (sample, wrk)
    assert (sample["share_4xx"], sample["share_5xx"]) == (0, 0) and sample["p99_ms"] >= sample["p50_ms"] > 0
    assert sample["uwsgi"] and sample["workers_busy"] + sample["workers_idle"] == 2 and sample["app_memory_bytes"]
    with pytest.raises(OSError):  # the status page listens on the host's loopback only
        socket.create_connection((site.host.address, 8019), timeout=3).close()
    who = site.provision("run", "--", "runuser -u www-data -- python3 -c 'import socket; socket.socket(socket.AF_UNIX)"
                                      ".connect(\"/run/model_api/stats/main.sock\")' 2>&1 | tail -n 1")
    assert "PermissionError" in who.stdout, who.stdout


def scrape(address: str, port: int) -> dict[str, float]:
    """One scrape of an exporter's /metrics: each sample line (name with labels) and its value."""
    with urllib.request.urlopen(f"http://{address}:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def test_metrics_answer_the_admitted_scraper_only_and_top_reads_the_json_access_log(site):
    """Metrics on for the controller's address on the lab bridge (its gateway): both exporters answer it
    on the host's private address with figures that move with 40 requests, and run as unprivileged
    users; from the controller's other address on that bridge (the apt proxy's, which reaches the site)
    connections to them go unanswered while they listen. `top` reads the JSON access log. Then metrics
    off: both stopped."""
    address = site.host.address
    controller = network.gateway(f"{address.rpartition('.')[0]}.0/24")
    site.deploy("metrics", site.inventory("metrics", metrics_scraper=[controller], access_log_format="json"))
    other = (network.PROXY_ADDR, 0)
    socket.create_connection((address, 80), timeout=3, source_address=other).close()  # it reaches the host
    for port in (9113, 9117):
        with pytest.raises(TimeoutError):  # dropped by the host's firewall: no answer, not even a refusal
            socket.create_connection((address, port), timeout=3, source_address=other).close()
    listening = site.provision("run", "--", "ss -ltnH").stdout
    assert f"{address}:9113" in listening and f"{address}:9117" in listening, listening
    nginx_before, uwsgi_before = scrape(address, 9113), scrape(address, 9117)
    for _ in range(40):
        assert healthz(address)[0] == 200
    nginx_after, uwsgi_after = scrape(address, 9113), scrape(address, 9117)
    print(f"nginx: {nginx_before['nginx_http_requests_total']:.0f} -> {nginx_after['nginx_http_requests_total']:.0f} "
          f"requests; uwsgi: {uwsgi_before['uwsgi_requests_total']:.0f} -> {uwsgi_after['uwsgi_requests_total']:.0f}")
    assert nginx_after["nginx_up"] == 1 and nginx_after["nginx_connections_active"] >= 1
    assert nginx_after["nginx_http_requests_total"] - nginx_before["nginx_http_requests_total"] >= 40
    assert uwsgi_after["uwsgi_up"] == 1 and uwsgi_after['uwsgi_workers{status="idle"}'] >= 1
    assert uwsgi_after["uwsgi_requests_total"] - uwsgi_before["uwsgi_requests_total"] >= 40
    users = site.provision("run", "--", "ps -o user= -p \"$(systemctl show -p MainPID --value prometheus-nginx-exporter) "
                                        "$(systemctl show -p MainPID --value provision-uwsgi-exporter-model_api)\"")
    assert users.stdout.split()[-2:] == ["prometheus", "model_api"], users.stdout

    logged = site.provision("logs", "-s", "nginx", "-n", "1")
    line = next(text for text in logged.stdout.splitlines() if '"status":' in text)
    assert json.loads(line[line.index("{"):])["uri"] == "/healthz", line
    sample, wrk = top_around_wrk(site, f"http://{address}/healthz", interval=12, after=5, connections=4, seconds=3)
    assert "logged" in sample, sample
    assert abs(sample["logged"] - wrk.answered) <= 0.1 * wrk.answered and sample["p50_ms"] > 0, (sample, wrk)


    site.deploy("metrics", site.inventory("checkout"))
    listening = site.provision("run", "--", "ss -ltnH").stdout
    assert ":9113" not in listening and ":9117" not in listening, listening
