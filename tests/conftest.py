"""Shared test setup: every test belongs to one tier (unit, lab, vm); the run ends with each tier's time."""

from collections import defaultdict

import pytest

TIERS = ("unit", "lab", "vm")
_spent: dict[str, float] = defaultdict(float)
_count: dict[str, int] = defaultdict(int)


def _tier(item) -> str:
    return next((t for t in TIERS if item.get_closest_marker(t)), "untiered")


def pytest_collection_modifyitems(items):
    untiered = [i.nodeid for i in items if _tier(i) == "untiered"]
    if untiered:
        raise pytest.UsageError(f"tests without a tier marker (unit, lab or vm): {untiered[:5]}")


def pytest_runtest_logreport(report):
    """Each test's setup, call and teardown time, by tier. Also under xdist: the reports reach the
    controlling process, so the sum is over every worker (test time, not wall time)."""
    tier = next((t for t in TIERS if t in report.keywords), "untiered")
    _spent[tier] += report.duration
    _count[tier] += report.when == "setup"


def pytest_terminal_summary(terminalreporter):
    terminalreporter.section("time per tier (summed over parallel workers)")
    for tier in TIERS:
        if _count[tier]:
            terminalreporter.write_line(f"{tier:<5} {_count[tier]:>3} tests  {_spent[tier]:7.1f} s")
