"""What each fact kind, window, operator and hit policy means, on small purpose-built rulebooks.

These pin down the reference semantics every engine must reproduce.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from int_rules import HitPolicyError, PatientRecord
from int_rules.rulebook import Rulebook
from tests.bookfactory import CITE, make_book, ruleset

SEVERE, MODERATE, MILD = "925861000000102", "925831000000107", "925791000000100"
CGA, ENROL, MDT = "836131000000104", "818241000000105", "1026051000000106"
HOUSEBOUND, NO_LONGER_HOUSEBOUND = "160689007", "760661000000106"
UNRELATED = "22298006"  # myocardial infarction: in no bundled codelist
AS_OF = dt.date(2026, 11, 23)

FACTS = """
facts_version: 0.0.1
title: test facts
parameters:
  lookback: {value: 30, provenance: local-policy, why: test}
facts:
  age: {kind: age, description: age}
  frailty:
    kind: latest_of
    description: frailty category
    categories: {severe: frailty_severe, moderate: frailty_moderate, mild: frailty_mild}
    scale: [mild, moderate, severe]
  housebound:
    kind: latest_of
    description: housebound status
    categories: {housebound: housebound, no_longer: no_longer_housebound}
  cga_ever: {kind: exists, codelist: cga, description: any CGA}
  cga_recent: {kind: exists, codelist: cga, within_days: {param: lookback}, description: recent}
  cga_count: {kind: count, codelist: cga, description: CGAs}
  last_cga: {kind: latest_date, codelist: cga, description: last CGA}
  first_cga: {kind: first_date, codelist: cga, description: first CGA}
  enrolled: {kind: latest_date, codelist: int_on_pathway, description: enrolment}
  cga_from_enrolment: {kind: exists, codelist: cga, from: enrolled, description: CGA on/after}
  cga_since_enrolment: {kind: exists, codelist: cga, since: enrolled, description: CGA after}
  frailty_at_enrolment:
    kind: latest_of
    description: frailty at enrolment
    categories: {severe: frailty_severe, moderate: frailty_moderate, mild: frailty_mild}
    scale: [mild, moderate, severe]
    until: enrolled
  cfs: {kind: latest_value, codelist: clinical_frailty_scale, description: CFS score}
  emergencies: {kind: count, source: admissions, where: {emergency: true}, description: n}
  risk: {kind: latest_value, source: risk_scores, where: {source: DELPPHI}, description: r}
  future_events: {kind: count, window: after_as_of, description: future}
  before_birth: {kind: count, window: before_birth, description: before birth}
  state: {kind: pathway, field: state, description: pathway state}
  gp: {kind: attribute, field: gp_system, description: gp system}
  severe_and_old:
    kind: derived
    description: severe frailty at 80 or over
    when: {all: [{fact: frailty, equals: severe}, {fact: age, at_least: 80}]}
