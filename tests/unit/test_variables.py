"""Settings: schema vs docs/settings.md, defaults, types, typos, injection refusal, secrets."""

import pickle
import re
from pathlib import Path

import pytest
import yaml

import provisioner
from provisioner.errors import UserError
from provisioner.config.reading import InventoryLoader
from provisioner.config.ansible_names import ALIASES
from provisioner.config.secret import Secret
from provisioner.config.settings import COMPUTED_BY_NAME, SETTINGS, SETTINGS_BY_NAME
from provisioner.config.values import RawVars, Vars, redact, resolve

pytestmark = pytest.mark.unit

WHERE = "host prod1"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    return tmp_path


def res(app: Path, **raw) -> Vars:
    """resolve() with an existing app_source and a fixed SSH user, plus `raw`."""
    return resolve({"app_source": "app", "ansible_user": "deploy", **raw}, where=WHERE, base_dir=app)


def error_of(app: Path, **raw) -> UserError:
    with pytest.raises(UserError) as caught:
        res(app, **raw)
    return caught.value


# --- the schema is the doc ---------------------------------------------------------------------

DOC = (provisioner.PROJECT_ROOT / "docs" / "settings.md").read_text()
DOC_ROWS = dict(re.findall(r"^\| (\w+) \|[^|]*\| ([^|]*) \|", DOC, re.M))


def test_every_documented_setting_is_in_the_schema_and_back():
    connection = set(re.findall(r"`(ansible_\w+)`", DOC.split("Connection settings", 1)[1].split("older names")[0]))
    assert set(DOC_ROWS) - {"name"} | connection == set(SETTINGS_BY_NAME)
    assert len(SETTINGS) == len(SETTINGS_BY_NAME)
    aliases = set(re.findall(r"`(ansible_\w+)`", DOC.split("older names are understood:", 1)[1].split("(the")[0]))
    assert aliases == set(ALIASES)


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.name in DOC_ROWS], ids=lambda s: s.name)
def test_documented_default_is_the_schema_default(setting):
    documented = re.match(r"`([^`]*)`", DOC_ROWS[setting.name]).group(1)
    default = setting.default
    if callable(default):
        assert "{" in documented       # computed: the doc gives the formula
    elif isinstance(default, bool):
        assert documented == str(default).lower()
    else:
        assert documented == ('""' if default == "" else str(default))


def test_every_setting_has_a_doc_and_a_kind_that_accepts_its_plain_default():
    for setting in SETTINGS:
        assert setting.doc, setting.name
        if not callable(setting.default) and not (isinstance(setting.default, str) and "{" in setting.default):
            setting.kind.check(setting.default)


# --- defaults ----------------------------------------------------------------------------------


def test_defaults_fill_every_setting(app):
    v = res(app)
    assert set(v) == set(SETTINGS_BY_NAME) | set(COMPUTED_BY_NAME)   # + a single host's place in a site
    assert (v.app_name, v.app_module, v.app_callable, v.keep_releases) == ("model_api", "model_api.wsgi", "app", 3)
    assert (v.uwsgi_processes, v.uwsgi_threads, v.uwsgi_chmod_socket, v.uwsgi_master) == (2, 2, "660", True)
    assert (v.server_name, v.http_port, v.static_url, v.nginx_extra_config) == ("_", 80, "/static/", "")
    assert v.app_env == {} and v.base_packages == []
    assert (v.ansible_port, v.ansible_become, v.ansible_become_password) == (22, True, None)
    assert v.app_source == app / "app"
    assert v.warnings == []


def test_templated_defaults_follow_the_final_values(app):
    v = res(app, app_name="shop")
    assert (v.app_user, v.app_group, v.app_root) == ("shop", "shop", "/srv/shop")
    assert v.uwsgi_socket == "/run/shop/uwsgi.sock"
    assert v.uwsgi_chown_socket == "shop:www-data"
    v = res(app, app_name="shop", app_user="svc")
    assert (v.app_user, v.app_group, v.uwsgi_chown_socket, v.app_root) == ("svc", "svc", "svc:www-data", "/srv/shop")
    assert res(app, app_root="/opt/x", app_name="shop").app_root == "/opt/x"


