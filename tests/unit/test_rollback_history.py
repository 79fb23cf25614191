"""Releases, rollback and history (issue 23): the release list and the history file read and written
by their real shell scripts against temp dirs, the rollback's choice of release, its stack."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from provisioner import PROJECT_ROOT
from provisioner.engine.deploy import HostReport
from provisioner.engine.history import HISTORY_FILE, entry
from provisioner.engine.rollback import RollbackStack
from provisioner.engine.status import HostStatus
from provisioner.errors import UserError
from provisioner.inventory import load_inventory
from provisioner.remote import scripts
from provisioner.resources import SystemFacts
from provisioner.resources.release_meta import KeptRelease, list_script, parse_list, source_info, went_live
from provisioner.resources.release_switch import ReleaseSwitch
from provisioner.stack import STACK
from provisioner.stack.tls import ACME_WEBROOT

pytestmark = pytest.mark.unit


def sh(script: str) -> str:
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def kept_on(root: Path, live: dict[str, int], current: str, meta: dict[str, dict] | None = None,
            incomplete: tuple[str, ...] = ()) -> None:
    """A host's app root: releases (complete unless named in `incomplete`) with their live stamps."""
    for rid in [*live, *incomplete]:
        (root / "releases" / rid).mkdir(parents=True)
    for rid, at in live.items():
        (root / "releases" / rid / ".complete").touch()
        if at:
            (root / "releases" / rid / ".provision-live").write_text(f"{at} ops@ctl\n")
    for rid, data in (meta or {}).items():
        (root / "releases" / rid / ".provision-release.json").write_text(json.dumps(data) + "\n")
    (root / "current").symlink_to(root / "releases" / current)


def test_the_release_list_script_reads_what_the_host_keeps(tmp_path):
    kept_on(tmp_path, {"aaa": 100, "bbb": 300, "ccc": 200, "old": 0}, current="ccc",
            meta={"bbb": {"commit": "f00", "dirty": True, "shipped_by": "ops@ctl", "requirements_key": "k1"}},
            incomplete=("half",))
    found = parse_list(sh(list_script(str(tmp_path))))
    # the current first, then the most recently live, then "old" (no stamp: from before the stamps, or
    # a release whose restart was undone), though installed last; "half" never completed
    assert [r.id for r in found] == ["ccc", "bbb", "aaa", "old"]
    assert [r.current for r in found] == [True, False, False, False]
    bbb = found[1].as_dict()
    assert (bbb["live_at"], bbb["live_by"], bbb["commit"], bbb["dirty"]) == (300, "ops@ctl", "f00", True)
    assert found[3].live_at is None and found[3].meta == {}


def test_a_damaged_metadata_file_shows_as_unknown():
    [r] = parse_list("current x\nrelease x 5\nmeta {not json\nlive garbage\n")
    assert r.current and r.meta == {} and r.live_at is None and r.recency == (False, 5)


def test_the_stamp_a_switch_writes_is_read_back(tmp_path):
    kept_on(tmp_path, {"aaa": 0}, current="aaa")
    sh(went_live(str(tmp_path / "releases" / "aaa")))
    [r] = parse_list(sh(list_script(str(tmp_path))))
    assert r.live_at and r.live_by.count("@") == 1


KEPT = [KeptRelease("c0ffee", 1, current=True, live_at=30), KeptRelease("beef01", 1, live_at=20),
        KeptRelease("beef02", 1, live_at=10)]


def test_rollback_goes_to_the_release_live_before_the_current_one_or_the_one_named():
    assert ReleaseSwitch("/srv/a").choose(KEPT) == "beef01"
    assert ReleaseSwitch("/srv/a", "beef02").choose(KEPT) == "beef02"
    assert ReleaseSwitch("/srv/a", "c0f").choose(KEPT) == "c0ffee"


@pytest.mark.parametrize("to, kept, says", [
    ("beef", KEPT, "'beef' names more than one kept release"),
    ("dead", KEPT, "'dead' is not kept on this host (kept: c0ffee (current), beef01, beef02)"),
    ("", KEPT[:1], "no earlier release is kept on this host"),
])
def test_a_release_the_host_does_not_keep_is_refused_naming_what_it_keeps(to, kept, says):
    with pytest.raises(UserError) as refused:
        ReleaseSwitch("/srv/a", to).choose(kept)
    assert says in refused.value.cause


