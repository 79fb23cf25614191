"""Inventory: Ansible's YAML format, precedence, connection vars, selection, and every user error."""

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

import provisioner
from provisioner.errors import UserError
from provisioner.config.inventory_yaml import expand_host_pattern
from provisioner.inventory import Inventory, default_inventory_path, load_inventory
from provisioner.config.secret import Secret

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "inventories"


@pytest.fixture
def write(tmp_path: Path, monkeypatch):
    """write(yaml) -> the path of an inventory in a temp dir that has an `app/` for app_source;
    the local user is 'alice' so connection defaults do not depend on who runs the tests."""
    (tmp_path / "app").mkdir()
    monkeypatch.setattr("getpass.getuser", lambda: "alice")

    def write(text: str, name: str = "inv.yml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path
    return write


def error_of(path: Path) -> UserError:
    with pytest.raises(UserError) as caught:
        load_inventory(path)
    return caught.value


APP = "  vars: {app_source: app}\n"


# --- the example ---------------------------------------------------------------------------------


def test_the_production_example_loads():
    inv = load_inventory(provisioner.PROJECT_ROOT / "inventories" / "production.yml")
    assert list(inv.hosts) == ["prod1"] and inv.groups["api"] == ["prod1"]
    prod1 = inv.hosts["prod1"]
    assert (prod1.address, prod1.port, prod1.user, prod1.become) == ("203.0.113.10", 22, "deploy", True)
    assert prod1.groups == ["api"]
    assert prod1.vars.server_name != "_" and prod1.vars.uwsgi_processes >= 1
    assert any(isinstance(value, Secret) for value in prod1.vars.app_env.values())
    assert prod1.vars.secrets()
    assert inv.warnings == []


# --- precedence and groups -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def precedence() -> Inventory:
    return load_inventory(FIXTURES / "precedence.yml")


def test_host_vars_beat_deeper_groups_beat_shallower_groups_beat_all(precedence):
    web1 = precedence.hosts["web1"].vars
    assert web1.uwsgi_processes == 9                       # host
    assert web1.server_name == "from-paris"                # depth 2 beats depth 1 and all
    assert web1.uwsgi_threads == 2                         # depth 1 (deeper groups do not set it)
    assert web1.http_port == 8001                          # all
    web2 = precedence.hosts["web2"].vars
    assert web2.uwsgi_processes == 4                       # depth 3 (paris_api)
    assert web2.server_name == "from-paris"


def test_same_depth_groups_apply_in_name_order(precedence):
    web2 = precedence.hosts["web2"].vars                   # in alpha, europe, zeta: all depth 1
    assert web2.uwsgi_threads == 5                         # zeta sorts last, so it wins
    assert web2.keep_releases == 5
    assert web2.http_port == 8007                          # only alpha sets it
    assert precedence.hosts["web2"].groups == ["alpha", "europe", "zeta", "paris", "paris_api"]


def test_children_any_depth_and_membership(precedence):
    assert precedence.hosts["web1"].groups == ["europe", "paris", "paris_api"]
    assert precedence.groups["europe"] == ["web1", "web2"]
    assert precedence.groups["paris_api"] == ["web1", "web2"]
    assert precedence.groups["zeta"] == ["web2", "web3"]
    # Ansible's order: all's own hosts, then its children's level by level (ansible all --list-hosts)
    assert precedence.groups["all"] == ["lonely", "web2", "web3", "web1"]
    assert precedence.groups["ungrouped"] == ["lonely"]
    assert precedence.hosts["lonely"].vars.uwsgi_processes == 1
    assert precedence.hosts["web1"].vars.app_source == FIXTURES / "app"


def test_ansible_group_priority_reorders_groups_of_the_same_depth(write):
    inv = load_inventory(write("""\
        all:
          vars: {app_source: app}
          children:
            alpha: {vars: {uwsgi_threads: 3, ansible_group_priority: 10}, hosts: {h: }}
            beta: {vars: {uwsgi_threads: 4}, hosts: {h: }}
        """))
    assert inv.hosts["h"].vars.uwsgi_threads == 3


def test_a_host_listed_twice_merges_its_vars_and_warns_on_conflict(write):
    inv = load_inventory(write("""\
        all:
          vars: {app_source: app}
          children:
            a: {hosts: {h: {uwsgi_threads: 3, http_port: 81}}}
            b: {hosts: {h: {uwsgi_threads: 4}}}
        """))
    h = inv.hosts["h"]
    assert (h.vars.uwsgi_threads, h.vars.http_port, h.groups) == (4, 81, ["a", "b"])
    assert any("uwsgi_threads of host h is set twice" in w and "inv.yml:4" in w and "inv.yml:5" in w
               for w in inv.warnings)


def test_top_level_groups_without_all_are_children_of_all(write):
    inv = load_inventory(write("""\
        api:
          hosts: {a1: , a2: }
          vars: {app_source: app}
        """))
    assert inv.groups["api"] == ["a1", "a2"] and inv.select("all") == inv.select("api")


# --- connection vars -------------------------------------------------------------------------------


def test_connection_defaults(write):
    inv = load_inventory(write("all:\n  hosts:\n    web.example.com:\n" + APP))
    host = inv.hosts["web.example.com"]
    assert (host.address, host.port, host.user, host.become) == ("web.example.com", 22, "alice", True)
    assert (host.key_file, host.become_password) == (None, None)


def test_connection_vars(write, monkeypatch):
    monkeypatch.setenv("HOME", "/home/alice")
    inv = load_inventory(write("""\
        all:
          vars: {app_source: app, ansible_ssh_private_key_file: keys/lab}
          hosts:
            a: {ansible_host: 192.0.2.1, ansible_port: 2201, ansible_user: root}
            b: {ansible_user: deploy, ansible_become_password: plain, ansible_ssh_private_key_file: ~/.ssh/id}
            c: {ansible_user: askpass, ansible_become_password: !secret lab-password}
        """))
    a, b, c = inv.hosts["a"], inv.hosts["b"], inv.hosts["c"]
    assert (a.address, a.port, a.user, a.become) == ("192.0.2.1", 2201, "root", False)
    assert a.key_file == inv.path.parent / "keys" / "lab"
    assert b.key_file == Path("/home/alice/.ssh/id")
    assert isinstance(b.become_password, Secret) and b.become_password == "plain"
    assert c.become_password == "lab-password" and "lab-password" in c.vars.secrets()
    assert "lab-password" not in repr(c)
    prompted = replace(a, become_password=Secret("typed-at-the-prompt"))
    assert prompted.secrets() == ["typed-at-the-prompt"] and a.secrets() == []


def test_warnings_about_a_group_value_come_once_not_once_per_host(write):
    inv = load_inventory(write("""\
        all:
          vars: {app_source: app, app_env: {DB_PASSWORD: plain}, uwsgi_read_timeout: 10}
          hosts: {h1: , h2: , h3: }
        """))
    assert len(inv.warnings) == 2 and all("group all, " in w and "inv.yml:2)" in w for w in inv.warnings)


def test_host_ports_and_ranges_in_names(write):
    inv = load_inventory(write("""\
        all:
          vars: {app_source: app}
          hosts:
            "web[08:10].example.com":
            db-[a:b]:
            legacy:2222:
            other:2222: {ansible_port: 22}
        """))
    assert list(inv.hosts) == ["web08.example.com", "web09.example.com", "web10.example.com", "db-a", "db-b",
                               "legacy", "other"]
    assert inv.hosts["legacy"].port == 2222 and inv.hosts["other"].port == 22


def test_expand_host_pattern():
    assert expand_host_pattern("h[1:3]") == ["h1", "h2", "h3"]
    assert expand_host_pattern("h[01:09:4]") == ["h01", "h05", "h09"]
    assert expand_host_pattern("r[1:2]n[a:b]") == ["r1na", "r1nb", "r2na", "r2nb"]
    assert expand_host_pattern("plain") == ["plain"]
    with pytest.raises(ValueError, match="empty"):
        expand_host_pattern("h[3:1]")


# --- Ansible inventories ---------------------------------------------------------------------------


def test_an_ansible_inventory_with_other_roles_vars_loads_with_warnings():
    inv = load_inventory(FIXTURES / "ansible_style.yml")
    assert list(inv.hosts) == ["www01.example.com", "www02.example.com", "www03.example.com",
                               "legacy.example.com", "db1.example.com"]
    legacy = inv.hosts["legacy.example.com"]
    assert (legacy.port, legacy.user, legacy.become_password) == (2222, "admin", "sudo-pass")
    assert inv.hosts["db1.example.com"].address == "198.51.100.7"
    assert inv.hosts["www01.example.com"].vars.server_name == "www.example.com"
    assert inv.hosts["www01.example.com"].vars.client_max_body_size == "10m"
    ignored = {w.split("'")[1] for w in inv.warnings if w.startswith("unknown setting")}
    assert ignored == {"ntp_servers", "postgres_version", "nginx_vhosts", "nginx_remove_default_vhost",
                       "nginx_client_max_body_size", "postgresql_databases"}
    assert len(inv.warnings) == 6                     # each once, not once per host
    assert any("(group webservers, " in w and "ansible_style.yml:16)" in w for w in inv.warnings)


# --- selection -------------------------------------------------------------------------------------


def test_select(precedence):
    names = lambda hosts: [h.name for h in hosts]   # noqa: E731
    assert names(precedence.select("web3")) == ["web3"]
    assert names(precedence.select("zeta")) == ["web2", "web3"]
    assert names(precedence.select("all")) == ["lonely", "web2", "web3", "web1"]
    assert names(precedence.select("lonely, paris")) == ["lonely", "web1", "web2"]
    assert names(precedence.select("web*")) == ["web1", "web2", "web3"]
    assert names(precedence.select("zeta,web2,web3")) == ["web2", "web3"]


def test_select_an_unknown_name_lists_the_known_ones(precedence):
    with pytest.raises(UserError) as caught:
        precedence.select("web4")
    assert "no host or group 'web4'" in caught.value.cause and "did you mean 'web" in caught.value.cause
    assert "web1, web2, web3, lonely" in caught.value.fix and "paris_api" in caught.value.fix
    with pytest.raises(UserError, match="no host or group given"):
        precedence.select(" , ")


def test_an_empty_group_selects_nothing_and_a_pattern_that_selects_no_host_is_an_error(write):
    inv = load_inventory(write("all:\n  hosts: {h: }\n  vars: {app_source: app}\n  children:\n    empty:\n"))
    assert [host.name for host in inv.select("empty:h")] == ["h"]       # Ansible: an empty group adds nothing
    with pytest.raises(UserError, match="selects no host of .* \\(group 'empty' has no hosts\\)"):
        inv.select("empty")


def test_default_inventory_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROVISION_INVENTORY", raising=False)
    assert default_inventory_path() == provisioner.PROJECT_ROOT / "inventories"
    (tmp_path / "inventories").mkdir()
    assert default_inventory_path().resolve() == tmp_path / "inventories"
    monkeypatch.setenv("PROVISION_INVENTORY", "/etc/provision/hosts.yml")
    assert default_inventory_path() == Path("/etc/provision/hosts.yml")


# --- errors ----------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    error = error_of(tmp_path / "nope.yml")
    assert "nope.yml" in error.cause and "not found" in error.cause and error.fix
    assert "has no inventory files" in error_of(tmp_path).cause


def test_yaml_syntax_error_is_one_line_with_file_line_and_column(monkeypatch):
    monkeypatch.chdir(FIXTURES.parent.parent)
    error = error_of(Path("fixtures/inventories/bad_syntax.yml"))
    assert error.cause.startswith("fixtures/inventories/bad_syntax.yml:6:")
    assert "\n" not in error.cause and error.fix


def test_tabs_get_their_own_fix(write):
    path = write("all:\n\thosts:\n")
    error = error_of(path)
    assert error.cause.startswith(f"{path}:2:1:")
    assert "tabs" in error.fix


@pytest.mark.parametrize("text, words", [
    ("", "is empty"), ("# nothing\n", "is empty"), ("all:\n", "has no hosts"),
    ("all:\n  children:\n    api:\n      vars: {uwsgi_threads: 2}\n", "has no hosts"),
    ("- prod1\n", "top level must be a mapping of groups"),
    ("all:\n  hosts: [prod1]\n", "inv.yml:2: hosts of group all must be a mapping, got a list"),
    ("all:\n  children: [api]\n", "inv.yml:2: children of group all must be a mapping"),
    ("all:\n  vars: [a]\n  hosts: {h: }\n", "inv.yml:2: vars of group all must be a mapping"),
    ("all:\n  hosts:\n    prod1: 203.0.113.10\n", "inv.yml:3: host prod1 must have a mapping of vars"),
    ("all:\n  hosts: {h: }\n  server_name: x\n", "inv.yml:3: group all has 'server_name', but a group has only"),
    ("all:\n  children:\n    api: [h]\n", "inv.yml:3: group api must be a mapping"),
    ("all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n",
     "group a contains itself"),
    ("a:\n  children: {b: }\nb:\n  children: {a: }\n  hosts: {h: }\n", "groups contain each other"),
    ("all:\n  hosts:\n    h[3:1]:\n", "inv.yml:3: host h[3:1]: range [3:1] is empty"),
    ("all:\n  hosts:\n    bad name:\n", "host name 'bad name' is not valid"),
])
def test_structure_errors_say_where(write, text, words):
    error = error_of(write(text))
    assert words in error.cause
    assert error.fix and "\n" not in error.cause


def test_a_vault_value_without_a_vault_password_is_an_error_only_when_a_setting_uses_it(write):
    error = error_of(write("all:\n  hosts:\n    h: {ansible_become_password: !vault abc}\n"))
    assert error.cause.startswith("ansible_become_password (")
    assert "inv.yml:3) is encrypted with ansible-vault and no vault password was given" in error.cause
    assert "--vault-password-file" in error.fix
    inv = load_inventory(write("all:\n  vars: {app_source: app}\n  hosts:\n    h: {other_role_password: !vault abc}\n"))
    assert list(inv.hosts) == ["h"]


def test_a_typo_in_group_vars_names_the_group_the_line_and_the_setting(write):
    error = error_of(write("all:\n  children:\n    api:\n      hosts: {h: }\n      vars:\n"
                           "        app_source: app\n        uwsgi_proceses: 4\n"))
    assert error.cause.startswith("unknown setting 'uwsgi_proceses' (group api, ")
    assert error.cause.endswith("inv.yml:7); did you mean 'uwsgi_processes'?")


def test_a_bad_value_names_the_host_and_where_it_was_set(write):
    error = error_of(write("all:\n  vars:\n    app_source: app\n    uwsgi_processes: two\n  hosts: {prod1: }\n"))
    assert error.cause.startswith("setting uwsgi_processes of host prod1 must be an integer >= 1 and at most 4096, got 'two' "
                                  "(set in group all, ")
    assert error.cause.endswith("inv.yml:4)")


def test_errors_without_a_line_still_name_the_file(write, tmp_path, monkeypatch):
    monkeypatch.setattr(provisioner, "PROJECT_ROOT", tmp_path)     # a project without examples/model_api
    error = error_of(write("all:\n  hosts: {prod1: }\n"))
    assert error.cause.startswith(f"{tmp_path / 'inv.yml'}: app_source of host prod1 is ")
    assert "not a directory" in error.cause


def test_injection_in_an_inventory_is_refused(write):
    error = error_of(write("all:\n  vars: {app_source: app}\n  hosts:\n    h: {server_name: 'x; return 200'}\n"))
    assert "server_name of host h contains ';'" in error.cause


def test_duplicate_keys_are_warnings(write):
    path = write("all:\n  vars:\n    app_source: app\n    http_port: 81\n    http_port: 82\n  hosts: {h: }\n")
    inv = load_inventory(path)
    assert inv.hosts["h"].vars.http_port == 82
    assert any(":5: 'http_port' is written twice" in w for w in inv.warnings)


def test_a_name_both_host_and_group_warns(write):
    inv = load_inventory(write("all:\n  vars: {app_source: app}\n  children:\n    web:\n      hosts: {web: , w2: }\n"))
    assert any("'web' is both a host and a group" in w for w in inv.warnings)
    assert [h.name for h in inv.select("web")] == ["web"]     # the host only, as in Ansible


def test_a_folder_is_every_inventory_in_it(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "a.yml").write_text("all:\n  hosts: {web1: }\n  vars: {app_source: app}\n"
                                   "  children: {web: {hosts: {web1: }}}\n")
    (tmp_path / "b.yaml").write_text("all:\n  hosts: {lab1: {uwsgi_processes: 4}}\n  vars: {app_source: app}\n")
    (tmp_path / "notes.txt").write_text("not an inventory")
    inv = load_inventory(tmp_path)
    assert sorted(inv.hosts) == ["lab1", "web1"]
    assert [h.name for h in inv.select("web")] == ["web1"]
    assert inv.select("lab1")[0].vars.uwsgi_processes == 4
    (tmp_path / "c.yml").write_text("all:\n  hosts: {web1: {uwsgi_threads: 7}}\n  vars: {app_source: app}\n")
    merged = load_inventory(tmp_path)                       # a host in two files is one host, as in Ansible
    assert merged.hosts["web1"].vars.uwsgi_threads == 7 and merged.hosts["web1"].groups == ["web"]
