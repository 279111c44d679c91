"""Decompression bombs in the matches topic: a batch record is refused before it inflates
beyond :data:`~detector.models.codec.MAX_INFLATED_BYTES`, whatever its frame claims."""

from __future__ import annotations

import tracemalloc
import zlib

import pytest
import zstandard

from detector.models import decode_matches_record
from detector.models.codec import BATCH_MAGIC, BATCH_MAGIC_V3, MAX_INFLATED_BYTES

BOMB = 4 * MAX_INFLATED_BYTES


def _peak(record: bytes, reason: str) -> int:
    """Decode ``record``, expect ``ValueError`` naming ``reason``; the peak of memory
    allocated meanwhile, in bytes."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=reason):
            decode_matches_record(record)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _zeros(compress: zstandard.ZstdCompressor, size: int) -> bytes:
    """A zstd frame of ``size`` zero bytes, written a chunk at a time (never held whole)."""
    chunk = bytes(1 << 20)
    compressor = compress.compressobj(size=size)
    out = [compressor.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join([*out, compressor.flush()])


def test_zstd_bomb_stating_its_size_is_refused_before_it_inflates() -> None:
    """A version 4 record of a few KiB inflating to 256 MiB (its frame says so) is refused
    from its frame header: nothing near its size is allocated."""
    record = BATCH_MAGIC + _zeros(zstandard.ZstdCompressor(level=3), BOMB)
    assert len(record) < 64 * 1024
    assert _peak(record, "above") < 1024 * 1024


def test_zstd_bomb_hiding_its_size_is_refused() -> None:
    """A version 4 record whose frame does not state its inflated size is refused
    without inflating it (the detect stage always states it)."""
    compressor = zstandard.ZstdCompressor(level=3, write_content_size=False)
    record = BATCH_MAGIC + _zeros(compressor, BOMB)
    assert _peak(record, "does not state its inflated size") < 1024 * 1024


def test_zstd_frame_lying_about_its_size_is_refused() -> None:
    """A frame stating a small size but holding more does not decompress (zstd checks
    the content against the size it allocated for)."""
    honest = zstandard.ZstdCompressor(level=1).compress(bytes(4096))
    liar = zstandard.ZstdCompressor(level=1).compress(bytes(16))
    # the liar's header (with its stated size) in front of the honest frame's blocks
    header = zstandard.frame_header_size(liar)
    forged = liar[:header] + honest[zstandard.frame_header_size(honest) :]
    _peak(BATCH_MAGIC + forged, "does not decompress")


def test_zlib_bomb_in_a_version_3_record_stops_at_the_limit() -> None:
    """A version 3 (zlib) record inflating to 256 MiB stops once it passes the limit:
    zlib's output buffer grows by doubling, so at most twice the limit is allocated,
    never the bomb's size."""
    inflater = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    data = b"".join([*(inflater.compress(chunk) for _ in range(BOMB >> 20)), inflater.flush()])
    peak = _peak(BATCH_MAGIC_V3 + data, "more than")
    assert peak < 2 * MAX_INFLATED_BYTES + 16 * 1024 * 1024 < BOMB
