"""provisioner/remote/session.py's Sessions: logins made early, in the background, are the ones
taken, and their shell starts only then; a failed one raises where it is taken; what nobody took is
closed, even once it logs in after the run has ended; a host that hangs keeps nothing waiting."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from provisioner.remote.session import Session, Sessions, Unreachable

pytestmark = pytest.mark.unit


class FakeSession:
    """Opens when its host's gate opens (at once if it has none); records its thread and its close."""

    gates: dict[str, threading.Event] = {}
    made: list["FakeSession"] = []

    def __init__(self, host):
        self.host, self.closed, self.opened_in, self.shell_in = host, False, None, None
        FakeSession.made.append(self)

    def login(self) -> "FakeSession":
        gate = FakeSession.gates.get(self.host.name)
        if gate:
            gate.wait(10)
        if self.host.name.startswith("down"):
            raise Unreachable(f"{self.host.name}: Connection refused", "start its sshd")
        self.opened_in = threading.current_thread().name
        return self

    def open(self) -> "FakeSession":
        if self.opened_in is None:
            self.login()
        self.shell_in = threading.current_thread().name
        return self

    def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def fresh():
    FakeSession.gates, FakeSession.made = {}, []


def hosts(*names):
    return [SimpleNamespace(name=n) for n in names]


def test_early_sessions_open_in_the_background_and_are_the_ones_taken():
    web1, web2 = hosts("web1", "web2")
    sessions = Sessions([web1, web2], early=True, session=FakeSession)
    taken = [sessions.take(web1), sessions.take(web2)]  # made in their threads: FakeSession.made in any order
    assert [s.opened_in for s in taken] == ["connect web1", "connect web2"]
    assert [s.shell_in for s in taken] == [threading.current_thread().name] * 2, "the shell starts when taken"
    assert len(FakeSession.made) == 2, "no second connection at take()"
    sessions.close()
    assert not any(s.closed for s in taken), "the taker closes what it took"


def test_a_failed_early_connection_raises_where_it_is_taken():
    [down] = hosts("down1")
    sessions = Sessions([down], early=True, session=FakeSession)
    with pytest.raises(Unreachable, match="Connection refused"):
        sessions.take(down)


def test_without_early_a_session_opens_when_taken():
    [web1] = hosts("web1")
    sessions = Sessions([web1], session=FakeSession)
    assert FakeSession.made == []
    assert sessions.take(web1).opened_in == threading.current_thread().name


def test_what_nobody_took_is_closed_even_when_it_opens_later_and_close_does_not_wait():
    web1, slow = hosts("web1", "slow1")
    FakeSession.gates["slow1"] = threading.Event()
    sessions = Sessions([web1, slow], early=True, session=FakeSession)
    threading.Event().wait(0.2)
    first, late = sorted(FakeSession.made, key=lambda s: s.host.name != "web1")
    sessions.close()  # returns although slow1 is still connecting
    assert first.closed and not late.closed
    assert first.shell_in is None, "nothing ran on a host nobody took"
    FakeSession.gates["slow1"].set()
    for _ in range(100):
        if late.closed:
            break
        threading.Event().wait(0.05)
    assert late.closed


class _Transport:
    def __init__(self, active: bool):
        self.active = active

    def is_active(self) -> bool:
        return self.active


class _Client:
    def __init__(self, active: bool):
        self.transport = _Transport(active)

    def get_transport(self):
        return self.transport


class _Link:
    closed = False

    def close(self):
        self.closed = True


@pytest.mark.parametrize("alive", [True, False], ids=["alive", "died while waiting"])
def test_a_login_made_early_is_used_while_its_connection_lives(monkeypatch, alive):
    """Session.open after Session.login: the same connection, unless it died meanwhile (a balancer's
    login waits for the app hosts' wave), then a new login; the shell starts on a live one."""
    session = Session.__new__(Session)  # a logged-in session, minus the connection set-up
    old_link = _Link()
    session._client, session._link = _Client(alive), old_link
    calls = []

    def login():
        calls.append("login")
        session._client, session._link = _Client(True), _Link()
        return session
    monkeypatch.setattr(session, "login", login)
    monkeypatch.setattr(session, "_start_shell", lambda: calls.append("shell"))
    assert session.open() is session
    assert calls == (["shell"] if alive else ["login", "shell"])
    assert old_link.closed is not alive
