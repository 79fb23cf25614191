"""A site of many hosts, read from the inventory: balancers (group `lb_group`) in front of app hosts
(group `app_hosts_group`).

Each host's settings gain three computed values the roles read:
    site_tier      "single" (today's stack alone: no group, both groups, or no app group at all),
                   "balancer" (nginx proxies to the app hosts) or "app" (behind the balancers)
    upstream       on a balancer: the app hosts as (name, private_address), in inventory order
    balancers      on an app host: the balancers' private addresses (what its firewall admits)
They come from the whole inventory, not from the hosts a command selects: deploying one app host
never makes a balancer forget the others.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from provisioner.config.kinds import Invalid, Kind
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
    from provisioner.variables import Vars   # variables imports this module's kinds

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
        computed = {"site_tier": tier, "upstream": upstream, "balancers": balancers}
        out[name] = dataclasses.replace(host, vars=Vars({**dict(v.items()), **computed}, v.warnings))
    return out


def _check_balancer(name: str, v, upstream: list[tuple[str, str]]) -> None:
    if not upstream:
        raise UserError(f"host {name} is in group {v.lb_group} but no app host of group {v.app_hosts_group} "
                        "is behind it (each is in both groups)",
                        f"put app hosts in group {v.app_hosts_group} only, or take {name} out of {v.lb_group}")
    if v.cache_locations:
        raise UserError(f"cache_locations is set for balancer {name}; a balancer does not cache answers",
                        f"set cache_locations on the hosts of group {v.app_hosts_group} only (group_vars)")
