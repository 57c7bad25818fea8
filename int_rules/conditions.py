"""Conditions: a YAML ``when`` tree checked against the fact types and compiled.

The meaning is decided once, in :mod:`int_rules.model.conditions` (YAML -> condition nodes,
with every type check); the reference engine compiles the nodes
(:func:`int_rules.engines.reference.compile_condition`). This module joins the two for callers
that hold a YAML condition (review, lint).

Semantics (the same in every engine): two-valued logic. A test of a fact with no value
(``None``) is false, whatever the operator, except ``present: false``; ``not`` negates plainly;
a test against another fact (``{fact: other}``) that has no value is false.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .engines.reference import CompiledCondition
from .engines.reference import compile_condition as compile_node
from .language.schema import AllOf, AnyOf, Condition, ConditionRef, Leaf
from .model.conditions import ConditionError, resolve_condition, resolve_operand
from .model.nodes import ValueType
from .model.resolve import yaml_facts_read

__all__ = ["CompiledCondition", "ConditionError", "compile_condition", "facts_read", "leaves",
           "resolve"]

resolve = resolve_operand


def leaves(cond: Condition) -> list[Leaf]:
    """Every leaf test in a YAML condition tree, in order."""
    if isinstance(cond, Leaf):
        return [cond]
    if isinstance(cond, AllOf):
        return [leaf for c in cond.all for leaf in leaves(c)]
    if isinstance(cond, AnyOf):
        return [leaf for c in cond.any for leaf in leaves(c)]
    if isinstance(cond, ConditionRef):
        return []  # expanded at load; an unexpanded reference has no leaves of its own
    return leaves(cond.not_)


def facts_read(cond: Condition) -> list[str]:
    """Every fact a condition reads (tested facts and fact operands), first appearance order."""
    return yaml_facts_read(cond)


def compile_condition(
    cond: Condition,
    fact_types: Mapping[str, ValueType],
    params: Mapping[str, Any],
    path: tuple[int | str, ...] = (),
) -> CompiledCondition:
    """Type-check ``cond`` and return its compiled test; raise ConditionError where it is wrong."""
    return compile_node(resolve_condition(cond, fact_types, params, path), fact_types)
