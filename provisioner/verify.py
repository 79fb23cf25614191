"""Verify: after a deploy, prove from the host itself that the service answers.

The checks are small python3 programs (python3 is on the host for the app anyway), sent on the
shell's stdin; they retry for a few seconds because a restarted uWSGI loads its app lazily.
"""

from __future__ import annotations

import shlex

from .ssh import Session

q = shlex.quote

_HTTP = '''
import sys, time, urllib.request, urllib.error
url, host, tries = sys.argv[1], sys.argv[2], int(sys.argv[3])
for attempt in range(tries):
    try:
        req = urllib.request.Request(url, headers={"Host": host})
        with urllib.request.urlopen(req, timeout=10) as r:
            print(r.status, r.read(200).decode(errors="replace").strip()); sys.exit(0)
    except urllib.error.HTTPError as e:
        status, detail = e.code, e.read(200).decode(errors="replace").strip()
    except OSError as e:
        status, detail = 0, str(e)
    if attempt < tries - 1:
        time.sleep(0.5)
print(status, detail); sys.exit(1)
'''

_UWSGI = '''
import socket, struct, sys, time
path, sock_path, tries = sys.argv[1], sys.argv[2], int(sys.argv[3])
def kv(k, v):
    k, v = k.encode(), v.encode()
    return struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "REQUEST_URI": path, "QUERY_STRING": "",
       "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
       "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "localhost"}
body = b"".join(kv(k, v) for k, v in env.items())
for attempt in range(tries):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(sock_path)
        s.sendall(struct.pack("<BHB", 0, len(body), 0) + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        status = data.split(b"\\r\\n", 1)[0].decode(errors="replace")
        if status.split()[1:2] == ["200"]:
            print(status); sys.exit(0)
        detail = status or "empty answer"
    except OSError as e:
        detail = str(e)
    if attempt < tries - 1:
        time.sleep(0.5)
print(f"uWSGI at {sock_path} did not answer {path} with 200: {detail}"); sys.exit(1)
'''


def _python(program: str, *args) -> str:
    return f"python3 - {' '.join(q(str(a)) for a in args)} <<'PROVISION_PY'\n{program}\nPROVISION_PY"


def http_check(port: int, host_header: str, path: str, tries: int = 20) -> str:
    """Shell: GET http://127.0.0.1:PORT/PATH with a Host header; exit 0 on a 2xx/3xx answer."""
    return _python(_HTTP, f"http://127.0.0.1:{port}{path}", host_header, tries)


def uwsgi_check(socket_path: str, path: str, tries: int = 30) -> str:
    """Shell: GET PATH straight from the uWSGI socket (no nginx); exit 0 on a 200."""
    return _python(_UWSGI, path, socket_path, tries)


def site_check(v, tries: int = 20) -> str:
    """Shell: the site's health path through nginx, as a client naming the site would ask."""
    server = v.server_name.split()[0] if v.server_name not in ("_", "") else "localhost"
    return http_check(v.http_port, server, v.health_path, tries)


def verify_site(session: Session, v, explain: str) -> tuple[bool, str, str]:
    """The end of every deploy: the health path answers through nginx. Returns ok, answer, log lines."""
    result = session.run(f"if {site_check(v)}\nthen :; else echo @@explain; {explain}\nexit 1; fi")
    answer, _, logs = result.out.partition("@@explain\n")
    return result.rc == 0, answer.strip(), logs.strip()
