"""probe.sh reads every stat_path path up front (one find, one sha256sum for all) and every
service_state unit in the background (one is-active for all): its facts must be exactly those of
looking at each path or unit on its own, for every kind of path and unit, run by a real sh here."""

from __future__ import annotations

import os
import subprocess

import pytest

from provisioner.engine import facts
from provisioner.resources import files, systemd

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
    if not scanned:  # the same script with nothing read up front: every path and unit looked at by itself
        for name, function in (("STAT_PATHS", "stat_path"), ("SERVICES", "service_state")):
            args = facts.first_args((r.probe(want_diff) for r in resources), function)
            if args:
                script = script.replace(f"{name}={facts.shlex.quote(chr(10).join(args))}", f"{name}=''")
                assert f"{name}=''" in script
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
    assert facts.first_args(probes, "stat_path") == ["/etc/nginx/nginx.conf", "/srv/a b"]
    assert facts.first_args(probes, "service_state") == ["nginx"]


FAKE_SYSTEMCTL = """#!/bin/sh
# systemctl as on a Debian host: uwsgi is a SysV unit (is-enabled says so first), nosuch does not exist.
echo "$*" >>"$CALLS"
verb=$1; shift
for unit in "$@"; do
    case $verb/$unit in
        is-active/nginx) echo active ;;
        is-active/uwsgi) echo inactive ;;
        is-active/*) echo unknown ;;
        is-enabled/nginx) echo enabled ;;
        is-enabled/uwsgi) echo "uwsgi.service is not a native service, redirecting to systemd-sysv-install."
                          echo "Executing: /lib/systemd/systemd-sysv-install is-enabled uwsgi"; echo disabled ;;
        is-enabled/*) echo "Failed to get unit file state for $unit.service" >&2 ;;
    esac
done
"""


def test_units_read_in_the_background_give_the_facts_of_each_unit_read_alone(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(FAKE_SYSTEMCTL)
    (bin_dir / "systemctl").chmod(0o755)
    calls = tmp_path / "calls"
    monkeypatch.setenv("CALLS", str(calls))
    units = [systemd.Service(name) for name in ("nginx", "uwsgi", "nosuch", "nginx")]
    scanned = probe_facts(units, scanned=True, path_env=str(bin_dir))
    assert calls.read_text().splitlines()[0] == "is-active nginx uwsgi nosuch"  # one call for all units
    assert calls.read_text().count("is-active") == 1
    calls.unlink()
    assert scanned == probe_facts(units, scanned=False, path_env=str(bin_dir))
    assert calls.read_text().count("is-active") == 4                         # the old way: one a unit
    assert scanned == [("enabled", "active"), ("disabled", "inactive"), ("not-found", "unknown"),
                       ("enabled", "active")]
