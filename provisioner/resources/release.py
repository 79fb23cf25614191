"""The app, shipped from the controller as an immutable release that shares what did not change
(resources/release_build.py: the layout on the host; release_transfer.py: what travels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..remote.scripts import fragment, text
from .base import Decision, Resource, SystemFacts
from .files import link_script
from .release_build import AppTree, PlannedRelease, plan_for, python_for, scan_app
from .release_transfer import Transfer
from .release_meta import describe, live_file, went_live


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@dataclass
class AppRelease(Resource):
    """The app's current release: a directory of hard links into the host's store of files, and a venv
    shared by every release with the same requirements, Python and platform.

    The probe says what the host holds (its releases, venvs and, unless the current release is this
    very tree, its store of files); a new release sends only the files missing there, and its
    wheels only when its venv must be built. A release already on the host is only switched to.
    """

    app_source: Path
    requirements: str
    root: str
    keep: int = 3
    _app: AppTree | None = field(default=None, init=False, repr=False, compare=False)

    def label(self) -> str:
        return f"release {self.root}/current"

    def app(self) -> AppTree:
        """The app's files, hashed once per run (the probe and the plan both need them)."""
        if self._app is None:
            self._app = scan_app(self.app_source, self.requirements)
        return self._app

    def probe(self, want_diff: bool = False) -> str:
        return fragment("release_probe.sh", ROOT=self.root, TREE=self.app().tree)

    def parse(self, out: str) -> dict:
        head, _, rest = out.partition("\n")
        releases, venvs, store = (rest.split("--\n") + ["", "", ""])[:3]
        return {"current": head.strip(),
                "releases": dict((line.split() + [""])[:2] for line in releases.splitlines() if line.strip()),
                "venvs": set(venvs.split()), "store": set(store.split())}

    def decide(self, fact: dict, system: SystemFacts, want_diff: bool = False) -> Decision:
        planned = plan_for(self.app(), python_for(system.os_id, system.os_version), system.machine)
        target = f"{self.root}/releases/{planned.id}"
        previous = PurePosixPath(fact["current"]).name
        if fact["current"] == target and fact["releases"].get(planned.id) == planned.venv:
            return self.ok(f"release {planned.id} is current")
        switch = "\n".join([link_script(f"{self.root}/current", target),
                            fragment("release_prune.sh", ROOT=self.root, NEW=planned.id, PREVIOUS=previous,
                                     DELETE_FROM=max(self.keep - 1, 1)),
                            went_live(target)])
        backup = (f"{self.root}/current", live_file(target))
        if fact["releases"].get(planned.id) == planned.venv:
            return self.change(f"release {planned.id} is on the host; switching current to it", switch,
                               backup=backup)
        objects = self.app().objects()
        missing = {name: path for name, path in objects.items() if name not in fact["store"]}
        build_venv = planned.venv not in fact["venvs"]
        reason = (f"new release {planned.id}" + (f" (current: {previous})" if previous else "")
                  + f": {len(missing)} of {len(objects)} files to send ({_size(sum(p.stat().st_size for p in missing.values()))})"
                  + (", venv to build" + (" with its wheels" if build_venv else "") if build_venv else ", venv reused"))
        install = fragment("release_install.sh", ROOT=self.root, ID=planned.id, VENV=planned.venv,
                           REQUIREMENTS=planned.requirements, BUILD_VENV=int(build_venv),
                           LINK_PY=text("release_link.py")) + "\n" + describe(target, self.app_source, planned.venv)
        return self.change(reason, install + "\n" + switch, backup=backup,
                           upload=lambda: _transfer(planned, fact["store"], missing, build_venv),
                           upload_key=f"{planned.id} {build_venv} {' '.join(sorted(missing))}")


def _transfer(planned: PlannedRelease, held: set[str], missing: dict[str, Path], build_venv: bool) -> Transfer:
    """The tar for the host, made at apply time (wheels downloaded then, and only when its venv is built)."""
    wheels = planned.wheels() if build_venv else None
    objects = dict(missing)
    objects.update({name: path for name, path in (wheels or {}).items() if name not in held})
    return Transfer(f"{planned.id}.tar", planned.manifest(wheels), objects)
