"""The reorder buffer's checkpoint lists exactly the input positions of its held matches.

:class:`PendingMatches` keeps per-offset bookkeeping so a checkpoint does not walk the
whole buffer; over any sequence of pushes (records of several matches, some never pushed
because they came too late) and releases at rising watermarks, :meth:`positions` equals
the positions read off the buffer's entries one by one.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from detector.detect.correlation.ordering import PendingMatches, Position
from detector.models import Event, LogSource, Match, Origin, RoutedMatch, RuleInfo

RULE = RuleInfo(id="r", title="r")


def _routed(offset: int, index: int, time: float) -> RoutedMatch:
    event = Event(
        id=f"e{offset}-{index}",
        timestamp=time,
        family="cloudtrail",
        logsource=LogSource("aws", "cloudtrail"),
        ecs={},
        raw={},
        origin=Origin(topic="t", partition=0, offset=offset),
    )
    return RoutedMatch("u", "k", Match(rule=RULE, event=event, selections=()), index)


def _expected(buffer: PendingMatches, sizes: dict[int, int]) -> list[int | Position]:
    held: dict[int, list[int]] = {}
    for _, offset, index, _ in buffer._heap:
        held.setdefault(offset, []).append(index)
    out: list[int | Position] = []
    for offset in sorted(held):
        if len(held[offset]) == sizes[offset]:
            out.append(offset)
        else:
            out.extend((offset, i) for i in sorted(held[offset]))
    return out


records = st.lists(
    st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=5), min_size=1, max_size=12
)


@given(records, st.lists(st.floats(0, 110, allow_nan=False), max_size=6))
@settings(max_examples=300, deadline=None)
def test_positions_equal_the_held_entries(times: list[list[float]], marks: list[float]) -> None:
    """After every push and release, positions are the held (offset, index) pairs, a
    bare offset where every match of its record is held."""
    buffer = PendingMatches()
    sizes: dict[int, int] = {}
    marks = sorted(marks)
    for offset, record in enumerate(times):
        sizes[offset] = len(record)
        for index, time in enumerate(record):
            buffer.push(_routed(offset, index, time), offset, index, len(record))
        assert buffer.positions() == _expected(buffer, sizes)
        if marks and offset % 3 == 2:
            buffer.release(marks.pop(0))
            assert buffer.positions() == _expected(buffer, sizes)
    buffer.release(0, drain=True)
    assert buffer.positions() == []
