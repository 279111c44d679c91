"""A rule matching one event."""

from __future__ import annotations

from typing import NamedTuple

from detector.models.alerts import RuleInfo
from detector.models.events import Event


class Match(NamedTuple):
    """Rule ``rule`` matched ``event``; ``selections`` names the detection items that held.

    Immutable. A named tuple rather than a frozen dataclass, as :class:`Event`: one is
    built per match in the detect stage and per routed match decoded in the correlate
    stage, where a frozen dataclass's ``__init__`` cost several times as much
    (``bench/bench_codec.py``).
    """

    rule: RuleInfo
    event: Event
    selections: tuple[str, ...] = ()
