"""Compression of the matches topic's batch records, and inflation bounded in size.

A batch record is compressed once by the detect stage and inflated once by the correlate
stage, so both ends weigh the same: zstd at level 1 takes about a fifth of the CPU of
zlib at level 1 on these records, both ways, and writes about half the bytes
(``bench/bench_codec.py``). Inflation never produces more than a given limit: a record
is no trust boundary (docs/hostile-input.md), and one forged record of a few KiB must
not make the correlate stage allocate gigabytes.
"""

from __future__ import annotations

import zlib

import zstandard

# One context each, reused: creating one per record costs more than compressing a small
# record. Neither is thread-safe; both stages encode and decode on their event loop. The
# frame states its inflated size (zstd's default) and a checksum of it.
_COMPRESSOR = zstandard.ZstdCompressor(level=1, write_checksum=True)
_DECOMPRESSOR = zstandard.ZstdDecompressor()


def deflate(data: bytes) -> bytes:
    """``data`` as one zstd frame (level 1) stating its inflated size and checksum."""
    return _COMPRESSOR.compress(data)


def inflate(data: bytes, limit: int) -> bytes:
    """The bytes of the single zstd frame ``data``; raises ``ValueError`` when it is not
    one, when it does not state its inflated size or states more than ``limit`` bytes
    (nothing is inflated then), or when its content does not match what it states."""
    try:
        size = zstandard.frame_content_size(data)
    except zstandard.ZstdError as exc:
        raise ValueError(f"not a zstd frame: {exc}") from exc
    if size < 0:
        raise ValueError("the zstd frame does not state its inflated size")
    if size > limit:
        raise ValueError(f"the zstd frame inflates to {size:,} bytes, above {limit:,}")
    try:
        # with the size stated, zstd inflates into a buffer of exactly that size
        return _DECOMPRESSOR.decompress(data, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise ValueError(f"the zstd frame does not decompress: {exc}") from exc


def inflate_zlib(data: bytes, limit: int) -> bytes:
    """The bytes of the zlib stream ``data``; raises ``ValueError`` when it is corrupt or
    truncated, or inflates to more than ``limit`` bytes (it stops there)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"the zlib stream does not decompress: {exc}") from exc
    if len(out) > limit:
        raise ValueError(f"the zlib stream inflates to more than {limit:,} bytes")
    if not inflater.eof:
        raise ValueError("the zlib stream does not decompress: it is truncated")
    return out
