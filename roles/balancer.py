"""A balancer: nginx proxies the site to the app hosts of the inventory (config/topology.py).

The app hosts are an `upstream` in a file of its own (with an upstream more for each app that runs
on some of them only: app_hosts). A rolling release takes an app host out of the
traffic at the app host itself (firewall.drain); only an app host without its firewall
(`firewall: false`) is marked `down` here instead, with a reload (`route_around`), whose cost
docs/topology.md gives. On any other host the file must not exist (a host that stopped being a
balancer loses it).
"""

import ipaddress
from pathlib import Path

from provisioner.config.topology import UPSTREAM_KEEPALIVE_SECONDS, UPSTREAM_METHODS, nginx_seconds
from provisioner.remote.quoting import assign
from provisioner.resources import Absent, Template
from provisioner.templating import render

from .app import context
from .layout import Layout
from .nginx import watching_workers


def resources(v):
    at = Layout.of(v)
    if v.site_tier == "balancer":
        yield Template(at.upstream_conf, "nginx/upstream.conf.j2", upstream_context(v), notify=("reload nginx",))
    else:
        yield Absent(at.upstream_conf, notify=("reload nginx",))


def handlers(v):
    return []


def upstream_context(v, down: frozenset[str] = frozenset()) -> dict:
    """The upstream template's context, with the app hosts named in `down` marked down: the site's
    upstream, then one for each app that runs on some app hosts only (app_hosts), same settings."""
    at = Layout.of(v)

    def servers(hosts):
        return [(name, f"{_host(address)}:{v.http_port}", name in down) for name, address in hosts]
    upstreams = [(at.upstream_name, servers(v.upstream)),
                 *((at.app_upstream_name(app), servers(hosts)) for app, hosts in v.app_upstreams.items())]
    return {**context(v), "method": UPSTREAM_METHODS[v.upstream_method], "upstreams": upstreams,
            "keepalive_seconds": UPSTREAM_KEEPALIVE_SECONDS}


def route_around(v, names: frozenset[str], templates: Path) -> str:
    """Shell for a balancer: its upstream with `names` marked down, reloaded, old workers drained (its
    read timeout)."""
    text = render("nginx/upstream.conf.j2", upstream_context(v, names), templates)
    return "\n".join([assign("UPSTREAM_FILE", Layout.of(v).upstream_conf), assign("UPSTREAM_TEXT", text),
                      assign("DRAIN_SECONDS", v.uwsgi_read_timeout),
                      watching_workers("balancer-route.sh")])


def fail_timeout(host, balancers: list) -> int:
    """The longest upstream_fail_timeout of the `balancers` in front of `host`, in seconds."""
    return max((nginx_seconds(b.vars.upstream_fail_timeout) for b in balancers
                if host.name in (name for name, _ in b.vars.upstream)), default=0)


def _host(address: str) -> str:
    """An IPv6 address in brackets, as nginx's `server` wants it; names and IPv4 as they are."""
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address
