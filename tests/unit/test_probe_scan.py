"""probe.sh reads every stat_path path up front (one find, one sha256sum for all): its facts must be
exactly those of looking at each path on its own, for every kind of path, run by a real sh here."""

from __future__ import annotations

import os
import subprocess

import pytest

from provisioner.engine import facts
from provisioner.resources import files

pytestmark = pytest.mark.unit


@pytest.fixture
def tree(tmp_path):
    """A file (mode 640, odd name), a setgid directory, a link, a link to a directory, a fifo, nothing."""
    (tmp_path / "it's a file.conf").write_text("worker_connections 4096;\n")
    os.chmod(tmp_path / "it's a file.conf", 0o640)
    (tmp_path / "dir").mkdir()
    os.chmod(tmp_path / "dir", 0o2775)
    (tmp_path / "empty").write_text("")
    os.symlink("../sites-available/site", tmp_path / "link")
    os.symlink(tmp_path / "dir", tmp_path / "dirlink")
    os.mkfifo(tmp_path / "fifo")
    names = ["it's a file.conf", "dir", "empty", "link", "dirlink", "fifo", "missing", "dir/missing"]
    return [files.File(str(tmp_path / n), content="") if n != "dir" else files.Directory(str(tmp_path / n))
            for n in names]


def probe_facts(resources, scanned: bool, want_diff: bool = False, path_env: str = "") -> list:
    script = facts.probe_script(resources, want_diff=want_diff)
    if not scanned:  # the same script with nothing read up front: every path looked at by itself
        paths = facts.stat_paths(r.probe(want_diff) for r in resources)
        script = script.replace(f"STAT_PATHS={facts.shlex.quote(chr(10).join(paths))}", "STAT_PATHS=''")
        assert "STAT_PATHS=''" in script
    env = {**os.environ, "PATH": f"{path_env}:{os.environ['PATH']}"} if path_env else None
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 0, result.stderr
    return facts.parse(result.stdout, resources)[1]


@pytest.mark.parametrize("want_diff", [False, True], ids=["facts", "with content"])
def test_paths_read_up_front_give_the_facts_of_each_path_read_alone(tree, want_diff, tmp_path_factory):
    # Read up front, no path needs a program of its own: stat, readlink and cut here only say "wrong".
    no_per_path = tmp_path_factory.mktemp("bin")
    for program in ("stat", "readlink", "cut"):
        (no_per_path / program).write_text("#!/bin/sh\necho wrong\n")
        (no_per_path / program).chmod(0o755)
    up_front = probe_facts(tree, scanned=True, want_diff=want_diff, path_env=str(no_per_path))
    assert up_front == probe_facts(tree, scanned=False, want_diff=want_diff)
    kinds = [fact["kind"] for fact in up_front]
    assert kinds == ["file", "dir", "file", "link", "link", "absent", "absent", "absent"]
    assert up_front[0]["mode"] == "0640" and up_front[1]["mode"] == "2775"
    assert up_front[3]["target"] == "../sites-available/site"
    assert up_front[2]["sha256"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_only_single_stat_path_probes_are_read_up_front():
    probes = ["stat_path /etc/nginx/nginx.conf", "stat_path '/srv/a b' --content", "service_state nginx",
              "stat_path /etc/nginx/nginx.conf", "x=1\nstat_path /etc/other"]
    assert facts.stat_paths(probes) == ["/etc/nginx/nginx.conf", "/srv/a b"]
