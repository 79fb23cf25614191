"""Metrics for a monitoring system, opt-in (metrics_scraper): Debian's prometheus-nginx-exporter reads
nginx's loopback status page, and a small exporter of our own (uwsgi-exporter.py) translates the app's
uWSGI stats; both listen on the host's private address only, and the host's firewall admits their
ports from the scrapers only (roles/firewall.py). A balancer runs no app: it gets neither.

Off (the default), or turned off: our unit, drop-in and script are absent and both exporters stopped.
"""

import ipaddress
from pathlib import Path

from provisioner.config.metrics import metrics_on
from provisioner.engine.handlers import Handler
from provisioner.remote.quoting import assign, cmd
from provisioner.resources import Absent, Directory, File, Service, SystemdUnit, Template

from . import nginx
from .base import packages
from .layout import deployed_apps, uwsgi_stats_sockets

NGINX_EXPORTER = "prometheus-nginx-exporter"
NGINX_DROPIN = f"/etc/systemd/system/{NGINX_EXPORTER}.service.d/provision.conf"
SCRIPT_DIR = "/usr/local/lib/provision"
HERE = Path(__file__).parent


def uwsgi_exporter(v) -> str:
    return f"provision-uwsgi-exporter-{v.app_name}"


def script(v) -> str:
    return f"{SCRIPT_DIR}/uwsgi-exporter-{v.app_name}.py"


def resources(v):
    apps = deployed_apps(v)
    if not metrics_on(v):
        yield Absent(NGINX_DROPIN, notify=("stop metrics",))
        for a in apps:
            unit_file = f"/etc/systemd/system/{uwsgi_exporter(a)}.service"
            for path in (unit_file, f"/etc/systemd/system/multi-user.target.wants/{uwsgi_exporter(a)}.service",
                         script(a)):
                yield Absent(path, notify=("stop metrics",))
        return
    yield packages(v, NGINX_EXPORTER)
    yield Directory(NGINX_DROPIN.rpartition("/")[0])
    yield Template(NGINX_DROPIN, "systemd/nginx-exporter.conf.j2", {"v": v, "listen": listen(v, v.metrics_nginx_port),
                   "scrape_uri": f"http://{nginx.STATUS_ADDRESS}/nginx_status"}, kind=SystemdUnit,
                   notify=("restart metrics",))
    yield Directory(SCRIPT_DIR)
    yield Service(NGINX_EXPORTER)
    for a in apps:   # one exporter per app: it runs as the app's user, the only one that reads its stats
        yield File(script(a), (HERE / "uwsgi-exporter.py").read_text(), notify=("restart metrics",))
        yield Template(f"/etc/systemd/system/{uwsgi_exporter(a)}.service", "systemd/uwsgi-exporter.service.j2", {
            "v": a, "script": script(a), "address": a.private_address, "port": a.metrics_uwsgi_port,
            "stats_socket": uwsgi_stats_sockets(a.uwsgi_socket)[1]}, kind=SystemdUnit, notify=("restart metrics",))
        yield Service(uwsgi_exporter(a))


def handlers(v):
    apps = deployed_apps(v)
    units = (NGINX_EXPORTER, *(uwsgi_exporter(a) for a in apps))
    if not metrics_on(v):
        # our unit's file and boot link are gone already; Debian's exporter stays installed, stopped and disabled
        return [Handler("stop metrics", run=f"{cmd('systemctl', 'stop', *units)} 2>/dev/null; "
                                            f"{cmd('systemctl', 'disable', '-q', NGINX_EXPORTER)} 2>/dev/null; "
                                            "systemctl daemon-reload")]
    parses = "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')"
    return [Handler(
        "restart metrics",
        # what the units run is there and parses
        check=" && ".join([f"test -x /usr/bin/{NGINX_EXPORTER}", *(cmd("python3", "-c", parses, script(a)) for a in apps)]),
        run=cmd("systemctl", "restart", *units),
        verify=scrape_check(v, apps),
        explain=cmd("journalctl", *(f"--unit={u}" for u in units), "-n", 20, "--no-pager", "-o", "cat"),
    )]


def scrape_check(v, apps) -> str:
    """Shell: every endpoint answers on the private address with its first metric (metrics-check.sh)."""
    urls = [f"http://{listen(a, a.metrics_uwsgi_port)}/metrics" for a in apps]
    return "\n".join([assign("NGINX_URL", f"http://{listen(v, v.metrics_nginx_port)}/metrics"),
                      assign("UWSGI_URLS", " ".join(urls)), (HERE / "metrics-check.sh").read_text()])


def listen(v, port: int) -> str:
    """ADDRESS:PORT on the private address ([ADDRESS]:PORT for IPv6)."""
    address = ipaddress.ip_address(v.private_address)
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
