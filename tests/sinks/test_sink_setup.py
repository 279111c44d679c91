"""Index setup at start: on by default, and off when the template is managed elsewhere."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sink_support import Reply, ScriptedServer

from detector.sinks.bulk import BulkSink
from detector.sinks.config import ElasticsearchSinkConfig, OpenSearchSinkConfig
from detector.sinks.elasticsearch import ElasticsearchSink
from detector.sinks.opensearch import OpenSearchSink

SinkFactory = Callable[[str, bool], BulkSink]


def _es(url: str, setup: bool) -> BulkSink:
    return ElasticsearchSink(ElasticsearchSinkConfig(hosts=[url], setup=setup))


def _os(url: str, setup: bool) -> BulkSink:
    return OpenSearchSink(OpenSearchSinkConfig(hosts=[url], setup=setup))


FACTORIES = [pytest.param(_es, id="elasticsearch"), pytest.param(_os, id="opensearch")]


@pytest.mark.parametrize("factory", FACTORIES)
async def test_setup_installs_the_template_and_creates_the_first_index(
    factory: SinkFactory,
) -> None:
    """By default the template is put, the alias looked up and, when missing, created."""
    script = [Reply(200, {"acknowledged": True}), Reply(404), Reply(200, {"acknowledged": True})]
    with ScriptedServer(script).running() as server:
        sink = factory(server.url, True)
        try:
            await sink.ensure_setup()
        finally:
            await sink.close()
    calls = [(r.method, r.path.split("?")[0]) for r in server.requests]
    assert calls == [
        ("PUT", "/_index_template/detector-alerts"),
        ("HEAD", "/detector-alerts"),
        ("PUT", "/detector-alerts-000001"),
    ]


@pytest.mark.parametrize("factory", FACTORIES)
async def test_setup_false_sends_nothing(factory: SinkFactory) -> None:
    """``setup: false`` (no manage-template privilege): start-up touches no index API."""
    with ScriptedServer([Reply(500, {"error": "must not be called"})]).running() as server:
        sink = factory(server.url, False)
        try:
            await sink.ensure_setup()
        finally:
            await sink.close()
    assert server.requests == []
