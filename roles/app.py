"""The app: its own system user, and the current release shipped from the controller."""

from provisioner.resources import AppRelease, Directory, SystemUser

from .layout import Layout, deployed_apps, uwsgi_sockets, uwsgi_stats_sockets


def resources(v):
    for a in deployed_apps(v):
        yield SystemUser(a.app_user, home=a.app_root)
        yield Directory(a.app_root)
        yield Directory(f"{a.app_root}/releases")
        yield AppRelease(a.app_source, a.app_requirements, a.app_root, keep=a.keep_releases,
                         notify=(restart_handler(a),))


def handlers(v):
    return []


def restart_handler(a) -> str:
    """The name of the handler that restarts app `a` (one of `apps_of(v)`): each app its own, so a
    change to one restarts only that one."""
    return f"restart app {a.app_name}" if getattr(a, "apps", None) else "restart app"


def context(v) -> dict:
    """What every template of the app sees: the settings, every path from the Layout, and the sockets
    the app's unit and a restart's standby bind (uwsgi_socket is a link to the one that serves)."""
    main, standby = uwsgi_sockets(v.uwsgi_socket)
    return {"v": v, "paths": Layout.of(v), "main_socket": main, "standby_socket": standby,
            "stats_sockets": uwsgi_stats_sockets(v.uwsgi_socket)}
