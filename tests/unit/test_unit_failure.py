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


# A lab run under load: worker 1 fails to import the app; worker 2, stopped by the master's SIGINT
# inside importlib's own `except KeyError`, logs that KeyError with the KeyboardInterrupt it led to.
INTERRUPTED_WHILE_HANDLING = f"""{ONE_WORKER}\
Traceback (most recent call last):
  File "<frozen importlib._bootstrap_external>", line 1501, in _path_importer_cache
KeyError: '/srv/model_api/current/venv/lib/python3.11/site-packages/itsdangerous'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "<frozen importlib._bootstrap_external>", line 1503, in _path_importer_cache
KeyboardInterrupt
OOPS ! failed loading app in worker 2 (pid 4148)
"""


# A CI run under load: the same, but the journal kept worker 2's KeyError without the interrupt it led to.
KEY_ERROR_ALONE = f"""{ONE_WORKER}\
Traceback (most recent call last):
  File "<frozen importlib._bootstrap_external>", line 1437, in _path_importer_cache
KeyError: '/srv/model_api/current/venv/lib/python3.11/site-packages/itsdangerous'
unable to load app 0 (mountpoint='') (callable not found or import error)
*** no app loaded. GAME OVER ***
worker 1 buried after 1 seconds
OOPS ! failed loading app in worker 2 (pid 4273)
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


def first_part(out: str, journal: str) -> str:
    """What the script prints before the journal's last 12 lines."""
    return out[:out.rindex("\n".join(journal.splitlines()[-12:]))]


def test_one_workers_traceback_is_printed_whole(tmp_path):
    out = first_part(report(tmp_path, ONE_WORKER), ONE_WORKER)
    assert out.startswith("Traceback (most recent call last):\n")
    assert f"    import no_such_module_xyz\n{IMPORT_ERROR}\n" in out
    assert out.count(IMPORT_ERROR) == 1


def test_interleaved_workers_still_name_the_exception(tmp_path):
    out = report(tmp_path, INTERLEAVED)
    assert IMPORT_ERROR in first_part(out, INTERLEAVED), out
    assert "KeyboardInterrupt" not in first_part(out, INTERLEAVED).replace(IMPORT_ERROR, ""), out


def test_an_exception_the_interrupt_arrived_in_is_no_cause(tmp_path):
    out = first_part(report(tmp_path, INTERRUPTED_WHILE_HANDLING), INTERRUPTED_WHILE_HANDLING)
    assert f"    import no_such_module_xyz\n{IMPORT_ERROR}\n" in out, out
    assert "KeyError" not in out, out


def test_a_chained_error_without_an_interrupt_is_still_the_cause(tmp_path):
    chained = INTERRUPTED_WHILE_HANDLING.replace("KeyboardInterrupt", "RuntimeError: no config")
    out = first_part(report(tmp_path, chained), chained)
    assert out.startswith("Traceback (most recent call last):\n") and "RuntimeError: no config" in out, out


def test_an_import_machinery_error_alone_is_no_cause_beside_the_apps(tmp_path):
    out = first_part(report(tmp_path, KEY_ERROR_ALONE), KEY_ERROR_ALONE)
    assert f"    import no_such_module_xyz\n{IMPORT_ERROR}\n" in out, out
    assert "KeyError" not in out, out
