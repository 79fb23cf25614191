"""The SSH connection to a host, set up by Fabric from the host's ssh_config (HostName, User, Port,
IdentityFile, ProxyJump chains, ProxyCommand), with provision's host-key policy on every hop.

Fabric's own policy (AutoAddPolicy: any key, changed or not) is replaced before anything connects:
keys are checked against provision's known_hosts and ~/.ssh/known_hosts (read, never written); an
unknown key is accepted and remembered (refused with StrictHostKeyChecking yes), a changed key is
refused. The first hop's TCP socket is made here, with TCP_NODELAY (a round trip: 48 ms -> ~3 ms),
so that closing it from another thread (Ctrl-C) also ends a connect that is still waiting.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import fabric
import paramiko
from fabric.connection import derive_shorthand

from ..errors import EXIT_UNREACHABLE, UserError
from .ssh_config import SshOptions, lookup_config

if TYPE_CHECKING:
    from ..inventory import Host

CONNECT_TIMEOUT = 10  # TCP connect: a host that is down fails fast
# The SSH banner and authentication: a host that took the TCP connection is up, and its sshd can be
# slow (an emulated VM under load, PAM). A CI run lost a Vagrant VM at login (its cause was not
# captured; 10 s here was one candidate).
HANDSHAKE_TIMEOUT = 30
MAX_JUMPS = 8


class Unreachable(UserError):
    """The host could not be reached or logged into."""

    def __init__(self, cause: str, fix: str):
        super().__init__(cause, fix, EXIT_UNREACHABLE)


def known_hosts_path() -> Path:
    """The project's own known_hosts: the user's ~/.ssh/known_hosts is read, never written."""
    env = os.environ.get("PROVISION_KNOWN_HOSTS")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "provision" / "known_hosts"


class UnknownHostKey(paramiko.SSHException):
    """StrictHostKeyChecking yes and the host's key is in no known_hosts."""


class TrustOnFirstUse(paramiko.MissingHostKeyPolicy):
    """Accept an unknown host key once and remember it in the project's known_hosts."""

    def __init__(self, path: Path, strict: bool = False):
        self.path = path
        self.strict = strict

    def missing_host_key(self, client, hostname, key):
        if self.strict:
            raise UnknownHostKey(hostname)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


def connection(name: str, config: fabric.Config, gateway: fabric.Connection | None = None,
               depth: int = 0) -> fabric.Connection:
    """A Fabric connection to `name`: through `gateway` (the hop before it in a ProxyJump list), else
    through its own ProxyJump hops in OpenSSH's order (the first one first: Fabric reverses a list) or
    its ProxyCommand."""
    if gateway is None:
        found = config.base_ssh_config.lookup(derive_shorthand(name)["host"])
        jump = found.get("proxyjump") or "none"
        if jump.lower() == "none":
            return fabric.Connection(name, config=config, gateway=found.get("proxycommand") or False)
        if depth >= MAX_JUMPS:
            raise UserError(f"ProxyJump of {name} leads through more than {MAX_JUMPS} jump hosts",
                            "look for a ProxyJump that jumps through itself in ssh_config (Host * !jumphost)")
        for hop in jump.split(","):
            if derive_shorthand(hop)["host"] != derive_shorthand(name)["host"]:  # `Host *` naming itself
                gateway = connection(hop, config.clone(), gateway, depth + 1)
    return fabric.Connection(name, config=config, gateway=gateway or False)


def _hops(conn: fabric.Connection) -> list[fabric.Connection]:
    """The connection and its ProxyJump hops, the first hop first and the host last."""
    chain = [conn]
    while isinstance(chain[0].gateway, fabric.Connection):
        chain.insert(0, chain[0].gateway)
    return chain


class SshLink:
    """One host's connection: `open()` returns the logged-in paramiko client; `close()` ends every hop,
    from any thread, also while `open()` still waits."""

    def __init__(self, host: Host):
        self.host = host
        options = host.ssh_options or SshOptions()
        keys = [str(host.key_file)] if host.key_file else []  # the jump hosts are offered it too
        config = fabric.Config(ssh_config=lookup_config(host.address, options), lazy=True, overrides={
            "timeouts": {"connect": CONNECT_TIMEOUT},
            "connect_kwargs": {"key_filename": keys, "banner_timeout": HANDSHAKE_TIMEOUT,
                               "auth_timeout": HANDSHAKE_TIMEOUT},
        })
        self.target = connection(host.address, config)
        self.chain = _hops(self.target)
        self.known_hosts = known_hosts_path()
        for conn in self.chain:
            conn.client.load_system_host_keys()  # read, never written
            if self.known_hosts.exists():
                conn.client.load_host_keys(str(self.known_hosts))
            strict = conn.ssh_config.get("stricthostkeychecking", "").lower() == "yes"
            conn.client.set_missing_host_key_policy(TrustOnFirstUse(self.known_hosts, strict))
        self._sock: socket.socket | None = None

    @property
    def user(self) -> str:
        return self.target.user

    def describe(self, conn: fabric.Connection) -> str:
        if conn is self.target:
            return f"{self.host.name} ({conn.user}@{conn.host}:{conn.port})"
        return f"jump host {conn.user}@{conn.host}:{conn.port} (on the way to {self.host.name})"

    def open(self) -> paramiko.SSHClient:
        first = self.chain[0]
        try:
            if not first.gateway:  # a ProxyCommand makes its own pipe
                self._sock = socket.create_connection((first.host, first.port), timeout=first.connect_timeout)
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                first.connect_kwargs["sock"] = self._sock
            self.target.open()
        except Exception as error:
            raise self._explain(error) from None
        return self.target.client

    def _failed_at(self) -> fabric.Connection:
        for conn in self.chain:
            transport = conn.client.get_transport()
            if transport is None or not transport.is_authenticated():
                return conn
        return self.target

    def _explain(self, error: Exception) -> Exception:
        at = self._failed_at()
        where, kh = self.describe(at), self.known_hosts
        if isinstance(error, paramiko.BadHostKeyException):
            return Unreachable(f"host key of {where} has CHANGED since it was first seen; refusing to connect",
                               f"if the host was really re-installed, delete its line from {kh} and run again")
        if isinstance(error, UnknownHostKey):
            return Unreachable(f"host key of {where} is unknown and StrictHostKeyChecking is yes",
                               f"add the host's key to {kh} once you have checked it, or drop StrictHostKeyChecking")
        if isinstance(error, paramiko.AuthenticationException):
            fix = ("check ansible_user and ansible_ssh_private_key_file for this host" if at is self.target else
                   "check the jump host's User and IdentityFile (ssh_config) or its user@ in ProxyJump")
            return Unreachable(f"authentication failed for {where}: {error}", fix)
        if isinstance(error, (OSError, socket.timeout, paramiko.SSHException, EOFError)):
            return Unreachable(f"cannot connect to {where}: {error or type(error).__name__}",
                               "check that the host is up, the address/port are right and sshd runs")
        return error

    def close(self) -> None:
        for conn in reversed(self.chain):  # the host first, then its hops
            conn.client.close()
        # Ctrl-C's closer thread and the normal close may both get here: each works on its own
        # reference (closing a socket twice is harmless; shutting a closed one down is an OSError).
        sock, self._sock = self._sock, None
        if sock is not None:  # also wakes a connect that waits for the server (Ctrl-C)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