@pytest.mark.parametrize("raw, expected", [({}, 65), ({"uwsgi_harakiri": 30}, 35), ({"uwsgi_harakiri": 0}, 60),
                                           ({"uwsgi_read_timeout": 300}, 300)])
def test_uwsgi_read_timeout_is_computed_from_harakiri(app, raw, expected):
    assert res(app, **raw).uwsgi_read_timeout == expected


def test_a_read_timeout_not_above_harakiri_is_a_warning(app):
    v = res(app, uwsgi_harakiri=60, uwsgi_read_timeout=30)
    assert any("uwsgi_read_timeout" in w and "uwsgi_harakiri" in w for w in v.warnings)


def test_default_app_source_is_relative_to_the_project_root(app, monkeypatch):
    (app / "examples" / "model_api").mkdir(parents=True)
    monkeypatch.setattr(provisioner, "PROJECT_ROOT", app)
    v = resolve({"ansible_user": "deploy"}, where=WHERE, base_dir=Path("/nonexistent"))
    assert v.app_source == app / "examples" / "model_api"


def test_relative_app_source_is_relative_to_the_inventory_dir_and_must_exist(app):
    assert res(app, app_source="app").app_source == app / "app"
    assert res(app, app_source=str(app / "app")).app_source == app / "app"
    error = error_of(app, app_source="missing")
    assert "app_source of host prod1" in error.cause and str(app / "missing") in error.cause
    assert error.fix


def test_default_ssh_user_is_the_local_user_and_become_follows_it(app, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "alice")
    v = resolve({"app_source": "app"}, where=WHERE, base_dir=app)
    assert (v.ansible_user, v.ansible_become) == ("alice", True)
    v = resolve({"app_source": "app", "ansible_user": "root"}, where=WHERE, base_dir=app)
    assert v.ansible_become is False
    v = resolve({"app_source": "app", "ansible_user": "root", "ansible_become": "yes"}, where=WHERE, base_dir=app)
    assert v.ansible_become is True


def test_key_file_expands_home_and_is_relative_to_the_inventory_dir(app, monkeypatch):
    monkeypatch.setenv("HOME", "/home/alice")
    assert res(app, ansible_ssh_private_key_file="~/.ssh/id").ansible_ssh_private_key_file == Path("/home/alice/.ssh/id")
    assert res(app, ansible_ssh_private_key_file="keys/id").ansible_ssh_private_key_file == app / "keys" / "id"


# --- types -------------------------------------------------------------------------------------


def test_wrong_type_names_setting_host_kind_and_value(app):
    error = error_of(app, uwsgi_processes="two")
    assert error.cause == "setting uwsgi_processes of host prod1 must be an integer >= 1 and at most 4096, got 'two'"
    assert "uwsgi_processes: 2" in error.fix
    assert error.code == 2


def test_the_origin_of_a_value_is_named_when_known(app):
    raw = RawVars({"app_source": "app", "ansible_user": "u", "http_port": 0},
                  origins={"http_port": "group api, inventories/x.yml:7"})
    with pytest.raises(UserError, match=r"http_port of host prod1 must be an integer from 1 to 65535, got 0 "
                                        r"\(set in group api, inventories/x.yml:7\)"):
        resolve(raw, where=WHERE, base_dir=app)


