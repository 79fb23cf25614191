"""provisioner/remote/scripts/apt_install.sh run for real, with an apt-get that hangs or fails:
`apt-get update` has no overall timeout (a proxy that cut an InRelease short once left lab hosts
waiting in it until the test gave up after 10 minutes), so the script stops it and tries again."""

from __future__ import annotations

import subprocess

import pytest

from provisioner.remote.scripts import fragment
from provisioner.resources import Packages, SystemFacts

pytestmark = pytest.mark.unit

# update: the first call of a run hangs (HANG=1) or every call fails (FAIL=1); install: logged.
FAKE_APT_GET = """#!/bin/sh
for a in "$@"; do
    case "$a" in
    update)
        n=$(($(cat "$LOG_DIR/updates" 2>/dev/null || echo 0) + 1)); echo "$n" > "$LOG_DIR/updates"
        [ "$FAIL" = 1 ] && { echo "E: Failed to fetch InRelease" >&2; exit 100; }
        [ "$HANG" = 1 ] && [ "$n" = 1 ] && sleep 60
        exit 0 ;;
    install) echo "$@" >> "$LOG_DIR/installs"; exit 0 ;;
    esac
done
"""


def run_install(tmp_path, **env):
    """Run the script for `tree` with stale lists, UPDATE_TIMEOUT=1; returns the finished process."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(FAKE_APT_GET)
    (bin_dir / "apt-get").chmod(0o755)
    script = fragment("apt_install.sh", PACKAGES="tree", UPDATE=1, LOCK_TIMEOUT=0, UPDATE_TIMEOUT=1,
                      UPDATE_ATTEMPTS=3, RUN_DIR=tmp_path, APT_STAMP=tmp_path / "stamp")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG_DIR": str(tmp_path), **env}
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=40)


def test_a_hanging_update_is_stopped_and_tried_again(tmp_path):
    done = run_install(tmp_path, HANG="1")
    assert done.returncode == 0, done.stderr
    assert "apt-get update took over 1 s, attempt 1 of 3: trying again" in done.stderr
    assert (tmp_path / "updates").read_text() == "2\n"
    assert "install --no-install-recommends tree" in (tmp_path / "installs").read_text()
    assert (tmp_path / "stamp").exists() and (tmp_path / "apt-updated").exists()


def test_an_update_that_keeps_failing_gives_up_after_three_attempts_and_installs_nothing(tmp_path):
    done = run_install(tmp_path, FAIL="1")
    assert done.returncode == 1
    assert "apt-get update failed (exit 100), attempt 2 of 3: trying again" in done.stderr
    assert "apt-get update failed (exit 100), attempt 3 of 3: giving up" in done.stderr
    assert (tmp_path / "updates").read_text() == "3\n"
    assert not (tmp_path / "installs").exists() and not (tmp_path / "stamp").exists()


def test_packages_pass_the_update_timeout_to_the_script():
    packages = Packages(("nginx",), lock_timeout=30, update_timeout=45)
    decision = packages.decide({}, SystemFacts(now=1000, apt_lists_age=None))
    assert "LOCK_TIMEOUT=30\nUPDATE_TIMEOUT=45\nUPDATE_ATTEMPTS=3\n" in decision.script
