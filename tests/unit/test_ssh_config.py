"""SSH options from the inventory and ssh_config files, resolved as OpenSSH would, into Fabric connections
that carry provision's host-key policy on every hop (no connection is made here)."""

import textwrap
from pathlib import Path

import paramiko
import pytest

from provisioner.errors import UserError
from provisioner.remote import ssh_config
from provisioner.remote.ssh import SshLink, TrustOnFirstUse
from provisioner.remote.ssh_config import RefusedOption, SshOptions, lookup_config, parse_ssh_args

pytestmark = pytest.mark.unit


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home of its own, no system file, no $PROVISION_SSH_CONFIG."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PROVISION_SSH_CONFIG", raising=False)
    monkeypatch.setattr(ssh_config, "SYSTEM_SSH_CONFIG", tmp_path / "etc" / "ssh_config")
    (tmp_path / ".ssh").mkdir()
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def host(address="web", **kw):
    from provisioner.inventory import Host
    fields = dict(port=22, user="alice", key_file=None, become=True, become_password=None, groups=[], vars={})
    return Host("web", address, **{**fields, **kw})


# --- the inventory's options ---------------------------------------------------------------------


def test_the_options_that_matter_are_honoured_in_order():
    options = parse_ssh_args(["-o", "ProxyJump=deploy@a", "-oPort=2222", "-o", "User deploy", "-J", "b,c",
                              "-i", "~/k", "-o", "ProxyCommand=ssh -W %h:%p gw", "-F", "/tmp/cfg",
                              "-o", "StrictHostKeyChecking=accept-new", "-l", "bob", "-p2200"], {"user": "root"})
    assert options.settings == (("user", "root"), ("proxyjump", "deploy@a"), ("port", "2222"), ("user", "deploy"),
                                ("proxyjump", "b,c"), ("identityfile", "~/k"),
                                ("proxycommand", "ssh -W %h:%p gw"), ("stricthostkeychecking", "accept-new"),
                                ("user", "bob"), ("port", "2200"))
    assert options.config_file == Path("/tmp/cfg")


@pytest.mark.parametrize("args, named", [
    (["-C"], "SSH option -C is refused: provision's SSH client takes ProxyJump"),
    (["-A"], "SSH option -A is refused: provision runs nothing on the host that logs in elsewhere"),
    (["-o", "StrictHostKeyChecking=no"], "SSH option StrictHostKeyChecking=no is refused: provision always checks"),
    (["-o", "UserKnownHostsFile=/dev/null"], "SSH option UserKnownHostsFile is refused: provision always checks"),
    (["-o", "ControlPersist=60s"], "SSH option ControlPersist is refused: provision keeps one connection"),
    (["-o", "ServerAliveInterval=5"], "SSH option ServerAliveInterval is refused: provision's SSH client takes"),
    (["-o", "Port=ssh"], "SSH option Port=ssh is not a port number"),
    (["-J"], "SSH option -J has no value"),
    (["bastion"], "SSH option bastion is refused"),
])
def test_other_options_are_refused_naming_them(args, named):
    with pytest.raises(RefusedOption) as caught:
        parse_ssh_args(args)
    assert str(caught.value).startswith(named) and "\n" not in str(caught.value)


def test_the_inventorys_options_beat_the_files(home):
    write(home / ".ssh" / "config", """\
        Host web
          HostName 10.0.0.5
          User fromfile
          Port 2201
          ProxyJump filejump
        """)
    found = lookup_config("web", parse_ssh_args(["-o", "ProxyJump=argjump"], {"user": "inv"})).lookup("web")
    assert (found["hostname"], found["user"], found["port"], found["proxyjump"]) == ("10.0.0.5", "inv", "2201",
                                                                                     "argjump")


# --- the files -----------------------------------------------------------------------------------


def test_user_file_then_system_file(home):
    write(home / ".ssh" / "config", "Host web\n  User alice2\n")
    write(ssh_config.SYSTEM_SSH_CONFIG, "Host *\n  User nobody\n  Port 2022\n")
    found = lookup_config("web").lookup("web")
    assert (found["user"], found["port"]) == ("alice2", "2022")


def test_provision_ssh_config_alone_like_ssh_dash_f(home, monkeypatch):
    write(home / ".ssh" / "config", "Host web\n  User fromhome\n  Port 2201\n")
    monkeypatch.setenv("PROVISION_SSH_CONFIG", str(write(home / "lab.conf", "Host web\n  User fromenv\n")))
    found = lookup_config("web").lookup("web")
    assert found["user"] == "fromenv" and "port" not in found
    found = lookup_config("web", SshOptions(config_file=write(home / "f.conf", "Host web\n  User fromf\n")))
    assert found.lookup("web")["user"] == "fromf"
    monkeypatch.setenv("PROVISION_SSH_CONFIG", str(home / "missing.conf"))
    with pytest.raises(UserError) as caught:
        lookup_config("web")
    assert "missing.conf does not exist" in caught.value.cause and "PROVISION_SSH_CONFIG" in caught.value.fix


def test_include_globs_relative_to_dot_ssh_and_inside_a_host_block(home):
    write(home / ".ssh" / "config.d" / "10-jump", "Host jump\n  HostName 10.0.0.1\n  User ops\n")
    write(home / ".ssh" / "config.d" / "20-web", "Host web\n  ProxyJump jump\n")
    write(home / ".ssh" / "db-port", "Port 5022\n")
    write(home / ".ssh" / "config", """\
        Include config.d/*
        Host db
          Include db-port ~/.ssh/nothing-here
          User dbuser
        Host *
          User everyone
        """)
    config = lookup_config("web")
    assert config.lookup("web")["proxyjump"] == "jump" and config.lookup("web")["user"] == "everyone"
    assert (config.lookup("jump")["hostname"], config.lookup("jump")["user"]) == ("10.0.0.1", "ops")
    assert (config.lookup("db")["port"], config.lookup("db")["user"]) == ("5022", "dbuser"), \
        "lines after an Include stay in their Host block"


