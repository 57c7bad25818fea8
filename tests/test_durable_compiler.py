"""The durable engine's compiler: every operator, and the limits of durable_rules.

The differential test here generates *rules* as well as records: random condition trees over
the bundled facts (every operator, fact-to-fact comparisons, nested all/any/not) under every
hit policy, so each operator's two-valued semantics is checked against the reference engine
far beyond what the bundled rulesets happen to use.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from int_rules import PatientRecord, RulesetError
from int_rules.engines import durable
from int_rules.facts import FactType
from int_rules.language.schema import RulesetFile
from int_rules.rulebook import Rulebook
from tests.bookfactory import CITE, make_book, ruleset, with_ruleset
from tests.strategies import AS_OF, outcome, patient_records

pytest.importorskip("durable_rules_engine", reason="the durable extra is not installed")


# -- generated rules --------------------------------------------------------------------------

_NUMBERS = st.one_of(st.integers(-3, 120), st.sampled_from([0.24, 0.36, 1e-05, 2e16, 6.0, 0.5]),
                     st.floats(-10, 10, allow_nan=False))
_ORDER = ("at_least", "at_most", "greater_than", "less_than")


def _leaves(types: dict[str, FactType]) -> st.SearchStrategy[dict[str, Any]]:
    """Single-fact tests, each fitting its fact's type, over the given facts."""
    by_kind: dict[str, list[str]] = {}
    for name, t in types.items():
        by_kind.setdefault(t.kind, []).append(name)

    def same_type(name: str) -> list[str]:
        t = types[name]
        return [o for o, u in types.items()
                if (u.kind, u.values) == (t.kind, t.values)
                or (t.kind in ("int", "number") and u.kind in ("int", "number"))]

    def for_fact(name: str) -> st.SearchStrategy[dict[str, Any]]:
        t = types[name]
        options: list[st.SearchStrategy[dict[str, Any]]] = [
            st.booleans().map(lambda b: {"fact": name, "present": b}),
        ]
        peers = same_type(name)
        if t.kind == "bool":
            options.append(st.tuples(st.sampled_from(["equals", "not_equals"]), st.booleans())
                           .map(lambda ov: {"fact": name, ov[0]: ov[1]}))
        elif t.kind in ("int", "number"):
            options += [
                st.tuples(st.sampled_from(["equals", "not_equals", *_ORDER]), _NUMBERS)
                .map(lambda ov: {"fact": name, ov[0]: ov[1]}),
                st.lists(_NUMBERS, min_size=1, max_size=4).map(lambda v: {"fact": name, "in": v}),
            ]
        elif t.kind == "date":
            options += [
                st.tuples(st.sampled_from(["within_days", "older_than_days"]),
                          st.integers(0, 4000)).map(lambda ov: {"fact": name, ov[0]: ov[1]}),
                st.tuples(st.sampled_from(["after", "before"]), st.sampled_from(by_kind["date"]))
                .map(lambda ov: {"fact": name, ov[0]: {"fact": ov[1]}}),
            ]
        elif t.kind in ("category", "text"):
            values = list(t.values or ["Stort Valley", "Harlow", "", "é"])
            options += [
                st.tuples(st.sampled_from(["equals", "not_equals"]), st.sampled_from(values))
                .map(lambda ov: {"fact": name, ov[0]: ov[1]}),
                st.lists(st.sampled_from(values), min_size=1, max_size=3)
                .map(lambda v: {"fact": name, "in": v}),
            ]
            if t.scale:
                options.append(st.tuples(st.sampled_from(_ORDER), st.sampled_from(t.scale))
                               .map(lambda ov: {"fact": name, ov[0]: ov[1]}))
        fact_ops = ["equals", "not_equals"]
        if t.kind in ("int", "number", "date") or t.scale:
            fact_ops += list(_ORDER)
        if t.kind != "bool" or len(peers) > 1:
            options.append(st.tuples(st.sampled_from(fact_ops), st.sampled_from(peers))
                           .map(lambda ov: {"fact": name, ov[0]: {"fact": ov[1]}}))
        return st.one_of(options)

    return st.sampled_from(sorted(types)).flatmap(for_fact)


def conditions(types: dict[str, FactType]) -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        _leaves(types),
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=4).map(lambda c: {"all": c}),
            st.lists(inner, min_size=1, max_size=4).map(lambda c: {"any": c}),
            inner.map(lambda c: {"not": c}),
        ),
        max_leaves=8,
    )


