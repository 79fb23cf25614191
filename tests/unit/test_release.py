"""Release planning: stable ids, the venv key, the wheel cache and its bound, pip errors."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from provisioner.errors import UserError
from provisioner.resources import release_build as rel
from provisioner.resources.release_build import plan_release, python_for

pytestmark = pytest.mark.unit


def make_app(root: Path, requirements: str = "# nothing to install\n") -> Path:
    app = root / "app_src"
    (app / "pkg").mkdir(parents=True)
    (app / "pkg" / "__init__.py").write_text("")
    (app / "pkg" / "wsgi.py").write_text("def app(environ, start_response):\n    return []\n")
    (app / "static").mkdir()
    (app / "static" / "robots.txt").write_text("User-agent: *\n")
    (app / "run.sh").write_text("#!/bin/sh\n")
    (app / "run.sh").chmod(0o755)
    (app / "requirements.txt").write_text(requirements)
    return app


@pytest.fixture
def no_pip(monkeypatch):
    """Fail the test if anything runs a subprocess (pip)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"unexpected subprocess: {args}")

    monkeypatch.setattr(rel.subprocess, "run", refuse)


def test_same_input_same_id(tmp_path, no_pip):
    app = make_app(tmp_path)
    a = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c1")
    # different mtimes and a different cache: same id
    for p in app.rglob("*"):
        os.utime(p, (1_000_000_000, 1_000_000_000))
    b = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c2")
    assert a.id == b.id and len(a.id) == 12 and a.manifest(None) == b.manifest(None)
    # a copy of the app elsewhere: same id (no absolute paths in it)
    other = tmp_path / "elsewhere"
    other.mkdir()
    c = plan_release(make_app(other), "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c3")
    assert c.id == a.id
    assert not (tmp_path / "c1").exists(), "planning writes nothing"


def test_changes_that_change_the_id(tmp_path, no_pip):
    app = make_app(tmp_path)
    cache = tmp_path / "cache"
    ids = {plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache).id}

    def add(rid):
        assert rid not in ids
        ids.add(rid)

    (app / "pkg" / "wsgi.py").write_text("# changed\n")
    add(plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache).id)
    (app / "pkg" / "new.py").write_text("")
    add(plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache).id)
    (app / "run.sh").chmod(0o644)
    add(plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache).id)
    (app / "requirements.txt").write_text("# still nothing\n")
    add(plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache).id)
    add(plan_release(app, "requirements.txt", "3.12", "x86_64", cache_dir=cache).id)
    add(plan_release(app, "requirements.txt", "3.11", "aarch64", cache_dir=cache).id)


def test_excluded_files_do_not_change_the_id_or_the_manifest(tmp_path, no_pip):
    app = make_app(tmp_path)
    before = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c1")
    (app / "pkg" / "__pycache__").mkdir()
    (app / "pkg" / "__pycache__" / "wsgi.cpython-311.pyc").write_bytes(b"\0")
    (app / "pkg" / "stray.pyc").write_bytes(b"\0")
    (app / ".git").mkdir()
    (app / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    for venv in ("venv", ".venv"):
        (app / venv / "bin").mkdir(parents=True)
        (app / venv / "bin" / "python").write_text("")
    (app / "myenv").mkdir()
    (app / "myenv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (app / ".pytest_cache").mkdir()
    after = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c2")
    assert after.id == before.id and after.manifest(None) == before.manifest(None)


def test_venv_key_is_the_requirements_python_and_platform(tmp_path, no_pip):
    app = make_app(tmp_path)
    a = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c")
    (app / "pkg" / "wsgi.py").write_text("# code only\n")
    b = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c")
    assert a.id != b.id and a.venv == b.venv and a.venv.startswith("cp311-x86_64-")
    (app / "requirements.txt").write_text("# another text\n")
    assert plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c").venv != a.venv
    assert plan_release(app, "requirements.txt", "3.13", "x86_64", cache_dir=tmp_path / "c").venv.startswith("cp313-")


def test_real_pip_download_and_wheel_cache(tmp_path, monkeypatch):
    """A tiny real download (one ~20 kB wheel per target) with the platform/version flags."""
    cache = tmp_path / "cache"
    app = make_app(tmp_path, "MarkupSafe==3.0.2\n")
    x86 = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache)
    [wheel] = x86.wheels().values()
    assert wheel.name.lower().startswith("markupsafe-3.0.2-cp311-cp311-") and "x86_64" in wheel.name
    arm = plan_release(app, "requirements.txt", "3.12", "aarch64", cache_dir=cache)
    [arm_wheel] = arm.wheels().values()
    assert arm_wheel.name.lower().startswith("markupsafe-3.0.2-cp312-cp312-") and "aarch64" in arm_wheel.name
    entries = x86.manifest(x86.wheels())["entries"]
    assert ["f", f"wheels/{wheel.name}", next(iter(x86.wheels()))] in entries

    # an app change with the same requirements reuses the wheelhouse: no pip at all
    calls = []
    real_run = subprocess.run
    monkeypatch.setattr(rel.subprocess, "run", lambda *a, **k: calls.append(a) or real_run(*a, **k))
    (app / "pkg" / "wsgi.py").write_text("# v2\n")
    again = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache)
    assert again.id != x86.id and again.wheels() == x86.wheels() and calls == []


