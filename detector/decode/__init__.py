"""decode layer (L3): bytes to Python objects, JSON and Avro, under size and depth limits.

Pure and synchronous. Every bad input raises :class:`detector.errors.DecodeError`
with a machine-readable reason.
"""

from detector.decode.avrowire import (
    AvroDecoder,
    AvroSchema,
    SchemaStore,
    encode_confluent,
    encode_single_object,
    read_container,
)
from detector.decode.depth import exceeds_depth
from detector.decode.jsonwire import decode_json
from detector.decode.limits import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    ContainerLimits,
    DecodeLimits,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "AvroDecoder",
    "AvroSchema",
    "ContainerLimits",
    "DecodeLimits",
    "SchemaStore",
    "decode_json",
    "encode_confluent",
    "encode_single_object",
    "exceeds_depth",
    "read_container",
]
