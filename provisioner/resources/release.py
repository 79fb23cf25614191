"""The app, shipped from the controller as an immutable release (resources/release_build.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..remote.scripts import fragment
from .base import Decision, Resource, SystemFacts
from .files import link_script
from .release_meta import describe, live_file, went_live
from .release_build import PlannedRelease, plan_release, python_for

_build_lock = threading.Lock()


def _build(planned: PlannedRelease) -> Path:
    """The archive to upload, built at apply time; hosts deploying in parallel share one build."""
    with _build_lock:
        return planned.build().archive


@dataclass
class AppRelease(Resource):
    """The app shipped from the controller as an immutable release dir, made `current` by a link.

    The release (code + wheelhouse for the host's Python) is built on the controller, so the host
    needs no PyPI; a release that is already on the host is only switched to, never rebuilt. The
    plan knows a release by its inputs: it is built only when a change is applied.
    """

    app_source: Path
    requirements: str
    root: str
    keep: int = 3

    def label(self) -> str:
        return f"release {self.root}/current"

    def probe(self, want_diff: bool = False) -> str:
        return fragment("release_probe.sh", ROOT=self.root)

    def parse(self, out: str) -> dict:
        current, _, rest = out.partition("\n")
        return {"current": current.strip(), "complete": set(rest.split())}

    def decide(self, fact: dict, system: SystemFacts, want_diff: bool = False) -> Decision:
        planned = plan_release(self.app_source, self.requirements, python_for(system.os_id, system.os_version),
                               system.machine)
        target = f"{self.root}/releases/{planned.id}"
        previous = PurePosixPath(fact["current"]).name
        if fact["current"] == target:
            return self.ok(f"release {planned.id} is current")
        switch = "\n".join([link_script(f"{self.root}/current", target),
                            fragment("release_prune.sh", RELEASES=f"{self.root}/releases", NEW=planned.id,
                                     PREVIOUS=previous, DELETE_FROM=max(self.keep - 1, 1)),
                            went_live(target)])
        backup = (f"{self.root}/current", live_file(target))
        if planned.id in fact["complete"]:
            return self.change(f"release {planned.id} is on the host; switching current to it", switch,
                               backup=backup)
        reason = f"new release {planned.id}" + (f" (current: {previous})" if previous else "")
        install = "\n".join([fragment("release_install.sh", TARGET=target, REQUIREMENTS=planned.requirements),
                             describe(target, self.app_source, planned.wheel_key)])
        return self.change(reason, install + "\n" + switch, backup=backup, upload=lambda: _build(planned))
