"""JSON decoding: orjson under size, depth and encoding rules, with reason codes."""

from __future__ import annotations

import pytest

from detector.decode import DecodeLimits, decode_json, exceeds_depth
from detector.errors import DecodeError


def _reason(value: bytes, limits: DecodeLimits | None = None) -> str:
    with pytest.raises(DecodeError) as info:
        decode_json(value, limits or DecodeLimits())
    assert info.value.stage == "decode"
    return info.value.reason


def test_valid_document() -> None:
    """A well-formed object decodes to the same Python value."""
    assert decode_json(b'{"a": [1, "\\u00e9", null]}') == {"a": [1, "\u00e9", None]}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty"),
        (b"   ", "invalid_json"),
        (b'{"a": 1', "invalid_json"),
        (b"NaN", "invalid_json"),
        (b'{"a": 1} trailing', "invalid_json"),
        (b'"\xff"', "invalid_utf8"),
        (b'"\xed\xa0\x80"', "invalid_utf8"),  # a surrogate encoded as UTF-8 bytes
        (b'"\\ud800"', "invalid_utf8"),  # an escaped lone high surrogate
        (b'"\\udc00x"', "invalid_utf8"),  # an escaped lone low surrogate
    ],
)
def test_bad_input_reasons(value: bytes, reason: str) -> None:
    """Each kind of bad input has its own reason code."""
    assert _reason(value) == reason


def test_size_limit_is_configurable() -> None:
    """Records over ``max_bytes`` are rejected before parsing; at the limit they pass."""
    doc = b'{"k": "' + b"x" * 100 + b'"}'
    assert decode_json(doc, DecodeLimits(max_bytes=len(doc))) == {"k": "x" * 100}
    assert _reason(doc, DecodeLimits(max_bytes=len(doc) - 1)) == "too_large"


def test_default_size_limit_is_one_mebibyte() -> None:
    """The default limit is 1 MiB."""
    assert DecodeLimits().max_bytes == 1 << 20
    assert _reason(b'"' + b"x" * (1 << 20) + b'"') == "too_large"


@pytest.mark.parametrize(("opener", "closer"), [(b"[", b"]"), (b'{"a":', b"}")])
def test_depth_limit_64(opener: bytes, closer: bytes) -> None:
    """64 nested levels decode; 65 are ``too_deep`` (arrays and objects alike)."""
    assert decode_json(opener * 64 + b"1" + closer * 64) is not None
    assert _reason(opener * 65 + b"1" + closer * 65) == "too_deep"


def test_very_deep_input_is_too_deep_not_a_crash() -> None:
    """Nesting beyond orjson's own limit is also ``too_deep``."""
    assert _reason(b"[" * 5000 + b"]" * 5000, DecodeLimits(max_depth=64)) == "too_deep"


def test_brackets_inside_strings_do_not_count() -> None:
    """Many brackets in string values are not nesting: the record decodes."""
    doc = b'{"s": "' + b"{[" * 200 + b'", "t": [[1]]}'
    assert decode_json(doc)["t"] == [[1]]


def test_wide_but_shallow_documents_pass() -> None:
    """Hundreds of sibling containers at depth 2 are fine."""
    doc = b"[" + b",".join([b'{"a": []}'] * 500) + b"]"
    assert len(decode_json(doc)) == 500


def test_exceeds_depth_counts_levels() -> None:
    """``exceeds_depth`` counts the top-level container as depth 1; scalars are depth 0."""
    assert not exceeds_depth(1, 0)
    assert not exceeds_depth({"a": [1]}, 2)
    assert exceeds_depth({"a": [1]}, 1)
    assert exceeds_depth([[[[]]]], 3)


@pytest.mark.parametrize(("levels", "too_deep"), [(32, False), (33, True), (40, True)])
def test_depth_limit_counts_objects_and_arrays_together(levels: int, too_deep: bool) -> None:
    """Alternating object/array nesting counts both kinds: 2 x 32 levels pass, 2 x 33 do not.

    Neither kind alone exceeds the limit here, so the bound on the brackets must add them.
    """
    doc = b'{"a":[' * levels + b"1" + b"]}" * levels
    if too_deep:
        assert _reason(doc) == "too_deep"
    else:
        assert decode_json(doc) is not None


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
def test_buffers_are_checked_like_bytes(wrap: type) -> None:
    """bytearray and memoryview input obey the same depth limit as bytes."""
    assert decode_json(wrap(b"[" * 64 + b"]" * 64)) is not None
    assert _reason(wrap(b"[" * 65 + b"]" * 65)) == "too_deep"


def test_documents_made_of_brackets_in_strings_stay_shallow() -> None:
    """A large value packed with brackets inside a string decodes (it nests nothing)."""
    doc = b'{"s": "' + b"{[" * 100_000 + b'"}'
    assert decode_json(doc)["s"] == "{[" * 100_000
