"""The resource types roles declare (base.py says what a resource is; add a new type beside these)."""

from .apt import Packages
from .base import APT_STAMP, PENDING_DIR, RUN_DIR, Decision, Resource, SystemFacts, pending_marker
from .files import Absent, Directory, File, Link, PathResource, SystemdUnit, Template
from .leftovers import Leftovers
from .release import AppRelease
from .systemd import Service
from .users import SystemUser

__all__ = ["APT_STAMP", "PENDING_DIR", "RUN_DIR", "Absent", "AppRelease", "Decision", "Directory", "File", "Leftovers", "Link",
           "Packages", "PathResource", "Resource", "Service", "SystemFacts", "SystemUser", "SystemdUnit", "Template",
           "pending_marker"]
