"""uWSGI runs the app: Debian's uWSGI with the python3 plugin, under a systemd unit of our own.

The ini lives outside apps-enabled so Debian's init script never starts a second instance; the
unit stops with SIGTERM, which is what makes die-on-term right.
"""

from provisioner.handlers import Handler
from provisioner.resources import Command, Directory, Packages, Service, SystemdUnit, Template
from provisioner.verify import uwsgi_check

from .app import context
from .layout import Layout


def resources(v):
    at = Layout.of(v)
    yield Packages(("uwsgi", "uwsgi-plugin-python3"),
                   cache_valid_time=v.apt_cache_valid_time, lock_timeout=v.apt_lock_timeout)
    yield Command("systemctl disable -q uwsgi.service; systemctl stop uwsgi.service",
                  unless="! systemctl is-enabled -q uwsgi.service && ! systemctl is-active -q uwsgi.service",
                  why="Debian's generic uwsgi service is off (apps run only under our own unit)")
    yield Directory(at.uwsgi_dir)
    yield Template(at.ini, "uwsgi/app.ini.j2", context(v), notify=("restart app",))
    yield Template(at.env_file, "app/env.j2", context(v), mode="0640", group=v.app_group, secret=True,
                   notify=("restart app",))
    yield Template(f"/etc/systemd/system/{at.unit}.service", "systemd/uwsgi-app.service.j2", context(v),
                   kind=SystemdUnit, notify=("restart app",))
    yield Service(at.unit)


# The last Python traceback in the log, but not a KeyboardInterrupt (uWSGI stops the other workers
# with SIGINT when one fails to load the app): that is the cause, however much uWSGI logged after it.
LAST_TRACEBACK = r"""awk '/^Traceback \(most recent call last\):/ {tb = $0; next}
tb != "" {tb = tb "\n" $0; if ($0 !~ /^[ \t]/) {if ($0 !~ /^KeyboardInterrupt/) last = tb; tb = ""}}
END {if (last != "") print last}'"""


def handlers(v):
    at = Layout.of(v)
    journal = f"journalctl -u {at.unit} --since \"$provision_since\" --no-pager -o cat"
    return [Handler(
        "restart app",
        run=f"provision_since=$(date '+%F %T'); systemctl restart {at.unit}",
        verify=uwsgi_check(v.uwsgi_socket, v.health_path),
        # journald stores a dying service's output a moment after systemd reports the failure
        explain=(f"for i in $(seq 20); do {journal} | grep -q Traceback && break; sleep 0.1; done\n"
                 f"{journal} | {LAST_TRACEBACK}\n{journal} | tail -n 12"),
    )]
