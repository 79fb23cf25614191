"""Rolling releases: the batches of --serial, the roll's report, and the balancer's route-around
script (rendered for a real inventory, read by `sh -n` and shellcheck)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from provisioner.engine.rolling import Roll, batches
from provisioner.inventory import load_inventory
from provisioner.stack import STACK

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


def test_every_balancer_fronts_every_app_host_and_deploys_last(site):
    a3 = site.hosts["a3"]
    assert [h.name for h in STACK.fronts(a3, list(site.hosts.values()))] == ["lb1", "lb2"]
    assert [STACK.is_front(h) for h in site.select("all")] == [True, True] + [False] * 5
    assert STACK.waves(site.select("all"))[-1] == site.select("lb")


def test_a_stopped_roll_says_which_host_holds_which_release():
    roll = Roll([["a1"], ["a2"], ["a3"]], released=[], rolled_back=["a1"], untouched=["a2", "a3", "lb1"],
                stopped_at=1)
    assert roll.lines() == ["batch 1: a1", "batch 2: a2", "batch 3: a3",
                            "the roll stopped at batch 1: new release on no host; previous release (left out of "
                            "the balancers) on a1; not deployed: a2, a3, lb1"]
    assert roll.as_dict()["stopped_at_batch"] == 1


def test_route_around_marks_the_hosts_down_and_is_valid_shell(site, tmp_path):
    script = STACK.route_around(site.hosts["lb1"].vars, frozenset({"a2", "a4"}))
    assert "server 10.0.0.12:80 max_fails=1 fail_timeout=10s down;  # a2" in script
    assert "server 10.0.0.13:80 max_fails=1 fail_timeout=10s;  # a3" in script
    assert "UPSTREAM_FILE=/etc/nginx/conf.d/provision-model_api-upstream.conf" in script
    (tmp_path / "route.sh").write_text(script)
    assert subprocess.run(["sh", "-n", str(tmp_path / "route.sh")]).returncode == 0
    if shutil.which("shellcheck"):
        checked = subprocess.run(["shellcheck", "-s", "sh", str(tmp_path / "route.sh")], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout


def test_routing_back_gives_the_file_a_deploy_writes(site):
    """After a roll the upstream file is what the balancer's deploy renders: the next deploy is a no-op."""
    v = site.hosts["lb1"].vars
    deployed = next(r for r in STACK.declare(v)[0] if r.label().endswith("-upstream.conf"))
    assert f"UPSTREAM_TEXT={_quoted(deployed.content)}" in STACK.route_around(v, frozenset())


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
