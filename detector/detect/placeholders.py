"""Organization values for Sigma placeholders: ``field|expand: '%name%'`` in a rule.

Rules name what differs between organizations (CI runner networks, office ranges, account
ids, the GitHub organization, automation accounts) as placeholders; the values come from
configuration (``rules.placeholders``). The same values feed the engine (the compiler
replaces each placeholder by its values, OR-ed) and conversions (:func:`conversion_pipeline`,
a pySigma ``value_placeholders`` pipeline that sigma-cli reads too), so a rule means the
same in ``detector`` and in any backend.

A placeholder whose name ends in ``_networks`` holds IP networks in CIDR notation. Sigma's
``cidr`` modifier cannot take a placeholder, so each network becomes the wildcard patterns
pySigma's own CIDR expansion gives (``10.20.0.0/16`` -> ``10.20.*``), which every backend
and the engine match alike.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from sigma.types import SigmaCIDRExpression

from detector.detect.loader import DEFAULT_MAX_RULE_FILE_BYTES, load_rules
from detector.detect.rulefiles import rule_files
from detector.detect.ruleset import RuleSet
from detector.detect.ruleyaml import load_rule_documents
from detector.errors import ConfigError, MissingPlaceholderError, RuleError

#: Placeholders named ``<something>_networks`` hold CIDR networks.
NETWORKS_SUFFIX = "_networks"
_NAME = re.compile(r"%(\w+)%")


def placeholder_values(configured: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """The values rules are matched with, from the configured ones.

    Networks (``*_networks``) are validated and expanded to wildcard patterns; other values
    are kept as written (Sigma wildcards ``*`` and ``?`` work in them). Every invalid value
    is reported at once as :class:`ConfigError`.
    """
    values: dict[str, tuple[str, ...]] = {}
    problems: list[str] = []
    for name, raw in configured.items():
        if not _NAME.fullmatch(f"%{name}%"):
            problems.append(f"{name!r}: a placeholder name has letters, digits and _ only")
            continue
        if not name.endswith(NETWORKS_SUFFIX):
            values[name] = tuple(str(v) for v in raw)
            continue
        patterns: list[str] = []
        for network in raw:
            try:
                ipaddress.ip_network(str(network), strict=True)
            except ValueError as exc:
                problems.append(f"{name}: {network!r} is not a network in CIDR notation ({exc})")
                continue
            patterns += SigmaCIDRExpression(str(network)).expand()
        values[name] = tuple(dict.fromkeys(patterns))
    if problems:
        raise ConfigError(
            "invalid rules.placeholders values:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return values


@dataclass(frozen=True, slots=True)
class PlaceholderUse:
    """One placeholder one rule uses."""

    path: Path
    rule: str  #: title, and id when it has one
    name: str

    def __str__(self) -> str:
        return f"{self.path}: rule {self.rule} uses %{self.name}%"


def placeholder_uses(
    files: Iterable[Path], max_file_bytes: int = DEFAULT_MAX_RULE_FILE_BYTES
) -> list[PlaceholderUse]:
    """Every ``%name%`` under an ``expand`` modifier in the detections of ``files``.

    Files the rule loader rejects (unreadable, oversized, invalid or cyclic YAML) are
    skipped here: the loader reports them.
    """
    uses: list[PlaceholderUse] = []
    for path in files:
        try:
            if path.stat().st_size > max_file_bytes:
                continue
            documents = load_rule_documents(path.read_text(encoding="utf-8"))
            for doc in documents:
                if not isinstance(doc, dict) or not isinstance(doc.get("detection"), dict):
                    continue
                label = repr(str(doc.get("title", "")))
                if doc.get("id"):
                    label += f" ({doc['id']})"
                names = dict.fromkeys(_expanded_names(doc["detection"], False, set()))
                uses += [PlaceholderUse(path, label, name) for name in names]
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
    return uses


def _expanded_names(node: Any, expand: bool, seen: set[tuple[int, bool]]) -> Iterator[str]:
    # YAML aliases share nodes: visit each once, so an alias bomb costs its size, not more.
    if isinstance(node, dict | list):
        if (id(node), expand) in seen:
            return
        seen.add((id(node), expand))
    if isinstance(node, dict):
        for key, value in node.items():
            modifiers = str(key).split("|")[1:]
            yield from _expanded_names(value, expand or "expand" in modifiers, seen)
    elif isinstance(node, list):
        for item in node:
            yield from _expanded_names(item, expand, seen)
    elif expand and isinstance(node, str):
        yield from _NAME.findall(node)


def missing(uses: Iterable[PlaceholderUse], values: Mapping[str, object]) -> list[PlaceholderUse]:
    """The uses of placeholders that have no value."""
    return [use for use in uses if use.name not in values]


def load_rules_with_placeholders(
    paths: Sequence[Path | str],
    values: Mapping[str, Sequence[str]],
    *,
    disable_missing: bool = False,
    max_file_bytes: int = DEFAULT_MAX_RULE_FILE_BYTES,
) -> RuleSet:
    """Load the rules under ``paths`` with placeholder ``values`` (from :func:`placeholder_values`).

    A rule file that uses a placeholder without a value is not loaded. It is an error of
    the rule set (each use listed: file, rule, placeholder), or with ``disable_missing``
    a warning: the file's rules are left out on purpose. ``max_file_bytes`` is the loader's
    limit on a rule file.
    """
    files = list(rule_files(paths))
    absent = missing(placeholder_uses(files, max_file_bytes), values)
    skipped = {use.path for use in absent}
    unknown = [p for p in paths if not Path(p).exists()]  # the loader reports them
    loaded = [*unknown, *(f for f in files if f not in skipped)]
    ruleset = load_rules(loaded, values, max_file_bytes=max_file_bytes)
    if not absent:
        return ruleset
    if disable_missing:
        notes = tuple(
            RuleError(f"rule {u.rule} disabled: placeholder %{u.name}% has no value", str(u.path))
            for u in absent
        )
        return replace(ruleset, disabled=notes)
    problems = tuple(
        MissingPlaceholderError(
            f"rule {u.rule} uses placeholder %{u.name}%, which has no value: set "
            f"rules.placeholders.{u.name} in the configuration (DETECTIONS.md, Placeholders), "
            "or set rules.missing_placeholders to 'disable' to leave such rules out",
            str(u.path),
        )
        for u in absent
    )
    return replace(ruleset, errors=ruleset.errors + problems)


def conversion_pipeline(values: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """A pySigma processing pipeline that fills the placeholders with ``values``.

    Written as YAML, sigma-cli reads it (``sigma convert -p <file>``); it runs before the
    field-mapping pipelines (priority 10) so mapped fields get the filled values.
    """
    return {
        "name": "detector placeholders",
        "priority": 10,
        "vars": {name: list(v) for name, v in sorted(values.items())},
        "transformations": [{"id": "detector_placeholders", "type": "value_placeholders"}],
    }
