"""A rule matching one event."""

from __future__ import annotations

from dataclasses import dataclass

from detector.models.alerts import RuleInfo
from detector.models.events import Event


@dataclass(frozen=True, slots=True)
class Match:
    """Rule ``rule`` matched ``event``; ``selections`` names the detection items that held."""

    rule: RuleInfo
    event: Event
    selections: tuple[str, ...] = ()
