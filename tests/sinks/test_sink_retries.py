"""The bulk retry policy, run through the real clients against a scripted local HTTP server.

No client is mocked: ``ElasticsearchSink`` and ``OpenSearchSink`` talk HTTP to a stdlib
server on 127.0.0.1 that answers 429/503 and partial failures on purpose.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from sink_support import Reply, ScriptedServer, bulk_reply, make_alert

from detector.errors import AlertRejectedError, ConfigError, SinkError
from detector.sinks.bulk import BulkSink
from detector.sinks.config import ElasticsearchSinkConfig, OpenSearchSinkConfig, RetryConfig
from detector.sinks.elasticsearch import ElasticsearchSink
from detector.sinks.opensearch import OpenSearchSink

FAST = RetryConfig(max_retries=3, backoff_initial=0.001, backoff_max=0.01)

SinkFactory = Callable[[str], BulkSink]


def _es(url: str) -> BulkSink:
    return ElasticsearchSink(ElasticsearchSinkConfig(hosts=[url], retry=FAST, request_timeout=5))


def _os(url: str) -> BulkSink:
    return OpenSearchSink(OpenSearchSinkConfig(hosts=[url], retry=FAST, request_timeout=5))


FACTORIES = [pytest.param(_es, id="elasticsearch"), pytest.param(_os, id="opensearch")]


@pytest.mark.parametrize("factory", FACTORIES)
async def test_throttling_and_outage_are_retried_until_stored(factory: SinkFactory) -> None:
    """429 and 503 on the request, then a partial 429, end with every alert stored.

    Only the item that failed is sent again, so the retried request carries one id.
    """
    alerts = [make_alert(1), make_alert(2)]
    script = [
        Reply(429, {"error": {"type": "es_rejected_execution_exception"}, "status": 429}),
        Reply(503, {"error": {"type": "unavailable"}, "status": 503}),
        bulk_reply(201, 429),
        bulk_reply(201),
    ]
    with ScriptedServer(script).running() as server:
        sink = factory(server.url)
        try:
            result = await sink.write_batch(alerts)
        finally:
            await sink.close()
    assert result.attempts == 4
    assert result.created == [alerts[0].id, alerts[1].id]
    assert result.rejected == {}
    ids = [a.id for a in alerts]
    assert server.bulk_ids() == [ids, ids, ids, [alerts[1].id]]


@pytest.mark.parametrize("factory", FACTORIES)
async def test_persistent_outage_raises_sink_error_after_the_bound(factory: SinkFactory) -> None:
    """A server that keeps answering 503 gets 1 + max_retries requests, then SinkError."""
    with ScriptedServer([Reply(503, {"error": "down"})]).running() as server:
        sink = factory(server.url)
        try:
            with pytest.raises(SinkError, match="after 4 attempts"):
                await sink.write([make_alert(1)])
        finally:
            await sink.close()
    assert len(server.bulk_ids()) == FAST.max_retries + 1


@pytest.mark.parametrize("factory", FACTORIES)
async def test_duplicates_are_success_and_mapping_errors_are_rejections(
    factory: SinkFactory,
) -> None:
    """409 counts as stored; a 400 item is reported by id and never retried."""
    alerts = [make_alert(1), make_alert(2), make_alert(3)]
    with ScriptedServer([bulk_reply(201, 409, 400)]).running() as server:
        sink = factory(server.url)
        try:
            with pytest.raises(AlertRejectedError) as info:
                await sink.write(alerts)
        finally:
            await sink.close()
    assert list(info.value.rejected) == [alerts[2].id]
    assert "document_parsing_exception" in info.value.rejected[alerts[2].id]
    assert len(server.bulk_ids()) == 1
    assert not isinstance(info.value, SinkError)


@pytest.mark.parametrize("factory", FACTORIES)
async def test_connection_refused_is_backpressure(factory: SinkFactory) -> None:
    """Nothing listening on the port: retried, then SinkError (offsets stay uncommitted)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = factory(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(SinkError, match="not stored"):
            await sink.write([make_alert(1)])
    finally:
        await sink.close()


@pytest.mark.parametrize("factory", FACTORIES)
async def test_rejected_request_is_not_retried(factory: SinkFactory) -> None:
    """A 401 on the whole request is not transient: one request, then SinkError."""
    with ScriptedServer(
        [Reply(401, {"error": {"type": "security_exception"}})]
    ).running() as server:
        sink = factory(server.url)
        try:
            with pytest.raises(SinkError, match="401"):
                await sink.write([make_alert(1)])
        finally:
            await sink.close()
    assert len(server.bulk_ids()) == 1


async def test_elasticsearch_compat_refusal_names_the_client_rule() -> None:
    """An ES 8 server's refusal of ``compatible-with=9`` becomes a ConfigError naming the fix."""
    refusal = Reply(
        400,
        {
            "error": {
                "type": "media_type_header_exception",
                "reason": "Invalid media-type value on headers [Accept, Content-Type]",
            },
            "status": 400,
        },
    )
    with ScriptedServer([refusal]).running() as server:
        sink = _es(server.url)
        try:
            with pytest.raises(ConfigError, match=r"elasticsearch>=8\.13,<9"):
                await sink.ensure_setup()
        finally:
            await sink.close()
    assert "compatible-with=" in server.requests[0].headers.get("accept", "")


async def test_in_batch_duplicate_ids_are_sent_once() -> None:
    """The same alert twice in one batch is one bulk item (a 409 against itself is avoided)."""
    with ScriptedServer([bulk_reply(201)]).running() as server:
        sink = _os(server.url)
        try:
            result = await sink.write_batch([make_alert(5), make_alert(5)])
        finally:
            await sink.close()
    assert result.created == [make_alert(5).id]
    assert server.bulk_ids() == [[make_alert(5).id]]


async def test_closed_sink_refuses_writes() -> None:
    """After close, write raises SinkError rather than dropping alerts; close is idempotent."""
    sink = _os("http://127.0.0.1:9")
    await sink.close()
    await sink.close()
    with pytest.raises(SinkError, match="closed"):
        await sink.write([make_alert(1)])
