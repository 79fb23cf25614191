"""Lab host addresses: INSTANCE<N> gets .(10+N); N past 200 is counted after the instance's name, so
an instance whose name ends in a digit can have 50 hosts (cmp50's host 41 once found no address)."""

import pytest

from provisioner.labs.container.network import host_address

pytestmark = pytest.mark.unit

SUBNET = "10.199.5.0/24"


def test_hosts_are_numbered_after_the_instance_name():
    assert host_address(SUBNET, "lab", "lab3", set()) == "10.199.5.13"
    assert host_address(SUBNET, "cmp50", "cmp501", set()) == "10.199.5.11"
    taken: set[str] = set()
    for n in range(1, 51):
        taken.add(host_address(SUBNET, "cmp50", f"cmp50{n}", taken))
    assert taken == {f"10.199.5.{10 + n}" for n in range(1, 51)}


def test_other_names_take_their_trailing_number_or_a_spare_address():
    assert host_address(SUBNET, "t", "tapp2", set()) == "10.199.5.12"
    assert host_address(SUBNET, "t2", "t21", set()) == "10.199.5.31"  # as before: below 200, the name's digits
    assert host_address(SUBNET, "t", "tapp2", {"10.199.5.12"}) == "10.199.5.250"
    assert host_address(SUBNET, "me", "melb", set()) == "10.199.5.250"
