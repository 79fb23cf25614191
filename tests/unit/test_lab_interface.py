"""Both labs keep one contract (labs/interface.py): up, status, inventory, down, each taking nothing
but what the lab was made with, and hosts of one type."""

import inspect

import pytest
import yaml

from provisioner.labs import container, interface, vm

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("lab", [container.ContainerLab, vm.VmLab], ids=lambda c: c.__name__)
def test_each_lab_has_the_contracts_methods_and_nothing_to_pass_them(lab):
    for name in ("up", "status", "inventory", "down"):
        method = getattr(lab, name)
        assert list(inspect.signature(method).parameters) == ["self"], name
        assert inspect.signature(method).return_annotation == inspect.signature(
            getattr(interface.Lab, name)).return_annotation, name


def test_a_container_host_is_a_lab_host_with_the_labs_key_by_default():
    host = container.LabHost("lab1", "10.199.1.11")
    assert isinstance(host, interface.LabHost) and host.key_file == str(container.KEY_FILE)


def test_the_vm_labs_hosts_come_from_its_inventory(tmp_path, monkeypatch):
    inventory = tmp_path / "vagrant.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {vm.config.GROUP: {"hosts": {"vm1": {
        "ansible_host": "192.168.121.10", "ansible_user": "vagrant", "ansible_ssh_private_key_file": "/k"}}}}}}))
    monkeypatch.setattr(vm, "INVENTORY", inventory)
    assert vm.VmLab()._hosts() == [interface.LabHost("vm1", "192.168.121.10", user="vagrant", key_file="/k",
                                                     instance="vm", known_hosts=str(vm.KNOWN_HOSTS))]
    assert vm.VmLab().inventory() == inventory
