"""The default stack: a WSGI app behind nginx + uWSGI on Debian. The CLI gives it to the engine.

Its roles apply in order (base, app, uwsgi, nginx); each yields resources and its handlers. Where
things live on a host is layout.py; what the files say is templates/.
"""

from pathlib import Path

from provisioner import TEMPLATES_DIR
from provisioner.engine.stack import Log, Stack
from provisioner.engine.verify import http_check, site_failure
from provisioner.remote.quoting import Raw, assign, cmd, function

from . import app, balancer, base, firewall, floating, front, metrics, nginx, retire, tls, uwsgi
from .layout import Layout, apps_of, deployed_apps, site_name, uwsgi_stats_sockets


class NotOnBalancers:
    """A role that a balancer skips: it runs no app (docs/topology.md)."""

    def __init__(self, role):
        self.role = role

    def resources(self, v):
        return () if v.site_tier == "balancer" else self.role.resources(v)

    def handlers(self, v):
        return [] if v.site_tier == "balancer" else self.role.handlers(v)


class NginxUwsgi(Stack):
    roles = (base, firewall, NotOnBalancers(app), NotOnBalancers(uwsgi), nginx, tls, front, balancer, floating,
             NotOnBalancers(metrics), retire)
    templates = TEMPLATES_DIR
    log_services = ("nginx", "uwsgi", "app")

    def health(self, v, tries: int = 20) -> str:
        """Each app's health path (under its app_path) through nginx, as a client naming the site
        would ask; all of them must answer."""
        return " && ".join(f"{{\n{http_check(v.http_port, host, path, tries)}\n}}" for host, path in health_checks(v))

    def health_label(self, v) -> str:
        through = " to the app hosts" if v.site_tier == "balancer" else ""
        shown = [path if host == site_name(v) else f"{host}{path}" for host, path in health_checks(v)]
        return f"{' and '.join(shown)} through nginx on port {v.http_port}{through}"

    def waves(self, hosts: list) -> list[list]:
        """App hosts (and single hosts) first: a balancer's health check goes through them."""
        first = [h for h in hosts if h.vars.site_tier != "balancer"]
        return [wave for wave in (first, [h for h in hosts if h.vars.site_tier == "balancer"]) if wave]

    def is_front(self, host) -> bool:
        return host.vars.site_tier == "balancer"

    def drain(self, hosts: list, everyone: list, out: frozenset[str]) -> list[tuple]:
        """An app host with its firewall drains itself (no balancer reload); for the others, every
        balancer in front of them marks them down and reloads (docs/topology.md: what that costs)."""
        fronts = [b for b in everyone if self.is_front(b)]
        pairs = [(h, firewall.drain(h.vars, h.name in out, balancer.fail_timeout(h, fronts), self.templates))
                 for h in hosts if firewall.wanted(h.vars)]
        no_firewall = {h.name for h in everyone if not firewall.wanted(h.vars)}
        routed = no_firewall & {h.name for h in hosts}
        around = [b for b in fronts if routed & {name for name, _ in b.vars.upstream}]
        return pairs + [(b, balancer.route_around(b.vars, out & no_firewall, self.templates)) for b in around]

    def explain(self, v) -> str:
        error_log = Layout.of(v).error_log
        return "\n".join(site_failure(error_log, Layout.of(a).unit) for a in apps_of(v))

    def logs(self, v) -> dict[str, tuple[Log, ...]]:
        """nginx's logs of the site, and each app's journal, its lines after its unit's name."""
        at = Layout.of(v)
        journal = tuple(Log(unit, unit=unit) for unit in (Layout.of(a).unit for a in deployed_apps(v)))
        return {"nginx": (Log("nginx.access", file=at.access_log), Log("nginx.error", file=at.error_log)),
                "uwsgi": journal, "app": journal}

    def top(self, v, seconds: float) -> str:
        """nginx's status page (loopback), the access-log lines written meanwhile (nginx's own
        timing) and each app's uWSGI stats socket, read by one Python run on the host (top-sample.py).
        A balancer runs no app: its site's figures only."""
        apps = [] if v.site_tier == "balancer" else apps_of(v)
        each = [(a.app_name, f"unix:{a.uwsgi_socket}", uwsgi_stats_sockets(a.uwsgi_socket)[1]) for a in apps]
        return (cmd("python3", "-", nginx.STATUS_ADDRESS, Layout.of(v).access_log, seconds,
                    *(arg for app in each for arg in app))
                + f" <<'PROVISION_PY'\n{(HERE / 'top-sample.py').read_text()}PROVISION_PY")

    def status(self, v) -> str:
        return (self._look(v, "status.sh", function("app_status", self._each_app(v, "status-app.sh")), QUICK=1)
                + "\n" + self._behind_nginx(v, QUICK=1))

    def doctor(self, v) -> str:
        """What runs behind nginx, doctor.sh (nginx's side), then doctor-front.sh (the app's journal,
        the certificate), each in a subshell."""
        return "\n".join(["(", self._behind_nginx(v, QUICK=0), ")",
                          "(", self._look(v, "doctor.sh"), ")",
                          "(", self._look(v, "doctor-front.sh", **tls.doctor_params(v)), ")"])

    def _behind_nginx(self, v, **params) -> str:
        """A look at what nginx passes to: a balancer's app hosts (asked from here), or the host's uWSGI."""
        if v.site_tier == "balancer":
            return "\n".join([self._look(v, "doctor-upstream.sh", function("check_app_hosts", self._app_host_checks(v)),
                                          **params), floating.doctor(v)])
        return self._each_app(v, "doctor-uwsgi.sh", **params)

    @staticmethod
    def _each_app(v, script: str, **params) -> str:
        """Shell: this folder's `script` for each app (`--app`: that one) with its UNIT, CURRENT and
        SOCKET, in a subshell; on a host of several apps each line (a finding's check) after the app's name."""
        several = len(apps_of(v)) > 1
        blocks = []
        for a in deployed_apps(v):
            at = Layout.of(a)
            block = "\n".join(["(", *(assign(k, value) for k, value in dict(
                UNIT=at.unit, CURRENT=at.current, SOCKET=a.uwsgi_socket, **params).items()),
                (HERE / script).read_text(), ")"])
            blocks.append(block + (" | " + cmd("awk", "-F", "\t", "-v", "OFS=\t", "-v", f"app={a.app_name}",
                                                 PREFIX_LINES) if several else ""))
        return "\n".join(blocks)

    def _look(self, v, script: str, *functions: str, **params) -> str:
        """One of this folder's read-only scripts, with the host's paths, a health check (one try) and
        `functions` (shell definitions) it calls."""
        at, first = Layout.of(v), deployed_apps(v)[0]   # the site's paths; the (first) app's unit and socket
        return "\n".join([
            *(assign(k, value) for k, value in dict(
                UNIT=Layout.of(first).unit, CURRENT=Layout.of(first).current, SOCKET=first.uwsgi_socket,
                ERROR_LOG=at.error_log,
                SITE=at.site_enabled, HEALTH_LABEL=self.health_label(v), TIER=v.site_tier, **params).items()),
            function("check_health", self.health(v, tries=1)),
            *functions,
            (HERE / script).read_text(),
        ])

    @staticmethod
    def _app_host_checks(v) -> str:
        """Shell (a balancer): a line per app host, NAME, ADDRESS:PORT, its health check's exit code
        and answer, asked straight from the balancer as its own requests go (doctor-upstream.sh)."""
        lines = [":"]
        for name, address in v.upstream:
            check = http_check(v.http_port, site_name(v), v.health_path, tries=1, address=address)
            lines += [f"answer=$({{\n{check}\n}} 2>&1)", "rc=$?",
                      cmd("printf", r"%s\t%s\t%s\t%s\n", name, f"{address}:{v.http_port}", Raw('"$rc"'),
                          Raw('"$(printf \'%s\' "$answer" | tail -n 1)"'))]
        return "\n".join(lines)


# awk: a finding (level, check, found, fix: tab-separated) gets the app's name before its check, any
# other line before the line
PREFIX_LINES = 'NF >= 4 { $2 = app " " $2; print; next } { print app " " $0 }'


def health_checks(v) -> list[tuple[str, str]]:
    """What the site's health check asks: (Host, path) of each app, its health_path under its app_path
    on its server_name. A balancer runs no app of its own but forwards every app's to the app hosts."""
    return [(site_name(a), ("" if a.app_path == "/" else a.app_path) + a.health_path) for a in apps_of(v)]


HERE = Path(__file__).parent
STACK = NginxUwsgi()
