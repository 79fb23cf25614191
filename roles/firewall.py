"""An app host behind balancers admits the app's ports from the balancers only (nftables); a balancer
with a floating address admits VRRP from the other balancers only (the same file, unit and table name);
a host with metrics (roles/metrics.py) admits the exporters' ports from metrics_scraper only (the same
table, beside the balancers' rules on an app host).

Its own table (`inet provision_APP`) in its own file, loaded by its own unit: the host's other
rules, and Debian's nftables.service, are left alone. A host that stops being an app host behind
balancers (or sets firewall: false) loses the table, the file and the unit.

While its app is down (the app's unit stopped or failed, no standby serving) the host refuses its
balancers with a third table, `inet provision_APP_down`, which the app's unit loads as it stops and
deletes once it is ready (a drop-in): a balancer then counts the host failed at its first request and
tries the next, a POST too, instead of passing on the 502 of the host's nginx (docs/topology.md).

For a rolling release the same host takes itself out of the balancers' traffic with a second table,
`inet provision_APP_drain` (app-drain.sh), and no balancer reloads. A deploy outside a roll declares
that table absent: a host a stopped roll left out comes back in with its next deploy.
"""

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from provisioner.config.metrics import metrics_on
from provisioner.config.topology import UPSTREAM_KEEPALIVE_SECONDS
from provisioner.engine.handlers import Handler
from provisioner.errors import UserError
from provisioner.remote.quoting import assign, cmd
from provisioner.resources import (Absent, Decision, Directory, Resource, Service, SystemdUnit, SystemFacts,
                                   Template)
from provisioner.templating import render

from .app import context
from . import floating
from .base import packages
from .layout import Layout, apps_of, uwsgi_sockets


def wanted(v) -> bool:
    return v.site_tier == "app" and v.firewall


def guards_vrrp(v) -> bool:
    """A balancer with a floating address admits VRRP from the other balancers only."""
    return floating.wanted(v) and v.firewall


def guards_metrics(v) -> bool:
    """A host with metrics on admits the exporters' ports from the scrapers only (roles/metrics.py)."""
    return metrics_on(v) and v.firewall


def resources(v):
    at = Layout.of(v)
    if wanted(v) or guards_vrrp(v) or guards_metrics(v):
        yield packages(v, "nftables")
        rules = "nftables/balancer-vrrp.nft.j2" if guards_vrrp(v) else "nftables/app-firewall.nft.j2"
        yield Template(at.firewall_rules, rules, rules_context(v), notify=("reload firewall",))
    if wanted(v):
        # each app's unit loads a table of its own when it stops: the host refuses its balancers while
        # any app is down (they all share its ports), and takes them back once every app runs
        for a in apps_of(v):
            app_at = Layout.of(a)
            yield Template(app_at.app_down_rules, "nftables/app-down.nft.j2", {**rules_context(a), "table": down_table(a)},
                           notify=("refresh app-down table",))
            yield Directory(app_at.app_unit_dropin.rpartition("/")[0])
            yield Template(app_at.app_unit_dropin, "systemd/app-down.conf.j2", down_context(a), kind=SystemdUnit)
    if wanted(v) or guards_vrrp(v) or guards_metrics(v):
        app_units = [(Layout.of(a).unit, Layout.of(a).app_down_rules) for a in apps_of(v)] if wanted(v) else []
        yield Template(at.firewall_unit_file, "systemd/provision-firewall.service.j2",
                       {**rules_context(v), "app_units": app_units}, kind=SystemdUnit, notify=("reload firewall",))
        yield Service(at.firewall_unit)
    else:
        # a balancer runs no app: it has no app unit to hold a drop-in
        app_paths = [p for a in apps_of(v) for p in (Layout.of(a).app_down_rules, Layout.of(a).app_unit_dropin)
                     ] if v.site_tier != "balancer" else []
        for path in (at.firewall_rules, *app_paths, at.firewall_unit_file, _wants_link(at)):
            yield Absent(path, notify=("drop firewall",))
    if v.site_tier == "app":
        yield InTheTraffic(drain_table(v), rolling=v.rolling)


def handlers(v):
    at = Layout.of(v)
    reload = Handler("reload firewall", check=f"nft -c -f {at.firewall_rules}", run=f"nft -f {at.firewall_rules}")
    if guards_vrrp(v) or (guards_metrics(v) and not wanted(v)):
        return [reload]
    if wanted(v):
        downs = [(down_table(a), Layout.of(a).app_down_rules) for a in apps_of(v)]
        return [reload,
                # new balancers while an app is down: its loaded table is replaced (else it stays until the app starts)
                Handler("refresh app-down table", check=" && ".join(f"nft -c -f {rules}" for _, rules in downs),
                        run="; ".join(f"if nft list table inet {down} >/dev/null 2>&1; then nft -f {rules}; fi"
                                      for down, rules in downs))]
    drop = "; ".join(f"if nft list table inet {t} >/dev/null 2>&1; then nft delete table inet {t}; fi"
                     for t in (table_name(v), *(down_table(a) for a in apps_of(v))))
    return [Handler("drop firewall", run=f"systemctl stop {at.firewall_unit} 2>/dev/null; systemctl daemon-reload; {drop}")]


