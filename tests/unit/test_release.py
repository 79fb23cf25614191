"""Release packaging: stable ids, byte-identical archives, the wheel cache, pip errors."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from provisioner.errors import UserError
from provisioner.resources import release_build as rel
from provisioner.resources.release_build import build_release, python_for

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


def members(archive: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return tar.getmembers()


def test_same_input_same_id_and_identical_bytes(tmp_path, no_pip):
    app = make_app(tmp_path)
    a = build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c1")
    # different mtimes and a different cache: same id, same bytes
    for p in app.rglob("*"):
        os.utime(p, (1_000_000_000, 1_000_000_000))
    b = build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c2")
    assert a.id == b.id and len(a.id) == 12
    assert a.archive != b.archive
    assert a.archive.read_bytes() == b.archive.read_bytes()
    # a copy of the app elsewhere: same id (no absolute paths in it)
    other = tmp_path / "elsewhere"
    other.mkdir()
    c = build_release(make_app(other), "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c3")
    assert c.id == a.id


def test_changes_that_change_the_id(tmp_path, no_pip):
    app = make_app(tmp_path)
    cache = tmp_path / "cache"
    ids = {build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache).id}

    def add(rid):
        assert rid not in ids
        ids.add(rid)

    (app / "pkg" / "wsgi.py").write_text("# changed\n")
    add(build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache).id)
    (app / "pkg" / "new.py").write_text("")
    add(build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache).id)
    (app / "run.sh").chmod(0o644)
    add(build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache).id)
    (app / "requirements.txt").write_text("# still nothing\n")
    add(build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache).id)
    add(build_release(app, "requirements.txt", "3.12", "x86_64", cache_dir=cache).id)
    add(build_release(app, "requirements.txt", "3.11", "aarch64", cache_dir=cache).id)


def test_excluded_files_do_not_change_the_id_or_the_archive(tmp_path, no_pip):
    app = make_app(tmp_path)
    before = build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c1")
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
    after = build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c2")
    assert after.id == before.id
    assert after.archive.read_bytes() == before.archive.read_bytes()


def test_archive_layout(tmp_path, no_pip):
    app = make_app(tmp_path)
    (app / "pkg" / "link.py").symlink_to("wsgi.py")
    r = build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c")
    infos = members(r.archive)
    names = [m.name for m in infos]
    assert names == [
        "release.json", "app", "app/pkg", "app/pkg/__init__.py", "app/pkg/link.py", "app/pkg/wsgi.py",
        "app/requirements.txt", "app/run.sh", "app/static", "app/static/robots.txt", "wheels",
    ]
    by_name = {m.name: m for m in infos}
    assert by_name["app/run.sh"].mode == 0o755
    assert by_name["app/pkg/wsgi.py"].mode == 0o644
    assert by_name["app/pkg/link.py"].issym() and by_name["app/pkg/link.py"].linkname == "wsgi.py"
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == rel.ARCHIVE_MTIME for m in infos)
    with tarfile.open(r.archive) as tar:
        manifest = json.load(tar.extractfile("release.json"))
    assert manifest == {"id": r.id, "python": "3.11", "machine": "x86_64",
                        "requirements": "app/requirements.txt", "files": 6, "wheels": [],
                        "layout": rel.LAYOUT_VERSION}
    assert r.files == 6 and r.wheels == () and r.requirements == "app/requirements.txt"
    assert r.archive.name == f"{r.id}-cp311-x86_64.tar.gz"
    # gzip header: no name, no timestamp
    raw = r.archive.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0" and not raw[3] & 0x08


def test_second_build_is_cached_and_fast(tmp_path, no_pip):
    app = make_app(tmp_path)
    cache = tmp_path / "c"
    first = build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache)
    stat = first.archive.stat()
    t = time.perf_counter()
    second = build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache)
    elapsed = time.perf_counter() - t
    assert second == first
    assert first.archive.stat().st_ino == stat.st_ino  # not rewritten
    assert elapsed < 0.5


def test_real_pip_download_and_wheel_cache(tmp_path, monkeypatch):
    """A tiny real download (one ~20 kB wheel per target) with the platform/version flags."""
    cache = tmp_path / "cache"
    app = make_app(tmp_path, "MarkupSafe==3.0.2\n")
    x86 = build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache)
    assert len(x86.wheels) == 1
    assert x86.wheels[0].lower().startswith("markupsafe-3.0.2-cp311-cp311-") and "x86_64" in x86.wheels[0]
    arm = build_release(app, "requirements.txt", "3.12", "aarch64", cache_dir=cache)
    assert arm.wheels[0].lower().startswith("markupsafe-3.0.2-cp312-cp312-") and "aarch64" in arm.wheels[0]
    names = [m.name for m in members(x86.archive)]
    assert f"wheels/{x86.wheels[0]}" in names

    # an app change with the same requirements reuses the wheelhouse: no pip at all
    calls = []
    real_run = subprocess.run
    monkeypatch.setattr(rel.subprocess, "run", lambda *a, **k: calls.append(a) or real_run(*a, **k))
    (app / "pkg" / "wsgi.py").write_text("# v2\n")
    again = build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache)
    assert again.id != x86.id and again.wheels == x86.wheels and calls == []


def test_pip_failure_is_a_user_error_with_pips_last_error_line(tmp_path, monkeypatch):
    # offline and deterministic: no index, no find-links, no config file
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    app = make_app(tmp_path, "provision-no-such-package==1.0\n")
    with pytest.raises(UserError) as e:
        build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c")
    assert "pip could not download wheels" in e.value.cause
    assert "No matching distribution found for provision-no-such-package==1.0" in e.value.cause
    assert not list((tmp_path / "c" / "wheels").glob("*")), "no half-filled cache entry left"


def test_requirements_includes_are_part_of_the_wheel_key(tmp_path, monkeypatch):
    app = make_app(tmp_path, "-r base.txt\n")
    (app / "base.txt").write_text("# v1\n")
    cache = tmp_path / "c"
    first = build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache)
    (app / "base.txt").write_text("# v2\n")
    second = build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache)
    assert first.id != second.id
    assert len(list((cache / "wheels").iterdir())) == 2


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
    a = build_release(app, "requirements.txt", "3.11", "amd64", cache_dir=tmp_path / "c")
    b = build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c")
    assert a == b and a.machine == "x86_64"


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
        build_release(**args)


def test_missing_app_dir(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        build_release(tmp_path / "nope", "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c")


def test_symlink_leaving_the_app_is_refused(tmp_path, no_pip):
    app = make_app(tmp_path)
    (tmp_path / "secret").write_text("x")
    (app / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(UserError, match="outside the app directory"):
        build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c")
    (app / "leak").unlink()
    (app / "leak").symlink_to("../secret")
    with pytest.raises(UserError, match="outside the app directory"):
        build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c")


def test_old_archives_are_pruned(tmp_path, no_pip, monkeypatch):
    monkeypatch.setattr(rel, "KEEP_ARCHIVES", 2)
    app = make_app(tmp_path)
    cache = tmp_path / "c"
    built = []
    for i in range(4):
        (app / "pkg" / "wsgi.py").write_text(f"# {i}\n")
        r = build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=cache)
        os.utime(r.archive, (1_000_000 + i, 1_000_000 + i))
        built.append(r)
    left = sorted(p.name for p in (cache / "releases").glob("*.tar.gz"))
    assert left == sorted(r.archive.name for r in built[-2:])


def test_an_archive_used_within_the_hour_is_never_pruned(tmp_path, no_pip, monkeypatch):
    """Another run (a parallel deploy, a parallel test worker) may be uploading it right now."""
    monkeypatch.setattr(rel, "KEEP_ARCHIVES", 1)
    app = make_app(tmp_path)
    built = []
    for i in range(3):
        (app / "pkg" / "wsgi.py").write_text(f"# {i}\n")
        built.append(build_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c"))
    assert all(r.archive.is_file() for r in built)


def test_example_app_packs(tmp_path, no_pip, monkeypatch):
    """The real example app (wheels stubbed: this test does no network)."""
    from provisioner import PROJECT_ROOT

    def fake_wheelhouse(req_file, key, python_version, machine, cache):
        d = cache / "wheels" / key
        d.mkdir(parents=True, exist_ok=True)
        (d / "flask-3.1.3-py3-none-any.whl").write_bytes(b"stub")
        return d

    monkeypatch.setattr(rel, "_wheelhouse", fake_wheelhouse)
    r = build_release(PROJECT_ROOT / "examples" / "model_api", "requirements.txt", "3.11", "x86_64",
                      cache_dir=tmp_path / "c")
    names = [m.name for m in members(r.archive)]
    for expected in ("app/model_api/wsgi.py", "app/model_api/model.json", "app/static/robots.txt",
                     "app/requirements.txt", "wheels/flask-3.1.3-py3-none-any.whl"):
        assert expected in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    with tarfile.open(r.archive) as tar:
        assert tar.extractfile("wheels/flask-3.1.3-py3-none-any.whl").read() == b"stub"
