"""Conditions: type-check a ``when`` tree against fact types and compile it to a closure.

A compiled condition is a function of the fact values (a dict name -> value) returning a bool.
Parameters are resolved at compile time, so evaluation does no lookups beyond the fact values.

Semantics (the same in every engine): two-valued logic. A test of a fact with no value
(``None``) is false, whatever the operator, except ``present: false``; ``not`` negates plainly;
a test against another fact (``{fact: other}``) that has no value is false.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .facts import FactType
from .language.schema import AllOf, AnyOf, Condition, FactRef, Leaf, Not, ParamRef

__all__ = ["CompiledCondition", "ConditionError", "compile_condition", "facts_read", "leaves"]

Values = Mapping[str, Any]
Test = Callable[[Values], bool]


class ConditionError(Exception):
    """A condition that does not fit its facts; ``path`` locates it inside the ``when`` tree."""

    def __init__(self, path: tuple[int | str, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclass(frozen=True)
class CompiledCondition:
    test: Test
    facts: tuple[str, ...]


_NUMERIC = {"int", "number"}
_ORDER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "at_least": operator.ge,
    "at_most": operator.le,
    "greater_than": operator.gt,
    "less_than": operator.lt,
}


def leaves(cond: Condition) -> list[Leaf]:
    """Every leaf test in a condition tree, in order."""
    if isinstance(cond, Leaf):
        return [cond]
    if isinstance(cond, AllOf):
        return [leaf for c in cond.all for leaf in leaves(c)]
    if isinstance(cond, AnyOf):
        return [leaf for c in cond.any for leaf in leaves(c)]
    return leaves(cond.not_)


def facts_read(cond: Condition) -> list[str]:
    """Every fact a condition reads (tested facts and fact operands), first appearance order."""
    out: list[str] = []
    for leaf in leaves(cond):
        for name in (leaf.fact, _fact_operand(leaf)):
            if name is not None and name not in out:
                out.append(name)
    return out


def _fact_operand(leaf: Leaf) -> str | None:
    operand = leaf.operand
    return operand.fact if isinstance(operand, FactRef) else None


def compile_condition(
    cond: Condition,
    fact_types: Mapping[str, FactType],
    params: Mapping[str, Any],
    path: tuple[int | str, ...] = (),
) -> CompiledCondition:
    """Type-check ``cond`` and return its compiled test; raise ConditionError where it is wrong.

    ``params`` maps parameter names visible here to their (already overridden) values.
    """
    test = _compile(cond, fact_types, params, path)
    return CompiledCondition(test=test, facts=tuple(facts_read(cond)))


def _compile(cond: Condition, types: Mapping[str, FactType], params: Mapping[str, Any],
             path: tuple[int | str, ...]) -> Test:
    if isinstance(cond, AllOf):
        parts = tuple(_compile(c, types, params, (*path, "all", i)) for i, c in enumerate(cond.all))
        if len(parts) == 2:
            a, b = parts
            return lambda v: a(v) and b(v)
        return lambda v: all(p(v) for p in parts)
    if isinstance(cond, AnyOf):
        parts = tuple(_compile(c, types, params, (*path, "any", i)) for i, c in enumerate(cond.any))
        if len(parts) == 2:
            a, b = parts
            return lambda v: a(v) or b(v)
        return lambda v: any(p(v) for p in parts)
    if isinstance(cond, Not):
        inner = _compile(cond.not_, types, params, (*path, "not"))
        return lambda v: not inner(v)
    return _compile_leaf(cond, types, params, path)


def resolve(operand: Any, params: Mapping[str, Any], path: tuple[int | str, ...], op: str) -> Any:
    """The literal value of an operand, reading ``{param: name}`` from ``params``."""
    if isinstance(operand, ParamRef):
        if operand.param not in params:
            known = ", ".join(sorted(params)) or "none"
            raise ConditionError((*path, op, "param"),
                                 f"unknown parameter {operand.param!r} (known: {known})")
        return params[operand.param]
    return operand


def _check_literal(name: str, ftype: FactType, value: Any, path: tuple[int | str, ...],
                   op: str) -> Any:
    """Check a literal operand fits the fact's type; return it in the type compared at runtime."""
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


