"""Deploys on a host under load drop no request (issue 10 section 4; docs/zero-downtime.md).

One host, deployed once, takes GET /healthz and POST /predict from wrk on the controller while
`provision deploy` ships (a) a new release, (b) an ini change, (c) an nginx site change, and (d) a
release that cannot start, which must be rolled back. In every case: no non-2xx answer, no socket
error. The load runs in back-to-back wrk slices from just before the deploy until just after it.
Latency is printed, not asserted (performance lives in bench/).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioner.labs import container as lab
from provisioner.labs.container import write_inventory
from provisioner.labs.example_app import example_app
from provisioner.labs.load import NGINX_FAILURES, Slice, post_script, run_slice

pytestmark = pytest.mark.lab

SLICE_SECONDS = 3
CONNECTIONS = 8  # per endpoint: a steady load the 2-core CI machine carries beside the deploy
CLIENT_TIMEOUT = 30  # seconds: a request that waits is slow, one that gives up is a failure


@dataclass
class Site:
    host: lab.LabHost
    tmp: Path
    env: dict

    def inventory(self, name: str, **group_vars) -> Path:
        return write_inventory([self.host], self.tmp / f"{name}.yml", group_vars=group_vars or None)

    def deploy(self, inventory: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "provisioner", "deploy", "-H", self.host.name,
                               "-i", str(inventory)], capture_output=True, text=True, timeout=600, env=self.env)

    def nginx_evidence(self, inventory: Path) -> str:
        """What nginx logged of the answers that were not a 2xx (a client that left, 499, aside) and
        its error log's last lines: the cause of a failed request, in the assertion's message."""
        return subprocess.run([sys.executable, "-m", "provisioner", "run", "-H", self.host.name, "-i", str(inventory),
                               "--", NGINX_FAILURES], capture_output=True, text=True, timeout=120, env=self.env).stdout

    def release(self) -> str:
        status, body = healthz(self.host.address)
        assert status == 200, body
        return json.loads(body)["release"]


def healthz(address: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://{address}/healthz", timeout=10) as answer:
        return answer.status, answer.read().decode()


@pytest.fixture(scope="module", params=["bookworm"])
def site(request, lab_base, tmp_path_factory) -> Site:
    """One host of that Debian release, deployed with the defaults; removed after the module."""
    tmp = tmp_path_factory.mktemp(f"zero-downtime-{request.param}")
    name = f"{lab_base}zd{request.param[0]}"
    lab.remove_host(name, lab_base)
    [host] = lab.add_hosts([name], lab_base, request.param)
    s = Site(host, tmp, dict(os.environ, PROVISION_KNOWN_HOSTS=str(tmp / "known_hosts")))
    first = s.deploy(s.inventory("defaults"))
    assert first.returncode == 0, first.stdout + first.stderr
    yield s
    lab.remove_host(name, lab_base)


class Load:
    """wrk on GET /healthz and POST /predict, in slices, until stopped (then the running slice ends).
    The deploy's own first second (connection, facts) covers wrk's start."""

    def __init__(self, address: str, headers: tuple[str, ...] = ()):
        self.slices: dict[str, list[Slice]] = {"GET /healthz": [], "POST /predict": []}
        self._headers = headers
        self.evidence = ""  # what nginx logged, when something failed (deploy_under_load)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(f"http://{address}/healthz", None, "GET /healthz")),
                         threading.Thread(target=self._run, args=(f"http://{address}/predict", post_script(),
                                                                   "POST /predict"))]

    def _run(self, url: str, script: Path | None, name: str) -> None:
        # at least two slices: a deploy that ends within the first still has load after it
        while not self._stop.is_set() or len(self.slices[name]) < 2:
            self.slices[name].append(run_slice(url, CONNECTIONS, SLICE_SECONDS, script, timeout=CLIENT_TIMEOUT,
                                               headers=self._headers))

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def summary(self) -> str:
        return "; ".join(
            f"{name}: {sum(s.answered for s in slices)} answered, {sum(s.non_2xx for s in slices)} non-2xx, "
            f"{sum(s.errors for s in slices)} socket errors, worst slice p99 {max(s.p99_ms for s in slices):.0f} ms"
            for name, slices in self.slices.items())

    def failed(self) -> int:
        return sum(s.failed for slices in self.slices.values() for s in slices)

    def assert_nothing_failed(self) -> None:
        for name, slices in self.slices.items():
            assert len(slices) >= 2 and all(s.answered for s in slices), f"{name}: a slice without answers\n{slices}"
            assert sum(s.non_2xx for s in slices) == 0, f"{name}: non-2xx answers\n{self.summary()}\n{self.evidence}"
            assert sum(s.errors for s in slices) == 0, f"{name}: socket errors\n{self.summary()}\n{self.evidence}"


def deploy_under_load(site: Site, inventory: Path, headers: tuple[str, ...] = ()
                      ) -> tuple[subprocess.CompletedProcess, Load]:
    with Load(site.host.address, headers) as load:
        result = site.deploy(inventory)
    print(f"{inventory.stem}: deploy rc={result.returncode}; {load.summary()}")
    load.evidence = site.nginx_evidence(inventory) if load.failed() else ""
    return result, load


def test_a_new_release_under_load(site):
    before = site.release()
    app = example_app(site.tmp / "app_next", wsgi_tail="\n# the next release\n")
    result, load = deploy_under_load(site, site.inventory("release", app_source=str(app)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "restart app: ran" in result.stdout, result.stdout
    load.assert_nothing_failed()
    assert site.release() != before


def test_an_ini_change_under_load(site):
    app = site.tmp / "app_next"
    result, load = deploy_under_load(site, site.inventory("ini", app_source=str(app), uwsgi_processes=3))
    assert result.returncode == 0 and "model_api.ini changed" in result.stdout, result.stdout + result.stderr
    load.assert_nothing_failed()


def test_an_nginx_site_change_under_load(site):
    app = site.tmp / "app_next"
    inventory = site.inventory("site", app_source=str(app), uwsgi_processes=3, client_max_body_size="20m")
    # One request per connection: a reload never refuses or fails a request, but nginx's old workers
    # close their idle keep-alive connections, and a request a client sends on one at that instant
    # meets the close (HTTP clients retry it; wrk counts a socket error: 4 in ~6,000 in one CI run).
    result, load = deploy_under_load(site, inventory, headers=("Connection: close",))
    assert result.returncode == 0 and "reload nginx: ran" in result.stdout, result.stdout + result.stderr
    assert "restart app" not in result.stdout, "a site change alone does not touch uWSGI"
    load.assert_nothing_failed()


def test_a_broken_release_under_load_is_rolled_back(site):
    before = site.release()
    app = example_app(site.tmp / "app_broken", wsgi_tail="\nimport no_such_module_xyz\n")
    inventory = site.inventory("broken", app_source=str(app), uwsgi_processes=3, client_max_body_size="20m")
    result, load = deploy_under_load(site, inventory)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rolled back release" in result.stdout and "the previous state is running again" in result.stdout
    # the standby's journal explains it, even with its 3 workers' tracebacks interleaved
    # (tests/unit/test_unit_failure.py)
    assert "No module named 'no_such_module_xyz'" in result.stdout, \
        result.stdout
    load.assert_nothing_failed()
    assert site.release() == before
