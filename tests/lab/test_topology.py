"""A site of many hosts (issues 10 and 21), on one lab of 5 real hosts shared by the tests here: 2
balancers (group lb) with one floating address in front of 3 app hosts (group app), Debian 12 and 13
side by side (lb2 and app3 run Debian 13), deployed by the real CLI with the default settings.

- the balancers proxy to every app host; only they reach the app port (nftables): the controller's
  own lab address, which is not a balancer, cannot connect, and a balancer's network can;
- a no-op re-deploy of the 5 hosts is 1 remote script per host and changes nothing;
- removing an app host from the inventory updates every balancer (nginx -t, reload), adding it back too;
- failover between app hosts: under GET and POST load through the floating address, uWSGI stopped on
  one app host, then the host powered off: the requests that fail are at most the open connections, all
  in the first second (no retry of POSTs: the host refuses its balancers while its app is down); powered
  on again, the host rejoins by itself within upstream_fail_timeout;
- the floating address (keepalived): nginx stopped on its holder, then the new holder powered off,
  each under load: the other balancer answers within 3 s, and the returning one takes nothing back;
  `floating_standby` moves it for maintenance; `status` names the holder;
- rolling releases: `deploy --serial 1` of a new release across the 3 app hosts under load fails no
  request and meets no socket error (each app host drains itself: no balancer reload); a broken
  release stops the roll after its first batch while the site answers, its host left out of the
  traffic until a deploy of its own puts it back; `rollback --serial 1` (issue 23) takes every app
  host back to its previous release under load, one at a time, with no failed request;
- several apps behind the balancers (issue 22), last: the site at / on every app host, admin at /admin
  limited to a group of two app hosts (app_hosts): through a balancer each path answers from its app,
  admin's requests reach its two hosts only, its unit does not exist on the third; its uWSGI stopped on
  one of the two, /admin still answers from the other.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from test_deploy import http, provision
from topology_site import (Load, Prober, Site, app_copy, can_connect, from_balancer, moved_from, rejoins, release_of, roll,
                           under_load)

from provisioner.labs import container as lab
from provisioner.labs.load import PREDICT_BODY, post_script, run_slice

pytestmark = pytest.mark.lab

# Debian 12 and 13 side by side: one balancer and one app host of each release at least.
BALANCERS = {"lb1": "bookworm", "lb2": "trixie"}
APP_HOSTS = {"app1": "bookworm", "app2": "bookworm", "app3": "trixie"}
CONNECTIONS = 8  # wrk's connections for GET, and as many for POST
LAB_APPS = Path(__file__).parent / "apps"   # the small Flask apps of the several-apps tests


@pytest.fixture(scope="module")
def site(lab_base, tmp_path_factory):
    """2 balancers + 3 app hosts, deployed once for the module; removed at the end."""
    names = {f"{lab_base}{name}": release for name, release in {**BALANCERS, **APP_HOSTS}.items()}
    tmp = tmp_path_factory.mktemp("topology")
    old_known_hosts = os.environ.get("PROVISION_KNOWN_HOSTS")
    os.environ["PROVISION_KNOWN_HOSTS"] = str(tmp / "known_hosts")
    lab.remove_hosts(list(names), lab_base)
    try:
        made = {}
        for release in ("bookworm", "trixie"):
            for host in lab.add_hosts([n for n, r in names.items() if r == release], lab_base, release=release):
                made[host.name] = host
        site = Site(lab_base, [made[f"{lab_base}{n}"] for n in BALANCERS], [made[f"{lab_base}{n}"] for n in APP_HOSTS],
                    tmp / "site.yml")
        site.write_inventory()
        code, reports = site.deploy("-H", "all")
        assert code == 0, json.dumps(reports, indent=1)[-4000:]
        yield site
    finally:
        lab.remove_hosts(list(names), lab_base)
        if old_known_hosts is None:
            os.environ.pop("PROVISION_KNOWN_HOSTS", None)
        else:
            os.environ["PROVISION_KNOWN_HOSTS"] = old_known_hosts


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
    assert f"ip saddr {{ {', '.join(b.address for b in site.balancers)} }} accept" in rules, rules


def test_a_no_op_redeploy_is_one_script_per_host_and_changes_nothing(site):
    code, reports = site.deploy("-H", "all")
    assert code == 0 and len(reports) == len(BALANCERS) + len(APP_HOSTS), reports
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
        for b in site.balancers:
            assert code == 0 and reports[b.name]["status"] == "changed", reports
            assert [h["name"] for h in reports[b.name]["handlers"]] == ["reload nginx"], reports[b.name]
            assert f"# {gone.name}" not in site.run(b, f"cat {upstream}")
    finally:
        site.write_inventory()
    code, reports = site.deploy("-H", "lb")
    assert code == 0 and all(f"# {gone.name}" in site.run(b, f"cat {upstream}") for b in site.balancers)


def test_failover_under_load_then_the_host_rejoins(site):
    """GET and POST load through the floating address, default settings (no retry of a POST); on one
    app host uWSGI stops at 5 s, then the host powers off at 12 s."""
    victim, seconds, marks = site.apps[-1], 24, {}
    lines = {b.name: site.access_log_lines(b) for b in site.balancers}

    def events():
        time.sleep(5)
        site.run(victim, "systemctl stop uwsgi-model_api")
        marks["stopped"] = time.time()
        time.sleep(7)
        site.power_off(victim)

    gets, posts, _ = under_load(site.floating, seconds, CONNECTIONS, events)
    failures = site.failures_since(lines)
    # the access logs count whole seconds: a failure logged at the second after the stop's is in time
    late = [f for f in failures if f[0] > int(marks["stopped"]) + 1]
    print(f"failover: GET {gets.answered} answered, {gets.failed} failed; POST {posts.answered} answered, "
          f"{posts.failed} failed; the balancers' non-2xx: {len(failures)}, {len(late)} after the first second")
    assert gets.answered > 100 and posts.answered > 100, (gets, posts)
    assert gets.failed + posts.failed <= 2 * CONNECTIONS, (gets, posts, failures)
    assert late == [], (gets, posts, failures)

    # doctor on a balancer names the app host that is down, and looks for no uWSGI of its own
    doctor = provision("doctor", "-H", site.balancer.name, "-i", site.inventory, check=False)
    assert doctor.returncode == 1 and f"app host: FAIL {victim.name} (" in doctor.stdout, doctor.stdout
    assert "uwsgi-model_api is inactive" not in doctor.stdout, doctor.stdout
    assert all(f"app host: {h.name} (" in doctor.stdout for h in site.apps[:-1]), doctor.stdout

    site.power_on(victim)
    started = time.monotonic()
    while not release_of_or_none(site, victim):
        assert time.monotonic() - started < 60, f"{victim.name}'s app did not answer at its own nginx in 60 s"
        time.sleep(0.2)
    took = rejoins(site, victim, through=site.floating)
    print(f"failover: {victim.name} rejoined {took:.1f} s after its app answered")
    assert took <= 10 + 1, f"{victim.name} rejoined {took:.1f} s after its app answered (upstream_fail_timeout 10s)"
    doctor = provision("doctor", "-H", site.balancer.name, "-i", site.inventory)
    assert doctor.returncode == 0 and f"app host: {victim.name} (" in doctor.stdout, doctor.stdout


def release_of_or_none(site, host) -> str | None:
    try:
        return release_of(site, host)
    except Exception:
        return None


def the_address_moves(site, holder, label: str, event) -> object:
    """Load through the floating address; 4 s in, `event` makes `holder` fail. The address must not stop
    answering for more than 3 s (a probe every 50 ms), the other balancer must hold it, with at most as
    many failed requests as open connections, and a new 4-s slice there must fail none. Returns the new
    holder."""
    moves, probe = [], Prober(site.floating)

    def fail():
        time.sleep(4)
        event()
        moves.append(moved_from(site, holder))

    gets, posts, _ = under_load(site.floating, 14, CONNECTIONS, fail)
    took = probe.longest_outage()
    after = run_slice(f"http://{site.floating}/predict", CONNECTIONS, 4, post_script(), 30)
    new = moves[0]
    failed = gets.failed + posts.failed
    print(f"floating, {label}: {new.name} holds it, the address did not answer for {took:.2f} s at most; "
          f"{gets.answered + posts.answered} answered, {failed} failed (non-2xx and socket errors); "
          f"after the move {after.answered} POSTs answered, {after.failed} failed")
    assert took <= 3, f"{label}: the address did not answer for {took:.2f} s ({new.name} holds it now)"
    assert failed <= 2 * CONNECTIONS, (label, failed, gets, posts)
    assert after.answered > 0 and after.failed == 0, (label, after)
    return new


def test_the_floating_address_moves_when_its_holder_fails_and_stays(site):
    """Load through the floating address while nginx stops on its holder, then while the new holder
    powers off; each time the other balancer answers within 3 s, and the returning one takes nothing
    back (nopreempt)."""
    first = site.holder()
    assert first is not None, "no balancer holds the floating address"
    status = provision("status", "-H", "lb", "-i", site.inventory).stdout
    assert f"{site.floating} held here" in status, status
    second = the_address_moves(site, first, f"nginx stopped on {first.name}",
                               lambda: site.run(first, "systemctl stop nginx"))
    site.run(first, "systemctl start nginx")
    time.sleep(5)
    assert site.holder() is second, "the address went back when nginx returned (no nopreempt?)"

    assert the_address_moves(site, second, f"{second.name} powered off", lambda: site.power_off(second)) is first
    site.power_on(second)
    time.sleep(5)
    assert site.holder() is first, f"the address left {first.name} when {second.name} came back"
    doctor = provision("doctor", "-H", second.name, "-i", site.inventory, check=False).stdout
    assert f"{site.floating} held by {first.name} ({first.address})" in doctor, doctor

    # Maintenance: floating_standby on the holder moves the address away, and it stays away after.
    site.write_inventory(host_vars={first.name: {"floating_standby": True}})
    try:
        code, _ = site.deploy("-H", first.name)
        assert code == 0
        moved = moved_from(site, first)
        assert moved is second, moved
    finally:
        site.write_inventory()
    code, _ = site.deploy("-H", first.name)
    time.sleep(3)
    assert code == 0 and site.holder() is second, "the address went back when floating_standby was unset"


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
    # a release is built per Debian release (its wheels and venv are the host's Python's): one id for each
    ids = {debian: {after[h.name] for d, h in zip(APP_HOSTS.values(), site.apps) if d == debian}
           for debian in set(APP_HOSTS.values())}
    assert all(len(one) == 1 for one in ids.values()) and not set(after.values()) & set(before.values()), (before, after)
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


def test_an_app_limited_to_a_group_of_app_hosts_runs_there_only_and_fails_over_within_it(site):
    """Last (the site keeps the two apps): site at / on every app host, admin at /admin on group
    admin_hosts (the last two app hosts) only."""
    outside, limited = site.apps[0], site.apps[1:]
    apps = {"site": {"path": "/", "app_source": str(LAB_APPS / "frontpage"), "app_module": "frontpage.wsgi"},
            "admin": {"path": "/admin", "app_source": str(LAB_APPS / "admin"), "app_module": "admin.wsgi",
                      "app_hosts": "admin_hosts"}}
    site.write_inventory(site_vars={"apps": apps}, groups={"admin_hosts": limited})
    started = time.monotonic()
    code, reports = site.deploy("-H", "all")
    print(f"deploy of two apps, one limited, to the 5 hosts: {time.monotonic() - started:.0f} s")
    assert code == 0, json.dumps(reports, indent=1)[-4000:]
    units = {h.name: site.run(h, "ls /etc/systemd/system | grep '^uwsgi-'") for h in site.apps}
    assert "uwsgi-admin" not in units[outside.name] and "uwsgi-site" in units[outside.name], units
    assert all("uwsgi-admin" in units[h.name] and "uwsgi-site" in units[h.name] for h in limited), units

    def admin_lines(host) -> int:
        """/admin requests the host's own nginx answered with a 2xx (a 502 of a stopped uWSGI, retried
        by the balancer on another host, is no answer of the host)."""
        log = site.log(host)
        lines = log.read_text().splitlines() if log.exists() else []
        return sum(line.split()[6].startswith("/admin/") and line.split()[8].startswith("2") for line in lines)
    before = {h.name: admin_lines(h) for h in site.apps}
    for _ in range(20):
        for path, app in (("/admin/healthz", "admin"), ("/healthz", "site")):
            status, _, body = http(site.balancer.address, path)
            assert status == 200 and json.loads(body)["app"] == app, (path, status, body)
    served = {h.name: admin_lines(h) - before[h.name] for h in site.apps}
    assert served[outside.name] == 0 and all(served[h.name] > 0 for h in limited), served

    # admin's uWSGI stopped on one of its hosts: its host refuses the balancers, /admin answers from the other
    stopped, other = limited
    site.run(stopped, "systemctl stop uwsgi-admin")
    try:
        before = {h.name: admin_lines(h) for h in limited}
        for _ in range(20):
            status, _, body = http(site.balancer.address, "/admin/healthz")
            assert status == 200 and json.loads(body)["app"] == "admin", (status, body)
        deadline = time.monotonic() + 5   # nginx logs a request once its answer is sent: the last may lag
        while admin_lines(other) < before[other.name] + 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (admin_lines(stopped), admin_lines(other)) == (before[stopped.name], before[other.name] + 20)
    finally:
        site.run(stopped, "systemctl start uwsgi-admin")
