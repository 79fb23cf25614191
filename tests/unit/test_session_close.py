"""Closing a connection twice at once (Ctrl-C's closer thread and the normal close) must not raise,
even when one of them already ended the SSH transport under the other's channel.

A real paramiko server runs in-process over a socketpair, so the channel and transport are real."""

from __future__ import annotations

import socket
import threading

import paramiko
import pytest

from provisioner.remote.session import Session

pytestmark = pytest.mark.unit


class _AcceptAll(paramiko.ServerInterface):
    def check_auth_none(self, username):
        return paramiko.AUTH_SUCCESSFUL

    def get_allowed_auths(self, username):
        return "none"

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED


def _connected_pair():
    client_sock, server_sock = socket.socketpair()
    server = paramiko.Transport(server_sock)
    server.add_server_key(paramiko.RSAKey.generate(1024))
    started = threading.Thread(target=server.start_server, kwargs={"server": _AcceptAll()}, daemon=True)
    started.start()
    client = paramiko.Transport(client_sock)
    client.start_client(timeout=10)
    client.auth_none("deploy")
    chan = client.open_session(timeout=10)
    return client, server, chan


def test_close_after_the_transport_died_under_the_channel_does_not_raise():
    client, server, chan = _connected_pair()
    session = Session.__new__(Session)  # a logged-in session, minus the connection set-up
    session._chan, session._link, session._client = chan, None, None
    # What the other closer did first: the socket is shut down under a transport that has not noticed
    # yet, so closing the channel (which sends a packet) meets a dead socket: paramiko's EOFError.
    client.sock.shutdown(socket.SHUT_WR)
    session.close()
    session.close()  # and a second close is harmless too
    assert session._chan is None
    client.close()
    server.close()
