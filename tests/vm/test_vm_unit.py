"""provisioner.labs.vm without VMs: the inventory generator, the box recipe, the Vagrantfile."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from provisioner.errors import UserError
from provisioner.inventory import load_inventory
from provisioner.labs import common
from provisioner.labs.vm import box, config, libvirt, vagrant

SSH_CONFIG = """\
Host vm1
  HostName 192.168.121.11
  User vagrant
  Port 22
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile /var/cache/provision/vagrant-home/insecure_private_key
  IdentitiesOnly yes
  LogLevel FATAL

Host vm2
  HostName 127.0.0.1
  User vagrant
  Port 2200
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  PasswordAuthentication no
  IdentityFile "/home/some user/.vagrant.d/boxes/x/private_key"
  IdentityFile /home/u/.vagrant.d/insecure_private_key
  IdentitiesOnly yes
  LogLevel FATAL
"""


@pytest.mark.unit
def test_parse_ssh_config():
    hosts = vagrant.ssh_config_hosts(SSH_CONFIG)
    assert list(hosts) == ["vm1", "vm2"]
    assert hosts["vm1"]["hostname"] == "192.168.121.11"
    assert hosts["vm1"]["user"] == "vagrant" and hosts["vm1"]["port"] == "22"
    assert hosts["vm2"]["port"] == "2200"
    assert hosts["vm2"]["identityfile"] == ["/home/some user/.vagrant.d/boxes/x/private_key",
                                            "/home/u/.vagrant.d/insecure_private_key"]


@pytest.mark.unit
def test_rendered_inventory_loads_with_the_tool(tmp_path):
    doc = vagrant.inventory_doc(vagrant.ssh_config_hosts(SSH_CONFIG))
    assert doc == {"all": {"children": {"vagrant": {"hosts": {
        "vm1": {"ansible_host": "192.168.121.11", "ansible_port": 22, "ansible_user": "vagrant",
                "ansible_ssh_private_key_file": "/var/cache/provision/vagrant-home/insecure_private_key"},
        "vm2": {"ansible_host": "127.0.0.1", "ansible_port": 2200, "ansible_user": "vagrant",
                "ansible_ssh_private_key_file": "/home/some user/.vagrant.d/boxes/x/private_key"},
    }}}}}
    path = common.write_inventory_file(tmp_path / "vagrant.yml", doc, vagrant.INVENTORY_HEADER)
    assert yaml.safe_load(path.read_text()) == doc
    inv = load_inventory(path)
    selected = inv.select("vagrant")
    assert [h.name for h in selected] == ["vm1", "vm2"]
    vm2 = inv.select("vm2")[0]
    assert (vm2.address, vm2.port, vm2.user) == ("127.0.0.1", 2200, "vagrant")
    assert str(vm2.key_file) == "/home/some user/.vagrant.d/boxes/x/private_key"
    assert vm2.become  # not root -> sudo


@pytest.mark.unit
def test_no_machine_in_ssh_config_is_a_user_error():
    with pytest.raises(UserError) as e:
        vagrant.inventory_doc(vagrant.ssh_config_hosts(""))
    assert "vm up" in e.value.fix


@pytest.mark.unit
def test_box_recipe_and_lab_agree_on_the_apt_proxy():
    script = config.BUILD_BOX.read_text()
    assert re.search(rf"^APT_PROXY_ADDR={re.escape(config.APT_PROXY_ADDR)}$", script, re.M)
    assert re.search(rf"^APT_PROXY_PORT={config.APT_PROXY_PORT}$", script, re.M)
    assert f'BOX_NAME={config.BOX_NAME}' in script
    # the script and the Python side name the same cached box
    p = subprocess.run(["bash", str(config.BUILD_BOX), "--print-path"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == str(box.box_path())
    assert box.box_version() == f"12.{int(box.box_recipe()[:8], 16)}"


@pytest.mark.unit
def test_box_is_bare():
    include = re.search(r"--include=(\S+)", config.BUILD_BOX.read_text()).group(1).split(",")
    assert not [p for p in include if "nginx" in p or "uwsgi" in p]
    assert {"openssh-server", "sudo", "python3", "linux-image-cloud-amd64", "systemd"} <= set(include)


@pytest.mark.unit
def test_driver_choice(monkeypatch):
    monkeypatch.setenv("PROVISION_VM_DRIVER", "qemu")
    assert libvirt.vm_driver() == "qemu"
    monkeypatch.setenv("PROVISION_VM_DRIVER", "kvm")
    assert libvirt.vm_driver() == "kvm"
    monkeypatch.setenv("PROVISION_VM_DRIVER", "xen")
    with pytest.raises(UserError):
        libvirt.vm_driver()
    monkeypatch.setenv("PROVISION_VM_DRIVER", "auto")
    assert libvirt.vm_driver() == ("kvm" if libvirt.kvm_usable() else "qemu")


@pytest.mark.unit
def test_without_the_projects_vagrant_folder_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "BUILD_BOX", tmp_path / "vagrant" / "build-box.sh")  # an installed provision
    with pytest.raises(UserError) as e:
        config.require_checkout()
    assert "vagrant/ folder" in e.value.cause and "\n" not in e.value.cause and "clone" in e.value.fix


@pytest.mark.unit
def test_netns_prefix():
    assert config.netns_prefix() == ["ip", "netns", "exec", config.NETNS]
    assert config.machine_address(0) == "192.168.121.11"


@pytest.mark.unit
@pytest.mark.skipif(not shutil.which("ruby"), reason="ruby (comes with vagrant) is not installed")
def test_vagrantfile_is_valid_ruby():
    p = subprocess.run(["ruby", "-c", str(config.VAGRANT_DIR / "Vagrantfile")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
