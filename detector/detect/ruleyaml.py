"""The YAML of rule files: parsed by libyaml (PyYAML's C loader) under a nesting limit.

PyYAML's pure-Python parser took most of start-up (ten times libyaml's time on the
shipped packs). The pure parser also refused hostile nesting by running out of
recursion; libyaml does not recurse, so the limit here is explicit: the nesting of a
file's YAML is counted on libyaml's event stream (aliases add none, so an alias bomb
costs its text only) before anything is built.
"""

from __future__ import annotations

from typing import Any

import yaml

#: Deepest nesting of mappings and sequences a rule file may have (rules nest about 4).
MAX_RULE_NESTING = 100

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class NestedTooDeeply(yaml.YAMLError):
    """The YAML nests mappings and sequences deeper than :data:`MAX_RULE_NESTING`."""


def load_rule_documents(text: str, max_nesting: int = MAX_RULE_NESTING) -> list[Any]:
    """Every YAML document of a rule file's ``text`` (safe types only).

    Raise :class:`NestedTooDeeply` when it nests deeper than ``max_nesting``, or another
    :class:`yaml.YAMLError` when it is not valid YAML.
    """
    too_deep = NestedTooDeeply(f"nested more than {max_nesting} levels deep")
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, _OPEN):
                depth += 1
                if depth > max_nesting:
                    raise too_deep
            elif isinstance(event, _CLOSE):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        # libyaml's scanner looks ahead and stops at its own limit (1,000 levels) first
        if "nesting depth" in str(exc.problem):
            raise too_deep from None
        raise
    return list(yaml.load_all(text, Loader=_Loader))
