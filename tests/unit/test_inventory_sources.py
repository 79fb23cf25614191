"""Ansible inventories as they are: INI, directories, host lists, group_vars/host_vars, -e, -u/--private-key,
and Ansible's precedence between all of these (docs/settings.md, "Precedence")."""

import json
import textwrap
from pathlib import Path

import pytest

from provisioner.config.inventory_ini import ini_value
from provisioner.errors import UserError
from provisioner.inventory import load_inventory

pytestmark = pytest.mark.unit

PROJECT = Path(__file__).parent / "fixtures" / "ansible_project"


@pytest.fixture
def project(monkeypatch):
    """The fixture Ansible project as the current directory (its group_vars/ are the playbook-side ones)."""
    monkeypatch.chdir(PROJECT)
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    return PROJECT


@pytest.fixture
def here(tmp_path, monkeypatch):
    """An empty current directory with an app/ for app_source; write(path, text) writes a file in it."""
    (tmp_path / "app").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("getpass.getuser", lambda: "alice")

    def write(path: str, text: str) -> Path:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(textwrap.dedent(text).lstrip("\n"))
        return tmp_path / path
    return write


# --- INI -----------------------------------------------------------------------------------------


def test_an_ini_inventory_with_ranges_vars_children_and_host_line_vars(project):
    inv = load_inventory(project / "inventory" / "hosts")
    assert list(inv.hosts) == ["bastion.example.com", "web01.example.com", "web02.example.com", "web03.example.com",
                               "legacy.example.com", "db1.example.com"]
    assert inv.groups["prod"] == list(inv.hosts)[1:] and inv.groups["ungrouped"] == ["bastion.example.com"]
    legacy = inv.hosts["legacy.example.com"]
    assert (legacy.port, legacy.groups) == (2222, ["prod", "web"])
    assert legacy.vars.server_name == "legacy.example.com old.example.com"      # quoted, with a space
    assert legacy.vars.uwsgi_threads == 8                                        # and a comment after it
    web02 = inv.hosts["web02.example.com"].vars
    assert (web02.server_name, web02.uwsgi_buffer_size, web02.base_packages) == \
        ("www.example.com", 65535, ["curl", "htop"])
    assert inv.hosts["bastion.example.com"].user == "admin"
    assert inv.hosts["db1.example.com"].address == "198.51.100.7"
    assert any("'ntp_server' (group all, " in w and "hosts:22)" in w for w in inv.warnings)


@pytest.mark.parametrize("text, value", [("4", 4), ("True", True), ("['a', 'b']", ["a", "b"]), ("0660", "0660"),
                                         ("yes", "yes"), ("a b", "a b"), ("(1, 2)", [1, 2]), ("1j", "1j")])
def test_ini_values_are_read_as_ansible_reads_them(text, value):
    assert ini_value(text) == value


@pytest.mark.parametrize("text, words", [
    ("[web\nh1\n", "'[web' is not a valid section header"),
    ("[web:hosts2]\nh1\n", "unknown type 'hosts2'"),
    ("[web]\nh1 ansible_port\n", "hosts.ini:2: 'ansible_port' is not name=value"),
    ("[web:vars]\nhttp_port\n", "hosts.ini:2: 'http_port' is not name=value"),
    ("[web]\nh1 server_name='open\n", "cannot read the host line"),
    ("[web]\n", "has no hosts"),
    ("[a:children]\nb\n[b:children]\na\n[a]\nh\n", "groups contain each other"),
    ("[web:vars]\nuwsgi_proceses=4\n[web]\nh\n", "did you mean 'uwsgi_processes'?"),
])
def test_ini_errors_say_where(here, text, words):
    with pytest.raises(UserError) as caught:
        load_inventory(here("hosts.ini", text))
    assert words in caught.value.cause and caught.value.fix


def test_a_file_without_extension_is_yaml_when_it_reads_as_groups_and_ini_otherwise(here):
    yaml_one = load_inventory(here("yaml_hosts", "all:\n  hosts: {y1: }\n  vars: {app_source: app}\n"))
    ini_one = load_inventory(here("ini_hosts", "i1:2200\n[all:vars]\napp_source=app\n"))
    assert list(yaml_one.hosts) == ["y1"] and ini_one.hosts["i1"].port == 2200


# --- -i: directories and host lists ------------------------------------------------------------------


