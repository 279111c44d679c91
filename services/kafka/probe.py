"""A health probe that speaks the Kafka wire protocol (no client library needed)."""

from __future__ import annotations

import socket
import struct

from services.config import HOST


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return buf


def _kafka_call(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> bytes:
    client = b"detector-services"
    header = struct.pack(">hhih", api_key, version, corr, len(client)) + client
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    resp = _recv_exact(sock, size)
    (got,) = struct.unpack(">i", resp[:4])
    if got != corr:
        raise ConnectionError(f"correlation id {got} != {corr}")
    return resp[4:]


def kafka_metadata(port: int) -> tuple[bool, str]:
    """ApiVersions v0, then Metadata v4 with no topics: the broker must list itself."""
    try:
        with socket.create_connection((HOST, port), timeout=3) as sock:
            sock.settimeout(3)
            resp = _kafka_call(sock, 18, 0, 1, b"")  # ApiVersions v0
            (err, n) = struct.unpack(">hi", resp[:6])
            if err != 0:
                return False, f"ApiVersions error {err}"
            ranges = {}
            for i in range(n):
                k, lo, hi = struct.unpack(">hhh", resp[6 + 6 * i : 12 + 6 * i])
                ranges[k] = (lo, hi)
            lo, hi = ranges.get(3, (0, -1))
            if not lo <= 4 <= hi:
                return True, f"ApiVersions ok (Metadata v{lo}-v{hi})"
            # Metadata v4: topics = [] (none), allow_auto_topic_creation = false
            resp = _kafka_call(sock, 3, 4, 2, struct.pack(">ib", 0, 0))
            (_, nbrokers) = struct.unpack(">ii", resp[:8])
            if nbrokers < 1:
                return False, "metadata lists no broker yet"
            return True, f"metadata ok ({nbrokers} broker)"
    except (OSError, ConnectionError, struct.error) as exc:
        return False, f"{type(exc).__name__}: {exc}"
