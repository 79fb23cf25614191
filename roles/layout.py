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