"""

OUT = "  flag: {type: category, values: [a, b, c], description: d}"


def book_with(tmp_path: Path, rules: str, hit_policy: str = "collect",
              parameters: str = "{}") -> Rulebook:
    return make_book(tmp_path, FACTS,
                     {"t": ruleset("t", rules, OUT, hit_policy, parameters)})


def rule(rid: str, when: str, flag: str = "a", extra: str = "") -> str:
    return f"  - id: {rid}\n    title: {rid}\n    when: {when}\n    then: {{flag: {flag}}}\n" \
           f"    provenance: guidance\n    {CITE}\n{extra}"


def record(*events: tuple[str, str], **kw: Any) -> PatientRecord:
    data: dict[str, Any] = {"patient_id": "T1", "date_of_birth": "1940-06-15",
                            "events": [{"code": c, "date": d} for c, d in events]}
    data.update(kw)
    return PatientRecord.from_dict(data)


@pytest.fixture(scope="module")
def facts_book(tmp_path_factory: pytest.TempPathFactory) -> Rulebook:
    return book_with(tmp_path_factory.mktemp("facts"), rule("TST-001", "{fact: cga_ever, equals: true}"))


def values(book: Rulebook, rec: PatientRecord, as_of: dt.date = AS_OF) -> dict[str, Any]:
    return dict(book.assess(rec, as_of).values)


def test_latest_of_takes_latest_category_and_first_listed_on_same_day(facts_book: Rulebook) -> None:
    assert values(facts_book, record((MILD, "2024-01-01"), (SEVERE, "2023-01-01")))["frailty"] == "mild"
    same_day = record((MILD, "2024-01-01"), (SEVERE, "2024-01-01"))
    assert values(facts_book, same_day)["frailty"] == "severe"
    assert values(facts_book, record())["frailty"] is None


def test_later_code_supersedes(facts_book: Rulebook) -> None:
    rec = record((HOUSEBOUND, "2024-01-01"), (NO_LONGER_HOUSEBOUND, "2025-01-01"))
    assert values(facts_book, rec)["housebound"] == "no_longer"
    assert values(facts_book, rec, dt.date(2024, 6, 1))["housebound"] == "housebound"


def test_events_after_as_of_are_invisible_except_to_after_as_of_window(facts_book: Rulebook) -> None:
    rec = record((CGA, "2026-11-24"), (CGA, "2026-11-23"))
    v = values(facts_book, rec)
    assert v["cga_count"] == 1 and v["last_cga"] == dt.date(2026, 11, 23)
    assert v["future_events"] == 1


def test_within_days_is_inclusive_at_both_ends(facts_book: Rulebook) -> None:
    assert values(facts_book, record((CGA, "2026-10-24")))["cga_recent"] is True  # 30 days
    assert values(facts_book, record((CGA, "2026-10-23")))["cga_recent"] is False  # 31 days


def test_from_is_on_or_after_and_since_is_strictly_after(facts_book: Rulebook) -> None:
    same_day = values(facts_book, record((ENROL, "2025-01-01"), (CGA, "2025-01-01")))
    assert same_day["cga_from_enrolment"] is True
    assert same_day["cga_since_enrolment"] is False
    unanchored = values(facts_book, record((CGA, "2025-01-01")))
    assert unanchored["cga_from_enrolment"] is True  # no anchor: no lower limit


def test_until_reads_the_state_at_the_anchor_and_nothing_without_it(facts_book: Rulebook) -> None:
    rec = record((MILD, "2024-01-01"), (ENROL, "2024-06-01"), (SEVERE, "2025-01-01"))
    v = values(facts_book, rec)
    assert (v["frailty_at_enrolment"], v["frailty"]) == ("mild", "severe")
    assert values(facts_book, record((MILD, "2024-01-01")))["frailty_at_enrolment"] is None


def test_counts_dates_values_and_sources(facts_book: Rulebook) -> None:
    rec = PatientRecord.from_dict({
        "patient_id": "T2", "date_of_birth": "1940-06-15", "gp_system": "emis",
        "events": [{"code": CGA, "date": "2025-03-01"}, {"code": CGA, "date": "2024-03-01"},
                   {"code": "763264000", "date": "2025-01-01", "value": 6},
                   {"code": "763264000", "date": "2025-02-01"},
                   {"code": UNRELATED, "date": "1930-01-01"}],
        "admissions": [{"admitted": "2025-01-01", "emergency": True},
                       {"admitted": "2025-02-01", "emergency": False},
                       {"admitted": "2027-01-01", "emergency": True}],
        "risk_scores": [{"date": "2026-01-01", "value": 0.3, "source": "DELPPHI"},
                        {"date": "2026-02-01", "value": 0.9, "source": "OTHER"}],
    })
    v = values(facts_book, rec)
    assert v["cga_count"] == 2
    assert (v["first_cga"], v["last_cga"]) == (dt.date(2024, 3, 1), dt.date(2025, 3, 1))
    assert v["cfs"] == 6.0  # latest *with a value*
    assert v["emergencies"] == 1
    assert v["risk"] == 0.3
    assert v["gp"] == "EMIS"
    assert v["before_birth"] == 1
    assert v["age"] == 86


def test_age_counts_whole_years(facts_book: Rulebook) -> None:
    rec = record()
    assert values(facts_book, rec, dt.date(2026, 6, 14))["age"] == 85
    assert values(facts_book, rec, dt.date(2026, 6, 15))["age"] == 86


@pytest.mark.parametrize(("when", "events", "fires"), [
    ("{fact: frailty, at_least: moderate}", [(MODERATE, "2025-01-01")], True),
    ("{fact: frailty, at_least: moderate}", [(MILD, "2025-01-01")], False),
    ("{fact: frailty, at_least: moderate}", [], False),
    ("{not: {fact: frailty, at_least: moderate}}", [], True),
    ("{fact: frailty, not_equals: severe}", [], False),
    ("{fact: frailty, not_equals: severe}", [(MILD, "2025-01-01")], True),
    ("{fact: frailty, in: [mild, moderate]}", [(MILD, "2025-01-01")], True),
    ("{fact: frailty, present: false}", [], True),
    ("{fact: last_cga, within_days: 30}", [(CGA, "2026-10-24")], True),
    ("{fact: last_cga, older_than_days: 30}", [(CGA, "2026-10-24")], False),
    ("{fact: last_cga, older_than_days: 30}", [(CGA, "2026-10-23")], True),
    ("{fact: last_cga, older_than_days: 30}", [], False),
    ("{fact: last_cga, after: {fact: enrolled}}", [(ENROL, "2025-01-01"), (CGA, "2025-01-02")], True),
    ("{fact: last_cga, after: {fact: enrolled}}", [(CGA, "2025-01-02")], False),
    ("{fact: frailty, greater_than: {fact: frailty_at_enrolment}}",
     [(MILD, "2024-01-01"), (ENROL, "2024-06-01"), (SEVERE, "2025-01-01")], True),
    ("{fact: cga_count, at_least: 2}", [(CGA, "2025-01-01"), (CGA, "2025-02-01")], True),
    ("{any: [{fact: cga_count, at_least: 2}, {fact: severe_and_old, equals: true}]}",
     [(SEVERE, "2025-01-01")], True),
    ("{all: [{fact: cga_count, at_least: 1}, {fact: severe_and_old, equals: true}]}",
     [(SEVERE, "2025-01-01")], False),
])
def test_operators_and_two_valued_logic(tmp_path: Path, when: str,
                                        events: list[tuple[str, str]], fires: bool) -> None:
    book = book_with(tmp_path, rule("TST-001", when))
    assert book.assess(record(*events), AS_OF).fired_rule("TST-001") is fires


def test_parameter_operand_and_override(tmp_path: Path) -> None:
    rules = rule("TST-001", "{fact: cga_count, at_least: {param: n}}")
    params = "{n: {value: 2, provenance: local-policy, why: test}}"
    rec = record((CGA, "2025-01-01"))
    assert not book_with(tmp_path, rules, parameters=params).assess(rec, AS_OF).rule_ids
    overridden = make_book(tmp_path, FACTS, {"t": ruleset("t", rules, OUT, "collect", params)},
                           overrides={"t.n": 1})
    assert overridden.assess(rec, AS_OF).rule_ids == ("TST-001",)
    assert overridden.sha256 != book_with(tmp_path / "x", rules, parameters=params).sha256


TWO_RULES = rule("TST-001", "{fact: cga_ever, equals: true}", "a") + rule(
    "TST-002", "{fact: cga_count, at_least: 1}", "b", "    priority: 5\n")


def test_hit_policies(tmp_path: Path) -> None:
    rec = record((CGA, "2025-01-01"))
    collect = book_with(tmp_path / "c", TWO_RULES).assess(rec, AS_OF)
    assert collect.rule_ids == ("TST-001", "TST-002")
    assert collect.results()["t"] == {"flag": ["a", "b"]}
    first = book_with(tmp_path / "f", TWO_RULES, "first").assess(rec, AS_OF)
    assert first.rule_ids == ("TST-001",) and first.results()["t"] == {"flag": "a"}
    with pytest.raises(HitPolicyError, match="TST-001, TST-002"):
        book_with(tmp_path / "u", TWO_RULES, "unique").assess(rec, AS_OF)
    prio_rules = TWO_RULES.replace("    title: TST-001\n", "    title: TST-001\n    priority: 1\n")
    prio = book_with(tmp_path / "p", prio_rules, "priority").assess(rec, AS_OF)
    assert prio.rule_ids == ("TST-002",)
    assert book_with(tmp_path / "n", TWO_RULES, "first").assess(record(), AS_OF).results()[
        "t"] == {"flag": None}


def test_pathway_state_fact_comes_from_replay(facts_book: Rulebook) -> None:
    assert values(facts_book, record())["state"] == "not_identified"
    assert values(facts_book, record((ENROL, "2025-01-01")))["state"] == "on_caseload"


NAMED = """  - id: TST-001
    title: t
    when: {all: [{condition: recent_cga}, {fact: age, at_least: 80}]}
    then: {flag: a}
    provenance: guidance
    cite: {source: 001_0d4f5c8ba846d66c.txt, section: S, quote: q}
  - id: TST-002
    title: t
    when: {not: {condition: recent_cga}}
    then: {flag: b}
    provenance: guidance
    cite: {source: 001_0d4f5c8ba846d66c.txt, section: S, quote: q}
