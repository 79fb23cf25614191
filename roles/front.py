"""The production front around the site: what nginx answers before a request reaches the app.

The site's own parts (methods, rate limits, JSON error pages, cache, WAF switch) are snippets of
site.conf.j2; this role adds the default server that closes requests for host names no site serves
(444), written only when server_name names the site's hosts (`_` means the site answers every name
itself), and the WAF: Debian's ModSecurity module and the OWASP CRS, with the site's rules file.
"""

from provisioner.resources import Absent, Directory, Template

from .app import context
from .base import packages


def default_server_file(v) -> str:
    return f"/etc/nginx/conf.d/provision-default-{v.http_port}.conf"


def waf_rules_file(v) -> str:
    return f"/etc/nginx/modsec/provision-{v.app_name}.conf"   # front-server.conf.j2 loads the same


def resources(v):
    if v.waf != "off":
        yield packages(v, "libnginx-mod-http-modsecurity", "modsecurity-crs")
        yield Directory("/etc/nginx/modsec")
        yield Template(waf_rules_file(v), "nginx/modsecurity.conf.j2", context(v), notify=("reload nginx",))
    if v.cache_locations:
        yield Directory("/var/cache/nginx")   # nginx makes the cache's own directory, not its parents
    path = default_server_file(v)
    if v.server_name.strip() == "_":
        yield Absent(path, notify=("reload nginx",))
    else:
        yield Template(path, "nginx/default-server.conf.j2", context(v), notify=("reload nginx",))


def handlers(v):
    return []
