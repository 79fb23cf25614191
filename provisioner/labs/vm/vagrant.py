"""Vagrant for the VM lab: its environment, the box in VAGRANT_HOME, the inventory from
`vagrant ssh-config`, and SSH into the machines with their stable per-name host keys."""

from __future__ import annotations

import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import yaml

from provisioner.errors import EXIT_FAILED, UserError
from provisioner.labs import common

from . import libvirt
from .box import box_path, box_version, build_box
from .config import (BOX_NAME, GROUP, HOSTKEY_DIR, INVENTORY, KNOWN_HOSTS, LIBVIRT_URI, LOG_DIR, MAC_PREFIX,
                     NETWORK, POOL, STATE_DIR, VAGRANT_DIR, VAGRANT_HOME, Log, in_netns, load_state,
                     log_to_stderr, machine_names)
from .network import netns_exists


def vagrant_env() -> dict:
    """The environment every vagrant command of the lab runs with (read by vagrant/Vagrantfile)."""
    env = dict(os.environ)
    env.update({
        "VAGRANT_HOME": str(VAGRANT_HOME),
        "VAGRANT_DOTFILE_PATH": str(STATE_DIR / "dotvagrant"),
        "VAGRANT_CWD": str(VAGRANT_DIR),
        "VAGRANT_DEFAULT_PROVIDER": "libvirt",
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1",
        "VAGRANT_NO_COLOR": "1",
        "LIBVIRT_DEFAULT_URI": LIBVIRT_URI,
        "PROVISION_VM_DRIVER": libvirt.vm_driver(),
        "PROVISION_VM_POOL": POOL,
        "PROVISION_VM_NETWORK": NETWORK,
        "PROVISION_VM_MAC_PREFIX": MAC_PREFIX,
        "PROVISION_VM_CONSOLE_DIR": str(LOG_DIR / "console"),
        "PROVISION_VM_NAMES": " ".join(machine_names()),
    })
    env.pop("PROVISION_VM_BOX", None)   # the lab always uses the locally built box
    return env


def ensure_box(log: Log = log_to_stderr) -> None:
    """`vagrant box add` the built box, only when this recipe's version is not there yet."""
    version = box_version()
    box_dir = VAGRANT_HOME / "boxes" / BOX_NAME.replace("/", "-VAGRANTSLASH-")
    if (box_dir / version / "libvirt" / "box.img").exists():
        return
    build_box(log=log)
    log(f"adding box {BOX_NAME} {version}")
    env = vagrant_env()
    if box_dir.exists():  # older recipes: remove them (their libvirt volumes die with our pool)
        common.run(["vagrant", "box", "remove", BOX_NAME, "--all", "--force"], check=False, env=env)
        shutil.rmtree(box_dir, ignore_errors=True)
    p = common.run(["vagrant", "box", "add", "--force", str(box_path().with_suffix(".json"))], check=False,
                   env=env, timeout=600)
    if p.returncode != 0:
        raise UserError(f"vagrant box add failed: {common.oneline(p.stderr or p.stdout)}",
                        f"check {VAGRANT_HOME} (VAGRANT_HOME) and the box {box_path()}", EXIT_FAILED)


def error_from_log(log_path: Path) -> str:
    """The message of a failed vagrant run, without Ruby backtraces and progress bars."""
    lines = [ln for ln in log_path.read_text(errors="replace").replace("\r", "\n").splitlines()
             if ln.strip() and not re.match(r"\s*/\S+\.rb:\d+:in", ln) and "Progress:" not in ln]
    return " | ".join(lines[-12:])[-1500:]


# --- inventory -----------------------------------------------------------------------------------
def ssh_config_hosts(text: str) -> dict[str, dict]:
    """`vagrant ssh-config` output -> {host: {hostname, user, port, identityfile: [..], ...}}."""
    config = paramiko.SSHConfig.from_text(text)
    names = sorted(config.get_hostnames() - {"*"}, key=common.natural_key)
    return {name: config.lookup(name) for name in names}


def inventory_doc(hosts: dict[str, dict], group: str = GROUP) -> dict:
    """Ansible-format YAML inventory: every host in `group`, with connection variables."""
    out: dict[str, dict] = {}
    for name, h in hosts.items():
        entry: dict = {"ansible_host": h["hostname"], "ansible_port": int(h.get("port", 22))}
        if h.get("user"):
            entry["ansible_user"] = h["user"]
        if h.get("identityfile"):
            entry["ansible_ssh_private_key_file"] = os.path.expanduser(h["identityfile"][0])
        out[name] = entry
    if not out:
        raise UserError("`vagrant ssh-config` listed no reachable machine",
                        "bring the VMs up first: `provision vm up` (or `vagrant up` in vagrant/)")
    return {"all": {"children": {group: {"hosts": out}}}}


