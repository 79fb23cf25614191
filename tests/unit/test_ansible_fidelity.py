"""An existing Ansible project works as it is: other roles' variables, a refused connection variable on
another host, vaulted values nothing reads, host patterns with subscripts and Ansible's host order.
Inventories in the shape of public projects (fixtures/ansible_projects/README); the expected host lists
are what `ansible --list-hosts` (ansible-core 2.19.14) gives for the same files, except where
docs/settings.md lists a deliberate difference (an error where Ansible selects nothing; a byte-order mark
Ansible cannot parse)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from provisioner.config.vault import vault_from_options
from provisioner.errors import UserError
from provisioner.inventory import load_inventory

pytestmark = pytest.mark.unit

PROJECTS = Path(__file__).parent / "fixtures" / "ansible_projects"
VAULT = Path(__file__).parent / "fixtures" / "vault"
CLI = [sys.executable, "-m", "provisioner"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # no group_vars/ or roles/ of the current directory
    monkeypatch.setenv("PROVISION_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    for name in ("PROVISION_INVENTORY", "PROVISION_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)


def provision(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=60)


def error_of(call) -> UserError:
    with pytest.raises(UserError) as caught:
        call()
    assert caught.value.fix and "\n" not in caught.value.cause
    return caught.value


# --- other roles' variables ------------------------------------------------------------------------


def test_other_roles_variables_of_the_lamp_example_never_stop_it():
    """httpd_port is close to http_port, but the project's web role reads it: it is that role's."""
    inv = load_inventory(PROJECTS / "lamp_simple" / "hosts")
    assert [h.name for h in inv.select("all")] == ["web3", "web2"]
    assert inv.hosts["web3"].vars.http_port == 80 and "httpd_port" not in inv.hosts["web3"].vars
    assert not any("httpd_port" in w for w in inv.warnings)       # known to be another role's: no noise
    assert any("'ntpserver'" in w and "not a provision setting" in w for w in inv.warnings)


def test_a_typo_of_a_setting_that_no_role_reads_is_still_an_error(tmp_path):
    project = tmp_path / "project"
    (project / "group_vars").mkdir(parents=True)
    (project / "hosts").write_text("[web]\nweb1\n")
    (project / "group_vars" / "all.yml").write_text("uwsgi_proceses: 4\nhttpd_port: 80\n")
    (project / "site.yml").write_text("- hosts: web\n  tasks:\n    - debug: msg={{ httpd_port }}\n")
    error = error_of(lambda: load_inventory(project / "hosts"))
    assert "unknown setting 'uwsgi_proceses' (group all, " in error.cause
    assert error.cause.endswith("all.yml:1); did you mean 'uwsgi_processes'?")
    assert "provision_ignore" in error.fix
    (project / "group_vars" / "all.yml").write_text("uwsgi_proceses: 4\nprovision_ignore: [uwsgi_proceses]\n")
    assert load_inventory(project / "hosts").hosts["web1"].vars.uwsgi_processes == 2   # declared: ignored


def test_a_typo_written_in_the_inventory_is_not_taken_for_a_use(tmp_path):
    """Inventories and vars files are mappings, not plays: the typo's own line does not excuse it."""
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    web1:\n      uwsgi_proceses: 4\n")
    assert "did you mean 'uwsgi_processes'" in error_of(lambda: load_inventory(tmp_path / "hosts.yml")).cause


def test_list_hosts_never_fails_for_a_typo_and_deploy_names_it(tmp_path):
    (tmp_path / "hosts").write_text("[web]\nweb1 uwsgi_proceses=4\nweb2\n")
    listed = provision("deploy", "-H", "all", "-i", tmp_path / "hosts", "--list-hosts")
    assert (listed.returncode, listed.stdout.split()) == (0, ["hosts", "(2):", "web1", "web2"])
    assert "host web1 cannot be deployed: unknown setting 'uwsgi_proceses'" in listed.stderr
    refused = provision("deploy", "-H", "web1", "-i", tmp_path / "hosts")
    assert refused.returncode == 2 and "did you mean 'uwsgi_processes'" in refused.stderr
    assert "Traceback" not in refused.stderr


# --- a refused connection variable -----------------------------------------------------------------


def test_a_refused_connection_variable_refuses_only_the_host_that_has_it():
    inv = load_inventory(PROJECTS / "gitlab_runner" / "inventory", every_host=False)
    assert [h.address for h in inv.select("gitlab-runner-01")] == ["192.0.2.31"]
    assert [h.name for h in inv.select("gitlab_runners")] == ["gitlab-runner-01", "gitlab-runner-02"]
    error = error_of(lambda: inv.select("all"))
    assert error.cause.startswith("ansible_connection (host testhost, ") and "is refused" in error.cause
    listed = provision("status", "-H", "gitlab-runner-01", "-i", PROJECTS / "gitlab_runner" / "inventory",
                       "--list-hosts")
    assert (listed.returncode, listed.stdout.split(), listed.stderr) == (0, ["hosts", "(1):", "gitlab-runner-01"], "")


def test_a_host_setting_wins_over_a_refused_group_setting(tmp_path):
    """Precedence applies before refusing: the group says local, the host says ssh; Ansible uses ssh."""
    (tmp_path / "hosts").write_text("[web]\nweb1 ansible_connection=ssh\n[web:vars]\nansible_connection=local\n")
    assert load_inventory(tmp_path / "hosts").hosts["web1"].address == "web1"


# --- vault, decrypted when used ----------------------------------------------------------------------


