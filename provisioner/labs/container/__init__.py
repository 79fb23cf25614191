"""The container lab: real Debian hosts as systemd-nspawn containers in network namespaces.

    up(count=2, instance="lab", inventory_path=None, release=None) -> list[LabHost]
    add_host(name, instance="lab", release=None) -> LabHost
    add_hosts(names, instance="lab", release=None) -> list[LabHost]      (parallel)
    remove_host(name, instance="lab") -> None
    remove_hosts(names, instance="lab") -> None              (parallel)
    down(instance="lab") -> None
    status(instance="lab") -> list[tuple[LabHost, bool]]
    ContainerLab(count, instance, inventory_path, release, log): up, status, inventory, down as the
        contract every lab keeps (labs/interface.py)
    write_inventory(hosts, path, user="deploy", host_vars=None, group_vars=None) -> Path

Each instance has its own subnet 10.199.X.0/24: bridge pl-INSTANCE on the controller holds .1
and the shared apt proxy address 10.199.0.1/32 (the apt proxy listens there and on 127.0.0.1,
forwarding only to Debian's mirror); hosts INSTANCE1..N get .11, .12, ..., each in its own netns
with only its subnet route and the proxy's /32 (no default route, no NAT, no forwarding); an
iptables chain lets hosts reach nothing on the controller but the proxy port. Each host runs one
Debian release (rootfs.RELEASES: bookworm = Debian 12, trixie = Debian 13); hosts of both can
share an instance. State lives in /var/lib/provision-lab/INSTANCE/state.json. All need root on
Linux (UserError otherwise).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from provisioner.errors import UserError

from provisioner.labs import common, interface

from . import hosts, limits, network, proxy, rootfs, state
from .inventory import inventory_dict, write_inventory
from .rootfs import DEFAULT_RELEASE, RELEASES
from .state import DEFAULT_INSTANCE, KEY_FILE, STATE_KIND

__all__ = ["LabHost", "ContainerLab", "up", "add_host", "add_hosts", "remove_host", "remove_hosts", "down", "status", "ensure_base",
           "write_inventory", "inventory_dict", "known_hosts_path", "default_inventory_path",
           "KEY_FILE", "DEFAULT_INSTANCE", "DEFAULT_RELEASE", "RELEASES"]

Log = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


@dataclass(frozen=True)
class LabHost(interface.LabHost):
    """A container lab host: the lab's key and instance unless told otherwise."""

    key_file: str = str(KEY_FILE)
    instance: str = DEFAULT_INSTANCE
    release: str = DEFAULT_RELEASE


@dataclass
class ContainerLab:
    """The container lab as a Lab (labs/interface.py): hosts INSTANCE1..count of one instance."""

    count: int = 2
    instance: str = DEFAULT_INSTANCE
    inventory_path: str | Path | None = None
    release: str | None = None
    log: Log = _quiet

    def up(self) -> list[LabHost]:
        return up(self.count, self.instance, self.inventory_path, self.release, self.log)

    def status(self) -> list[tuple[LabHost, bool]]:
        return status(self.instance)

    def inventory(self) -> Path:
        st = state.load_state(self.instance)
        return Path(st["inventory"]["path"]) if st else Path(self.inventory_path or default_inventory_path(self.instance))

    def down(self) -> None:
        down(self.instance)


def default_inventory_path(instance: str = DEFAULT_INSTANCE) -> Path:
    if instance == DEFAULT_INSTANCE:
        return common.inventories_dir() / "lab.yml"
    return state.instance_dir(instance) / "inventory.yml"


def known_hosts_path(instance: str = DEFAULT_INSTANCE) -> Path:
    return state.instance_dir(instance) / "known_hosts"


def _labhosts(st: dict) -> list[LabHost]:
    kh = str(known_hosts_path(st["instance"]))
    return [LabHost(name=n, address=r["address"], key_file=str(KEY_FILE), instance=st["instance"], known_hosts=kh,
                    release=r.get("release", DEFAULT_RELEASE))
            for n, r in sorted(st["hosts"].items(), key=lambda kv: common.natural_key(kv[0]))]


# --- public API ------------------------------------------------------------------------------

def ensure_base(log: Log = _quiet) -> Path:
    """The default release's rootfs (built once, cached) and the apt proxy; returns the rootfs path.
    Another release's rootfs is built when its first host is made."""
    state.check_platform()
    with state.global_lock():
        _ensure_proxy()
        return rootfs.ensure(DEFAULT_RELEASE, log=log)


def up(count: int = 2, instance: str = DEFAULT_INSTANCE, inventory_path: str | Path | None = None,
       release: str | None = None, log: Log = _quiet) -> list[LabHost]:
    """Make sure hosts INSTANCE1..INSTANCEcount run (keeps any others); write the inventory.
    New hosts run `release` (default bookworm); running hosts of another release are an error
    only when `release` is given."""
    state.check_platform()
    state.check_instance(instance)
    if release:
        rootfs.check_release(release)
    if count < 0:
        raise UserError(f"bad host count {count}", "use --hosts 1 or more")
    with state.global_lock():
        st = _ensure_instance(instance, inventory_path, log)
        names = [f"{instance}{i}" for i in range(1, count + 1)]
        _create_hosts(st, names, release, log)
        return _labhosts(st)


