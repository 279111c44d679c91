"""Loopback HTTP servers for the tests: a threaded runner, a quiet handler, a scripted server.

Every server is a real stdlib ``http.server`` on 127.0.0.1 (a free port) in a daemon thread,
so the code under test runs its whole HTTP client stack: serialization, headers, connection
pooling, timeouts, status codes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietHandler(BaseHTTPRequestHandler):
    """An HTTP/1.1 (keep-alive) request handler that logs nothing: the base of test handlers."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing, so test output stays readable."""

    def read_body(self) -> bytes:
        """The request body: ``Content-Length`` bytes, empty without that header."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_payload(self, status: int, headers: Iterable[tuple[str, str]], payload: bytes) -> None:
        """Answer ``status`` with ``headers``, a Content-Length and ``payload`` (none for HEAD)."""
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


class LoopbackServer:
    """Serves a ``BaseHTTPRequestHandler`` subclass on 127.0.0.1, at ``url``, while running."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[Self]:
        """Serve in a daemon thread for the duration of the block, then stop and close."""
        thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join()


@dataclass
class Reply:
    """One scripted HTTP answer.

    A ``str`` or ``bytes`` body is sent as it is, as ``text/plain``; ``None`` is an empty
    ``application/json`` answer; anything else is JSON-encoded as ``application/json``.
    """

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[str, bytes]:
        """The content type and the bytes of the body."""
        if isinstance(self.body, str):
            return "text/plain", self.body.encode()
        if isinstance(self.body, bytes):
            return "text/plain", self.body
        if self.body is None:
            return "application/json", b""
        return "application/json", json.dumps(self.body).encode()


@dataclass
class Request:
    """One request a server received; header names are lowercased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The JSON body."""
        return json.loads(self.body)


class ScriptedServer(LoopbackServer):
    """Answers every request with a script of replies (the last one repeats) and records it.

    GET, POST, PUT, HEAD and DELETE are all answered; ``headers`` are added to every answer.
    """

    def __init__(
        self, replies: Sequence[Reply], *, headers: Mapping[str, str] | None = None
    ) -> None:
        self.replies = list(replies)
        self.requests: list[Request] = []
        extra = dict(headers or {})
        outer = self

        class Handler(QuietHandler):
            def _answer(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append(Request(self.command, self.path, headers, self.read_body()))
                reply = outer.replies.pop(0) if len(outer.replies) > 1 else outer.replies[0]
                content_type, payload = reply.encoded()
                answer = [("Content-Type", content_type), *extra.items(), *reply.headers.items()]
                self.send_payload(reply.status, answer, payload)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer  # noqa: N815

        super().__init__(Handler)

    @property
    def bodies(self) -> list[Any]:
        """The JSON body of every request, in order."""
        return [r.json for r in self.requests]
