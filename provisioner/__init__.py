"""provision: agentless provisioning over SSH for a WSGI API behind nginx + uWSGI."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_ROOT / "templates"
