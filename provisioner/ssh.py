"""One SSH connection per host, and on it one remote shell that runs every script of the run.

Why a persistent shell: each step (probe, apply, handlers, verify) is then one round trip on an
open channel (~3 ms with TCP_NODELAY) instead of a new exec with its own sudo start-up, scripts
travel on stdin (never in a process's argv, so secrets stay out of `ps`), and a lock taken by the
shell lasts exactly as long as the connection.
"""

from __future__ import annotations

import os
import secrets as _random
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko
from fabric import Config, Connection

from .errors import EXIT_FAILED, EXIT_UNREACHABLE, UserError

if TYPE_CHECKING:
    from .inventory import Host

SUDO_PROMPT = "[provision-sudo-password]"
CONNECT_TIMEOUT = 10


class Unreachable(UserError):
    """The host could not be reached or logged into."""

    def __init__(self, cause: str, fix: str):
        super().__init__(cause, fix, EXIT_UNREACHABLE)


@dataclass
class Result:
    rc: int
    out: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def known_hosts_path() -> Path:
    """The project's own known_hosts: the user's ~/.ssh/known_hosts is read, never written."""
    env = os.environ.get("PROVISION_KNOWN_HOSTS")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "provision" / "known_hosts"


class _TrustOnFirstUse(paramiko.MissingHostKeyPolicy):
    """Accept an unknown host key once and remember it in the project's known_hosts."""

    def __init__(self, path: Path):
        self.path = path

    def missing_host_key(self, client, hostname, key):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


