"""Ansible Vault: fixtures made with the real ansible-vault (fixtures/vault/README has the passwords)."""

import os
from pathlib import Path

import pytest

from provisioner.config.secret import Secret
from provisioner.config.vault import Vault, vault_from_options
from provisioner.errors import UserError
from provisioner.inventory import load_inventory

pytestmark = pytest.mark.unit

VAULT = Path(__file__).parent / "fixtures" / "vault"
DEFAULT_PASSWORD, PROD_PASSWORD = VAULT / "default.password", VAULT / "prod.password"


@pytest.fixture(autouse=True)
def no_password_from_the_environment(monkeypatch):
    monkeypatch.delenv("PROVISION_VAULT_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)


def both() -> Vault:
    return vault_from_options([DEFAULT_PASSWORD], [f"prod@{PROD_PASSWORD}"], ask=False)


def cause(call) -> str:
    with pytest.raises(UserError) as caught:
        call()
    assert caught.value.fix and "\n" not in caught.value.cause
    return caught.value.cause


def test_vault_values_of_format_1_1_and_1_2_decrypt_into_secrets():
    web1 = load_inventory(VAULT / "hosts.yml", vault=both()).hosts["web1"]
    assert web1.vars.app_env == {"API_TOKEN": "token-from-vault-1.1"}
    assert web1.become_password == "sudo-from-vault-1.2" and isinstance(web1.become_password, Secret)
    assert isinstance(web1.vars.app_env["API_TOKEN"], Secret)
    assert {"token-from-vault-1.1", "sudo-from-vault-1.2"} <= set(web1.secrets())
    assert "from-vault" not in repr(web1.vars) and "from-vault" not in str(web1.vars.as_dict(mask_secrets=True))


def test_a_file_encrypted_whole_decrypts_and_every_string_in_it_is_a_secret():
    web1 = load_inventory(VAULT / "hosts.yml", vault=both()).hosts["web1"]
    assert (web1.vars.server_name, web1.vars.uwsgi_processes) == ("vaulted.example.com", 7)   # group_vars/web/
    assert "vaulted.example.com" in web1.secrets()


def test_an_inventory_encrypted_whole_with_a_vault_id():
    inv = load_inventory(VAULT / "whole" / "hosts.yml", vault=vault_from_options([], [f"prod@{PROD_PASSWORD}"], False))
    assert inv.hosts["secret1"].address == "192.0.2.44"


def test_an_ini_inventory_and_extra_vars_encrypted_whole():
    db9 = load_inventory(VAULT / "ini" / "hosts", vault=both()).hosts["db9"]
    assert (db9.address, db9.vars.server_name) == ("192.0.2.99", "db9.internal")
    assert "db9.internal" in db9.secrets()
    encrypted_file = VAULT / "group_vars" / "web" / "vault.yml"
    extra = load_inventory(VAULT / "ini" / "hosts", vault=both(), extra=[f"@{encrypted_file}"])
    assert extra.hosts["db9"].vars.server_name == "vaulted.example.com"
    assert "vaulted.example.com" in extra.hosts["db9"].secrets()


def test_a_wrong_password_is_one_line_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(VAULT)                       # files are named as the user would write them: from here
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-it\n")
    vault = vault_from_options([wrong], [], ask=False)
    text = cause(lambda: load_inventory(VAULT / "whole" / "hosts.yml", vault=vault))
    assert text.startswith("whole/hosts.yml: wrong vault password")
    assert f"--vault-password-file {wrong}" in text and "vault id prod" in text
    value = cause(lambda: load_inventory(VAULT / "hosts.yml", vault=vault_from_options([DEFAULT_PASSWORD], [], False)))
    assert value.startswith("hosts.yml:9: wrong vault password")          # the 1.2 value, by its line


def test_no_password_for_an_encrypted_file_says_how_to_give_one(monkeypatch):
    monkeypatch.chdir(VAULT)
    text = cause(lambda: load_inventory(VAULT / "whole" / "hosts.yml"))
    assert text == "whole/hosts.yml is encrypted with ansible-vault and no vault password was given"


def test_passwords_from_the_environment_an_executable_and_the_prompt(tmp_path, monkeypatch):
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(PROD_PASSWORD))
    assert vault_from_options([], [], False).passwords[0].secret == b"prod-vault-password"
    monkeypatch.setenv("PROVISION_VAULT_PASSWORD_FILE", str(DEFAULT_PASSWORD))
    assert vault_from_options([], [], False).passwords[0].secret == b"fixture-vault-password"
    script = tmp_path / "pass.sh"
    script.write_text("#!/bin/sh\necho prod-vault-password\n")
    os.chmod(script, 0o755)
    assert vault_from_options([script], [], False).passwords[0].secret == b"prod-vault-password"
    monkeypatch.setattr("getpass.getpass", lambda prompt: f"typed at {prompt}")
    monkeypatch.setattr("provisioner.config.vault.ask_on_terminal", lambda option, fix: None)   # as on a terminal
    typed = vault_from_options([], ["prod@prompt"], ask=True).passwords
    assert [(p.vault_id, p.secret) for p in typed] == [("prod", b"typed at Vault password (prod): "),
                                                       ("default", b"typed at Vault password: ")]


@pytest.mark.parametrize("content, words", [
    ("", "is empty"), (None, "cannot read vault password file"),
])
def test_password_file_errors(tmp_path, content, words):
    path = tmp_path / "pw"
    if content is not None:
        path.write_text(content)
    assert words in cause(lambda: vault_from_options([path], [], False))


@pytest.mark.parametrize("envelope, words", [
    ("$ANSIBLE_VAULT;1.0;AES\n00", "not an ansible-vault envelope"),
    ("$ANSIBLE_VAULT;1.1;AES128\n00", "cipher 'AES128' is not supported"),
    ("$ANSIBLE_VAULT;1.1;AES256\nzz", "damaged"),
])
def test_damaged_envelopes(envelope, words):
    assert words in cause(lambda: both().decrypt(envelope, "x.yml"))
