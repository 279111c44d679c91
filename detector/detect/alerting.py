"""Events in, alerts out: single-event rules, first-seen rules and correlations together.

The in-process composition used by replay, the rule tests and the scenario check; the
Kafka runtime splits the same pieces over its detect and correlate stages.
"""

from __future__ import annotations

from detector.detect.alerts import alert_for_match
from detector.detect.correlation import CorrelationEngine, FirstSeenEngine, suppressed_rule_ids
from detector.detect.engine import DetectionEngine
from detector.detect.ruleset import RuleSet
from detector.models import Alert, Event, time_implausible


def silent_rule_ids(ruleset: RuleSet) -> frozenset[str]:
    """Ids of rules whose matches raise no single-event alert of their own: building
    blocks of correlations with ``generate: false`` and first-seen rules (their alert
    comes from the first-seen engine)."""
    sigma_rules = [r.sigma for r in ruleset.rules]
    suppressed = suppressed_rule_ids(sigma_rules, rule_ids=dict(ruleset.names))
    return frozenset(suppressed) | ruleset.silent


class AlertPipeline:
    """Detection over an event-time-ordered stream, as the runtime wires it.

    Single-event matches become alerts unless the rule is a silent correlation building
    block or a first-seen rule; every match also feeds the first-seen and correlation
    engines. Call :meth:`process` in event-time order, then :meth:`flush` once.
    """

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        names = dict(ruleset.names)
        sigma_rules = [r.sigma for r in ruleset.rules]
        self.engine = DetectionEngine(ruleset)
        self.first_seen = FirstSeenEngine(sigma_rules, rule_ids=names)
        self.correlations = CorrelationEngine(ruleset.correlations, rule_ids=names)
        self.suppressed = silent_rule_ids(ruleset)

    def process(self, event: Event) -> list[Alert]:
        """Alerts completed by ``event``."""
        alerts: list[Alert] = []
        matches = self.engine.evaluate(event)
        if time_implausible(event):
            # evaluated, but kept out of event time: no window, no watermark
            return [alert_for_match(m) for m in matches if m.rule.id not in self.suppressed]
        self.first_seen.anchor(event.timestamp)  # learn periods start at the first event
        for match in matches:
            if match.rule.id not in self.suppressed:
                alerts.append(alert_for_match(match))
            alerts.extend(self.first_seen.process(match))
            alerts.extend(self.correlations.process(match))
        if not matches:
            alerts.extend(self.correlations.advance_watermark(event.timestamp))
            self.first_seen.advance_watermark(event.timestamp)
        return alerts

    def flush(self) -> list[Alert]:
        """End of input: alerts of windows still open."""
        return [*self.first_seen.flush(), *self.correlations.flush()]