@pytest.mark.parametrize("name, value, expected", [
    ("uwsgi_processes", "4", 4), ("keep_releases", 1, 1), ("uwsgi_harakiri", 0, 0),
    ("uwsgi_master", "no", False), ("uwsgi_vacuum", "On", True), ("uwsgi_strict", False, False),
    ("uwsgi_chmod_socket", 666, "666"), ("uwsgi_chmod_socket", "0660", "660"),
    ("static_expires", "12h", "12h"), ("static_expires", "off", "off"), ("client_max_body_size", "1g", "1g"),
    ("server_name", ["a.example", "b.example"], "a.example b.example"), ("uwsgi_plugins", ["python3", "logfile"],
                                                                        "python3,logfile"),
    ("base_packages", ["curl", "libpq5"], ["curl", "libpq5"]), ("base_packages", None, []),
    ("app_group", "www-data", "www-data"), ("static_url", "/assets/", "/assets/"),
    ("ansible_become_password", 1234, "1234"),
])
def test_values_are_typed(app, name, value, expected):
    assert res(app, **{name: value})[name] == expected


@pytest.mark.parametrize("name, value, words", [
    ("uwsgi_processes", 0, "integer >= 1"), ("uwsgi_threads", True, "integer >= 1"),
    ("http_port", 70000, "from 1 to 65535"), ("uwsgi_master", "maybe", "true or false"),
    ("app_name", "My-App", "identifier"), ("app_name", "a" * 33, "identifier"),
    ("app_root", "srv/app", "absolute path"), ("app_root", "/srv/../etc", "'..'"),
    ("static_url", "/static", "ending with /"), ("static_dir", "/abs", "relative path"),
    ("uwsgi_socket", "127.0.0.1:3031", "unix socket"), ("uwsgi_chmod_socket", 432, "quote it"),
    ("uwsgi_chown_socket", "app", "user:group"), ("client_max_body_size", "10 MB", "nginx size"),
    ("base_packages", "curl", "list of Debian package names"), ("base_packages", ["Curl!"], "'Curl!'"),
    ("app_env", ["A=1"], "mapping"), ("app_env", {"1BAD": "x"}, "'1BAD'"), ("app_env", {"A": "x\ny"}, "line break"),
    ("app_env", {"A": {"nested": 1}}, "must be a string"), ("app_module", "model-api.wsgi", "dotted"),
])
def test_invalid_values_are_refused_with_what_is_wanted(app, name, value, words):
    error = error_of(app, **{name: value})
    assert f"setting {name} of host prod1 must be" in error.cause
    assert words in error.cause


def test_app_never_runs_as_root(app):
    assert "never run as root" in error_of(app, app_user="root").cause
    assert "never run as root" in error_of(app, app_name="root").cause


def test_app_env_values_become_strings_and_keep_secrets(app):
    v = res(app, app_env={"PORT": 8080, "DEBUG": False, "EMPTY": None, "TOKEN": Secret("t0k")})
    assert v.app_env == {"PORT": "8080", "DEBUG": "false", "EMPTY": "", "TOKEN": "t0k"}
    assert isinstance(v.app_env["TOKEN"], Secret)


def test_an_unmarked_secret_looking_env_value_is_a_warning(app):
    v = res(app, app_env={"DB_PASSWORD": "hunter2", "API_TOKEN": Secret("x"), "TOKEN_TTL": "60"})
    assert [w for w in v.warnings if "app_env" in w] == [
        "app_env DB_PASSWORD (host prod1) looks like a secret: write it as `DB_PASSWORD: !secret ...` so it is "
        "never shown"]


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize("typo, meant", [("uwsgi_proceses", "uwsgi_processes"), ("serve_name", "server_name"),
                                         ("App_Name", "app_name"), ("keep_release", "keep_releases"),
                                         ("ansible_usr", "ansible_user"), ("ansible_becom", "ansible_become"),
                                         ("ansibel_user", "ansible_user"), ("ansible_ssh_usr", "ansible_user")])
def test_a_name_close_to_a_setting_is_an_error_suggesting_it(app, typo, meant):
    error = error_of(app, **{typo: 4})
    assert error.cause == f"unknown setting {typo!r} (host prod1); did you mean {meant!r}?"
    assert meant in error.fix


