"""What a user sees when the input is wrong or a host cannot be reached, through the real CLI.

Every mistake a user can make ends with exactly one line of cause (`error: ...`) and one line of
fix (`  fix: ...`), never a traceback (only with --debug), and the documented exit code
(provisioner/errors.py; docs/failures.md). No test here needs a lab host: unreachable hosts are
closed or silent ports on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

from provisioner import PROJECT_ROOT, TEMPLATES_DIR
from provisioner.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_UNREACHABLE, EXIT_USAGE
from provisioner.remote.ssh import CONNECT_TIMEOUT

pytestmark = pytest.mark.unit

CLI = [sys.executable, "-m", "provisioner"]


@pytest.fixture(autouse=True)
def own_known_hosts(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVISION_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    monkeypatch.delenv("PROVISION_INVENTORY", raising=False)


def provision(*args, cwd=None, prefix=CLI) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def inventory(tmp_path: Path, text: str, name: str = "inv.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def good_inventory(tmp_path: Path, extra_vars: str = "", port: int | None = None) -> Path:
    port = port or closed_port()
    return inventory(tmp_path, f"""
        all:
          hosts:
            web1: {{ansible_host: 127.0.0.1, ansible_port: {port}}}
            web2: {{ansible_host: 127.0.0.1, ansible_port: {port}}}
          children:
            web: {{hosts: {{web1: , web2: }}}}
          vars:
            app_name: model_api
        {textwrap.indent(textwrap.dedent(extra_vars), '    ').rstrip()}
        """)


def one_error(result: subprocess.CompletedProcess, code: int = EXIT_USAGE) -> str:
    """The run failed with `code` and said exactly `error: CAUSE` + `  fix: FIX`, no traceback; returns CAUSE."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("  fix: ") and len(lines[1]) > 8, lines
    assert result.stdout == ""
    return lines[0][len("error: "):]


# -- inventory and settings -----------------------------------------------------------------------

def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    inv = inventory(tmp_path, """
        all:
          hosts:
            web1:
              ansible_host: 127.0.0.1
             bad: [
        """)
    cause = one_error(provision("deploy", "-H", "web1", "-i", inv))
    assert cause.startswith(f"{inv}:5:6: expected <block end>"), cause


def test_a_misspelled_setting_suggests_the_right_name(tmp_path):
    inv = good_inventory(tmp_path, "uwsgi_proceses: 3\n")
    cause = one_error(provision("deploy", "-H", "web1", "-i", inv))
    assert "unknown setting 'uwsgi_proceses'" in cause and "did you mean 'uwsgi_processes'" in cause
    assert "inv.yml:" in cause, "says where it was written"


def test_a_wrong_type_names_the_setting_the_host_and_the_value(tmp_path):
    inv = good_inventory(tmp_path, "http_port: eighty\n")
    cause = one_error(provision("deploy", "-H", "web1", "-i", inv))
    assert "http_port" in cause and "web1" in cause and "'eighty'" in cause and "integer" in cause


def test_a_missing_app_source_names_the_setting(tmp_path):
    inv = good_inventory(tmp_path, "app_source: no/such/app\n")
    cause = one_error(provision("deploy", "-H", "web1", "-i", inv))
    assert "app_source" in cause and "not a directory" in cause


def test_a_missing_required_option_is_a_usage_error(tmp_path):
    result = provision("deploy", "-i", good_inventory(tmp_path))
    assert result.returncode == EXIT_USAGE and "Traceback" not in result.stderr
    assert "Missing option '--host'" in result.stderr


def test_no_command_for_run_is_a_usage_error(tmp_path):
    cause = one_error(provision("run", "-H", "web1", "-i", good_inventory(tmp_path)))
    assert cause == "no command given"


