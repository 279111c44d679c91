"""The schema registry client against a loopback registry: auth, cache, outages."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from registry_support import FakeRegistry

from detector.errors import ConfigError, SchemaRegistryUnavailableError
from detector.sources.schemaregistry import SchemaRegistryClient, SchemaRegistryConfig

SCHEMA = {
    "type": "record",
    "name": "R",
    "namespace": "t",
    "fields": [{"name": "a", "type": "string"}],
}


def _client(url: str, **settings: Any) -> SchemaRegistryClient:
    return SchemaRegistryClient(SchemaRegistryConfig.model_validate({"url": url, **settings}))


async def test_resolves_with_basic_auth_and_caches_found_schemas(tmp_path: Path) -> None:
    """An id is fetched once with basic auth (password from a file) and then served from
    the cache: ids are immutable in a registry."""
    (tmp_path / "secret").write_text("api-secret\n")
    with FakeRegistry({7: SCHEMA}).running() as registry:
        client = _client(registry.url, username="api-key", password_file=str(tmp_path / "secret"))
        try:
            first = await client.schema(7)
            again = await client.schema(7)
        finally:
            await client.close()
    assert first.definition == SCHEMA
    assert again is first
    assert registry.paths == ["/schemas/ids/7"]
    assert registry.authorization == ["Basic YXBpLWtleTphcGktc2VjcmV0"]  # api-key:api-secret


async def test_bearer_token_is_sent() -> None:
    """``bearer_token`` authenticates with an Authorization: Bearer header."""
    with FakeRegistry({7: SCHEMA}).running() as registry:
        client = _client(registry.url, bearer_token="tok-123")
        try:
            await client.schema(7)
        finally:
            await client.close()
    assert registry.authorization == ["Bearer tok-123"]


async def test_not_found_is_cached_for_the_negative_ttl() -> None:
    """A "schema not found" answer is remembered for ``negative_cache_seconds`` and asked
    again after it (here 0: at once)."""
    with FakeRegistry({}).running() as registry:
        cached = _client(registry.url, negative_cache_seconds=600)
        expiring = _client(registry.url, negative_cache_seconds=0)
        try:
            assert (await cached.schema(9)).definition is None
            assert (await cached.schema(9)).problem == "not registered"
            await expiring.schema(9)
            await expiring.schema(9)
        finally:
            await cached.close()
            await expiring.close()
    assert registry.paths == ["/schemas/ids/9"] * 3


async def test_cache_is_bounded_least_recently_used_first() -> None:
    """With ``cache_size`` 2 a third id evicts the least recently used one."""
    with FakeRegistry({1: SCHEMA, 2: SCHEMA, 3: SCHEMA}).running() as registry:
        client = _client(registry.url, cache_size=2)
        try:
            for schema_id in (1, 2, 1, 3, 1, 2):
                await client.schema(schema_id)
        finally:
            await client.close()
    assert registry.paths == [f"/schemas/ids/{i}" for i in (1, 2, 3, 2)]


async def test_outage_and_wrong_url_are_unavailable_not_unknown() -> None:
    """A 503, a refused connection and a 404 without the registry's error code (a wrong
    URL) raise SchemaRegistryUnavailableError, so the batch waits instead of dead-lettering."""
    with FakeRegistry({7: SCHEMA}, outage=1).running() as registry:
        client = _client(registry.url)
        wrong_path = _client(registry.url + "/not-the-api")
        try:
            with pytest.raises(SchemaRegistryUnavailableError, match="HTTP 503"):
                await client.schema(7)
            assert (await client.schema(7)).definition == SCHEMA
            with pytest.raises(SchemaRegistryUnavailableError, match="HTTP 404"):
                await wrong_path.schema(7)
        finally:
            await client.close()
            await wrong_path.close()
    gone = _client(registry.url)
    try:
        with pytest.raises(SchemaRegistryUnavailableError, match="unreachable"):
            await gone.schema(7)
    finally:
        await gone.close()


def test_basic_and_bearer_auth_exclude_each_other() -> None:
    """Configuring both authentication kinds is rejected at start-up."""
    with pytest.raises(ValidationError, match="not both"):
        SchemaRegistryConfig.model_validate(
            {"url": "https://sr.example", "username": "u", "bearer_token": "t"}
        )


async def test_start_up_check_rejects_bad_credentials_and_a_wrong_url() -> None:
    """``check`` stops start-up on refused credentials and on a URL without the registry
    API; an unreachable registry is no start-up error (the lookups wait for it)."""
    with FakeRegistry({}, authorization="Bearer right").running() as registry:
        for url, settings, message in [
            (registry.url, {"bearer_token": "wrong"}, "refused the credentials"),
            (registry.url + "/wrong", {"bearer_token": "right"}, "serves no Confluent-compatible"),
        ]:
            client = _client(url, **settings)
            try:
                with pytest.raises(ConfigError, match=message):
                    await client.check()
            finally:
                await client.close()
        ok = _client(registry.url, bearer_token="right")
        try:
            await ok.check()
        finally:
            await ok.close()
    gone = _client(registry.url)
    try:
        await gone.check()
    finally:
        await gone.close()


@pytest.mark.services
async def test_https_registry_with_ca_file_and_client_certificate(
    services_env: dict[str, str],
) -> None:
    """Over HTTPS the client verifies the registry certificate with ``ca_file`` (an
    untrusted one stops start-up) and presents its client certificate when the registry
    requires one. Certificates: the ones scripts/services made for the broker."""
    ca = services_env["DETECTOR_TEST_KAFKA_CA"]
    tls_dir = Path(ca).parent
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    server.load_cert_chain(tls_dir / "broker.pem", tls_dir / "broker.key")
    server.verify_mode = ssl.CERT_REQUIRED
    client_cert = {
        "cert_file": services_env["DETECTOR_TEST_KAFKA_CLIENT_CERT"],
        "key_file": services_env["DETECTOR_TEST_KAFKA_CLIENT_KEY"],
    }
    with FakeRegistry({7: SCHEMA}, tls=server).running() as registry:
        assert registry.url.startswith("https://127.0.0.1:")
        client = _client(registry.url, ca_file=ca, **client_cert)
        untrusted = _client(registry.url, **client_cert)
        try:
            await client.check()
            assert (await client.schema(7)).definition == SCHEMA
            with pytest.raises(ConfigError, match="certificate is not trusted"):
                await untrusted.check()
        finally:
            await client.close()
            await untrusted.close()
