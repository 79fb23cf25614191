"""A balancer's floating address: keepalived (Debian's package) moves `floating_address` by VRRP
between the hosts of `lb`, so clients have one address that survives the loss of a balancer.

Every balancer starts as a backup and none takes the address back (nopreempt); the holder keeps it
while its check (floating-check.sh, every second) finds nginx answering and `floating_standby` is not
set; stopping nginx hands the address over first (a drop-in of nginx.service). nginx listens on every
address, so it serves the floating one on whichever host holds it. The VRRP peers are the other
balancers of the inventory, by unicast; the firewall role admits VRRP from them only.
docs/topology.md says why each choice, and what was measured.
"""

from pathlib import Path

from provisioner.engine.handlers import Handler
from provisioner.remote.quoting import assign
from provisioner.resources import Directory, File, Service, SystemdUnit, Template

from .app import context
from .base import packages
from .layout import Layout, site_name

HERE = Path(__file__).parent
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"


def wanted(v) -> bool:
    return v.site_tier == "balancer" and bool(v.floating_address)


def resources(v):
    if not wanted(v):
        return
    at = Layout.of(v)
    yield packages(v, "keepalived")
    yield File(at.floating_check, check_script(v), mode="0755")
    yield File(at.floating_handover, _installed(v, "floating-handover.sh", "#!/bin/sh", STOPPING_FILE=at.floating_stopping,
                                                FLOATING=v.floating_address.split("/")[0]), mode="0755")
    yield Directory(at.nginx_dropin.rpartition("/")[0])
    yield Template(at.nginx_dropin, "systemd/nginx-floating.conf.j2",
                   {**context(v), "handover": at.floating_handover, "stopping": at.floating_stopping}, kind=SystemdUnit)
    yield Template(KEEPALIVED_CONF, "keepalived/keepalived.conf.j2",
                   {**context(v), "instance": instance(v), "check": at.floating_check},
                   mode="0600", secret=True, notify=("reload keepalived",))
    yield Service("keepalived")


def handlers(v):
    if not wanted(v):
        return []
    # The interface must carry this host's address: keepalived would start and never hold the address.
    interface = (f"ip -o -4 addr show dev {v.floating_interface} | grep -q ' {v.private_address}/' || "
                 f"{{ echo 'floating_interface {v.floating_interface} does not carry private_address "
                 f"{v.private_address}'; exit 1; }}")
    return [Handler("reload keepalived", check=f"keepalived -t -f {KEEPALIVED_CONF} && {{ {interface}; }}",
                    run="systemctl reload-or-restart keepalived")]


def doctor(v) -> str:
    """Shell for `status` and `doctor` on a balancer: who holds the floating address, and why
    (doctor-floating.sh; needs doctor-upstream.sh's `finding`). Nothing without a floating address."""
    if not wanted(v):
        return ""
    params = dict(FLOATING=v.floating_address.split("/")[0], REASON_FILE=Layout.of(v).floating_reason,
                  PORT=v.http_port, PEERS=" ".join(f"{name}={address}" for name, address in v.vrrp_peers))
    return "\n".join([*(assign(k, value) for k, value in params.items()), (HERE / "doctor-floating.sh").read_text()])


def instance(v) -> str:
    return f"provision_{v.app_name}"


def check_script(v) -> str:
    """floating-check.sh with this balancer's parameters, as keepalived runs it."""

    at = Layout.of(v)
    return _installed(v, "floating-check.sh", "#!/bin/bash", STANDBY=int(v.floating_standby), PORT=v.http_port,
                      HOST_HEADER=site_name(v), HEALTH_PATH=v.health_path, REASON_FILE=at.floating_reason,
                      STOPPING_FILE=at.floating_stopping)


def _installed(v, script: str, interpreter: str, **params) -> str:
    """One of this folder's scripts as a file on the host: its interpreter line, its parameters."""
    return "\n".join([interpreter, *(assign(k, value) for k, value in params.items()), (HERE / script).read_text()])
