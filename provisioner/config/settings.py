"""Settings: the schema of every inventory variable (docs/settings.md), one line a setting, and the
values the engine computes (COMPUTED). Reading a host's vars against it is config/values.py."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from typing import Any

from provisioner.config.front import (ACME_URL, CERTIFICATE, EMAIL, METHODS, PREFIXES, PRIVATE_KEY, RATE, RATE_LOCATIONS,
                                      RULE_IDS, TLS_MODE, WAF_MODE)
from provisioner.config.kinds import (ABS_PATH, ADDRESS, APP_NAME, BOOL, CONTROLLER_DIR, DOTTED, ENV, HOST, INT, KEY_FILE, MODE,
                                      NGINX_SIZE, NGINX_TIME, OWNER, PACKAGES, PASSWORD, PLUGINS, PORT, POSITIVE,
                                      PY_IDENT, RAW, REL_PATH, SECONDS, SERVER_NAMES, SOCKET, SSH_ARGS, SSH_USER,
                                      UNIX_NAME, URL_DIR, URL_PATH, VAR_NAMES, Kind, integer)
from provisioner.config.metrics import LOG_FORMAT, SCRAPERS
from provisioner.config.apps import APP_PATH, APPS, GROUP_NAME, RETIRED
from provisioner.config.topology import FLOATING, SERIAL, UPSTREAM_METHOD, VRRP_PASSWORD, vrrp_password, vrrp_router_id
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
    S("app_path", APP_PATH, "/", "the URL path prefix nginx routes to the app (its SCRIPT_NAME)", conf=True),
    S("app_hosts", GROUP_NAME, "", "with apps: the inventory group of app hosts an app runs on (empty: every app host)",
      conf=False),
    S("apps", APPS, {}, "several apps behind the site: NAME -> its own settings (docs/settings.md)", conf=False),
    S("retired_releases", RETIRED, "keep", "an app no longer in the inventory: its releases kept or removed", conf=False),
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
    S("uwsgi_lazy_apps", BOOL, False, "load the app in each worker, not once in the master (libraries that are not fork-safe)", conf=True),
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
    # Metrics for a monitoring system and the access log's format (config/metrics.py, roles/metrics.py).
    S("metrics_scraper", SCRAPERS, [], "addresses/networks that may scrape the exporters (empty = no exporters)", conf=True),
    S("metrics_nginx_port", PORT, 9113, "prometheus-nginx-exporter's port on private_address", conf=True),
    S("metrics_uwsgi_port", PORT, 9117, "the uWSGI stats exporter's port on private_address", conf=True),
    S("access_log_format", LOG_FORMAT, "combined", "nginx access log: combined (+ request time) or json", conf=True),
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
    Computed("apps_left_out", [], "config/apps.py", "on an app host: the apps of apps whose app_hosts group leaves it out"),
    Computed("app_upstreams", {}, "config/apps.py", "on a balancer: each app whose app_hosts differ from upstream, its app hosts"),
    Computed("only_app", "", "config/apps.py", "deploy --app NAME: the one app whose release and unit the deploy declares"),
    Computed("rolling", False, "engine/rolling.py", "deployed in a batch of a roll: the roll puts it back into the traffic"),
)
COMPUTED_BY_NAME: dict[str, Computed] = {c.name: c for c in COMPUTED}
