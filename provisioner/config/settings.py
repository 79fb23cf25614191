"""Settings: the schema of every inventory variable (docs/settings.md), validation and secrets.

`resolve()` turns the merged raw vars of one host into a typed, validated, defaults-filled `Vars`.
Every mistake a user can make in a value is a `UserError` naming the setting, the host and, when the
inventory tells us (`RawVars.origins`), the file and line it was written at.
"""

from __future__ import annotations

import difflib
import getpass
import re
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import provisioner
from provisioner.config.ansible_names import ALIASES, ANSIBLE_IGNORED, REFUSED_UNLESS
from provisioner.config.kinds import (ABS_PATH, ADDRESS, APP_NAME, BOOL, CONTROLLER_DIR, DOTTED, ENV, HOST, INT, KEY_FILE, MODE,
                                      NGINX_SIZE, NGINX_TIME, OWNER, PACKAGES, PASSWORD, PLUGINS, PORT, POSITIVE,
                                      PY_IDENT, RAW, REL_PATH, SECONDS, SERVER_NAMES, SOCKET, SSH_ARGS, SSH_USER,
                                      UNIX_NAME, URL_DIR, URL_PATH, VAR_NAMES, Invalid, Kind, integer)
from provisioner.config.app_check import check_app
from provisioner.config.front import (ACME_URL, CERTIFICATE, EMAIL, METHODS, PREFIXES, PRIVATE_KEY, RATE, RATE_LOCATIONS,
                                      RULE_IDS, TLS_MODE, WAF_MODE, check_tls)
from provisioner.config.secret import MASK, Secret
from provisioner.config.topology import FLOATING, SERIAL, UPSTREAM_METHOD, VRRP_PASSWORD, vrrp_password, vrrp_router_id
from provisioner.config.vault import decrypted
from provisioner.errors import UserError


def _local_user(values: dict) -> str:
    try:
        return getpass.getuser()
    except Exception:   # no $USER and no passwd entry (e.g. a bare container)
        raise UserError("cannot tell the local user name to log in as",
                        "set ansible_user in the inventory (e.g. all.vars: ansible_user: deploy)") from None


def _read_timeout(values: dict) -> int:
    return values["uwsgi_harakiri"] + 5 if values["uwsgi_harakiri"] else 60


@dataclass(frozen=True)
class Setting:
    name: str
    kind: Kind
    default: Any    # a value; a str with {other} is filled from other's final value; a callable computes it
    doc: str
    most: int | None = None   # an integer's upper bound: beyond what any real host could use
    # Named at every declaration: written into an ini/nginx/unit file, so refused if it contains newline ; { } #
    conf: bool = field(kw_only=True)