def book_with_rules(base: Rulebook, whens: list[dict[str, Any]], policy: str,
                    priorities: list[int] | None = None) -> Rulebook:
    """``base`` with one generated ruleset in place of its own (no YAML files written)."""
    rules = []
    for i, when in enumerate(whens):
        rule: dict[str, Any] = {
            "id": f"GEN-{i:03d}", "title": f"generated {i}", "when": when,
            "then": {"flag": f"r{i}"}, "provenance": "assumption",
            "cite": {"source": "s", "section": "s", "quote": "q"},
        }
        if priorities is not None:
            rule["priority"] = priorities[i]
        rules.append(rule)
    definition = RulesetFile.model_validate({
        "ruleset": "gen", "title": "Generated", "version": "0.0.1", "status": "draft",
        "guidance": ["g"], "hit_policy": policy, "description": "d",
        "outputs": {"flag": {"type": "category", "values": [f"r{i}" for i in range(len(whens))],
                             "description": "d"}},
        "rules": rules,
    })
    return with_ruleset(base, definition)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_generated_rules_agree_on_generated_records(book: Rulebook, data: st.DataObject) -> None:
    types = {name: f.type for name, f in book.facts.items()}
    whens = data.draw(st.lists(conditions(types), min_size=1, max_size=8), label="whens")
    policy = data.draw(st.sampled_from(["collect", "first", "unique", "priority"]),
                       label="policy")
    priorities = None
    if policy == "priority":
        priorities = data.draw(st.lists(st.integers(0, 3), min_size=len(whens),
                                        max_size=len(whens)), label="priorities")
    generated = book_with_rules(book, whens, policy, priorities)
    for record in data.draw(st.lists(patient_records(), min_size=1, max_size=3), label="records"):
        ref = outcome(generated, record, AS_OF, "reference")
        assert outcome(generated, record, AS_OF, "durable") == ref
        assert outcome(generated, record, AS_OF, "generated") == ref


def test_every_operator_negated_and_missing(book: Rulebook) -> None:
    """Each operator, plain and under not, on a record where its fact has a value and one
    where it has none (the two-valued logic: a test of a missing fact is false)."""
    whens = [
        {"fact": "age", "at_least": 65}, {"fact": "clinical_frailty_scale", "greater_than": 5},
        {"fact": "clinical_frailty_scale", "at_most": 6.0}, {"fact": "efi_score", "less_than": 1e-05},
        {"fact": "clinical_frailty_scale", "equals": 6}, {"fact": "clinical_frailty_scale", "not_equals": 6},
        {"fact": "clinical_frailty_scale", "in": [5, 6.0, 7]}, {"fact": "frailty_category", "at_least": "moderate"},
        {"fact": "frailty_category", "greater_than": "severe"}, {"fact": "frailty_category", "not_equals": "mild"},
        {"fact": "frailty_category", "in": ["mild", "severe"]}, {"fact": "last_cga", "within_days": 365},
        {"fact": "last_cga", "older_than_days": 30}, {"fact": "last_cga", "after": {"fact": "caseload_start"}},
        {"fact": "last_cga", "before": {"fact": "caseload_start"}}, {"fact": "last_cga", "present": True},
        {"fact": "last_cga", "present": False}, {"fact": "care_home_resident", "equals": False},
        {"fact": "frailty_category", "at_least": {"fact": "frailty_category_at_last_review"}},
        {"fact": "clinical_frailty_scale", "equals": {"fact": "efi_score"}},
        {"fact": "gp_system", "not_equals": "EMIS"},
    ]
    whens += [{"not": w} for w in whens]
    generated = book_with_rules(book, whens, "collect")
    records = [
        PatientRecord.from_dict({"patient_id": "empty", "date_of_birth": "1950-01-01"}),
        PatientRecord.from_dict({
            "patient_id": "full", "date_of_birth": "1940-01-01", "gp_system": "EMIS",
            "events": [
                {"code": "925861000000102", "date": "2026-01-01"},  # severe frailty
                {"code": "925791000000100", "date": "2025-01-01"},  # mild frailty
                {"code": "836131000000104", "date": "2026-06-01"},  # CGA
                {"code": "818241000000105", "date": "2026-02-01"},  # on the pathway
                {"code": "1026051000000106", "date": "2025-06-01"},  # MDT review
            ],
        }),
    ]
    fired_somewhere = set()
    for record in records:
        ref = generated.assess(record, AS_OF, engine="reference")
        assert generated.assess(record, AS_OF, engine="durable").comparable() == ref.comparable()
        assert generated.assess(record, AS_OF).comparable() == ref.comparable()
        fired_somewhere |= set(ref.rule_ids)
    assert len(fired_somewhere) > len(whens) // 2  # the comparison is not vacuous


# -- durable_rules' limits, guarded at compile time --------------------------------------------

FACTS = """
facts_version: 0.0.1
title: test facts
facts:
  age: {kind: age, description: age}
"""
OUT = "  flag: {type: category, values: [a], description: d}"


def _rules(whens: list[str]) -> str:
    return "".join(f"  - id: TST-{i:03d}\n    title: t\n    when: {w}\n    then: {{flag: a}}\n"
                   f"    provenance: guidance\n    {CITE}\n" for i, w in enumerate(whens, 1))


OLD = PatientRecord.from_dict({"patient_id": "old", "date_of_birth": "1920-01-01"})


