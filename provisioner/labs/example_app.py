"""Copies of the example app (examples/model_api) with one change in its wsgi module: a new release,
or one that fails on purpose, for the lab tests and benchmarks."""

from __future__ import annotations

import shutil
from pathlib import Path

from provisioner import PROJECT_ROOT


def example_app(dest: Path, wsgi_head: str = "", wsgi_tail: str = "") -> Path:
    """The example app copied to `dest`, its wsgi module between `wsgi_head` and `wsgi_tail`."""
    shutil.copytree(PROJECT_ROOT / "examples" / "model_api", dest, ignore=shutil.ignore_patterns("__pycache__"))
    wsgi = dest / "model_api" / "wsgi.py"
    wsgi.write_text(wsgi_head + wsgi.read_text() + wsgi_tail)
    return dest
