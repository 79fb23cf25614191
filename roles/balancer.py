"""A balancer: nginx proxies the site to the app hosts of the inventory (config/topology.py).

The app hosts are an `upstream` in a file of its own, so a rolling release can mark some of them
`down` (and put them back) with a reload, without touching the site. On any other host the file
must not exist (a host that stopped being a balancer loses it).
"""

import ipaddress

from provisioner.config.topology import UPSTREAM_METHODS
from provisioner.resources import Absent, Template

from .app import context
from .layout import Layout


def resources(v):
    at = Layout.of(v)
    if v.site_tier == "balancer":
        yield Template(at.upstream_conf, "nginx/upstream.conf.j2", upstream_context(v), notify=("reload nginx",))
    else:
        yield Absent(at.upstream_conf, notify=("reload nginx",))


def handlers(v):
    return []


def upstream_context(v, down: frozenset[str] = frozenset()) -> dict:
    """The upstream template's context, with the app hosts named in `down` marked down."""
    servers = [(name, f"{_host(address)}:{v.http_port}", name in down) for name, address in v.upstream]
    return {**context(v), "method": UPSTREAM_METHODS[v.upstream_method], "servers": servers}


def _host(address: str) -> str:
    """An IPv6 address in brackets, as nginx's `server` wants it; names and IPv4 as they are."""
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address
