"""A loopback Confluent-compatible schema registry for the client and outage tests.

It answers ``GET /schemas/ids/{id}`` from a dict the test fills (and ``/schemas/types``),
fails the first ``outage`` requests with 503 (a registry that blinks), can require an
``Authorization`` header and serve HTTPS, and records what it was asked.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from collections.abc import Mapping
from typing import Any

from http_support import LoopbackServer, QuietHandler

_PATH = re.compile(r"^/schemas/ids/(\d+)$")


class FakeRegistry(LoopbackServer):
    """Serves ``schemas`` (id -> Avro definition); other ids get Confluent's 404 (40403)."""

    def __init__(
        self,
        schemas: Mapping[int, Any],
        *,
        outage: int = 0,
        authorization: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.schemas = dict(schemas)
        self.outage = outage
        self.failures = 0  # 503 answers given
        self.paths: list[str] = []
        self.authorization: list[str | None] = []
        lock = threading.Lock()
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                with lock:
                    outer.paths.append(self.path)
                    outer.authorization.append(self.headers.get("Authorization"))
                    failing = outer.failures < outer.outage
                    outer.failures += failing
                match = _PATH.match(self.path)
                granted = (
                    authorization is None or self.headers.get("Authorization") == authorization
                )
                if not granted:
                    status, body = 401, {"error_code": 40101, "message": "Unauthorized"}
                elif failing:
                    status, body = 503, {"error_code": 50301, "message": "unavailable"}
                elif match and int(match.group(1)) in outer.schemas:
                    definition = outer.schemas[int(match.group(1))]
                    status, body = 200, {"schema": json.dumps(definition)}
                elif self.path == "/schemas/types":
                    status, body = 200, ["AVRO", "JSON", "PROTOBUF"]
                elif match:
                    status, body = 404, {"error_code": 40403, "message": "Schema not found"}
                else:
                    status, body = 404, {"message": "HTTP 404 Not Found"}
                payload = json.dumps(body).encode()
                self.send_payload(status, [("Content-Type", "application/json")], payload)

        super().__init__(Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.url = self.url.replace("http://", "https://")
