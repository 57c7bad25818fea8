"""Conditions: type-check a ``when`` tree against fact types and compile it to a closure.

A compiled condition is a function of the fact values (a dict name -> value) returning a bool.
Parameters are resolved at compile time, so evaluation does no lookups beyond the fact values.

Semantics (the same in every engine): two-valued logic. A test of a fact with no value
(``None``) is false, whatever the operator, except ``present: false``; ``not`` negates plainly;
a test against another fact (``{fact: other}``) that has no value is false.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .facts import FactType
from .language.schema import AllOf, AnyOf, Condition, ConditionRef, FactRef, Leaf, Not, ParamRef

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
    """A condition ready to evaluate: ``test(values) -> bool``, the facts it reads, and the
    Python expression it was compiled to (for debugging and for other engines to inspect)."""

    test: Test
    facts: tuple[str, ...]
    source: str = ""


_NUMERIC = {"int", "number"}
_ORDER_SYMBOLS = {"at_least": ">=", "at_most": "<=", "greater_than": ">", "less_than": "<"}


def leaves(cond: Condition) -> list[Leaf]:
    """Every leaf test in a condition tree, in order."""
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

    The condition becomes one Python expression over the fact values ``v`` (a dict), e.g.
    ``((_0 := v['age']) is not None and _0 >= c0) and v['frailty'] == c1``: one call per rule
    instead of one per test. The expression is assembled only from the fixed templates below;
    fact names are identifiers checked by the schema and every literal or parameter value is
    bound by name (``c0``, ``c1``...), never spliced in as text.
    """
    gen = _Gen(fact_types, params)
    expr = gen.expr(cond, path)
    namespace: dict[str, Any] = {"__builtins__": {}, **gen.consts}
    test = eval(f"lambda v: {expr}", namespace)  # safe: see the docstring
    return CompiledCondition(test=test, facts=tuple(facts_read(cond)), source=expr)


class _Gen:
    """Builds the expression of one condition, collecting its constants."""

    def __init__(self, types: Mapping[str, FactType], params: Mapping[str, Any]) -> None:
        self.types = types
        self.params = params
        self.consts: dict[str, Any] = {}
        self.temps = 0

    def const(self, value: Any) -> str:
        name = f"c{len(self.consts)}"
        self.consts[name] = value
        return name

    def temp(self) -> str:
        name = f"_{self.temps}"
        self.temps += 1
        return name

    def expr(self, cond: Condition, path: tuple[int | str, ...]) -> str:
        if isinstance(cond, AllOf):
            parts = [self.expr(c, (*path, "all", i)) for i, c in enumerate(cond.all)]
            return "(" + " and ".join(parts) + ")"
        if isinstance(cond, AnyOf):
            parts = [self.expr(c, (*path, "any", i)) for i, c in enumerate(cond.any)]
            return "(" + " or ".join(parts) + ")"
        if isinstance(cond, Not):
            return f"(not {self.expr(cond.not_, (*path, 'not'))})"
        if isinstance(cond, ConditionRef):
            raise ConditionError((*path, "condition"), "named conditions ({condition: NAME}) "
                                                       "belong in a ruleset's rules, not here")
        return _leaf_expr(cond, self, path)


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