S = Setting
_DAY, _YEAR = 86_400, 31_536_000   # seconds: upper bounds of timeouts and lifetimes
# One line a setting, in dependency order (a templated or computed default follows what it uses).
SETTINGS: tuple[Setting, ...] = (
    S("app_name", APP_NAME, "model_api", "names the site, unit, user, paths", conf=True),
    S("app_source", CONTROLLER_DIR, "examples/model_api", "the app directory shipped as a release", conf=False),
    S("app_module", DOTTED, "model_api.wsgi", "uWSGI module", conf=True),
    S("app_callable", PY_IDENT, "app", "uWSGI callable", conf=True),
    S("app_requirements", REL_PATH, "requirements.txt", "relative to app_source; installed into the venv", conf=False),
    S("app_user", UNIX_NAME, "{app_name}", "system user the app runs as; never root", conf=True),
    S("app_group", UNIX_NAME, "{app_user}", "system group of the app", conf=True),
    S("app_root", ABS_PATH, "/srv/{app_name}", "releases under {app_root}/releases/ID, current link", conf=True),
    S("app_env", ENV, {}, "environment of the app (EnvironmentFile, mode 0640)", conf=False),
    S("keep_releases", POSITIVE, 3, "old releases pruned", most=100, conf=False),
    S("health_path", URL_PATH, "/healthz", "checked through nginx after every deploy", conf=True),
    S("server_name", SERVER_NAMES, "_", "nginx server_name", conf=True),
    S("http_port", PORT, 80, "nginx listen port", conf=True),
    S("nginx_listen_backlog", POSITIVE, 4096, "nginx accept queue on http_port (capped by net.core.somaxconn)", most=65535, conf=True),
    S("nginx_worker_connections", POSITIVE, 4096, "connections per nginx worker (two per proxied request)", most=1_048_576, conf=True),
    S("static_url", URL_DIR, "/static/", "served by nginx from the release", conf=True),
    S("static_dir", REL_PATH, "static", "relative to app_source", conf=True),
    S("static_expires", NGINX_TIME, "7d", "nginx expires for static files", conf=True),
    S("client_max_body_size", NGINX_SIZE, "10m", "nginx client_max_body_size", conf=True),
    S("nginx_extra_config", RAW, "", "raw nginx text inside the server block (trusted)", conf=False),
    S("allowed_methods", METHODS, "GET HEAD POST PUT PATCH DELETE OPTIONS", "others get a JSON 405", conf=True),
    S("rate_limit", RATE, "", "requests per client address, like 10r/s (empty = off); over it: JSON 429", conf=True),
    S("rate_limit_burst", INT, 20, "requests over rate_limit let through at once before 429s", most=1_000_000, conf=True),
    S("rate_limit_locations", RATE_LOCATIONS, {}, "'[METHOD ]/path': rate of its own (replaces rate_limit)", conf=False),
    S("rate_limit_conn", INT, 0, "open connections per client address (0 = no limit)", most=1_000_000, conf=True),
    S("tls", TLS_MODE, "off", "HTTPS: off, self-signed, files (tls_certificate + tls_key) or acme", conf=True),
    S("https_port", PORT, 443, "nginx HTTPS port (http_port then redirects to it)", conf=True),
    S("tls_certificate", CERTIFICATE, "", "tls files: the certificate chain (PEM text or a file here)", conf=False),
    S("tls_key", PRIVATE_KEY, "", "tls files: the private key (always secret; 0600 root on the host)", conf=False),
    S("hsts", BOOL, True, "Strict-Transport-Security for 2 years (never with self-signed)", conf=True),
    S("acme_email", EMAIL, "", "tls acme: the account's e-mail (expiry notices)", conf=True),
    S("acme_server", ACME_URL, "https://acme-v02.api.letsencrypt.org/directory", "tls acme: the ACME directory", conf=True),
    S("cache_locations", PREFIXES, [], "path prefixes whose GET answers nginx keeps for cache_valid (empty = off)", conf=False),
    S("cache_valid", NGINX_TIME, "1s", "how long a cached 200 answer is served without asking the app", conf=True),
    S("waf", WAF_MODE, "off", "ModSecurity with the OWASP CRS: off, detect (log only) or block (403)", conf=True),
    S("waf_paranoia", integer(1, 4), 1, "CRS paranoia level: 1 (few false positives) to 4", conf=True),
    S("waf_exclusions", RULE_IDS, [], "CRS rule ids switched off (false positives of this app)", conf=False),
    S("uwsgi_processes", POSITIVE, 2, "uWSGI processes", most=4096, conf=True),
    S("uwsgi_threads", POSITIVE, 2, "uWSGI threads per process", most=1024, conf=True),
    S("uwsgi_socket", SOCKET, "/run/{app_name}/uwsgi.sock", "unix socket only", conf=True),
    S("uwsgi_chmod_socket", MODE, "660", "666 only if asked", conf=True),
    S("uwsgi_chown_socket", OWNER, "{app_user}:www-data", "owner of the socket", conf=True),
    S("uwsgi_master", BOOL, True, "uWSGI master", conf=True),
    S("uwsgi_vacuum", BOOL, True, "remove the socket on exit", conf=True),
    S("uwsgi_die_on_term", BOOL, True, "the unit stops uWSGI with SIGTERM", conf=True),
    S("uwsgi_need_app", BOOL, True, "fail when the app does not load", conf=True),
    S("uwsgi_strict", BOOL, True, "refuse unknown uWSGI options", conf=True),
    S("uwsgi_lazy_apps", BOOL, True, "load the app in each worker (fork safety)", conf=True),
    S("uwsgi_harakiri", INT, 60, "seconds before a stuck request is killed (0 = off)", most=_DAY, conf=True),
    S("uwsgi_buffer_size", integer(1, 65535), 32768, "bytes", conf=True),
    S("uwsgi_listen", POSITIVE, 1024, "listen backlog", most=65535, conf=True),
    S("uwsgi_max_requests", INT, 0, "requests before a worker is recycled (0 = off; see the recycling notes)", most=1_000_000_000, conf=True),
    S("uwsgi_max_worker_lifetime", INT, 0, "seconds before a worker is recycled (0 = off)", most=_YEAR, conf=True),
    S("uwsgi_worker_reload_mercy", POSITIVE, 15, "seconds a recycled worker may take to exit before SIGKILL", most=_DAY, conf=True),
    S("uwsgi_request_logging", BOOL, False, "uWSGI logs every request (nginx's access log already does)", conf=True),
    S("uwsgi_log_slow", INT, 1000, "uWSGI logs requests slower than this many ms (0 = off)", most=_DAY * 1000, conf=True),
    S("uwsgi_plugins", PLUGINS, "python3", "uWSGI plugins", conf=True),
    S("uwsgi_read_timeout", SECONDS, _read_timeout, "nginx uwsgi_read_timeout (harakiri + 5, or 60)", most=_DAY, conf=True),
    S("base_packages", PACKAGES, [], "extra Debian packages on every host", conf=False),
    S("apt_cache_valid_time", INT, 3600, "apt-get update only when the lists are older (seconds)", most=_YEAR, conf=False),
    S("apt_lock_timeout", INT, 300, "seconds to wait for the dpkg lock", most=_DAY, conf=False),
    S("apt_update_timeout", POSITIVE, 120, "seconds an apt-get update may take before it is stopped and tried again (3 attempts)", most=_DAY, conf=False),
    S("deploy_lock_timeout", INT, 0, "seconds a second deploy on the same host waits", most=_DAY, conf=False),
    S("ansible_host", HOST, None, "address to connect to (default: the host name)", conf=False),
    S("ansible_port", PORT, 22, "SSH port", conf=False),
    S("ansible_user", SSH_USER, _local_user, "SSH user (default: the local user)", conf=False),
    S("ansible_ssh_private_key_file", KEY_FILE, None, "SSH key (relative: to the inventory file)", conf=False),
    S("ansible_become", BOOL, lambda values: values["ansible_user"] != "root", "sudo to root", conf=False),
    S("ansible_become_password", PASSWORD, None, "sudo password (always secret)", conf=False),
    S("ansible_ssh_common_args", SSH_ARGS, "", "SSH options (parsed into Host.ssh_args)", conf=False),
    S("ansible_ssh_extra_args", SSH_ARGS, "", "more SSH options (parsed into Host.ssh_args)", conf=False),
    # A site of many hosts (provisioner/config/topology.py, docs/topology.md).
    S("lb_group", UNIX_NAME, "lb", "inventory group of the balancers", conf=False),
    S("app_hosts_group", UNIX_NAME, "app", "inventory group of the app hosts behind them", conf=False),
    S("private_address", ADDRESS, lambda values: values["ansible_host"], "where balancers reach this host", conf=True),
    S("upstream_method", UPSTREAM_METHOD, "least_conn", "how a balancer picks an app host", conf=False),
    S("upstream_max_fails", INT, 1, "failed tries that take an app host out for upstream_fail_timeout", most=1000, conf=True),
    S("upstream_fail_timeout", NGINX_TIME, "10s", "how long a failed app host is left out", conf=True),
    S("upstream_connect_timeout", NGINX_TIME, "1s", "a balancer gives up connecting to an app host", conf=True),
    S("upstream_keepalive", INT, 32, "idle connections each balancer worker keeps to the app hosts", most=65535, conf=True),
    S("upstream_tries", POSITIVE, 3, "app hosts one request may be tried on", most=1000, conf=True),
    S("upstream_retry_non_idempotent", BOOL, False, "also retry POST/PATCH on another app host", conf=True),
    S("firewall", BOOL, True, "app hosts admit http_port from the balancers only (nftables)", conf=False),
    S("serial", SERIAL, "", "deploy in batches of N hosts or N% (rolling release)", conf=False),
    S("floating_address", FLOATING, "", "the balancers' shared IPv4 address, moved by keepalived (VRRP)", conf=True),
    S("floating_interface", UNIX_NAME, "eth0", "the balancers' interface that holds floating_address", conf=True),
    S("floating_standby", BOOL, False, "this balancer gives floating_address up (maintenance)", conf=False),
    S("vrrp_router_id", integer(0, 255), vrrp_router_id, "VRRP virtual router id, unique on the network", conf=True),
    S("vrrp_password", VRRP_PASSWORD, vrrp_password, "VRRP authentication (PASS, 8 characters, sent in clear)", conf=True),
    S("provision_ignore", VAR_NAMES, [], "variables of other roles that look like a typo of a setting", conf=False),
)
del S
SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Computed:
    """A value every host's settings carry that no user sets (a user's is an unknown setting): the
    engine computes it, through `Vars.computed`, from more than the host's own vars."""
    name: str
    default: Any    # a single host's value, deployed alone
    set_by: str     # the module that computes it
    doc: str


