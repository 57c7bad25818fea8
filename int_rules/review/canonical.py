"""A canonical form of condition trees: two conditions with the same meaning get the same form.

Used by ``int-rules diff`` to tell a *rewrite* (the condition is written differently but means
the same) from a *change*. The normal form:

* named conditions (``{condition: NAME}``) are replaced by what they name;
* nested ``all`` inside ``all`` (and ``any`` inside ``any``) are flattened, which is what
  removing redundant parentheses means in the tree;
* operands of ``all`` / ``any`` are sorted (both are commutative) and repeats dropped (both are
  idempotent); an ``all`` or ``any`` of one condition is that condition;
* ``not`` of ``not`` is dropped (the language's logic is two-valued: a test of a missing value
  is false, and ``not`` negates that plainly);
* ``in`` with a written list has its values sorted and repeats dropped, and ``in`` of one value
  is ``equals`` that value (both are false for a missing value).

Other operators are left as written: ``not {equals: x}`` is true for a missing value while
``{not_equals: x}`` is false, so they are different meanings and stay different.

:func:`meaning_key` compares conditions with parameters resolved to their values, so a
parameter whose value changes changes the meaning of every condition that reads it. The
functions take the language models (``AllOf``, ``AnyOf``, ``Not``, ``Leaf``, ``ConditionRef``)
and nothing else, so they can later be pointed at the compiled model's condition nodes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..language.schema import AllOf, AnyOf, Condition, ConditionRef, Leaf, Not, ParamRef

__all__ = ["canonical", "meaning_key", "same_meaning"]


def canonical(cond: Condition, named: Mapping[str, Condition] | None = None,
              params: Mapping[str, Any] | None = None) -> Condition:
    """The normal form of ``cond`` (see the module docs). ``named``: the ruleset's named
    conditions; ``params``: parameter values, used only to order operands stably."""
    named = named or {}
    params = params or {}
    return _canon(cond, named, params, ())


def meaning_key(cond: Condition, named: Mapping[str, Condition] | None = None,
                params: Mapping[str, Any] | None = None) -> str:
    """A string that is equal for two conditions exactly when their normal forms are equal,
    with every parameter replaced by its value."""
    params = params or {}
    return _key(canonical(cond, named, params), params)


def same_meaning(a: Condition, b: Condition, named_a: Mapping[str, Condition] | None = None,
                 named_b: Mapping[str, Condition] | None = None,
                 params_a: Mapping[str, Any] | None = None,
                 params_b: Mapping[str, Any] | None = None) -> bool:
    """Whether ``a`` (with its named conditions and parameters) means what ``b`` means."""
    return meaning_key(a, named_a, params_a) == meaning_key(b, named_b, params_b)


def _canon(cond: Condition, named: Mapping[str, Condition], params: Mapping[str, Any],
           trail: tuple[str, ...]) -> Condition:
    if isinstance(cond, ConditionRef):
        name = cond.condition
        if name not in named or name in trail:  # unknown or cyclic: the loader reports it
            return cond
        return _canon(named[name], named, params, (*trail, name))
    if isinstance(cond, Not):
        inner = _canon(cond.not_, named, params, trail)
        if isinstance(inner, Not):
            return inner.not_
        return Not.model_construct(not_=inner)
    if isinstance(cond, (AllOf, AnyOf)):
        kind = type(cond)
        parts = cond.all if isinstance(cond, AllOf) else cond.any
        flat: list[Condition] = []
        for part in parts:
            c = _canon(part, named, params, trail)
            if isinstance(c, kind):
                flat.extend(c.all if isinstance(c, AllOf) else c.any)
            else:
                flat.append(c)
        unique: dict[str, Condition] = {}
        for c in flat:
            unique.setdefault(_key(c, params), c)
        ordered = [unique[k] for k in sorted(unique)]
        if len(ordered) == 1:
            return ordered[0]
        if kind is AllOf:
            return AllOf.model_construct(all=ordered)
        return AnyOf.model_construct(any=ordered)
    if isinstance(cond, Leaf) and cond.op == "in" and isinstance(cond.in_, list):
        values = sorted(set(cond.in_), key=_scalar_key)
        if len(values) == 1:
            return Leaf.model_construct(fact=cond.fact, equals=values[0])
        return Leaf.model_construct(fact=cond.fact, in_=values)
    return cond


def _scalar_key(value: Any) -> str:
    return json.dumps([type(value).__name__, value], default=str)


def _plain(cond: Condition, params: Mapping[str, Any]) -> Any:
    if isinstance(cond, AllOf):
        return {"all": [_plain(c, params) for c in cond.all]}
    if isinstance(cond, AnyOf):
        return {"any": [_plain(c, params) for c in cond.any]}
    if isinstance(cond, Not):
        return {"not": _plain(cond.not_, params)}
    if isinstance(cond, ConditionRef):
        return {"condition": cond.condition}
    operand = cond.operand
    if isinstance(operand, ParamRef):
        operand = {"param": operand.param, "value": params.get(operand.param)}
    elif hasattr(operand, "model_dump"):
        operand = operand.model_dump()
    # bool before int: True and 1 are different values in the language
    return {"fact": cond.fact, cond.op: [type(operand).__name__, operand]}


def _key(cond: Condition, params: Mapping[str, Any]) -> str:
    return json.dumps(_plain(cond, params), sort_keys=True, default=str)
