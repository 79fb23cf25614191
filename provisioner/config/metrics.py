"""Settings of the metrics a monitoring system scrapes (roles/metrics.py) and of the access log's format:
their kinds, and what they need together, checked before any host is touched."""

from __future__ import annotations

import ipaddress
from typing import Any

from provisioner.config.kinds import Invalid, Kind
from provisioner.errors import UserError

STATUS_PORT = 8019  # nginx's loopback status page (roles/nginx.py): never a metrics port


def _scrapers(value: Any) -> list[str]:
    """Addresses or networks (CIDR), one or a list; empty (or unset) is off. Each is written into
    nftables as ipaddress prints it, so nothing else reaches the rules file."""
    if value is None or value == "" or value is False:
        return []
    items = value if isinstance(value, list) else [value]
    networks = []
    for item in items:
        try:
            networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
        except (AttributeError, ValueError):
            raise Invalid(f"{item!r} is not an IP address or network") from None
    return list(dict.fromkeys(networks))


def _log_format(value: Any) -> str:
    if value not in ("combined", "json"):
        raise Invalid()
    return value


SCRAPERS = Kind("IP addresses or networks (CIDR), empty for off", _scrapers, "[10.0.0.5, 10.0.1.0/24]")
LOG_FORMAT = Kind("combined or json", _log_format, "json")


def metrics_on(v) -> bool:
    """The host runs the exporters: metrics_scraper names someone, and the host runs the app."""
    return bool(v.metrics_scraper) and v.site_tier != "balancer"


def check_metrics(values: dict, where: str) -> None:
    """With metrics on, the exporters listen on private_address: it must be one IP address of a private
    network (never every address, never a public one), and their ports must be free of the site's."""
    if not values["metrics_scraper"]:
        return
    address = values["private_address"]
    fix = "set private_address to the host's address on its private network (e.g. 10.0.0.11)"
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        raise UserError(f"metrics_scraper is set on {where} but its private_address is {address!r}, not an IP "
                        "address: the exporters listen on that address only", fix) from None
    if ip.is_global or ip.is_unspecified or ip.is_loopback or ip.is_multicast:
        raise UserError(f"metrics_scraper is set on {where} but its private_address {ip} is not a private "
                        "address: the exporters must not listen on a public one (or every one)", fix)
    ports = {"metrics_nginx_port": values["metrics_nginx_port"]}
    for name, app in values["apps"].items() or [(None, values)]:
        ports[f"apps.{name}.metrics_uwsgi_port" if name else "metrics_uwsgi_port"] = app["metrics_uwsgi_port"]
    taken = {values["http_port"]: "http_port", STATUS_PORT: "nginx's status page"}
    if values["tls"] != "off":
        taken[values["https_port"]] = "https_port"
    for name, port in ports.items():
        if port in taken:
            raise UserError(f"{name} of {where} is {port}, which {taken[port]} uses already",
                            f"set {name} to a free port (defaults: 9113 for nginx, 9117 for uWSGI; "
                            "with apps, each app's uWSGI exporter needs a port of its own)")
        taken[port] = name
