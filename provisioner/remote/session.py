"""One SSH connection per host, and on it one remote shell that runs every script of the run.

Why a persistent shell: each step (probe, apply, handlers, verify) is then one round trip on an
open channel (~3 ms with TCP_NODELAY) instead of a new exec with its own sudo start-up, scripts
travel on stdin (never in a process's argv, so secrets stay out of `ps`), and a lock taken by the
shell lasts exactly as long as the connection.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko

from ..errors import EXIT_FAILED, UserError
from . import scripts
from .protocol import end_marker
from .quoting import cmd, function
from .ssh import SshLink, Unreachable  # noqa: F401  (Unreachable: callers catch it from here)

if TYPE_CHECKING:
    from ..inventory import Host

SUDO_PROMPT = "[provision-sudo-password]"
KEEPALIVE_SECONDS = 30  # as OpenSSH's ServerAliveInterval in common use; only an idle connection sends one

_open_sessions: "weakref.WeakSet[Session]" = weakref.WeakSet()
_interrupted = threading.Event()


def interrupt_all() -> None:
    """Ctrl-C: close every connection of this process now and refuse new ones. A remote script that
    was running finishes on its host (its output goes to a file there); nothing after it is sent."""
    _interrupted.set()
    close_all(list(_open_sessions))


def interrupted() -> bool:
    """Whether Ctrl-C came: a host's thread still running says nothing more (the last words are the
    interruption's)."""
    return _interrupted.is_set()


def close_all(sessions: list["Session"], seconds: float = 3) -> None:
    """Close connections beside the caller (maybe a signal handler), waiting at most `seconds`:
    a connection that does not close at once must not keep Ctrl-C from ending the program."""
    closer = threading.Thread(target=lambda: [s.close() for s in sessions], daemon=True)
    closer.start()
    closer.join(seconds)


@dataclass
class Result:
    rc: int
    out: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


