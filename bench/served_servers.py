"""The servers the served benchmark compares, all serving the same deployed example app on one lab host,
all running at once (each idle while another is measured), so that slices of different servers can
alternate every few seconds and a busy moment of the shared machine touches them alike.

- deployed: the site `provision deploy` made, on port 80 (nginx -> uWSGI, provision's defaults);
- sibling: a second uWSGI of the same app from a copy of the deployed ini with some lines changed,
  behind an nginx server block of its own on another port: the guides' configuration, and the
  processes x threads candidates of `--sweep`;
- direct: another WSGI server straight on a port, from the app's venv: gunicorn (its wheel downloaded
  on the controller and installed offline: lab hosts reach nothing but the apt proxy) and Flask's
  development server.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from provisioner.labs.common import wait_until
from provisioner.labs.load import PREDICT_BODY
from provisioner.remote.quoting import Raw, cmd

GUNICORN_WHEELS = ("gunicorn==23.0.0", "packaging")
APP = "model_api"
APP_ROOT = f"/srv/{APP}/current"  # provision's layout for the example app (roles/layout.py)
DEPLOYED_INI = f"/etc/uwsgi/apps-provision/{APP}.ini"
# The guides' server block (DigitalOcean's Flask + uWSGI + nginx guide and its kind): nothing but the pass.
GUIDES_SITE = """\
server {{
    listen {port} backlog={backlog};
    location / {{
        include uwsgi_params;
        uwsgi_pass unix:{socket};
    }}
}}
"""


@dataclass(frozen=True)
class Server:
    """One way of serving the app on `port` of the lab host."""
    name: str
    port: int
    ini: dict | None = None  # sibling: ini lines to set (value) or to drop (None)
    backlog: int = 511  # sibling: its nginx listen backlog (nginx's default)
    command: str = ""  # direct: run as the app user in the app's directory

    @property
    def slug(self) -> str:
        return self.name.replace(" ", "-").lower()

    def url(self, address: str) -> str:
        return f"http://{address}:{self.port}/predict"

    def describe(self) -> str:
        if self.ini is not None:
            lines = ", ".join(f"{k} = {v}" if v is not None else f"no {k}" for k, v in self.ini.items())
            return f"provision's uWSGI ini with {lines}; nginx: listen backlog={self.backlog}, uwsgi_pass only"
        return self.command or "provision deploy, defaults: nginx site -> uWSGI (docs/settings.md)"


DEPLOYED = Server("provision", 80)
# 4 processes x 2 threads, uWSGI's own listen backlog (100), every request logged, no lazy-apps, no
# harakiri; nginx's default backlog (511).
GUIDES = Server("guides", 8080, ini={"processes": 4, "threads": 2, "listen": 100, "disable-logging": None,
                                    "lazy-apps": None, "harakiri": None, "post-buffering": None})
SERVERS = (
    DEPLOYED, GUIDES,
    Server("gunicorn", 8001, command=f"{APP_ROOT}/venv/bin/gunicorn --workers 4 --worker-class sync "
                                     f"--bind 0.0.0.0:8001 model_api.wsgi:app"),
    Server("flask dev", 8002, command=f"{APP_ROOT}/venv/bin/flask --app model_api.wsgi run "
                                      f"--host 0.0.0.0 --port 8002"),
)
# Candidates for provision's defaults (`--sweep`), each a sibling of the deployed site with the guides'
# nginx block: processes x threads on a 2-core host, and 2x2 without harakiri (and its post-buffering);
# the deployed site beside them shows what provision's own server block costs.
SWEEP = (DEPLOYED, *(Server(f"uWSGI {p}x{t}", 8080 + i, ini={"processes": p, "threads": t}, backlog=4096)
                     for i, (p, t) in enumerate(((2, 1), (2, 2), (4, 1), (4, 2)), start=1)),
         Server("2x2 no harakiri", 8085, ini={"harakiri": None, "post-buffering": None}, backlog=4096))


def ssh(host, command: str, stdin: bytes | None = None) -> str:
    """`command` as root on the lab host (the lab's deploy user has passwordless sudo)."""
    argv = ["ssh", "-i", host.key_file, "-o", f"UserKnownHostsFile={host.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
            f"{host.user}@{host.address}", cmd("sudo", "-n", "sh", "-c", command)]
    out = subprocess.run(argv, input=stdin, capture_output=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"{host.name}: {command!r} failed ({out.returncode}): {out.stderr.decode()[-800:]}")
    return out.stdout.decode()


def deploy(inventory: Path) -> None:
    """provision deploy with its defaults, through the CLI, on the inventory the lab wrote."""
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


def _transient(unit: str, argv: str, *properties: str) -> str:
    """Shell that (re)starts `argv` as a transient systemd unit of the lab host."""
    props = " ".join(f"-p {p}" for p in properties)
    return (f"systemctl stop {unit} 2>/dev/null; systemctl reset-failed {unit} 2>/dev/null; "
            f"systemd-run --unit {unit} {props} {argv}")


def start(host, server: Server) -> None:
    """Make `server` answer on its port (the deployed one already does)."""
    if server.command:
        ssh(host, _transient(f"bench-{server.slug}", server.command, f"User={APP}", f"Group={APP}",
                             f"WorkingDirectory={APP_ROOT}/app"))
    elif server.ini is not None:
        ini, socket = f"/etc/uwsgi/bench-{server.slug}.ini", f"/run/{APP}/bench-{server.slug}.sock"
        edits = [word for key, value in server.ini.items()
                 for word in ("-e", f"/^{key} = /d" if value is None else f"s/^{key} = .*/{key} = {value}/")]
        ssh(host, cmd("sed", *edits, DEPLOYED_INI, Raw(">"), ini) + " && " +
            _transient(f"bench-uwsgi-{server.slug}", cmd("/usr/bin/uwsgi", "--ini", ini, "--socket", socket),
                       "KillSignal=SIGTERM"))
        site = GUIDES_SITE.format(port=server.port, backlog=server.backlog, socket=socket)
        ssh(host, cmd("cat", Raw(">"), f"/etc/nginx/sites-enabled/bench-{server.slug}.conf"), stdin=site.encode())
        ssh(host, "nginx -t -q && systemctl reload nginx")
    wait_answering(server.url(host.address))


def wait_answering(url: str, timeout: float = 60) -> None:
    """Until `url` answers a POST /predict with 200 (the app is loaded), or give up."""
    def answers() -> bool:
        request = urllib.request.Request(url, PREDICT_BODY.encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:  # a lab host's namespaced address
                return answer.status == 200
        except OSError:
            return False
    if not wait_until(answers, timeout, every=0.3):
        raise SystemExit(f"{url} does not answer after {timeout:.0f} s")
