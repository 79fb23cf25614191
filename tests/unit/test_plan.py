"""The planner, with data fixtures: facts in (as a host prints them), decisions out, with reasons.

The second half runs the generated probe and change scripts with the local `sh` against a temp
directory: the same shell the host runs, so "probe -> decide -> apply -> probe again is ok" and
"a failed check rolls back" are proven, not assumed.
"""

import getpass
import grp
import os
import subprocess
from pathlib import Path

import pytest

from provisioner.engine import facts
from provisioner.engine.apply import EarlyUploads, StepResult, apply_changes, apply_script, parse_results, rollback
from provisioner.engine.handlers import Handler, handler_script, run_handlers
from provisioner.engine.plan import make_plan
from provisioner.engine.status import HandlerStatus, StepStatus
from provisioner.remote.protocol import Exit
from provisioner.resources import RUN_DIR, Absent, Directory, File, Link, Packages, Service, SystemFacts

pytestmark = pytest.mark.unit

FRESH = SystemFacts(os_id="debian", os_version="12", codename="bookworm", machine="x86_64", now=1000,
                    apt_lists_age=None)
USER = getpass.getuser()
GROUP = grp.getgrgid(os.getgid()).gr_name


def decide(resource, probe_output, system=FRESH, want_diff=False):
    return resource.decide(resource.parse(probe_output), system, want_diff)


# -- fixtures: facts in, plan out ------------------------------------------------------------------

def test_packages_missing_on_fresh_host_updates_lists_first():
    d = decide(Packages(("nginx", "uwsgi")), "")
    assert d.changed
    assert "not installed: nginx, uwsgi" in d.reason and "apt lists are missing" in d.reason
    assert "PACKAGES='nginx uwsgi'\nUPDATE=1\nLOCK_TIMEOUT=300\n" in d.script


def test_packages_installed_is_ok_and_says_versions():
    d = decide(Packages(("nginx",)), "nginx 1.22.1-9+deb12u11 installed\n")
    assert not d.changed
    assert d.reason == "installed: nginx 1.22.1-9+deb12u11"


def test_packages_fresh_lists_skip_update_and_removed_package_counts_as_missing():
    recent = SystemFacts(now=1000, apt_lists_age=60)
    d = decide(Packages(("nginx", "uwsgi"), cache_valid_time=3600), "nginx 1.22 installed\nuwsgi 2.0 config-files\n",
               recent)
    assert d.changed and d.reason == "not installed: uwsgi"
    assert "PACKAGES=uwsgi\nUPDATE=0\n" in d.script


def test_file_same_content_is_ok_with_reason():
    f = File("/etc/x.conf", "hello\n", mode="0644")
    import hashlib
    digest = hashlib.sha256(b"hello\n").hexdigest()
    d = decide(f, f"file 644 root root {digest}")
    assert not d.changed
    assert d.reason == "content, mode 0644 and owner root:root as wanted"


def test_file_mode_drift_fixes_mode_only():
    import hashlib
    digest = hashlib.sha256(b"x").hexdigest()
    d = decide(File("/etc/x", "x", mode="0640"), f"file 644 root root {digest}")
    assert d.changed and d.reason == "mode 0644 -> 0640"
    assert d.script.strip() == "chmod 0640 /etc/x"


def test_file_diff_shows_old_and_new_but_never_secrets():
    import base64
    import hashlib
    old = "a\nb\n"
    fact = f"file 644 root root {hashlib.sha256(old.encode()).hexdigest()}\n{base64.b64encode(old.encode()).decode()}"
    d = decide(File("/etc/x", "a\nc\n"), fact, want_diff=True)
    assert "-b\n" in d.diff and "+c\n" in d.diff
    s = decide(File("/etc/env", "TOKEN=s3cr3t\n", secret=True), fact, want_diff=True)
    assert "s3cr3t" not in s.diff and "hidden" in s.diff


def test_link_and_absent_decisions():
    assert not decide(Link("/a", "/b"), "link /b").changed
    d = decide(Link("/a", "/b"), "link /c")
    assert d.changed and d.reason == "points at /c; wanted -> /b" and d.backup == ("/a",)
    assert decide(Absent("/etc/nginx/sites-enabled/default"), "absent").reason == "already absent"
    assert decide(Absent("/x"), "link /y").changed
    assert decide(Absent("/d"), "dir 755 root root").script.startswith("echo 'refusing")


def test_service_states():
    assert decide(Service("nginx"), "enabled=enabled\nactive=active").reason == "enabled and running"
    d = decide(Service("nginx"), "enabled=disabled\nactive=inactive")
    assert d.reason == "wanted enabled at boot and running; found disabled, inactive"
    assert (decide(Service("nginx"), "enabled=\nactive=").reason
            == "wanted enabled at boot and running; found not-found, unknown")


