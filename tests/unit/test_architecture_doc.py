"""docs/architecture.md's table of the default stack's roles is the stack: the same roles, in the
order they apply, and which of them a balancer skips (NotOnBalancers)."""

import re

import pytest

from provisioner import PROJECT_ROOT
from provisioner.stack import STACK, NotOnBalancers

pytestmark = pytest.mark.unit

DOC = (PROJECT_ROOT / "docs" / "architecture.md").read_text()


def test_the_role_table_lists_the_stacks_roles_in_order_and_what_a_balancer_skips():
    table = DOC.split("## The default stack's roles", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\w+) \| (yes|no) \| [^|]+ \|$", table, re.M)
    stack = [(role.role if isinstance(role, NotOnBalancers) else role, isinstance(role, NotOnBalancers))
             for role in STACK.roles]
    assert rows == [(module.__name__.rsplit(".", 1)[1], "no" if skipped else "yes") for module, skipped in stack]
