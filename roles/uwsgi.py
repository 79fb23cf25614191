"""uWSGI runs the app: Debian's uWSGI with the python3 plugin, under a systemd unit of our own.

The ini lives outside apps-enabled, and Debian's generic uwsgi service is kept off, so no second
instance ever starts; the unit stops with SIGTERM, which is what makes die-on-term right.

Restarts drop no request (docs/zero-downtime.md): nginx connects to `uwsgi_socket`, a symlink to the
socket of the instance that serves; the handler starts a standby on a socket of its own, proves its
health, points the link at it, restarts the unit and points the link back (uwsgi-swap.sh).
"""

from pathlib import Path

from provisioner.engine.handlers import Handler
from provisioner.engine.verify import unit_failure, uwsgi_check
from provisioner.remote.quoting import Raw, assign, function
from provisioner.resources import Directory, Service, SystemdUnit, Template

from .app import context, restart_handler
from .base import packages
from .layout import Layout, deployed_apps, uwsgi_sockets, uwsgi_stats_sockets

HERE = Path(__file__).parent


def resources(v):
    yield packages(v, "uwsgi", "uwsgi-plugin-python3")
    yield Service("uwsgi", running=False, enabled=False)
    yield Directory(Layout.of(v).uwsgi_dir)
    for a in deployed_apps(v):
        yield from _app_resources(a)


def _app_resources(v):
    """One app's unit: its ini, environment file and systemd unit, each a reason to restart it."""
    at = Layout.of(v)
    restart = (restart_handler(v),)
    # The stats sockets' directory (`provision top`): made here for the standby of the first restart
    # after it appears, and by the unit's ExecStartPre after a reboot empties /run.
    yield Directory(uwsgi_stats_sockets(v.uwsgi_socket)[0], mode="0700", owner=v.app_user, group=v.app_group)
    yield Template(at.ini, "uwsgi/app.ini.j2", context(v), notify=restart)
    yield Template(at.env_file, "app/env.j2", context(v), mode="0640", group=v.app_group, secret=True,
                   notify=restart)
    yield Template(at.unit_file, "systemd/uwsgi-app.service.j2", context(v), kind=SystemdUnit,
                   notify=restart)
    # started here (a first deploy, or after it had stopped), it already runs what changed above it
    yield Service(at.unit, fulfils=restart)


def handlers(v):
    return [Handler(
        restart_handler(a),
        run=swap_restart(a),
        verify=uwsgi_check(a.uwsgi_socket, a.health_path),
        # the journal of the instance that failed: the standby (a bad release) or the unit
        explain=unit_failure(Layout.of(a).unit),
    ) for a in deployed_apps(v)]


def swap_restart(v) -> str:
    """Shell: restart the app's unit while a proven standby takes the traffic (uwsgi-swap.sh)."""
    at = Layout.of(v)
    main, standby = uwsgi_sockets(v.uwsgi_socket)
    params = dict(UNIT=at.unit, STANDBY_UNIT=f"{at.unit}-standby", INI=at.ini, ENV_FILE=at.env_file,
                  LINK=v.uwsgi_socket, MAIN=main, STANDBY=standby,
                  DRAIN_SECONDS=v.uwsgi_harakiri or DRAIN_WITHOUT_HARAKIRI)
    return "\n".join([*(assign(k, value) for k, value in params.items()),
                      function("healthy", uwsgi_check(Raw('"$1"'), v.health_path, tries=1)),
                      (HERE / "uwsgi-swap.sh").read_text()])


DRAIN_WITHOUT_HARAKIRI = 30
"""Seconds an instance may take to answer what it accepted before it is restarted anyway."""
