"""provisioner/remote/scripts/unit_failure.sh run for real against journals uWSGI wrote: with
lazy-apps every worker logs a traceback, and the lines of several workers interleave. The failure
report must still name the exception that stopped the app (a CI run once printed only the workers'
KeyboardInterrupts)."""

from __future__ import annotations

import subprocess

import pytest

from provisioner.engine.verify import unit_failure

pytestmark = pytest.mark.unit

IMPORT_ERROR = "ModuleNotFoundError: No module named 'no_such_module_xyz'"

ONE_WORKER = f"""\
*** Operational MODE: preforking+threaded ***
Traceback (most recent call last):
  File "/srv/model_api/current/wsgi.py", line 9, in <module>
    import no_such_module_xyz
{IMPORT_ERROR}
unable to load app 0 (mountpoint='') (callable not found or import error)
*** no app loaded. GAME OVER ***
"""

# Worker 2 starts its traceback, worker 3 (SIGINT from the master) starts and ends its own, then
# worker 2's last lines arrive.
INTERLEAVED = f"""\
*** Operational MODE: preforking+threaded ***
Traceback (most recent call last):
  File "/srv/model_api/current/wsgi.py", line 9, in <module>
Traceback (most recent call last):
  File "<frozen importlib._bootstrap>", line 1176, in _find_and_load
KeyboardInterrupt
    import no_such_module_xyz
{IMPORT_ERROR}
unable to load app 0 (mountpoint='') (callable not found or import error)
*** no app loaded. GAME OVER ***
{"worker 3 lines " * 3}
"""


def report(tmp_path, journal: str) -> str:
    """unit_failure.sh's output with a journalctl that prints JOURNAL."""
    (tmp_path / "journal").write_text(journal)
    fake = tmp_path / "bin" / "journalctl"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ncat {tmp_path / 'journal'}\n")
    fake.chmod(0o755)
    script = "SINCE='2026-01-01 00:00:00'\n" + unit_failure("uwsgi-model_api-standby.service")
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin"}
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, env=env, timeout=30).stdout


def first_part(out: str) -> str:
    """What the script prints before the journal's last 12 lines."""
    return out[:out.rindex("*** Operational MODE")] if "*** Operational MODE" in out else out


def test_one_workers_traceback_is_printed_whole(tmp_path):
    out = first_part(report(tmp_path, ONE_WORKER))
    assert out.startswith("Traceback (most recent call last):\n")
    assert f"    import no_such_module_xyz\n{IMPORT_ERROR}\n" in out
    assert out.count(IMPORT_ERROR) == 1


def test_interleaved_workers_still_name_the_exception(tmp_path):
    out = report(tmp_path, INTERLEAVED)
    assert IMPORT_ERROR in first_part(out), out
    assert "KeyboardInterrupt" not in first_part(out).replace(IMPORT_ERROR, ""), out
