"""roles/nginx-workers.sh: the workers of an nginx master, read from /proc (no pgrep, procps is not
on every host), with their titles; run by a real sh against real processes that carry nginx's titles."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from roles.nginx import HERE

pytestmark = pytest.mark.unit

# A stand-in master: two workers of the current configuration, one of an earlier one, a cache
# manager, and a child of a worker (not the master's own). Each is a `cat` that carries nginx's title
# as its argv[0] (no other argument, as nginx's title) and reads a pipe the master keeps open.
MASTER = """
exec 3<>"$1"
(exec -a 'nginx: worker process' cat) <&3 &
(exec -a 'nginx: worker process' cat) <&3 &
(exec -a 'nginx: worker process is shutting down' cat) <&3 &
(exec -a 'nginx: cache manager process' cat) <&3 &
(exec -a 'nginx: worker process' bash -c "(exec -a 'nginx: worker process' cat) <&3 & wait") &
wait
"""


def workers(master: int) -> list[tuple[int, str]]:
    script = (HERE / "nginx-workers.sh").read_text() + 'nginx_workers "$1"'
    out = subprocess.run(["sh", "-c", script, "sh", str(master)], capture_output=True, text=True, timeout=10).stdout
    return sorted((int(line.split(" ", 1)[0]), line.split(" ", 1)[1]) for line in out.splitlines())


def test_the_masters_workers_with_their_titles_and_nothing_else(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    master = subprocess.Popen(["bash", "-c", MASTER, "bash", str(tmp_path / "pipe")], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len(found := workers(master.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        found = workers(master.pid)
        titles = [title for _, title in found]
        assert len(found) == 4, found   # not the cache manager, not the worker's own child
        assert titles.count("nginx: worker process") == 2 and titles.count("nginx: worker process is shutting down") == 1
        assert all(title.startswith("nginx: worker process") for title in titles), found
        for pid, _ in found:
            with open(f"/proc/{pid}/stat") as stat:
                assert stat.read().split()[3] == str(master.pid), "a child of the master itself"
    finally:
        os.killpg(master.pid, signal.SIGKILL)  # the stand-in and everything it started: its own session
        master.wait()
