"""Lab networking: one bridge per instance (controller side .1), one netns + veth per host.

Instance subnets are 10.199.X.0/24. The bridge in the controller's namespace carries only the
gateway address (where the apt proxy listens); hosts get one address and the subnet route, no
default route; nothing here touches ip_forward, NAT or the controller's routes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
from pathlib import Path

from provisioner.labs import common

SUBNET_BASE = "10.199"
# The apt proxy's address, the same on every instance's bridge (a /32 beside the gateway), so the
# one apt proxy binds it once and never restarts when instances come and go. Hosts reach it
# on-link: their only routes are their subnet and this /32.
PROXY_ADDR = f"{SUBNET_BASE}.0.1"


def bridge_name(instance: str) -> str:
    return f"pl-{instance}"  # <= 11 chars (instance <= 8)


def veth_name(instance: str, address: str) -> str:
    return f"pl-{instance}-{address.rsplit('.', 1)[1]}"  # <= 15 chars (IFNAMSIZ)


def netns_name(instance: str, host: str) -> str:
    return f"provlab-{instance}-{host}"


def gateway(subnet: str) -> str:
    return str(ipaddress.ip_network(subnet).network_address + 1)


def _routes() -> list[dict]:
    return json.loads(common.run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")


def pick_subnet(instance: str, taken: set[str]) -> str:
    """A free 10.199.X.0/24: 'lab' prefers X=1, others a stable hash; skips subnets in use."""
    pref = 1 if instance == "lab" else 10 + int(hashlib.sha256(instance.encode()).hexdigest(), 16) % 240
    used_nets = []
    for r in _routes():
        dst = r.get("dst", "")
        if dst and dst != "default" and not r.get("dev", "").startswith("pl-"):
            try:
                used_nets.append(ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False))
            except ValueError:
                pass
    for i in range(250):
        x = (pref - 1 + i) % 250 + 1
        net = ipaddress.ip_network(f"{SUBNET_BASE}.{x}.0/24")
        if str(net) in taken or any(net.overlaps(u) for u in used_nets):
            continue
        return str(net)
    raise RuntimeError("no free 10.199.X.0/24 subnet for the lab")


def host_address(subnet: str, instance: str, host: str, taken: set[str]) -> str:
    """INSTANCE<N> (e.g. lab3) -> .(10+N) if free; any other name -> first free from .250 down."""
    net = ipaddress.ip_network(subnet)
    number = _host_number(instance, host)
    if 1 <= number <= 200:
        addr = str(net.network_address + 10 + number)
        if addr not in taken:
            return addr
    for last in range(250, 210, -1):
        addr = str(net.network_address + last)
        if addr not in taken:
            return addr
    raise RuntimeError(f"no free address for {host} in {subnet}")


def _host_number(instance: str, host: str) -> int:
    """A name's trailing digits (lab3 -> 3, tlb1 -> 1; 0 without); past 200, the digits after the
    instance's name: cmp50's hosts cmp501..cmp5050 are 1..50, not 501..5050 (which found no address)."""
    m = re.fullmatch(r"[a-z][a-z0-9-]*?(\d+)", host)
    number = int(m.group(1)) if m else 0
    tail = host.removeprefix(instance)
    if number > 200 and tail != host and tail.isdigit():
        return int(tail)
    return number


def mac_for(*parts: str) -> str:
    """A stable locally administered MAC: a re-created host (or bridge) keeps its MAC, so the
    other side's ARP cache stays right (a new random MAC left the controller sending to the old
    one for 30+ s)."""
    h = hashlib.sha256("/".join(parts).encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in h[:5])


def _no_ipv6(ifname: str) -> None:
    p = Path(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6")
    if p.exists():
        p.write_text("1\n")


def ensure_bridge(instance: str, subnet: str) -> str:
    br, gw = bridge_name(instance), gateway(subnet)
    prefix = ipaddress.ip_network(subnet).prefixlen
    if not common.link_exists(br):
        common.run(["ip", "link", "add", br, "address", mac_for("bridge", instance), "type", "bridge"])
    else:
        common.run(["ip", "link", "set", br, "address", mac_for("bridge", instance)])
    _no_ipv6(br)
    addrs = json.loads(common.run(["ip", "-j", "-4", "addr", "show", "dev", br]).stdout or "[]")
    have = {a["local"] for i in addrs for a in i.get("addr_info", [])}
    if gw not in have:
        common.run(["ip", "addr", "add", f"{gw}/{prefix}", "dev", br])
    if PROXY_ADDR not in have:
        common.run(["ip", "addr", "add", f"{PROXY_ADDR}/32", "dev", br])
    common.run(["ip", "link", "set", br, "up"])
    return gw


def delete_bridge(instance: str) -> None:
    br = bridge_name(instance)
    if common.link_exists(br):
        common.run(["ip", "link", "del", br], check=False)
    for veth in leftover_veths(instance):
        common.run(["ip", "link", "del", veth], check=False)


def local_addresses() -> set[str]:
    data = json.loads(common.run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    return {a["local"] for i in data for a in i.get("addr_info", [])}


def leftover_veths(instance: str) -> list[str]:
    pre = f"pl-{instance}-"
    try:
        return [n for n in os.listdir("/sys/class/net") if n.startswith(pre)]
    except FileNotFoundError:
        return []


def netns_list() -> list[str]:
    try:
        return sorted(os.listdir("/run/netns"))
    except FileNotFoundError:
        return []


def leftover_netns(instance: str) -> list[str]:
    return [n for n in netns_list() if n.startswith(f"provlab-{instance}-")]


def create_host_net(instance: str, host: str, address: str, subnet: str) -> tuple[str, str]:
    """netns + veth pair (eth0 inside), address and subnet route only. Returns (netns, veth)."""
    ns, veth = netns_name(instance, host), veth_name(instance, address)
    delete_host_net(ns, veth)
    prefix = ipaddress.ip_network(subnet).prefixlen
    common.run(["ip", "netns", "add", ns])
    batch = "\n".join([
        f"link add {veth} type veth peer name eth0 address {mac_for('host', instance, host)} netns {ns}",
        f"link set {veth} master {bridge_name(instance)}",
        f"link set {veth} up",
    ]) + "\n"
    common.run(["ip", "-batch", "-"], input=batch)
    _no_ipv6(veth)
    inside = "\n".join([
        "link set lo up",
        f"addr add {address}/{prefix} dev eth0",
        "link set eth0 up",
        f"route add {PROXY_ADDR}/32 dev eth0",
    ]) + "\n"
    common.run(["ip", "-n", ns, "-batch", "-"], input=inside)
    flush_neigh(instance, address)
    return ns, veth


def flush_neigh(instance: str, address: str) -> None:
    br = bridge_name(instance)
    if common.link_exists(br):
        common.run(["ip", "neigh", "flush", "to", address, "dev", br], check=False)


def delete_host_net(ns: str | None, veth: str | None) -> None:
    if veth and common.link_exists(veth):
        common.run(["ip", "link", "del", veth], check=False)
    if ns and ns in netns_list():
        common.run(["ip", "netns", "del", ns], check=False)


# --- controller firewall: lab hosts may reach only the apt proxy on the controller -----------

FW_CHAIN = "PROVISION-LAB-IN"


def _ipt(*args: str, check: bool = False):
    return common.run(["iptables", "-w", "5", *args], check=check)


def firewall_ensure(proxy_port: int) -> bool:
    """INPUT from any lab bridge (pl-+): replies to the controller's own connections (ssh) and
    the apt proxy port pass; anything else (the controller's other services) is refused.
    Returns False if iptables is not available (then nothing is installed)."""
    if not common.which("iptables"):
        return False
    if _ipt("-n", "-L", FW_CHAIN).returncode != 0:
        _ipt("-N", FW_CHAIN, check=True)
    rules = [
        ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        ["-p", "tcp", "--dport", str(proxy_port), "-j", "ACCEPT"],
        ["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"],
        ["-j", "DROP"],
    ]
    want = [" ".join(r) for r in rules]
    have = [ln for ln in _ipt("-S", FW_CHAIN).stdout.splitlines() if ln.startswith("-A ")]
    if len(have) != len(want):
        _ipt("-F", FW_CHAIN, check=True)
        for r in rules:
            _ipt("-A", FW_CHAIN, *r, check=True)
    if _ipt("-C", "INPUT", "-i", "pl-+", "-j", FW_CHAIN).returncode != 0:
        _ipt("-I", "INPUT", "1", "-i", "pl-+", "-j", FW_CHAIN, check=True)
    return True


def firewall_remove() -> None:
    if not common.which("iptables"):
        return
    while _ipt("-C", "INPUT", "-i", "pl-+", "-j", FW_CHAIN).returncode == 0:
        _ipt("-D", "INPUT", "-i", "pl-+", "-j", FW_CHAIN)
    if _ipt("-n", "-L", FW_CHAIN).returncode == 0:
        _ipt("-F", FW_CHAIN)
        _ipt("-X", FW_CHAIN)
