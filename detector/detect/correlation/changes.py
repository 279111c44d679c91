"""What changed in an engine's keyed state since the last changelog (per-key checkpoints).

The correlate stage writes one changelog record per changed group key (or first-seen
term) after each batch; :class:`ChangedKeys` remembers which keys those are. Replay does
not checkpoint and does not track changes.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from detector.detect.correlation.stats import COUNTERS

K = TypeVar("K", bound=Hashable)


class ChangedKeys(Generic[K]):
    """Per rule, the keys changed since the last :meth:`take`, in the order of their
    last change (the order a restore re-creates them in)."""

    __slots__ = ("_keys",)

    def __init__(self, rules: int) -> None:
        self._keys: list[dict[K, None]] = [{} for _ in range(rules)]

    def touch(self, ci: int, key: K) -> None:
        """Note that ``key`` of rule ``ci`` changed (added, updated or removed)."""
        keys = self._keys[ci]
        keys.pop(key, None)
        keys[key] = None

    def take(self, ci: int, live: Mapping[K, Any], everything: bool = False) -> list[K]:
        """The changed keys of rule ``ci`` (with ``everything``: the removed ones, then
        every key of ``live``), forgetting them."""
        keys, self._keys[ci] = self._keys[ci], {}
        if everything:
            return [*(k for k in keys if k not in live), *live]
        return list(keys)


def keys_to_write(
    changed: ChangedKeys[K] | None, ci: int, live: Mapping[K, Any], everything: bool
) -> list[K]:
    """The keys of rule ``ci`` a changelog writes: the tracked changes (taking them), or,
    untracked, every key of ``live`` when ``everything`` and none otherwise."""
    if changed is not None:
        return changed.take(ci, live, everything)
    return list(live) if everything else []


def counters_document(ids: Sequence[str], counters: Mapping[str, list[int]]) -> dict[str, Any]:
    """Per-rule counters by rule id, as JSON-ready data."""
    return {rid: {name: counters[name][ci] for name in COUNTERS} for ci, rid in enumerate(ids)}


def load_counters(
    index: Mapping[str, int], counters: Mapping[str, list[int]], document: Any
) -> None:
    """Set ``counters`` from :func:`counters_document` output; rules not in ``index``
    are skipped. Raises ``AttributeError``/``TypeError``/``ValueError`` when malformed."""
    for rule_id, values in document.items():
        ci = index.get(rule_id)
        if ci is not None:
            for name in COUNTERS:
                counters[name][ci] = int(values.get(name, 0))
