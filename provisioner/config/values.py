"""A host's values: `resolve()` turns the merged raw vars of one host into a typed, validated,
defaults-filled `Vars`, by the schema in config/settings.py. Every mistake a user can make in a value is
a `UserError` naming the setting, the host and, when the inventory tells us (`RawVars.origins`), the
file and line it was written at. Secrets stay `Secret` until a template writes them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Container, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import provisioner
from provisioner.config.ansible_names import ALIASES, ANSIBLE_IGNORED, REFUSED_UNLESS
from provisioner.config.app_check import check_app
from provisioner.config.apps import resolve_apps
from provisioner.config.front import check_tls
from provisioner.config.kinds import Invalid
from provisioner.config.metrics import check_metrics
from provisioner.config.secret import MASK, Secret
from provisioner.config.settings import COMPUTED, COMPUTED_BY_NAME, SETTINGS, SETTINGS_BY_NAME, Setting
from provisioner.config.vault import decrypted
from provisioner.errors import UserError


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


def _base(given: RawVars, name: str, base_dir: Path) -> Path:
    """The directory a relative path in setting `name` is relative to (the inventory file's)."""
    return Path(getattr(given, "bases", {}).get(name, base_dir))


def _check_app(app: dict, source_base: Path, origin: str, where: str, warnings: list[str]) -> None:
    """One app's source directory (made absolute from `source_base`) and its user."""
    app["app_source"] = source = (source_base / app["app_source"]).resolve()
    if not source.is_dir():
        at = f" (set in {origin})" if origin else ""
        raise UserError(f"app_source of {where} is {source}, which is not a directory{at}",
                        "set app_source to the directory of your app (relative paths are relative "
                        "to the inventory file)")
    warnings.extend(check_app(source, app["app_module"], where))
    if app["app_user"] == "root":
        raise UserError(f"app_user of {where} is root; the app must never run as root",
                        "leave app_user unset (it defaults to app_name) or name an unprivileged user")


def _check_together(values: dict, given: RawVars, where: str, base_dir: Path, warnings: list[str]) -> None:
    """What one setting alone cannot tell: paths on the controller, root, timeouts, unmarked secrets."""
    key = values["ansible_ssh_private_key_file"]
    if key is not None and not key.is_absolute():
        values["ansible_ssh_private_key_file"] = (Path(_base(given, "ansible_ssh_private_key_file", base_dir)) / key).resolve()
    source_base = _base(given, "app_source", base_dir) if "app_source" in given else provisioner.PROJECT_ROOT
    _check_app(values, source_base, _origin(given, "app_source"), where, warnings)

    def check_app_value(name: str, value: Any, app_where: str, in_entry: bool) -> Any:
        checked = _check(SETTINGS_BY_NAME[name], value, app_where, _origin(given, "apps") if in_entry else "")
        if name == "app_source" and not checked.is_absolute():
            checked = (Path(_base(given, "apps", base_dir) if in_entry else provisioner.PROJECT_ROOT) / checked).resolve()
        return checked
    values["apps"] = resolve_apps(values, given, where, _origin(given, "apps"), check_app_value,
                                  lambda name, app: _default(SETTINGS_BY_NAME[name], app))
    for name, app in values["apps"].items():
        _check_app(app, Path("/"), _origin(given, "apps"), f"app {name} of {where}", warnings)
    check_tls(values, getattr(given, "bases", {}), where, base_dir)
    check_metrics(values, where)
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

    def each_app(self) -> list["Vars"]:
        """One Vars per app the host runs: each entry of `apps` (its own settings over the site's) but
        those its app_hosts leave out, or, without apps, these settings themselves (one app named app_name)."""
        return [Vars({**self._values, **app, "app_name": name}, self.warnings)
                for name, app in self._values["apps"].items()
                if name not in self._values["apps_left_out"]] or [self]

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
