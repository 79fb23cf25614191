"""Fixtures for tests against real container hosts (systemd-nspawn; see provisioner/lab).

    lab_base                  session: rootfs built/cached + apt proxy running (skips if not root)
    lab_hosts(n=1, **kw)      function: n FRESH hosts in the test-only lab instance, removed at teardown
                              kw: instance=..., names=[...]
    write_inventory(hosts, path, user="deploy", host_vars=None, group_vars=None) -> Path

Tests use their own lab instance ("t", or "t<worker>" under xdist), never the user's `lab`.
"""

from __future__ import annotations

import os
import shutil

import pytest

from provisioner import lab
from provisioner.lab import LabHost, write_inventory  # noqa: F401  (re-exported for tests)

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
TEST_INSTANCE = "t" + "".join(c for c in _worker if c.isalnum())[:7]


def _lab_unavailable() -> str | None:
    if not os.uname().sysname == "Linux":
        return "the container lab needs Linux"
    if os.geteuid() != 0:
        return "the container lab needs root"
    missing = [t for t in ("systemd-nspawn", "mmdebstrap", "apt-cacher-ng", "ip") if not shutil.which(t)
               and not os.path.exists(f"/usr/sbin/{t}")]
    if missing:
        return f"missing tools: {', '.join(missing)}"
    return None


@pytest.fixture(scope="session")
def lab_instance() -> str:
    return TEST_INSTANCE


@pytest.fixture(scope="session")
def lab_base(lab_instance):
    """Rootfs + apt proxy for the session; tears the test instance down at the end (safety net)."""
    why = _lab_unavailable()
    if why:
        pytest.skip(why)
    lab.down(lab_instance)  # leftovers of an interrupted earlier run
    lab.ensure_base()
    yield lab_instance
    lab.down(lab_instance)


@pytest.fixture
def lab_hosts(lab_base):
    """Factory: lab_hosts(n=1, instance=..., names=None) -> list[LabHost], fresh hosts booted in
    parallel; every host made here is removed at teardown, also when the test fails."""
    made: list[tuple[str, str]] = []

    def factory(n: int = 1, instance: str | None = None, names: list[str] | None = None) -> list[LabHost]:
        inst = instance or lab_base
        if names is None:
            used = {name for i, name in made if i == inst}
            names, k = [], 1
            while len(names) < n:
                if f"{inst}{k}" not in used:
                    names.append(f"{inst}{k}")
                k += 1
        for name in names:
            made.append((inst, name))
            lab.remove_host(name, inst)  # fresh: never reuse a host an earlier test changed
        return lab.add_hosts(names, inst)

    yield factory
    errors = []
    for inst, name in reversed(made):
        try:
            lab.remove_host(name, inst)
        except Exception as e:  # keep removing the others
            errors.append(e)
    for inst in {i for i, _ in made} - {lab_base}:
        lab.down(inst)
    if errors:
        raise errors[0]


def pytest_sessionfinish(session, exitstatus):
    """Last safety net (also after Ctrl-C): no test instance outlives the session."""
    if _lab_unavailable() is None and lab.common.load_state(TEST_INSTANCE) is not None:
        lab.down(TEST_INSTANCE)
