"""Kinds of setting values: what each setting accepts, how a value is typed, and how to say what is wanted.

Split from provisioner/config/settings.py, which pairs each setting with one of these kinds.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from provisioner.config.secret import Secret


class Invalid(ValueError):
    """A value does not fit its kind; the message, if any, says more than the kind's description."""


@dataclass(frozen=True)
class Kind:
    desc: str                        # "an integer >= 1": completes "setting X of host Y must be ..."
    check: Callable[[Any], Any]      # the typed value, or raises Invalid
    example: str = ""                # for the fix: "write it like `name: example`"


def _integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        if len(value.strip().lstrip("+-")) > 18:
            raise Invalid(f"{len(value.strip())} digits: far beyond any real value")
        return int(value)
    raise Invalid()


def integer(lo: int, hi: int | None = None, desc: str = "") -> Kind:
    def check(value: Any) -> int:
        number = _integer(value)
        if number < lo or (hi is not None and number > hi):
            raise Invalid()
        return number
    desc = desc or (f"an integer >= {lo}" if hi is None else f"an integer from {lo} to {hi}")
    return Kind(desc, check)


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise Invalid()


def text(desc: str, pattern: str, example: str, *, numbers: bool = False, maxlen: int = 255,
         join: str | None = None) -> Kind:
    """A string matching `pattern`; `numbers` accepts an unquoted YAML number (10 -> '10'),
    `join` accepts a YAML list and joins its items with that separator."""
    regex = re.compile(pattern)

    def check(value: Any) -> str:
        if join is not None and isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = join.join(value)
        if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or len(value) > maxlen or not regex.fullmatch(value):
            raise Invalid()
        return value
    return Kind(desc, check, example)


def _no_dotdot(kind: Kind) -> Kind:
    def check(value: Any) -> str:
        value = kind.check(value)
        if ".." in value.split("/"):
            raise Invalid("'..' is not allowed")
        return value
    return Kind(kind.desc, check, kind.example)


def _socket_path(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"[\w.-]*:\d+", value):
        raise Invalid("uWSGI listens on a unix socket only: a TCP socket would expose it to the network")
    return ABS_PATH.check(value)


def _chmod(value: Any) -> str:
    mode = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    mode = mode[1:] if len(mode) == 4 and mode.startswith("0") else mode
    if not re.fullmatch(r"[67][0-7][0-7]", mode):
        hint = "; quote it in YAML: unquoted 0660 is read as the number 432" if isinstance(value, int) else ""
        raise Invalid(f"the owner digit must be 6 or 7{hint}")
    return mode