class Session:
    """A logged-in host: `run(script)` executes a shell script as the deploy user (root via sudo)."""

    def __init__(self, host: Host, metrics: dict | None = None):
        self.host = host
        self.metrics = metrics if metrics is not None else {}
        self._link: SshLink | None = None
        self._client: paramiko.SSHClient | None = None
        self.user = host.user  # the user logged in as, once open (ssh_config's User when the inventory sets none)
        self._chan: paramiko.Channel | None = None
        self._buf = b""
        self._sudo_unconfirmed = False

    # -- connection -----------------------------------------------------------------------------
    def open(self) -> "Session":
        """Log in (unless `login` did and its connection still lives) and start the remote shell."""
        transport = self._client.get_transport() if self._client is not None else None
        if transport is None or not transport.is_active():
            if self._link is not None:
                self._link.close()
            self.login()
        self._start_shell()
        return self

    def login(self) -> "Session":
        """Connect and authenticate; nothing runs on the host yet."""
        if _interrupted.is_set():
            raise Unreachable(f"not connecting to {self.host.name}: interrupted", "run the same command again")
        self._link = SshLink(self.host)
        _open_sessions.add(self)  # from here on, Ctrl-C (interrupt_all) can end the connection
        self._client = self._link.open()
        # A login made early may wait idle for its host's turn (balancers deploy after the app hosts):
        # keep-alives keep a NAT or firewall on the way from forgetting the connection meanwhile.
        self._client.get_transport().set_keepalive(KEEPALIVE_SECONDS)
        self.user = self._link.user
        return self

    def _start_shell(self) -> None:
        host = self.host
        chan = self._client.get_transport().open_session()
        self._chan = chan
        self.metrics["channels"] = self.metrics.get("channels", 0) + 1
        if not host.become or self.user == "root":
            chan.exec_command("exec sh")
            return
        if host.become_password is None:
            chan.exec_command("exec sudo -n -- sh")
        else:
            chan.exec_command(cmd("exec", "sudo", "-S", "-p", SUDO_PROMPT, "--", "sh"))
            chan.sendall((str(host.become_password) + "\n").encode())
        # Whether sudo let us in shows with the first script (sudo ends the channel if not):
        # no extra round trip for a check.
        self._sudo_unconfirmed = True

    def close(self) -> None:
        # Ctrl-C's closer thread and the normal close may both get here: each takes its own
        # reference, and a channel whose transport the other one already ended is closed anyway.
        chan, self._chan = self._chan, None
        if chan is not None:
            with contextlib.suppress(EOFError, OSError):
                chan.close()
        if self._link is not None:
            self._link.close()
        self._client = None

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
            result = self._exchange(script, in_main_shell, timeout)
        except (OSError, EOFError, paramiko.SSHException) as e:
            if self._sudo_unconfirmed:
                raise self._sudo_refused(str(e) or "no output") from None
            raise Unreachable(f"connection to {self.host.name} was lost: {e or type(e).__name__}",
                              "run the same command again once the host is reachable; it converges") from None
        self._sudo_unconfirmed = False
        return result

    def _sudo_refused(self, detail: str) -> Unreachable:
        self.close()
        host = self.host
        if "password" in detail or "incorrect" in detail:
            return Unreachable(f"sudo on {host.name} asks for a password and none (or a wrong one) was given: {detail}",
                               "set ansible_become_password (as !secret) for this host, or pass --ask-become-pass")
        return Unreachable(f"sudo failed on {host.name}: {detail}", f"check that {self.user} may run sudo on the host")

    def _exchange(self, script: str, in_main_shell: str, timeout: float | None) -> Result:
        if self._chan is None:
            raise EOFError("the connection was closed")
        token = end_marker()
        wrapped = "\n".join([in_main_shell, scripts.text("session.sh"), function("provision_script", script),
                             cmd("provision_run", token), ""])
        self.metrics["scripts"] = self.metrics.get("scripts", 0) + 1
        try:
            self._chan.sendall(wrapped.encode())
        except OSError as e:  # the shell ended before the script got there (sudo refused at once): why
            raise EOFError(self._why_ended() or str(e)) from None
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
                raise EOFError(self._why_ended() or "remote shell ended")
            self._buf += data

    def _why_ended(self) -> str:
        """What the ended shell (or sudo before it) said on stderr, once its exit has arrived."""
        chan = self._chan
        chan.status_event.wait(2)
        stderr = b""
        while chan.recv_stderr_ready():
            stderr += chan.recv_stderr(65536)
        return stderr.decode(errors="replace").strip().replace(SUDO_PROMPT, "").strip()

    def upload(self, local, remote_dir: str, make_dir: bool = True) -> str:
        """Copy a (large) file, or a stream (an object with `name` and `open()`, written while it is
        sent), to a private directory the login user owns (made here unless an earlier upload of
        this apply made it); returns its path."""
        sftp = self._client.open_sftp()
        self.metrics["uploads"] = self.metrics.get("uploads", 0) + 1
        try:
            if make_dir:
                sftp.mkdir(remote_dir, 0o700)
            target = f"{remote_dir}/{local.name}"
            if isinstance(local, Path):
                sftp.put(str(local), target)
            else:
                with local.open() as stream:
                    sftp.putfo(stream, target, confirm=False)
            return target
        finally:
            sftp.close()

    def stream(self, command: str):
        """Open a second channel running `command` (as root when become) and yield output lines.

        The command runs in its own process group, and a watcher kills that group when our side
        closes the channel (stdin EOF), so no `tail -F` is left running after Ctrl-C.
        """
        chan = self._client.get_transport().open_session()
        self.metrics["channels"] = self.metrics.get("channels", 0) + 1
        guarded = (f"exec 3<&0; setsid sh -c {shlex.quote(command)} & pid=$!; "
                   f"(cat <&3 >/dev/null 2>&1; kill -TERM -$pid 2>/dev/null) >/dev/null 2>&1 & wait $pid")
        quoted = shlex.quote(guarded)
        if self.host.become and self.user != "root":
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


class Sessions:
    """Each host's session, taken once by whoever works on that host (who closes it).

    With `early`, every host's login (connect, handshake, authentication) starts at once, in the
    background, when this is made: the handshakes, mostly waiting on the network and on the hosts'
    sshd, then overlap what the controller does meanwhile (loading the stack and the engine, rendering
    the templates: ~0.15 s of a 1-host no-op, docs/performance.md). The remote shell starts only when
    the session is taken, so a run that stops before (a template error) has run nothing on any host.
    Without `early`, a session logs in when it is taken."""

    def __init__(self, hosts: "list[Host]" = (), *, early: bool = False, session: type = Session):
        self._session = session
        self._opening: dict[str, Future] = {h.name: self._open_in_background(h) for h in hosts} if early else {}

    def _open_in_background(self, host: "Host") -> Future:
        """A daemon thread: a host that hangs never keeps the program from ending."""
        opening: Future = Future()

        def open_session() -> None:
            try:
                opening.set_result(self._session(host).login())
            except BaseException as e:  # noqa: BLE001 (re-raised by take() in the caller's thread)
                opening.set_exception(e)
        threading.Thread(target=open_session, name=f"connect {host.name}", daemon=True).start()
        return opening

    def take(self, host: "Host") -> Session:
        """The host's open session, its shell started; Unreachable (or UserError) when it could not connect."""
        opening = self._opening.pop(host.name, None)
        return (opening.result() if opening is not None else self._session(host)).open()

    def close(self) -> None:
        """Close the sessions nobody took (a run that ended early), now or once they are open."""
        for opening in self._opening.values():
            opening.add_done_callback(_close_if_open)
        self._opening.clear()


def _close_if_open(opening: Future) -> None:
    if opening.exception() is None:
        opening.result().close()
