"""provision: agentless provisioning over SSH for a WSGI API behind nginx + uWSGI."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# In a checkout, the project: inventories/, examples/ and templates/ beside the package. Installed,
# the package itself, which carries templates/ and examples/ (and roles/ as provisioner.stack).
PROJECT_ROOT = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").is_file() else PACKAGE_DIR
TEMPLATES_DIR = PROJECT_ROOT / "templates"
