"""The canonical form of conditions behind the semantic diff: a rewrite keeps the meaning, and
the form says so; a change of meaning never looks like a rewrite (issue 17)."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from int_rules.conditions import compile_condition
from int_rules.facts import FactType
from int_rules.language.schema import Condition
from int_rules.review.canonical import canonical, meaning_key, same_meaning

TYPES = {"n": FactType("number"), "b": FactType("bool"),
         "c": FactType("category", ("x", "y", "z"))}
VALUES: dict[str, list[Any]] = {"n": [None, 0, 1, 2, 3], "b": [None, True, False],
                                "c": [None, "x", "y", "z"]}
ASSIGNMENTS = [dict(zip(VALUES, combo, strict=True))
               for combo in itertools.product(*VALUES.values())]
ADAPTER: TypeAdapter[Condition] = TypeAdapter(Condition)

leaves = st.one_of(
    st.builds(lambda k: {"fact": "n", "at_least": k}, st.integers(0, 3)),
    st.builds(lambda k: {"fact": "n", "less_than": k}, st.integers(0, 3)),
    st.builds(lambda v: {"fact": "b", "equals": v}, st.booleans()),
    st.builds(lambda vs: {"fact": "c", "in": vs},
              st.lists(st.sampled_from(["x", "y", "z"]), min_size=1, max_size=3)),
    st.builds(lambda v: {"fact": "c", "equals": v}, st.sampled_from(["x", "y", "z"])),
    st.builds(lambda p: {"fact": "n", "present": p}, st.booleans()),
)
trees = st.recursive(leaves, lambda kids: st.one_of(
    st.builds(lambda xs: {"all": xs}, st.lists(kids, min_size=1, max_size=3)),
    st.builds(lambda xs: {"any": xs}, st.lists(kids, min_size=1, max_size=3)),
    st.builds(lambda x: {"not": x}, kids),
), max_leaves=8)


def _truth(raw: Any) -> tuple[bool, ...]:
    cond = ADAPTER.validate_python(raw)
    test = compile_condition(cond, TYPES, {}).test
    return tuple(bool(test(v)) for v in ASSIGNMENTS)


def _truth_of(cond: Condition) -> tuple[bool, ...]:
    test = compile_condition(cond, TYPES, {}).test
    return tuple(bool(test(v)) for v in ASSIGNMENTS)


@settings(max_examples=150, deadline=None)
@given(trees)
def test_the_canonical_form_means_what_the_condition_means(raw: Any) -> None:
    cond = ADAPTER.validate_python(raw)
    form = canonical(cond)
    assert _truth_of(form) == _truth(raw)
    assert meaning_key(form) == meaning_key(cond)  # idempotent


@settings(max_examples=150, deadline=None)
@given(st.lists(trees, min_size=2, max_size=4), st.randoms(use_true_random=False))
def test_reordering_and_regrouping_is_a_rewrite(parts: list[Any], rnd: Any) -> None:
    shuffled = list(parts)
    rnd.shuffle(shuffled)
    a = ADAPTER.validate_python({"all": parts})
    # the same operands, shuffled, with the first two in extra parentheses and one repeated
    b = ADAPTER.validate_python({"all": [{"all": shuffled[:2]}, *shuffled[2:], shuffled[0]]})
    assert same_meaning(a, b)


@settings(max_examples=150, deadline=None)
@given(trees, trees)
def test_equal_forms_only_for_equal_meanings(x: Any, y: Any) -> None:
    a, b = ADAPTER.validate_python(x), ADAPTER.validate_python(y)
    if same_meaning(a, b):
        assert _truth(x) == _truth(y)


def test_named_conditions_and_parameters_are_resolved() -> None:
    named = {"old": ADAPTER.validate_python({"fact": "n", "at_least": {"param": "k"}})}
    a = ADAPTER.validate_python({"all": [{"condition": "old"}, {"fact": "b", "equals": True}]})
    b = ADAPTER.validate_python({"all": [{"fact": "b", "equals": True},
                                         {"fact": "n", "at_least": {"param": "k"}}]})
    assert same_meaning(a, b, named, {}, {"k": 2}, {"k": 2})
    assert not same_meaning(a, b, named, {}, {"k": 2}, {"k": 3})  # the value moved


def test_different_operators_stay_different() -> None:
    # not(equals) is true for a missing value, not_equals is false: not a rewrite
    a = ADAPTER.validate_python({"not": {"fact": "c", "equals": "x"}})
    b = ADAPTER.validate_python({"fact": "c", "not_equals": "x"})
    assert not same_meaning(a, b)
    assert _truth_of(a) != _truth_of(b)
    # all and any are not interchangeable, and true is not 1
    assert not same_meaning(ADAPTER.validate_python({"all": [{"fact": "b", "equals": True},
                                                             {"fact": "n", "at_least": 1}]}),
                            ADAPTER.validate_python({"any": [{"fact": "b", "equals": True},
                                                             {"fact": "n", "at_least": 1}]}))
    assert not same_meaning(ADAPTER.validate_python({"fact": "n", "equals": 1}),
                            ADAPTER.validate_python({"fact": "n", "equals": True}))
