"""uWSGI runs the app: Debian's uWSGI with the python3 plugin, under a systemd unit of our own.

The ini lives outside apps-enabled, and Debian's generic uwsgi service is kept off, so no second
instance ever starts; the unit stops with SIGTERM, which is what makes die-on-term right.
"""

from provisioner.engine.handlers import Handler
from provisioner.engine.verify import restart_unit, unit_failure, uwsgi_check
from provisioner.resources import Directory, Packages, Service, SystemdUnit, Template

from .app import context
from .layout import Layout


def resources(v):
    at = Layout.of(v)
    yield Packages(("uwsgi", "uwsgi-plugin-python3"),
                   cache_valid_time=v.apt_cache_valid_time, lock_timeout=v.apt_lock_timeout)
    yield Service("uwsgi", running=False, enabled=False)
    yield Directory(at.uwsgi_dir)
    yield Template(at.ini, "uwsgi/app.ini.j2", context(v), notify=("restart app",))
    yield Template(at.env_file, "app/env.j2", context(v), mode="0640", group=v.app_group, secret=True,
                   notify=("restart app",))
    yield Template(at.unit_file, "systemd/uwsgi-app.service.j2", context(v), kind=SystemdUnit,
                   notify=("restart app",))
    yield Service(at.unit)


def handlers(v):
    at = Layout.of(v)
    return [Handler(
        "restart app",
        run=restart_unit(at.unit),
        verify=uwsgi_check(v.uwsgi_socket, v.health_path),
        explain=unit_failure(at.unit),
    )]