def test_pip_failure_is_a_user_error_with_pips_last_error_line(tmp_path, monkeypatch):
    # offline and deterministic: no index, no find-links, no config file
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    app = make_app(tmp_path, "provision-no-such-package==1.0\n")
    with pytest.raises(UserError) as e:
        plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c").wheels()
    assert "pip could not download wheels" in e.value.cause
    assert "No matching distribution found for provision-no-such-package==1.0" in e.value.cause
    assert not list((tmp_path / "c" / "wheels").glob("*")), "no half-filled cache entry left"


def test_requirements_includes_are_part_of_the_wheel_key(tmp_path, monkeypatch):
    app = make_app(tmp_path, "-r base.txt\n")
    (app / "base.txt").write_text("# v1\n")
    cache = tmp_path / "c"
    first = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache)
    (app / "base.txt").write_text("# v2\n")
    second = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache)
    assert first.id != second.id and first.venv != second.venv


@pytest.mark.parametrize(
    "os_id, version_id, expected",
    [("debian", "12", "3.11"), ("ubuntu", "22.04", "3.10"), ("ubuntu", "24.04", "3.12"),
     ("debian", "13", "3.13"), ("Debian", '"12"', "3.11")],
)
def test_python_for(os_id, version_id, expected):
    assert python_for(os_id, version_id) == expected


@pytest.mark.parametrize("os_id, version_id", [("debian", "11"), ("centos", "9"), ("ubuntu", "20.04")])
def test_python_for_unknown_os(os_id, version_id):
    with pytest.raises(UserError) as e:
        python_for(os_id, version_id)
    assert f"unsupported OS {os_id} {version_id}" in e.value.cause
    assert "debian 12" in e.value.fix


def test_machine_aliases(tmp_path, no_pip):
    app = make_app(tmp_path)
    a = plan_release(app, "requirements.txt", "3.11", "amd64", cache_dir=tmp_path / "c")
    b = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c")
    assert (a.id, a.venv) == (b.id, b.venv) and a.machine == "x86_64"


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"python_version": "3"}, "is not of the form 3.N"),
        ({"python_version": "python3.11"}, "is not of the form 3.N"),
        ({"machine": "sparc"}, "unsupported machine"),
        ({"requirements": "missing.txt"}, "not found"),
        ({"requirements": "../requirements.txt"}, "not found"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, fragment, no_pip):
    app = make_app(tmp_path)
    args = {"app_dir": app, "requirements": "requirements.txt", "python_version": "3.11",
            "machine": "x86_64", "cache_dir": tmp_path / "c"} | kwargs
    with pytest.raises(UserError, match=fragment):
        plan_release(**args)


def test_missing_app_dir(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        plan_release(tmp_path / "nope", "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c")


def test_symlink_leaving_the_app_is_refused(tmp_path, no_pip):
    app = make_app(tmp_path)
    (tmp_path / "secret").write_text("x")
    (app / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(UserError, match="outside the app directory"):
        plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c")
    (app / "leak").unlink()
    (app / "leak").symlink_to("../secret")
    with pytest.raises(UserError, match="outside the app directory"):
        plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c")


def _fake_download(monkeypatch, calls):
    """pip download as a stub: one wheel per key, no network."""
    def download(cmd, cwd=None, **kwargs):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / f"pkg-{len(calls)}-py3-none-any.whl").write_bytes(b"wheel %d" % len(calls))
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(rel, "pip_command", lambda cache: ["pip"])
    monkeypatch.setattr(rel.subprocess, "run", download)


def test_old_wheelhouses_are_pruned_but_not_one_used_within_the_hour(tmp_path, monkeypatch):
    monkeypatch.setattr(rel, "KEEP_WHEELHOUSES", 2)
    _fake_download(monkeypatch, [])
    app = make_app(tmp_path, "pkg\n")
    cache = tmp_path / "c"
    houses = []
    for i in range(4):
        (app / "requirements.txt").write_text(f"pkg  # {i}\n")
        planned = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache)
        planned.wheels()
        houses.append(cache / "wheels" / planned.venv)
    assert all(h.is_dir() for h in houses), "each used within the hour"
    for i, house in enumerate(houses):
        os.utime(house, (1_000_000 + i, 1_000_000 + i))
    (app / "requirements.txt").write_text("pkg  # 4\n")
    newest = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache)
    newest.wheels()
    left = sorted(p.name for p in (cache / "wheels").iterdir())
    assert left == sorted([houses[3].name, newest.venv]), "the controller keeps no more than KEEP_WHEELHOUSES"


def test_wheels_download_once_per_venv_key(tmp_path, monkeypatch):
    calls = []
    _fake_download(monkeypatch, calls)
    app = make_app(tmp_path, "pkg\n")
    first = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c").wheels()
    (app / "pkg" / "wsgi.py").write_text("# v2\n")
    second = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c").wheels()
    assert first == second and len(calls) == 1
    [(digest, path)] = first.items()
    assert digest == rel.hashlib.sha256(path.read_bytes()).hexdigest()


def test_example_app_plans(tmp_path, no_pip):
    """The real example app: its files by content, no bytecode."""
    from provisioner import PROJECT_ROOT

    planned = plan_release(PROJECT_ROOT / "examples" / "model_api", "requirements.txt", "3.11", "x86_64",
                           cache_dir=tmp_path / "c")
    paths = [path for _, path, _ in planned.manifest(None)["entries"]]
    for expected in ("app/model_api/wsgi.py", "app/model_api/model.json", "app/static/robots.txt",
                     "app/requirements.txt"):
        assert expected in paths
    assert not any("__pycache__" in p or p.endswith(".pyc") for p in paths)