def test_vault_values_are_decrypted_only_for_the_settings_of_the_selected_hosts():
    vault = vault_from_options([VAULT / "default.password"], [], ask=False)   # not the prod password
    inv = load_inventory(PROJECTS / "vault_shared" / "hosts.yml", vault=vault, every_host=False)
    web1 = inv.select("web1")[0]                     # mysql_root_password (prod) is never decrypted
    assert web1.vars.app_env == {"API_TOKEN": "token-from-vault-1.1"}
    assert "wrong vault password" in error_of(lambda: inv.select("web2")).cause   # its sudo password is prod's
    listed = provision("deploy", "-H", "all", "-i", PROJECTS / "vault_shared" / "hosts.yml", "--list-hosts")
    assert (listed.returncode, listed.stdout.split()) == (0, ["hosts", "(2):", "web1", "web2"])   # no password


# --- host patterns ---------------------------------------------------------------------------------


@pytest.fixture
def web_db(tmp_path) -> Path:
    path = tmp_path / "hosts"
    path.write_text("[web]\nweb3\nweb1\nweb2\nweb4\n[db]\ndb2\ndb1\n[empty]\n[mongo]\n[site:children]\ndb\nweb\n")
    return path


@pytest.mark.parametrize("pattern, hosts", [
    ("web[0]", ["web3"]), ("web[1:3]", ["web1", "web2", "web4"]), ("web[-1]", ["web4"]), ("web[2:]", ["web2", "web4"]),
    ("db:web", ["db2", "db1", "web3", "web1", "web2", "web4"]),      # the pattern's order, then the group's
    ("web[0],db[0]", ["web3", "db2"]), ("empty:db", ["db2", "db1"]), ("site", ["db2", "db1", "web3", "web1", "web2",
                                                                               "web4"]),
    ("web:!web[0]", ["web1", "web2", "web4"]),
    # all's children (ungrouped, empty, mongo, site), then theirs: Ansible orders levels below the first by
    # the hash seed; provision takes the order they were read
    ("all", ["db2", "db1", "web3", "web1", "web2", "web4"]),
])
def test_patterns_as_ansible_evaluates_them(web_db, pattern, hosts):
    assert [h.name for h in load_inventory(web_db).select(pattern)] == hosts


@pytest.mark.parametrize("pattern, words", [
    ("mongo[12]", "selects no host of"),                        # Ansible: group mongo, subscript 12: none
    ("dbx[12]", "'dbx[12]' is 'dbx' with a subscript, not a glob"),
    ("web[9]", "there is no host [9], the pattern before it selects 4 (0 to 3)"),
    ("web[7:9]", "selects no host: the pattern before it selects 4"),
    ("web1[", "has a '[' without its ']'"), ("web[1-2]", "Ansible removed the [x-y] subscript"),
    ("empty", "selects no host of"),
])
def test_pattern_errors_name_the_cause(web_db, pattern, words):
    assert words in error_of(lambda: load_inventory(web_db).select(pattern)).cause


def test_the_serial_batches_follow_the_pattern_order(web_db):
    """--serial cuts the selected hosts in this order into batches, as Ansible's serial does."""
    from provisioner.engine.rolling import batches
    hosts = load_inventory(web_db).select("web[1:]:db[0]")
    assert [[h.name for h in batch] for batch in batches(hosts, "2")] == [["web1", "web2"], ["web4", "db2"]]


# --- folders: groups without hosts, plugin configs, a byte-order mark ----------------------------------


def test_a_folder_with_a_hostless_sample_a_plugin_config_and_a_bom_loads_like_ansible(monkeypatch):
    folder = PROJECTS / "kubespray_and_cloud"
    monkeypatch.chdir(folder)
    inv = load_inventory(folder)
    assert [h.name for h in inv.select("all")] == ["api1", "api2"]         # no phantom '\ufeff[web]' host
    assert inv.groups["web"] == ["api1", "api2"] and inv.groups["etcd"] == []
    assert inv.hosts["api2"].address == "192.0.2.52"
    assert [w for w in inv.warnings if "aws_ec2" in w] == [
        "aws_ec2.yml is the config of Ansible's inventory plugin amazon.aws.aws_ec2 (provision reads static "
        "inventories): skipped; to use it, export its hosts with `ansible-inventory -i aws_ec2.yml --list -y > "
        "hosts.yml` and pass that file"]
    assert "inventory inventory.ini has no hosts: read for its groups and vars only" in inv.warnings
    assert "--list -y" in error_of(lambda: load_inventory(folder / "aws_ec2.yml")).fix      # given alone: refused
    assert "has no hosts" in error_of(lambda: load_inventory(folder / "inventory.ini")).cause


def test_a_folder_of_plugin_configs_only_has_no_hosts(tmp_path):
    (tmp_path / "aws_ec2.yml").write_text("plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n")
    assert error_of(lambda: load_inventory(tmp_path)).cause == f"inventory {tmp_path} has no hosts"


def test_a_balancer_is_refused_while_an_app_host_behind_it_is(tmp_path):
    """A balancer's upstream is every app host: deploying it while one is refused would drop that one."""
    (tmp_path / "site.ini").write_text("[lb]\nlb1\n[app]\napp1\napp2 ansible_connection=local\n[other]\nsolo\n")
    inv = load_inventory(tmp_path / "site.ini", every_host=False)
    assert [h.name for h in inv.select("app1,solo")] == ["app1", "solo"]
    assert "ansible_connection (host app2, " in error_of(lambda: inv.select("lb1")).cause
    (tmp_path / "site.ini").write_text("[lb]\nlb1\n[app]\napp2 ansible_connection=local\n")
    listed = provision("deploy", "-H", "all", "-i", tmp_path / "site.ini", "--list-hosts")
    assert (listed.returncode, listed.stdout.split()) == (0, ["hosts", "(2):", "lb1", "app2"]), listed.stderr