INVENTORY_HEADER = ("# Generated from `vagrant ssh-config` by `provision vm inventory`: do not edit, regenerate.\n"
                    "# Deploy: provision deploy --host vagrant -i inventories/vagrant.yml\n")


def lab_is_up() -> bool:
    return bool(load_state().get("up")) and netns_exists() and libvirt.ours_running(load_state())


def ssh_config_text(lab: bool | None = None) -> str:
    """Run `vagrant ssh-config` (inside the lab namespace with the lab's env, or plainly)."""
    if not shutil.which("vagrant"):
        raise UserError("vagrant is not installed", "apt-get install -y vagrant vagrant-libvirt")
    if lab is None:
        lab = lab_is_up()
    if lab:
        cmd, env, cwd = in_netns(["vagrant", "ssh-config"]), vagrant_env(), VAGRANT_DIR
    else:
        cmd, env, cwd = ["vagrant", "ssh-config"], None, (
            Path(os.environ["VAGRANT_CWD"]) if os.environ.get("VAGRANT_CWD") else VAGRANT_DIR)
    p = common.run(cmd, check=False, env=env, cwd=cwd, timeout=300)
    if "Host " not in p.stdout:
        raise UserError(f"`vagrant ssh-config` failed: {common.oneline(p.stderr or p.stdout)}",
                        "bring the VMs up first: `provision vm up` (or `vagrant up` in vagrant/)")
    return p.stdout


def write_inventory(path: Path = INVENTORY, lab: bool | None = None, log: Log = log_to_stderr) -> Path:
    doc = inventory_doc(ssh_config_hosts(ssh_config_text(lab)))
    common.write_inventory_file(Path(path), doc, INVENTORY_HEADER)
    log(f"inventory written: {path}")
    return Path(path)


def load_inventory_hosts(path: Path = INVENTORY) -> dict[str, dict]:
    doc = yaml.safe_load(Path(path).read_text())
    return doc["all"]["children"][GROUP]["hosts"]


# --- ssh into the VMs (from inside the namespace) ------------------------------------------------
def ssh_argv(host: dict, command: str | None = None, known_hosts: Path = KNOWN_HOSTS,
             first_contact: bool = False) -> list[str]:
    """ssh argv (with the netns prefix) for an inventory host entry; only `first_contact` accepts
    whatever host key the machine has (before it gets its stable one)."""
    checking = ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"] if first_contact else [
        "StrictHostKeyChecking=yes", f"UserKnownHostsFile={known_hosts}"]
    argv = in_netns(["ssh", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                     "-o", checking[1], "-o", checking[0],
                     "-o", "ConnectTimeout=20", "-i", host["ansible_ssh_private_key_file"],
                     "-p", str(host.get("ansible_port", 22)),
                     f"{host.get('ansible_user', 'vagrant')}@{host['ansible_host']}"])
    if command is not None:
        argv.append(command)
    return argv


def _hostkeys(name: str) -> dict[str, Path]:
    d = HOSTKEY_DIR / name
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = {}
    for kind in ("ed25519", "ecdsa"):
        key = d / f"ssh_host_{kind}_key"
        if not key.exists():
            common.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{name}", "-f", str(key)])
        keys[kind] = key
    return keys


def install_hostkeys(hosts: dict[str, dict]) -> None:
    """Give each VM its stable per-name host keys (so known_hosts stays valid across `vm up`)."""
    lines = []
    for name, h in hosts.items():
        for key in _hostkeys(name).values():
            pub = key.with_suffix(".pub").read_text().split()
            lines.append(f"{h['ansible_host']} {pub[0]} {pub[1]}")
    common.write_atomic(KNOWN_HOSTS, "\n".join(lines) + "\n")

    def push(item):
        name, h = item
        script = ["set -e", "umask 077"]
        for key in _hostkeys(name).values():
            for path, mode in ((key, "600"), (key.with_suffix(".pub"), "644")):
                dest = f"/etc/ssh/{path.name}"
                script += [f"cat > {dest} <<'KEY'", path.read_text().rstrip("\n"), "KEY",
                           f"chmod {mode} {dest}"]
        script.append("systemctl reload ssh")
        p = common.run(ssh_argv(h, "sudo sh -s", first_contact=True), check=False,
                       input="\n".join(script) + "\n", timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"installing host keys on {name} failed: {p.stderr.strip()[-500:]}")
        # sshd re-executes itself on reload (refusing connections meanwhile): wait until it
        # answers again, with the pinned key (StrictHostKeyChecking=yes, the lab's known_hosts).
        tries = []

        def answers() -> bool:
            tries.append(common.run(ssh_argv(h, "true"), check=False, timeout=60))
            return tries[-1].returncode == 0
        if not common.wait_until(answers, 90, every=0.5):
            raise RuntimeError(f"{name}: no SSH with its new host key: {tries[-1].stderr.strip()[-500:]}")

    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as ex:
        list(ex.map(push, hosts.items()))
