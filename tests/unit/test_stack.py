"""Declaring a stack, and what `deploy --check` must not do."""

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from provisioner import PROJECT_ROOT
from provisioner.engine import deploy as engine_deploy
from provisioner.engine.handlers import Handler
from provisioner.engine.stack import Stack
from provisioner.engine.status import HostStatus
from provisioner.errors import UserError
from provisioner.inventory import load_inventory
from provisioner.remote.session import Result, Sessions
from provisioner.resources import AppRelease, Link, SystemFacts
from provisioner.resources import release_build
from provisioner.stack import STACK

pytestmark = pytest.mark.unit

DEBIAN = SystemFacts(os_id="debian", os_version="12", machine="x86_64")


class _Role:
    def __init__(self, notify: str):
        self.notify = notify

    def resources(self, v):
        yield Link("/etc/nginx/sites-enabled/x", "/etc/nginx/sites-available/x", notify=(self.notify,))

    def handlers(self, v):
        return [Handler("reload nginx", run="true"), Handler("restart app", run="true")]


class _Stack(Stack):
    templates = PROJECT_ROOT / "templates"

    def __init__(self, notify: str):
        self.roles = (_Role(notify),)


def test_a_notify_typo_fails_at_declare_time_naming_the_close_match():
    with pytest.raises(UserError) as e:
        _Stack("reload ngnix").declare(SimpleNamespace())
    assert e.value.cause == "link /etc/nginx/sites-enabled/x notifies 'reload ngnix', which no role declares"
    assert e.value.fix == "did you mean 'reload nginx'?"
    resources, handlers = _Stack("reload nginx").declare(SimpleNamespace())
    assert [r.label() for r in resources] == ["link /etc/nginx/sites-enabled/x"]


def test_the_default_stack_declares_and_every_notify_has_its_handler():
    host = load_inventory(PROJECT_ROOT / "inventories" / "production.yml").select("all")[0]
    resources, handlers = STACK.declare(host.vars)
    assert [h.name for h in handlers] == ["drop firewall", "restart app", "reload nginx", "stop metrics", "retire apps"]
    assert "service uwsgi" in [r.label() for r in resources]


def test_every_roles_packages_are_one_install_at_the_first_declarations_place():
    """Roles only declare their packages; the stack joins them: one apt transaction, listed once."""
    host = load_inventory(PROJECT_ROOT / "inventories" / "production.yml").select("all")[0]
    labels = [r.label() for r in STACK.declare(host.vars)[0]]
    installs = [label for label in labels if label.startswith("packages ")]
    assert installs == ["packages python3 python3-venv uwsgi uwsgi-plugin-python3 nginx"]
    assert labels[0] == installs[0]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty controller cache; no wheel download (the tests' apps have no requirements)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(release_build, "_has_requirements", lambda path: False)
    return tmp_path / "cache"


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_new_release_is_planned_from_its_inputs_and_built_only_when_applied(tmp_path, cache):
    app = tmp_path / "app"
    app.mkdir()
    (app / "wsgi.py").write_text("app = None\n")
    (app / "requirements.txt").write_text("# nothing to install\n")
    release = AppRelease(app, "requirements.txt", "/srv/x")
    decision = release.decide(release.parse(""), DEBIAN)
    assert decision.changed and decision.reason.startswith("new release ")
    assert _files(cache) == [], "planning built something"
    transfer = decision.upload()
    with transfer.open() as stream:
        stream.read()
    assert transfer.name == f"{decision.reason.split()[2].rstrip(':')}.tar"
    assert [f for f in _files(cache) if "wheels" not in f.parts] == [], "the controller keeps no copy of the app"


class _LocalHost:
    """A Session whose host is this machine, unprivileged: scripts run with the local sh."""

    def __init__(self, host):
        self.scripts: list[str] = []
        self.metrics: dict = {}

    def open(self):
        return self

    def close(self):
        pass

    def run(self, script: str, *, in_main_shell: str = "", timeout=None) -> Result:
        self.scripts.append(script)
        done = subprocess.run(["sh", "-c", f"{in_main_shell}\n(\n{script}\n)"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        return Result(done.returncode, done.stdout)


def test_deploy_check_where_a_new_release_would_be_built_leaves_no_file_in_the_cache(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(engine_deploy, "LOCK_FILE", str(tmp_path / "deploy.lock"))
    host = load_inventory(PROJECT_ROOT / "inventories" / "production.yml").select("all")[0]
    report = engine_deploy.deploy_host(STACK, host, check=True, sessions=Sessions(session=_LocalHost))
    assert report.status == HostStatus.PENDING, (report.error, report.details)
    release = next(d for d in report.plan.decisions if isinstance(d.resource, AppRelease))
    assert release.changed and release.reason.startswith("new release ")
    built = [f for f in _files(cache) if not f.is_relative_to(cache / "provision" / "jinja2")]
    assert built == [], "--check built a release or fetched wheels"  # compiled templates are kept, as any run does
    assert sorted(p.name for p in tmp_path.iterdir() if p != cache) == ["deploy.lock", "deploy.lock.owner"]
