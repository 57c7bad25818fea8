"""Conditions in plain English, for explanations and for the reviewers' ruleset reference.

>>> from int_rules.language.schema import RuleDef
>>> from pydantic import TypeAdapter
>>> from int_rules.language.schema import Condition
>>> c = TypeAdapter(Condition).validate_python(
...     {"all": [{"fact": "age", "at_least": {"param": "min_age"}},
...              {"not": {"fact": "housebound", "equals": True}}]})
>>> describe_condition(c, {"min_age": 65})
'age is at least 65 (parameter min_age) AND NOT (housebound is true)'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .schema import AllOf, AnyOf, Condition, ConditionRef, FactRef, Leaf, Not, ParamRef

__all__ = ["describe_condition", "describe_leaf", "format_value"]

_PHRASES = {
    "equals": "is",
    "not_equals": "is recorded and is not",
    "in": "is one of",
    "at_least": "is at least",
    "at_most": "is at most",
    "greater_than": "is more than",
    "less_than": "is less than",
    "within_days": "is within the last",
    "older_than_days": "is more than",
    "after": "is after",
    "before": "is before",
}


def format_value(value: Any) -> str:
    """A value as a reader expects it: true/false, dates ISO, lists comma-separated."""
    if value is None:
        return "not recorded"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple, frozenset, set)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def _operand(value: Any, params: Mapping[str, Any]) -> str:
    if isinstance(value, ParamRef):
        if value.param in params:
            return f"{format_value(params[value.param])} (parameter {value.param})"
        return f"parameter {value.param}"
    if isinstance(value, FactRef):
        return f"fact {value.fact}"
    return format_value(value)


def describe_leaf(leaf: Leaf, params: Mapping[str, Any]) -> str:
    """One test in words, e.g. ``last_mdt_review is more than 84 days ago``."""
    op = leaf.op
    if op == "present":
        return f"{leaf.fact} is recorded" if leaf.present else f"{leaf.fact} is not recorded"
    operand = _operand(leaf.operand, params)
    if op == "within_days":
        return f"{leaf.fact} is within the last {operand} days"
    if op == "older_than_days":
        return f"{leaf.fact} is more than {operand} days ago"
    return f"{leaf.fact} {_PHRASES[op]} {operand}"


def describe_condition(cond: Condition, params: Mapping[str, Any], nested: bool = False) -> str:
    """A whole condition in words, with AND / OR / NOT and brackets where they nest."""
    if isinstance(cond, Leaf):
        return describe_leaf(cond, params)
    if isinstance(cond, Not):
        return f"NOT ({describe_condition(cond.not_, params)})"
    if isinstance(cond, ConditionRef):
        return f"the condition '{cond.condition}'"
    parts, joiner = (cond.all, " AND ") if isinstance(cond, AllOf) else (cond.any, " OR ")
    assert isinstance(cond, (AllOf, AnyOf))
    text = joiner.join(describe_condition(c, params, nested=True) for c in parts)
    return f"({text})" if nested and len(parts) > 1 else text
