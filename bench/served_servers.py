"""The servers the served benchmark compares, all serving the same deployed example app on one lab host.

Two are the full stack deployed by provision (nginx -> uWSGI) with different settings; two are the
app's own venv running another WSGI server straight on a port: Flask's development server and
gunicorn with 4 sync workers (gunicorn's wheel is downloaded on the controller and installed offline:
lab hosts reach nothing but the apt proxy).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from provisioner.labs.load import PREDICT_BODY
from provisioner.remote.quoting import Raw, cmd

GUNICORN_WHEELS = ("gunicorn==23.0.0", "packaging")
APP_ROOT = "/srv/model_api/current"  # provision's layout for the example app (roles/layout.py)
APP_USER = "model_api"

# The guides' configuration (DigitalOcean's Flask + uWSGI + nginx guide and its kind), expressed in
# provision's settings: 4 processes x 2 threads, uWSGI's own listen backlog (100), every request
# logged by uWSGI, no lazy-apps, no harakiri, Debian's nginx defaults (768 worker connections,
# listen backlog 511).
GUIDES = {"uwsgi_processes": 4, "uwsgi_threads": 2, "uwsgi_listen": 100, "uwsgi_request_logging": True,
          "uwsgi_lazy_apps": False, "uwsgi_harakiri": 0, "nginx_worker_connections": 768,
          "nginx_listen_backlog": 511}


@dataclass
class Server:
    """One way of serving the app: `prepare` makes it answer on `port` of the host."""
    name: str
    port: int
    settings: dict | None = None  # provision deploy settings (nginx -> uWSGI), or None
    command: str = ""  # otherwise: a command run as the app user in the app's directory

    def url(self, address: str) -> str:
        return f"http://{address}:{self.port}/predict"


SERVERS = (
    Server("provision", 80, settings={}),
    Server("guides", 80, settings=GUIDES),
    Server("gunicorn", 8001, command=f"{APP_ROOT}/venv/bin/gunicorn --workers 4 --worker-class sync "
                                     f"--bind 0.0.0.0:8001 model_api.wsgi:app"),
    Server("flask dev", 8002, command=f"{APP_ROOT}/venv/bin/flask --app model_api.wsgi run "
                                      f"--host 0.0.0.0 --port 8002"),
)


# Candidate defaults for provision's uWSGI, measured against each other with `--sweep` (same host, same
# run): processes x threads on a 2-core host. Everything else stays provision's default.
SWEEP = tuple(Server(f"uWSGI {p}x{t}", 80, settings={"uwsgi_processes": p, "uwsgi_threads": t})
              for p, t in ((2, 1), (2, 2), (4, 1), (4, 2)))


def ssh(host, command: str, stdin: bytes | None = None) -> str:
    """`command` as root on the lab host (the lab's deploy user has passwordless sudo)."""
    argv = ["ssh", "-i", host.key_file, "-o", f"UserKnownHostsFile={host.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
            f"{host.user}@{host.address}", cmd("sudo", "-n", "sh", "-c", command)]
    out = subprocess.run(argv, input=stdin, capture_output=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"{host.name}: {command!r} failed ({out.returncode}): {out.stderr.decode()[-800:]}")
    return out.stdout.decode()


def deploy(inventory: Path, settings: dict) -> None:
    """Converge the host to `settings` on top of the inventory the lab wrote."""
    data = yaml.safe_load(inventory.read_text())
    data["all"]["vars"] = settings
    inventory.write_text(yaml.safe_dump(data))
    out = subprocess.run([sys.executable, "-m", "provisioner", "deploy", "-H", "all", "-i", str(inventory)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"deploy failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")


def install_gunicorn(host) -> None:
    """gunicorn into the app's venv, from wheels the controller downloads (pure Python: any platform)."""
    wheels = Path(tempfile.mkdtemp(prefix="provision-bench-wheels-"))
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.11", "--platform", "any", "-d", str(wheels),
                    *GUNICORN_WHEELS], check=True, capture_output=True)
    ssh(host, "rm -rf /tmp/bench-wheels && mkdir /tmp/bench-wheels")
    for wheel in wheels.glob("*.whl"):
        ssh(host, cmd("cat", Raw(">"), f"/tmp/bench-wheels/{wheel.name}"), stdin=wheel.read_bytes())
    ssh(host, f"{APP_ROOT}/venv/bin/pip install -q --no-index --disable-pip-version-check "
              f"--find-links /tmp/bench-wheels gunicorn")


def start_direct(host, server: Server) -> None:
    """Run `server.command` as a transient unit of its own on the host and wait until it answers."""
    unit = "bench-" + server.name.replace(" ", "-")
    ssh(host, f"systemctl stop {unit} 2>/dev/null; systemctl reset-failed {unit} 2>/dev/null; "
              f"systemd-run --unit {unit} --uid {APP_USER} --gid {APP_USER} "
              f"--working-directory {APP_ROOT}/app {server.command}")
    wait_answering(server.url(host.address))


def wait_answering(url: str, timeout: float = 30) -> None:
    """Until `url` answers a POST /predict with 200 (the app is loaded), or give up."""
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(url, PREDICT_BODY.encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:  # a lab host's namespaced address
                if answer.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} does not answer after {timeout:.0f} s")
            time.sleep(0.3)
