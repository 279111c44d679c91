"""Garbage-collector settings for the per-record hot path (replay and ``detector run``)."""

from __future__ import annotations

import gc

#: Allocations between two young-generation collections (CPython's default is 700).
YOUNG_THRESHOLD = 100_000


def tune_collector() -> None:
    """Collect cyclic garbage less often, and never walk what is already built.

    Every record allocates dozens of containers (the decoded record, its ECS document,
    routed matches) that live for a while in replay's reorder buffer or a batch. With
    CPython's defaults the collector runs every few records and walks the same live
    objects again: half of replay's time, and half of the decoding of routed matches
    (``bench/bench_replay.py``, ``bench/bench_pipeline.py``). Records hold no reference
    cycles, so collecting less often loses nothing; cycles are still collected.
    ``gc.freeze`` moves everything built so far (modules, rules, clients) out of every
    later collection, so call it again once start-up has built the rules.
    """
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


def freeze_restored_state() -> None:
    """Move a freshly restored correlate state out of every later collection.

    A partition's state is millions of small containers (a million open windows hold
    about eight million: group lists, entries, evidence documents). They form no reference
    cycles and live until their group closes, so walking them finds nothing, yet every
    full collection of the oldest generation walked them all: a pause of seconds per
    million windows, on the one thread that also serves the detect stage
    (docs/runtime.md, "State at scale"). Frozen objects are still freed by reference
    counting when their group goes; only a reference cycle among them would stay, and the
    engines make none. Everything else built by then (clients, buffered matches) is frozen
    with it, as :func:`tune_collector` does at start-up.
    """
    gc.freeze()