COMPUTED: tuple[Computed, ...] = (
    Computed("site_tier", "single", "config/topology.py", "single, balancer (proxies to the app hosts) or app"),
    Computed("upstream", [], "config/topology.py", "on a balancer: the app hosts as (name, private_address)"),
    Computed("balancers", [], "config/topology.py", "on an app host: the balancers' private addresses"),
    Computed("vrrp_peers", [], "config/topology.py", "on a balancer with floating_address: the other balancers as (name, address)"),
    Computed("vrrp_priority", 0, "config/topology.py", "on a balancer with floating_address: its VRRP priority (inventory order)"),
    Computed("rolling", False, "engine/rolling.py", "deployed in a batch of a roll: the roll puts it back into the traffic"),
)
COMPUTED_BY_NAME: dict[str, Computed] = {c.name: c for c in COMPUTED}

# The characters that break out of a line of an ini/nginx/unit file.
INJECTION = ("\n", "\r", ";", "{", "}", "#")
_SECRET_NAME = re.compile(r"(^|_)(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|SECRET_KEY|PRIVATE_KEY)$", re.I)


class RawVars(dict):
    """Raw vars plus, per name, where it was written (`origins[name]` = "group api, inventories/x.yml:14")
    and the directory a relative path in it is relative to (`bases[name]`: the inventory's, or the current
    one for -e). The inventory passes these so errors can point at the line; a plain dict works too."""

    def __init__(self, *args, origins: Mapping[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.origins: dict[str, str] = dict(origins or {})
        self.bases: dict[str, Path] = {}


def _origin(raw: Mapping, name: str) -> str:
    return getattr(raw, "origins", {}).get(name, "")


# --- names ---------------------------------------------------------------------------------------


def _typo_of(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate `name` is probably a misspelling of: close (difflib) and about as long."""
    lowered = name.lower()
    for match in difflib.get_close_matches(lowered, list(candidates), n=3, cutoff=0.85):
        if abs(len(match) - len(lowered)) <= 2:
            return match
    return None


def known_settings(raw: Mapping, *, where: str, defer: bool = False,
                   foreign: Container[str] = ()) -> tuple[RawVars, list[str]]:
    """Sort the names of one vars block: settings are kept (Ansible aliases renamed to their setting, `!vault`
    values decrypted into Secrets), Ansible's harmless connection variables are dropped silently, names of
    other roles with a warning (silently when `foreign`: the project's roles use them, or provision_ignore
    lists them). A name close to a setting is a UserError suggesting it; an Ansible connection variable
    whose value would change how to connect is a UserError. With `defer` (one block, before the host's vars
    are merged) those two are kept as written, so only a selected host whose merged vars hold them fails."""
    kept, warnings = RawVars(), []
    everything = list(SETTINGS_BY_NAME) + list(ALIASES)
    connection = [name for name in everything if name.startswith("ansible_")]
    ignored = _names_in(raw.get("provision_ignore"))
    for name, value in raw.items():
        origin = _origin(raw, name)
        at = origin or where
        if not isinstance(name, str):
            raise UserError(f"variable name {name!r} ({at}) is not a string", "variable names are words like app_name")
        setting = name if name in SETTINGS_BY_NAME else ALIASES.get(name)
        if setting:
            if setting != name and setting in raw:
                warnings.append(f"{name} ({at}) is ignored: {setting} is set too")
                continue
            _keep(kept, raw, name, setting, value if defer else decrypted(value, setting))
        elif name in REFUSED_UNLESS:
            fine, why = REFUSED_UNLESS[name]
            if defer:                  # kept either way: a host's harmless value beats its group's refused one
                _keep(kept, raw, name, name, value)
            elif (value := decrypted(value, name)) not in (None, "") and str(value).strip().lower() not in fine:
                raise UserError(f"{name} ({at}) is refused: {why}", f"remove {name} from the inventory")
        elif name in ANSIBLE_IGNORED or name in ignored or name in foreign:
            continue
        elif match := _typo_of(name, connection if name.startswith("ansible_") else everything):
            if defer:
                _keep(kept, raw, name, name, value)
                continue
            match = ALIASES.get(match, match)
            raise UserError(f"unknown setting {name!r} ({at}); did you mean {match!r}?",
                            f"rename it to {match}; if another role of yours reads {name}, list it in "
                            "provision_ignore (docs/settings.md)")
        else:
            warnings.append(f"unknown setting {name!r} ({at}) is ignored: not a provision setting")
    return kept, warnings


def _keep(kept: RawVars, raw: Mapping, name: str, setting: str, value: Any) -> None:
    kept[setting] = value
    if _origin(raw, name):
        kept.origins[setting] = _origin(raw, name)
    if name in getattr(raw, "bases", {}):
        kept.bases[setting] = raw.bases[name]


def _names_in(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)] \
        if isinstance(value, list) else []


# --- resolve -------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _check(setting: Setting, value: Any, where: str, origin: str) -> Any:
    at = f" (set in {origin})" if origin else ""
    if setting.conf and isinstance(value, str):
        bad = next((c for c in INJECTION if c in value), None)
        if bad:
            fix = ("provision does not evaluate templates like {{ var }}; write the final value"
                   if "{{" in value else
                   f"remove {bad!r} from it; raw nginx directives belong in nginx_extra_config")
            raise UserError(f"setting {setting.name} of {where} contains {bad!r}, which would break out of the "
                            f"ini/nginx file it is written to{at}", fix)
    try:
        checked = setting.kind.check(value)
        if setting.most is not None and isinstance(checked, int) and checked > setting.most:
            raise Invalid("more than any real host could use")
    except Invalid as invalid:
        detail = f" ({invalid})" if str(invalid) else ""
        example = setting.kind.example or _example(setting.default)
        most = f" and at most {setting.most}" if setting.most is not None else ""
        raise UserError(f"setting {setting.name} of {where} must be {setting.kind.desc}{most}, got {_show(value)}"
                        f"{detail}{at}", f"write it like `{setting.name}: {example}`") from None
    return Secret(checked) if isinstance(value, Secret) and type(checked) is str else checked


def _example(default: Any) -> str:
    return str(default).lower() if isinstance(default, bool) else str(default)


def _default(setting: Setting, values: dict) -> Any:
    default = setting.default
    if callable(default):
        return default(values)
    if isinstance(default, str) and "{" in default:
        return default.format_map(values)
    return default.copy() if isinstance(default, (list, dict)) else default


def resolve(raw: Mapping, *, where: str, base_dir: Path, foreign: Container[str] = ()) -> "Vars":
    """The validated, typed, defaults-filled settings of one host, from its merged raw vars
    (host > group > all already applied). `where` names the host in messages ("host prod1");
    `foreign` the names other roles of the project read (never taken for a typo of a setting)."""
    given, warnings = known_settings(raw, where=where, foreign=foreign)
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.name in given:
            values[setting.name] = _check(setting, given[setting.name], where, _origin(given, setting.name))
        else:
            values[setting.name] = _check(setting, _default(setting, values), where, "")
    _check_together(values, given, where, Path(base_dir), warnings)
    values.update((c.name, _copy(c.default)) for c in COMPUTED)   # until the engine says otherwise
    return Vars(values, warnings)


def _check_together(values: dict, given: RawVars, where: str, base_dir: Path, warnings: list[str]) -> None:
    """What one setting alone cannot tell: paths on the controller, root, timeouts, unmarked secrets."""
    for name in ("app_source", "ansible_ssh_private_key_file"):
        path = values[name]
        if path is not None and not path.is_absolute():
            base = getattr(given, "bases", {}).get(name, base_dir) if name in given else provisioner.PROJECT_ROOT
            values[name] = (Path(base) / path).resolve()
    source = values["app_source"]
    if not source.is_dir():
        at = f" (set in {given.origins['app_source']})" if "app_source" in given.origins else ""
        raise UserError(f"app_source of {where} is {source}, which is not a directory{at}",
                        "set app_source to the directory of your app (relative paths are relative "
                        "to the inventory file)")
    warnings.extend(check_app(source, values["app_module"], where))
    if values["app_user"] == "root":
        raise UserError(f"app_user of {where} is root; the app must never run as root",
                        "leave app_user unset (it defaults to app_name) or name an unprivileged user")
    check_tls(values, getattr(given, "bases", {}), where, base_dir)
    harakiri, read_timeout = values["uwsgi_harakiri"], values["uwsgi_read_timeout"]
    if "uwsgi_read_timeout" in given and harakiri and read_timeout <= harakiri:
        warnings.append(f"uwsgi_read_timeout ({read_timeout}s, {_origin(given, 'uwsgi_read_timeout') or where}) "
                        f"is not above uwsgi_harakiri ({harakiri}s): nginx gives up on a slow request first")
    for key, value in values["app_env"].items():
        if _SECRET_NAME.search(key) and value and not isinstance(value, Secret):
            warnings.append(f"app_env {key} ({_origin(given, 'app_env') or where}) looks like a secret: "
                            f"write it as `{key}: !secret ...` so it is never shown")


# --- Vars ----------------------------------------------------------------------------------------


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return list(value) if isinstance(value, list) else value


class Vars(Mapping):
    """The resolved settings of one host: read-only, by attribute (`v.app_name`) or key (`v["app_name"]`).
    Lists and mappings are handed out as copies. `.warnings` lists what was ignored or looks wrong."""

    __slots__ = ("_values", "warnings")

    def __init__(self, values: Mapping[str, Any], warnings: Iterable[str] = ()):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "warnings", list(warnings))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return _copy(self._values[name])
        except KeyError:
            close = difflib.get_close_matches(name, self._values, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise AttributeError(f"no setting {name!r}{hint}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Vars is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Vars is read-only")

    def __getitem__(self, name: str) -> Any:
        return _copy(self._values[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def computed(self, **values: Any) -> "Vars":
        """These settings with computed values (COMPUTED) set: a host's place in a site, a roll."""
        unknown = sorted(set(values) - set(COMPUTED_BY_NAME))
        if unknown:
            raise KeyError(f"not a computed value: {', '.join(unknown)} (settings.COMPUTED)")
        return Vars({**self._values, **values}, self.warnings)

    def __reduce__(self):
        return (Vars, (self._values, self.warnings))

    def __repr__(self) -> str:
        return "Vars(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"

    def as_dict(self, *, mask_secrets: bool = False) -> dict[str, Any]:
        """A plain, JSON-ready copy (paths as strings); `mask_secrets` shows secrets as ******."""
        def plain(value: Any) -> Any:
            if isinstance(value, Secret) and mask_secrets:
                return MASK
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return [plain(v) for v in value] if isinstance(value, list) else value
        return {k: plain(v) for k, v in self._values.items()}

    def secrets(self) -> list[str]:
        """Every secret value (app_env entries, ansible_become_password, any value written !secret)."""
        found: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, Secret):
                if value and value not in found:
                    found.append(str(value))
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)
        walk(list(self._values.values()))
        return found


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of every (non-empty) secret replaced by ******, longest first."""
    for secret in sorted({str(s) for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
