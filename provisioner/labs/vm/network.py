"""The VM lab's network namespace: a veth to the controller whose controller end carries the apt
proxy (the VMs' only way out: the namespace has no default route), and its removal."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import signal
import time

from provisioner.errors import UserError
from provisioner.labs import aptproxy, common

from .config import (APT_CACHE_DIR, APT_PROXY_ADDR, APT_PROXY_DIR, APT_PROXY_PORT, LAB_VETH_ADDR, NETNS,
                     VETH_HOST, VETH_LAB, VETH_PREFIX, Log, in_netns, save_state)


def netns_exists() -> bool:
    return common.netns_exists(NETNS)


def create_netns() -> None:
    """The namespace and its veth; refuses a veth subnet that overlaps one of the controller's routes."""
    net = ipaddress.ip_network(f"{APT_PROXY_ADDR}/{VETH_PREFIX}", strict=False)
    routes = common.run(["ip", "-4", "-j", "route", "show"]).stdout
    for r in json.loads(routes or "[]"):
        dst = r.get("dst", "")
        if dst not in ("default", "") and r.get("dev") != VETH_HOST:
            with contextlib.suppress(ValueError):
                if ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False).overlaps(net):
                    raise UserError(f"the VM lab's veth subnet {net} overlaps route {dst} dev {r.get('dev')}",
                                    "remove that route/interface, or run `provision vm down` if it is ours")
    common.run(["ip", "netns", "add", NETNS])
    cmds = [
        ["ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_LAB, "netns", NETNS],
        ["ip", "addr", "add", f"{APT_PROXY_ADDR}/{VETH_PREFIX}", "dev", VETH_HOST],
        ["ip", "link", "set", VETH_HOST, "up"],
        in_netns(["ip", "link", "set", "lo", "up"]),
        in_netns(["ip", "addr", "add", f"{LAB_VETH_ADDR}/{VETH_PREFIX}", "dev", VETH_LAB]),
        in_netns(["ip", "link", "set", VETH_LAB, "up"]),
    ]
    for c in cmds:
        common.run(c)
    # IPv6 off on the veth: nothing but the apt proxy's IPv4 address is reachable.
    for c in (["sysctl", "-qw", f"net.ipv6.conf.{VETH_HOST}.disable_ipv6=1"],
              in_netns(["sysctl", "-qw", f"net.ipv6.conf.{VETH_LAB}.disable_ipv6=1"])):
        common.run(c, check=False)


def start_aptproxy(st: dict, log: Log) -> None:
    """Our own apt proxy on the controller end of the veth (its PID goes to the state)."""
    if common.pid_alive(st.get("aptproxy_pid"), aptproxy.PROCESS):
        return
    st["aptproxy_pid"] = aptproxy.start(APT_PROXY_DIR, APT_CACHE_DIR, APT_PROXY_PORT, [APT_PROXY_ADDR])
    save_state(st)
    log(f"apt proxy on {APT_PROXY_ADDR}:{APT_PROXY_PORT} (pid {st['aptproxy_pid']})")


def delete_netns() -> None:
    """Stop what still runs inside the namespace (dnsmasq, the qemu of a crashed run: all started
    by the lab), then remove the namespace and the veth."""
    if netns_exists():
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = [int(x) for x in common.run(["ip", "netns", "pids", NETNS], check=False).stdout.split()]
            for pid in pids:
                common.kill_pid(pid, sig)
            deadline = time.monotonic() + 5
            while pids and time.monotonic() < deadline:
                pids = [p for p in pids if common.pid_alive(p)]
                time.sleep(0.05)
            if not pids:
                break
        common.run(["ip", "netns", "del", NETNS], check=False)
    if common.link_exists(VETH_HOST):
        common.run(["ip", "link", "del", VETH_HOST], check=False)
