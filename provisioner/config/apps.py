"""Several apps behind one site (setting `apps`): which settings are an app's own, the shape of an
app's entry, and each app's settings resolved from its entry, the site's values and the defaults.

Without `apps` a host runs one app named app_name, as it always did. With it, every app of the
mapping gets its own release, venv, uWSGI unit, socket and environment (roles iterate
`Vars.each_app()`), and nginx routes to it by its path prefix (app_path).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from provisioner.config.kinds import Invalid, Kind, text
from provisioner.errors import UserError

# The settings an app's entry may give. A per-app setting given at the site level is every app's
# default (uwsgi_processes for all); the names derived from app_name (app_user, app_root,
# uwsgi_socket, ...) default to the app's own. app_name itself is the entry's key.
PER_APP = frozenset({
    "app_source", "app_module", "app_callable", "app_requirements", "app_user", "app_group", "app_root",
    "app_env", "app_path", "server_name", "keep_releases", "health_path", "static_url", "static_dir", "static_expires",
    "uwsgi_processes", "uwsgi_threads", "uwsgi_socket", "uwsgi_chmod_socket", "uwsgi_chown_socket",
    "uwsgi_master", "uwsgi_vacuum", "uwsgi_die_on_term", "uwsgi_need_app", "uwsgi_strict",
    "uwsgi_lazy_apps", "uwsgi_harakiri", "uwsgi_buffer_size", "uwsgi_listen", "uwsgi_max_requests",
    "uwsgi_max_worker_lifetime", "uwsgi_worker_reload_mercy", "uwsgi_request_logging", "uwsgi_log_slow",
    "uwsgi_plugins", "uwsgi_read_timeout", "metrics_uwsgi_port", "app_hosts",
})
ENTRY_ALIASES = {"path": "app_path"}   # the short name inside an entry
# The site's settings an entry may add to: its paths are under the app's path, joined into the site's
# (nginx's maps and cache are the site's; a limit or cache of /admin/report is admin's).
UNDER_PATH = ("rate_limit_locations", "cache_locations")
# Two apps never share these: each would overwrite the other's files or take its traffic.
OWN = ("app_root", "uwsgi_socket")


def _apps(value: Any) -> dict[str, dict]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Invalid()
    for name, entry in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
            raise Invalid(f"app name {name!r} is not an identifier [a-z][a-z0-9_]* of at most 32 characters")
        if entry is not None and not isinstance(entry, Mapping):
            raise Invalid(f"the entry of app {name} is not a mapping of settings")
    return {name: dict(entry or {}) for name, entry in value.items()}


def _app_path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise Invalid("it needs a leading slash")
    if value != "/" and (value.endswith("/") or not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value)):
        raise Invalid("letters, digits and ._~- between slashes, no slash at the end")
    return value


APPS = Kind("a mapping of app names to their settings", _apps, "{admin: {path: /admin, app_source: ../admin}}")
RETIRED = text("keep or remove", "keep|remove", "remove")
GROUP_NAME = text("an inventory group name (empty: every app host)", r"([A-Za-z_][A-Za-z0-9_-]*)?", "admin_hosts",
                  maxlen=64)
APP_PATH = Kind("a URL path prefix like /admin (or / for the whole site)", _app_path, "/admin")


def resolve_apps(values: dict, given: Mapping, where: str, origin: str,
                 check: Callable[[str, Any, str, bool], Any], default: Callable[[str, dict], Any]) -> dict[str, dict]:
    """Each app's per-app settings (name -> values), from its entry, else the site's given value,
    else the default computed for the app. `check(name, value, where, in_entry)` types one value,
    `default` computes a setting's default from the values so far. Refuses what cannot be meant."""
    at = f" (set in {origin})" if origin else ""
    if not values["apps"] and values["app_hosts"]:
        raise UserError(f"app_hosts of {where} names group {values['app_hosts']}, but no apps are listed{at}",
                        "without apps the app hosts are group app_hosts_group: name the group there, "
                        "or list the apps and give the one to limit its app_hosts")
    if values["apps"] and "app_path" in given:
        raise UserError(f"app_path of {where} is given for the whole site, but apps are listed{at}",
                        "give each app its path in its entry of apps (`path: /admin`) and remove app_path")
    resolved: dict[str, dict] = {}
    for name, entry in values["apps"].items():
        app_where = f"app {name} of {where}"
        own: dict[str, Any] = {}
        joins: dict[str, Any] = {}   # UNDER_PATH settings, joined once the app's path is known
        for key, value in entry.items():
            setting = ENTRY_ALIASES.get(key, key)
            if setting == "app_name":
                raise UserError(f"apps.{name} sets app_name{at}; the entry's key is the app's name",
                                f"remove app_name from apps.{name} (rename the key to rename the app)")
            if setting in UNDER_PATH:
                joins[setting] = check(setting, value, app_where, True)
                continue
            if setting not in PER_APP:
                raise UserError(f"setting {key} of {app_where} is not an app's own setting{at}",
                                f"move {key} out of apps.{name} into the host's or a group's vars (it is per site); "
                                "docs/settings.md lists what an app may set")
            own[setting] = check(setting, value, app_where, True)
        app = dict(values, app_name=name)
        for setting in _ordered_per_app(values):
            if setting in own:
                app[setting] = own[setting]
            elif setting not in given:   # the site's own value stands for every app; else the app's default
                app[setting] = check(setting, default(setting, app), app_where, False)
        resolved[name] = {setting: app[setting] for setting in PER_APP}
        for setting, own_value in joins.items():
            values[setting] = _joined(values[setting], own_value, app["app_path"])
    for setting in UNDER_PATH:   # in the order the kind keeps (the most specific location first)
        values[setting] = check(setting, values[setting], where, True)
    _refuse_shared(resolved, where, at)
    named = [name for name, app in resolved.items() if app["server_name"] != values["server_name"]]
    if named and values["tls"] != "off":
        raise UserError(f"apps.{named[0]} of {where} has a server_name of its own, and tls is {values['tls']}{at}",
                        "with tls, give the apps the site's server_name (one certificate covers the site's names); "
                        "per-app server_name works with tls off only, for now")
    return resolved


