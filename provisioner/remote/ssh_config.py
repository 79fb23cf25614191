"""Which ssh_config applies to a host, as OpenSSH would read it, plus the inventory's own SSH options.

Files: `$PROVISION_SSH_CONFIG` or `-F FILE` (in ansible_ssh_common_args) alone, as `ssh -F`; otherwise
~/.ssh/config then /etc/ssh/ssh_config. `Include` is expanded (paramiko does not read it): globs, `~`,
relative paths from ~/.ssh (or /etc/ssh for the system file), inside a Host/Match block too.

The inventory's options come first, as `ssh -o` options do (the first value found wins): the
connection variables it sets (ansible_user, ansible_port), then ansible_ssh_common_args and
ansible_ssh_extra_args: `-o ProxyJump=`, `-J`, `-o ProxyCommand=`, `-o Port/User/IdentityFile/
ConnectTimeout`, `-p -l -i -F`, `-o StrictHostKeyChecking=yes|accept-new|ask`. Any other option is
refused with the reason, never dropped.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

import paramiko

from ..errors import UserError

SYSTEM_SSH_CONFIG = Path("/etc/ssh/ssh_config")
INCLUDE_DEPTH = 16  # OpenSSH's limit
_LINE = re.compile(r"\s*(\w+)(?:\s*=\s*|\s+)(.*?)\s*$")

# ssh_config keywords provision honours in ssh options (lower case -> as written in messages).
HONOURED = {"proxyjump": "ProxyJump", "proxycommand": "ProxyCommand", "port": "Port", "user": "User",
            "identityfile": "IdentityFile", "connecttimeout": "ConnectTimeout",
            "stricthostkeychecking": "StrictHostKeyChecking"}
FLAGS = {"-J": "proxyjump", "-p": "port", "-l": "user", "-i": "identityfile"}
_HOST_KEYS = "provision always checks host keys (first contact accepted and remembered, a changed key refused)"
WHY_REFUSED = {
    "userknownhostsfile": _HOST_KEYS + "; its known_hosts is $PROVISION_KNOWN_HOSTS",
    "stricthostkeychecking": _HOST_KEYS,
    "controlmaster": "provision keeps one connection per host for the whole run itself",
    "controlpersist": "provision keeps one connection per host for the whole run itself",
    "controlpath": "provision keeps one connection per host for the whole run itself",
    "forwardagent": "provision runs nothing on the host that logs in elsewhere",
    "-a": "provision runs nothing on the host that logs in elsewhere",
}
TAKEN = "provision's SSH client takes ProxyJump, ProxyCommand, Port, User, IdentityFile, ConnectTimeout, " \
        "StrictHostKeyChecking (-o), -J, -p, -l, -i, -F"


class RefusedOption(ValueError):
    """An SSH option provision does not take; the message is the one-line reason, naming it."""


@dataclass(frozen=True)
class SshOptions:
    """What the inventory says about the SSH connection, strongest first, as ssh_config keywords."""

    settings: tuple[tuple[str, str], ...] = ()
    config_file: Path | None = None  # -F: read instead of ~/.ssh/config and /etc/ssh/ssh_config


def parse_ssh_args(args: tuple[str, ...] | list[str], given: dict[str, str] | None = None) -> SshOptions:
    """`given` (ssh_config keyword -> value: the inventory's ansible_user/port) then the options in `args`
    (ansible_ssh_common_args + ansible_ssh_extra_args, already split); RefusedOption for the others."""
    settings = list((given or {}).items())
    config_file = None
    words = list(args)
    while words:
        word = words.pop(0)
        flag, attached = word[:2], word[2:]
        if flag not in ("-o", "-F", *FLAGS) or not word.startswith("-"):
            reason = WHY_REFUSED.get(word.lower(), TAKEN)
            raise RefusedOption(f"SSH option {word} is refused: {reason}")
        if not attached and not words:
            raise RefusedOption(f"SSH option {word} has no value")
        value = attached or words.pop(0)
        if "\n" in value:
            raise RefusedOption(f"SSH option {word} has a line break in its value")
        if flag == "-F":
            config_file = Path(value).expanduser()
        elif flag in FLAGS:
            settings.append((FLAGS[flag], value))
        else:
            settings.append(_option(value))
    return SshOptions(tuple(settings), config_file)


def _option(text: str) -> tuple[str, str]:
    match = _LINE.fullmatch(text)
    if not match:
        raise RefusedOption(f"SSH option -o {text!r} is not KEY=VALUE")
    key, value = match.group(1).lower(), match.group(2)
    if key not in HONOURED:
        raise RefusedOption(f"SSH option {match.group(1)} is refused: {WHY_REFUSED.get(key, TAKEN)}")
    if key == "stricthostkeychecking" and value.lower() not in ("yes", "accept-new", "ask"):
        raise RefusedOption(f"SSH option StrictHostKeyChecking={value} is refused: {_HOST_KEYS}")
    if key == "port" and not value.isdigit():
        raise RefusedOption(f"SSH option Port={value} is not a port number")
    return key, value


def lookup_config(alias: str, options: SshOptions = SshOptions()) -> paramiko.SSHConfig:
    """The ssh_config a connection to `alias` reads: the inventory's options for it, then the files."""
    override = "".join(f"  {HONOURED[key]} {_quoted(key, value)}\n" for key, value in options.settings)
    proxies = [key for key, _ in options.settings if key in ("proxyjump", "proxycommand")]
    if proxies:  # the first of the two given wins over the other in the files too, as in OpenSSH
        override += f"  {HONOURED[({'proxyjump', 'proxycommand'} - {proxies[0]}).pop()]} none\n"
    text = f"Host {alias}\n{override}" if override else ""
    for path, include_dir in _config_files(options.config_file):
        expanded = expand_includes(path, include_dir)
        _parse(expanded, path)
        text += "Host *\n" + expanded
    return _parse(text, "the inventory's SSH options")


def _quoted(key: str, value: str) -> str:
    return f'"{value}"' if key != "proxycommand" and " " in value else value


def _parse(text: str, source) -> paramiko.SSHConfig:
    try:
        return paramiko.SSHConfig.from_text(text)
    except paramiko.ssh_exception.ConfigParseError as error:
        raise UserError(f"cannot read the ssh_config {source}: {error}",
                        "fix that line (man ssh_config)") from None


def _config_files(config_file: Path | None) -> list[tuple[Path, Path]]:
    """(file, the folder its relative Includes are in), in the order OpenSSH reads them."""
    user_dir = Path.home() / ".ssh"
    chosen = config_file or (Path(os.environ["PROVISION_SSH_CONFIG"]).expanduser()
                             if os.environ.get("PROVISION_SSH_CONFIG") else None)
    if chosen is not None:
        if not chosen.is_file():
            raise UserError(f"ssh_config file {chosen} does not exist",
                            "point $PROVISION_SSH_CONFIG (or -F in ansible_ssh_common_args) at an existing file")
        return [(chosen, user_dir)]
    return [(path, folder) for path, folder in ((user_dir / "config", user_dir),
                                                (SYSTEM_SSH_CONFIG, SYSTEM_SSH_CONFIG.parent)) if path.is_file()]


def expand_includes(path: Path, include_dir: Path, depth: int = 0) -> str:
    """The text of an ssh_config file with every `Include` replaced by the files it names. After an
    included text the block it was included in is opened again, so later lines keep their block."""
    if depth > INCLUDE_DEPTH:
        raise UserError(f"ssh_config Include nested deeper than {INCLUDE_DEPTH} at {path}",
                        "look for an Include that includes itself")
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise UserError(f"cannot read ssh_config {path}: {error.strerror}", "check the file's permissions") from None
    block, out = "Host *", []
    for line in lines:
        match = _LINE.match(line)
        key = match.group(1).lower() if match else ""
        if key in ("host", "match"):
            block = line.strip()
        if key != "include":
            out.append(line)
            continue
        for pattern in match.group(2).split():
            pattern = os.path.expanduser(pattern)
            full = pattern if os.path.isabs(pattern) else str(include_dir / pattern)
            for name in sorted(glob.glob(full)):
                if os.path.isfile(name):
                    out.append(expand_includes(Path(name), include_dir, depth + 1).rstrip("\n"))
        out.append(block)
    return "\n".join(out) + "\n"