@pytest.mark.parametrize("name", ["nginx_vhosts", "ntp_servers", "nginx_client_max_body_size", "http_proxy",
                                  "deploy_timeout", "postgresql_databases"])
def test_a_name_close_to_no_setting_is_a_warning_and_ignored(app, name):
    v = res(app, **{name: 1})
    assert v.warnings == [f"unknown setting {name!r} (host prod1) is ignored: not a provision setting"]
    assert name not in v


def test_other_ansible_names_are_accepted_and_aliases_are_understood(app):
    v = resolve({"app_source": "app", "ansible_ssh_user": "admin", "ansible_ssh_port": 2222,
                 "ansible_become_pass": "pw", "ansible_python_interpreter": "/usr/bin/python3",
                 "ansible_become_exe": "sudo", "ansible_connection": "ssh", "ansible_host_key_checking": True,
                 "ansible_ssh_timeout": 30},
                where=WHERE, base_dir=app)
    assert (v.ansible_user, v.ansible_port, v.ansible_become_password) == ("admin", 2222, "pw")
    assert v.warnings == []
    unknown = res(app, ansible_whatever_else=1)
    assert unknown.warnings == ["unknown setting 'ansible_whatever_else' (host prod1) is ignored: not a provision setting"]


@pytest.mark.parametrize("name, value, why", [
    ("ansible_password", "pw", "password logins"), ("ansible_ssh_pass", "pw", "password logins"),
    ("ansible_become_method", "su", "sudo"), ("ansible_become_user", "postgres", "becomes root"),
    ("ansible_connection", "local", "over SSH"), ("ansible_connection", "docker", "over SSH"),
    ("ansible_ssh_executable", "/opt/ssh", "own SSH client"), ("ansible_host_key_checking", False, "host keys"),
    ("ansible_become_flags", "-i", "own flags"),
])
def test_ansible_connection_variables_that_change_how_to_connect_are_refused(app, name, value, why):
    error = error_of(app, **{name: value})
    assert error.cause.startswith(f"{name} (host prod1) is refused: ") and why in error.cause
    assert "pw" not in error.cause and error.fix == f"remove {name} from the inventory"


def test_ssh_args_are_parsed_like_a_shell_would(app):
    v = res(app, ansible_ssh_common_args="-o 'ProxyCommand=ssh -W %h:%p bastion'", ansible_ssh_extra_args=["-J", "b"])
    assert v.ansible_ssh_common_args == ("-o", "ProxyCommand=ssh -W %h:%p bastion")
    assert v.ansible_ssh_extra_args == ("-J", "b")
    assert "No closing quotation" in error_of(app, ansible_ssh_common_args="-o 'open").cause


# --- injection ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name, value", [
    ("server_name", "a.example; return 200"), ("server_name", "x.example\n"), ("static_url", "/static/{"),
    ("app_root", "/srv/app#x"), ("health_path", "/healthz;"), ("app_module", "m}"),
    ("uwsgi_plugins", "python3\nexec-as-root = id"), ("static_expires", "7d; add_header X y"),
])
def test_values_written_into_ini_or_nginx_files_refuse_breaking_characters(app, name, value):
    error = error_of(app, **{name: value})
    assert error.cause.startswith(f"setting {name} of host prod1 contains ")
    assert "break out" in error.cause


def test_templates_in_values_are_refused_with_a_hint(app):
    error = error_of(app, app_root="/srv/{{ app_name }}")
    assert "'{'" in error.cause and "{{ var }}" in error.fix


def test_nginx_extra_config_is_raw(app):
    raw = "location /x {\n    return 204; # ok\n}\n"
    assert res(app, nginx_extra_config=raw).nginx_extra_config == raw


# --- secrets -----------------------------------------------------------------------------------


def test_secret_is_a_str_with_a_masked_repr():
    s = Secret("hunter2")
    assert s == "hunter2" and isinstance(s, str) and f"{s}" == "hunter2"
    assert repr(s) == "Secret('******')"
    assert "hunter2" not in repr({"password": s}) and "hunter2" not in repr([s])
    assert pickle.loads(pickle.dumps(s)) == s