def test_a_directory_is_every_inventory_in_it_in_any_format_skipping_what_ansible_skips(project):
    inv = load_inventory(project / "inventory")   # extra.yml, hosts (INI), more/site2 (INI, a subdirectory);
    hosts = list(inv.hosts)                       # README.md, site.retry, group_vars/, more/vars_plugins/ skipped
    assert (hosts[0], hosts[-1], len(hosts)) == ("web04.example.com", "web05.example.com", 8)   # in name order
    assert inv.groups["web"][0] == "web04.example.com"
    assert inv.hosts["web04.example.com"].vars.server_name == "www.example.com"   # [web:vars] of the other file


def test_a_comma_list_of_hosts(here):
    inv = load_inventory("h1, h2:2222,", extra=["app_source=app"])
    assert list(inv.hosts) == ["h1", "h2"] and inv.hosts["h2"].port == 2222
    assert inv.groups["ungrouped"] == ["h1", "h2"]
    single = load_inventory("only.example.com,", extra=["app_source=app"])
    assert [h.address for h in single.hosts.values()] == ["only.example.com"]


def test_several_sources_merge(here):
    first = here("a.yml", "all:\n  hosts: {h1: }\n  vars: {app_source: app}\n")
    inv = load_inventory([str(first), "h2,"], extra=["app_source=app"])
    assert list(inv.hosts) == ["h1", "h2"]


# --- group_vars/ and host_vars/ ------------------------------------------------------------------------


def test_group_vars_and_host_vars_beside_the_inventory_and_beside_the_current_directory(project):
    inv = load_inventory(project / "inventory")
    web01, db1 = inv.hosts["web01.example.com"].vars, inv.hosts["db1.example.com"].vars
    assert web01.uwsgi_processes == 3              # inventory/group_vars/all.yml
    assert db1.uwsgi_processes == 6                # ./group_vars/db.json beats group_vars/all
    assert web01.keep_releases == 4                # ./group_vars/web/ (a directory) main.yml
    assert web01.http_port == 8080                 # ... its file without extension; backup~, .hidden.yml skipped
    assert web01.server_name == "web01.example.com"   # ./host_vars/web01.example.com.yaml
    assert inv.hosts["web02.example.com"].vars.server_name == "www.example.com"


def test_a_vars_entry_that_names_no_group_or_host_is_a_warning(project):
    inv = load_inventory(project / "inventory")
    assert "group_vars/webservers.yml is not read: the inventory has no group 'webservers'" in inv.warnings


def test_group_vars_of_several_groups_apply_in_group_order(here):
    here("hosts.yml", """
        all:
          vars: {app_source: app}
          children:
            zeta: {hosts: {h: }}
            alpha:
              hosts: {h: }
              children: {deep: {hosts: {h: }}}
        """)
    here("group_vars/deep.yml", "uwsgi_threads: 3\n")        # depth 2: beats both depth-1 groups
    here("group_vars/zeta.yml", "uwsgi_threads: 1\nkeep_releases: 7\n")
    here("group_vars/alpha.yml", "uwsgi_threads: 2\nkeep_releases: 8\n")    # same depth: zeta sorts later, wins
    v = load_inventory(Path("hosts.yml")).hosts["h"].vars
    assert (v.uwsgi_threads, v.keep_releases) == (3, 7)


def test_relative_paths_in_group_vars_are_relative_to_their_directory(here):
    (Path("inv") / "app2").mkdir(parents=True)
    here("inv/hosts.yml", "all:\n  hosts: {h: }\n")
    here("inv/group_vars/all/main.yml", "app_source: app2\n")
    assert load_inventory(Path("inv/hosts.yml")).hosts["h"].vars.app_source == Path.cwd() / "inv" / "app2"


@pytest.mark.parametrize("path, text, words", [
    ("group_vars/all.yml", "- a\n", "group_vars/all.yml: a vars file must be a mapping"),
    ("group_vars/all.yml", "http_port: [\n", "group_vars/all.yml:2:"),
    ("host_vars/h.yml", "uwsgi_threds: 3\n", "unknown setting 'uwsgi_threds' (host h, host_vars/h.yml:1)"),
])
def test_vars_file_errors_name_the_file(here, path, text, words):
    here("hosts.yml", "all:\n  hosts: {h: }\n  vars: {app_source: app}\n")
    here(path, text)
    with pytest.raises(UserError) as caught:
        load_inventory(Path("hosts.yml"))
    assert words in caught.value.cause


# --- precedence ----------------------------------------------------------------------------------------