def test_a_service_started_by_its_change_performs_its_restart_handlers():
    app = Service("app", fulfils=("restart app",))
    assert decide(app, "enabled=enabled\nactive=inactive").fulfils == ("restart app",)
    assert decide(app, "enabled=disabled\nactive=active").fulfils == (), "enabling it restarts nothing"


def test_a_service_kept_off_counts_a_generated_sysv_unit_as_starting_at_boot():
    off = Service("uwsgi", running=False, enabled=False)
    d = decide(off, "enabled=generated\nactive=active")
    assert d.reason == "wanted disabled at boot and stopped; found generated, active"
    assert d.script == "systemctl disable -q uwsgi\nsystemctl stop uwsgi"
    assert decide(off, "enabled=disabled\nactive=inactive").reason == "disabled and stopped"
    assert not decide(off, "enabled=\nactive=inactive").changed, "a service that is not there is off"


def test_probe_output_is_split_per_resource():
    resources = [Packages(("nginx",)), Service("nginx")]
    out = ("@@provision system\ndebian 12 bookworm x86_64 5000\n4000\n"
           "@@provision fact 0\nnginx 1.22 installed\n@@provision fact 1\nenabled=enabled\nactive=active\n")
    system, found = facts.parse(out, resources)
    assert (system.os_id, system.os_version, system.machine, system.apt_lists_age) == ("debian", "12", "x86_64", 1000)
    plan = make_plan(resources, system, found)
    assert plan.changes == []


def test_notified_handlers_come_from_changes_only():
    resources = [Link("/a", "/b", notify=("reload nginx",)), Absent("/c", notify=("restart app",))]
    plan = make_plan(resources, FRESH, [r.parse(o) for r, o in zip(resources, ["absent", "absent"])])
    assert {n for d in plan.changes for n in d.resource.notify} == {"reload nginx"}


# -- the generated shell, run for real -------------------------------------------------------------

