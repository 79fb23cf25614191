"""provisioner/process_exit.py in real processes: the exit code, everything written (a pipe holds
it in Python's buffer until a flush), the atexit handlers, and the normal exit while a thread that
is not a daemon still works."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as a user's shell has it


def run(body: str) -> subprocess.CompletedProcess:
    code = "import atexit, sys, threading, time\nfrom provisioner.process_exit import exit_process\n" + body
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=BUFFERED)


def test_exit_code_buffered_output_and_atexit_handlers():
    result = run("atexit.register(lambda: print('atexit ran'))\n"
                 "print('x' * 100)\nsys.stderr.write('to stderr\\n')\nexit_process(3)\nprint('never')")
    assert result.returncode == 3
    assert result.stdout == "x" * 100 + "\natexit ran\n"
    assert result.stderr == "to stderr\n"


def test_a_working_thread_gets_the_normal_exit():
    result = run("t = threading.Thread(target=lambda: (time.sleep(0.5), print('thread finished')))\n"
                 "t.start()\nexit_process(5)")
    assert result.returncode == 5
    assert result.stdout == "thread finished\n"


def test_a_closed_pipe_is_no_error():
    """The reader is gone (`provision ... | head`) before the buffered output is flushed."""
    result = subprocess.run(f"{sys.executable} -c \"from provisioner.process_exit import exit_process\n"
                            "import time; print('y' * 100); time.sleep(0.5); exit_process(0)\" | head -c 0",
                            shell=True, capture_output=True, text=True, timeout=60, env=BUFFERED)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
