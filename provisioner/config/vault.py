"""Ansible Vault: values (`!vault |`) and whole files that `ansible-vault` encrypted.

Formats 1.1 and 1.2 (1.2 names a vault id), cipher AES256 as Ansible's VaultAES256 writes it: PBKDF2-SHA256
(10000 iterations) of the password gives an AES key, an HMAC key and the CTR counter; the HMAC-SHA256
of the ciphertext is checked before anything is decrypted, so a wrong password is told apart from a
damaged file. Whatever decrypts is a secret (provisioner/config/secret.py).
"""

from __future__ import annotations

import binascii
import getpass
import hmac
import os
import subprocess
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from provisioner.config.local_input import ask_on_terminal, refuse_special_file
from provisioner.config.secret import Secret
from provisioner.errors import UserError

HEADER = "$ANSIBLE_VAULT;"
DEFAULT_ID = "default"
PASSWORD_FILE_VARIABLES = ("PROVISION_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE")
HOW_TO_GIVE = ("pass --vault-password-file FILE (or --vault-id ID@FILE, --ask-vault-pass), "
               "or set PROVISION_VAULT_PASSWORD_FILE")


def is_encrypted(text: str) -> bool:
    return text.lstrip().startswith(HEADER)


@dataclass(frozen=True)
class Password:
    vault_id: str
    secret: bytes
    source: str        # where it came from, for messages ("--vault-password-file pw.txt")


class Encrypted:
    """A `!vault` value, decrypted only when a setting of a selected host uses it (as in Ansible: a vaulted
    value nothing reads needs no password, and one encrypted with another password blocks nothing).
    Decrypted once, however many hosts share it."""

    def __init__(self, envelope: str, where: str, vault: "Vault"):
        self.envelope, self.where, self.vault = envelope, where, vault
        self._plain: str | None = None

    def decrypt(self, name: str) -> str:
        """The plain text; a UserError naming setting `name` and where the value is written if it cannot be."""
        if self._plain is None:
            if not self.vault.passwords:
                raise UserError(f"{name} ({self.where}) is encrypted with ansible-vault and no vault password "
                                "was given", HOW_TO_GIVE)
            self._plain = self.vault.decrypt(self.envelope, self.where)
        return self._plain


def decrypted(value: Any, name: str) -> Any:
    """`value` with every Encrypted value in it decrypted into a Secret for setting `name` (the only
    moment one is)."""
    if isinstance(value, Encrypted):
        return Secret(value.decrypt(name))
    if isinstance(value, dict):
        return {key: decrypted(item, name) for key, item in value.items()}
    return [decrypted(item, name) for item in value] if isinstance(value, list) else value


class Vault:
    """The vault passwords of this run; `decrypt` tries the one whose id the envelope names first."""

    def __init__(self, passwords: list[Password] | tuple[Password, ...] = ()):
        self.passwords = list(passwords)

    def decrypt(self, envelope: str, where: str) -> str:
        vault_id, salt, mac, ciphertext = _parse(envelope, where)
        if not self.passwords:
            raise UserError(f"{where} is encrypted with ansible-vault and no vault password was given", HOW_TO_GIVE)
        ordered = sorted(self.passwords, key=lambda p: p.vault_id != vault_id)
        for password in ordered:
            plain = _decrypt(password.secret, salt, mac, ciphertext)
            if plain is not None:
                try:
                    return plain.decode("utf-8")
                except UnicodeDecodeError:
                    raise UserError(f"{where}: the decrypted vault content is not UTF-8 text",
                                    "re-encrypt a UTF-8 text with ansible-vault") from None
        tried = ", ".join(p.source for p in ordered)
        raise UserError(f"{where}: wrong vault password (tried {tried}; vault id {vault_id})",
                        "give the password it was encrypted with (--vault-password-file FILE or --vault-id ID@FILE)")


