"""Plan: desired state vs facts, computed locally. Every resource gets a Decision with a reason."""

from __future__ import annotations

from dataclasses import dataclass

from ..resources import Decision, Resource, SystemFacts


@dataclass
class Plan:
    decisions: list[Decision]
    left_pending: tuple[str, ...] = ()  # markers of handlers an interrupted earlier run did not run
    health: tuple[bool, str] | None = None  # the site's answer while the facts were read

    @property
    def changes(self) -> list[Decision]:
        return [d for d in self.decisions if d.changed]


def make_plan(resources: list[Resource], system: SystemFacts, facts: list, want_diff: bool = False) -> Plan:
    return Plan([r.decide(f, system, want_diff) for r, f in zip(resources, facts)], system.pending,
                system.health)