def test_an_unknown_host_or_group_lists_the_known_ones(tmp_path):
    inv = good_inventory(tmp_path)
    cause = one_error(provision("deploy", "-H", "nope", "-i", inv))
    assert cause == f"no host or group 'nope' in {inv}"
    fix = provision("status", "-H", "web1,nope", "-i", inv).stderr.splitlines()[1]
    assert "web1" in fix and "web2" in fix and "web" in fix and "all" in fix


def test_an_empty_inventory(tmp_path):
    inv = inventory(tmp_path, "")
    assert one_error(provision("deploy", "-H", "all", "-i", inv)) == f"inventory {inv} is empty"


def test_a_missing_inventory_file(tmp_path):
    cause = one_error(provision("deploy", "-H", "all", "-i", tmp_path / "nope.yml"))
    assert "not found" in cause


@pytest.mark.parametrize("setting, value, bad", [
    ("server_name", '"example.com; return 200"', "';'"),
    ("health_path", '"/healthz\\n  location / {}"', "'\\n'"),
    ("app_module", '"model_api.wsgi }"', "'}'"),
    ("static_url", '"/static/ { allow all; }"', "';'"),
])
def test_a_value_injecting_a_directive_is_refused(tmp_path, setting, value, bad):
    inv = good_inventory(tmp_path, f"{setting}: {value}\n")
    cause = one_error(provision("deploy", "-H", "all", "-i", inv))
    assert cause.startswith(f"setting {setting} of host web1 contains {bad}"), cause
    assert "would break out of the ini/nginx file" in cause


def test_debug_shows_the_traceback(tmp_path):
    inv = good_inventory(tmp_path, "uwsgi_proceses: 3\n")
    result = provision("--debug", "deploy", "-H", "web1", "-i", inv)
    assert result.returncode != 0 and "Traceback" in result.stderr and "UserError" in result.stderr


# -- templates: an error stops the run before anything is sent to a host --------------------------
# (a deploy of hosts all at once opens their connections while the stack loads: a host that hangs
# meanwhile gets the client's SSH version line, and nothing after it)

class Listener:
    """A loopback TCP port that counts connections and never answers (a host that hangs)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []

    def poll(self, seconds: float = 0.0) -> int:
        """Connections so far, waiting up to `seconds` for a (first) new one."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.accepted.append(self.sock.accept()[0])
                return len(self.accepted)
            except (socket.timeout, BlockingIOError):
                if time.monotonic() >= deadline:
                    return len(self.accepted)

    def received(self) -> list[bytes]:
        """What each connection so far sent, within a short wait."""
        got = []
        for c in self.accepted:
            c.settimeout(0.5)
            data = b""
            with contextlib.suppress(socket.timeout, OSError):
                while chunk := c.recv(65536):
                    data += chunk
            got.append(data)
        return got

    def close(self):
        for c in self.accepted:
            c.close()
        self.sock.close()


@pytest.fixture
def listener():
    ear = Listener()
    yield ear
    ear.close()


WITH_TEMPLATES = [sys.executable, "-c",
                  "import sys, pathlib, provisioner.stack as s; s.STACK.templates = pathlib.Path(sys.argv.pop(1)); "
                  "sys.argv[0] = 'provision'; from provisioner.cli import main; main()"]


@pytest.mark.parametrize("broken, words", [
    ("server_name {{ v.server_nam }};", "undefined variable 'v.server_nam'"),
    ("listen {{ v.http_port };", "unexpected '}'"),
], ids=["undefined", "syntax"])
def test_a_template_error_names_template_line_and_variable_and_runs_nothing_on_a_host(tmp_path, listener, broken, words):
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, templates)
    site = templates / "nginx" / "site.conf.j2"
    site.write_text(broken + "\n" + site.read_text())
    inv = good_inventory(tmp_path, port=listener.port)
    result = provision(templates, "deploy", "-H", "web1", "-i", inv, prefix=WITH_TEMPLATES)
    assert result.returncode == EXIT_FAILED and "Traceback" not in result.stdout + result.stderr
    error = next(line for line in result.stdout.splitlines() if "error:" in line)
    assert error.strip() == f"error: {site}:1: {words}" or f"{site}:1: {words}" in error, result.stdout
    listener.poll()
    assert all(re.fullmatch(rb"SSH-2\.0-[^\r\n]*\r\n", sent) for sent in listener.received()), \
        "nothing but an SSH client's version line reached the host"