def _leaf_expr(leaf: Leaf, gen: _Gen, path: tuple[int | str, ...]) -> str:
    """One test as an expression; every check of the operand's type against the fact's."""
    types, params = gen.types, gen.params
    name = leaf.fact
    if name not in types:
        known = ", ".join(sorted(types))
        raise ConditionError((*path, "fact"), f"unknown fact {name!r} (known facts: {known})")
    ftype = types[name]
    op = leaf.op
    raw = leaf.operand
    ref = f"v[{name!r}]"

    if op == "present":
        return f"{ref} is not None" if raw else f"{ref} is None"

    if isinstance(raw, FactRef):
        other = raw.fact
        if other not in types:
            raise ConditionError((*path, op, "fact"), f"unknown fact {other!r}")
        otype = types[other]
        a, b = gen.temp(), gen.temp()
        both = f"({a} := {ref}) is not None and ({b} := v[{other!r}]) is not None"
        if op in ("after", "before"):
            if ftype.kind != "date" or otype.kind != "date":
                raise ConditionError((*path, op), f"{op} compares two date facts; {name!r} is "
                                                  f"{ftype.describe()}, {other!r} is "
                                                  f"{otype.describe()}")
            return f"({both} and {a} {'>' if op == 'after' else '<'} {b})"
        if op in ("equals", "not_equals"):
            if (ftype.kind, ftype.values) != (otype.kind, otype.values) and not (
                ftype.kind in _NUMERIC and otype.kind in _NUMERIC
            ):
                raise ConditionError((*path, op), f"cannot compare {name!r} "
                                                  f"({ftype.describe()}) with {other!r} "
                                                  f"({otype.describe()})")
            return f"({both} and {a} {'==' if op == 'equals' else '!='} {b})"
        if op in _ORDER_SYMBOLS:
            symbol = _ORDER_SYMBOLS[op]
            if ftype.kind == "category" and ftype.scale and otype.scale == ftype.scale:
                rank = gen.const({c: i for i, c in enumerate(ftype.scale)})
                return f"({both} and {rank}[{a}] {symbol} {rank}[{b}])"
            if not (ftype.kind in _NUMERIC and otype.kind in _NUMERIC) and not (
                ftype.kind == "date" and otype.kind == "date"
            ):
                raise ConditionError((*path, op), f"{op} needs two numbers, two dates or two "
                                                  f"categories on the same scale; {name!r} is "
                                                  f"{ftype.describe()}, {other!r} is "
                                                  f"{otype.describe()}")
            return f"({both} and {a} {symbol} {b})"
        raise ConditionError((*path, op), f"{op} does not take a fact operand")

    value = resolve(raw, params, path, op)

    if op in ("within_days", "older_than_days"):
        if ftype.kind != "date":
            raise ConditionError((*path, op), f"{op} tests a date fact; {name!r} is "
                                              f"{ftype.describe()}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConditionError((*path, op), f"{op} needs a whole number of days >= 0, "
                                              f"got {value!r}")
        span = gen.const(dt.timedelta(days=value))
        d = gen.temp()
        as_of = "v['__as_of__']"
        if op == "within_days":
            return f"(({d} := {ref}) is not None and {as_of} - {span} <= {d} <= {as_of})"
        return f"(({d} := {ref}) is not None and {as_of} - {d} > {span})"

    if op in ("after", "before"):
        raise ConditionError((*path, op), f"{op} needs a fact operand: {{fact: NAME}}")

    if op == "in":
        if not isinstance(value, list) or not value:
            raise ConditionError((*path, op), "in needs a non-empty list of values")
        allowed = frozenset(_check_literal(name, ftype, x, path, op) for x in value)
        return f"({ref} in {gen.const(allowed)})"

    literal = gen.const(_check_literal(name, ftype, value, path, op))
    x = gen.temp()
    if op == "equals":
        return f"({ref} == {literal})"
    if op == "not_equals":
        return f"(({x} := {ref}) is not None and {x} != {literal})"

    symbol = _ORDER_SYMBOLS[op]
    if ftype.kind == "category":
        if not ftype.scale:
            raise ConditionError((*path, op), f"fact {name!r} is a category without a scale; "
                                              f"{op} needs an ordered scale")
        rank_of = {c: i for i, c in enumerate(ftype.scale)}
        threshold = gen.consts[literal]
        if threshold not in rank_of:
            raise ConditionError((*path, op), f"{threshold!r} is not on the scale of {name!r}")
        rank = gen.const(rank_of)
        level = gen.const(rank_of[threshold])
        return f"(({x} := {ref}) is not None and {rank}[{x}] {symbol} {level})"
    if ftype.kind not in _NUMERIC:
        raise ConditionError((*path, op), f"{op} tests numbers or ordered categories; "
                                          f"{name!r} is {ftype.describe()}")
    return f"(({x} := {ref}) is not None and {x} {symbol} {literal})"
