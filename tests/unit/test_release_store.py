"""Releases that share what did not change, run for real: the probe, the plan, the transfer and the
host's install, switch and prune scripts, with the local sh against a temp app_root (the engine sends
the same scripts to a host)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from provisioner.resources import AppRelease, SystemFacts, file_digest, release_build, release_transfer

from local_app_root import LocalAppRoot

pytestmark = [pytest.mark.unit,
              pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs Debian's /usr/bin/python3")]

HOST = SystemFacts(os_id="debian", os_version="12", machine=os.uname().machine)


@pytest.fixture
def app(tmp_path, monkeypatch) -> Path:
    """An app without requirements (no download), its wheels from an empty wheelhouse, in a cache of its own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(release_build, "_has_requirements", lambda path: False)
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "wsgi.py").write_text("def app(environ, start_response):\n    return []\n")
    (src / "pkg" / "model.py").write_text("WEIGHTS = 'weights.bin'\n" * 200)
    (src / "weights.bin").write_bytes(os.urandom(300_000))
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    (src / "wsgi_link.py").symlink_to("pkg/wsgi.py")
    (src / "requirements.txt").write_text("# nothing to install\n")
    return src


def inode(path: Path) -> int:
    return path.stat().st_ino


def test_a_code_change_sends_one_file_and_shares_the_rest_and_the_venv(app, tmp_path):
    host = LocalAppRoot(tmp_path / "srv", HOST)
    first = host.deploy(app)
    assert first.changed and "5 of 5 files to send" in first.reason and "venv to build" in first.reason
    v1 = host.release()
    assert (v1 / "app" / "pkg" / "wsgi.py").read_text().startswith("def app")
    assert os.access(v1 / "app" / "run.sh", os.X_OK) and not os.access(v1 / "app" / "pkg" / "model.py", os.X_OK)
    assert os.readlink(v1 / "app" / "wsgi_link.py") == "pkg/wsgi.py"
    assert (v1 / "venv" / "bin" / "python").exists() and (v1 / ".complete").is_file()
    sent = {m.name for m in host.sent}
    assert "manifest.json" in sent and any(n.endswith(".gz") for n in sent), "code travels compressed"
    weights = next(m for m in host.sent if m.size > 200_000)
    assert not weights.name.endswith(".gz"), "random bytes are not compressed"

    again = host.deploy(app)
    assert not again.changed and host.sent == []

    (app / "pkg" / "wsgi.py").write_text("def app(environ, start_response):\n    return [b'v2']\n")
    second = host.deploy(app)
    assert "1 of 5 files to send" in second.reason and "venv reused" in second.reason, second.reason
    assert sorted(m.name for m in host.sent)[0] == "manifest.json" and len(host.sent) == 2
    v2 = host.release()
    assert v2 != v1
    for same in ("weights.bin", "pkg/model.py", "run.sh"):
        assert inode(v2 / "app" / same) == inode(v1 / "app" / same), same
    assert inode(v2 / "app" / "pkg" / "wsgi.py") != inode(v1 / "app" / "pkg" / "wsgi.py")
    assert (v2 / "venv").resolve() == (v1 / "venv").resolve()
    assert len(list((host.root / "venvs").iterdir())) == 1

    (app / "pkg" / "wsgi.py").write_text("def app(environ, start_response):\n    return []\n")
    rollback = host.deploy(app)
    assert rollback.reason == f"release {v1.name} is on the host; switching current to it"
    assert host.release() == v1 and host.sent == []


def test_a_requirements_change_builds_a_new_venv_and_old_releases_are_pruned_with_their_files(app, tmp_path):
    host = LocalAppRoot(tmp_path / "srv", HOST, keep=2)
    host.deploy(app)
    venv1 = (host.release() / "venv").resolve()
    (app / "requirements.txt").write_text("# still nothing, but another key\n")
    changed = host.deploy(app)
    assert "venv to build" in changed.reason, changed.reason
    assert (host.release() / "venv").resolve() != venv1
    for n in range(3):
        (app / "weights.bin").write_bytes(os.urandom(1000 + n))
        host.deploy(app)
    releases = sorted(p.name for p in (host.root / "releases").iterdir())
    assert len(releases) == 2, releases
    kept_venvs = {(host.root / "releases" / r / "venv").resolve() for r in releases}
    assert set((host.root / "venvs").iterdir()) == kept_venvs, "a venv no release uses is gone"
    linked = {inode(p) for r in releases for p in (host.root / "releases" / r / "app").rglob("*")
              if p.is_file() and not p.is_symlink()}
    assert {inode(p) for p in (host.root / "store").iterdir()} == linked, "the store holds only kept files"


def test_a_transfer_whose_file_changes_while_it_is_sent_fails(app, tmp_path):
    release = AppRelease(app, "requirements.txt", str(tmp_path / "srv"))
    decision = release.decide(release.parse(""), HOST)
    (app / "weights.bin").write_bytes(b"changed meanwhile")
    transfer = decision.upload()
    with pytest.raises(Exception, match="changed while the release was being sent"):
        with transfer.open() as stream:
            stream.read()


def test_a_file_the_plan_hashed_is_sent_without_hashing_it_again(app, tmp_path, monkeypatch):
    release = AppRelease(app, "requirements.txt", str(tmp_path / "srv"))
    decision = release.decide(release.parse(""), HOST)
    hashed = []
    monkeypatch.setattr(file_digest.hashlib, "sha256", lambda *a: hashed.append(a) or hashlib.sha256(*a))
    monkeypatch.setattr(release_transfer.hashlib, "sha256", lambda *a: hashed.append(a) or hashlib.sha256(*a))
    with decision.upload().open() as stream:
        assert len(stream.read()) > 300_000
    assert hashed == [], "the plan's digests hold: the stat says the files are the same"


def test_a_file_rewritten_with_its_old_size_and_mtime_still_reads_as_changed(app, tmp_path):
    release = AppRelease(app, "requirements.txt", str(tmp_path / "srv"))
    decision = release.decide(release.parse(""), HOST)
    weights = app / "weights.bin"
    before = weights.stat()
    weights.write_bytes(os.urandom(before.st_size))
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(Exception, match="changed while the release was being sent"):
        with decision.upload().open() as stream:
            stream.read()


def test_the_manifest_lists_the_release_by_store_name(app):
    planned = release_build.plan_release(app, "requirements.txt", "3.11", "x86_64")
    manifest = planned.manifest(None)
    kinds = {path: (kind, arg) for kind, path, arg in manifest["entries"]}
    digest = release_build.hashlib.sha256((app / "run.sh").read_bytes()).hexdigest()
    assert kinds["app/run.sh"] == ("f", digest + "-x")
    assert kinds["app/wsgi_link.py"] == ("l", "pkg/wsgi.py")
    assert kinds["app/pkg"] == ("d", "")
    assert "wheels" not in kinds
    assert json.loads(json.dumps(manifest)) == manifest
