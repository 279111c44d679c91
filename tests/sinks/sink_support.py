"""Test support for the sink tests: alert builder, a scripted HTTP server, an Elasticsearch proxy.

Both servers are :mod:`http_support` loopback servers (real HTTP on 127.0.0.1), so the
official clients run their whole stack: serialization, headers, connection pooling, parsing.
"""

from __future__ import annotations

import http.client
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import http_support
from http_support import LoopbackServer, QuietHandler, Reply

from detector.models import Alert, RuleInfo, alert_id

RULE = RuleInfo(
    id="0b5a3c4e-1111-4222-8333-944455556666",
    title="ECR image pulled from an unusual address",
    level="high",
    description="test rule",
    tags=("attack.t1525", "attack.persistence"),
)


def make_alert(n: int, *, flat_user: bool = False, secret: str = "hunter2") -> Alert:
    """Alert number ``n``: one source event with ECS fields and a native raw record.

    ``flat_user`` puts a string where ECS (and the template) has the ``user`` object:
    the shape of a mapping conflict that the engine refuses with 400.
    """
    event_id = f"evt-{n}"
    return Alert(
        id=alert_id(RULE.id, event_id),
        timestamp=datetime(2025, 1, 2, 3, 4, n % 60, tzinfo=UTC),
        rule=RULE,
        reason=f"alice pulled image {n}",
        events=(
            {
                "@timestamp": "2025-01-02T03:04:05Z",
                "event": {"id": event_id, "dataset": "aws.cloudtrail", "action": "BatchGetImage"},
                "user": "alice" if flat_user else {"name": "alice"},
                "source": {"ip": "203.0.113.7"},
                "cloud": {"provider": "aws", "region": "eu-west-1"},
            },
        ),
        raw_events=(
            {
                "eventID": event_id,
                "eventSource": "ecr.amazonaws.com",
                "requestParameters": {"repositoryName": "app", f"attackerKey{n}": secret},
            },
        ),
    )


class ScriptedServer(http_support.ScriptedServer):
    """A :class:`http_support.ScriptedServer` that plays an Elasticsearch-compatible engine.

    Answers carry ``X-Elastic-Product: Elasticsearch`` so the official client accepts them.
    """

    def __init__(self, replies: list[Reply]) -> None:
        super().__init__(replies, headers={"X-Elastic-Product": "Elasticsearch"})

    def bulk_ids(self) -> list[list[str]]:
        """The ``_id`` of every ``create`` action of every ``_bulk`` request, per request."""
        out: list[list[str]] = []
        for req in self.requests:
            if req.path.split("?")[0].endswith("/_bulk"):
                lines = [json.loads(x) for x in req.body.splitlines() if x.strip()]
                out.append([ln["create"]["_id"] for ln in lines if "create" in ln])
        return out


def bulk_reply(*statuses: int) -> Reply:
    """A 200 bulk response whose items have ``statuses`` in order."""
    items = []
    for status in statuses:
        result: dict[str, Any] = {"_index": "x", "status": status}
        if status >= 300:
            kind = {
                409: "version_conflict_engine_exception",
                429: "es_rejected_execution_exception",
                400: "document_parsing_exception",
            }.get(status, "unavailable_shards_exception")
            result["error"] = {"type": kind, "reason": f"scripted {status}"}
        items.append({"create": result})
    return Reply(200, {"took": 1, "errors": any(s >= 300 for s in statuses), "items": items})


_COMPAT = re.compile(r"application/vnd\.elasticsearch\+([\w-]+)\s*;\s*compatible-with=\d+")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class ElasticsearchFacadeProxy(LoopbackServer):
    """A loopback proxy that lets the ``elasticsearch`` client talk to a real OpenSearch node.

    On the way in it rewrites ``application/vnd.elasticsearch+X; compatible-with=N`` to
    ``application/X`` (OpenSearch does not know Elastic's versioned media types); on the way
    out it adds ``X-Elastic-Product: Elasticsearch`` (the client's product check). Nothing
    else is touched: paths, query strings and bodies reach OpenSearch byte for byte, and
    OpenSearch's status codes and bodies reach the client unchanged. ``compat_seen`` records
    the versioned media types the client sent.
    """

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self.compat_seen: list[str] = []
        self.paths: list[str] = []
        outer = self

        class Handler(QuietHandler):
            def _forward(self) -> None:
                body = self.read_body() or None
                headers = {}
                for key, value in self.headers.items():
                    if key.lower() in _HOP or key.lower() == "host":
                        continue
                    if key.lower() in ("accept", "content-type"):
                        outer.compat_seen.extend(m.group(0) for m in _COMPAT.finditer(value))
                        headers[key] = _COMPAT.sub(r"application/\1", value)
                    else:
                        headers[key] = value
                outer.paths.append(f"{self.command} {self.path}")
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    payload = resp.read()
                    answer = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP]
                    answer.append(("X-Elastic-Product", "Elasticsearch"))
                    self.send_payload(resp.status, answer, payload)
                finally:
                    conn.close()

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _forward  # noqa: N815

        super().__init__(Handler)
