"""The production front around the site: what nginx answers before a request reaches the app.

The site's own parts (methods, rate limits, JSON error pages) are snippets of site.conf.j2; this role
adds the default server that closes requests for host names no site serves (444), written only when
server_name names the site's hosts (`_` means the site answers every name itself).
"""

from provisioner.resources import Absent, Template

from .app import context


def default_server_file(v) -> str:
    return f"/etc/nginx/conf.d/provision-default-{v.http_port}.conf"


def resources(v):
    path = default_server_file(v)
    if v.server_name.strip() == "_":
        yield Absent(path, notify=("reload nginx",))
    else:
        yield Template(path, "nginx/default-server.conf.j2", context(v), notify=("reload nginx",))


def handlers(v):
    return []
