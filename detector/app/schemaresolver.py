"""Resolve a batch's unknown Confluent schema ids through the schema registry, then decode.

Decoding stays pure: before a batch goes through the pipeline, :meth:`SchemaResolver.resolve`
asks the registry for every Confluent-framed Avro record whose id the local schema store
does not know, and registers the answers in the store. A registered schema is matched to
a local family by its record's full name (``namespace.name``); the exact local version is
used when the fingerprints agree, otherwise the registry's definition is the writer schema
and the family's newest local version the reader (Avro schema resolution).

An id the registry does not hold, or holds for a family with no local schema, stays
unknown, so the decoder dead-letters the record (``unknown_schema_id``). A registry
outage raises :class:`~detector.errors.SchemaRegistryUnavailableError`; the runner
retries with backpressure, so no good record is dead-lettered because the registry blinked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from detector.app.ingest import Ingestor
from detector.decode import AvroSchema, SchemaStore
from detector.decode.avrowire import CONFLUENT_MAGIC
from detector.models import RawRecord
from detector.sources.schemaregistry import RegisteredSchema, SchemaRegistryClient

log = structlog.get_logger(__name__)


class SchemaResolver:
    """Fills the schema stores of the Avro topics from a schema registry."""

    def __init__(self, client: SchemaRegistryClient, stores: Mapping[str, SchemaStore]) -> None:
        self.client = client
        self.stores = dict(stores)  # topic -> the store its decoder reads

    @classmethod
    def for_ingestors(
        cls, client: SchemaRegistryClient, ingestors: Mapping[str, Ingestor]
    ) -> SchemaResolver:
        """A resolver for every topic whose ingestor decodes Avro."""
        return cls(
            client,
            {topic: i.avro.store for topic, i in ingestors.items() if i.avro is not None},
        )

    async def resolve(self, records: Sequence[RawRecord]) -> None:
        """Register every unknown schema id of ``records`` that the registry can answer."""
        unknown: dict[int, list[SchemaStore]] = {}
        for record in records:
            store = self.stores.get(record.origin.topic or "")
            value = record.value
            if store is None or len(value) < 5 or value[0] != CONFLUENT_MAGIC:
                continue
            schema_id = int.from_bytes(value[1:5], "big")
            if store.by_id(schema_id) is None:
                stores = unknown.setdefault(schema_id, [])
                if not any(s is store for s in stores):
                    stores.append(store)
        if not unknown:
            return
        answers = await self.client.schemas(unknown)
        for schema_id, answer in answers.items():
            for store in unknown[schema_id]:
                schema = _local_schema(answer, store)
                if schema is not None:
                    store.register(schema_id, schema)
        log.info("schema_ids_resolved", ids=sorted(unknown))


def _local_schema(answer: RegisteredSchema, store: SchemaStore) -> AvroSchema | None:
    """The schema to decode ``answer``'s id with, or ``None`` (the record is dead-lettered)."""
    if answer.definition is None:
        log.warning("schema_id_unresolved", schema_id=answer.schema_id, problem=answer.problem)
        return None
    name = _full_name(answer.definition)
    family = next((s.family for s in store.schemas if _full_name(s.definition) == name), None)
    if family is None:
        log.warning(
            "schema_id_unresolved",
            schema_id=answer.schema_id,
            problem=f"registered as {name!r}, which no local schema family reads",
        )
        return None
    try:
        writer = AvroSchema.from_definition(family, 0, answer.definition)
    except Exception as exc:  # fastavro's parse errors share no base class
        log.warning(
            "schema_id_unresolved",
            schema_id=answer.schema_id,
            problem=f"registered schema unusable: {type(exc).__name__}: {exc}",
        )
        return None
    return store.by_fingerprint(writer.fingerprint) or writer


def _full_name(definition: Mapping[str, Any]) -> str:
    name = str(definition.get("name", ""))
    namespace = definition.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"