def test_a_rule_that_could_overflow_durable_rules_stack_is_a_clear_compile_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    many = ", ".join(f"{{fact: age, at_least: {i}}}" for i in range(70))
    book = make_book(tmp_path, FACTS, {"t": ruleset("t", _rules([f"{{any: [{many}]}}"]), OUT)})
    assert book.assess(OLD, AS_OF).rule_ids == ("TST-001",)  # fine for the reference engine
    with pytest.raises(RulesetError) as err:
        book.assess(OLD, AS_OF, engine="durable")
    message = str(err.value)
    assert re.match(r"^\S*t\.yaml:\d+:\d+: rule TST-001: ", message), message
    assert "64" in message and "split it" in message
    # The guard is not hypothetical: without it durable_rules fails on this record.
    monkeypatch.setattr(durable, "STACK_LIMIT", 10**6)
    unguarded = make_book(tmp_path / "unguarded", FACTS,
                          {"t": ruleset("t", _rules([f"{{any: [{many}]}}"]), OUT)})
    with pytest.raises(durable.DurableEngineError, match="303"):
        unguarded.assess(OLD, AS_OF, engine="durable")


def test_many_rules_that_all_hold_are_spread_over_several_durable_rulesets(
        tmp_path: Path) -> None:
    whens = [f"{{fact: age, at_least: {i}}}" for i in range(100)]  # OLD is 106
    book = make_book(tmp_path, FACTS, {"t": ruleset("t", _rules(whens), OUT)})
    result = book.assess(OLD, AS_OF, engine="durable")
    assert len(result.rule_ids) == 100
    assert result.comparable() == book.assess(OLD, AS_OF).comparable()
    assert sum(name.startswith("rules") for name in durable.definitions(book)) >= 2


def test_a_deeply_nested_condition_is_split_into_patterns_durable_rules_accepts(
        tmp_path: Path) -> None:
    # 20 negated tests: each becomes "absent, or present and failing", an $or per test, more
    # $and/$or operators than durable_rules allows in one pattern (15).
    tests = ", ".join(f"{{not: {{fact: age, equals: {i}}}}}" for i in range(20))
    book = make_book(tmp_path, FACTS, {"t": ruleset("t", _rules([f"{{all: [{tests}]}}"]), OUT)})
    for born in ("1920-01-01", "2016-06-01", "2019-01-01"):
        record = PatientRecord.from_dict({"patient_id": born, "date_of_birth": born})
        want = book.assess(record, AS_OF).comparable()
        assert book.assess(record, AS_OF, engine="durable").comparable() == want


def test_an_exception_inside_an_action_is_raised_not_swallowed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def exploding(rule_id: str) -> Any:
        def fire(run: Any, c: Any) -> None:
            raise LookupError(f"boom in {rule_id}")
        return fire

    monkeypatch.setattr(durable, "_fire", exploding)
    book = make_book(tmp_path, FACTS, {"t": ruleset("t", _rules(["{fact: age, at_least: 1}"]),
                                                    OUT)})
    with pytest.raises(LookupError, match="boom in TST-001"):
        book.assess(OLD, AS_OF, engine="durable")


def test_fact_names_durable_rules_would_confuse_are_a_compile_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # durable_rules matches property names by 32-bit FNV-1a hash; these two collide.
    facts = """
facts_version: 0.0.1
title: t
facts:
  xwx: {kind: age, description: age}
  xnceid: {kind: exists, codelist: cga, description: any CGA}
"""
    rules = _rules(["{all: [{fact: xwx, at_least: 65}, {fact: xnceid, equals: false}]}"])
    book = make_book(tmp_path, facts, {"t": ruleset("t", rules, OUT)})
    assert book.assess(OLD, AS_OF).rule_ids == ("TST-001",)
    with pytest.raises(RulesetError, match="fact 'xwx' from fact 'xnceid'") as err:
        book.assess(OLD, AS_OF, engine="durable")
    assert "facts.yaml" in str(err.value)
    # Not hypothetical: unchecked, durable_rules silently gives the wrong answer.
    monkeypatch.setattr(durable, "_check_hashes", lambda keys, where: None)
    unchecked = make_book(tmp_path / "unchecked", facts, {"t": ruleset("t", rules, OUT)})
    assert unchecked.assess(OLD, AS_OF, engine="durable").rule_ids == ()


def test_a_finaliser_during_compilation_cannot_deadlock() -> None:
    """Garbage collection can free an old rulebook while another compiles, running its
    finaliser on the compiling thread inside the cache lock; that must not wait for itself."""
    import threading

    from int_rules.engines import durable

    done = threading.Event()

    def compile_then_collect() -> None:
        with durable._CACHE_LOCK:  # as _compiled holds it while compiling
            durable._evict(-1, object())  # the finaliser of a freed book, on this thread
        done.set()

    threading.Thread(target=compile_then_collect, daemon=True).start()
    assert done.wait(10), "evicting inside the cache lock deadlocked"
