"""Rolling releases: the batches of --serial, the order of a roll's steps, its report, and how a host
leaves the traffic: the app host's own drain script, or its balancers' route-around script without a
firewall (each rendered for a real inventory, read by `sh -n` and shellcheck)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from provisioner.engine import rolling
from provisioner.engine.deploy import HostReport
from provisioner.engine.rolling import Roll, batches
from provisioner.engine.status import HostStatus
from provisioner.inventory import load_inventory
from provisioner.resources import SystemFacts
from provisioner.stack import STACK
from provisioner.stack.firewall import InTheTraffic

pytestmark = pytest.mark.unit

SITE = """
all:
  vars: {ansible_user: root}
  children:
    lb: {hosts: {lb1: {ansible_host: 10.0.0.1}, lb2: {ansible_host: 10.0.0.2}}}
    app: {hosts: {a1: {ansible_host: 10.0.0.11}, a2: {ansible_host: 10.0.0.12}, a3: {ansible_host: 10.0.0.13},
                  a4: {ansible_host: 10.0.0.14}, a5: {ansible_host: 10.0.0.15}}}
"""


@pytest.fixture
def site(tmp_path):
    path = tmp_path / "site.yml"
    path.write_text(textwrap.dedent(SITE))
    return load_inventory(path)


def names(plan) -> list[list[str]]:
    return [[h.name for h in batch] for batch in plan]


@pytest.mark.parametrize("serial, wanted", [
    ("1", [["a1"], ["a2"], ["a3"], ["a4"], ["a5"]]),
    ("2", [["a1", "a2"], ["a3", "a4"], ["a5"]]),
    ("30%", [["a1", "a2"], ["a3", "a4"], ["a5"]]),   # 30% of 5 = 1.5, rounded up
    ("10%", [["a1"], ["a2"], ["a3"], ["a4"], ["a5"]]),
    ("100%", [["a1", "a2", "a3", "a4", "a5"]]),
    ("", [["a1", "a2", "a3", "a4", "a5"]]),
])
def test_batches(site, serial, wanted):
    assert names(batches(site.select("app"), serial)) == wanted


def test_the_balancers_deploy_last(site):
    assert [STACK.is_front(h) for h in site.select("all")] == [True, True] + [False] * 5
    assert STACK.waves(site.select("all"))[-1] == site.select("lb")


def test_a_stopped_roll_says_which_host_holds_which_release():
    roll = Roll([["a1"], ["a2"], ["a3"]], released=[], rolled_back=["a1"], untouched=["a2", "a3", "lb1"],
                stopped_at=1)
    assert roll.lines() == ["batch 1: a1", "batch 2: a2", "batch 3: a3",
                            "the roll stopped at batch 1: new release on no host; previous release (left out of "
                            "the traffic) on a1; not deployed: a2, a3, lb1"]
    assert roll.as_dict()["stopped_at_batch"] == 1


def valid_shell(script: str, tmp_path: Path) -> None:
    (tmp_path / "script.sh").write_text(script)
    assert subprocess.run(["sh", "-n", str(tmp_path / "script.sh")]).returncode == 0
    if shutil.which("shellcheck"):
        checked = subprocess.run(["shellcheck", "-s", "bash", str(tmp_path / "script.sh")], capture_output=True,
                                 text=True)
        assert checked.returncode == 0, checked.stdout


def test_an_app_host_drains_itself_with_no_balancer_reload(site, tmp_path):
    """Out: the drain table resets each balancer's new connections to the app's port; back in: waits
    for the balancers' fail_timeout (10s) at most, and a little more."""
    everyone = list(site.hosts.values())
    pairs = STACK.drain([site.hosts["a2"]], everyone, frozenset({"a2"}))
    assert [host.name for host, _ in pairs] == ["a2"]
    script = pairs[0][1]
    for balancer in ("10.0.0.1", "10.0.0.2"):
        assert (f"ip saddr {balancer} tcp dport {{ 80 }} tcp flags & (syn | ack) == syn counter reject with tcp "
                "reset") in script
    assert "OUT=1\nTABLE=provision_model_api_drain\n" in script
    assert "SS_PORTS='( sport = :80 )'\nBALANCERS='10.0.0.1 10.0.0.2'" in script
    assert "REJOIN_SECONDS=15" in script
    valid_shell(script, tmp_path)
    back = STACK.drain([site.hosts["a2"]], everyone, frozenset())
    assert [host.name for host, _ in back] == ["a2"] and "OUT=0\n" in back[0][1]