"""


def named_book(tmp_path: Path, conditions: str) -> Rulebook:
    text = ruleset("t", NAMED, OUT).replace("outputs:", f"conditions:\n{conditions}outputs:")
    return make_book(tmp_path, FACTS, {"t": text})


def test_named_conditions_expand_where_used(tmp_path: Path) -> None:
    book = named_book(tmp_path, "  recent_cga: {fact: cga_recent, equals: true}\n")
    assert book.assess(record((CGA, "2026-11-01")), AS_OF).rule_ids == ("TST-001",)
    assert book.assess(record(), AS_OF).rule_ids == ("TST-002",)
    assert "cga_recent" in book.rule("TST-002").condition.facts


def test_named_condition_errors_are_located(tmp_path: Path) -> None:
    from int_rules import RulesetError

    with pytest.raises(RulesetError, match=r"t\.yaml:\d+:\d+: rule TST-001: unknown condition 'recent_cga'"):
        named_book(tmp_path / "a", "  other: {fact: cga_recent, equals: true}\n")
    with pytest.raises(RulesetError, match=r"t\.yaml:10:\d+: condition recent_cga: unknown fact 'nope'"):
        named_book(tmp_path / "b", "  recent_cga: {fact: nope, equals: true}\n")
    with pytest.raises(RulesetError, match="cycle: recent_cga -> again -> recent_cga"):
        named_book(tmp_path / "c", "  recent_cga: {condition: again}\n  again: {condition: recent_cga}\n")