def _compile_leaf(leaf: Leaf, types: Mapping[str, FactType], params: Mapping[str, Any],
                  path: tuple[int | str, ...]) -> Test:
    name = leaf.fact
    if name not in types:
        known = ", ".join(sorted(types))
        raise ConditionError((*path, "fact"), f"unknown fact {name!r} (known facts: {known})")
    ftype = types[name]
    op = leaf.op
    raw = leaf.operand

    if op == "present":
        wanted = bool(raw)
        return (lambda v: v[name] is not None) if wanted else (lambda v: v[name] is None)

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
            cmp = operator.gt if op == "after" else operator.lt
        elif op in ("equals", "not_equals"):
            if (ftype.kind, ftype.values) != (otype.kind, otype.values) and not (
                ftype.kind in _NUMERIC and otype.kind in _NUMERIC
            ):
                raise ConditionError((*path, op), f"cannot compare {name!r} "
                                                  f"({ftype.describe()}) with {other!r} "
                                                  f"({otype.describe()})")
            cmp = operator.eq if op == "equals" else operator.ne
        elif op in _ORDER_OPS:
            if ftype.kind == "category" and ftype.scale and otype.scale == ftype.scale:
                rank = {c: i for i, c in enumerate(ftype.scale)}
                order = _ORDER_OPS[op]

                def by_rank(v: Values) -> bool:
                    a, b = v[name], v[other]
                    return a is not None and b is not None and order(rank[a], rank[b])

                return by_rank
            if not (ftype.kind in _NUMERIC and otype.kind in _NUMERIC) and not (
                ftype.kind == "date" and otype.kind == "date"
            ):
                raise ConditionError((*path, op), f"{op} needs two numbers, two dates or two "
                                                  f"categories on the same scale; {name!r} is "
                                                  f"{ftype.describe()}, {other!r} is "
                                                  f"{otype.describe()}")
            cmp = _ORDER_OPS[op]
        else:
            raise ConditionError((*path, op), f"{op} does not take a fact operand")

        def against_fact(v: Values) -> bool:
            a, b = v[name], v[other]
            return a is not None and b is not None and bool(cmp(a, b))

        return against_fact

    value = resolve(raw, params, path, op)

    if op in ("within_days", "older_than_days"):
        if ftype.kind != "date":
            raise ConditionError((*path, op), f"{op} tests a date fact; {name!r} is "
                                              f"{ftype.describe()}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConditionError((*path, op), f"{op} needs a whole number of days >= 0, "
                                              f"got {value!r}")
        span = dt.timedelta(days=value)
        return _days_test(name, span, within=(op == "within_days"))

    if op in ("after", "before"):
        raise ConditionError((*path, op), f"{op} needs a fact operand: {{fact: NAME}}")

    if op == "in":
        if not isinstance(value, list) or not value:
            raise ConditionError((*path, op), "in needs a non-empty list of values")
        allowed = frozenset(_check_literal(name, ftype, x, path, op) for x in value)
        return lambda v: v[name] in allowed

    literal = _check_literal(name, ftype, value, path, op)
    if op == "equals":
        return lambda v: v[name] == literal
    if op == "not_equals":
        return lambda v: (x := v[name]) is not None and x != literal

    order = _ORDER_OPS[op]
    if ftype.kind == "category":
        if not ftype.scale:
            raise ConditionError((*path, op), f"fact {name!r} is a category without a scale; "
                                              f"{op} needs an ordered scale")
        rank = {c: i for i, c in enumerate(ftype.scale)}
        if literal not in rank:
            raise ConditionError((*path, op), f"{literal!r} is not on the scale of {name!r}")
        threshold = rank[literal]
        return lambda v: (x := v[name]) is not None and order(rank[x], threshold)
    if ftype.kind not in _NUMERIC:
        raise ConditionError((*path, op), f"{op} tests numbers or ordered categories; "
                                          f"{name!r} is {ftype.describe()}")
    return lambda v: (x := v[name]) is not None and order(x, literal)


def _days_test(name: str, span: dt.timedelta, within: bool) -> Test:
    as_of_key = "__as_of__"
    if within:
        def within_test(v: Values) -> bool:
            d = v[name]
            as_of: dt.date = v[as_of_key]
            return d is not None and as_of - span <= d <= as_of
        return within_test

    def older_test(v: Values) -> bool:
        d = v[name]
        as_of: dt.date = v[as_of_key]
        return d is not None and (as_of - d) > span
    return older_test
