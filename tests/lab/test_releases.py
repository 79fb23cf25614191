"""The supported host releases side by side: Debian 13 (trixie: nginx 1.26, uWSGI with the
python3.13 plugin) and Debian 12 (bookworm: nginx 1.22, python3.11) in one deploy run; then, on the
Debian 12 host, releases of a numpy app that share what did not change.

fresh hosts of both releases -> one deploy -> POST /predict through nginx on each -> a re-deploy
changes and restarts nothing -> the numpy app's releases (below). All through the real `provision` CLI.
"""

import json
import os
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from provisioner.labs.container import write_inventory
from provisioner.labs.container.network import veth_name
from provisioner.labs.model_app import model_app

pytestmark = pytest.mark.lab

IRIS_SETOSA = {"features": [5.1, 3.5, 1.4, 0.2]}


def deploy(inventory, known_hosts, pattern: str = "lab") -> tuple[int, dict]:
    """`provision deploy` of the lab hosts `pattern` selects (--json): its exit code and a report per host name."""
    result = subprocess.run([sys.executable, "-m", "provisioner", "deploy", "-H", pattern, "-i", str(inventory),
                             "--json"], capture_output=True, text=True, timeout=900,
                            env={**os.environ, "PROVISION_KNOWN_HOSTS": str(known_hosts)})
    assert result.stdout.startswith("{"), f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.returncode, {h["host"]: h for h in json.loads(result.stdout)["hosts"]}


def on_host(host, command: str) -> str:
    """`command`'s output on the host, as root, over SSH with its pinned key."""
    result = subprocess.run(["ssh", "-i", host.key_file, "-o", f"UserKnownHostsFile={host.known_hosts}",
                             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                             f"deploy@{host.address}", f"sudo sh -c {shlex.quote(command)}"],
                            capture_output=True, text=True, timeout=60)
    return result.stdout.strip()


def codename(host) -> str:
    """The host's own word for its release (/etc/os-release)."""
    return on_host(host, ". /etc/os-release; echo $VERSION_CODENAME")


def predict(address) -> dict:
    """POST /predict through nginx (both apps take the iris features)."""
    request = urllib.request.Request(f"http://{address}/predict", data=json.dumps(IRIS_SETOSA).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200 and answer.headers["Server"] == "nginx"
        return json.loads(answer.read())


def test_trixie_and_bookworm_hosts_serve_the_api_and_redeploy_as_a_noop(lab_hosts, tmp_path):
    [trixie] = lab_hosts(1, release="trixie")
    [bookworm] = lab_hosts(1, release="bookworm")
    assert (codename(trixie), codename(bookworm)) == ("trixie", "bookworm")
    inventory = write_inventory([trixie, bookworm], tmp_path / "inv.yml")
    known_hosts = tmp_path / "known_hosts"

    code, first = deploy(inventory, known_hosts)
    assert code == 0 and {h["status"] for h in first.values()} == {"changed"}, first

    for host in (trixie, bookworm):
        assert predict(host.address)["class"] == "setosa", host.name

    code, again = deploy(inventory, known_hosts)
    for name, report in again.items():
        assert (report["status"], report["changed"], report["handlers"]) == ("ok", 0, []), (name, report)
    assert code == 0

    releases_share_what_did_not_change(bookworm, tmp_path, known_hosts)


NUMPY_APP = {"app_module": "model_app.wsgi", "app_callable": "app"}
# What a code change may put on the host's link besides its file: the SSH handshake, the scripts, the
# manifest (measured: ~52 kB in all); the numpy wheel alone is ~16 MB, the weights 1 MB.
CODE_CHANGE_BYTES = 200_000
ROOT = "/srv/model_api"


def bytes_to(host) -> int:
    """Bytes sent to the host so far: the controller's end of its link (a veth)."""
    return int(Path(f"/sys/class/net/{veth_name(host.instance, host.address)}/statistics/tx_bytes").read_text())


def deploy_app(host, tmp_path, known_hosts, **settings) -> tuple[dict, int]:
    """Deploy the numpy app to `host` alone: its release's plan line and the bytes that went to the host."""
    inventory = write_inventory([host], tmp_path / "numpy.yml", host_vars={host.name: {**NUMPY_APP, **settings}})
    before = bytes_to(host)
    code, reports = deploy(inventory, known_hosts, host.name)
    report = reports[host.name]
    assert code == 0, report
    release = next(r for r in report["resources"] if r["resource"] == f"release {ROOT}/current")
    return release, bytes_to(host) - before


def release_dirs(host) -> list[str]:
    return on_host(host, f"ls {ROOT}/releases").split()


def releases_share_what_did_not_change(host, tmp_path, known_hosts):
    """A numpy app (its wheel from PyPI, 1 MB of weights): a code change sends its one file and shares
    the others (same inode) and the venv; a requirements change builds a new venv without sending the
    wheels again; an earlier release comes back without a transfer, and keep_releases prunes releases,
    venvs and files; no restart (main and standby, once per release) waits out uWSGI's NO MERCY."""
    app = model_app(tmp_path / "numpy_app", weights_bytes=1_000_000)
    src = {"app_source": str(app)}
    first, _ = deploy_app(host, tmp_path, known_hosts, **src)
    assert first["status"] == "changed" and "venv to build with its wheels" in first["reason"], first
    assert predict(host.address)["version"] == 1
    v1 = on_host(host, f"readlink {ROOT}/current")

    model_app(app, weights_bytes=1_000_000, version=2)
    code_change, sent = deploy_app(host, tmp_path, known_hosts, **src)
    assert "1 of 6 files to send" in code_change["reason"] and "venv reused" in code_change["reason"], code_change
    assert sent < CODE_CHANGE_BYTES, f"{sent} bytes sent to the host for a one-line change"
    assert predict(host.address)["version"] == 2
    v2 = on_host(host, f"readlink {ROOT}/current")
    inodes = on_host(host, f"stat -c %i {v1}/app/model_app/weights.bin {v2}/app/model_app/weights.bin "
                           f"{v1}/app/model_app/wsgi.py {v2}/app/model_app/wsgi.py").split()
    assert inodes[0] == inodes[1] and inodes[2] != inodes[3], inodes
    assert on_host(host, f"readlink {v1}/venv") == on_host(host, f"readlink {v2}/venv")

    (app / "requirements.txt").write_text((app / "requirements.txt").read_text() + "# pinned again\n")
    requirements_change, sent = deploy_app(host, tmp_path, known_hosts, **src)
    assert "venv to build" in requirements_change["reason"], requirements_change
    assert sent < CODE_CHANGE_BYTES, f"{sent} bytes: the wheels the host holds travelled again"
    assert len(on_host(host, f"ls {ROOT}/venvs").split()) == 2

    model_app(app, weights_bytes=1_000_000, version=1)
    (app / "requirements.txt").write_text((app / "requirements.txt").read_text().replace("# pinned again\n", ""))
    back, sent = deploy_app(host, tmp_path, known_hosts, **src, keep_releases=1)
    assert back["reason"] == f"release {Path(v1).name} is on the host; switching current to it", back
    assert sent < CODE_CHANGE_BYTES and predict(host.address)["version"] == 1
    assert len(release_dirs(host)) == 2, "keep_releases 1: the release switched to and the one it replaced"
    assert len(on_host(host, f"ls {ROOT}/venvs").split()) == 2, "the code change's release went, its venv stays"
    assert on_host(host, f"find {ROOT}/store -links 1 | wc -l") == "0", "no file that no release holds"
    assert on_host(host, "journalctl -u 'uwsgi-model_api*' --no-pager | grep -c 'NO MERCY' || :") == "0"
