"""A JSON object kept as its serialized bytes until something reads it.

The correlate stage receives each routed match's ECS document as evidence an alert may
embed; most never reach an alert. Parsing them all (and serializing them again into
checkpoints) was most of a routed match's cost, so they stay bytes: read as a mapping
they parse once, and :func:`json_default` writes them back verbatim (an
``orjson.Fragment``) without parsing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import orjson

#: The value of a field a document does not hold (``None`` is a legitimate JSON value).
ABSENT: Any = object()
#: Shared by the documents without looked-up fields (a dict each would be 64 bytes).
_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})


class SerializedDocument(Mapping[str, Any]):
    """A read-only mapping over ``data``, the JSON text of an object, parsed on first read.

    ``data`` must be one JSON object (the codec checks its outline; a record forged past
    that raises ``ValueError`` when first read). ``fields`` holds, by field name, what a
    field look-up (``detector.detect.correlation.fields.lookup``) gives in the parsed
    object, :data:`ABSENT` included: the detect stage looked up the fields its stateful
    rule reads, so reading those needs no parse.
    """

    __slots__ = ("_doc", "data", "fields")

    def __init__(self, data: bytes, fields: Mapping[str, Any] | None = None) -> None:
        self.data = data
        self.fields: Mapping[str, Any] = fields or _NO_FIELDS
        self._doc: dict[str, Any] | None = None

    def parsed(self) -> dict[str, Any]:
        """The object as a plain dict (parsed once, then shared: do not modify it)."""
        doc = self._doc
        if doc is None:
            try:
                loaded = orjson.loads(self.data)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"serialized document is not JSON: {exc}") from exc
            if not isinstance(loaded, dict):
                raise ValueError("serialized document is not a JSON object")
            doc = self._doc = loaded
        return doc

    def __getitem__(self, key: str) -> Any:
        return self.parsed()[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, else ``default``."""
        return self.parsed().get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.parsed())

    def __len__(self) -> int:
        return len(self.parsed())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SerializedDocument) and other.data == self.data:
            return True
        return isinstance(other, Mapping) and self.parsed() == dict(other.items())

    __hash__ = None  # type: ignore[assignment]  # a mapping: not hashable

    def __repr__(self) -> str:
        return f"SerializedDocument({self.data[:60]!r}...)"


def plain(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` as a plain dict: a :class:`SerializedDocument` parsed, a dict as is."""
    if type(doc) is dict:
        return doc
    if isinstance(doc, SerializedDocument):
        return doc.parsed()
    return dict(doc)


def json_default(value: Any) -> Any:
    """An ``orjson`` ``default=``: a :class:`SerializedDocument` as its own bytes."""
    if isinstance(value, SerializedDocument):
        return orjson.Fragment(value.data)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