def test_the_switch_moves_current_stamps_it_and_saves_both_for_the_undo():
    switch = ReleaseSwitch("/srv/a", "beef02", notify=("restart app",))
    decision = switch.decide(KEPT, SystemFacts())
    assert decision.changed and decision.upload is None
    assert decision.reason == "rolling back from c0ffee to beef02"
    assert decision.backup == ("/srv/a/current", "/srv/a/releases/beef02/.provision-live")
    assert "/srv/a/releases/beef02" in decision.script
    assert not ReleaseSwitch("/srv/a", "c0ffee").decide(KEPT, SystemFacts()).changed


def test_the_rollback_stack_declares_only_the_release_switch_and_its_handler():
    host = load_inventory(PROJECT_ROOT / "inventories" / "production.yml").select("all")[0]
    resources, handlers = RollbackStack(STACK, "beef").declare(host.vars)
    assert [type(r) for r in resources] == [ReleaseSwitch] and resources[0].to == "beef"
    assert resources[0].notify == ("restart app",) and [h.name for h in handlers] == ["restart app"]


def test_the_history_stays_bounded_and_every_line_is_json(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    history = state / "history" / "history.jsonl"
    kept_on(tmp_path / "app", {"aaa": 1}, current="aaa")
    for n in range(25):
        sh(scripts.fragment("history_append.sh", FILE=history, KEEP=10, ENTRY=json.dumps({"n": n})[:-1],
                            LINKS=f"{tmp_path}/app/current\n{tmp_path}/none/current"))
    entries = [json.loads(line) for line in history.read_text().splitlines()]
    assert 10 <= len(entries) <= 11 and entries[-1] == {"n": 24, "current": ["aaa", ""]}
    assert oct(history.stat().st_mode & 0o777) == "0o600"
    assert oct(history.parent.stat().st_mode & 0o777) == "0o700"
    # its parent stays open: on a host that is /var/lib/provision, and nginx serves ACME challenges from it
    assert oct(state.stat().st_mode & 0o777) == "0o755"
    assert PurePosixPath(HISTORY_FILE).parent != PurePosixPath(ACME_WEBROOT).parent


def test_the_source_of_a_git_checkout_is_its_commit_and_whether_it_is_dirty(tmp_path):
    assert source_info(tmp_path) == {}
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    (tmp_path / "app.py").write_text("x = 1\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    info = source_info(tmp_path)
    assert len(info["commit"]) == 40 and info["dirty"] is False
    (tmp_path / "app.py").write_text("x = 2\n")
    assert source_info(tmp_path)["dirty"] is True


def test_only_runs_that_reached_the_host_and_did_something_enter_its_history():
    reached = {"channels": 1, "scripts": 2}
    assert entry("deploy", HostReport("h", HostStatus.OK, metrics=reached)) is None  # nothing changed
    assert entry("deploy", HostReport("h", HostStatus.FAILED, error="template error")) is None  # never connected
    failed = entry("rollback", HostReport("h", HostStatus.FAILED, error="release 'x' is not kept", metrics=reached))
    assert (failed["action"], failed["result"], failed["error"], failed["changes"]) == (
        "rollback", "failed", "release 'x' is not kept", [])


ADMIN, SITE = "unix:/run/admin/uwsgi.sock", "unix:/run/site/uwsgi.sock"


def combined_line(status: int, took: str, upstream: str = SITE) -> str:
    return f'1.2.3.4 - - [x] "GET / HTTP/1.1" {status} 5 "-" "a b c" "{upstream}" {took}\n'


def json_line(status: int, took: str, upstream: str = SITE) -> str:
    """access_log_format json, as nginx's escape=json writes it (a quote in the user agent escaped)."""
    return ('{"time":"2026-01-01T00:00:00+00:00","remote_addr":"1.2.3.4","method":"GET","uri":"/",'
            f'"status":{status},"body_bytes_sent":5,"request_time":{took},"upstream_addr":"{upstream}",'
            '"user_agent":"a \\"b\\" c"}\n')


def top_sample(tmp_path, lines: list[str], apps: dict[str, tuple[str, dict]]) -> dict:
    """roles/top-sample.py against stand-ins on loopback: a stub_status page counting 120 requests
    more, `lines` appended to the access log during the sample, and for each app (name -> its
    upstream and the stats its uWSGI socket answers) a stats socket."""
    import socket
    import threading
    import time

    counts = iter([100, 221])
    first_look = threading.Event()
    server = socket.create_server(("127.0.0.1", 0))
    sockets = {}
    for name in apps:
        sockets[name] = socket.socket(socket.AF_UNIX)
        sockets[name].bind(str(tmp_path / f"{name}.sock"))
        sockets[name].listen()

    def nginx():
        for _ in range(2):
            conn, _ = server.accept()
            conn.recv(4096)
            conn.sendall(f"HTTP/1.1 200 OK\r\n\r\nActive connections: 7 \nserver accepts handled requests\n"
                         f" 9 9 {next(counts)} \nReading: 0 Writing: 1 Waiting: 6 \n".encode())
            conn.close()
            first_look.set()

    def uwsgi(name):
        conn, _ = sockets[name].accept()
        conn.sendall(json.dumps(apps[name][1]).encode())
        conn.close()

    log = tmp_path / "access.log"
    log.write_text('1.2.3.4 - - [x] "GET /old HTTP/1.1" 500 0 "-" "-" 9.000\n')  # before the sample: not read

    def write_log():
        first_look.wait(20)
        time.sleep(0.4)  # the sampler went to the log's end as the first look ended; it reads at 1 s
        with log.open("a") as f:
            f.writelines(lines)

    threads = [threading.Thread(target=t) for t in (nginx, write_log)]
    threads += [threading.Thread(target=uwsgi, args=(name,)) for name in apps]
    for t in threads:
        t.start()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    each = [arg for name, (upstream, _) in apps.items() for arg in (name, upstream, str(tmp_path / f"{name}.sock"))]
    out = subprocess.run(["python3", str(PROJECT_ROOT / "roles" / "top-sample.py"), address, str(log), "1", *each],
                         capture_output=True, text=True, timeout=30)
    for t in threads:
        t.join()
    server.close()
    for s in sockets.values():
        s.close()
    return json.loads(out.stdout)


def workers(busy: int, idle: int) -> list[dict]:
    return [{"pid": 1, "status": "busy"}] * busy + [{"pid": 1, "status": "idle"}] * idle


@pytest.mark.parametrize("log_line", [combined_line, json_line], ids=["combined", "json"])
def test_top_sample_reads_the_status_page_the_log_written_meanwhile_and_the_stats_socket(tmp_path, log_line):
    """One app; 4 log lines during the sample in either access_log_format, one of another format."""
    lines = [log_line(status, took) for status, took in ((200, "0.010"), (404, "0.020"), (503, "0.400"),
                                                           (499, "0.001"))]
    lines.append('1.2.3.4 - - [x] "GET / HTTP/1.1" 200 5 "-" "old format"\n')
    sample = top_sample(tmp_path, lines, {"site": (SITE, {"pid": 1, "listen_queue": 3, "workers": workers(1, 2)})})
    assert 1 <= sample["seconds"] < 10, "the sample's own length, never a logged request's time"
    assert sample["requests_per_s"] == pytest.approx(120 / sample["seconds"], rel=0.01)
    assert (sample["logged"], sample["share_4xx"], sample["share_5xx"], sample["share_client_closed"]) == (
        4, 0.25, 0.25, 0.25)
    assert (sample["p50_ms"], sample["p99_ms"]) == (pytest.approx(20), pytest.approx(400))
    assert (sample["workers_busy"], sample["workers_idle"], sample["listen_queue"], sample["active_connections"]) == (
        1, 2, 3, 7)
    assert sample["app_memory_bytes"] > 0 and sample["sampler_cpu_seconds"] > 0
    assert "apps" not in sample, "one app: the host's row is the app's"


@pytest.mark.parametrize("log_line", [combined_line, json_line], ids=["combined", "json"])
def test_top_sample_splits_the_requests_by_the_app_nginx_passed_them_to(tmp_path, log_line):
    """Two apps: each app's figures are the log lines whose upstream is its socket (a static file
    nginx answered itself, upstream "-", counts for the host only) and its own uWSGI's stats."""
    lines = [log_line(200, "0.010", ADMIN), log_line(500, "0.300", ADMIN), log_line(404, "0.020"),
             log_line(200, "0.001", "-")]
    sample = top_sample(tmp_path, lines, {
        "admin": (ADMIN, {"pid": 1, "listen_queue": 2, "workers": workers(2, 0)}),
        "site": (SITE, {"pid": 1, "listen_queue": 1, "workers": workers(0, 3)})})
    assert (sample["logged"], sample["workers_busy"], sample["workers_idle"], sample["listen_queue"]) == (4, 2, 3, 3)
    admin, site = sample["apps"]
    assert (admin["app"], admin["logged"], admin["share_5xx"], admin["p99_ms"]) == ("admin", 2, 0.5, pytest.approx(300))
    assert admin["requests_per_s"] == pytest.approx(2 / sample["seconds"], rel=0.01)
    assert (admin["workers_busy"], admin["workers_idle"], admin["listen_queue"]) == (2, 0, 2)
    assert (site["app"], site["logged"], site["share_4xx"], site["workers_idle"], site["listen_queue"]) == (
        "site", 1, 1.0, 3, 1)