def _parse(envelope: str, where: str) -> tuple[str, bytes, bytes, bytes]:
    lines = [line.strip() for line in envelope.strip().splitlines()]
    header = lines[0].split(";") if lines else []
    if len(header) < 3 or header[0] != HEADER.rstrip(";") or header[1] not in ("1.1", "1.2"):
        raise UserError(f"{where}: not an ansible-vault envelope ({lines[0][:40] if lines else 'empty'!r})",
                        "encrypt it again with ansible-vault encrypt / encrypt_string (format 1.1 or 1.2)")
    if header[2].strip() != "AES256":
        raise UserError(f"{where}: vault cipher {header[2]!r} is not supported", "encrypt it with AES256")
    vault_id = header[3].strip() if header[1] == "1.2" and len(header) > 3 else DEFAULT_ID
    try:
        salt_hex, mac_hex, ciphertext_hex = binascii.unhexlify("".join(lines[1:])).split(b"\n", 2)
        return vault_id, *(binascii.unhexlify(part) for part in (salt_hex, mac_hex, ciphertext_hex))
    except (ValueError, binascii.Error):
        raise UserError(f"{where}: the ansible-vault content is damaged (not the hex ansible-vault writes)",
                        "encrypt it again with ansible-vault") from None


def _decrypt(password: bytes, salt: bytes, mac: bytes, ciphertext: bytes) -> bytes | None:
    """The plaintext, or None when the HMAC says the password is not the one it was encrypted with."""
    keys = PBKDF2HMAC(algorithm=SHA256(), length=80, salt=salt, iterations=10000).derive(password)
    cipher_key, mac_key, counter = keys[:32], keys[32:64], keys[64:]
    if not hmac.compare_digest(hmac.new(mac_key, ciphertext, sha256).digest(), mac):
        return None
    decryptor = Cipher(algorithms.AES(cipher_key), modes.CTR(counter)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


# --- where passwords come from -------------------------------------------------------------------


def password_from_file(path: Path, vault_id: str, option: str) -> Password:
    """A password file as Ansible reads it: its text, stripped; an executable file is run and its output
    is the password (a script that asks a password manager)."""
    path = Path(path).expanduser()
    source = f"{option} {path}"
    refuse_special_file(path, "vault password file", str(path), "give a regular file to " + option)
    try:
        if os.access(path, os.X_OK) and path.is_file():
            path = path.absolute()    # ./vault-pass.sh: this directory's, never one found on PATH
            done = subprocess.run([str(path)], capture_output=True, timeout=60)
            if done.returncode:
                raise UserError(f"vault password script {path} failed (exit {done.returncode})",
                                "run it by hand to see why, or give a plain password file")
            secret = done.stdout.strip()
        else:
            secret = path.read_bytes().strip()
    except subprocess.TimeoutExpired:
        raise UserError(f"vault password script {path} gave no password within 60 s",
                        "run it by hand to see why, or give a plain password file") from None
    except OSError as error:
        raise UserError(f"cannot read vault password file {path}: {error.strerror}",
                        "check the path given to " + option) from None
    if not secret:
        raise UserError(f"vault password file {path} is empty", "write the vault password into it")
    return Password(vault_id, secret, source)


def vault_from_options(password_files: list[Path], vault_ids: list[str], ask: bool) -> Vault:
    """The passwords given by --vault-password-file, --vault-id ID@FILE|ID@prompt, --ask-vault-pass and,
    when none of those is given, $PROVISION_VAULT_PASSWORD_FILE or $ANSIBLE_VAULT_PASSWORD_FILE."""
    passwords = [password_from_file(p, DEFAULT_ID, "--vault-password-file") for p in password_files]
    for item in vault_ids:
        vault_id, _, source = item.rpartition("@")
        vault_id = vault_id or DEFAULT_ID
        if source == "prompt":
            passwords.append(_prompt(vault_id))
        else:
            passwords.append(password_from_file(Path(source), vault_id, "--vault-id"))
    if ask:
        passwords.append(_prompt(DEFAULT_ID))
    if not passwords:
        for variable in PASSWORD_FILE_VARIABLES:
            if os.environ.get(variable):
                passwords.append(password_from_file(Path(os.environ[variable]), DEFAULT_ID, f"${variable}"))
                break
    return Vault(passwords)


def _prompt(vault_id: str) -> Password:
    ask_on_terminal("--ask-vault-pass" if vault_id == DEFAULT_ID else f"--vault-id {vault_id}@prompt",
                    "give the password in a file: --vault-password-file FILE (an executable one is run)")
    label = "Vault password: " if vault_id == DEFAULT_ID else f"Vault password ({vault_id}): "
    return Password(vault_id, getpass.getpass(label).encode(), "the password typed at the prompt")