def sh(script: str, run_dir: Path) -> subprocess.CompletedProcess:
    """Run a remote script here, stderr merged as the session merges it."""
    return subprocess.run(["sh", "-c", script.replace(RUN_DIR, str(run_dir))], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def apply(resources, run_dir):
    """Probe, plan and apply like a deploy does, with the local shell as the host."""
    probe = sh(facts.probe_script(resources), run_dir)
    decisions = make_plan(resources, *facts.parse(probe.stdout, resources)).decisions
    changes = [d for d in decisions if d.changed]
    done = sh(apply_script(changes, {}, str(run_dir / "uploads")), run_dir)
    steps = parse_results(done.stdout, changes)
    assert [s.status for s in steps] == [StepStatus.CHANGED] * len(changes), done.stdout + done.stderr
    return decisions, steps


def test_file_link_directory_converge_then_report_ok(tmp_path):
    run_dir = tmp_path / "run"
    target = tmp_path / "conf" / "site"
    wanted = [Directory(str(target.parent), mode="0750", owner=USER, group=GROUP),
              File(str(target), "server {}\n", mode="0640", owner=USER, group=GROUP),
              Link(str(tmp_path / "enabled"), str(target)),
              Absent(str(tmp_path / "default"))]
    (tmp_path / "default").write_text("old default")
    decisions, _ = apply(wanted, run_dir)
    assert [d.changed for d in decisions] == [True, True, True, True]
    assert target.read_text() == "server {}\n" and oct(target.stat().st_mode & 0o777) == "0o640"
    assert os.readlink(tmp_path / "enabled") == str(target)
    assert not (tmp_path / "default").exists()
    assert not list(target.parent.glob(".*provision-tmp")), "the temp file must be renamed away"
    again, _ = apply(wanted, run_dir)
    assert [d.changed for d in again] == [False] * 4, [d.reason for d in again]


def test_failed_check_rolls_back_every_notifying_change(tmp_path):
    run_dir = tmp_path / "run"
    site, default = tmp_path / "site", tmp_path / "default"
    site.write_text("good\n")
    default.write_text("default site\n")
    _, steps = apply([File(str(site), "bad\n", owner=USER, group=GROUP, notify=("reload",)),
                      Absent(str(default), notify=("reload",))], run_dir)
    assert site.read_text() == "bad\n" and not default.exists()
    undo = "\n".join(rollback(i, s.decision) for i, s in enumerate(steps))
    reloaded = tmp_path / "reloaded"
    handler = Handler("reload", check=f"grep -q good {site}", run=f"touch {reloaded}")
    result = sh(handler_script(handler, undo), run_dir)
    assert result.returncode == Exit.CHECK_FAILED
    assert site.read_text() == "good\n", "the previous file is back"
    assert default.read_text() == "default site\n"
    assert not reloaded.exists(), "a failed check never runs the action"


def test_failed_verify_restores_and_reruns(tmp_path):
    run_dir = tmp_path / "run"
    current = tmp_path / "current"
    os.symlink("releases/one", current)
    _, steps = apply([Link(str(current), "releases/two", notify=("restart",))], run_dir)
    assert os.readlink(current) == "releases/two"
    handler = Handler("restart", run="true", verify=f"[ \"$(readlink {current})\" = releases/one ]",
                      explain="echo 'app failed to import'")
    result = sh(handler_script(handler, rollback(0, steps[0].decision)), run_dir)
    assert result.returncode == Exit.ROLLED_BACK
    assert os.readlink(current) == "releases/one"
    assert "app failed to import" in result.stdout


def test_a_failing_change_stops_the_rest(tmp_path):
    run_dir = tmp_path / "run"
    changes = [decide(r, "absent") for r in (Link(str(tmp_path / "a"), "x"), Directory(str(tmp_path / "no/such/deep"),
                                                                                        owner="no-such-user"))]
    changes.append(decide(Link(str(tmp_path / "c"), "y"), "absent"))
    done = sh(apply_script(changes, {}, str(run_dir / "up")), run_dir)
    assert [s.status for s in parse_results(done.stdout, changes)] == ["changed", "failed", "skipped"]
    assert "no-such-user" in parse_results(done.stdout, changes)[1].output
    assert not (tmp_path / "c").exists()


class LocalHost:
    """The local shell as the host of a handler (the session's `run`)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def run(self, script: str):
        done = sh(script, self.run_dir)
        return type("Result", (), {"rc": done.returncode, "out": done.stdout})


@pytest.mark.parametrize("service_first", [False, True])
def test_a_handler_whose_service_a_later_change_started_is_only_proven(tmp_path, service_first):
    run_dir = tmp_path / "run"
    conf, unit = File(str(tmp_path / "app.ini"), "new\n", owner=USER, group=GROUP, notify=("restart",)), \
        Service("app", fulfils=("restart",))
    _, steps = apply([conf], run_dir)
    started = [StepResult(decide(unit, "enabled=enabled\nactive=inactive"), StepStatus.CHANGED)]
    steps = started + steps if service_first else steps + started
    restarted = tmp_path / "restarted"
    handler = Handler("restart", run=f"touch {restarted}", verify=f"grep -q new {conf.path}")
    [result] = run_handlers(LocalHost(run_dir), [handler], steps)
    assert restarted.exists() == service_first, "a service started after the change already runs it"
    assert result.status == (HandlerStatus.RAN if service_first else HandlerStatus.VERIFIED), result.message


def test_a_started_service_that_fails_its_proof_is_rolled_back_and_restarted(tmp_path):
    run_dir = tmp_path / "run"
    conf = File(str(tmp_path / "app.ini"), "bad\n", owner=USER, group=GROUP, notify=("restart",))
    (tmp_path / "app.ini").write_text("good\n")
    _, steps = apply([conf], run_dir)
    steps.append(StepResult(decide(Service("app", fulfils=("restart",)), "enabled=enabled\nactive=inactive"),
                            StepStatus.CHANGED))
    restarted = tmp_path / "restarted"
    handler = Handler("restart", run=f"touch {restarted}", verify=f"grep -q good {conf.path}")
    [result] = run_handlers(LocalHost(run_dir), [handler], steps)
    assert result.status == HandlerStatus.FAILED and "rolled back" in result.message
    assert (tmp_path / "app.ini").read_text() == "good\n" and restarted.exists(), "the old state, restarted"


class RecordingHost:
    """A host that records uploads and scripts (what apply_changes sends it)."""

    def __init__(self):
        self.uploads, self.scripts = [], []

    def upload(self, local, remote_dir, make_dir=True):
        self.uploads.append((local, remote_dir))
        return f"{remote_dir}/{local}"

    def run(self, script):
        self.scripts.append(script)
        return type("Result", (), {"rc": 0, "out": ""})


def test_an_upload_sent_early_serves_the_same_change_planned_again_only():
    host, release = RecordingHost(), File("/srv/app/release", "x")
    first = release.change("new release a", "install a; shipped at 1", upload=lambda: "a.tar", upload_key="a")
    early = EarlyUploads(host, [first])
    again = release.change("new release a", "install a; shipped at 2", upload=lambda: "a.tar", upload_key="a")
    apply_changes(host, [again], early=early)
    assert host.uploads == [("a.tar", early.dir)] and f"{early.dir}/a.tar" in host.scripts[-1]

    host = RecordingHost()
    early = EarlyUploads(host, [first])
    apply_changes(host, [release.change("new release b", "install b", upload=lambda: "b.tar", upload_key="b")],
                  early=early)
    assert [name for name, _ in host.uploads] == ["a.tar", "b.tar"], "planned otherwise: sent again"
    assert host.scripts[0] == f"rm -rf {early.dir}" and host.uploads[1][1] != early.dir
