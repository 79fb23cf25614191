"""The Ansible-style options every command that works on hosts takes (-e, -u, --private-key, vault,
--list-hosts), added to a command by one decorator so the commands' own signatures stay about their work."""

from __future__ import annotations

import functools
import getpass
import inspect
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable, Optional

import typer

if TYPE_CHECKING:
    from provisioner.inventory import Host

_OPTIONS = {
    "extra_vars": (Annotated[Optional[list[str]], typer.Option(
        "--extra-vars", "-e", help="Vars that beat the inventory: name=value, JSON, or @FILE (repeatable).")], None),
    "user": (Annotated[Optional[str], typer.Option(
        "--user", "-u", help="SSH user for hosts whose inventory sets no ansible_user.")], None),
    "private_key": (Annotated[Optional[Path], typer.Option(
        "--private-key", help="SSH key for hosts whose inventory sets no ansible_ssh_private_key_file.")], None),
    "vault_password_file": (Annotated[Optional[list[Path]], typer.Option(
        "--vault-password-file", help="File with the ansible-vault password (an executable one is run).")], None),
    "vault_id": (Annotated[Optional[list[str]], typer.Option(
        "--vault-id", help="ID@FILE or ID@prompt: the password of one vault id (repeatable).")], None),
    "ask_vault_pass": (Annotated[bool, typer.Option("--ask-vault-pass", help="Ask for the vault password.")], False),
    "list_hosts": (Annotated[bool, typer.Option(
        "--list-hosts", help="Print the hosts the pattern selects, and do nothing else.")], False),
}
_given: dict = {}


def inventory_options(command: Callable) -> Callable:
    """`command` with the options above; `selected_hosts` reads them."""
    @functools.wraps(command)
    def with_options(*args, **kwargs):
        _given.update((name, kwargs.pop(name)) for name in _OPTIONS)
        return command(*args, **kwargs)
    signature = inspect.signature(command, eval_str=True)
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default)
             for name, (kind, default) in _OPTIONS.items()]
    with_options.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *added])
    with_options.__annotations__ = {**command.__annotations__, **{name: kind for name, (kind, _) in _OPTIONS.items()}}
    return with_options


def selected_hosts(pattern: str, inventory: Optional[list[str]], ask_become_pass: bool,
                   warn: Callable[[str], None], show: Callable[[str], None], usable_only: bool = False) -> list[Host]:
    """The hosts `pattern` selects from the inventories, with -e/-u/--private-key/vault applied; with
    --list-hosts, `show` them as Ansible does and stop. `usable_only`: leave out hosts whose settings
    are refused instead of refusing the run (the rest of a site, around the hosts a rolling release selects)."""
    from provisioner.config.local_input import ask_on_terminal  # here: `provision --help` needs none of it
    from provisioner.errors import UserError
    from provisioner.config.vault import vault_from_options
    from provisioner.inventory import default_inventory_path, load_inventory
    from provisioner.config.secret import Secret
    vault = vault_from_options(_given.get("vault_password_file") or [], _given.get("vault_id") or [],
                               _given.get("ask_vault_pass", False))
    inv = load_inventory(inventory or [default_inventory_path()], extra=_given.get("extra_vars") or [], vault=vault,
                         user=_given.get("user"), private_key=_given.get("private_key"), every_host=False)
    for warning in inv.warnings:
        warn(warning)
    if _given.get("list_hosts"):   # lists what the pattern selects, as Ansible does; a refused host is a warning
        names = inv.names(pattern)
        for name in (n for n in names if n in inv.refused):
            warn(f"host {name} cannot be deployed: {inv.refused[name].cause}")
        show(f"  hosts ({len(names)}):")
        for name in names:
            show(f"    {name}")
        raise typer.Exit(0)
    hosts = [inv.hosts[n] for n in inv.names(pattern) if n not in inv.refused] if usable_only else inv.select(pattern)
    for host in hosts:   # before any connection: a missing key would read as "connection refused"
        if host.key_file is not None and not host.key_file.is_file():
            raise UserError(f"ansible_ssh_private_key_file of host {host.name} is {host.key_file}, which is not a "
                            "file", "point it at the private key (relative paths are relative to the inventory "
                            "file), or pass --private-key FILE")
    if ask_become_pass:
        ask_on_terminal("-K/--ask-become-pass", "set ansible_become_password in the inventory (encrypted with "
                        "ansible-vault), or run from a terminal")
        password = Secret(getpass.getpass("sudo password: "))
        hosts = [replace(h, become_password=password) for h in hosts]
    return hosts
