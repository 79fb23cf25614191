"""Ansible host patterns for --host: union, exclusion, intersection, globs, ~regex; typos are errors."""

import pytest

from provisioner.config.patterns import select, split_pattern
from provisioner.errors import UserError

pytestmark = pytest.mark.unit

HOSTS = ["web1", "web2", "web3", "db1", "db2", "lonely"]
GROUPS = {"all": HOSTS, "web": ["web1", "web2", "web3"], "db": ["db1", "db2"], "prod": ["web1", "web2", "db1"],
          "ungrouped": ["lonely"], "empty": []}


def pick(pattern: str) -> list[str]:
    return select(pattern, HOSTS, GROUPS, "inv.yml")


@pytest.mark.parametrize("pattern, hosts", [
    ("web", ["web1", "web2", "web3"]), ("all", HOSTS), ("db1", ["db1"]),
    ("web:db", ["web1", "web2", "web3", "db1", "db2"]), ("db,web1", ["db1", "db2", "web1"]),
    ("web:!web2", ["web1", "web3"]), ("web,!web2", ["web1", "web3"]), ("!prod", ["web3", "db2", "lonely"]),
    ("web:&prod", ["web1", "web2"]), ("all:&prod:!db", ["web1", "web2"]), ("&prod:web", ["web1", "web2"]),
    ("web*", ["web1", "web2", "web3"]), ("*1", ["web1", "db1"]), ("d?", ["db1", "db2"]),
    ("~web[13]", ["web1", "web3"]), ("~(db|lone)", ["db1", "db2", "lonely"]), ("~w.*:!web3", ["web1", "web2"]),
    (" web1 , lonely ", ["web1", "lonely"]),
])
def test_patterns_select_in_the_pattern_order_as_ansible(pattern, hosts):
    assert pick(pattern) == hosts


def test_a_colon_list_keeps_ranges_and_a_comma_list_keeps_colons():
    assert split_pattern("web[1:3]:db") == ["web[1:3]", "db"]
    assert split_pattern("~web\\d:x,db") == ["~web\\d:x", "db"]


@pytest.mark.parametrize("pattern, words", [
    ("wbe", "no host or group 'wbe' in inv.yml; did you mean 'web'?"),
    ("web:!web4", "no host or group 'web4'"),            # a typo in an exclusion must not deploy everything
    ("x*", "no host or group 'x*'"), ("~(", "is not a valid regular expression"),
    ("empty", "host pattern 'empty' selects no host of inv.yml (group 'empty' has no hosts)"),
    (" , ", "no host or group given"),
])
def test_pattern_errors(pattern, words):
    with pytest.raises(UserError) as caught:
        pick(pattern)
    assert words in caught.value.cause and caught.value.fix
