"""Exceptions: known-good activity silenced outside the rules, with a reason and an owner.

An exception file is YAML with a list under ``exceptions``::

    exceptions:
      - id: ci-deploy-role                  # unique; names the exception in metrics and logs
        rules: [AWS STS AssumeRole Misuse]  # rule ids or names; leave out for every rule
        reason: the CI deploy role assumes roles all day
        author: platform-security
        expires: 2027-03-31                 # optional date or date-time (UTC)
        detection:                          # a Sigma detection: selections and a condition
          ci:
            user.name|startswith: ci-deploy
          condition: ci

The detection is parsed by pySigma and compiled by the engine's own compiler, so every
modifier and value type of the rules works here. Field names resolve against the event's
ECS document first, then against its native record (top-level key by key): ``user.name``
and ``userIdentity.arn`` both work on a CloudTrail event.

An exception drops the *matches* it covers, before they become alerts or reach a
correlation or first-seen rule. An exception naming a correlation applies to the matches
of every rule the correlation references. Expiry is in event time: an exception covers
events older than ``expires`` and no others, so a replay of old logs and the live stream
agree; an expired exception is reported, never fatal (it stops silencing, which is safe).
"""

from __future__ import annotations

from collections import ChainMap, Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, cast

import yaml
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from detector.detect.compiler import Compiler, Placeholders, Predicate
from detector.detect.rulefiles import rule_files
from detector.errors import RuleError
from detector.models import Event, Match

_Record = dict[str, Any]
#: Keys an exception entry may have.
_KEYS = frozenset({"id", "rules", "reason", "author", "expires", "detection"})


@dataclass(frozen=True, eq=False)
class RuleException:
    """One compiled exception.

    ``rules`` holds the rule ids or names it is restricted to (empty: every rule);
    ``expires`` is epoch seconds (``None``: never); ``matches`` the compiled detection
    over a lookup of the ECS document then the native record.
    """

    id: str
    reason: str
    author: str
    rules: tuple[str, ...]
    expires: float | None
    matches: Predicate
    path: str | None = None

    def covers(self, event: Event) -> bool:
        """Whether this exception silences matches on ``event`` (expiry in event time)."""
        if self.expires is not None and event.timestamp >= self.expires:
            return False
        # Read-only view: the ECS document first, then the native record.
        return self.matches(ChainMap(event.ecs, cast(_Record, event.raw)))

    def expired(self, now: float) -> bool:
        """Whether the expiry lies at or before ``now`` (epoch seconds)."""
        return self.expires is not None and self.expires <= now


@dataclass(eq=False)
class ExceptionSet:
    """The loaded exceptions, indexed by the rule ids they apply to.

    :meth:`filter` drops covered matches and counts them per (exception id, rule id) in
    :attr:`dropped`, for the ``detector_exception_drops_total`` metric.
    """

    exceptions: tuple[RuleException, ...] = ()
    by_rule: Mapping[str, tuple[RuleException, ...]] = field(default_factory=dict)
    everywhere: tuple[RuleException, ...] = ()
    dropped: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __bool__(self) -> bool:
        return bool(self.exceptions)

    def for_rule(self, rule_id: str) -> tuple[RuleException, ...]:
        """The exceptions that apply to the matches of ``rule_id``."""
        return self.by_rule.get(rule_id, ()) + self.everywhere

    def filter(self, matches: list[Match]) -> list[Match]:
        """``matches`` without those an exception covers (the others in order)."""
        kept: list[Match] = []
        for match in matches:
            for exc in self.for_rule(match.rule.id):
                if exc.covers(match.event):
                    self.dropped[(exc.id, match.rule.id)] += 1
                    break
            else:
                kept.append(match)
        return kept

    def expired(self, now: float) -> list[RuleException]:
        """Exceptions whose expiry has passed at ``now`` (epoch seconds)."""
        return [e for e in self.exceptions if e.expired(now)]


@dataclass
class ExceptionFiles:
    """What :func:`load_exceptions` read: the exceptions and every problem found."""

    exceptions: list[RuleException] = field(default_factory=list)
    errors: list[RuleError] = field(default_factory=list)


