"""Resolve a YAML ``when`` tree into condition nodes, type-checked against the fact types.

Every check of an operand against its fact's type is here, once; a problem raises
:class:`ConditionError` with its path inside the tree, which the loader turns into
``file:line:column``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..language.schema import AllOf, AnyOf, ConditionRef, FactRef, Leaf, ParamRef
from ..language.schema import Condition as YamlCondition
from ..language.schema import Not as YamlNot
from . import nodes as n
from .nodes import MAX_DAYS, ValueType

__all__ = ["ConditionError", "resolve_condition", "resolve_operand"]

_NUMERIC = {"int", "number"}
_ORDER_OPS = ("at_least", "at_most", "greater_than", "less_than")


class ConditionError(Exception):
    """A condition that does not fit its facts; ``path`` locates it inside the ``when`` tree."""

    def __init__(self, path: tuple[int | str, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def resolve_operand(operand: Any, params: Mapping[str, Any], path: tuple[int | str, ...],
                    op: str) -> Any:
    """The literal value of an operand, reading ``{param: name}`` from ``params``."""
    if isinstance(operand, ParamRef):
        if operand.param not in params:
            known = ", ".join(sorted(params)) or "none"
            raise ConditionError((*path, op, "param"),
                                 f"unknown parameter {operand.param!r} (known: {known})")
        return params[operand.param]
    return operand


def resolve_condition(cond: YamlCondition, types: Mapping[str, ValueType],
                      params: Mapping[str, Any],
                      path: tuple[int | str, ...] = ()) -> n.Condition:
    """``cond`` as condition nodes; raise ConditionError where it does not fit its facts.

    ``params`` maps the parameter names visible here to their (already overridden) values.
    """
    if isinstance(cond, AllOf):
        return n.All(tuple(resolve_condition(c, types, params, (*path, "all", i))
                           for i, c in enumerate(cond.all)))
    if isinstance(cond, AnyOf):
        return n.AnyOf(tuple(resolve_condition(c, types, params, (*path, "any", i))
                             for i, c in enumerate(cond.any)))
    if isinstance(cond, YamlNot):
        return n.Not(resolve_condition(cond.not_, types, params, (*path, "not")))
    if isinstance(cond, ConditionRef):
        raise ConditionError((*path, "condition"), "named conditions ({condition: NAME}) "
                                                   "belong in a ruleset's rules, not here")
    return _leaf(cond, types, params, path)


def _check_literal(name: str, ftype: ValueType, value: Any, path: tuple[int | str, ...],
                   op: str) -> Any:
    """Check a literal operand fits the fact's type; return it."""
    kind = ftype.kind
    where = (*path, op)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConditionError(where, f"fact {name!r} is a bool; compare it with true or false, "
                                        f"not {value!r}")
        return value
    if kind in _NUMERIC:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConditionError(where, f"fact {name!r} is a number; {value!r} is not")
        return value
    if kind == "category":
        if not isinstance(value, str):
            raise ConditionError(where, f"fact {name!r} is a category; {value!r} is not a name")
        if ftype.values is not None and value not in ftype.values:
            raise ConditionError(
                where, f"{value!r} is not a value of fact {name!r} ({', '.join(ftype.values)})"
            )
        return value
    if kind == "text":
        if not isinstance(value, str):
            raise ConditionError(where, f"fact {name!r} is text; {value!r} is not")
        return value
    raise ConditionError(where, f"fact {name!r} is a date; compare it with within_days, "
                                "older_than_days, after or before")


