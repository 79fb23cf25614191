"""Shared test setup: every test belongs to one tier (unit, lab, vm); the run ends with each tier's time."""

import time
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    started = time.monotonic()
    yield
    _spent[_tier(item)] += time.monotonic() - started
    _count[_tier(item)] += 1


def pytest_terminal_summary(terminalreporter):
    terminalreporter.section("time per tier")
    for tier in TIERS:
        if _count[tier]:
            terminalreporter.write_line(f"{tier:<5} {_count[tier]:>3} tests  {_spent[tier]:7.1f} s")
