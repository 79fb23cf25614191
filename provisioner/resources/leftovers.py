"""Leftovers: what an earlier deploy put on a host that no role declares any more (an app renamed
or removed from the inventory). Without this, a renamed app's old nginx site stays enabled beside
the new one and every later deploy fails `nginx -t` ("duplicate listen options").

The role says how to list the things of one kind the project manages (one name a line) and how to
remove one; the listing runs in the facts probe, so `deploy --check` shows what would be retired.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..remote.quoting import assign
from .base import Decision, Resource, SystemFacts


@dataclass
class Leftovers(Resource):
    what: str                   # "nginx site", "app": in the label and the reasons
    listing: str                # shell: the names of every such thing on the host, one a line
    keep: tuple[str, ...]       # the names the roles declare
    removal: str = ":"          # shell run with $NAME set, for each leftover (":" leaves it to a handler)
    backup: tuple[str, ...] = ()  # paths ({name} filled in) restored if a handler rolls the change back

    def label(self) -> str:
        return f"{self.what}s other than {', '.join(self.keep)}" if self.keep else f"{self.what}s of earlier deploys"

    def probe(self, want_diff: bool = False) -> str:
        return f"{{\n{self.listing}\n}} 2>/dev/null || true"

    def parse(self, out: str) -> list[str]:
        return sorted({name for name in out.split() if name})

    def decide(self, fact: list[str], system: SystemFacts, want_diff: bool = False) -> Decision:
        gone = [name for name in fact if name not in self.keep]
        if not gone:
            return self.ok(f"no {self.what} the inventory no longer has")
        script = "\n".join(f"{assign('NAME', name)}\n{self.removal}" for name in gone)
        return self.change(f"{self.what} {', '.join(gone)} no longer in the inventory: retired", script,
                           backup=tuple(path.format(name=name) for name in gone for path in self.backup))
