"""The app: its own system user, and the current release shipped from the controller."""

from provisioner.resources import AppRelease, Directory, SystemUser

from .layout import Layout, uwsgi_sockets, uwsgi_stats_sockets


def resources(v):
    yield SystemUser(v.app_user, home=v.app_root)
    yield Directory(v.app_root)
    yield Directory(f"{v.app_root}/releases")
    yield AppRelease(v.app_source, v.app_requirements, v.app_root, keep=v.keep_releases,
                     notify=("restart app",))


def handlers(v):
    return []


def context(v) -> dict:
    """What every template of the app sees: the settings, every path from the Layout, and the sockets
    the app's unit and a restart's standby bind (uwsgi_socket is a link to the one that serves)."""
    main, standby = uwsgi_sockets(v.uwsgi_socket)
    return {"v": v, "paths": Layout.of(v), "main_socket": main, "standby_socket": standby,
            "stats_sockets": uwsgi_stats_sockets(v.uwsgi_socket)}
