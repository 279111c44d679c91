"""The detection author's workflow behind ``detector rules``, one module per command.

- :mod:`~detector.app.authoring.validation` (``validate``): everything the engine rejects.
- :mod:`~detector.app.authoring.listing` (``list``): a row per loaded rule.
- :mod:`~detector.app.authoring.testing` (``test``) with the case format and runner of
  :mod:`~detector.app.authoring.cases`.
- :mod:`~detector.app.authoring.conversion` (``convert``) with the Kibana backends of
  :mod:`~detector.app.authoring.kibana` and the pipelines of
  :mod:`~detector.app.authoring.pipelines`.
- :mod:`~detector.app.authoring.explanation` (``explain``).
- :mod:`~detector.app.authoring.coverage` (``coverage``): ATT&CK table and Navigator layer.

The ATT&CK table they share is :mod:`~detector.app.authoring.attack`. Functions read the
rule files they are given and nothing else; the CLI only formats what they return.
"""

from detector.app.authoring.attack import TACTICS, TECHNIQUES, technique_names
from detector.app.authoring.cases import RuleDiff, TestReport, case_diff
from detector.app.authoring.conversion import TARGETS, Conversion, Converted, Skipped, convert
from detector.app.authoring.coverage import Coverage, coverage, navigator_layer
from detector.app.authoring.explanation import RuleExplanation, explain_record, resolve_rule
from detector.app.authoring.kibana import attack_threat
from detector.app.authoring.listing import RuleRow, rule_rows
from detector.app.authoring.pipelines import field_mapping, load_pipeline, pipeline_files
from detector.app.authoring.rulefiles import DEFAULT_PIPELINES, DEFAULT_RULES
from detector.app.authoring.testing import case_roots, junit_xml, mirror, run_rule_tests
from detector.app.authoring.validation import Problem, Validation, engine_errors, validate

__all__ = [
    "DEFAULT_PIPELINES",
    "DEFAULT_RULES",
    "TACTICS",
    "TARGETS",
    "TECHNIQUES",
    "Conversion",
    "Converted",
    "Coverage",
    "Problem",
    "RuleDiff",
    "RuleExplanation",
    "RuleRow",
    "Skipped",
    "TestReport",
    "Validation",
    "attack_threat",
    "case_diff",
    "case_roots",
    "convert",
    "coverage",
    "engine_errors",
    "explain_record",
    "field_mapping",
    "junit_xml",
    "load_pipeline",
    "mirror",
    "navigator_layer",
    "pipeline_files",
    "resolve_rule",
    "rule_rows",
    "run_rule_tests",
    "technique_names",
    "validate",
]
