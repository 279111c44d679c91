"""Which events a rule applies to, from its Sigma ``logsource`` (event contract table).

A rule whose logsource is a native product/service pair reads native field names from
``Event.raw`` of events with that log source (``product`` alone means every service of
that product). ``product: ecs`` rules read ECS names from ``Event.ecs`` of every event,
or of one family with ``service: <family>``. Anything else cannot match an event of this
project and is rejected at load time.
"""

from __future__ import annotations

from dataclasses import dataclass

from sigma.rule import SigmaLogSource

from detector.errors import RuleError
from detector.models import LogSource
from detector.models.events import FAMILIES

#: Native log sources and their family (event contract).
NATIVE: dict[LogSource, str] = {
    LogSource("aws", "cloudtrail"): "cloudtrail",
    LogSource("github", "audit"): "ci",
    LogSource("gitlab", "audit"): "ci",
    LogSource("vault", "audit"): "vault",
    LogSource("distribution", "registry"): "registry",
    LogSource("harbor", "audit"): "registry",
}

ECS_PRODUCT = "ecs"


@dataclass(frozen=True, slots=True)
class Scope:
    """The events a rule reads: native (``product``/``service``) or ECS (``family`` or all)."""

    ecs: bool
    product: str | None = None
    service: str | None = None
    family: str | None = None

    def applies(self, logsource: LogSource, family: str) -> bool:
        """True when the rule applies to an event with ``logsource`` and ``family``."""
        if self.ecs:
            return self.family is None or self.family == family
        if self.product != logsource.product:
            return False
        return self.service is None or self.service == logsource.service

    def describe(self) -> str:
        """``aws/cloudtrail``, ``ecs``, ``ecs/registry``..."""
        if self.ecs:
            return f"{ECS_PRODUCT}/{self.family}" if self.family else ECS_PRODUCT
        return f"{self.product}/{self.service}" if self.service else f"{self.product}"


def scope_of(logsource: SigmaLogSource) -> Scope:
    """The scope of a rule's logsource; :class:`RuleError` if no event can ever match it."""
    product = (logsource.product or "").lower() or None
    service = (logsource.service or "").lower() or None
    given = "/".join(
        f"{k}={v}"
        for k, v in (
            ("category", logsource.category),
            ("product", logsource.product),
            ("service", logsource.service),
        )
        if v
    )
    known = ", ".join(f"{s.product}/{s.service}" for s in NATIVE)
    if logsource.category:
        raise RuleError(
            f"logsource {given}: categories are not supported; use a native product/service "
            f"({known}) or product: ecs"
        )
    if product == ECS_PRODUCT:
        if service is not None and service not in FAMILIES:
            raise RuleError(
                f"logsource {given}: an ecs rule's service must be a family "
                f"({', '.join(FAMILIES)}) or absent"
            )
        return Scope(ecs=True, family=service)
    for native in NATIVE:
        if native.product == product and service in (None, native.service):
            return Scope(ecs=False, product=product, service=service)
    raise RuleError(f"logsource {given} matches no source this engine reads ({known}, ecs)")
