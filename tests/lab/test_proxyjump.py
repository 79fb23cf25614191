"""A host the controller cannot reach, deployed through another lab host: ProxyJump from an ssh_config
file ($PROVISION_SSH_CONFIG), then from the inventory's ansible_ssh_common_args / ansible_ssh_extra_args.
Both hops' keys land in provision's known_hosts (first contact), through the real `provision` CLI."""

import ipaddress
import json
import os
import subprocess
import sys

import pytest

from provisioner.labs.container import write_inventory
from provisioner.labs.container.network import netns_name

pytestmark = pytest.mark.lab


def provision(*args, env: dict, timeout=600):
    return subprocess.run([sys.executable, "-m", "provisioner", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})


def controller_address(host) -> str:
    """The controller's address on the lab bridge: the one its connections to lab hosts come from."""
    return str(ipaddress.ip_network(f"{host.address}/24", strict=False).network_address + 1)


def test_a_host_behind_a_jump_host_is_deployed(lab_hosts, tmp_path):
    jump, hidden = lab_hosts(2)
    ns = netns_name(hidden.instance, hidden.name)
    subprocess.run(["ip", "netns", "exec", ns, "iptables", "-I", "INPUT", "-s", controller_address(hidden),
                    "-j", "DROP"], check=True)
    known_hosts = tmp_path / "known_hosts"
    no_config = tmp_path / "empty_ssh_config"
    no_config.write_text("")
    env = {"PROVISION_KNOWN_HOSTS": str(known_hosts), "PROVISION_SSH_CONFIG": str(no_config)}

    direct = write_inventory([hidden], tmp_path / "direct.yml")
    result = provision("run", "-H", hidden.name, "-i", direct, "--", "true", env=env)
    assert result.returncode == 3 and f"cannot connect to {hidden.name}" in result.stdout, result.stdout

    # (1) ProxyJump in an ssh_config file: the jump host's user and key come from it too.
    config = tmp_path / "ssh_config"
    config.write_text(f"Host jump\n  HostName {jump.address}\n  User deploy\n  IdentityFile {jump.key_file}\n"
                      f"Host {hidden.address}\n  ProxyJump jump\n")
    result = provision("deploy", "-H", "lab", "-i", direct, "--json", env={**env, "PROVISION_SSH_CONFIG": str(config)})
    assert result.returncode == 0, result.stdout + result.stderr
    [report] = json.loads(result.stdout)["hosts"]
    assert report["status"] == "changed", report
    recorded = {line.split()[0] for line in known_hosts.read_text().splitlines()}
    assert recorded == {jump.address, hidden.address}, "both hops' keys, on first contact"

    # (2) ProxyJump in ansible_ssh_common_args, no ssh_config: a no-op re-deploy through the jump host.
    via_args = write_inventory([hidden], tmp_path / "args.yml", host_vars={
        hidden.name: {"ansible_ssh_common_args": f"-o ProxyJump=deploy@{jump.address}"}})
    result = provision("deploy", "-H", "lab", "-i", via_args, "--json", env=env)
    [report] = json.loads(result.stdout)["hosts"]
    assert (result.returncode, report["status"], report["remote"]["channels"]) == (0, "ok", 1), report

    # ... -J in ansible_ssh_extra_args, and a ProxyCommand (OpenSSH's ssh -W): commands run on the hidden host.
    proxy = (f"ProxyCommand=ssh -i {jump.key_file} -o UserKnownHostsFile={jump.known_hosts} "
             f"-o StrictHostKeyChecking=yes -W %h:%p deploy@{jump.address}")
    for n, ssh_vars in enumerate(({"ansible_ssh_extra_args": f"-J deploy@{jump.address}"},
                                  {"ansible_ssh_common_args": ["-o", proxy]})):
        inventory = write_inventory([hidden], tmp_path / f"via{n}.yml", host_vars={hidden.name: ssh_vars})
        result = provision("run", "-H", hidden.name, "-i", inventory, "--", "hostname -I", env=env)
        assert result.returncode == 0 and hidden.address in result.stdout, result.stdout + result.stderr
