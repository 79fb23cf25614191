"""provision: agentless provisioning over SSH for a WSGI API behind nginx + uWSGI."""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# In a checkout, the project: inventories/, examples/ and templates/ beside the package. Installed,
# the package itself, which carries templates/ and examples/ (and roles/ as provisioner.stack).
PROJECT_ROOT = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").is_file() else PACKAGE_DIR
TEMPLATES_DIR = PROJECT_ROOT / "templates"


def default_cache_dir() -> Path:
    """The controller's cache (built releases, wheels, compiled templates): $XDG_CACHE_HOME/provision
    or ~/.cache/provision."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "provision"
