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
import shutil
import subprocess
import sys
import threading
import urllib.error
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


# --- Several apps behind one site (issue 22; docs/settings.md#several-apps-behind-one-site) -------------
# The same host, then deployed with three small Flask apps (tests/lab/apps): admin at /admin (its
# links come from url_for), accounts at /user (4 processes), site at / (everything else).

LAB_APPS = Path(__file__).parent / "apps"
APP_LOAD = {"admin": "/admin/healthz", "accounts": "/user/healthz", "site": "/healthz"}


# Shell: each app's uWSGI processes (its unit's main PID and its children) and their summed PSS.
APP_MEMORY = """for a in admin accounts site; do
  main=$(systemctl show -p MainPID --value uwsgi-$a); pids="$main $(ps -o pid= --ppid "$main")"; pss=0
  for p in $pids; do pss=$((pss + $(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup))); done
  echo "uwsgi-$a: $(echo $pids | wc -w) processes, PSS $pss kB"
done"""


def apps_inventory(site: Site, name: str, admin: Path = LAB_APPS / "admin", changes: dict | None = None) -> Path:
    """The three apps (admin's source from `admin`), with `changes` (an entry each; None removes one)."""
    entries = {"admin": {"path": "/admin", "app_source": str(admin), "app_module": "admin.wsgi"},
               "accounts": {"path": "/user", "app_source": str(LAB_APPS / "accounts"), "app_module": "accounts.wsgi",
                         "uwsgi_processes": 4},
               "site": {"path": "/", "app_source": str(LAB_APPS / "frontpage"), "app_module": "frontpage.wsgi"}, **(changes or {})}
    return site.inventory(name, apps={k: v for k, v in entries.items() if v is not None})


def provision(site: Site, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "provisioner", *args], capture_output=True, text=True,
                          timeout=600, env=site.env)


def get(address: str, path: str) -> dict:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as answer:
        assert answer.status == 200
        return json.loads(answer.read())


