"""Broken inputs a new user hands provision, through the real CLI: each ends in one line of cause, one line
of fix and exit 2, with no traceback and before any connection (the hosts here are a closed loopback
port: reaching one would exit 3)."""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

CLI = [sys.executable, "-m", "provisioner"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROVISION_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    for name in ("PROVISION_INVENTORY", "PROVISION_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def provision(*args, timeout: int = 60) -> subprocess.CompletedProcess:
    """The CLI without a terminal (its own session, stdin from /dev/null), as in CI or a pipe."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, start_new_session=True)


def refused(*args) -> str:
    """The cause line of a run that must end in a user error before any connection."""
    result = provision(*args)
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("  fix: ") and len(lines) == 2, result.stderr
    return lines[0]


@pytest.fixture
def hosts(tmp_path) -> Path:
    path = tmp_path / "hosts"
    path.write_text(f"[web]\nweb1 ansible_host=127.0.0.1 ansible_port={closed_port()}\n[empty]\n")
    return path


# --- files that are not inventories ------------------------------------------------------------------


def test_a_fifo_as_inventory_is_refused_before_it_is_opened(tmp_path):
    fifo = tmp_path / "inventory.fifo"
    os.mkfifo(fifo)
    assert "is not a regular file (a pipe, socket or device)" in refused("deploy", "-H", "all", "-i", fifo)
    (tmp_path / "pw").write_text("")
    os.mkfifo(tmp_path / "vault.fifo")
    assert "vault password file" in refused("deploy", "-H", "all", "-i", tmp_path / "pw",
                                            "--vault-password-file", tmp_path / "vault.fifo")


@pytest.mark.parametrize("name, text, line", [
    ("colour.yml", "all:\n  hosts:\n    web1:\n      server_name: \x1b[32mapi.example.com\x1b[0m\n", 4),
    ("nul", "[web]\nweb1\x00 ansible_host=127.0.0.1\n", 2),
])
def test_control_characters_name_their_line(tmp_path, name, text, line):
    (tmp_path / name).write_text(text)
    assert f"{name}:{line}: a control character" in refused("deploy", "-H", "all", "-i", tmp_path / name)


@pytest.mark.parametrize("name, text", [
    ("huge.yml", "all:\n  hosts:\n    web1:\n      uwsgi_processes: " + "9" * 5000 + "\n"),
    ("huge", "[web]\nweb1 uwsgi_processes=" + "9" * 5000 + "\n"),
])
def test_a_5000_digit_integer_is_a_user_error(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    cause = refused("deploy", "-H", "all", "-i", tmp_path / name)
    assert "digits" in cause and ("uwsgi_processes" in cause or "huge.yml:4: a number of more than 4300" in cause)


@pytest.mark.parametrize("setting, value, most", [
    ("uwsgi_processes", 1_000_000_000, 4096), ("uwsgi_threads", 5000, 1024), ("keep_releases", 1000, 100),
    ("uwsgi_harakiri", 10**9, 86400), ("nginx_worker_connections", 10**8, 1048576),
])
def test_settings_have_upper_bounds_no_real_host_exceeds(hosts, setting, value, most):
    cause = refused("deploy", "-H", "web1", "-i", hosts, "-e", f"{setting}={value}")
    assert f"setting {setting} of host web1 must be an integer >= " in cause and f"and at most {most}, got" in cause


# --- the command line --------------------------------------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["--check", "--", "rm", "-rf", "/tmp/x"], "No such option: --check"),
    (["--json", "--", "uptime"], "No such option: --json"),
    (["--forkz", "3", "--", "uptime"], "No such option: --forkz"),
    (["ls", "-la"], "No such option: -l"),
])
def test_run_takes_its_own_options_before_dashdash_and_the_command_after(hosts, args, words):
    result = provision("run", "-H", "web1", "-i", hosts, *args)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def test_run_sends_everything_after_dashdash(hosts):
    result = provision("run", "-H", "web1", "-i", hosts, "--", "grep", "--check", "x")
    assert result.returncode == 3 and "unreachable" in result.stdout   # got as far as connecting


@pytest.mark.parametrize("command", ["deploy", "status", "logs", "run"])
def test_a_pattern_that_selects_no_host_is_an_error_for_every_command(hosts, command):
    extra = ["--", "uptime"] if command == "run" else []
    assert "selects no host" in refused(command, "-H", "empty", "-i", hosts, *extra)


def test_an_unclosed_bracket_in_a_pattern_is_an_error(hosts):
    assert "has a '[' without its ']'" in refused("deploy", "-H", "web1[", "-i", hosts)


@pytest.mark.parametrize("option", ["--ask-vault-pass", "-K"])
def test_a_password_prompt_without_a_terminal_is_an_error(hosts, option):
    assert "there is no terminal to ask on" in refused("deploy", "-H", "web1", "-i", hosts, option)


def test_a_relative_vault_password_script_is_this_directory_s_not_one_on_path(tmp_path, hosts):
    script = tmp_path / "vault-pass.sh"
    script.write_text("#!/bin/sh\necho fixture-vault-password\n")
    script.chmod(0o755)
    fixtures = Path(__file__).parent / "fixtures" / "vault"
    result = provision("deploy", "-H", "web1", "-i", fixtures / "hosts.yml", "--vault-password-file",
                       "./vault-pass.sh", "--list-hosts")
    assert (result.returncode, result.stdout.split()) == (0, ["hosts", "(1):", "web1"]), result.stderr


# --- values checked on the controller, before connecting -----------------------------------------------


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_files_are_checked_before_connecting(tmp_path, hosts):
    cert, key = _certificate(tmp_path, "site")
    _, other_key = _certificate(tmp_path, "other")
    der = tmp_path / "site.der"
    der.write_bytes(b"\x30\x82\x01\x0a" + b"\x00" * 16)
    tls = ["-e", "tls=files server_name=api.example.com"]
    assert "is not a PEM certificate chain" in refused("deploy", "-H", "web1", "-i", hosts, *tls,
                                                       "-e", f"tls_certificate={der} tls_key={key}")
    assert "is not the key of tls_certificate" in refused("deploy", "-H", "web1", "-i", hosts, *tls,
                                                          "-e", f"tls_certificate={cert} tls_key={other_key}")
    assert "tls_key of host web1 is not a PEM private key" in refused(
        "deploy", "-H", "web1", "-i", hosts, *tls, "-e", f"tls_certificate={cert} tls_key={cert}")


@pytest.mark.parametrize("address", ["10.0.0.256", "fe80::1::2", "app 1", "-bad-"])
def test_a_private_address_that_is_not_an_address_is_refused(hosts, address):
    assert "setting private_address of host web1 must be an IP address or a host name" in refused(
        "deploy", "-H", "web1", "-i", hosts, "-e", f"private_address='{address}'")


def test_a_missing_key_file_is_refused_before_connecting(hosts):
    cause = refused("status", "-H", "web1", "-i", hosts, "-e", "ansible_ssh_private_key_file=keys/none")
    assert cause.startswith("error: ansible_ssh_private_key_file of host web1 is ") and "which is not a file" in cause


def test_an_app_with_a_syntax_error_is_refused_before_connecting(tmp_path, hosts, monkeypatch):
    """On a controller Python at least as new as the hosts' the error is certain (exit 2); on an older one
    (this machine's 3.11 against Debian 13's 3.13) the host's Python may take the syntax: a warning."""
    from provisioner.config import app_check
    from provisioner.errors import UserError
    from provisioner.inventory import load_inventory
    package = tmp_path / "app" / "shop"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "wsgi.py").write_text("def app(environ, start_response:\n    return []\n")
    inventory = tmp_path / "site.ini"
    inventory.write_text("[web]\nweb1\n[web:vars]\napp_source=app\napp_module=shop.wsgi\n")
    monkeypatch.setattr(app_check, "NEWEST_HOST_PYTHON", (3, 0))
    with pytest.raises(UserError) as caught:
        load_inventory(inventory)
    assert caught.value.cause.startswith("site.ini: app_module shop.wsgi of host web1 would not load: ")
    assert caught.value.cause.endswith("shop/wsgi.py:1: '(' was never closed")
    monkeypatch.setattr(app_check, "NEWEST_HOST_PYTHON", (99, 0))
    assert any("shop/wsgi.py:1: '(' was never closed (on this Python" in w for w in load_inventory(inventory).warnings)
    (package / "wsgi.py").write_text("def app(environ, start_response):\n    return []\n")
    assert not any("would not load" in w for w in load_inventory(inventory).warnings)
