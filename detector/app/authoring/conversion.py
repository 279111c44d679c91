"""``detector rules convert``: Elasticsearch queries and Kibana rules from Sigma rules.

Runs pySigma's Elasticsearch backends with the project's processing pipelines
(:mod:`detector.app.authoring.pipelines`), so queries use the ECS field names of our
documents. Rule problems are recorded, never raised.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from sigma.backends.elasticsearch.elasticsearch_eql import EqlBackend
from sigma.backends.elasticsearch.elasticsearch_esql import ESQLBackend
from sigma.backends.elasticsearch.elasticsearch_lucene import LuceneBackend
from sigma.collection import SigmaCollection
from sigma.conversion.base import Backend
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import SetStateTransformation
from sigma.rule import SigmaRule, SigmaRuleBase

from detector.app.authoring.kibana import KibanaEsqlRuleBackend, KibanaRuleBackend, kibana_fixups
from detector.app.authoring.rulefiles import NOT_CORRELATIONS, rule_path, rule_type, yaml_files
from detector.detect.correlation import rule_key

#: ``--target`` -> (backend class, pySigma output format); the one list of targets.
TARGETS: dict[str, tuple[type[Backend], str]] = {
    "lucene": (LuceneBackend, "default"),
    "esql": (ESQLBackend, "default"),
    "eql": (EqlBackend, "default"),
    "kibana": (KibanaRuleBackend, "siem_rule_ndjson"),
}


@dataclass(frozen=True, slots=True)
class Converted:
    """One rule's queries (text for lucene/esql/eql, Kibana rule objects for kibana)."""

    id: str
    title: str
    type: str
    path: str | None
    queries: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A rule that produced no query, and why."""

    id: str
    title: str
    type: str
    path: str | None
    reason: str
    error: bool  # True: a problem; False: expected (unsupported correlation, building block)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "title": self.title,
            "type": self.type,
            "path": self.path,
            "reason": self.reason,
        }


@dataclass
class Conversion:
    """Everything one ``convert`` produced."""

    target: str
    converted: list[Converted] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    pipelines: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Skipped]:
        """Rules or files that could not be converted because of a problem."""
        return [s for s in self.skipped if s.error]

    @property
    def skipped_correlations(self) -> list[Skipped]:
        """Correlation rules the backend cannot express."""
        return [s for s in self.skipped if not s.error and s.type not in NOT_CORRELATIONS]

    def render(self, fmt: Literal["text", "json"] = "text") -> str:
        """The output file's text.

        ``kibana``: NDJSON, one Kibana Security detection rule per line (importable with
        Kibana's rule import). Other targets: ``text`` gives each rule's queries under a
        ``# title (id)`` header; ``json`` a list of ``{id, title, type, path, queries}``.
        """
        if self.target == "kibana":
            return "".join(
                json.dumps(q, sort_keys=True, default=str) + "\n"
                for c in self.converted
                for q in c.queries
            )
        if fmt == "json":
            items = [
                {
                    "id": c.id,
                    "title": c.title,
                    "type": c.type,
                    "path": c.path,
                    "queries": list(c.queries),
                }
                for c in self.converted
            ]
            return json.dumps(items, indent=2, default=str) + "\n"
        blocks = [
            f"# {c.title} ({c.id})\n" + "\n".join(str(q) for q in c.queries) + "\n"
            for c in self.converted
        ]
        return "\n".join(blocks)


def _parse(paths: Sequence[Path | str], conversion: Conversion) -> SigmaCollection:
    """Every rule of ``paths`` parsed by pySigma; unparsable files and rules are recorded."""
    collections: list[SigmaCollection] = []
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            conversion.skipped.append(
                Skipped("", "", "file", str(root), "no such rule file or directory", True)
            )
            continue
        for path in yaml_files(root):
            try:
                collection = SigmaCollection.from_yaml(
                    path.read_text(encoding="utf-8"),
                    collect_errors=True,
                    source=SigmaRuleLocation(path),
                )
            except (OSError, UnicodeDecodeError, yaml.YAMLError, SigmaError) as exc:
                conversion.skipped.append(
                    Skipped("", "", "file", str(path), f"cannot parse: {exc}", True)
                )
                continue
            good: list[SigmaRule | SigmaCorrelationRule | SigmaFilter] = []
            for rule in collection.rules:
                if rule.errors:
                    reason = "; ".join(str(e) for e in rule.errors)
                    conversion.skipped.append(
                        Skipped(
                            rule_key(rule), rule.title, rule_type(rule), str(path), reason, True
                        )
                    )
                else:
                    good.append(rule)
            collections.append(SigmaCollection(good, resolve_references=False))
    merged = SigmaCollection.merge(collections) if collections else SigmaCollection([])
    try:
        merged.resolve_rule_references()
    except SigmaError as exc:
        conversion.skipped.append(Skipped("", "", "file", None, str(exc), True))
        merged = SigmaCollection(
            [r for r in merged.rules if not isinstance(r, SigmaCorrelationRule)],
            resolve_references=False,
        )
    return merged


#: Outcome of converting one rule: its queries, or (reason, is it a problem).
_Outcome = list[Any] | tuple[str, bool]
_BUILDING_BLOCK = "building block of a correlation with generate: false (no query of its own)"


def _backend(
    backend_class: type[Backend],
    pipeline: ProcessingPipeline | None,
    output_format: str,
    index_names: Sequence[str],
    attack_names: Mapping[str, str] | None,
) -> Backend:
    full = pipeline if pipeline is not None else ProcessingPipeline()
    options: dict[str, Any] = {}
    if index_names and issubclass(backend_class, ESQLBackend):
        # ES|QL reads its ``from`` indices from the pipeline state.
        state = ProcessingItem(SetStateTransformation("index", list(index_names)))
        full = full + ProcessingPipeline([state], name="index names")
    elif index_names:
        options["index_names"] = list(index_names)
    backend = backend_class(full, collect_errors=True, **options)
    if isinstance(backend, KibanaRuleBackend | KibanaEsqlRuleBackend):
        backend.attack_names = dict(attack_names or {})
    backend.init_processing_pipeline(output_format)
    return backend


def _convert_each(
    collection: SigmaCollection, backend: Backend, output_format: str
) -> list[tuple[SigmaRuleBase, _Outcome]]:
    """Every rule of ``collection`` in order (references before correlations)."""
    outcomes: list[tuple[SigmaRuleBase, _Outcome]] = []
    for rule in collection.rules:
        before = len(backend.errors)
        outcome: _Outcome
        try:
            if isinstance(rule, SigmaCorrelationRule):
                outcome = list(backend.convert_correlation_rule(rule, output_format))
            else:
                outcome = list(backend.convert_rule(rule, output_format))
        except NotImplementedError as exc:
            outcome = (str(exc) or "not supported by the backend", False)
        except SigmaError as exc:
            outcome = (str(exc), True)
        if len(backend.errors) > before:
            outcome = ("; ".join(str(e) for _, e in backend.errors[before:]), True)
        elif not outcome:
            outcome = (_BUILDING_BLOCK, False)
        outcomes.append((rule, outcome))
    return outcomes


def convert(
    paths: Sequence[Path | str],
    target: str,
    pipeline: ProcessingPipeline | None = None,
    *,
    index_names: Sequence[str] = (),
    attack_names: Mapping[str, str] | None = None,
) -> Conversion:
    """Convert every rule under ``paths`` with pySigma's Elasticsearch backend for ``target``.

    ``pipeline`` maps native fields to ECS (see :func:`load_pipeline`); ``index_names``
    sets the indices the queries search. Correlation rules convert where the backend
    supports them, else they are skipped with the backend's reason; for ``kibana`` the
    correlations Lucene cannot express become Kibana ES|QL rules where ES|QL can. Rules
    only used by ``generate: false`` correlations have no query of their own. Never
    raises for rule problems.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    backend_class, output_format = TARGETS[target]
    conversion = Conversion(target)
    collection = _parse(paths, conversion)
    backend = _backend(backend_class, pipeline, output_format, index_names, attack_names)
    outcomes = _convert_each(collection, backend, output_format)
    if target == "kibana" and any(
        isinstance(r, SigmaCorrelationRule) and isinstance(o, tuple) and not o[1]
        for r, o in outcomes
    ):
        # Pipelines change rules in place: the second backend needs a fresh parse.
        esql = _backend(KibanaEsqlRuleBackend, pipeline, output_format, index_names, attack_names)
        again = _convert_each(_parse(paths, Conversion(target)), esql, output_format)
        by_id = {rule_key(r): o for r, o in again if isinstance(r, SigmaCorrelationRule)}
        outcomes = [
            (r, by_id.get(rule_key(r), o))
            if isinstance(r, SigmaCorrelationRule) and isinstance(o, tuple) and not o[1]
            else (r, o)
            for r, o in outcomes
        ]
    for rule, outcome in outcomes:
        kind, rid, path = rule_type(rule), rule_key(rule), rule_path(rule)
        if isinstance(outcome, tuple):
            reason, problem = outcome
            conversion.skipped.append(Skipped(rid, rule.title, kind, path, reason, problem))
            continue
        queries = [kibana_fixups(q, rule) for q in outcome] if target == "kibana" else outcome
        conversion.converted.append(Converted(rid, rule.title, kind, path, tuple(queries)))
    return conversion
