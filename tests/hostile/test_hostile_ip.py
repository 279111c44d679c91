"""IP fields are valid or absent: what an ``ip`` field refuses stays in ``source.address``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import orjson
import pytest
from hostile_inputs import RULE, cloudtrail

from detector.app.replay import replay
from detector.detect import load_rules
from detector.normalize import normalize_record
from detector.sinks.config import OpenSearchSinkConfig, RetryConfig
from detector.sinks.opensearch import OpenSearchSink

ZONED = ["fe80::1%eth0", "fe80::1%25eth0", "ff02::1%1"]


@pytest.mark.parametrize("address", ZONED)
def test_zone_index_is_kept_as_address_only(address: str) -> None:
    """An IPv6 address with a zone index is no ``source.ip`` (nor ``related.ip``)."""
    event = normalize_record(cloudtrail(1, sourceIPAddress=address))
    assert event.ecs["source"] == {"address": address}
    assert "ip" not in event.ecs.get("related", {})


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "records"


def _fixture(family: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((FIXTURES / family / f"{name}.json").read_bytes())
    return data


def _set(record: dict[str, Any], path: str, value: str) -> dict[str, Any]:
    *parents, last = path.split(".")
    node = record
    for key in parents:
        node = node[key] if not key.isdigit() else node[int(key)]
    node[last] = value
    return record


@pytest.mark.parametrize(
    ("family", "name", "path", "value", "address"),
    [
        ("vault", "kv_read_request", "request.remote_address", "fe80::1%eth0", "fe80::1%eth0"),
        ("ci", "github_git_clone_pat", "actor_ip", "fe80::1%eth0", "fe80::1%eth0"),
        (
            "ci",
            "gitlab_project_deleted_api_ipv6",
            "details.ip_address",
            "fe80::1%en0",
            "fe80::1%en0",
        ),
        (
            "registry",
            "distribution_delete_manifest",
            "events.0.request.addr",
            "[fe80::1%eth0]:50500",
            "fe80::1%eth0",
        ),
    ],
)
def test_every_family_keeps_zoned_addresses_out_of_ip_fields(
    family: str, name: str, path: str, value: str, address: str
) -> None:
    """Vault, GitHub, GitLab and Distribution records: the zoned address is in
    ``source.address`` only."""
    record = _set(_fixture(family, name), path, value)
    doc = record["events"][0] if family == "registry" else record
    event = normalize_record(doc)
    assert event.ecs["source"]["address"] == address
    assert "ip" not in event.ecs["source"]
    assert "ip" not in event.ecs.get("related", {})


def test_plain_addresses_are_still_ips() -> None:
    """Ordinary IPv4 and IPv6 addresses keep their ``source.ip``."""
    for address in ("203.0.113.7", "2001:db8::7", "fe80::1"):
        event = normalize_record(cloudtrail(1, sourceIPAddress=address))
        assert event.ecs["source"]["ip"] == address


@pytest.fixture
async def sink(services: Any) -> AsyncIterator[OpenSearchSink]:
    """An OpenSearch sink on a fresh alias of the real local engine, deleted afterwards."""
    index = f"detector-hostile-{uuid4().hex[:10]}"
    made = OpenSearchSink(
        OpenSearchSinkConfig(
            hosts=[services.search_url],
            index=index,
            retry=RetryConfig(max_retries=1, backoff_initial=0.05, backoff_max=0.1),
        )
    )
    try:
        yield made
    finally:
        await made.close()
        async with httpx.AsyncClient(base_url=services.search_url, timeout=30) as client:
            await client.delete(f"/{index}-*")
            await client.delete(f"/_index_template/{index}")


@pytest.mark.services
async def test_alerts_of_zoned_addresses_are_indexed(
    tmp_path: Path, sink: OpenSearchSink, services: Any
) -> None:
    """Alerts on events from zoned addresses are stored in a real OpenSearch with the
    address in ``source.address`` and no ``source.ip`` (Elasticsearch refuses a zone index
    in an ``ip`` field; OpenSearch 3 takes it, so the stored document is what is checked)."""
    (tmp_path / "rule.yml").write_text(RULE)
    path = tmp_path / "trail.jsonl"
    path.write_bytes(
        b"".join(
            orjson.dumps(cloudtrail(n, sourceIPAddress=address)) + b"\n"
            for n, address in enumerate(ZONED)
        )
    )
    alerts = replay([path], load_rules([tmp_path / "rule.yml"])).alerts
    assert len(alerts) == len(ZONED)
    await sink.ensure_setup()
    result = await sink.write_batch(alerts)
    assert sorted(result.created) == sorted(a.id for a in alerts)
    async with httpx.AsyncClient(base_url=services.search_url, timeout=30) as client:
        for alert in alerts:
            doc = (await client.get(f"/{sink.index}/_doc/{alert.id}")).json()["_source"]
            assert doc["source"]["address"] in ZONED
            assert "ip" not in doc["source"]
