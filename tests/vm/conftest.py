"""Fixtures for the VM tier: real Vagrant VMs (libvirt, qemu) in the lab's network namespace.

    vm_lab     session: `provision vm up` (box built/added if needed, fresh VMs vm1 vm2), and ALWAYS
               `provision vm down` at the end (test failure, Ctrl-C, SIGTERM too). Yields
               {"inventory": Path, "hosts": {name: inventory vars}, "timings": {...}}.
    in_netns   fixture: in_netns(argv, timeout=600, **kw) -> CompletedProcess, run inside the namespace
    provision  fixture: provision(*args) -> argv of the `provision` CLI (entry point or python -c)

The tier needs root and the apt packages in provisioner.labs.vm.APT_PACKAGES: without root it is
skipped; with missing packages it is skipped with the apt-get line (failed instead when CI is set).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from provisioner.labs import vm


def _unavailable() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the VM lab needs Linux"
    if os.geteuid() != 0:
        return "the VM lab needs root"
    if not shutil.which("dpkg-query"):
        return "the VM lab needs a Debian/Ubuntu controller"
    missing = vm.missing_packages()
    if missing:
        return f"missing apt packages: {' '.join(missing)} (apt-get install -y {' '.join(missing)})"
    return None


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


_setup_error: list[BaseException] = []


@pytest.fixture(scope="session")
def vm_lab():
    if _setup_error:  # pytest retries a failed session fixture for every test: fail fast instead
        pytest.fail(f"the VM lab did not come up: {_setup_error[0]}")
    why = _unavailable()
    if why:
        if os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail(why)
        pytest.skip(why)
    # SIGTERM (a CI time limit, a killed runner) must still reach the `down` below.
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        vm.down()  # fresh VMs: never reuse what an earlier (maybe crashed) run left
        try:
            lab = vm.up(quiet=True)
        except Exception as e:
            _setup_error.append(e)
            raise
        yield lab
    finally:
        try:
            vm.down()
        finally:
            signal.signal(signal.SIGTERM, old)


@pytest.fixture(scope="session")
def in_netns():
    def run(argv: list, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(vm.netns_prefix() + [str(a) for a in argv], timeout=timeout, **kw)
    return run


@pytest.fixture(scope="session")
def provision():
    """argv of the `provision` command of the checkout under test (an installed `provision` on PATH
    may be another checkout's: a deploy and its re-deploy would then run different code)."""
    def argv(*args) -> list[str]:
        return [sys.executable, "-m", "provisioner"] + [str(a) for a in args]
    return argv
