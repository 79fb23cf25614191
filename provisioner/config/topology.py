"""A site of many hosts, read from the inventory: balancers (group `lb_group`) in front of app hosts
(group `app_hosts_group`).

Each host's settings gain three computed values the roles read:
    site_tier      "single" (today's stack alone: no group, both groups, or no app group at all),
                   "balancer" (nginx proxies to the app hosts) or "app" (behind the balancers)
    upstream       on a balancer: the app hosts as (name, private_address), in inventory order
    balancers      on an app host: the balancers' private addresses (what its firewall admits)
    vrrp_peers     on a balancer with floating_address: the other balancers as (name, private_address)
    vrrp_priority  its VRRP priority: the first balancer of the group highest (roles/floating.py)
    apps_left_out, app_upstreams  where each app runs, by its app_hosts group (config/apps.py placed)
They come from the whole inventory, not from the hosts a command selects: deploying one app host
never makes a balancer forget the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import math
import re
from typing import Any

from provisioner.config.apps import placed
from provisioner.config.kinds import Invalid, Kind, text
from provisioner.errors import UserError

# A balancer closes a connection to an app host once it is this old (after the request on it) or idle
# this long: so an app host drained for a rolling release sees its connections end within seconds,
# each closed by the balancer itself, which never sends on a connection it closed. Below the app
# host nginx's keepalive_timeout (75 s): the app host never closes one a balancer may reuse.
UPSTREAM_KEEPALIVE_SECONDS = 4
UPSTREAM_METHODS = {"round_robin": "", "least_conn": "least_conn;", "ip_hash": "ip_hash;",
                    "random": "random two least_conn;"}


def _method(value: Any) -> str:
    if value not in UPSTREAM_METHODS:
        raise Invalid()
    return value


def _serial(value: Any) -> str:
    """`3` or `30%` (or empty: every host at once), kept as the text `rolling.batches` reads."""
    if value is None or value == "":
        return ""
    text = str(value).strip() if not isinstance(value, bool) else ""
    if not re.fullmatch(r"[1-9][0-9]*%?", text) or (text.endswith("%") and int(text[:-1]) > 100):
        raise Invalid()
    return text


_TIME_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}


def nginx_seconds(text: str) -> int:
    """An nginx time ("10s", "1m30s", "30") in whole seconds, rounded up ("off": 0)."""
    return math.ceil(sum(int(n) * _TIME_UNITS[unit or "s"] for n, unit in re.findall(r"(\d+)(ms|[smhdwMy])?", text)))


def _floating(value: Any) -> str:
    """An IPv4 address, with an optional /prefix (default /32), or empty (no floating address)."""
    if value is None or value == "":
        return ""
    try:
        interface = ipaddress.IPv4Interface(str(value).strip())
    except ValueError:
        raise Invalid() from None
    return str(interface)


def vrrp_router_id(values: dict) -> int:
    """The floating address's last byte: unique on the segment as long as the sites' addresses are."""
    address = values["floating_address"]
    return int(address.split("/")[0].rsplit(".", 1)[1]) if address else 0


def vrrp_password(values: dict) -> str:
    """A site's own 8 characters (VRRP's PASS: sent in clear, it keeps another site's adverts out, no more)."""
    return hashlib.sha256(f"{values['app_name']} {values['floating_address']}".encode()).hexdigest()[:8]


FLOATING = Kind("an IPv4 address with an optional /prefix, like 10.0.0.100/24 (empty: none)", _floating,
                "10.0.0.100/24")
VRRP_PASSWORD = text("1 to 8 printable characters (VRRP's PASS authentication)", r"[!-~]{1,8}", "'s3cr3t!1'",
                     numbers=True, maxlen=8)
UPSTREAM_METHOD = Kind("one of " + ", ".join(UPSTREAM_METHODS), _method, "least_conn")
SERIAL = Kind("a number of hosts or a percentage like 30% (empty = all at once)", _serial, "1")


