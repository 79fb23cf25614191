"""The supported host releases side by side: Debian 13 (trixie: nginx 1.26, uWSGI with the
python3.13 plugin) and Debian 12 (bookworm: nginx 1.22, python3.11) in one deploy run.

fresh hosts of both releases -> one deploy -> POST /predict through nginx on each -> a re-deploy
changes and restarts nothing. All through the real `provision` CLI.
"""

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from provisioner.labs.container import write_inventory

pytestmark = pytest.mark.lab

IRIS_SETOSA = {"features": [5.1, 3.5, 1.4, 0.2]}


def deploy(inventory, known_hosts) -> tuple[int, dict]:
    """`provision deploy` of every lab host (--json): its exit code and a report per host name."""
    result = subprocess.run([sys.executable, "-m", "provisioner", "deploy", "-H", "lab", "-i", str(inventory),
                             "--json"], capture_output=True, text=True, timeout=900,
                            env={**os.environ, "PROVISION_KNOWN_HOSTS": str(known_hosts)})
    assert result.stdout.startswith("{"), f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.returncode, {h["host"]: h for h in json.loads(result.stdout)["hosts"]}


def codename(host) -> str:
    """The host's own word for its release (/etc/os-release), read over SSH with its pinned key."""
    result = subprocess.run(["ssh", "-i", host.key_file, "-o", f"UserKnownHostsFile={host.known_hosts}",
                             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                             f"deploy@{host.address}", ". /etc/os-release; echo $VERSION_CODENAME"],
                            capture_output=True, text=True, timeout=60)
    return result.stdout.strip()


def predict(address) -> dict:
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
