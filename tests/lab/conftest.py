"""Fixtures for tests against real container hosts (systemd-nspawn; see provisioner/labs/container).

    lab_base                  session: rootfs built/cached + apt proxy running (skips if not root)
    lab_hosts(n=1, **kw)      function: n FRESH hosts in the test-only lab instance, removed at teardown
                              kw: instance=..., names=[...], release="bookworm" (default)|"trixie"
    write_inventory(hosts, path, user="deploy", host_vars=None, group_vars=None) -> Path

Tests use their own lab instances, never the user's `lab`: "t" for lab_hosts and "tz" as a
scratch instance that tests may bring up and down whole (lab_scratch_instance). A pytest session
claims them with a lock; a second concurrent session (or xdist worker) gets "t2"/"tz2", etc.
"""

from __future__ import annotations

import fcntl
import os
import shutil

import pytest

from provisioner.labs import container as lab
from provisioner.labs.container import LabHost, write_inventory  # noqa: F401  (re-exported for tests)
from provisioner.labs.container.state import STATE_ROOT

_claimed: dict = {}


def _claim() -> tuple[str, str]:
    """Lock a (test, scratch) instance pair for this process; the lock dies with the process."""
    if not _claimed:
        STATE_ROOT.mkdir(parents=True, exist_ok=True)
        for k in range(1, 100):
            sfx = "" if k == 1 else str(k)
            fd = os.open(STATE_ROOT / f".pytest-t{sfx}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            _claimed.update(names=(f"t{sfx}", f"tz{sfx}"), fd=fd)
            break
        else:
            raise RuntimeError("no free test lab instance (t..t99 all in use)")
    return _claimed["names"]


def _lab_unavailable() -> str | None:
    if not os.uname().sysname == "Linux":
        return "the container lab needs Linux"
    if os.geteuid() != 0:
        return "the container lab needs root"
    missing = [t for t in ("systemd-nspawn", "mmdebstrap", "nginx", "ip") if not shutil.which(t)
               and not os.path.exists(f"/usr/sbin/{t}")]
    if missing:
        return f"missing tools: {', '.join(missing)}"
    return None


@pytest.fixture(scope="session")
def lab_base():
    """Rootfs + apt proxy for the session; returns the test instance name. The session's
    instances are cleaned first (an interrupted earlier run) and torn down at the end."""
    why = _lab_unavailable()
    if why:
        pytest.skip(why)
    names = _claim()
    for inst in names:
        lab.down(inst)
    lab.ensure_base()
    yield names[0]
    for inst in names:
        lab.down(inst)


@pytest.fixture(scope="session")
def lab_instance(lab_base) -> str:
    """The instance lab_hosts makes hosts in."""
    return lab_base


@pytest.fixture(scope="session")
def lab_scratch_instance(lab_base) -> str:
    """An instance of this session's own that a test may `lab.up()`/`lab.down()` whole."""
    return _claim()[1]


@pytest.fixture
def lab_hosts(lab_base):
    """Factory: lab_hosts(n=1, instance=..., names=None, release=None) -> list[LabHost], fresh hosts
    of that Debian release (default bookworm) booted in parallel (its rootfs is built on first use);
    every host made here is removed at teardown, also when the test fails."""
    made: list[tuple[str, str]] = []

    def factory(n: int = 1, instance: str | None = None, names: list[str] | None = None,
                release: str | None = None) -> list[LabHost]:
        inst = instance or lab_base
        if names is None:
            used = {name for i, name in made if i == inst}
            names, k = [], 1
            while len(names) < n:
                if f"{inst}{k}" not in used:
                    names.append(f"{inst}{k}")
                k += 1
        made.extend((inst, name) for name in names)
        lab.remove_hosts(names, inst)  # fresh: never reuse a host an earlier test changed
        return lab.add_hosts(names, inst, release)

    yield factory
    errors = []
    for inst in dict.fromkeys(i for i, _ in made):
        try:
            lab.remove_hosts([n for i, n in made if i == inst], inst)
            if inst != lab_base:
                lab.down(inst)
        except Exception as e:  # keep removing the others
            errors.append(e)
    if errors:
        raise errors[0]


def pytest_sessionfinish(session, exitstatus):
    """Last safety net (also after Ctrl-C): no test instance outlives the session."""
    if _claimed and _lab_unavailable() is None:
        for inst in _claimed["names"]:
            if lab.state.load_state(inst) is not None or lab.network.leftover_netns(inst):
                lab.down(inst)
