"""Back to a release the host keeps (`provision rollback`): only the `current` link moves.

Nothing is built or uploaded: the release's files and venv are already on the host. The switch
notifies the same handlers as a new release, so the app restarts as in a deploy (zero-downtime,
health-checked, undone when the release does not come up healthy).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from .base import Decision, Resource, SystemFacts
from .files import link_script
from .release_meta import KeptRelease, list_script, live_file, parse_list, went_live


@dataclass
class ReleaseSwitch(Resource):
    """`current` pointing at the release `to` (an id or a unique prefix of one), or, when `to` is
    empty, at the kept release that was current last before the one now current."""

    root: str
    to: str = ""

    def label(self) -> str:
        return f"release {self.root}/current"

    def probe(self, want_diff: bool = False) -> str:
        return list_script(self.root)

    def parse(self, out: str) -> list[KeptRelease]:
        return parse_list(out)

    def decide(self, fact: list[KeptRelease], system: SystemFacts, want_diff: bool = False) -> Decision:
        target = self.choose(fact)
        current = next((r.id for r in fact if r.current), "")
        if target == current:
            return self.ok(f"release {target} is current")
        path = f"{self.root}/releases/{target}"
        return self.change(f"rolling back from {current or 'no release'} to {target}",
                           "\n".join([link_script(f"{self.root}/current", path), went_live(path)]),
                           backup=(f"{self.root}/current", live_file(path)))

    def choose(self, kept: list[KeptRelease]) -> str:
        """The release to go to, or a UserError naming what the host keeps."""
        ids = ", ".join(r.id + " (current)" * r.current for r in kept) or "none"
        if not self.to:
            earlier = [r for r in kept if not r.current]
            if not earlier:
                raise UserError(f"no earlier release is kept on this host (kept: {ids})",
                                "deploy the release you want; keep_releases sets how many a host keeps")
            return earlier[0].id
        matches = [r.id for r in kept if r.id.startswith(self.to)]
        if len(matches) != 1:
            found = "is not kept on this host" if not matches else "names more than one kept release"
            raise UserError(f"release {self.to!r} {found} (kept: {ids})",
                            "name one of the kept releases with --to (provision releases shows them), or deploy it")
        return matches[0]
