"""Kibana Security detection rules from pySigma's backends, with an offline ATT&CK mapping."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sigma.backends.elasticsearch.elasticsearch_esql import ESQLBackend
from sigma.backends.elasticsearch.elasticsearch_lucene import LuceneBackend
from sigma.rule import SigmaRuleBase, SigmaRuleTag

from detector.app.authoring.attack import TACTICS, TECHNIQUES, attack_tags, technique_url
from detector.detect.suppression import suppression_or_none

#: Kibana accepts only these severities (Sigma also has ``informational``).
KIBANA_SEVERITIES = ("low", "medium", "high", "critical")


def _technique(technique: str, names: Mapping[str, str]) -> dict[str, Any]:
    return {
        "id": technique,
        "name": names.get(technique, TECHNIQUES.get(technique, technique)),
        "reference": technique_url(technique),
    }


def attack_threat(tags: Iterable[SigmaRuleTag], names: Mapping[str, str]) -> list[dict[str, Any]]:
    """Kibana ``threat`` entries from ``attack.*`` tags, without network access.

    pySigma's own mapping downloads ATT&CK data; here tactics come from the project's
    ATT&CK table (:mod:`detector.app.authoring.attack`) and technique names from ``names``
    (technique id -> name), else the table, else the id. Every technique of the rule is
    listed under each of its tactics.
    """
    found = attack_tags((tag.namespace, tag.name) for tag in tags)
    threat: list[dict[str, Any]] = []
    for short_name in found.tactics:
        tactic = TACTICS[short_name]
        entries: dict[str, dict[str, Any]] = {}
        for technique in found.techniques:
            parent = technique.split(".")[0]
            entry = entries.setdefault(parent, {**_technique(parent, names), "subtechnique": []})
            if parent != technique:
                entry["subtechnique"].append(_technique(technique, names))
        threat.append(
            {
                "framework": "MITRE ATT&CK",
                "tactic": {"id": tactic.id, "name": tactic.name, "reference": tactic.url},
                "technique": list(entries.values()),
            }
        )
    return threat


def kibana_fixups(query: Any, rule: SigmaRuleBase | None = None) -> Any:
    """Kibana refuses Sigma's ``informational`` severity: it becomes ``low``. A rule's
    ``suppression`` attribute with group-by fields becomes Kibana's ``alert_suppression``
    (same semantics; missing values are grouped together, as detector does)."""
    if isinstance(query, dict) and query.get("severity") not in KIBANA_SEVERITIES:
        query["severity"] = "low"
    if isinstance(query, dict) and rule is not None:
        suppression = suppression_or_none(rule)
        if suppression is not None and suppression.group_by:
            query["alert_suppression"] = {
                "group_by": list(suppression.group_by),
                "duration": _duration(suppression.window_seconds),
                "missing_fields_strategy": "suppress",
            }
    return query


def _duration(seconds: float) -> dict[str, Any]:
    """Kibana's ``{value, unit}`` for a window (the largest of h, m, s that divides it)."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return {"value": int(seconds // size), "unit": unit}
    return {"value": max(1, round(seconds)), "unit": "s"}


class _OfflineThreat:
    """Kibana ``threat`` entries from the offline ATT&CK table instead of pySigma's download.

    The stock mapping fetches ATT&CK data from the network (and removes the rule's tags
    while doing so); conversion must work offline and leave rules untouched.
    """

    attack_names: Mapping[str, str] = {}

    def finalize_output_threat_model(self, tags: list[SigmaRuleTag]) -> Iterable[dict[str, Any]]:
        """Kibana ``threat`` entries for the rule's ``attack.*`` tags."""
        return attack_threat(tags, self.attack_names)


class KibanaRuleBackend(_OfflineThreat, LuceneBackend):
    """pySigma's Lucene backend for ``siem_rule_ndjson`` with the offline ATT&CK mapping."""


class KibanaEsqlRuleBackend(_OfflineThreat, ESQLBackend):
    """pySigma's ES|QL backend with the offline ATT&CK mapping: Kibana ES|QL rules,
    used for the correlations the Lucene backend cannot express."""
