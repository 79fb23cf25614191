"""What a release ships of the app (defaults, .gitignore, .provisionignore) and which pip downloads its
wheels when provision's own interpreter has none (a pipx or uv tool install). Real files, real pip, offline."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from provisioner.errors import UserError
from provisioner.resources import release_files, release_pip
from provisioner.resources.release_build import plan_release
from provisioner.resources.release_files import collect

pytestmark = pytest.mark.unit
RUNNER_PYTHON = sys.executable  # the tests' own interpreter: it has pip


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def shipped(app: Path) -> set[str]:
    return {e.rel for e in collect(app) if e.kind != "dir"}


APP = {"requirements.txt": "", "api/__init__.py": "", "api/build.py": "", "api/build/x.py": "", ".env.example": "",
       "README.md": ""}


def test_secrets_dependencies_and_build_outputs_are_left_out_by_default(tmp_path):
    app = tree(tmp_path / "app", {**APP, ".env": "TOKEN=x", ".env.local": "", "node_modules/x/i.js": "",
                                  "web/node_modules/y.js": "", "build/lib/api.py": "", "dist/api.whl": "",
                                  "api.egg-info/PKG-INFO": "", ".git/HEAD": "", "env/pyvenv.cfg": "",
                                  "api/__pycache__/a.pyc": ""})
    assert shipped(app) == set(APP) - {".env.example"}, "nested build/ dirs of the app are its code"


def test_gitignore_then_provisionignore_last_line_wins(tmp_path):
    app = tree(tmp_path / "app", {**APP, "debug.log": "", "keep.log": "", "secrets/key.pem": "", "docs/x.md": "",
                                  ".gitignore": "*.log\nsecrets/\n", ".provisionignore": "docs/\n!keep.log\n!.env.example\n"})
    assert shipped(app) == set(APP) | {"keep.log", ".gitignore", ".provisionignore"}


def test_ignored_files_do_not_change_the_release(tmp_path):
    app = tree(tmp_path / "app", {**APP, ".gitignore": "*.log\n"})
    before = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c1")
    tree(app, {"x.log": "noise", ".env": "TOKEN=x", "node_modules/m.js": ""})
    after = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c2")
    assert after.id == before.id and after.manifest(None) == before.manifest(None)


def test_an_ignored_requirements_file_and_a_bad_pattern_are_one_line_errors(tmp_path):
    app = tree(tmp_path / "app", {**APP, ".provisionignore": "requirements.txt\n"})
    with pytest.raises(UserError, match="requirements file 'requirements.txt' is excluded from the release"):
        plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "c")
    (app / ".provisionignore").write_text("\\\n")
    with pytest.raises(UserError, match="is not a pattern"):
        collect(app)


# --- the pip that downloads the wheels -----------------------------------------------------------


@pytest.fixture(scope="module")
def pipless(tmp_path_factory) -> str:
    """An interpreter without pip, as a `uv tool install` gives."""
    venv = tmp_path_factory.mktemp("pipless") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return str(venv / "bin" / "python")


@pytest.fixture
def path_with(tmp_path, monkeypatch):
    """PATH holding only the given python3 (or none)."""
    def make(python3: str | None) -> None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        if python3:
            (bin_dir / "python3").symlink_to(python3)
        monkeypatch.setenv("PATH", str(bin_dir))
    return make


def tiny_wheel(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    info = "tiny-1.0.dist-info"
    with zipfile.ZipFile(folder / "tiny-1.0-py3-none-any.whl", "w") as whl:
        whl.writestr("tiny/__init__.py", "")
        whl.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: tiny\nVersion: 1.0\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", f"tiny/__init__.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    return folder


def test_without_pip_here_the_python3_on_path_downloads_the_wheels(tmp_path, monkeypatch, pipless, path_with):
    monkeypatch.setattr(sys, "executable", pipless)
    path_with(RUNNER_PYTHON)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tiny_wheel(tmp_path / "index")))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    app = tree(tmp_path / "app", {**APP, "requirements.txt": "tiny==1.0\n"})
    release = plan_release(app, "requirements.txt", "3.11", "x86_64", cache_dir=tmp_path / "cache")
    assert [p.name for p in release.wheels().values()] == ["tiny-1.0-py3-none-any.whl"]
    assert release_pip.pip_command(tmp_path / "cache") == [str(tmp_path / "bin" / "python3"), "-m", "pip"]


def test_without_any_pip_a_venv_of_its_own_is_made_once(tmp_path, monkeypatch, pipless, path_with):
    monkeypatch.setattr(sys, "executable", pipless)
    path_with(None)
    command = release_pip.pip_command(tmp_path / "cache")
    assert command == [str(tmp_path / "cache" / "pip-venv" / "bin" / "python"), "-m", "pip"]
    made = (tmp_path / "cache" / "pip-venv").stat().st_mtime_ns
    assert release_pip.pip_command(tmp_path / "cache") == command
    assert (tmp_path / "cache" / "pip-venv").stat().st_mtime_ns == made, "made once"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["pip-venv"], "no temporary dir left"


def test_no_pip_and_no_venv_is_a_one_line_error(tmp_path, monkeypatch, path_with):
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'No module named ensurepip' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(broken))
    path_with(None)
    with pytest.raises(UserError) as caught:
        release_pip.pip_command(tmp_path / "cache")
    assert "no pip to download the app's wheels with" in caught.value.cause
    assert "No module named ensurepip" in caught.value.cause and "python3-pip" in caught.value.fix
    assert not (tmp_path / "cache" / "pip-venv").exists()



def test_a_large_file_only_gitignore_leaves_out_is_an_error_that_says_how_to_ship_it(tmp_path, monkeypatch):
    monkeypatch.setattr(release_files, "LARGE_FILE", 1000)
    app = tree(tmp_path / "app", {**APP, ".gitignore": "*.bin\ndata/\n", "model/weights.bin": "w" * 1000,
                                  "small.bin": "tiny"})
    with pytest.raises(UserError) as caught:
        collect(app)
    assert "model/weights.bin (0 MB) does not ship" in caught.value.cause and ".gitignore" in caught.value.cause
    assert "`!model/weights.bin` in" in caught.value.fix and ".provisionignore" in caught.value.fix
    (app / ".provisionignore").write_text("!model/weights.bin\n")
    assert "model/weights.bin" in shipped(app) and "small.bin" not in shipped(app)
    (app / ".provisionignore").write_text("model/weights.bin\n")
    assert "model/weights.bin" not in shipped(app), "left out on purpose"

    tree(app, {"data/set/big.csv": "x" * 1000})
    with pytest.raises(UserError, match="leaves out data/") as caught:
        collect(app)
    assert "`!data/`" in caught.value.fix
    (app / ".provisionignore").write_text("model/weights.bin\ndata/\n")
    assert not any(p.startswith("data") for p in shipped(app))
