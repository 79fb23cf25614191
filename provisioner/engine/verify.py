"""Verify and explain: prove from the host itself that a service answers, and say why when it does not.

The HTTP check through nginx is bash (remote/scripts/http_check.sh: no interpreter to start, and it runs
on every probe); a redirect (a TLS front's 308) is followed by the python3 check, which speaks HTTPS.
The uWSGI socket check is python3 (uwsgi_check.py; it runs only after a restart). Both are sent on the
shell's stdin and retry for a few seconds, because a restarted uWSGI loads its app lazily. The
explanations are shell (remote/scripts/*_failure.sh) that read logs.
"""

from __future__ import annotations

import shlex

from ..remote import protocol, scripts
from ..remote.session import Session


REDIRECTED = 3  # http_check.sh's exit code for a 3xx answer


def http_check(port: int, host_header: str, path: str, tries: int = 20, address: str = "127.0.0.1") -> str:
    """Shell: GET http://ADDRESS:PORT/PATH with a Host header; exit 0 on a 2xx answer (or on a
    redirect's 2xx/3xx, followed by python3)."""
    at = f"[{address}]" if ":" in address else address
    follow = scripts.python("http_check.py", f"http://{at}:{port}{path}", host_header, tries)
    return "\n".join([f"if {scripts.bash('http_check.sh', port, host_header, path, tries, *([address] if address != '127.0.0.1' else []))}",
                      "then :",
                      f"else case $? in {REDIRECTED}) {follow}", ";; *) false ;; esac",
                      "fi"])


def uwsgi_check(socket_path: str, path: str, tries: int = 30) -> str:
    """Shell: GET PATH straight from the uWSGI socket (no nginx); exit 0 on a 200."""
    return scripts.python("uwsgi_check.py", path, socket_path, tries)


def unit_failure(unit: str) -> str:
    """Shell: why a restarted unit did not come up (its last traceback since $SINCE, its journal): the
    unit the handler's action named in $FAILED_UNIT (a standby that failed), else `unit`."""
    return "\n".join([f"UNIT=${{FAILED_UNIT:-{shlex.quote(unit)}}}", scripts.text("unit_failure.sh")])


def site_failure(error_log: str, unit: str) -> str:
    """Shell: why a site does not answer (the end of its error log and of its app's journal)."""
    return scripts.fragment("site_failure.sh", ERROR_LOG=error_log, UNIT=unit)


def verify_site(session: Session, health: str, explain: str) -> tuple[bool, str, str]:
    """The end of every deploy: the stack's health check passes. Returns ok, answer, log lines."""
    result = session.run(scripts.script("verify.sh", {"health": health, "explain": explain}))
    sections = protocol.split(result.out)
    logs = "\n".join(s.text for s in sections if s.kind == "explain")
    return result.rc == 0, sections[0].text.strip(), logs.strip()
