"""An app host behind balancers admits the app's ports from the balancers only (nftables).

Its own table (`inet provision_APP`) in its own file, loaded by its own unit: the host's other
rules, and Debian's nftables.service, are left alone. A host that stops being an app host behind
balancers (or sets firewall: false) loses the table, the file and the unit.
"""

import ipaddress

from provisioner.engine.handlers import Handler
from provisioner.errors import UserError
from provisioner.resources import Absent, Packages, Service, SystemdUnit, Template

from .app import context
from .layout import Layout


def wanted(v) -> bool:
    return v.site_tier == "app" and v.firewall


def resources(v):
    at = Layout.of(v)
    if wanted(v):
        yield Packages(("nftables",), cache_valid_time=v.apt_cache_valid_time, lock_timeout=v.apt_lock_timeout)
        yield Template(at.firewall_rules, "nftables/app-firewall.nft.j2", rules_context(v),
                       notify=("reload firewall",))
        yield Template(at.firewall_unit_file, "systemd/provision-firewall.service.j2", rules_context(v),
                       kind=SystemdUnit, notify=("reload firewall",))
        yield Service(at.firewall_unit)
    else:
        for path in (at.firewall_rules, at.firewall_unit_file, _wants_link(at)):
            yield Absent(path, notify=("drop firewall",))


def handlers(v):
    at, table = Layout.of(v), table_name(v)
    if wanted(v):
        return [Handler("reload firewall", check=f"nft -c -f {at.firewall_rules}", run=f"nft -f {at.firewall_rules}")]
    return [Handler("drop firewall",
                    run=f"systemctl stop {at.firewall_unit} 2>/dev/null; systemctl daemon-reload; "
                        f"if nft list table inet {table} >/dev/null 2>&1; then nft delete table inet {table}; fi")]


def table_name(v) -> str:
    return f"provision_{v.app_name}"


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
    return {**context(v), "table": table_name(v), "ports": ports,
            "ipv4": [str(a) for a in addresses if a.version == 4], "ipv6": [str(a) for a in addresses if a.version == 6]}


def _wants_link(at: Layout) -> str:
    return f"/etc/systemd/system/sysinit.target.wants/{at.firewall_unit}.service"