def table_name(v) -> str:
    return f"provision_{v.app_name}"


def drain_table(v) -> str:
    return f"provision_{v.app_name}_drain"


def down_table(v) -> str:
    return f"provision_{v.app_name}_down"


def down_context(v) -> dict:
    """The app unit's drop-in: which table, and how it tells a restart's standby from an app down."""
    at = Layout.of(v)
    _, standby = uwsgi_sockets(v.uwsgi_socket)
    return {**context(v), "table": down_table(v), "link": v.uwsgi_socket,
            "standby_name": standby.rpartition("/")[2], "standby_unit": f"{at.unit}-standby"}


@dataclass
class InTheTraffic(Resource):
    """The host takes its balancers' traffic: no drain table. In a batch of a roll (`rolling`, set by
    the engine) the table stays: the roll puts the host back once it is healthy."""

    table: str
    rolling: bool = False

    def label(self) -> str:
        return f"nftables table inet {self.table}"

    def probe(self, want_diff: bool = False) -> str:
        return f"if nft list table inet {self.table} >/dev/null 2>&1; then echo out; fi"

    def decide(self, fact: str, system: SystemFacts, want_diff: bool = False) -> Decision:
        if fact != "out":
            return self.ok("absent: the host takes the balancers' traffic")
        if self.rolling:
            return self.ok("out of the balancers' traffic for this batch of the roll, which puts it back")
        return self.change("present: a stopped rolling release left the host out of the balancers' traffic; "
                           "deleted, the host takes traffic again", cmd("nft", "delete", "table", "inet", self.table))


def drain(v, out: bool, fail_timeout: int, templates: Path) -> str:
    """Shell run on the app host: out of its balancers' traffic (or back in), waiting until that is
    so (app-drain.sh says how long); `fail_timeout`: its balancers' longest, in seconds."""
    context = {**rules_context(v), "table": drain_table(v)}
    addresses = context["ipv4"] + [f"[{a}]" for a in context["ipv6"]]
    params = {
        "OUT": int(out), "TABLE": drain_table(v),
        "RULES": render("nftables/app-drain.nft.j2", context, templates),
        "SS_PORTS": "( " + " or ".join(f"sport = :{port}" for port in context["ports"]) + " )",
        "BALANCERS": " ".join(addresses),
        # requests in flight, then a connection's last use and its idle time at the balancer
        "DRAIN_SECONDS": v.uwsgi_read_timeout + 2 * UPSTREAM_KEEPALIVE_SECONDS,
        # a balancer tries a refused host again after its fail_timeout, with the next request it has
        "REJOIN_SECONDS": fail_timeout + 5,
    }
    return "\n".join([*(assign(k, value) for k, value in params.items()), (HERE / "app-drain.sh").read_text()])


def rules_context(v) -> dict:
    """The template's context: the table, the ports, the balancers' addresses by family."""
    addresses = []
    for address in v.balancers:
        try:
            addresses.append(ipaddress.ip_address(address))
        except ValueError:
            raise UserError(f"balancer address {address!r} of app host {v.private_address} is a name; the "
                            "firewall admits addresses only",
                            "set private_address of each balancer to its IP address (or firewall: false)") from None
    ports = [v.http_port] + ([v.https_port] if v.tls != "off" else [])
    scrapers = [ipaddress.ip_network(n) for n in v.metrics_scraper] if guards_metrics(v) else []
    return {**context(v), "table": table_name(v), "ports": ports, "peers": [a for _, a in v.vrrp_peers],
            "ipv4": [str(a) for a in addresses if a.version == 4], "ipv6": [str(a) for a in addresses if a.version == 6],
            "behind_balancers": wanted(v),
            "metrics_ports": [v.metrics_nginx_port, *(a.metrics_uwsgi_port for a in apps_of(v))] if guards_metrics(v) else [],
            "scrapers4": [str(n) for n in scrapers if n.version == 4],
            "scrapers6": [str(n) for n in scrapers if n.version == 6]}


HERE = Path(__file__).parent


def _wants_link(at: Layout) -> str:
    return f"/etc/systemd/system/sysinit.target.wants/{at.firewall_unit}.service"
