"""`provision --help` and usage errors load only what they need: no engine, no SSH, no templates.

What is structurally true, checked in a fresh interpreter's sys.modules (timing lives in bench/ and
docs/performance.md, never in a test).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

HEAVY = ("paramiko", "fabric", "jinja2", "yaml", "rich", "provisioner.engine", "provisioner.stack",
         "provisioner.inventory", "provisioner.remote.session", "provisioner.labs")


def loaded_after(code: str) -> set[str]:
    """The heavy modules loaded once `code` ran in a new interpreter, reported however the process ends."""
    probe = f"""
import json, sys
sys.argv = ["provision", *{code!r}.split()] if {code!r} != "import" else sys.argv
import atexit

@atexit.register  # main() ends the process itself (provisioner/process_exit.py), after the atexit handlers
def report():
    heavy = {HEAVY!r}
    print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))),
          file=sys.__stderr__)

import provisioner.cli as cli
if {code!r} != "import":
    cli.main()
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    return set(json.loads(result.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("command", ["import", "--help", "deploy --help", "deploy", "deploy -H x --forks 0", "nope"])
def test_parsing_the_command_line_imports_nothing_heavy(command):
    assert loaded_after(command) == set()


def test_a_log_name_is_checked_against_the_stack_only_when_logs_runs():
    # the one usage error that needs the stack: its log names are the stack's own
    assert "provisioner.stack" in loaded_after("logs -H x -s nope")


def test_a_lab_command_loads_its_own_sub_app_only():
    loaded = loaded_after("lab --help")
    assert "provisioner.labs.container.cli" in loaded and "provisioner.labs.vm.cli" not in loaded


def test_shell_completion_reaches_into_a_sub_app_loaded_on_demand():
    env = {**os.environ, "_PROVISION_COMPLETE": "complete_bash", "COMP_WORDS": "provision lab ", "COMP_CWORD": "2"}
    result = subprocess.run([sys.executable, "-c", "import sys; sys.argv[0] = 'provision'; "
                             "from provisioner.cli import main; main()"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.stdout.split() == ["up", "status", "down"]