# Each source sets uwsgi_processes to the value below; removing the winner shows the next one, strongest first
# (docs/settings.md). Files beside the current directory beat the same files beside the inventory.
LAYERS = [
    ("extra", None, 11),
    ("cwd/host_vars/h1.yml", "uwsgi_processes: 8\n", 8),
    ("cwd/inv/host_vars/h1.yml", "uwsgi_processes: 7\n", 7),
    ("inventory host", None, 10),
    ("cwd/group_vars/web.yml", "uwsgi_processes: 6\n", 6),
    ("cwd/inv/group_vars/web.yml", "uwsgi_processes: 5\n", 5),
    ("cwd/group_vars/all.yml", "uwsgi_processes: 4\n", 4),
    ("cwd/inv/group_vars/all.yml", "uwsgi_processes: 3\n", 3),
    ("inventory group web", None, 2),
    ("inventory all", None, 1),
]


def test_ansible_precedence_of_every_source(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    (cwd / "inv").mkdir(parents=True)
    (cwd / "app").mkdir()
    monkeypatch.chdir(cwd)
    files = {name: text for name, text, _ in LAYERS if text}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    inline = {"inventory host": "h1: {uwsgi_processes: 10}", "inventory group web": "uwsgi_processes: 2",
              "inventory all": "uwsgi_processes: 1"}
    for name, _, value in LAYERS:
        inventory = (f"all:\n  vars: {{app_source: ../app, {inline.get('inventory all', '')}}}\n"
                     f"  children:\n    web:\n      vars: {{{inline.get('inventory group web', '')}}}\n"
                     f"      hosts:\n        {inline.get('inventory host', 'h1:')}\n")
        (cwd / "inv" / "hosts.yml").write_text(inventory)
        extra = ["uwsgi_processes=11"] if name == "extra" else []
        assert load_inventory(cwd / "inv" / "hosts.yml", extra=extra).hosts["h1"].vars.uwsgi_processes == value, name
        if name in files:
            (tmp_path / name).unlink()
        inline.pop(name, None)


def test_command_line_user_and_key_are_defaults_the_inventory_beats(here):
    path = here("hosts.yml", "all:\n  vars: {app_source: app}\n  hosts:\n    a: {ansible_user: deploy}\n    b:\n")
    inv = load_inventory(path, user="bob", private_key=Path("keys/id"))
    assert (inv.hosts["a"].user, inv.hosts["b"].user) == ("deploy", "bob")
    assert inv.hosts["b"].key_file == Path.cwd() / "keys" / "id"
    assert load_inventory(path, extra=["ansible_user=eve"]).hosts["a"].user == "eve"   # -e beats everything


# --- extra vars ------------------------------------------------------------------------------------------


def test_extra_vars_as_pairs_json_yaml_and_files_later_ones_winning(here):
    path = here("hosts.yml", "all:\n  vars: {app_source: app, http_port: 81}\n  hosts: {h: }\n")
    here("more.yml", "uwsgi_threads: 6\nserver_name: from-file.example.com\n")
    here("more.json", json.dumps({"keep_releases": 9}))
    v = load_inventory(path, extra=["http_port=8081 uwsgi_processes=5", '{"server_name": "json.example.com"}',
                                    "@more.yml", "@more.json", "uwsgi_processes=7"]).hosts["h"].vars
    assert (v.http_port, v.uwsgi_processes, v.uwsgi_threads, v.keep_releases) == (8081, 7, 6, 9)
    assert v.server_name == "from-file.example.com"


@pytest.mark.parametrize("item, words", [
    ("http_port", "is not name=value"), ("@missing.yml", "extra vars file missing.yml not found"),
    ("[1, 2]", "are not a mapping"), ("a='open", "cannot read -e"), ("uwsgi_processes=zero", "(set in extra vars, -e)"),
])
def test_extra_vars_errors(here, item, words):
    path = here("hosts.yml", "all:\n  vars: {app_source: app}\n  hosts: {h: }\n")
    with pytest.raises(UserError) as caught:
        load_inventory(path, extra=[item])
    assert words in caught.value.cause and caught.value.fix


# --- connection variables --------------------------------------------------------------------------------


def test_ssh_options_are_honoured_or_refused_with_a_reason_not_dropped(here):
    path = here("hosts.yml", """
        all:
          vars: {app_source: app}
          hosts:
            h: {ansible_ssh_common_args: "-o ProxyJump=bastion.example.com", ansible_user: deploy}
            k: {ansible_ssh_extra_args: "-C -o ProxyJump=b"}
        """)
    with pytest.raises(UserError) as caught:
        load_inventory(path)
    assert caught.value.cause.startswith("ansible_ssh_extra_args of host k (host k, hosts.yml:5): "
                                         "SSH option -C is refused: ")
    assert "\n" not in caught.value.cause and "remove that option" in caught.value.fix
    path.write_text(path.read_text().replace("-C ", ""))
    host = load_inventory(path).hosts["h"]
    assert host.ssh_options.settings == (("user", "deploy"), ("proxyjump", "bastion.example.com"))
