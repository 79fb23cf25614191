"""The package as a user gets it (issue 8, point 1): wheel -> fresh venv -> deploy from elsewhere.

The wheel is built from the checkout's files (copied to a temporary directory first, so the build's
`build/` and `*.egg-info` never land in the shared working tree), must carry the default stack
(provisioner/stack: roles/), the templates and the example app, and nothing but `provisioner` at the top
level. It is installed into a fresh venv outside the checkout (dependencies from PyPI, through pip's
cache); that venv's `provision` console script then deploys a fresh lab host from another directory with
the user's own inventory there, the API answers through nginx, and a second deploy changes nothing.
"""

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from provisioner import PACKAGE_DIR
from provisioner.labs.container import write_inventory

from tests.lab.test_deploy import http

pytestmark = pytest.mark.lab

CHECKOUT = PACKAGE_DIR.parent
# What a build never needs, and what other work in the shared tree may leave around.
NOT_SOURCES = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                     ".venv", ".provision", "tests", "bench", "vagrant")


def run(cmd, cwd, env, timeout=600):
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_wheel_installed_in_a_fresh_venv_deploys_from_another_directory(lab_hosts, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PROVISION_KNOWN_HOSTS=str(tmp_path / "known_hosts"))
    version = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]["version"]

    # A fresh venv outside the checkout, made while the wheel is built (venv's ensurepip is slow).
    venv = tmp_path / "venv"
    with ThreadPoolExecutor(1) as pool:
        made = pool.submit(run, [sys.executable, "-m", "venv", venv], tmp_path, env)

        # The wheel, from the checkout's files; the links provisioner/stack, templates, examples kept as links.
        src, dist = tmp_path / "src", tmp_path / "dist"
        shutil.copytree(CHECKOUT, src, symlinks=True, ignore=NOT_SOURCES)
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, src], tmp_path, env)
        [wheel] = dist.glob("provision-*.whl")
        names = zipfile.ZipFile(wheel).namelist()
        top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        assert top == {"provisioner"}, f"only provisioner is installed, not {sorted(top - {'provisioner'})}"
        shipped = set(names)
        roles = {f"provisioner/stack/{p.name}" for p in (CHECKOUT / "roles").iterdir() if p.suffix in (".py", ".sh")}
        templates = {f"provisioner/templates/{p.relative_to(CHECKOUT / 'templates')}"
                     for p in (CHECKOUT / "templates").rglob("*.j2")}
        assert any(n.endswith(".sh") for n in roles) and templates
        assert roles <= shipped, sorted(roles - shipped)
        assert templates <= shipped, sorted(templates - shipped)
        app = "provisioner/examples/model_api/"
        for needed in ("requirements.txt", "model_api/wsgi.py", "model_api/model.json", "static/robots.txt"):
            assert app + needed in shipped, needed
        made.result()

    # Installed with its dependencies from PyPI (pip's cache makes repeats quick).
    run([venv / "bin/python", "-m", "pip", "install", "-q", wheel], tmp_path, env)
    [host] = lab_hosts(1)

    # The user's own directory, not the checkout, with their inventory in it.
    home = tmp_path / "user"
    home.mkdir()
    where = run([venv / "bin/python", "-c", "import provisioner as p; print(p.PACKAGE_DIR, p.PROJECT_ROOT)"],
                home, env).split()
    assert where[0] == where[1] and Path(where[0]).is_relative_to(venv), f"imported from {where}: not installed"
    site = Path(where[0]).parent
    assert not {"roles", "templates", "examples", "stack"} & {p.name for p in site.iterdir()}

    provision = venv / "bin/provision"
    assert run([provision, "--version"], home, env).strip() == f"provision {version}"

    write_inventory([host], home / "inv.yml")
    out = run([provision, "deploy", "-H", host.name, "-i", "inv.yml"], home, env)
    assert "1 changed" in out, out

    status, headers, body = http(host.address, "/predict", json.dumps({"features": [5.1, 3.5, 1.4, 0.2]}).encode(),
                                 {"Content-Type": "application/json"})
    answer = json.loads(body)
    assert status == 200 and answer["class"] == "setosa", answer
    assert headers["Server"] == "nginx"

    [again] = json.loads(run([provision, "deploy", "-H", host.name, "-i", "inv.yml", "--json"], home, env))["hosts"]
    assert (again["status"], again["changed"], again["handlers"]) == ("ok", 0, []), again
