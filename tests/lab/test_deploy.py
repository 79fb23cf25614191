"""End to end on real hosts (systemd, sshd, apt, nginx, uWSGI in containers): the main job.

fresh host -> deploy -> POST /predict through nginx answers -> re-deploy changes and restarts
nothing -> one setting changed: only its file changes and only its handler runs -> --check on a
changed setting, or on a new release, reports it and leaves the host and the controller alone. All
through the real `provision` CLI.
"""

import json
import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

from provisioner import PROJECT_ROOT
from provisioner.labs.container import write_inventory
from provisioner.resources.release_build import default_cache_dir

pytestmark = pytest.mark.lab


def provision(*args, check=True, timeout=600):
    result = subprocess.run([sys.executable, "-m", "provisioner", *map(str, args)], capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode not in (0, 4):
        raise AssertionError(f"provision {' '.join(map(str, args))} -> {result.returncode}\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def deploy_json(inventory, *extra):
    result = provision("deploy", "-H", "lab", "-i", inventory, "--json", *extra)
    return result.returncode, json.loads(result.stdout)["hosts"]


def remote(inventory, host, command):
    result = provision("run", "-H", host, "-i", inventory, "--", command)
    return result.stdout


def http(address, path, data=None, headers=None):
    req = urllib.request.Request(f"http://{address}{path}", data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, dict(r.headers), r.read()


def changed(host_report):
    return sorted(r["resource"] for r in host_report["resources"] if r["status"] in ("changed", "pending"))


def pids(inventory, host):
    out = remote(inventory, host, "systemctl show -p MainPID --value nginx uwsgi-model_api")
    return out.split()[-2:]


@pytest.fixture(autouse=True)
def own_known_hosts(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVISION_KNOWN_HOSTS", str(tmp_path / "known_hosts"))


def test_fresh_host_to_api_then_idempotent_then_one_change(lab_hosts, tmp_path):
    [host] = lab_hosts(1)
    inventory = write_inventory([host], tmp_path / "inv.yml")

    code, [first] = deploy_json(inventory)
    assert (code, first["status"]) == (0, "changed"), first
    # Every role's packages in one install (roles/base.py's first), listed once.
    packages = [r for r in changed(first) if r.startswith("packages ")]
    assert packages == ["packages python3 python3-venv uwsgi uwsgi-plugin-python3 nginx"], packages
    assert "absent /etc/nginx/sites-enabled/default" in changed(first)
    # The app's unit, started by this deploy, already runs the release: its restart is only proven
    # (no standby, no swap restart): one uWSGI start in the journal.
    assert [(h["name"], h["status"]) for h in first["handlers"]] == [("restart app", "verified"),
                                                                     ("reload nginx", "ran")], first["handlers"]
    assert first["remote"]["uploads"] == 1, "the release, sent while the packages installed, is sent once"
    starts = remote(inventory, host.name,
                    "journalctl -u 'uwsgi-model_api*' --no-pager -o cat | grep -c 'Starting uWSGI'")
    assert starts.split()[-1] == "1", starts

    # The API answers through nginx, from outside the host.
    status, headers, body = http(host.address, "/predict", json.dumps({"features": [5.1, 3.5, 1.4, 0.2]}).encode(),
                                 {"Content-Type": "application/json"})
    answer = json.loads(body)
    assert status == 200 and answer["class"] == "setosa", answer
    assert headers["Server"] == "nginx", "server_tokens off: no version"
    status, headers, body = http(host.address, "/static/robots.txt")
    assert status == 200 and "max-age" in headers["Cache-Control"] and "Expires" in headers
    status, headers, _ = http(host.address, "/healthz", headers={"Accept-Encoding": "gzip"})
    assert status == 200
    before = pids(inventory, host.name)

    # A second deploy is a no-op: nothing changed, no handler, nothing restarted; 2 remote scripts.
    code, [again] = deploy_json(inventory)
    assert (code, again["status"], again["changed"], again["handlers"]) == (0, "ok", 0, []), again
    assert all(r["reason"] for r in again["resources"]), "every ok says why"
    assert again["remote"]["channels"] == 1
    assert pids(inventory, host.name) == before

    # One setting changes: only the ini file, only its handler; nginx is not touched.
    inventory = write_inventory([host], tmp_path / "inv.yml", group_vars={"uwsgi_processes": 3})
    code, [third] = deploy_json(inventory)
    assert code == 0 and changed(third) == ["file /etc/uwsgi/apps-provision/model_api.ini"], third
    assert [(h["name"], h["status"]) for h in third["handlers"]] == [("restart app", "ran")]
    nginx_pid, app_pid = pids(inventory, host.name)
    assert nginx_pid == before[0] and app_pid != before[1]
    assert "processes = 3" in remote(inventory, host.name, "cat /etc/uwsgi/apps-provision/model_api.ini")

    # --check with a changed setting: reports the pending change with a diff, changes nothing.
    ini_before = remote(inventory, host.name, "sha256sum /etc/uwsgi/apps-provision/model_api.ini")
    inventory = write_inventory([host], tmp_path / "inv.yml", group_vars={"uwsgi_processes": 3, "uwsgi_threads": 4})
    code, [checked] = deploy_json(inventory, "--check", "--diff")
    assert code == 4 and checked["status"] == "pending"
    assert changed(checked) == ["file /etc/uwsgi/apps-provision/model_api.ini"]
    diff = next(r["diff"] for r in checked["resources"] if r["status"] == "pending")
    assert "-threads = 2" in diff and "+threads = 4" in diff, diff
    assert remote(inventory, host.name, "sha256sum /etc/uwsgi/apps-provision/model_api.ini") == ini_before
    assert pids(inventory, host.name) == [nginx_pid, app_pid]

    # --check where a new release would be built: reported, and nothing new on the controller or the host.
    app = tmp_path / "app"
    shutil.copytree(PROJECT_ROOT / "examples" / "model_api", app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "CHANGES").write_text("a file the host has not seen\n")
    look = "ls -a /srv/model_api/releases /var/lib/provision; ls -d /tmp/provision-upload-* 2>/dev/null || :"
    on_host = remote(inventory, host.name, look)
    inventory = write_inventory([host], tmp_path / "inv.yml", group_vars={"uwsgi_processes": 3, "app_source": str(app)})
    code, [checked] = deploy_json(inventory, "--check")
    assert code == 4 and changed(checked) == ["release /srv/model_api/current"], checked
    reason = next(r["reason"] for r in checked["resources"] if r["status"] == "pending")
    new_id = reason.split()[2]
    assert not list(default_cache_dir().glob(f"releases/{new_id}*")), "--check built the release"
    assert remote(inventory, host.name, look) == on_host


def test_logs_status_and_run_on_two_hosts(lab_hosts, tmp_path):
    hosts = lab_hosts(2)
    inventory = write_inventory(hosts, tmp_path / "inv.yml")
    result = provision("deploy", "-H", "lab", "-i", inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 changed" in result.stdout

    for h in hosts:
        http(h.address, "/healthz?from-test-" + h.name)
    logs = provision("logs", "-H", "lab", "-i", inventory, "--service", "nginx", "--lines", "50").stdout
    for h in hosts:
        line = next(line for line in logs.splitlines() if f"from-test-{h.name}" in line)
        assert line.startswith(h.name) and "nginx.access" in line

    status = provision("status", "-H", "lab", "-i", inventory).stdout
    assert status.count("nginx: active") == 2 and status.count("uwsgi: active") == 2
    assert status.count("health: 200") == 2

    run = provision("run", "-H", hosts[0].name, "-i", inventory, "--", "id -un; hostname")
    assert "root" in run.stdout and hosts[0].name in run.stdout


def test_logs_follow_streams_and_leaves_nothing_running(lab_hosts, tmp_path):
    [host] = lab_hosts(1)
    inventory = write_inventory([host], tmp_path / "inv.yml")
    assert provision("deploy", "-H", host.name, "-i", inventory).returncode == 0
    follower = subprocess.Popen([sys.executable, "-m", "provisioner", "logs", "-H", host.name, "-i", str(inventory),
                                 "--follow", "--lines", "0", "--service", "nginx"],
                                stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        seen = ""
        for attempt in range(40):
            http(host.address, f"/healthz?follow-{attempt}")
            import select
            ready, _, _ = select.select([follower.stdout], [], [], 0.5)
            if ready:
                seen = follower.stdout.readline()
                if "follow-" in seen:
                    break
        assert "follow-" in seen and seen.startswith(host.name)
    finally:
        follower.send_signal(2)  # Ctrl-C
        follower.wait(timeout=20)
    leftovers = remote(inventory, host.name, "pgrep -a tail || echo none; pgrep -a journalctl || true")
    assert "tail -F" not in leftovers, leftovers
