"""Data types and ports shared by every layer (L2 of DESIGN.md section 3)."""

from detector.models.alerts import Alert, RuleInfo, Suppression, alert_id
from detector.models.codec import (
    MatchBatch,
    RoutedMatch,
    Watermark,
    decode_matches_record,
    encode_batch,
    encode_routed,
    encode_watermark,
    match_from_dict,
    match_to_dict,
)
from detector.models.deadletter import DeadLetter
from detector.models.events import (
    FAMILIES,
    NO_ORIGIN,
    SOURCES,
    Event,
    Family,
    LogSource,
    SourceName,
    time_implausible,
)
from detector.models.matches import Match
from detector.models.ports import Sink
from detector.models.records import WIRE_FORMATS, Origin, RawRecord, WireFormat

__all__ = [
    "FAMILIES",
    "NO_ORIGIN",
    "SOURCES",
    "WIRE_FORMATS",
    "Alert",
    "DeadLetter",
    "Event",
    "Family",
    "LogSource",
    "Match",
    "MatchBatch",
    "Origin",
    "RawRecord",
    "RoutedMatch",
    "RuleInfo",
    "Sink",
    "SourceName",
    "Suppression",
    "Watermark",
    "WireFormat",
    "alert_id",
    "decode_matches_record",
    "encode_batch",
    "encode_routed",
    "encode_watermark",
    "match_from_dict",
    "match_to_dict",
    "time_implausible",
]
