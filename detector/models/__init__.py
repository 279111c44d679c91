"""Data types and ports shared by every layer (L2 of DESIGN.md section 3)."""

from detector.models.alerts import Alert, RuleInfo, alert_id
from detector.models.codec import (
    RoutedMatch,
    Watermark,
    decode_matches_record,
    encode_routed,
    encode_watermark,
    match_from_dict,
    match_to_dict,
)
from detector.models.deadletter import DeadLetter
from detector.models.events import NO_ORIGIN, Event, LogSource
from detector.models.matches import Match
from detector.models.ports import Sink, Source, StateStore
from detector.models.records import Origin, RawRecord

__all__ = [
    "NO_ORIGIN",
    "Alert",
    "DeadLetter",
    "Event",
    "LogSource",
    "Match",
    "Origin",
    "RawRecord",
    "RoutedMatch",
    "RuleInfo",
    "Sink",
    "Source",
    "StateStore",
    "Watermark",
    "alert_id",
    "decode_matches_record",
    "encode_routed",
    "encode_watermark",
    "match_from_dict",
    "match_to_dict",
]