def test_secret_yaml_tag():
    data = yaml.load("a: !secret s3cr3t\nb: !secret 1234\nc: plain\n", Loader=InventoryLoader)
    assert isinstance(data["a"], Secret) and data["a"] == "s3cr3t"
    assert isinstance(data["b"], Secret) and data["b"] == "1234"
    assert not isinstance(data["c"], Secret)
    with pytest.raises(yaml.YAMLError, match="single value"):
        yaml.load("a: !secret [1, 2]\n", Loader=InventoryLoader)


def test_secrets_lists_every_secret_and_redact_hides_them(app):
    v = res(app, app_env={"API_TOKEN": Secret("tok-123"), "LEVEL": "info"}, ansible_become_password="sudo-pw",
            nginx_extra_config=Secret("auth_basic_user_file x;"))
    assert sorted(v.secrets()) == sorted(["tok-123", "sudo-pw", "auth_basic_user_file x;"])
    assert isinstance(v.ansible_become_password, Secret)
    assert "info" not in v.secrets()
    text = "curl -H 'token: tok-123' && echo sudo-pw | sudo -S true"
    assert redact(text, v.secrets()) == "curl -H 'token: ******' && echo ****** | sudo -S true"
    assert "tok-123" not in repr(v) and "sudo-pw" not in repr(v)


def test_redact_replaces_longer_secrets_first_and_ignores_empty_ones():
    assert redact("abc abcdef", ["abc", "abcdef", ""]) == "****** ******"
    assert redact("nothing here", []) == "nothing here"


# --- Vars --------------------------------------------------------------------------------------


def test_vars_are_read_only_and_hand_out_copies(app):
    v = res(app, app_env={"A": "1"}, base_packages=["curl"])
    with pytest.raises(AttributeError):
        v.app_name = "other"
    with pytest.raises(TypeError):
        v["app_name"] = "other"
    v.app_env["B"] = "2"
    v.base_packages.append("htop")
    assert v.app_env == {"A": "1"} and v.base_packages == ["curl"]
    with pytest.raises(AttributeError, match="did you mean 'app_name'"):
        v.app_nmae


def test_as_dict_is_plain_and_can_mask_secrets(app):
    v = res(app, app_env={"T": Secret("tok")})
    plain = v.as_dict()
    assert plain["app_env"]["T"] == "tok" and plain["app_source"] == str(app / "app")
    assert v.as_dict(mask_secrets=True)["app_env"]["T"] == "******"
    assert dict(v)["app_name"] == "model_api"


def test_vars_survive_pickling(app):
    v = res(app, uwsgi_processes=3, zzz_unknown=1)
    copy = pickle.loads(pickle.dumps(v))
    assert copy.uwsgi_processes == 3 and copy.warnings == v.warnings


def test_the_doc_lists_exactly_the_injection_checked_strings():
    listed = DOC.split("`#`:", 1)[1].split("(the numbers", 1)[0]
    documented = {name.strip() for name in listed.split(",")}
    checked = {s.name for s in SETTINGS if s.conf and not isinstance(s.default, (int, bool)) and not callable(s.default)}
    assert documented == checked


def test_computed_values_are_declared_and_only_declared_ones_are_set(app):
    """site_tier, upstream, balancers and rolling are in the schema (COMPUTED), with a single host's
    value by default; the engine sets them through Vars.computed, which knows no other name."""
    v = res(app)
    assert (v.site_tier, v.upstream, v.balancers, v.rolling) == ("single", [], [], False)
    assert v.computed(rolling=True).rolling is True and v.rolling is False
    with pytest.raises(KeyError, match="app_name"):
        v.computed(app_name="other")
    assert "unknown setting 'site_tier'" in res(app, site_tier="app").warnings[0]