class Session:
    """A logged-in host: `run(script)` executes a shell script as the deploy user (root via sudo)."""

    def __init__(self, host: Host, metrics: dict | None = None):
        self.host = host
        self.metrics = metrics if metrics is not None else {}
        self._conn: Connection | None = None
        self._chan: paramiko.Channel | None = None
        self._buf = b""

    # -- connection -----------------------------------------------------------------------------
    def open(self) -> "Session":
        host = self.host
        kh = known_hosts_path()
        connect_kwargs = {"key_filename": [str(host.key_file)]} if host.key_file else {}
        connect_kwargs["banner_timeout"] = CONNECT_TIMEOUT
        connect_kwargs["auth_timeout"] = CONNECT_TIMEOUT
        conn = Connection(
            host.address, user=host.user, port=host.port, config=Config(),
            connect_timeout=CONNECT_TIMEOUT, connect_kwargs=connect_kwargs,
        )
        conn.client.set_missing_host_key_policy(_TrustOnFirstUse(kh))
        if kh.exists():
            conn.client.load_host_keys(str(kh))
        where = f"{host.name} ({host.user}@{host.address}:{host.port})"
        try:
            conn.open()
        except paramiko.BadHostKeyException:
            raise Unreachable(
                f"host key of {where} has CHANGED since it was first seen; refusing to connect",
                f"if the host was really re-installed, delete its line from {kh} and run again",
            ) from None
        except paramiko.AuthenticationException as e:
            raise Unreachable(f"authentication failed for {where}: {e}",
                              "check ansible_user and ansible_ssh_private_key_file for this host") from None
        except (OSError, socket.timeout, paramiko.SSHException, EOFError) as e:
            raise Unreachable(f"cannot connect to {where}: {e or type(e).__name__}",
                              "check that the host is up, the address/port are right and sshd runs") from None
        sock = conn.transport.sock
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # 48 ms -> ~3 ms per round trip
        self._conn = conn
        self._start_shell()
        return self

    def _start_shell(self) -> None:
        host = self.host
        chan = self._conn.transport.open_session()
        self._chan = chan
        self.metrics["channels"] = self.metrics.get("channels", 0) + 1
        if not host.become or host.user == "root":
            chan.exec_command("exec sh")
            return
        if host.become_password is None:
            chan.exec_command("exec sudo -n -- sh")
        else:
            chan.exec_command(f"exec sudo -S -p '{SUDO_PROMPT}' -- sh")
            chan.sendall((str(host.become_password) + "\n").encode())
        # Prove that the root shell is there (or learn why not) before anything else is sent.
        try:
            uid = self._exchange("id -u", "", CONNECT_TIMEOUT).out.strip()
        except (OSError, EOFError, paramiko.SSHException) as e:
            uid, detail = None, str(e) or "no output"
        if uid == "0":
            return
        self.close()
        detail = detail if uid is None else f"got uid {uid!r}"
        if "password" in detail:
            raise Unreachable(f"sudo on {host.name} asks for a password and none (or a wrong one) was given: {detail}",
                              "set ansible_become_password (as !secret) for this host, or pass --ask-become-pass")
        raise Unreachable(f"sudo failed on {host.name}: {detail}", f"check that {host.user} may run sudo on the host")

    def close(self) -> None:
        if self._chan is not None:
            self._chan.close()
            self._chan = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "Session":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- running scripts ------------------------------------------------------------------------
    def run(self, script: str, *, in_main_shell: str = "", timeout: float | None = None) -> Result:
        """Run `script` in a subshell (stdin closed, stderr merged) and return its exit code and output.

        `in_main_shell` runs first in the persistent shell itself: state there (an open lock fd)
        lasts until the connection closes.
        """
        try:
            return self._exchange(script, in_main_shell, timeout)
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise Unreachable(f"connection to {self.host.name} was lost: {e or type(e).__name__}",
                              "run the same command again once the host is reachable; it converges") from None

    def _exchange(self, script: str, in_main_shell: str, timeout: float | None) -> Result:
        token = "@@provision-end-" + _random.token_hex(8)
        wrapped = (
            f"{in_main_shell}\n"
            f"(\n{script}\n) </dev/null 2>&1\n"
            f"printf '\\n{token} %s\\n' \"$?\"\n"
        )
        self.metrics["scripts"] = self.metrics.get("scripts", 0) + 1
        self._chan.sendall(wrapped.encode())
        out = self._read_until(token.encode(), timeout)
        body, _, tail = out.rpartition(token.encode())
        rc = int(tail.split()[0]) if tail.split() else 255
        text = body.decode(errors="replace")
        if text.endswith("\n"):
            text = text[:-1]
        return Result(rc, text)

    def _read_until(self, token: bytes, timeout: float | None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        chan = self._chan
        while True:
            idx = self._buf.find(token)
            if idx >= 0:
                end = self._buf.find(b"\n", idx)
                if end >= 0:
                    out, self._buf = self._buf[: end + 1], self._buf[end + 1:]
                    return out
            chan.settimeout(1.0)
            try:
                data = chan.recv(65536)
            except socket.timeout:
                data = None
            if data is None:
                if deadline is not None and time.monotonic() > deadline:
                    raise UserError(f"{self.host.name}: a remote step took longer than {timeout:.0f} s",
                                    "look at the host (provision logs) and run again", EXIT_FAILED)
                continue
            if not data:
                stderr = b""
                while chan.recv_stderr_ready():
                    stderr += chan.recv_stderr(65536)
                detail = stderr.decode(errors="replace").strip().replace(SUDO_PROMPT, "").strip()
                raise EOFError(detail or "remote shell ended")
            self._buf += data

    def upload(self, local: Path, remote_dir: str) -> str:
        """Copy a (large) file to a private directory the login user owns; returns its path."""
        sftp = self._conn.client.open_sftp()
        self.metrics["uploads"] = self.metrics.get("uploads", 0) + 1
        try:
            sftp.mkdir(remote_dir, 0o700)
            target = f"{remote_dir}/{local.name}"
            sftp.put(str(local), target)
            return target
        finally:
            sftp.close()

    def stream(self, command: str):
        """Open a second channel running `command` (as root when become) and yield output lines.

        The command runs in its own process group, and a watcher kills that group when our side
        closes the channel (stdin EOF), so no `tail -F` is left running after Ctrl-C.
        """
        chan = self._conn.transport.open_session()
        self.metrics["channels"] = self.metrics.get("channels", 0) + 1
        guarded = (f"exec 3<&0; setsid sh -c {shlex.quote(command)} & pid=$!; "
                   f"(cat <&3 >/dev/null 2>&1; kill -TERM -$pid 2>/dev/null) >/dev/null 2>&1 & wait $pid")
        quoted = shlex.quote(guarded)
        if self.host.become and self.host.user != "root":
            if self.host.become_password is None:
                chan.exec_command(f"sudo -n -- sh -c {quoted}")
            else:
                chan.exec_command(f"sudo -S -p '' -- sh -c {quoted}")
                chan.sendall((str(self.host.become_password) + "\n").encode())
        else:
            chan.exec_command(f"sh -c {quoted}")
        buf = b""
        try:
            while True:
                data = chan.recv(65536)
                if not data:
                    break
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
        finally:
            chan.close()