def site_tier(name: str, groups: dict[str, list[str]], v) -> str:
    balancer = name in groups.get(v.lb_group, ())
    app = name in groups.get(v.app_hosts_group, ())
    if balancer and not app and groups.get(v.app_hosts_group):
        return "balancer"
    if app and not balancer and groups.get(v.lb_group):
        return "app"
    return "single"


def with_topology(hosts: dict, groups: dict[str, list[str]], refused: set[str] = frozenset()) -> dict:
    """Every host with site_tier, upstream and balancers set (inventory.Host objects, replaced). `refused`
    hosts (settings refused) are in no tier: a balancer in front of one is checked once it is fixed, and
    selecting that balancer refuses the run (Inventory.select)."""
    tiers = {name: site_tier(name, groups, host.vars) for name, host in hosts.items()}
    out = {}
    for name, host in hosts.items():
        v, tier = host.vars, tiers[name]
        upstream = [(h, hosts[h].vars.private_address) for h in groups.get(v.app_hosts_group, ())
                    if tiers.get(h) == "app"] if tier == "balancer" else []
        balancers = [hosts[h].vars.private_address for h in groups.get(v.lb_group, ())
                     if tiers.get(h) == "balancer"] if tier == "app" else []
        if tier == "balancer" and not refused & set(groups.get(v.app_hosts_group, ())):
            _check_balancer(name, v, upstream)
        lb = [h for h in groups.get(v.lb_group, ()) if tiers.get(h) == "balancer"]
        v = v.computed(site_tier=tier, upstream=upstream, balancers=balancers, **_vrrp(name, v, lb, hosts))
        app_hosts = _app_hosts(v, tiers, groups) | (refused & set(groups.get(v.app_hosts_group, ())))
        out[name] = dataclasses.replace(host, vars=v.computed(**placed(name, v, tier, groups, app_hosts)))
    return out


def _app_hosts(v, tiers: dict[str, str], groups: dict[str, list[str]]) -> set[str]:
    """The hosts an app of host `v` may be limited to (app_hosts): the site's app hosts behind
    balancers, else every host that is no balancer."""
    if v.site_tier == "single":
        return {h for h, tier in tiers.items() if tier != "balancer"}
    return {h for h in groups.get(v.app_hosts_group, ()) if tiers.get(h) == "app"}


def _vrrp(name: str, v, lb: list[str], hosts: dict) -> dict:
    """A balancer's VRRP peers and priority (only with a floating_address); their addresses must be IPv4."""
    if name not in lb or not v.floating_address:
        return {"vrrp_peers": [], "vrrp_priority": 0}
    if len(lb) < 2:
        raise UserError(f"floating_address is set for balancer {name}, the only host of group {v.lb_group}; "
                        "an address moves only between two balancers or more",
                        f"add a second balancer to group {v.lb_group}, or leave floating_address unset")
    for host in lb:
        try:
            ipaddress.IPv4Address(hosts[host].vars.private_address)
        except ValueError:
            raise UserError(f"balancer {host} has private_address {hosts[host].vars.private_address!r}; VRRP "
                            "for floating_address needs each balancer's IPv4 address",
                            f"set private_address of {host} to its IPv4 address in the floating address's subnet") from None
    if not 1 <= v.vrrp_router_id <= 255:
        raise UserError(f"vrrp_router_id of balancer {name} is {v.vrrp_router_id}; VRRP needs 1-255",
                        "set vrrp_router_id to a number from 1 to 255 that no other site on the network uses")
    return {"vrrp_peers": [(h, hosts[h].vars.private_address) for h in lb if h != name],
            "vrrp_priority": 200 - 10 * min(lb.index(name), 15)}


def _check_balancer(name: str, v, upstream: list[tuple[str, str]]) -> None:
    if not upstream:
        raise UserError(f"host {name} is in group {v.lb_group} but no app host of group {v.app_hosts_group} "
                        "is behind it (each is in both groups)",
                        f"put app hosts in group {v.app_hosts_group} only, or take {name} out of {v.lb_group}")
    if v.cache_locations:
        raise UserError(f"cache_locations is set for balancer {name}; a balancer does not cache answers",
                        f"set cache_locations on the hosts of group {v.app_hosts_group} only (group_vars)")
