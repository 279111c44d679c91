"""Rule-file YAML: libyaml's parse under an explicit nesting limit."""

from __future__ import annotations

import pytest
import yaml

from detector.detect.ruleyaml import MAX_RULE_NESTING, NestedTooDeeply, load_rule_documents


def nested(depth: int, flow: bool) -> str:
    """A document whose value nests ``depth`` sequences (flow) or mappings (block)."""
    if flow:
        return "a: " + "[" * (depth - 1) + "]" * (depth - 1)
    return "".join("  " * i + "k:\n" for i in range(depth - 1)) + "  " * (depth - 1) + "k: 1\n"


@pytest.mark.parametrize("flow", [True, False])
def test_nesting_at_the_limit_loads_and_one_more_is_refused(flow: bool) -> None:
    """Exactly MAX_RULE_NESTING levels load (the same documents as PyYAML's pure parser
    builds); one level more raises NestedTooDeeply, well below libyaml's own limit."""
    text = nested(MAX_RULE_NESTING, flow)
    assert load_rule_documents(text) == list(yaml.safe_load_all(text))
    with pytest.raises(NestedTooDeeply):
        load_rule_documents(nested(MAX_RULE_NESTING + 1, flow))


def test_beyond_libyaml_limit_is_refused_as_too_deep() -> None:
    """Nesting past libyaml's own limit (1,000) is reported as too deep too, not as a
    syntax error."""
    with pytest.raises(NestedTooDeeply):
        load_rule_documents("a: " + "[" * 5000 + "]" * 5000)


def test_aliases_add_no_nesting() -> None:
    """An alias of a nested anchor counts once where the anchor is written: a billion-laughs
    style file is not refused for depth, and loads into shared objects."""
    lines = ["a0: &a0 [x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 30)]
    docs = load_rule_documents("\n".join(lines))
    assert docs[0]["a29"][0] is docs[0]["a28"]


def test_several_documents_and_syntax_errors() -> None:
    """Every document of a file is returned; invalid YAML raises a YAMLError with its line."""
    assert load_rule_documents("a: 1\n---\nb: [2]\n") == [{"a": 1}, {"b": [2]}]
    with pytest.raises(yaml.MarkedYAMLError) as info:
        load_rule_documents("a: 1\nb: [2\nc: 3\n")
    assert info.value.problem_mark is not None
