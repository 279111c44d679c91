"""The search-engine sinks against the REAL local engine started by ``scripts/services up``.

Two code paths run against the same node:

* ``native``: the sink of the engine that runs locally (``OpenSearchSink`` for OpenSearch,
  ``ElasticsearchSink`` for Elasticsearch);
* ``elasticsearch-client-via-proxy`` (only when the local engine is OpenSearch):
  ``ElasticsearchSink`` with the official ``elasticsearch`` client, through
  :class:`sink_support.ElasticsearchFacadeProxy`, which only rewrites Elastic's versioned
  media types to plain ones and adds the ``X-Elastic-Product`` response header.

What the proxy path proves: our request building through the official client (its
``compatible-with`` headers, the NDJSON bulk body, ``create`` actions with ``_id`` = alert
id, the composable-template, exists and create-index calls), and the client's parsing of a
real node's answers, including real 201/409/400 bulk item semantics, so the retry and
idempotency logic is exercised against genuine responses. What it does NOT prove: anything
specific to an Elasticsearch server: that ES accepts our template and mappings as-is, its
REST-compatibility behaviour, data streams, ES-only field types such as ``flattened``,
security (API keys, TLS, privileges), or ES's own error texts.

Documents are read back with plain ``httpx`` calls to the engine, independent of our code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from sink_support import ElasticsearchFacadeProxy, make_alert

from detector.errors import AlertRejectedError
from detector.sinks.bulk import BulkSink
from detector.sinks.config import ElasticsearchSinkConfig, OpenSearchSinkConfig, RetryConfig
from detector.sinks.documents import TEMPLATE_VERSION, first_index
from detector.sinks.elasticsearch import ElasticsearchSink
from detector.sinks.opensearch import OpenSearchSink

pytestmark = pytest.mark.services

RETRY = RetryConfig(max_retries=2, backoff_initial=0.05, backoff_max=0.2)


@pytest.fixture(params=["native", "elasticsearch-client-via-proxy"])
def sink_url(request: pytest.FixtureRequest, services: Any) -> Iterator[tuple[str, str]]:
    """``(kind, url)`` to build a sink for: the engine itself, or the proxy in front of it."""
    if request.param == "native":
        yield services.search_engine, services.search_url
        return
    # Against a local Elasticsearch this path is redundant but still valid (ES accepts
    # plain media types), so it runs whatever the engine is.
    with ElasticsearchFacadeProxy(services.search_url).running() as proxy:
        yield "elasticsearch", proxy.url


@pytest.fixture
async def engine(services: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client to the engine, for independent reads and clean-up."""
    async with httpx.AsyncClient(base_url=services.search_url, timeout=30) as client:
        yield client


@pytest.fixture
async def sink(sink_url: tuple[str, str], engine: httpx.AsyncClient) -> AsyncIterator[BulkSink]:
    """A sink writing to a fresh alias; its indices and template are deleted afterwards."""
    kind, url = sink_url
    index = f"detector-test-{uuid4().hex[:10]}"
    made: BulkSink
    if kind == "elasticsearch":
        made = ElasticsearchSink(ElasticsearchSinkConfig(hosts=[url], index=index, retry=RETRY))
    else:
        made = OpenSearchSink(OpenSearchSinkConfig(hosts=[url], index=index, retry=RETRY))
    try:
        yield made
    finally:
        await made.close()
        await engine.delete(f"/{index}-*")
        await engine.delete(f"/_index_template/{index}")


