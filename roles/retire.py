"""Retiring what the inventory no longer has: an app renamed or removed (or a single app's app_name
changed) leaves its nginx site, uWSGI unit, socket and releases on the host from an earlier deploy.

The next deploy retires them without a failed request: the old site is disabled in the same apply
that enables the new one (so two sites never fight over a port: "duplicate listen options"), nginx
reloads, and only then the "retire apps" handler stops the old apps' units and removes them, their
sockets and (retired_releases: remove) their releases (retire-apps.sh). Both leftovers are listed by
the facts probe, so `deploy --check` shows what would be retired.
"""

from pathlib import Path

from provisioner.engine.handlers import Handler
from provisioner.remote.quoting import assign
from provisioner.resources import Leftovers

from .layout import Layout, apps_of

HERE = Path(__file__).parent
MANAGED_SITE = "# Managed by provision for app"   # site.conf.j2's header line
SITES = ("/etc/nginx/sites-enabled/{name}", "/etc/nginx/sites-available/{name}")


def resources(v):
    at = Layout.of(v)
    yield Leftovers("nginx site", keep=(at.app_name,), backup=SITES, notify=("reload nginx",),
                    listing=("for f in /etc/nginx/sites-enabled/*; do "
                             f"grep -qs '^{MANAGED_SITE}' \"$f\" && basename \"$f\"; done"),
                    removal='rm -f "/etc/nginx/sites-enabled/$NAME" "/etc/nginx/sites-available/$NAME"')
    yield Leftovers("app", keep=app_names(v), notify=("retire apps",),
                    listing=f'for f in {at.uwsgi_dir}/*.ini; do [ -e "$f" ] && basename "$f" .ini; done')


def handlers(v):
    params = dict(KEEP=" ".join(app_names(v)), UWSGI_DIR=Layout.of(v).uwsgi_dir,
                  REMOVE_RELEASES=int(v.retired_releases == "remove"))
    return [Handler("retire apps", run="\n".join([*(assign(k, value) for k, value in params.items()),
                                                  (HERE / "retire-apps.sh").read_text()]))]


def app_names(v) -> tuple[str, ...]:
    """The apps the host runs now (none on a balancer: it runs no app, and never had one)."""
    return () if v.site_tier == "balancer" else tuple(a.app_name for a in apps_of(v))