def _leaf(leaf: Leaf, types: Mapping[str, ValueType], params: Mapping[str, Any],
          path: tuple[int | str, ...]) -> n.Condition:
    name = leaf.fact
    if name not in types:
        known = ", ".join(sorted(types))
        raise ConditionError((*path, "fact"), f"unknown fact {name!r} (known facts: {known})")
    ftype = types[name]
    op = leaf.op
    raw = leaf.operand

    if op == "present":
        return n.Present(name, bool(raw))

    if isinstance(raw, FactRef):
        other = raw.fact
        if other not in types:
            raise ConditionError((*path, op, "fact"), f"unknown fact {other!r}")
        otype = types[other]
        if op in ("after", "before"):
            if ftype.kind != "date" or otype.kind != "date":
                raise ConditionError((*path, op), f"{op} compares two date facts; {name!r} is "
                                                  f"{ftype.describe()}, {other!r} is "
                                                  f"{otype.describe()}")
            return n.CompareFacts(name, op, other)  # type: ignore[arg-type]
        if op in ("equals", "not_equals"):
            if (ftype.kind, ftype.values) != (otype.kind, otype.values) and not (
                ftype.kind in _NUMERIC and otype.kind in _NUMERIC
            ):
                raise ConditionError((*path, op), f"cannot compare {name!r} "
                                                  f"({ftype.describe()}) with {other!r} "
                                                  f"({otype.describe()})")
            return n.CompareFacts(name, op, other)  # type: ignore[arg-type]
        if op in _ORDER_OPS:
            if ftype.kind == "category" and ftype.scale and otype.scale == ftype.scale:
                return n.CompareFacts(name, op, other)  # type: ignore[arg-type]
            if not (ftype.kind in _NUMERIC and otype.kind in _NUMERIC) and not (
                ftype.kind == "date" and otype.kind == "date"
            ):
                raise ConditionError((*path, op), f"{op} needs two numbers, two dates or two "
                                                  f"categories on the same scale; {name!r} is "
                                                  f"{ftype.describe()}, {other!r} is "
                                                  f"{otype.describe()}")
            return n.CompareFacts(name, op, other)  # type: ignore[arg-type]
        raise ConditionError((*path, op), f"{op} does not take a fact operand")

    value = resolve_operand(raw, params, path, op)
    source = f" (parameter {raw.param})" if isinstance(raw, ParamRef) else ""

    if op in ("within_days", "older_than_days"):
        if ftype.kind != "date":
            raise ConditionError((*path, op), f"{op} tests a date fact; {name!r} is "
                                              f"{ftype.describe()}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConditionError((*path, op), f"{op} needs a whole number of days >= 0, "
                                              f"got {value!r}{source}")
        if value > MAX_DAYS:
            raise ConditionError((*path, op), f"{op} of {value} days{source} is longer than "
                                              f"the calendar (at most {MAX_DAYS} days, "
                                              "0001-01-01 to 9999-12-31)")
        return n.DaysAgo(name, op, value)  # type: ignore[arg-type]

    if op in ("after", "before"):
        raise ConditionError((*path, op), f"{op} needs a fact operand: {{fact: NAME}}")

    if op == "in":
        if not isinstance(value, list) or not value:
            raise ConditionError((*path, op), "in needs a non-empty list of values")
        allowed: list[Any] = []
        for x in value:
            x = _check_literal(name, ftype, x, path, op)
            if not any(x == y and type(x) is type(y) for y in allowed):
                allowed.append(x)
        return n.InSet(name, tuple(allowed))

    literal = _check_literal(name, ftype, value, path, op)
    if op in ("equals", "not_equals"):
        return n.Compare(name, op, literal)  # type: ignore[arg-type]
    if ftype.kind == "category":
        if not ftype.scale:
            raise ConditionError((*path, op), f"fact {name!r} is a category without a scale; "
                                              f"{op} needs an ordered scale")
        if literal not in ftype.scale:
            raise ConditionError((*path, op), f"{literal!r} is not on the scale of {name!r}")
        return n.Compare(name, op, literal)  # type: ignore[arg-type]
    if ftype.kind not in _NUMERIC:
        raise ConditionError((*path, op), f"{op} tests numbers or ordered categories; "
                                          f"{name!r} is {ftype.describe()}")
    return n.Compare(name, op, literal)  # type: ignore[arg-type]
