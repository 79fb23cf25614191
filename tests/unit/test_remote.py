"""The remote side: every shell script passes shellcheck and `sh -n`; the protocol splits what the
scripts mark; one-liners are quoted word by word."""

import shutil
import subprocess
from pathlib import Path

import pytest

from provisioner import PROJECT_ROOT
from provisioner.remote import protocol, scripts
from provisioner.remote.quoting import Raw, cmd

pytestmark = pytest.mark.unit

SHELL_SCRIPTS = sorted((PROJECT_ROOT / "provisioner").rglob("*.sh")) + sorted((PROJECT_ROOT / "roles").rglob("*.sh"))


def test_the_remote_scripts_are_found():
    assert {"probe.sh", "apply.sh", "handler.sh", "verify.sh", "session.sh"} <= {p.name for p in SHELL_SCRIPTS}


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck missing: apt-get install shellcheck")
@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(path: Path):
    result = subprocess.run(["shellcheck", "--shell=sh", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_sh_syntax(path: Path):
    result = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_script_marks_sections_and_the_splitter_cuts_there():
    body = scripts.script("verify.sh", {"health": "echo 500 down; false", "explain": "echo the log line"})
    result = subprocess.run(["sh", "-c", body], capture_output=True, text=True)
    assert result.returncode == protocol.Exit.FAILED
    sections = protocol.split(result.stdout)
    assert [(s.kind, s.text) for s in sections] == [("", "500 down"), ("explain", "the log line")]


def test_parameters_arrive_quoted():
    body = scripts.fragment("site_failure.sh", ERROR_LOG="/var/log/it's here.log", UNIT="app; rm -rf /")
    assert "ERROR_LOG='/var/log/it'\"'\"'s here.log'\nUNIT='app; rm -rf /'\n" in body


def test_one_liners_quote_every_word_but_shell_syntax():
    assert cmd("chmod", "0640", "/etc/a b") == "chmod 0640 '/etc/a b'"
    assert cmd("getent", "passwd", "x", Raw("|"), "cut", "-d:", "-f3") == "getent passwd x | cut -d: -f3"
