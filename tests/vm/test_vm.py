"""The VM tier: the whole tool against real Vagrant VMs (libvirt/qemu) in the lab's namespace.

Few and whole on purpose (an apt install in an emulated VM costs ~1 min): the lab hosts themselves,
one end-to-end deploy, and `down` leaving nothing behind (also after a crash).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from provisioner.labs import aptproxy, common, vm
from provisioner.labs.vm import config, libvirt, network, vagrant

PAYLOAD = {"features": [5.1, 3.5, 1.4, 0.2]}   # an Iris setosa


def ssh(host: dict, command: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(vagrant.ssh_argv(host, command), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{host['ansible_host']}: {command!r} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def failed_hosts(report_json: str) -> str:
    """Each host of a --json report that did not end well, with its error and fix (a whole report
    is too long for an assertion message: one CI run showed only its last host)."""
    try:
        hosts = json.loads(report_json)["hosts"]
    except (ValueError, KeyError):
        return report_json[-4000:]
    return "\n".join(f"{h['host']}: {h['status']}: {h.get('error')} / fix: {h.get('fix')} / {h.get('details')}"
                     for h in hosts if h.get("error") or h["status"] in ("failed", "unreachable"))


@pytest.mark.vm
def test_vms_are_bare_debian_reachable_with_the_inventory_key(vm_lab, in_netns):
    hosts = vm_lab["hosts"]
    assert list(hosts) == ["vm1", "vm2"]
    print("vm lab up:", {k: round(v, 1) for k, v in vm_lab["timings"].items()})
    for name, h in hosts.items():
        assert h["ansible_ssh_private_key_file"] == str(config.VAGRANT_HOME / "insecure_private_key")
        # StrictHostKeyChecking=yes against the lab's known_hosts: the stable per-name host key
        out = ssh(h, "hostname; sudo -n id -u; systemctl is-system-running; . /etc/os-release; "
                     "echo $VERSION_ID; (command -v nginx uwsgi || true) | wc -l; "
                     "/usr/local/lib/provision/apt-proxy-detect").stdout.split()
        assert out[0] == name
        assert out[1] == "0"                      # NOPASSWD sudo
        assert out[2] in ("running", "degraded")
        assert out[3] == "12"
        assert out[4] == "0"                      # bare: no nginx, no uwsgi
        assert out[5] == f"http://{config.APT_PROXY_ADDR}:{config.APT_PROXY_PORT}"
    # The namespace has no way out but the veth to the apt proxy (a route lookup; nothing is sent).
    p = in_netns(["ip", "-4", "route", "get", "192.0.2.1"])
    assert p.returncode != 0 and "unreachable" in p.stderr.lower()
    # ...and the VM addresses exist only inside it.
    assert not Path(f"/sys/class/net/{config.BRIDGE}").exists()
    assert in_netns(["ip", "link", "show", config.BRIDGE]).returncode == 0


@pytest.mark.vm
def test_deploy_to_fresh_vms_then_noop_then_logs(vm_lab, in_netns, provision, tmp_path):
    inv = vm_lab["inventory"]
    hosts = vm_lab["hosts"]
    env = dict(os.environ, PROVISION_KNOWN_HOSTS=str(tmp_path / "known_hosts"))
    shutil.copy(config.STATE_DIR / "known_hosts", tmp_path / "known_hosts")  # pinned: the stable keys

    t0 = time.monotonic()
    p = in_netns(provision("deploy", "--host", "vagrant", "-i", inv, "--json"), timeout=1500, env=env)
    first_s = time.monotonic() - t0
    print(f"first deploy (2 fresh VMs): {first_s:.1f} s")
    assert p.returncode == 0, f"deploy exited {p.returncode}\n{failed_hosts(p.stdout)}\n{p.stderr[-4000:]}"
    report = json.loads(p.stdout)
    assert sorted(h["host"] for h in report["hosts"]) == ["vm1", "vm2"]
    assert all(h["status"] != "failed" and h["changed"] > 0 for h in report["hosts"]), p.stdout[-3000:]

    marker = f"vmtest-{uuid.uuid4().hex[:12]}"
    for name, h in hosts.items():
        r = in_netns(["curl", "-sS", "-m", "60", "-A", marker, "-H", "Content-Type: application/json",
                      "-d", json.dumps(PAYLOAD), "-w", "\n%{http_code}", f"http://{h['ansible_host']}/predict"],
                     timeout=90)
        assert r.returncode == 0, r.stderr
        body, code = r.stdout.rsplit("\n", 1)
        assert code == "200", (name, code, body)
        answer = json.loads(body)
        assert answer["class"] == "setosa", answer
        assert set(answer["probabilities"]) == {"setosa", "versicolor", "virginica"}

    t0 = time.monotonic()
    p = in_netns(provision("deploy", "--host", "vagrant", "-i", inv, "--json"), timeout=900, env=env)
    print(f"second deploy (no-op): {time.monotonic() - t0:.1f} s")
    assert p.returncode == 0, f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    again = json.loads(p.stdout)
    assert [h["changed"] for h in again["hosts"]] == [0, 0], p.stdout[-3000:]
    assert all(h["status"] == "ok" for h in again["hosts"]), p.stdout[-3000:]

    p = in_netns(provision("logs", "--host", "vm1", "-i", inv, "--service", "nginx", "--lines", "50"),
                 timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stdout.splitlines() if marker in ln]
    assert lines and "POST /predict" in lines[0], p.stdout[-3000:]

    # Every package the VMs installed came through the lab's apt proxy.
    log = aptproxy.access_log(config.APT_PROXY_DIR).read_text(errors="replace")
    assert re.search(rf"^{re.escape(config.LAB_VETH_ADDR)} .*nginx", log, re.M), log[-2000:]


def _ours_running(pids: dict) -> list[str]:
    found = [f"{exe} {pid}" for exe, pid in pids.items() if common.pid_alive(pid, exe)]
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if f"guest={config.DOMAIN_PREFIX}" in cmd and common.pid_alive(int(d.name)):
                found.append(f"qemu {d.name}")
    return found


def _leftovers() -> dict:
    libvirt_files = [str(p) for p in libvirt.config_files()]
    return {
        "netns": [config.NETNS] if Path(f"/run/netns/{config.NETNS}").exists() else [],
        "links": [n for n in (config.VETH_HOST, config.BRIDGE) if Path(f"/sys/class/net/{n}").exists()],
        "libvirt_config": libvirt_files,
        "state_dir": [str(config.STATE_DIR)] if config.STATE_DIR.exists() else [],
        "libvirt_socket": [str(config.LIBVIRT_SOCK)] if config.LIBVIRT_SOCK.exists() else [],
        "qemu_logs": [str(p) for p in Path("/var/log/libvirt/qemu").glob(f"{config.DOMAIN_PREFIX}*")],
        "inventory": [str(config.INVENTORY)] if config.INVENTORY.exists() else [],
    }


@pytest.mark.vm
def test_down_leaves_nothing_behind(vm_lab):
    st = config.load_state()
    pids = {"libvirtd": st["libvirtd_pid"], "virtlogd": st["virtlogd_pid"], aptproxy.PROCESS: st["aptproxy_pid"]}
    assert vm.status()["domains"] == {"vm1": "running", "vm2": "running"}
    t0 = time.monotonic()
    vm.down()
    print(f"vm down: {time.monotonic() - t0:.1f} s")
    assert _leftovers() == {k: [] for k in _leftovers()}
    assert _ours_running(pids) == []
    assert not vm.status()["up"]
    vm.down()  # idempotent
    assert _leftovers() == {k: [] for k in _leftovers()}


@pytest.mark.vm
def test_down_cleans_up_after_a_crashed_run(vm_lab):
    """libvirtd killed -9 with its pool and network defined: `down` restarts it, removes all."""
    vm.down()
    st: dict = {}
    config.STATE_DIR.mkdir(parents=True, exist_ok=True)
    config.save_state(st)
    network.create_netns()
    network.start_aptproxy(st, print)
    libvirt.start_daemons(st, print)
    libvirt.define_objects(["vm1", "vm2"])
    os.kill(st["libvirtd_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while libvirt.ours_running(st) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert libvirt.config_files()       # the crash left libvirt objects behind
    assert vm.status()["leftovers"]
    vm.down()
    assert _leftovers() == {k: [] for k in _leftovers()}
    pids = {"libvirtd": st["libvirtd_pid"], "virtlogd": st["virtlogd_pid"], aptproxy.PROCESS: st["aptproxy_pid"]}
    assert _ours_running(pids) == []