def load_exceptions(
    paths: Sequence[Path | str], placeholders: Placeholders | None = None
) -> ExceptionFiles:
    """Read and compile every exception file in ``paths`` (files or directories of YAML).

    Never raises for a bad entry: each problem is a :class:`RuleError` with the file, and
    the entry is left out. Ids must be unique across all files.
    """
    loaded = ExceptionFiles()
    compiler = Compiler(placeholders)
    seen: dict[str, str] = {}

    def absent(path: Path) -> None:
        loaded.errors.append(RuleError("no such exception file or directory", str(path)))

    # Exception files are found as rule files are (each once, however the paths overlap).
    for path in rule_files(paths, absent):
        for entry in _entries(path, loaded.errors):
            try:
                exc = _compile(entry, compiler, str(path))
            except RuleError as problem:
                loaded.errors.append(RuleError(str(problem.args[0]), str(path)))
                continue
            if exc.id in seen:
                loaded.errors.append(
                    RuleError(f"exception {exc.id!r} is also defined in {seen[exc.id]}", str(path))
                )
                continue
            seen[exc.id] = str(path)
            loaded.exceptions.append(exc)
    return loaded


def index_exceptions(
    exceptions: Iterable[RuleException], targets: Mapping[str, Sequence[str]]
) -> ExceptionSet:
    """An :class:`ExceptionSet` whose rule references are resolved through ``targets``.

    ``targets`` maps each rule id *and* name to the ids of the detection rules whose
    matches it stands for (itself for a detection rule, its referenced rules for a
    correlation). Unknown references are left out; :func:`unknown_rules` lists them.
    """
    everything = tuple(exceptions)
    by_rule: dict[str, list[RuleException]] = {}
    everywhere: list[RuleException] = []
    for exc in everything:
        if not exc.rules:
            everywhere.append(exc)
            continue
        ids = {rid for ref in exc.rules for rid in targets.get(ref, ())}
        for rid in sorted(ids):
            by_rule.setdefault(rid, []).append(exc)
    return ExceptionSet(
        exceptions=everything,
        by_rule={k: tuple(v) for k, v in by_rule.items()},
        everywhere=tuple(everywhere),
    )


def unknown_rules(exceptions: Iterable[RuleException], known: Collection[str]) -> list[RuleError]:
    """A problem per rule reference of an exception that names no loaded rule."""
    return [
        RuleError(f"exception {exc.id!r} names rule {ref!r}, which is not loaded", exc.path)
        for exc in exceptions
        for ref in exc.rules
        if ref not in known
    ]


def _entries(path: Path, errors: list[RuleError]) -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        errors.append(RuleError(f"cannot read exception file: {exc}", str(path)))
        return []
    items = data.get("exceptions") if isinstance(data, dict) else None
    if not isinstance(items, list):
        errors.append(
            RuleError("an exception file is a mapping with a list under 'exceptions'", str(path))
        )
        return []
    good: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            good.append(item)
        else:
            errors.append(RuleError(f"exceptions[{i}] is not a mapping", str(path)))
    return good


def _compile(entry: Mapping[str, Any], compiler: Compiler, path: str) -> RuleException:
    ident = entry.get("id")
    if not isinstance(ident, str) or not ident.strip():
        raise RuleError("an exception needs an 'id' (a unique name)")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise RuleError(
            f"exception {ident!r}: unknown key(s) {', '.join(unknown)} "
            f"(expected {', '.join(sorted(_KEYS))})"
        )
    for key in ("reason", "author"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise RuleError(f"exception {ident!r}: '{key}' is required (who and why, for audit)")
    rules = entry.get("rules") or []
    if isinstance(rules, str):
        rules = [rules]
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise RuleError(f"exception {ident!r}: 'rules' is a list of rule ids or names")
    detection = entry.get("detection")
    if not isinstance(detection, dict) or "condition" not in detection:
        raise RuleError(f"exception {ident!r}: 'detection' needs selections and a 'condition'")
    try:
        sigma = SigmaRule.from_dict(
            {"title": f"exception {ident}", "logsource": {"product": "ecs"}, "detection": detection}
        )
        matches, _ = compiler.rule(sigma)
    except SigmaError as exc:
        raise RuleError(f"exception {ident!r}: invalid detection: {exc}") from None
    except RuleError as exc:
        raise RuleError(f"exception {ident!r}: {exc.args[0]}") from None
    return RuleException(
        id=ident,
        reason=entry["reason"].strip(),
        author=entry["author"].strip(),
        rules=tuple(rules),
        expires=_expiry(ident, entry.get("expires")),
        matches=matches,
        path=path,
    )


def _expiry(ident: str, value: Any) -> float | None:
    """Epoch seconds of an ``expires`` value: a date means the start of that day, UTC."""
    if value is None:
        return None
    moment: datetime
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time.min)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise RuleError(
                f"exception {ident!r}: 'expires' is not a date (YYYY-MM-DD) or ISO date-time"
            ) from None
    else:
        raise RuleError(f"exception {ident!r}: 'expires' is not a date (YYYY-MM-DD)")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
