"""Nesting-depth check of decoded JSON values."""

from __future__ import annotations

from typing import Any


def exceeds_depth(value: Any, max_depth: int) -> bool:
    """True if ``value`` nests objects/arrays more than ``max_depth`` levels deep.

    Iterative (an explicit stack), so hostile input cannot exhaust the Python stack.
    """
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop = stack.pop
    push = stack.append
    while stack:
        node, depth = pop()
        if depth > max_depth:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                push((child, depth + 1))
    return False
