"""The app: its own system user, and the current release shipped from the controller."""

from provisioner.resources import AppRelease, Directory, SystemUser

from .layout import Layout


def resources(v):
    yield SystemUser(v.app_user, home=v.app_root)
    yield Directory(v.app_root)
    yield Directory(f"{v.app_root}/releases")
    yield AppRelease(v.app_source, v.app_requirements, v.app_root, keep=v.keep_releases,
                     notify=("restart app",))


def handlers(v):
    return []


def context(v) -> dict:
    """What every template of the app sees: the settings, and every path from the Layout."""
    at = Layout.of(v)
    return {"v": v, "paths": at}