def _joined(site: Any, own: Any, path: str) -> Any:
    """The site's rate_limit_locations or cache_locations with an app's own, its paths under `path`."""
    prefix = "" if path == "/" else path
    if isinstance(own, dict):
        under = {(f"{k.split()[0]} {prefix}{k.split()[1]}" if " " in k else prefix + k): limit for k, limit in own.items()}
        return {**site, **under}
    return [*site, *(prefix + location for location in own)]


def _ordered_per_app(values: dict) -> list[str]:
    """PER_APP in the schema's order (values keep it): a default follows the settings it uses."""
    return [name for name in values if name in PER_APP]


def _refuse_shared(apps: dict[str, dict], where: str, at: str) -> None:
    for setting in ("app_path", *OWN):
        seen: dict[str, str] = {}
        for name, app in apps.items():
            # a path is one app's on each server_name (virtual hosts may each have their own /)
            on = f" on {app['server_name']}" if setting == "app_path" and app["server_name"] != "_" else ""
            value = f"{app[setting]}{on}"
            if value in seen:
                shown = "path" if setting == "app_path" else setting
                raise UserError(f"apps {seen[value]} and {name} of {where} have the same {shown} {value}{at}",
                                f"give each app a {shown} of its own (apps.{name}.{shown})")
            seen[value] = name


def placed(name: str, v, tier: str, groups: dict[str, list[str]], app_hosts: set[str]) -> dict:
    """Where each app of host `name` runs (app_hosts: a group of app hosts; empty, every app host):
    on an app host, the apps its group leaves out (apps_left_out: not declared, so retired if an
    earlier deploy put them there); on a balancer, each app whose hosts are not all of its upstream,
    with its own (app_upstreams). `app_hosts` are the hosts an app may run on."""
    left_out, upstreams = [], {}
    for app, settings in v.apps.items():
        group = settings["app_hosts"]
        if not group:
            continue
        where = f"app_hosts of app {app} of host {name} is {group}"
        fix = f"name a group of app hosts in apps.{app}.app_hosts, or leave app_hosts out (every app host)"
        if not groups.get(group):
            raise UserError(f"{where}, a group the inventory does not have (or one without hosts)", fix)
        strangers = [h for h in groups[group] if h not in app_hosts]
        if strangers:
            raise UserError(f"{where}, whose host {strangers[0]} is not an app host (group {v.app_hosts_group})",
                            f"put only app hosts in group {group}, or {fix}")
        if tier == "balancer":
            own = [(host, address) for host, address in v.upstream if host in groups[group]]
            if own != v.upstream:
                upstreams[app] = own
        elif name not in groups[group]:
            left_out.append(app)
    if tier != "balancer" and v.apps and len(left_out) == len(v.apps):
        raise UserError(f"host {name} runs no app: the app_hosts of every app ({', '.join(left_out)}) leave it out",
                        f"add {name} to the app_hosts group of an app, or take it out of the app hosts")
    return {"apps_left_out": left_out, "app_upstreams": upstreams}


def with_only_app(hosts: list, name: str) -> list:
    """`--app NAME`: the hosts, each with only_app set (the stack then declares that app's release,
    unit and restart, and leaves the others untouched); an app host that app's app_hosts leaves out
    is left alone. NAME must be an app of every app host."""
    chosen, outside = [], []
    for host in hosts:
        if name in host.vars.apps_left_out:
            outside.append(host.name)
            continue
        names = [a.app_name for a in host.vars.each_app()]
        if name not in names and host.vars.site_tier != "balancer":
            raise UserError(f"--app {name}: host {host.name} has no app {name} (its apps: {', '.join(names)})",
                            "name one of the apps in the inventory's apps (or its app_name), or leave --app out")
        chosen.append(dataclasses.replace(host, vars=host.vars.computed(only_app=name)))
    if outside and all(host.vars.site_tier == "balancer" for host in chosen):
        raise UserError(f"--app {name}: app {name} runs on none of the hosts selected (its app_hosts leave out "
                        f"{', '.join(outside)})", f"select hosts of app {name}'s app_hosts group, or leave --app out")
    return chosen


def refuse_twice_named(data: Any, where: str) -> None:
    """An `apps` mapping of a YAML file (`where`) that names one app twice: YAML keeps the last entry,
    so the first app would vanish without a word (config/reading.py's LineMap records the line)."""
    if isinstance(data, dict):
        apps = data.get("apps")
        for name, line in getattr(apps, "twice", {}).items():
            raise UserError(f"{where}:{line}: app {name} is written twice in apps",
                            "give each app a name of its own (the key of its entry)")
        for value in data.values():
            refuse_twice_named(value, where)
