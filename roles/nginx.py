"""nginx in front: our site in sites-available, enabled by a link, Debian's default site gone.

Every change is checked with `nginx -t` before a reload; a config that fails is rolled back and
never goes live. A running nginx is reloaded, never restarted.
"""

from pathlib import Path

from provisioner.engine.handlers import Handler
from provisioner.remote.quoting import assign
from provisioner.resources import Absent, Link, Service, Template

from .app import context
from .base import packages
from .layout import Layout, apps_of
from .tls import NginxSiteTemplate

STATUS_ADDRESS = "127.0.0.1:8019"  # nginx's status page, for `provision top`: on the loopback only
RELOAD_WAIT_SECONDS = 10  # for the old workers to stop taking connections (they do within ms)
HERE = Path(__file__).parent
STATUS_CONF = "/etc/nginx/conf.d/provision-status.conf"


def resources(v):
    at = Layout.of(v)
    yield packages(v, "nginx")
    yield Template("/etc/nginx/nginx.conf", "nginx/nginx.conf.j2", context(v), notify=("reload nginx",))
    yield Template(STATUS_CONF, "nginx/status.conf.j2", {"status_address": STATUS_ADDRESS}, notify=("reload nginx",))
    # rendered for both of nginx's ways to turn on HTTP/2; the host's nginx version picks (roles/tls.py)
    yield NginxSiteTemplate(at.site_available, "nginx/site.conf.j2", site_context(v), notify=("reload nginx",))
    yield Link(at.site_enabled, at.site_available, notify=("reload nginx",))
    yield Absent("/etc/nginx/sites-enabled/default", notify=("reload nginx",))
    yield Service("nginx")


def site_context(v) -> dict:
    """The site's template context: the host's, each app's settings and paths (one without apps), and
    the server blocks: the site's server_name with its apps, then each other name with its apps. A
    balancer has one block that answers every name (it passes them all to the app hosts); with apps
    limited to some app hosts (app_upstreams), a block for each name, with the limited apps of the name
    (their paths go to their own upstreams, the rest to every app host)."""
    apps = [(a, Layout.of(a)) for a in apps_of(v)]
    names = list(dict.fromkeys([v.server_name, *(a.server_name for a, _ in apps)]))
    if v.site_tier == "balancer" and not v.app_upstreams:
        return {**context(v), "apps": apps, "vhosts": [(" ".join(names), apps)]}
    if v.site_tier == "balancer":
        limited = [(a, at) for a, at in apps if a.app_name in v.app_upstreams]
        return {**context(v), "apps": apps,
                "vhosts": [(name, [(a, at) for a, at in limited if a.server_name == name]) for name in names]}
    vhosts = [(name, [(a, at) for a, at in apps if a.server_name == name]) for name in names]
    return {**context(v), "apps": apps, "vhosts": [(name, group) for name, group in vhosts if group]}


def handlers(v):
    reload = "\n".join([assign("WAIT_SECONDS", RELOAD_WAIT_SECONDS), watching_workers("nginx-reload.sh")])
    return [Handler("reload nginx", check="nginx -t -q", run=f"(\n{reload})")]


def watching_workers(script: str) -> str:
    """A role script that waits on nginx's workers (nginx-reload.sh, balancer-route.sh), after the
    function that lists them (nginx-workers.sh)."""
    return (HERE / "nginx-workers.sh").read_text() + (HERE / script).read_text()