def test_an_include_loop_and_a_bad_line_are_one_line_errors(home):
    write(home / ".ssh" / "config", "Include config\n")
    with pytest.raises(UserError, match="nested deeper than 16"):
        lookup_config("web")
    write(home / ".ssh" / "config", "Host web\n  !!!\n")
    with pytest.raises(UserError, match=r"cannot read the ssh_config .*config: Unparsable line"):
        lookup_config("web")


# --- connections (Fabric), not opened -------------------------------------------------------------


def test_proxyjump_chains_become_fabric_gateways_with_our_host_key_policy(home, monkeypatch):
    monkeypatch.setenv("PROVISION_KNOWN_HOSTS", str(home / "kh"))
    monkeypatch.setattr("getpass.getuser", lambda: "me")
    write(home / ".ssh" / "config", """\
        Host web
          HostName 10.0.0.5
          ProxyJump ops@jump1:2200,jump2
        Host jump2
          HostName 10.0.0.2
          StrictHostKeyChecking yes
        """)
    link = SshLink(host("web", key_file=Path("/keys/lab")))
    first, second, target = link.chain
    assert [(c.user, c.host, c.port) for c in link.chain] == [("ops", "jump1", 2200), ("me", "10.0.0.2", 22),
                                                             ("me", "10.0.0.5", 22)], "the first hop first"
    for conn in link.chain:
        policy = conn.client._policy
        assert isinstance(policy, TrustOnFirstUse) and not isinstance(policy, paramiko.AutoAddPolicy)
        assert conn.connect_kwargs["key_filename"][0] == "/keys/lab", "every hop is offered the host's key"
    assert [c.client._policy.strict for c in link.chain] == [False, True, False]
    assert link.describe(second) == "jump host me@10.0.0.2:22 (on the way to web)"
    assert link.describe(target) == "web (me@10.0.0.5:22)"


def test_proxycommand_and_the_inventorys_user(home):
    write(home / ".ssh" / "config", "Host web\n  User fromfile\n  ProxyCommand ssh -W %h:%p gw\n")
    options = parse_ssh_args(["-o", "ProxyCommand=nc %h %p"], {"user": "deploy"})
    link = SshLink(host("10.0.0.9", ssh_options=options))
    assert link.target.gateway == "nc 10.0.0.9 22" and link.user == "deploy" and link.chain == [link.target]
    assert SshLink(host("web")).user == "fromfile", "no ansible_user: ssh_config's User"


def test_trust_on_first_use_records_then_strict_refuses(tmp_path):
    key = paramiko.Ed25519Key.from_private_key_file(str(_ed25519(tmp_path)))
    client = paramiko.SSHClient()
    TrustOnFirstUse(tmp_path / "kh").missing_host_key(client, "[10.0.0.5]:2200", key)
    assert (tmp_path / "kh").read_text() == f"[10.0.0.5]:2200 ssh-ed25519 {key.get_base64()}\n"
    with pytest.raises(paramiko.SSHException):
        TrustOnFirstUse(tmp_path / "kh", strict=True).missing_host_key(client, "other", key)


def _ed25519(tmp_path: Path) -> Path:
    import subprocess
    path = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def test_the_inventorys_proxycommand_beats_a_files_proxyjump_and_a_jump_host_does_not_jump_via_itself(home):
    write(home / ".ssh" / "config", "Host * !direct\n  ProxyJump bastion\n")
    link = SshLink(host("web", ssh_options=parse_ssh_args(["-o", "ProxyCommand=nc %h %p"])))
    assert link.target.gateway == "nc web 22"
    bastion, target = SshLink(host("web")).chain
    assert (bastion.host, bastion.gateway, target.gateway) == ("bastion", False, bastion)
    assert SshLink(host("direct")).target.gateway is False
    assert SshLink(host("web", ssh_options=parse_ssh_args(["-o", "ProxyJump=none"]))).target.gateway is False


def test_a_jump_loop_is_a_one_line_error(home):
    write(home / ".ssh" / "config", "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n")
    with pytest.raises(UserError, match="ProxyJump of a leads through more than 8 jump hosts"):
        SshLink(host("a"))


def test_closing_ends_a_connect_still_waiting_on_its_jump_host(home):
    """Ctrl-C (Session.close from another thread) ends every hop, also one that has not answered yet."""
    import socket
    import threading
    import time

    from provisioner.remote.ssh import Unreachable
    with socket.socket() as silent:  # accepts TCP, never says a word of SSH
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        link = SshLink(host("127.0.0.2", ssh_options=parse_ssh_args(["-J", f"127.0.0.1:{port}"])))
        outcome = []
        opener = threading.Thread(target=lambda: outcome.append(_raised(link.open)))
        opener.start()
        time.sleep(0.5)
        started = time.monotonic()
        link.close()
        opener.join(5)
        assert time.monotonic() - started < 2 and not opener.is_alive()
    assert isinstance(outcome[0], Unreachable) and "jump host" in outcome[0].cause, outcome[0]


def _raised(call) -> Exception | None:
    try:
        call()
    except Exception as error:
        return error
    return None