def test_without_a_firewall_the_balancers_route_around_with_a_reload(tmp_path):
    """Put back a1 while a2 (failed) stays out: every balancer's upstream has a2 down, a1 up."""
    path = tmp_path / "site.yml"
    path.write_text(textwrap.dedent(SITE).replace("{ansible_user: root}", "{ansible_user: root, firewall: false}"))
    inventory = load_inventory(path)
    everyone = list(inventory.hosts.values())
    pairs = STACK.drain([inventory.hosts["a1"]], everyone, frozenset({"a2"}))
    assert [host.name for host, _ in pairs] == ["lb1", "lb2"]
    script = pairs[0][1]
    assert "server 10.0.0.12:80 max_fails=1 fail_timeout=10s down;  # a2" in script
    assert "server 10.0.0.11:80 max_fails=1 fail_timeout=10s;  # a1" in script
    assert "UPSTREAM_FILE=/etc/nginx/conf.d/provision-model_api-upstream.conf" in script
    valid_shell(script, tmp_path)
    back = STACK.drain([inventory.hosts["a2"]], everyone, frozenset())[0][1]
    deployed = next(r for r in STACK.declare(inventory.hosts["lb1"].vars)[0] if r.label().endswith("-upstream.conf"))
    assert f"UPSTREAM_TEXT={_quoted(deployed.content)}" in back, "routed back, the next deploy is a no-op"


def test_a_drained_host_comes_back_with_a_deploy_but_not_within_a_roll(site):
    v = site.hosts["a1"].vars
    in_traffic = next(r for r in STACK.declare(v)[0] if isinstance(r, InTheTraffic))
    assert in_traffic.label() == "nftables table inet provision_model_api_drain"
    assert not in_traffic.decide("", SystemFacts()).changed
    leftover = in_traffic.decide("out", SystemFacts())
    assert leftover.changed and leftover.script == "nft delete table inet provision_model_api_drain"
    assert not InTheTraffic(in_traffic.table, rolling=True).decide("out", SystemFacts()).changed
    assert not [r for r in STACK.declare(site.hosts["lb1"].vars)[0] if isinstance(r, InTheTraffic)]


class FakeStack:
    """Records the drains a roll asks for; every host is an app host but lb1."""

    def __init__(self):
        self.calls = []

    def is_front(self, host):
        return host.name == "lb1"

    def drain(self, hosts, everyone, out):
        self.calls.append(("drain", [h.name for h in hosts], sorted(out)))
        return []


def test_a_roll_drains_deploys_and_puts_back_batch_by_batch(site, monkeypatch):
    stack, failing = FakeStack(), {"a3"}

    def deploy(stack_, hosts, **kw):
        stack.calls.append(("deploy", [h.name for h in hosts], [h.vars.get("rolling") for h in hosts]))
        return [HostReport(h.name, HostStatus.FAILED if h.name in failing else HostStatus.CHANGED) for h in hosts]

    monkeypatch.setattr(rolling, "deploy", deploy)
    hosts = [site.hosts[name] for name in ("a1", "a2", "a3", "a4", "lb1")]
    reports, summary = rolling.roll(stack, hosts, list(site.hosts.values()), "2")
    assert stack.calls == [("drain", ["a1", "a2"], ["a1", "a2"]), ("deploy", ["a1", "a2"], [True, True]),
                           ("drain", ["a1", "a2"], []),
                           ("drain", ["a3", "a4"], ["a3", "a4"]), ("deploy", ["a3", "a4"], [True, True]),
                           ("drain", ["a4"], ["a3"])]
    assert (summary.released, summary.rolled_back, summary.untouched) == (["a1", "a2", "a4"], ["a3"], ["lb1"])
    assert [r.status for r in reports][-1] == HostStatus.PENDING


def _quoted(text: str) -> str:
    from provisioner.remote.quoting import assign
    return assign("X", text).split("=", 1)[1]


def test_a_wrong_serial_is_a_usage_error(tmp_path):
    inventory = tmp_path / "site.yml"
    inventory.write_text(textwrap.dedent(SITE))
    result = subprocess.run(["python3", "-m", "provisioner", "deploy", "-H", "app", "-i", str(inventory),
                             "--serial", "0"], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert result.returncode == 2, result.stderr
    assert "error: --serial '0' is not a number of hosts or a percentage" in result.stdout + result.stderr