def _env(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid()
    env = {}
    for key, item in value.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise Invalid(f"{key!r} is not an environment variable name")
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif item is None:
            item = ""
        elif isinstance(item, (int, float)):
            item = str(item)
        if not isinstance(item, str):
            raise Invalid(f"the value of {key} must be a string, got a {type(item).__name__}")
        if "\n" in item or "\r" in item or "\0" in item:
            raise Invalid(f"the value of {key} contains a line break (the environment file is one line a variable)")
        env[key] = item
    return env


def _packages(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid()
    for name in value:
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", name):
            raise Invalid(f"{name!r} is not a Debian package name")
    return list(value)


def _var_names(value: Any) -> list[str]:
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else None
    if names is None or not all(isinstance(n, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names):
        raise Invalid()
    return list(names)


def _address(value: Any) -> str:
    """An IP address or a host name (letters, digits, - and _ between dots): what a balancer's nginx can
    reach; a dotted number that is no IPv4 address (10.0.0.256) or a bad IPv6 one is refused."""
    text = str(value) if isinstance(value, str) else ""
    if re.fullmatch(r"[\d.]+", text) or ":" in text:
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise Invalid(f"{text!r} is not an IP address") from None
    if len(text) > 253 or not re.fullmatch(r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
                                           r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?", text):
        raise Invalid()
    return text


def _controller_path(value: Any) -> Path:
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise Invalid()
    return Path(value).expanduser()   # made absolute by resolve(): relative to the inventory file


def _str_only(value: Any, numbers: bool = False) -> str:
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise Invalid()
    return value


def _ssh_args(value: Any) -> tuple[str, ...]:
    """Ansible's ssh_common_args / ssh_extra_args: one string split as a shell would, or a list."""
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    if not isinstance(value, str):
        raise Invalid()
    try:
        return tuple(shlex.split(value))
    except ValueError as error:
        raise Invalid(str(error)) from None


def _optional(kind: Kind) -> Kind:
    return Kind(kind.desc, lambda value: None if value is None else kind.check(value), kind.example)


_SEGMENT = r"[A-Za-z0-9._+@-]+"
_NAME = r"[a-z_][a-z0-9_-]*"
_URL_PATH = r"/[A-Za-z0-9._~!$&()*+,=:@%/-]*"

INT = integer(0, desc="an integer >= 0")
POSITIVE = integer(1)
PORT = integer(1, 65535)
SECONDS = Kind(POSITIVE.desc, POSITIVE.check, "65")
BOOL = Kind("true or false", _boolean, "true")
APP_NAME = text("an identifier [a-z][a-z0-9_]* of at most 32 characters", r"[a-z][a-z0-9_]*", "model_api",
                maxlen=32)
UNIX_NAME = text("a user or group name [a-z_][a-z0-9_-]* of at most 32 characters", _NAME, "model_api", maxlen=32)
PY_IDENT = text("a python identifier", r"[A-Za-z_][A-Za-z0-9_]*", "app")
DOTTED = text("a dotted python module name", r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", "model_api.wsgi")
ABS_PATH = _no_dotdot(text("an absolute path", rf"(/{_SEGMENT})+", "/srv/model_api"))
REL_PATH = _no_dotdot(text("a relative path", rf"{_SEGMENT}(/{_SEGMENT})*", "static"))
URL_PATH = text("a URL path starting with /", _URL_PATH, "/healthz")
URL_DIR = text("a URL path starting and ending with /", rf"{_URL_PATH}/|/", "/static/")
SERVER_NAMES = text("host names separated by spaces (or _ for any)", r"[A-Za-z0-9_.*-]+( +[A-Za-z0-9_.*-]+)*",
                    "api.example.com www.example.com", join=" ")
NGINX_TIME = text("an nginx time like 7d, 12h, 30m or off", r"off|max|epoch|(\d+(ms|s|m|h|d|w|M|y)?)+", "7d",
                  numbers=True)
NGINX_SIZE = text("an nginx size like 10m, 512k or 1g", r"\d+[kKmMgG]?", "10m", numbers=True)
RAW = Kind("a string", lambda value: "" if value is None else _str_only(value), "|\n  location /x { ... }")
SOCKET = Kind("the absolute path of a unix socket", _socket_path, "/run/model_api/uwsgi.sock")
MODE = Kind("an octal mode like '660' or '666'", _chmod, "'660'")
OWNER = text("user:group", rf"{_NAME}:{_NAME}", "model_api:www-data")
PLUGINS = text("uWSGI plugin names separated by commas", r"([a-z0-9_]+( *, *[a-z0-9_]+)*)?", "python3", join=",")
ENV = Kind("a mapping of environment variable names to strings", _env, "{LOG_LEVEL: info}")
VAR_NAMES = Kind("a list of variable names", _var_names, "[httpd_port]")
PACKAGES = Kind("a list of Debian package names", _packages, "[curl, htop]")
CONTROLLER_DIR = Kind("a directory on this machine", _controller_path, "examples/model_api")
KEY_FILE = _optional(Kind("a file on this machine", _controller_path, "~/.ssh/id_ed25519"))
HOST = _optional(text("a host name or address", r"[^\s,/]+", "203.0.113.10"))
ADDRESS = _optional(Kind("an IP address or a host name", _address, "10.0.0.11"))
SSH_USER = text("a user name", r"[^\s:@/]+", "deploy")
PASSWORD = _optional(Kind("a string", lambda value: Secret(_str_only(value, numbers=True)), "!secret s3cr3t"))
SSH_ARGS = Kind("SSH options in one string", _ssh_args, "'-o ProxyJump=bastion.example.com'")
