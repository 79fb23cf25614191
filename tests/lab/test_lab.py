"""The container lab itself: real hosts, real systemd, real sshd, apt only through the proxy."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from provisioner.errors import UserError
from provisioner.labs import aptproxy, common
from provisioner.labs import container as lab
from provisioner.labs.container import hosts as labhosts, network, proxy, state

def ssh(host, command: str, user: str = "deploy", input: str | None = None, check: bool = True,
        timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = ["ssh", "-i", host.key_file, "-o", f"UserKnownHostsFile={host.known_hosts}",
           "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
           "-o", "LogLevel=ERROR", f"{user}@{host.address}", command]
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{user}@{host.name}: {command!r} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def leftovers(instance: str) -> dict:
    """Everything an instance could leave on the controller."""
    idir = state.instance_dir(instance)
    procs = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(idir) + "/" in cmdline and common.pid_alive(int(pid)):
                procs.append((pid, cmdline[:120]))
    return {
        "netns": network.leftover_netns(instance),
        "links": network.leftover_veths(instance) + ([network.bridge_name(instance)]
                                                     if common.link_exists(network.bridge_name(instance)) else []),
        "mounts": common.mounts_under(idir),
        "processes": procs,
        "cgroups": [str(d) for d in labhosts.cgroup_dirs(instance) if d.exists()],
        "state_dir": [str(idir)] if idir.exists() else [],
    }


@pytest.mark.lab
def test_hosts_boot_with_systemd_and_sshd(lab_hosts):
    t0 = time.monotonic()
    hosts = lab_hosts(3)
    up_s = time.monotonic() - t0
    print(f"3 fresh hosts SSH-ready in {up_s:.2f} s")
    assert len({h.address for h in hosts}) == 3
    for h in hosts:
        out = ssh(h, "systemctl is-system-running; hostname; getent hosts $(hostname) | head -1; "
                     "cat /etc/machine-id; stat -f -c %T /sys/fs/cgroup").stdout.split("\n")
        assert out[0] in ("running", "degraded"), out
        assert out[1] == h.name
        assert out[2].split()[0] == "127.0.1.1"  # sudo can resolve its own host name
        assert len(out[3]) == 32  # made at boot (the rootfs has an empty one)
        assert out[4] == "cgroup2fs"
    # hosts are bare: no nginx/uwsgi until the tool installs them
    assert ssh(hosts[0], "command -v nginx uwsgi", check=False).returncode != 0
    assert up_s < 30


@pytest.mark.lab
def test_deploy_key_login_and_passwordless_sudo(lab_hosts):
    (h,) = lab_hosts(1)
    assert ssh(h, "sudo -n id -u").stdout.strip() == "0"
    assert ssh(h, "id -u", user="root").stdout.strip() == "0"  # root accepts the lab key too
    # no password login for deploy with a wrong key: BatchMode + no key -> refused
    p = subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityFile=/dev/null",
                        "-o", f"UserKnownHostsFile={h.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                        "-o", "ConnectTimeout=5", f"deploy@{h.address}", "true"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 255


@pytest.mark.lab
def test_askpass_user_needs_sudo_password(lab_hosts):
    (h,) = lab_hosts(1)
    p = ssh(h, "sudo -n true", user="askpass", check=False)
    assert p.returncode != 0 and "password is required" in p.stderr
    p = ssh(h, "sudo -S -k -p '' id -u", user="askpass", input="wrong-password\n", check=False)
    assert p.returncode != 0
    p = ssh(h, "sudo -S -k -p '' id -u", user="askpass", input="lab-password\n")
    assert p.stdout.strip() == "0"


@pytest.mark.lab
def test_host_key_stable_across_recreation(lab_hosts, lab_instance):
    (h,) = lab_hosts(1)
    key1 = ssh(h, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
    boot1 = ssh(h, "cat /proc/sys/kernel/random/boot_id; cat /etc/machine-id").stdout
    (h2,) = lab_hosts(names=[h.name])  # removes and re-creates the same host name
    assert h2.address == h.address
    key2 = ssh(h2, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
    assert key1 == key2  # ...and ssh with StrictHostKeyChecking=yes against the lab known_hosts passed
    assert ssh(h2, "cat /proc/sys/kernel/random/boot_id; cat /etc/machine-id").stdout != boot1
    kh = Path(h2.known_hosts).read_text()
    assert f"{h2.address} {key2[0]} {key2[1]}" in kh
    # different hosts have different keys
    (other,) = lab_hosts(1)
    assert ssh(other, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2] != key2


@pytest.mark.lab
def test_apt_works_through_the_proxy_only(lab_hosts):
    (h,) = lab_hosts(1)
    conf = ssh(h, "apt-config dump Acquire::http::Proxy").stdout
    assert f"apt-proxy:{proxy.PORT}" in conf
    assert ssh(h, "getent hosts apt-proxy").stdout.split()[0] == network.PROXY_ADDR
    p = ssh(h, "sudo apt-get update -q --error-on=any", timeout=300)  # plain update exits 0 on fetch errors
    assert "Reading package lists" in p.stdout
    assert ssh(h, "apt-cache policy nginx-light").stdout.count("bookworm") >= 1
    log = aptproxy.access_log(proxy.DIR).read_text(errors="replace")
    assert h.address in log  # the host's requests went through the lab's apt proxy


@pytest.mark.lab
def test_hosts_have_no_route_out_of_the_lab(lab_hosts):
    a, b = lab_hosts(2)
    st = state.load_state(a.instance)
    routes = ssh(a, "ip -4 -o route show table all | grep -v '^local\\|^broadcast'").stdout.strip().splitlines()
    # the subnet, plus the apt proxy's /32 on the lab bridge; no default route
    assert routes and all(r.startswith((st["subnet"], network.PROXY_ADDR + " ")) for r in routes), routes
    p = ssh(a, "ip -4 route get 192.0.2.1", check=False)  # a lookup only: nothing is sent
    assert p.returncode != 0 and "unreachable" in p.stderr.lower()
    assert ssh(a, "ip -4 -o addr show scope global").stdout.split()[3] == f"{a.address}/24"
    # the lab hosts see each other on the lab subnet
    ssh(a, f"timeout 5 bash -c 'exec 3<>/dev/tcp/{b.address}/22'")
    # ...but of the controller only the apt proxy: a service on the lab's own gateway is refused
    with socket.socket() as srv:
        srv.bind((st["gateway"], 0))
        srv.listen()
        port = srv.getsockname()[1]
        p = ssh(a, f"timeout 5 bash -c 'exec 3<>/dev/tcp/{st['gateway']}/{port}'", check=False)
        assert p.returncode != 0, "a lab host reached a controller service other than the apt proxy"
    ssh(a, f"timeout 5 bash -c 'exec 3<>/dev/tcp/{network.PROXY_ADDR}/{proxy.PORT}'")


@pytest.mark.lab
def test_reboot_inside_a_host_restarts_it(lab_hosts):
    (h,) = lab_hosts(1)
    st = state.load_state(h.instance)
    rec = st["hosts"][h.name]
    pid1 = labhosts.nspawn_pid(rec)
    boot1 = ssh(h, "cat /proc/sys/kernel/random/boot_id").stdout
    ssh(h, "sudo systemctl reboot", check=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        npid = labhosts.nspawn_pid(rec)
        if npid and npid != pid1:
            p = ssh(h, "systemctl is-system-running --wait", check=False, timeout=60)
            if p.stdout.strip() in ("running", "degraded"):
                break
        time.sleep(0.2)
    else:
        pytest.fail("host did not come back after reboot")
    assert labhosts.is_running(rec)
    assert ssh(h, "cat /proc/sys/kernel/random/boot_id").stdout != boot1


@pytest.mark.lab
def test_a_running_host_keeps_its_release(lab_hosts, lab_instance):
    (h,) = lab_hosts(1, release="trixie")
    assert h.release == "trixie" and ssh(h, ". /etc/os-release; echo $VERSION_ID").stdout.strip() == "13"
    assert lab.add_hosts([h.name], lab_instance) == [h]  # no release asked for: kept as it runs
    with pytest.raises(UserError) as e:
        lab.add_hosts([h.name], lab_instance, release="bookworm")
    assert e.value.cause == f"lab host {h.name} runs trixie, not bookworm" and "lab down" in e.value.fix
    assert [(x.name, x.release, running) for x, running in lab.status(lab_instance)] == [(h.name, "trixie", True)]


@pytest.mark.lab
def test_up_writes_inventory_and_is_idempotent_then_down_leaves_nothing(lab_scratch_instance, tmp_path):
    CLEAN_INSTANCE = lab_scratch_instance
    inv = tmp_path / "lab.yml"
    lab.down(CLEAN_INSTANCE)
    try:
        t0 = time.monotonic()
        hosts = lab.up(3, instance=CLEAN_INSTANCE, inventory_path=inv)
        print(f"lab up, 3 hosts: {time.monotonic() - t0:.2f} s")
        n1, n2, n3 = (f"{CLEAN_INSTANCE}{i}" for i in (1, 2, 3))
        assert [h.name for h in hosts] == [n1, n2, n3]
        data = yaml.safe_load(inv.read_text())
        assert data["all"]["hosts"][n1] == {"ansible_host": hosts[0].address, "ansible_user": "deploy",
                                               "ansible_ssh_private_key_file": str(lab.KEY_FILE)}
        assert set(data["all"]["children"]["lab"]["hosts"]) == {n1, n2, n3}
        pids = {n: r["launcher_pid"] for n, r in state.load_state(CLEAN_INSTANCE)["hosts"].items()}
        t0 = time.monotonic()
        again = lab.up(2, instance=CLEAN_INSTANCE)  # keeps running hosts, adds none
        assert time.monotonic() - t0 < 5
        assert [h.name for h in again] == [n1, n2, n3]
        assert {n: r["launcher_pid"] for n, r in state.load_state(CLEAN_INSTANCE)["hosts"].items()} == pids
        assert all(running for _, running in lab.status(CLEAN_INSTANCE))
        lab.remove_host(n3, CLEAN_INSTANCE)
        assert [h.name for h, _ in lab.status(CLEAN_INSTANCE)] == [n1, n2]
        assert n3 not in yaml.safe_load(inv.read_text())["all"]["hosts"]
    finally:
        t0 = time.monotonic()
        lab.down(CLEAN_INSTANCE)
        print(f"lab down: {time.monotonic() - t0:.2f} s")
    assert leftovers(CLEAN_INSTANCE) == {k: [] for k in leftovers(CLEAN_INSTANCE)}
    assert not inv.exists()  # down removes the inventory it wrote (unchanged)
    assert lab.status(CLEAN_INSTANCE) == []
    lab.down(CLEAN_INSTANCE)  # idempotent


@pytest.mark.lab
def test_up_recovers_from_a_crashed_run(lab_scratch_instance):
    CLEAN_INSTANCE = lab_scratch_instance
    lab.down(CLEAN_INSTANCE)
    try:
        (h1, h2) = lab.up(2, instance=CLEAN_INSTANCE)
        st = state.load_state(CLEAN_INSTANCE)
        # simulate a crash: launcher and nspawn SIGKILLed (container processes stay behind),
        # plus a stray netns as if an earlier run died half-way through creating a host
        n1, n2 = h1.name, h2.name
        for name in (n1,):
            rec = st["hosts"][name]
            os.kill(rec["launcher_pid"], signal.SIGKILL)
            os.kill(labhosts.nspawn_pid(rec), signal.SIGKILL)
        common.run(["ip", "netns", "add", network.netns_name(CLEAN_INSTANCE, "stray9")])
        time.sleep(0.3)
        assert dict((h.name, r) for h, r in lab.status(CLEAN_INSTANCE)) == {n1: False, n2: True}
        t0 = time.monotonic()
        hosts = lab.up(2, instance=CLEAN_INSTANCE)
        assert time.monotonic() - t0 < 20
        assert all(r for _, r in lab.status(CLEAN_INSTANCE))
        assert network.netns_name(CLEAN_INSTANCE, "stray9") not in network.netns_list()
        for h in hosts:
            assert ssh(h, "systemctl is-system-running").stdout.strip() in ("running", "degraded")
    finally:
        lab.down(CLEAN_INSTANCE)
    assert leftovers(CLEAN_INSTANCE) == {k: [] for k in leftovers(CLEAN_INSTANCE)}


@pytest.mark.lab
def test_cli_up_status_down(lab_scratch_instance):
    CLEAN_INSTANCE = lab_scratch_instance
    from typer.testing import CliRunner

    from provisioner.labs.container.cli import app

    runner = CliRunner()
    try:
        r = runner.invoke(app, ["up", "--hosts", "1", "--instance", CLEAN_INSTANCE])
        assert r.exit_code == 0, r.output
        assert f"provision deploy --host {CLEAN_INSTANCE}1" in r.output
        r = runner.invoke(app, ["status", "--instance", CLEAN_INSTANCE])
        assert r.exit_code == 0 and "running" in r.output
    finally:
        r = runner.invoke(app, ["down", "--instance", CLEAN_INSTANCE])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["status", "--instance", CLEAN_INSTANCE])
    assert "is down" in r.output


@pytest.mark.lab
def test_a_cgroup_that_processes_keep_entering_is_removed_once_they_stop():
    """Removing a host's cgroup while processes are still entering or leaving it (rmdir: EBUSY; a 50-host
    lab's removal at load 60+ ended in that traceback) kills what is inside and tries again."""
    base = labhosts.cgroup_bases()[0] / state.CGROUP_NAME / f"test-removal-{os.getpid()}"
    (base / "payload").mkdir(parents=True)
    started: list[subprocess.Popen] = []
    until = time.monotonic() + 1.5

    def keep_entering() -> None:
        while time.monotonic() < until:
            started.append(subprocess.Popen(["sleep", "60"]))
            with contextlib.suppress(OSError):  # the cgroup is gone: the process stays outside
                (base / "payload" / "cgroup.procs").write_text(str(started[-1].pid))
            time.sleep(0.02)

    filler = threading.Thread(target=keep_entering)
    filler.start()
    try:
        time.sleep(0.3)
        labhosts.remove_cgroup_tree(base)
    finally:
        filler.join()
        for process in started:
            process.kill()
            process.wait()
        with contextlib.suppress(OSError):
            base.parent.rmdir()  # only if no lab uses it
    assert not base.exists()