async def _get(engine: httpx.AsyncClient, index: str, doc_id: str) -> dict[str, Any]:
    response = await engine.get(f"/{index}/_doc/{doc_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _count(engine: httpx.AsyncClient, index: str, query: dict[str, Any] | None = None) -> int:
    await engine.post(f"/{index}/_refresh")
    response = await engine.post(f"/{index}/_count", json={"query": query or {"match_all": {}}})
    assert response.status_code == 200, response.text
    return int(response.json()["count"])


async def test_setup_is_idempotent(sink: BulkSink, engine: httpx.AsyncClient) -> None:
    """Running setup twice leaves one template (with our version) and one index behind the alias."""
    await sink.ensure_setup()
    await sink.ensure_setup()
    template = (await engine.get(f"/_index_template/{sink.index}")).json()
    (entry,) = template["index_templates"]
    assert entry["index_template"]["index_patterns"] == [f"{sink.index}-*"]
    assert entry["index_template"]["_meta"]["template_version"] == TEMPLATE_VERSION
    aliases = (await engine.get(f"/_alias/{sink.index}")).json()
    assert list(aliases) == [first_index(sink.index)]
    assert aliases[first_index(sink.index)]["aliases"][sink.index]["is_write_index"] is True


async def test_alerts_are_stored_by_id_and_redelivery_does_not_duplicate(
    sink: BulkSink, engine: httpx.AsyncClient
) -> None:
    """Alerts are readable by id; writing them again is a success with no second copy."""
    await sink.ensure_setup()
    alerts = [make_alert(n) for n in range(5)]
    first = await sink.write_batch(alerts)
    assert sorted(first.created) == sorted(a.id for a in alerts)
    for alert in alerts:
        doc = await _get(engine, sink.index, alert.id)
        assert doc["_id"] == alert.id
        assert doc["_index"] == first_index(sink.index)
        assert doc["_source"]["kibana"]["alert"]["rule"]["name"] == alert.rule.title
    again = await sink.write_batch(alerts)  # re-delivery after a crash before commit
    assert again.created == []
    assert sorted(again.duplicates) == sorted(a.id for a in alerts)
    await sink.write(alerts)  # the Sink protocol call: no error either
    assert await _count(engine, sink.index) == len(alerts)


async def test_raw_events_are_stored_but_not_indexed(
    sink: BulkSink, engine: httpx.AsyncClient
) -> None:
    """Attacker-chosen keys in raw events add no mapping and cannot be searched, yet are kept."""
    await sink.ensure_setup()
    alert = make_alert(7, secret="zqneedlexq")
    await sink.write([alert])
    mapping = (await engine.get(f"/{sink.index}/_mapping")).json()
    props = mapping[first_index(sink.index)]["mappings"]["properties"]
    assert props["detector"]["properties"]["raw_events"]["enabled"] is False
    original = props["kibana"]["properties"]["alert"]["properties"]["original_events"]
    assert original["enabled"] is False
    assert "attackerKey7" not in str(mapping)
    anywhere = {"query_string": {"query": "zqneedlexq"}}
    assert await _count(engine, sink.index, anywhere) == 0
    field = {"term": {"detector.raw_events.requestParameters.attackerKey7": "zqneedlexq"}}
    assert await _count(engine, sink.index, field) == 0
    assert await _count(engine, sink.index, {"term": {"user.name": "alice"}}) == 1
    assert await _count(engine, sink.index, {"term": {"source.ip": "203.0.113.7"}}) == 1
    doc = await _get(engine, sink.index, alert.id)
    params = doc["_source"]["detector"]["raw_events"][0]["requestParameters"]
    assert params["attackerKey7"] == "zqneedlexq"


async def test_mapping_conflict_is_rejected_per_alert(
    sink: BulkSink, engine: httpx.AsyncClient
) -> None:
    """A 400 from the engine names the alert; the rest of the batch is stored."""
    await sink.ensure_setup()
    good, bad = make_alert(1), make_alert(2, flat_user=True)
    with pytest.raises(AlertRejectedError) as info:
        await sink.write([good, bad])
    assert list(info.value.rejected) == [bad.id]
    assert info.value.rejected[bad.id].startswith("400 ")
    assert (await _get(engine, sink.index, good.id))["found"] is True
    assert (await engine.get(f"/{sink.index}/_doc/{bad.id}")).status_code == 404


async def test_proxy_path_used_the_elasticsearch_wire_format(
    services: Any, engine: httpx.AsyncClient
) -> None:
    """Through the proxy, the official client sent Elastic's versioned media types and bulk.

    This pins what the proxy path of the tests above really exercised: the ``elasticsearch``
    client's own wire format, not a plain-JSON imitation of it.
    """
    index = f"detector-test-{uuid4().hex[:10]}"
    with ElasticsearchFacadeProxy(services.search_url).running() as proxy:
        sink = ElasticsearchSink(
            ElasticsearchSinkConfig(hosts=[proxy.url], index=index, retry=RETRY)
        )
        try:
            await sink.ensure_setup()
            await sink.write([make_alert(1)])
        finally:
            await sink.close()
            await engine.delete(f"/{index}-*")
            await engine.delete(f"/_index_template/{index}")
    assert any("vnd.elasticsearch+json; compatible-with=" in c for c in proxy.compat_seen)
    assert any("vnd.elasticsearch+x-ndjson; compatible-with=" in c for c in proxy.compat_seen)
    assert any(p.split("?")[0].endswith(" /_bulk") for p in proxy.paths), proxy.paths
    assert f"PUT /_index_template/{index}" in proxy.paths
    assert f"HEAD /{index}" in proxy.paths
    assert f"PUT /{first_index(index)}" in proxy.paths


async def test_correlation_group_keys_are_keywords(
    sink: BulkSink, engine: httpx.AsyncClient
) -> None:
    """Group keys (named by rules) are the one dynamic part: mapped as keywords, searchable."""
    await sink.ensure_setup()
    alert = make_alert(9).model_copy(update={"group": {"user.name": "alice", "repo": "app"}})
    await sink.write([alert])
    mapping = (await engine.get(f"/{sink.index}/_mapping/field/kibana.alert.group.key.*")).json()
    fields = mapping[first_index(sink.index)]["mappings"]
    assert fields["kibana.alert.group.key.repo"]["mapping"]["repo"]["type"] == "keyword"
    term = {"term": {"kibana.alert.group.key.user.name": "alice"}}
    assert await _count(engine, sink.index, term) == 1