def ask(address: str, path: str, host: str) -> tuple[int, str]:
    """GET `path` naming `host`: the status and the answering app (or "")."""
    request = urllib.request.Request(f"http://{address}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())["app"]
    except urllib.error.HTTPError as error:
        return error.code, ""


def on_host(site: Site, inventory: Path, command: str) -> str:
    """What `command` printed on the host (`provision run` indents it under a "NAME rc=N" line)."""
    result = provision(site, "run", "-H", site.host.name, "-i", str(inventory), "--", command)
    assert result.returncode == 0, result.stdout + result.stderr
    return "".join(line[2:] + "\n" for line in result.stdout.splitlines()[1:])


def no_op(site: Site, inventory: Path) -> int:
    """Re-deploy, which must change nothing; the remote scripts (channels) it took."""
    again = provision(site, "deploy", "-H", site.host.name, "-i", str(inventory), "--json")
    [report] = json.loads(again.stdout)["hosts"]
    assert (again.returncode, report["changed"], report["handlers"]) == (0, 0, []), again.stdout
    return report["remote"]["channels"]


def main_pids(site: Site, inventory: Path) -> dict[str, str]:
    """Each app's uWSGI main PID (its unit's MainPID)."""
    out = on_host(site, inventory, "for a in admin accounts site; do printf '%s ' $a; "
                                   "systemctl show -p MainPID --value uwsgi-$a; done")
    return dict(line.split() for line in out.splitlines() if line.strip())


def test_three_apps_each_answer_at_their_path_and_build_prefixed_links(site):
    inventory = apps_inventory(site, "apps")
    result = site.deploy(inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "app model_api no longer in the inventory: retired" in result.stdout, "the defaults' app, removed"
    address = site.host.address
    assert get(address, "/admin/healthz")["app"] == "admin"
    assert get(address, "/user/healthz")["app"] == "accounts" and get(address, "/user/7") == {"app": "accounts", "user": 7}
    assert get(address, "/healthz")["app"] == "site" and get(address, "/about")["path"] == "/about"
    assert get(address, "/administrator")["app"] == "site", "a prefix matches whole path segments"
    # SCRIPT_NAME: the app's routes are unprefixed, the link it builds carries the prefix
    assert get(address, "/admin/link") == {"app": "admin", "link": "/admin/healthz", "script_root": "/admin",
                                           "path": "/link"}
    assert no_op(site, inventory) == 1, "a no-op re-deploy of the three is one remote script"
    # Memory each app's uWSGI holds (PSS of its master and workers), printed for docs/settings.md.
    print(on_host(site, inventory, APP_MEMORY))


def test_top_gives_each_app_the_requests_nginx_passed_to_it(site):
    """`top` on a host of three apps: a row per app, its requests the log lines whose upstream is its
    socket. Requests go to admin and accounts 2:1 during the whole sample, none to the site app."""
    inventory = apps_inventory(site, "apps")
    stop = threading.Event()

    def requests():
        while not stop.is_set():
            for path in ("/admin/healthz", "/admin/healthz", "/user/7"):
                get(site.host.address, path)
    sender = threading.Thread(target=requests)
    sender.start()
    try:
        top = provision(site, "top", "-H", site.host.name, "-i", str(inventory), "--once", "--json", "--interval", "3")
    finally:
        stop.set()
        sender.join()
    assert top.returncode == 0, top.stdout + top.stderr
    sample = json.loads(top.stdout)
    apps = {a["app"]: a for a in sample["apps"]}
    admin, accounts = apps["admin"]["logged"], apps["accounts"]["logged"]
    assert accounts >= 10 and abs(admin - 2 * accounts) <= 2, apps
    assert apps["site"]["logged"] == 0 and sample["logged"] == admin + accounts, sample
    assert all(a["uwsgi"] and a["workers_busy"] + a["workers_idle"] > 0 for a in apps.values()), apps
    assert apps["accounts"]["workers_busy"] + apps["accounts"]["workers_idle"] == 4, "its own uWSGI's 4 workers"


def test_one_apps_release_under_load_restarts_only_that_app(site):
    inventory = apps_inventory(site, "apps")
    before = main_pids(site, inventory)
    admin = site.tmp / "admin_next"
    shutil.copytree(LAB_APPS / "admin", admin, ignore=shutil.ignore_patterns("__pycache__"))
    wsgi = admin / "admin" / "wsgi.py"
    wsgi.write_text(wsgi.read_text().replace('VERSION = "1"', 'VERSION = "2"'))
    with AppsLoad(site.host.address) as load:
        result = site.deploy(apps_inventory(site, "apps_next", admin=admin))
    print(f"admin release: deploy rc={result.returncode}; {load.summary()}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "restart app admin: ran" in result.stdout, result.stdout
    assert "restart app accounts" not in result.stdout and "restart app site" not in result.stdout, result.stdout
    load.assert_nothing_failed()
    assert get(site.host.address, "/admin/healthz")["version"] == "2"
    after = main_pids(site, inventory)
    assert (after["accounts"], after["site"]) == (before["accounts"], before["site"]), (before, after)
    assert after["admin"] != before["admin"]


class AppsLoad(Load):
    """wrk on every app's health path at once, in slices, until stopped."""

    def __init__(self, address: str):
        super().__init__(address)
        self.slices = {name: [] for name in APP_LOAD}
        self._threads = [threading.Thread(target=self._run, args=(f"http://{address}{path}", None, name))
                         for name, path in APP_LOAD.items()]


def test_deploy_app_touches_that_app_only_and_logs_app_show_its_journal(site):
    # the inventory has admin back at version 1 and accounts with 3 processes: --app accounts
    # deploys the second only
    inventory = apps_inventory(site, "apps_accounts", changes={"accounts": {
        "path": "/user", "app_source": str(LAB_APPS / "accounts"), "app_module": "accounts.wsgi", "uwsgi_processes": 3}})
    before = main_pids(site, inventory)
    result = provision(site, "deploy", "-H", site.host.name, "-i", str(inventory), "--app", "accounts")
    assert result.returncode == 0 and "restart app accounts: ran" in result.stdout, result.stdout + result.stderr
    assert "restart app admin" not in result.stdout and "/srv/admin" not in result.stdout, result.stdout
    assert get(site.host.address, "/admin/healthz")["version"] == "2", "admin untouched"
    after = main_pids(site, inventory)
    assert (after["admin"], after["site"]) == (before["admin"], before["site"]) and after["accounts"] != before["accounts"]
    logs = provision(site, "logs", "-H", site.host.name, "-i", str(inventory), "--app", "accounts", "-s", "uwsgi", "-n", "5")
    journal = [line.split()[1] for line in logs.stdout.splitlines() if line.strip()]
    assert logs.returncode == 0 and journal and set(journal) == {"uwsgi-accounts"}, logs.stdout + logs.stderr
    status = provision(site, "status", "-H", site.host.name, "-i", str(inventory)).stdout
    assert all(f"{name} uwsgi: active" in status and f"{name} workers:" in status for name in APP_LOAD), status
    only = provision(site, "status", "-H", site.host.name, "-i", str(inventory), "--app", "admin").stdout
    assert "admin uwsgi: active" in only and "accounts uwsgi" not in only, only
    doctor = provision(site, "doctor", "-H", site.host.name, "-i", str(inventory))
    assert doctor.returncode == 0 and "accounts socket:" in doctor.stdout, doctor.stdout
    assert "--app billing: host" in provision(site, "deploy", "-H", site.host.name, "-i", str(inventory),
                                              "--app", "billing").stderr


def test_a_renamed_app_is_retired_and_one_site_holds_the_port(site):
    # apps: site becomes home (same path, same code); --check shows the retirement first
    renamed = apps_inventory(site, "apps_renamed", changes={
        "site": None, "home": {"path": "/", "app_source": str(LAB_APPS / "frontpage"), "app_module": "frontpage.wsgi"}})
    check = provision(site, "deploy", "-H", site.host.name, "-i", str(renamed), "--check")
    assert check.returncode == 4 and "app site no longer in the inventory: retired" in check.stdout, check.stdout
    result = site.deploy(renamed)
    assert result.returncode == 0 and "retire apps: ran" in result.stdout, result.stdout + result.stderr
    assert get(site.host.address, "/healthz")["app"] == "site" and get(site.host.address, "/admin/healthz")
    state = on_host(site, renamed, "systemctl show -p LoadState --value uwsgi-site uwsgi-home; "
                                   "ls /etc/uwsgi/apps-provision /run/site 2>&1; ls -d /srv/site/releases")
    assert state.split()[:2] == ["not-found", "loaded"], state
    assert "site.ini" not in state and "/run/site': No such file" in state and "/srv/site/releases" in state, \
        "unit, ini and socket gone; releases kept (retired_releases: keep)"
    # home moves to a server_name of its own: a second server block on port 80 (a virtual host)
    vhost = apps_inventory(site, "apps_vhost", changes={"site": None, "home": {
        "path": "/", "app_source": str(LAB_APPS / "frontpage"), "app_module": "frontpage.wsgi",
        "server_name": "home.test"}})
    result = site.deploy(vhost)
    assert result.returncode == 0 and "restart app" not in result.stdout, result.stdout + result.stderr
    assert ask(site.host.address, "/healthz", "home.test") == (200, "site")
    assert ask(site.host.address, "/admin/healthz", "home.test") == (200, "site"), "home.test's / app answers it"
    assert ask(site.host.address, "/admin/healthz", "localhost") == (200, "admin")
    # The single app of issue 22: app_name renamed. Its old site is disabled in the same apply, so nginx
    # never sees two sites on port 80 ("duplicate listen options"), and every app before it retired.
    single = site.inventory("renamed_single", app_name="bigmodel", retired_releases="remove")
    result = site.deploy(single)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nginx site model_api no longer in the inventory: retired" in result.stdout, result.stdout
    assert site.release()
    left = on_host(site, single, "ls /etc/nginx/sites-enabled; ls /etc/uwsgi/apps-provision; "
                                 "systemctl list-units --plain --no-legend 'uwsgi-*' | awk '{print $1}'")
    assert left.split() == ["bigmodel", "bigmodel.env", "bigmodel.ini", "uwsgi-bigmodel.service"], left
    # retired now with retired_releases: remove (admin, accounts, home); kept when retired before (site, model_api)
    assert on_host(site, single, "ls -d /srv/*").split() == ["/srv/bigmodel", "/srv/model_api", "/srv/site"]
    assert no_op(site, single) == 1
