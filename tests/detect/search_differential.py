"""The search engine as an independent Sigma evaluator (for test_differential).

Rules are converted by pySigma's Lucene backend with the project's pipelines and run as
``query_string`` queries over an index holding the same records. Each record field is
indexed as the list of its values' JSON spellings (the engine's matching model: any
element of a list, any value nested in an object) in a ``keyword`` field with a
lower-case normalizer (Sigma's case-insensitive default); ``null`` and empty lists are
left out, as a search engine does.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch, helpers
from sigma.backends.elasticsearch import LuceneBackend
from sigma.collection import SigmaCollection

from detector.app.authoring import load_pipeline
from detector.detect import RuleSet

PIPELINES = Path(__file__).resolve().parents[2] / "detections" / "pipelines"

MAPPING = {
    "settings": {
        "number_of_shards": 1,
        "number_of_replicas": 0,
        "analysis": {"normalizer": {"folded": {"type": "custom", "filter": ["lowercase"]}}},
    },
    "mappings": {
        "dynamic_templates": [
            {
                "strings": {
                    "match_mapping_type": "string",
                    "mapping": {"type": "keyword", "normalizer": "folded"},
                }
            }
        ]
    },
}


def _spellings(value: Any) -> list[str]:
    if isinstance(value, list):
        return [s for v in value for s in _spellings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _spellings(v)]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, str):
        return [value]
    if isinstance(value, int | float):
        return [str(value)]
    return []


def document(record: dict[str, Any]) -> dict[str, Any]:
    """The indexed form of a generated record (fields s, t and o.p)."""
    doc: dict[str, Any] = {"event": {"dataset": "aws.cloudtrail"}}
    for name in ("s", "t"):
        if name in record and _spellings(record[name]):
            doc[name] = _spellings(record[name])
    nested = record.get("o")
    if isinstance(nested, dict) and "p" in nested and _spellings(nested["p"]):
        doc["o"] = {"p": _spellings(nested["p"])}
    return doc


def search_verdicts(
    url: str, rules: RuleSet, records: list[dict[str, Any]]
) -> set[tuple[str, int]]:
    """(rule id, record index) pairs the search engine matches."""
    client = OpenSearch(hosts=[url], timeout=60)
    index = f"detector-test-differential-{uuid.uuid4().hex[:8]}"
    client.indices.create(index=index, body=MAPPING)
    try:
        helpers.bulk(
            client,
            (
                {"_index": index, "_id": str(i), "_source": document(r)}
                for i, r in enumerate(records)
            ),
        )
        client.indices.refresh(index=index)
        backend = LuceneBackend(load_pipeline([PIPELINES / "cloudtrail.yml"]))
        found: set[tuple[str, int]] = set()
        for rule in rules.rules:
            collection = SigmaCollection([rule.sigma])
            for query in backend.convert(collection):
                body = {"query": {"query_string": {"query": query}}, "size": len(records)}
                result = client.search(index=index, body=body, _source=False)
                found.update((rule.info.id, int(hit["_id"])) for hit in result["hits"]["hits"])
        return found
    finally:
        client.indices.delete(index=index)
        client.close()