@pytest.mark.unit
def test_not_root_is_a_user_error(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(UserError) as e:
        lab.up(1, instance="tnoroot")
    assert e.value.cause.startswith("the container lab needs root")
    assert "\n" not in e.value.cause and e.value.fix


@pytest.mark.unit
def test_bad_instance_name_is_a_user_error(monkeypatch):
    monkeypatch.setattr(state, "check_platform", lambda: None)
    with pytest.raises(UserError):
        lab.up(1, instance="Bad Name!")


@pytest.mark.unit
def test_unknown_release_is_a_user_error(monkeypatch):
    monkeypatch.setattr(state, "check_platform", lambda: None)
    with pytest.raises(UserError) as e:
        lab.up(1, instance="trel", release="sid")
    assert "bookworm, trixie" in e.value.cause and "--release" in e.value.fix


@pytest.mark.unit
def test_the_inventory_goes_where_deploy_looks(tmp_path, monkeypatch):
    import provisioner

    assert lab.default_inventory_path() == provisioner.PROJECT_ROOT / "inventories" / "lab.yml"  # a checkout
    monkeypatch.setattr(provisioner, "PROJECT_ROOT", provisioner.PACKAGE_DIR)  # installed: no checkout
    monkeypatch.chdir(tmp_path)
    assert lab.default_inventory_path() == tmp_path / "inventories" / "lab.yml"


@pytest.mark.unit
def test_write_inventory(tmp_path):
    hs = [lab.LabHost("web1", "10.199.9.11", instance="x"), lab.LabHost("web2", "10.199.9.12", instance="x")]
    p = lab.write_inventory(hs, tmp_path / "inv.yml", user="askpass",
                            host_vars={"web2": {"app_port": 9000}}, group_vars={"app_name": "api"})
    data = yaml.safe_load(p.read_text())
    assert data["all"]["hosts"]["web1"]["ansible_user"] == "askpass"
    assert data["all"]["hosts"]["web2"]["app_port"] == 9000
    assert data["all"]["vars"] == {"app_name": "api"}
    assert list(data["all"]["children"]["lab"]["hosts"]) == ["web1", "web2"]
    assert json.loads(json.dumps(data))  # plain data only