# -- unreachable hosts ----------------------------------------------------------------------------

def test_unreachable_hosts_exit_3_in_every_command(tmp_path):
    inv = good_inventory(tmp_path)
    deploy = provision("deploy", "-H", "web", "-i", inv)
    assert deploy.returncode == EXIT_UNREACHABLE and "Traceback" not in deploy.stdout + deploy.stderr
    assert deploy.stdout.count("UNREACHABLE") == 2 and "Connection refused" in deploy.stdout
    assert "summary: 2 host(s): 2 unreachable" in deploy.stdout
    for args in (("status",), ("run", "--", "true"), ("logs",)):
        result = provision(args[0], "-H", "web1", "-i", inv, *args[1:])
        assert result.returncode == EXIT_UNREACHABLE, (args, result.stdout, result.stderr)
        assert "Connection refused" in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_json_report_of_an_unreachable_host(tmp_path):
    import json
    result = provision("deploy", "-H", "web1", "-i", good_inventory(tmp_path), "--json")
    [host] = json.loads(result.stdout)["hosts"]
    assert result.returncode == EXIT_UNREACHABLE and host["status"] == "unreachable"
    assert "Connection refused" in host["error"] and host["fix"]


# -- Ctrl-C ---------------------------------------------------------------------------------------

def test_ctrl_c_while_hosts_hang_stops_at_once_with_130(tmp_path, listener):
    inv = good_inventory(tmp_path, port=listener.port)
    proc = subprocess.Popen([*CLI, "deploy", "-H", "web", "-i", str(inv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert listener.poll(10) >= 1, "the deploy connects"
        time.sleep(0.3)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED, (out, err)
    # Behaviour, not speed: it ended before the banner timeout could have (3 s was missed at load 30).
    assert time.monotonic() - started < CONNECT_TIMEOUT - 1, "does not wait for the SSH banner timeout"
    assert "Traceback" not in err and err.splitlines()[-2].startswith("interrupted: "), err
    assert err.splitlines()[-1].startswith("  fix: run the same command again")


def test_after_ctrl_c_a_host_still_starting_prints_no_progress(monkeypatch, capsys):
    """A host's thread that reaches "connecting" after Ctrl-C (a slow machine: once at load 21) must
    not print below the interruption's last words."""
    import threading

    from provisioner import cli_common
    from provisioner.remote import session
    monkeypatch.setattr(session, "_interrupted", threading.Event())
    with cli_common._progress() as progress:
        progress("web1", "connecting")
        session.interrupt_all()
        progress("web2", "connecting")
    assert capsys.readouterr().err.splitlines() == ["web1: connecting"]


def test_the_documented_exit_codes():
    from provisioner import errors
    assert (errors.EXIT_OK, errors.EXIT_FAILED, errors.EXIT_USAGE, errors.EXIT_UNREACHABLE,
            errors.EXIT_CHANGES_PENDING, errors.EXIT_INTERRUPTED) == (0, 1, 2, 3, 4, 130)
    doc = (PROJECT_ROOT / "docs" / "failures.md").read_text()
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 130 |"):
        assert code in doc, code


# -- the habits of an Ansible user ----------------------------------------------------------------

AS_PROVISION = [sys.executable, "-c", "import sys; sys.argv[0] = 'provision'; from provisioner.cli import main; main()"]


def test_version():
    result = provision("--version")
    assert result.returncode == 0 and result.stdout.startswith("provision ") and result.stdout.strip()[-1].isdigit()


def test_shell_completion_is_offered(monkeypatch):
    # Name the shell: by default typer asks the parent processes, and a test run need not have a shell
    # among them (a CI job, a detached run), which makes `--show-completion` say "Shell  not supported".
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    result = provision("--show-completion", "bash", prefix=AS_PROVISION)
    assert result.returncode == 0 and "_PROVISION_COMPLETE" in result.stdout
    assert "--install-completion" in provision("--help").stdout


def test_with_json_an_error_is_a_json_object_on_stdout_too(tmp_path):
    import json
    result = provision("deploy", "-H", "nope", "-i", good_inventory(tmp_path), "--json")
    error = json.loads(result.stdout)
    assert result.returncode == EXIT_USAGE == error["exit_code"]
    assert error["error"].startswith("no host or group 'nope'") and error["fix"].startswith("choose from hosts")
    assert result.stderr.splitlines()[0] == f"error: {error['error']}"


def test_an_ini_inventory_patterns_extra_vars_and_list_hosts(tmp_path):
    inv = tmp_path / "hosts"
    inv.write_text("[web]\nweb[1:3] ansible_host=127.0.0.1\n[db]\ndb1\n[all:vars]\n"
                   f"app_source={PROJECT_ROOT / 'examples' / 'model_api'}\n")
    result = provision("deploy", "-H", "web:!web2", "-i", inv, "--list-hosts")
    assert (result.returncode, result.stdout) == (0, "  hosts (2):\n    web1\n    web3\n")
    listed = provision("status", "-H", "~(db|web3)", "-i", f"{inv}", "-i", "extra1,", "--list-hosts",
                       "-e", "app_source=" + str(PROJECT_ROOT / "examples" / "model_api"))
    assert listed.stdout.split() == ["hosts", "(2):", "db1", "web3"]   # group db matched first, as in Ansible
    cause = one_error(provision("deploy", "-H", "web1", "-i", inv, "-e", "uwsgi_processes=none"))
    assert "uwsgi_processes of host web1" in cause and "(set in extra vars, -e)" in cause


def test_a_wrong_vault_password_is_one_line_naming_the_file(tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    vault = Path(__file__).parent / "fixtures" / "vault"
    cause = one_error(provision("deploy", "-H", "all", "-i", vault / "whole" / "hosts.yml",
                                "--vault-password-file", wrong, cwd=vault))
    assert cause.startswith("whole/hosts.yml: wrong vault password")
    listed = provision("deploy", "-H", "all", "-i", "whole/hosts.yml", "--list-hosts",
                       "--vault-id", f"prod@{vault / 'prod.password'}", cwd=vault)
    assert listed.stdout.split() == ["hosts", "(1):", "secret1"]


def test_progress_is_a_plain_line_per_event_when_not_on_a_terminal(tmp_path):
    result = provision("deploy", "-H", "web", "-i", good_inventory(tmp_path))
    assert {"web1: connecting", "web2: connecting"} <= set(result.stderr.splitlines())


def test_run_keeps_the_quoting_of_its_arguments(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from provisioner import cli
    from provisioner.engine import fanout
    sent = []

    class Session:                       # a host that records the command line it is sent
        def run(self, command):
            sent.append(command)
            return types.SimpleNamespace(rc=0, out="", ok=True)

    monkeypatch.setattr(fanout, "in_sessions", lambda hosts, work, forks: [
        fanout.HostResult(h, value=work(h, Session())) for h in hosts])
    inv = good_inventory(tmp_path)
    for args, command in ((["sh", "-c", "a; b"], "sh -c 'a; b'"), (["echo", "it's"], "echo 'it'\"'\"'s'"),
                          (["uptime; df -h"], "uptime; df -h")):                    # one argument: a shell line
        result = CliRunner().invoke(cli.app, ["run", "-H", "web1", "-i", str(inv), "--", *args])
        assert result.exit_code == 0, result.output
        assert sent.pop() == command
