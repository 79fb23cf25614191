"""Where things live on a host, in one place: roles, templates (as `paths`), `provision logs` and
`provision status` agree."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    app_name: str
    app_root: str

    @classmethod
    def of(cls, v) -> "Layout":
        return cls(v.app_name, v.app_root)

    @property
    def current(self) -> str:
        return f"{self.app_root}/current"

    @property
    def app_code(self) -> str:
        """The current release's app: uWSGI's chdir, nginx's static files."""
        return f"{self.current}/app"

    @property
    def venv(self) -> str:
        """The current release's virtualenv: uWSGI's `virtualenv`."""
        return f"{self.current}/venv"

    @property
    def uwsgi_dir(self) -> str:
        return "/etc/uwsgi/apps-provision"

    @property
    def ini(self) -> str:
        return f"{self.uwsgi_dir}/{self.app_name}.ini"

    @property
    def env_file(self) -> str:
        return f"{self.uwsgi_dir}/{self.app_name}.env"

    @property
    def unit(self) -> str:
        return f"uwsgi-{self.app_name}"

    @property
    def unit_file(self) -> str:
        return f"/etc/systemd/system/{self.unit}.service"

    @property
    def site_available(self) -> str:
        return f"/etc/nginx/sites-available/{self.app_name}"

    @property
    def site_enabled(self) -> str:
        return f"/etc/nginx/sites-enabled/{self.app_name}"

    @property
    def access_log(self) -> str:
        return f"/var/log/nginx/{self.app_name}.access.log"

    @property
    def error_log(self) -> str:
        return f"/var/log/nginx/{self.app_name}.error.log"

    @property
    def upstream_conf(self) -> str:
        """A balancer's `upstream` of the app hosts (http level: conf.d is included by nginx.conf)."""
        return f"/etc/nginx/conf.d/provision-{self.app_name}-upstream.conf"

    @property
    def upstream_name(self) -> str:
        return f"provision_{self.app_name}_app"

    def app_upstream_name(self, app: str) -> str:
        """A balancer's upstream of the app hosts that run app `app` (its app_hosts), in upstream_conf."""
        return f"provision_{self.app_name}_app-{app}"

    @property
    def firewall_rules(self) -> str:
        """An app host's nftables table: the app's ports from the balancers only."""
        return f"/etc/nftables-provision-{self.app_name}.nft"

    @property
    def app_down_rules(self) -> str:
        """An app host's table that refuses the balancers while its app is down (roles/firewall.py)."""
        return f"/etc/nftables-provision-{self.app_name}-down.nft"

    @property
    def app_unit_dropin(self) -> str:
        """The app unit's drop-in that loads and deletes that table as the app stops and starts."""
        return f"/etc/systemd/system/{self.unit}.service.d/provision-firewall.conf"

    @property
    def floating_check(self) -> str:
        """keepalived's check on a balancer (roles/floating-check.sh)."""
        return f"/etc/keepalived/provision-{self.app_name}-check.sh"

    @property
    def floating_handover(self) -> str:
        """nginx's first ExecStop on a balancer: the floating address goes first (roles/floating-handover.sh)."""
        return f"/etc/keepalived/provision-{self.app_name}-handover.sh"

    @property
    def floating_stopping(self) -> str:
        """The handover's flag: keepalived's check fails while it exists."""
        return f"/run/provision-{self.app_name}-nginx-stopping"

    @property
    def nginx_dropin(self) -> str:
        return "/etc/systemd/system/nginx.service.d/provision-floating.conf"

    @property
    def floating_reason(self) -> str:
        """The check's last verdict, read by `provision status`."""
        return f"/run/provision-{self.app_name}-floating.reason"

    @property
    def firewall_unit(self) -> str:
        return f"provision-firewall-{self.app_name}"

    @property
    def firewall_unit_file(self) -> str:
        return f"/etc/systemd/system/{self.firewall_unit}.service"


def uwsgi_sockets(link: str) -> tuple[str, str]:
    """The app unit's socket and a restart's standby socket, beside `link` (uwsgi_socket, nginx's
    path: a symlink to the one that serves; roles/uwsgi-swap.sh)."""
    directory, _, name = link.rpartition("/")
    stem = name.removesuffix(".sock")
    return f"{directory}/{stem}-main.sock", f"{directory}/{stem}-standby.sock"


def uwsgi_stats_sockets(link: str) -> tuple[str, str, str]:
    """The directory of the uWSGI stats sockets and the stats sockets of the app unit's uWSGI and of
    a restart's standby (`provision top` reads them). uWSGI binds them after it drops to the app user,
    so the directory is the app user's, mode 0700: only root and the app can connect."""
    directory = link.rpartition("/")[0] + "/stats"
    return directory, f"{directory}/main.sock", f"{directory}/standby.sock"


def apps_of(v) -> list:
    """The settings of each app the host runs (`Vars.each_app()`): one, the host's own, without `apps`."""
    return v.each_app() if getattr(v, "apps", None) else [v]


def deployed_apps(v) -> list:
    """The apps this deploy declares: every app, or the one `deploy --app` names (only_app)."""
    only = getattr(v, "only_app", "")
    return [a for a in apps_of(v) if not only or a.app_name == only]


def site_name(v) -> str:
    """The Host a client naming the site sends (localhost for a catch-all site)."""
    return v.server_name.split()[0] if v.server_name not in ("_", "") else "localhost"