def add_host(name: str, instance: str = DEFAULT_INSTANCE, release: str | None = None,
             log: Log = _quiet) -> LabHost:
    """Create (or keep, if running) one host named `name` in the instance."""
    return add_hosts([name], instance, release, log)[0]


def add_hosts(names: list[str], instance: str = DEFAULT_INSTANCE, release: str | None = None,
              log: Log = _quiet) -> list[LabHost]:
    """Create the named hosts in parallel (keeping any that already run, as up() does); returns
    them in order."""
    state.check_platform()
    state.check_instance(instance)
    if release:
        rootfs.check_release(release)
    for name in names:
        state.check_host_name(name)
    with state.global_lock():
        st = _ensure_instance(instance, None, log)
        _create_hosts(st, list(dict.fromkeys(names)), release, log)
        by_name = {h.name: h for h in _labhosts(st)}
        return [by_name[n] for n in names]


def remove_host(name: str, instance: str = DEFAULT_INSTANCE) -> None:
    """Stop and remove one host (idempotent); the instance's network stays until down()."""
    remove_hosts([name], instance)


def remove_hosts(names: list[str], instance: str = DEFAULT_INSTANCE) -> None:
    """Stop and remove hosts in parallel (idempotent); the instance's network stays until down()."""
    state.check_platform(tools=False)
    state.check_instance(instance)
    with state.global_lock():
        st = state.load_state(instance)
        recs = []
        for name in dict.fromkeys(names):
            rec = st["hosts"].get(name) if st else None
            if rec is None:
                rec = {"name": name, "dir": str(hosts.host_dir(instance, name)),
                       "netns": network.netns_name(instance, name),
                       "cgroups": [str(c) for c in hosts.cgroup_dirs(instance, name)]}
            recs.append(rec)
        if recs:
            with ThreadPoolExecutor(max_workers=len(recs)) as ex:
                list(ex.map(hosts.destroy, recs))
        if st and any(n in st["hosts"] for n in names):
            for name in names:
                st["hosts"].pop(name, None)
            _save(st)


def down(instance: str = DEFAULT_INSTANCE) -> None:
    """Remove everything up() made for the instance; stop the apt proxy if no instance is left."""
    state.check_platform(tools=False)
    state.check_instance(instance)
    with state.global_lock():
        _down_locked(instance)


def status(instance: str = DEFAULT_INSTANCE) -> list[tuple[LabHost, bool]]:
    """Hosts recorded for the instance and whether each one's container is running."""
    state.check_platform(tools=False)
    state.check_instance(instance)
    st = state.load_state(instance)
    if not st:
        return []
    return [(h, hosts.is_running(st["hosts"][h.name])) for h in _labhosts(st)]


# --- internals (global lock held) -------------------------------------------------------------

def _ensure_proxy() -> None:
    """The apt proxy on 127.0.0.1 and, once a lab bridge exists, on the shared proxy address.

    A (re)start also binds each live instance's gateway (hosts made by older versions used it).
    """
    local = network.local_addresses()
    gateways = []
    for inst in state.all_instances():
        st = state.load_state(inst)
        if st and st.get("gateway") in local:
            gateways.append(st["gateway"])
    proxy.ensure([network.PROXY_ADDR] if network.PROXY_ADDR in local else [], also=gateways)


def _save(st: dict) -> None:
    """State file, known_hosts and the inventory, all from the state."""
    instance = st["instance"]
    lines = []
    for name, rec in sorted(st["hosts"].items()):
        lines += hosts.hostkey_lines(name, rec["address"])
    common.write_atomic(known_hosts_path(instance), "\n".join(lines) + ("\n" if lines else ""))
    inv = Path(st["inventory"]["path"])
    write_inventory(_labhosts(st), inv)
    st["inventory"]["sha256"] = hashlib.sha256(inv.read_bytes()).hexdigest()
    state.save_state(instance, st)


def _recover(instance: str) -> dict | None:
    """Drop what a crashed or stopped run left behind; keep hosts whose processes still run."""
    st = state.load_state(instance)
    kept = {}
    if st:
        for name, rec in list(st["hosts"].items()):
            if hosts.is_running(rec):
                kept[name] = rec
            else:
                hosts.destroy(rec)
    kept_ns = {r["netns"] for r in kept.values()}
    kept_veth = {r["veth"] for r in kept.values()}
    for ns in network.leftover_netns(instance):
        if ns not in kept_ns:
            network.delete_host_net(ns, None)
    for veth in network.leftover_veths(instance):
        if veth not in kept_veth:
            network.delete_host_net(None, veth)
    for cg in hosts.cgroup_dirs(instance):
        if cg.is_dir():
            for sub in cg.iterdir():
                if sub.is_dir() and sub.name not in kept:
                    hosts.remove_cgroup_tree(sub)
    hdir = state.instance_dir(instance) / "hosts"
    if hdir.is_dir():
        for d in hdir.iterdir():
            if d.name not in kept:
                hosts.destroy({"name": d.name, "dir": str(d)})
    if st:
        st["hosts"] = kept
    return st


