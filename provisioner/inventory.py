"""Load Ansible inventories as they are and select hosts from them.

Sources (`-i`, repeatable): a YAML or INI file, a directory (every inventory in it, as Ansible reads one),
or a comma list of hosts (`web1,web2,`). Then group_vars/ and host_vars/ beside each inventory and beside
the current directory, and -e. A host's vars, weakest first (Ansible's precedence; docs/settings.md):
-u/--private-key < the inventory's `all` vars < its groups' vars (shallow before deep, same depth by
ansible_group_priority then name) < group_vars/all < group_vars/GROUP < the inventory's host vars <
host_vars/HOST < -e. Files beside an inventory come before the same files beside the current directory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import provisioner
from provisioner.config.foreign import ProjectNames
from provisioner.config.inventory_ini import IniInventory
from provisioner.config.inventory_yaml import YamlInventory, host_names
from provisioner.config.model import Model, merge
from provisioner.config.patterns import select
from provisioner.config.reading import parse_yaml, read_text, shown
from provisioner.config.secret import as_secrets
from provisioner.config.topology import with_topology
from provisioner.config.vars_files import VarsDirs, extra_vars
from provisioner.config.vault import Vault
from provisioner.errors import UserError
from provisioner.remote.ssh_config import RefusedOption, SshOptions, parse_ssh_args
from provisioner.config.ansible_names import ALIASES
from provisioner.config.secret import Secret
from provisioner.config.values import RawVars, Vars, resolve

DEFAULT_INVENTORY = Path("inventories")
YAML_SUFFIXES = (".yml", ".yaml", ".json")
# What Ansible skips in an inventory directory: hidden files, vars folders, backups, docs, retry files.
_SKIPPED_IN_FOLDERS = re.compile(r"^\.|^(host_vars|group_vars|vars_plugins)$|"
                                 r"(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.cfg|\.retry)$")


@dataclass(eq=False)
class Host:
    name: str
    address: str
    port: int
    user: str
    key_file: Path | None
    become: bool
    become_password: Secret | None
    groups: list[str]        # every group the host is in (not `all`), in precedence order
    vars: Vars = field(repr=False)
    ssh_options: SshOptions | None = None   # the inventory's own SSH options (provisioner/remote/ssh_config.py)

    def __str__(self) -> str:
        return self.name

    def secrets(self) -> list[str]:
        """The host's secrets: its settings' and a sudo password set after loading (`replace(h, ...)`)."""
        found = self.vars.secrets()
        if self.become_password and self.become_password not in found:
            found.append(str(self.become_password))
        return found


@dataclass
class Inventory:
    path: Path                                 # the first source
    hosts: dict[str, Host]                     # in the order the sources give them
    groups: dict[str, list[str]]               # group -> its hosts in Ansible's order, `all` included
    warnings: list[str] = field(default_factory=list)
    sources: str = ""                          # every source, for messages
    refused: dict[str, UserError] = field(default_factory=dict)   # hosts whose settings are refused
    names_read: list[str] = field(default_factory=list)             # every host, in the order read

    def __post_init__(self):
        self.names_read = self.names_read or list(self.hosts)

    def names(self, pattern: str) -> list[str]:
        """The host names an Ansible host pattern selects (provisioner/config/patterns.py), in its order;
        refused hosts included (for --list-hosts)."""
        order = [name for name in self.names_read if name in self.hosts or name in self.refused]
        return select(pattern, order, self.groups, self.sources)

    def select(self, pattern: str) -> list[Host]:
        """The hosts `pattern` selects; a UserError if one of them, or a host its settings are made from
        (a balancer's app hosts, an app host's balancers), has settings that are refused."""
        names = self.names(pattern)
        for name in names:
            self.refuse(name)
            host = self.hosts[name]
            behind = {"balancer": host.vars.app_hosts_group, "app": host.vars.lb_group}.get(host.vars.site_tier)
            for other in self.groups.get(behind, []) if behind else ():   # its upstream, or its balancers
                self.refuse(other)
        return [self.hosts[name] for name in names]

    def refuse(self, name: str) -> None:
        if name in self.refused:
            raise self.refused[name]


def default_inventory_path() -> Path:
    """$PROVISION_INVENTORY, else the folder inventories/ here, else the project's.

    A folder means every inventory in it: production.yml and, once `provision lab up` ran, lab.yml.
    """
    if os.environ.get("PROVISION_INVENTORY"):
        return Path(os.environ["PROVISION_INVENTORY"]).expanduser()
    if DEFAULT_INVENTORY.is_dir():
        return DEFAULT_INVENTORY
    return Path(provisioner.PROJECT_ROOT) / DEFAULT_INVENTORY


def load_inventory(sources: Path | str | list[Path | str], *, extra: list[str] = (), vault: Vault | None = None,
                   user: str | None = None, private_key: Path | None = None, every_host: bool = True) -> Inventory:
    """Every host of `sources` with its resolved settings. `extra` are -e values, `user` and `private_key`
    the -u and --private-key options (defaults an inventory's ansible_user / key file beat, as in Ansible).
    A host whose settings are refused is an error; without `every_host`, only once it is selected
    (`Inventory.refused`): a shared inventory's other hosts never stop a run."""
    sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
    vault = vault or Vault()
    model, folders, read = Model(), [], []
    for source in sources:
        if isinstance(source, str) and "," in source and not Path(source).exists():
            _read_host_list(model, source)
            continue
        path = Path(source).expanduser()
        files = _inventory_files(path) if path.is_dir() else [path]
        if not files:
            raise UserError(f"inventory folder {shown(path)} has no inventory files",
                            "add an inventory file (YAML or INI) to it, or pass one with -i FILE")
        read += [name for name in (_read_file(model, file, vault, path.is_dir()) for file in files) if name]
        folders.append(path if path.is_dir() else path.parent)
    _check_hosts(model, read or [", ".join(map(str, sources))])
    vars_dirs = VarsDirs(model, folders + [Path.cwd()], vault)
    given = {"ansible_user": user, "ansible_ssh_private_key_file": private_key}
    command_line = model.vars_block({k: v for k, v in given.items() if v is not None}, "the command line",
                                    "-u/--private-key", {}, Path.cwd())
    highest = extra_vars(list(extra), model, vault)
    foreign = ProjectNames(folders + [Path.cwd()])
    hosts, refused = {}, {}
    for name, in_groups in model.host_groups().items():
        try:
            hosts[name] = _host(name, in_groups, model, vars_dirs, command_line, highest, foreign)
        except UserError as error:
            if every_host:
                raise
            refused[name] = error
    groups = model.members()
    hosts = with_topology(hosts, groups, set(refused))   # balancers and app hosts: provisioner/config/topology.py
    vars_dirs.warn_about_strays(set(groups), set(hosts) | set(refused))
    for name in set(groups) & set(hosts):
        model.warn(f"{name!r} is both a host and a group; selecting it selects the host only, as in Ansible")
    for host in hosts.values():
        for warning in host.vars.warnings:
            model.warn(warning)
    return Inventory(Path(sources[0]), hosts, groups, model.warnings, ", ".join(map(str, sources)), refused,
                     list(model.host_vars))


def _inventory_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if not _SKIPPED_IN_FOLDERS.search(entry.name):
            found += _inventory_files(entry) if entry.is_dir() else [entry]
    return found


def _read_host_list(model: Model, source: str) -> None:
    """`-i web1,web2:2222,`: hosts in no group, as Ansible's host_list source."""
    for item in (part.strip() for part in source.split(",")):
        if item:
            names, port = host_names(item, "-i")
            kept = model.vars_block({"ansible_port": port} if port else {}, f"host {item}", "-i", {}, Path.cwd())
            for name in names:
                model.add_host(name, "ungrouped", kept, "-i")


def _read_file(model: Model, path: Path, vault: Vault, in_folder: bool) -> str | None:
    """One inventory file, YAML or INI: .yml/.yaml/.json are YAML, .ini is INI, any other name is YAML
    when it reads as a YAML mapping of groups and INI otherwise (Ansible tries both in that order).
    The file's name as shown, or None for an inventory plugin's config in a folder (skipped, as Ansible
    skips one whose plugin it cannot run)."""
    fix = f"point -i or PROVISION_INVENTORY at your inventory, or copy {DEFAULT_INVENTORY} from the project"
    text, encrypted = read_text(path, "inventory", vault, fix)
    name, base = shown(path), path.parent.resolve()
    if path.suffix in YAML_SUFFIXES:
        parsed = parse_yaml(text, name, vault)
    elif path.suffix == ".ini" or not (parsed := _yaml_groups(text, name, vault)):
        IniInventory(model, name, base, secret=encrypted).read(text)
        return name
    data, warnings = parsed
    if isinstance(data, dict) and isinstance(data.get("plugin"), str):
        plugin = f"{name} is the config of Ansible's inventory plugin {data['plugin']}"
        export = f"export its hosts with `ansible-inventory -i {name} --list -y > hosts.yml` and pass that file"
        if not in_folder:
            raise UserError(f"{plugin}; provision reads static inventories (YAML, INI)", export)
        model.warn(f"{plugin} (provision reads static inventories): skipped; to use it, {export}")
        return None
    for warning in warnings:
        model.warn(warning)
    YamlInventory(model, name, base).read(as_secrets(data) if encrypted else data)
    return name


def _check_hosts(model: Model, read: list[str]) -> None:
    """A file with groups but no hosts (a sample inventory with its hosts commented out) is read for its
    groups and vars, as Ansible reads it; an error only when no file has a host."""
    empty = [name for name in read if name not in model.sources_with_hosts]
    if empty and not model.host_vars:
        raise UserError(f"inventory {empty[0]} has no hosts",
                        "add a host: INI `prod1 ansible_host=203.0.113.10` under `[web]`; YAML `all:` / "
                        "`  hosts:` / `    prod1:` / `      ansible_host: 203.0.113.10`")
    for name in empty:
        model.warn(f"inventory {name} has no hosts: read for its groups and vars only")


def _yaml_groups(text: str, name: str, vault: Vault) -> tuple | None:
    """The YAML data and warnings of `text` if it is a mapping of groups, else None (then it is INI)."""
    try:
        data, warnings = parse_yaml(text, name, vault)
    except UserError:
        return None
    if isinstance(data, dict) and all(isinstance(body, dict) or body is None for body in data.values()):
        return data, warnings
    return None


def _host(name: str, groups: list[str], model: Model, dirs: VarsDirs, lowest: RawVars, highest: RawVars,
          foreign: ProjectNames) -> Host:
    raw = RawVars()
    layers = [lowest, model.groups["all"].vars, *(model.groups[g].vars for g in groups),
              *(dirs.of(f, "group_vars", "all") for f in dirs.folders),
              *(dirs.of(f, "group_vars", g) for f in dirs.folders for g in groups),
              model.host_vars[name], *(dirs.of(f, "host_vars", name) for f in dirs.folders), highest]
    for layer in layers:
        merge(raw, layer)
    raw.setdefault("ansible_host", name)
    source = model.files[name]
    try:
        v = resolve(raw, where=f"host {name}", base_dir=Path.cwd(), foreign=foreign)
    except UserError as error:
        cause = error.cause if source in error.cause else f"{source}: {error.cause}"
        raise UserError(cause, error.fix, error.code) from None
    become = v.ansible_become if _given(raw, "ansible_become") or _given(raw, "ansible_user") else True
    return Host(name, v.ansible_host, v.ansible_port, v.ansible_user, v.ansible_ssh_private_key_file, become,
                v.ansible_become_password, groups, v, _ssh_options(name, raw, v, source))


def _given(raw: RawVars, setting: str) -> bool:
    return setting in raw or any(alias in raw for alias, name in ALIASES.items() if name == setting)


def _ssh_options(name: str, raw: RawVars, v: Vars, source: str) -> SshOptions:
    """The inventory's user and port (when it sets them; else ssh_config's apply) and its SSH options.
    Without ansible_user, sudo is used unless the user ssh_config names (or the local one) is root."""
    given = {"user": v.ansible_user} if _given(raw, "ansible_user") else {}
    if _given(raw, "ansible_port"):
        given["port"] = str(v.ansible_port)
    try:
        return parse_ssh_args(v.ansible_ssh_common_args + v.ansible_ssh_extra_args, given)
    except RefusedOption as refused:
        option = "ansible_ssh_common_args" if v.ansible_ssh_common_args else "ansible_ssh_extra_args"
        raise UserError(f"{option} of host {name} ({raw.origins.get(option, source)}): {refused}",
                        f"remove that option from {option}; docs/settings.md lists the SSH options provision "
                        "takes") from None