def _ensure_instance(instance: str, inventory_path, log: Log) -> dict:
    _ensure_proxy()
    st = _recover(instance)
    if st is None:
        taken = {s["subnet"] for i in state.all_instances() if i != instance
                 for s in [state.load_state(i)] if s}
        subnet = network.pick_subnet(instance, taken)
        st = {"kind": STATE_KIND, "instance": instance, "subnet": subnet, "gateway": network.gateway(subnet),
              "bridge": network.bridge_name(instance), "created": time.time(),
              "inventory": {"path": str(Path(inventory_path or default_inventory_path(instance)).absolute())},
              "hosts": {}}
    elif inventory_path:
        st["inventory"]["path"] = str(Path(inventory_path).absolute())
    state.save_state(instance, st)  # from here on a crash leaves a state file to recover from
    network.ensure_bridge(instance, st["subnet"])
    if not network.firewall_ensure(proxy.PORT):
        log("warning: iptables not found: lab hosts can reach every service listening on this machine's "
            "lab bridge addresses (install iptables to allow only the apt proxy)")
    hosts.ensure_nspawn_tmpfs()
    _ensure_proxy()
    _save(st)
    return st


def _create_hosts(st: dict, wanted: list[str], release: str | None, log: Log) -> None:
    """Create and boot the wanted hosts that do not run yet, in parallel; on any failure (or
    Ctrl-C) remove the ones made here. A running host of another release than the one asked
    for is an error."""
    instance = st["instance"]
    for name in wanted:
        running = st["hosts"].get(name, {}).get("release", DEFAULT_RELEASE)
        if release and name in st["hosts"] and running != release:
            raise UserError(f"lab host {name} runs {running}, not {release}",
                            f"`provision lab down --instance {instance}` first, or use another --instance")
    names = [n for n in wanted if n not in st["hosts"]]
    if not names:
        _save(st)
        return
    release = release or DEFAULT_RELEASE
    fs = rootfs.ensure(release, log=log)
    others = sum(len(s["hosts"]) for i in state.all_instances() if i != instance for s in [state.load_state(i)] if s)
    for limit, (old, new) in limits.ensure(others + len(st["hosts"]) + len(names)).items():
        log(f"fs.inotify.{limit} raised from {old} to {new} for {others + len(st['hosts']) + len(names)} lab hosts")
    made: list[dict] = []
    t0 = time.monotonic()
    try:
        taken = {r["address"] for r in st["hosts"].values()}
        for name in names:
            state.check_host_name(name)
            addr = network.host_address(st["subnet"], instance, name, taken)
            taken.add(addr)
            rec = hosts.prepare(instance, name, addr, st["subnet"], fs)
            rec.update(rootfs=str(fs), release=release)
            made.append(rec)
            st["hosts"][name] = rec
        state.save_state(instance, st)
        for rec in made:
            hosts.launch(rec)
        state.save_state(instance, st)
        with ThreadPoolExecutor(max_workers=len(made)) as ex:
            waits = list(ex.map(hosts.boot, made))
        for rec, w in zip(made, waits):
            rec["ready_seconds"] = round(w, 2)
            log(f"{rec['name']} ({rec['address']}) ready in {w:.2f} s")
        log(f"{len(made)} host(s) up in {time.monotonic() - t0:.1f} s")
        _save(st)
    except BaseException:
        for rec in made:
            try:
                hosts.destroy(rec)
            finally:
                st["hosts"].pop(rec["name"], None)
        if not st["hosts"]:
            _down_locked(instance)
        else:
            _save(st)
        raise


def _down_locked(instance: str) -> None:
    st = state.load_state(instance)
    recs = list(st["hosts"].values()) if st else []
    if recs:
        with ThreadPoolExecutor(max_workers=len(recs)) as ex:
            list(ex.map(hosts.destroy, recs))
    _recover(instance)  # leftovers not (or no longer) in the state
    for cg in hosts.cgroup_dirs(instance):
        hosts.remove_cgroup_tree(cg)
    hosts.remove_empty_cgroup_parents(instance)
    network.delete_bridge(instance)
    idir = state.instance_dir(instance)
    if st and st.get("inventory", {}).get("path"):
        inv = Path(st["inventory"]["path"])
        try:
            if hashlib.sha256(inv.read_bytes()).hexdigest() == st["inventory"].get("sha256"):
                inv.unlink()  # only if it is still exactly what we wrote
        except FileNotFoundError:
            pass
    if not common.mounts_under(idir):
        shutil.rmtree(idir, ignore_errors=True)
    if not state.all_instances():
        proxy.stop()
        hosts.release_nspawn_tmpfs()
        network.firewall_remove()
        limits.restore()
