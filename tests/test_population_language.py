"""Every corner of the ruleset language gives the reference engine's answer on DuckDB.

The bundled rulebook does not use every fact kind, window, operator and hit policy, so this
test builds one that does (tests/bookfactory.py): latest_of ties and anchors, latest_value
same-day ties, since/from/until, the data-quality windows, where filters on every source,
constants, empty codelists, derived facts over derived facts, fact-to-fact comparisons on dates,
numbers and ordered categories, and the four hit policies, including a ``unique`` decision whose
overlaps must send the patient to the rejects with the reason.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import int_rules
from int_rules.population.engine import run_population
from tests.bookfactory import CITE, make_book, ruleset
from tests.population_support import as_read, differences, one_line, write_tables
from tests.strategies import as_of_dates, codes_from, patient_records, unrelated_concept_ids

FACTS = """
facts_version: 0.0.1
title: Every fact kind
parameters:
  window: {value: 30, provenance: assumption, why: w}
facts:
  age: {kind: age, description: a}
  sex: {kind: attribute, field: sex, description: s}
  practice: {kind: attribute, field: practice, description: p}
  state: {kind: pathway, field: state, description: s}
  entered: {kind: pathway, field: entered, description: e}
  n_findings: {kind: pathway, field: findings, description: f}
  may_enrol: {kind: pathway, field: may_record, codelist: int_on_pathway, description: m}
  frailty:
    kind: latest_of
    categories: {severe: frailty_severe, moderate: frailty_moderate, mild: frailty_mild}
    scale: [mild, moderate, severe]
    description: f
  mild_first:
    kind: latest_of
    categories: {mild: frailty_mild, severe: [frailty_severe, frailty_moderate]}
    description: ties go to the category listed first
  last_cga: {kind: latest_date, codelist: cga, description: c}
  first_cga: {kind: first_date, codelist: cga, description: c}
  last_mdt: {kind: latest_date, codelist: mdt_review, description: m}
  cfs: {kind: latest_value, codelist: clinical_frailty_scale, description: c}
  cfs_recent:
    {kind: latest_value, codelist: clinical_frailty_scale, within_days: {param: window},
     description: c}
  efi_since_cga: {kind: latest_value, codelist: efi_score, since: last_cga, description: e}
  cga_from_mdt: {kind: count, codelist: cga, from: last_mdt, description: c}
  frailty_at_mdt:
    kind: latest_of
    categories: {severe: frailty_severe, moderate: frailty_moderate, mild: frailty_mild}
    scale: [mild, moderate, severe]
    until: last_mdt
    description: f
  cga_before_mdt: {kind: exists, codelist: cga, until: last_mdt, description: c}
  cga_after_first: {kind: count, codelist: cga, since: first_cga, within_days: 400, description: c}
  problems: {kind: count, codelist: [cga, mdt_review, int_on_pathway], where: {is_problem: true}, description: p}
  any_events: {kind: count, description: every event}
  latest_event: {kind: latest_date, description: every event}
  any_value: {kind: latest_value, description: every event with a value}
  future: {kind: exists, window: after_as_of, description: f}
  future_cga: {kind: count, codelist: cga, window: after_as_of, description: f}
  before_birth: {kind: count, window: before_birth, description: b}
  after_death: {kind: count, window: after_death, description: a}
  after_death_cga: {kind: exists, codelist: cga, window: after_death, description: a}
  emergencies: {kind: count, source: admissions, where: {emergency: true}, within_days: 365, description: e}
  stay: {kind: latest_value, source: admissions, field: length_of_stay, description: s}
  first_admission: {kind: first_date, source: admissions, description: f}
  admitted_since_mdt: {kind: exists, source: admissions, since: last_mdt, description: a}
  risk: {kind: latest_value, source: risk_scores, where: {source: DELPPHI}, description: r}
  any_risk: {kind: latest_value, source: risk_scores, description: r}
  alerts_since_mdt: {kind: count, source: monitoring, where: {kind: alert}, since: last_mdt, description: a}
  spo2: {kind: latest_value, source: monitoring, where: {measure: spo2}, description: s}
  last_reading: {kind: latest_date, source: monitoring, where: {kind: reading}, description: r}
  ten: {kind: constant, value: {param: window}, description: c}
  empty_list: {kind: codelist_available, codelist: loneliness_assessment, description: c}
  full_list: {kind: codelist_available, codelist: cga, description: c}
  frail_or_old:
    kind: derived
    when: {any: [{fact: frailty, at_least: moderate}, {fact: age, greater_than: 80}]}
    description: d
  unassessed:
    kind: derived
    when: {all: [{fact: frail_or_old, equals: true}, {not: {fact: last_cga, present: true}}]}
    description: d
"""

RULES = f"""
  - id: COL-001
    title: tag a when frail or old
    when: {{fact: frail_or_old, equals: true}}
    then: {{tag: a, code: 836131000000104}}
    provenance: guidance
    {CITE}
  - id: COL-002
    title: tag b after an MDT later than the CGA
    when: {{fact: last_mdt, after: {{fact: last_cga}}}}
    then: {{tag: b}}
    provenance: guidance
    {CITE}
  - id: COL-003
    title: tag a again (interleaved values keep the first firing order)
    when: {{any: [{{fact: cfs, greater_than: {{fact: risk}}}}, {{fact: sex, in: [female, other]}}]}}
    then: {{tag: a, flag: true}}
    provenance: guidance
    {CITE}
  - id: COL-004
    title: tag c on worse frailty than at the MDT
    when: {{fact: frailty, greater_than: {{fact: frailty_at_mdt}}}}
    then: {{tag: c}}
    provenance: guidance
    {CITE}
  - id: COL-005
    title: tag c when the state was entered recently and enrolment may be recorded
    when:
      all:
        - {{fact: entered, within_days: 200}}
        - {{fact: may_enrol, equals: true}}
        - {{fact: ten, equals: 30}}
        - {{fact: empty_list, equals: false}}
        - {{fact: practice, not_equals: X}}
    then: {{tag: c, flag: false}}
    provenance: guidance
    {CITE}
"""


def _book(tmp: Path) -> int_rules.Rulebook:
    col = ruleset("col", RULES, "  tag: {type: category, values: [a, b, c], description: t}\n"
                  "  flag: {type: bool, description: f}\n"
                  "  code: {type: code, description: c}\n")
    uniq = ruleset("uniq", f"""
  - id: UNQ-001
    title: moderate or worse frailty
    when: {{fact: frailty, at_least: moderate}}
    then: {{band: high}}
    provenance: guidance
    {CITE}
  - id: UNQ-002
    title: a CFS of 5 or more
    when: {{fact: cfs, at_least: 5}}
    then: {{band: high}}
    provenance: guidance
    {CITE}
  - id: UNQ-003
    title: neither
    when: {{not: {{any: [{{fact: frailty, at_least: moderate}}, {{fact: cfs, at_least: 5}}]}}}}
    then: {{band: low}}
    provenance: guidance
    {CITE}
""", "  band: {type: category, values: [high, low], description: b}\n", "unique")
    first = ruleset("first", f"""
  - id: FST-001
    title: CGA in the window
    when: {{fact: last_cga, within_days: {{param: w}}}}
    then: {{due: later}}
    provenance: guidance
    {CITE}
  - id: FST-002
    title: CGA long ago
    when: {{fact: last_cga, older_than_days: {{param: w}}}}
    then: {{due: now}}
    provenance: guidance
    {CITE}
  - id: FST-003
    title: everyone else
    when: {{fact: age, present: true}}
    then: {{due: unknown, note: no CGA}}
    provenance: guidance
    {CITE}
""", "  due: {type: category, values: [later, now, unknown], description: d}\n"
     "  note: {type: text, description: n}\n", "first",
                    parameters="{w: {value: 90, provenance: local-policy, why: w}}")
    prio = ruleset("prio", f"""
  - id: PRI-001
    title: low priority
    when: {{fact: any_events, at_least: 1}}
    then: {{level: one}}
    priority: 1
    provenance: guidance
    {CITE}
  - id: PRI-002
    title: tie, listed first
    when: {{fact: emergencies, at_least: 1}}
    then: {{level: two}}
    priority: 5
    provenance: guidance
    {CITE}
  - id: PRI-003
    title: tie, listed second
    when: {{fact: alerts_since_mdt, at_least: 1}}
    then: {{level: three}}
    priority: 5
    provenance: guidance
    {CITE}
""", "  level: {type: category, values: [one, two, three], description: l}\n", "priority")
    return make_book(tmp, FACTS, {"col": col, "uniq": uniq, "first": first, "prio": prio})


_RELEVANT = ("frailty_mild", "frailty_moderate", "frailty_severe", "cga", "mdt_review",
             "clinical_frailty_scale", "efi_score", "int_on_pathway", "int_eligible_icp",
             "int_declined", "int_no_longer_on_pathway")


@st.composite
def populations(draw: st.DrawFn) -> tuple[dt.date, list[int_rules.PatientRecord], str]:
    from int_rules.codelists import load_codelists

    lists = load_codelists()
    codes = st.one_of(codes_from([tuple(sorted(lists[c].codes)) for c in _RELEVANT]),
                      unrelated_concept_ids())
    as_of = draw(as_of_dates())
    n = draw(st.integers(1, 10))
    records = [draw(patient_records(as_of=as_of, codes=codes, max_events=15)) for _ in range(n)]
    records = [r.model_copy(update={"patient_id": f"Q{i:03d}"}) for i, r in enumerate(records)]
    fmt = draw(st.sampled_from(["csv", "parquet"]))
    if fmt == "csv":  # one row per line: text with line breaks goes by Parquet
        records = [one_line(r) for r in records]
    return as_of, records, fmt


BOOK = _book(Path(tempfile.mkdtemp(prefix="int-rules-language-")))


@settings(max_examples=max(10, min(settings().max_examples // 4, 400)),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(populations())
def test_every_language_feature_equals_the_reference_engine(
        population: tuple[dt.date, list[int_rules.PatientRecord], str]) -> None:
    as_of, records, fmt = population
    with tempfile.TemporaryDirectory() as tmp:
        write_tables(records, Path(tmp), fmt)
        run = run_population(BOOK, tmp, as_of)
        try:
            assert differences(BOOK, run, as_read(records), as_of) == []
            conflicts = {r["patient_id"]: r["reason"] for r in run.reject_rows()
                         if r["tbl"] == "(rules)"}
        finally:
            run.close()
    for pid, reason in conflicts.items():
        assert reason.startswith("ruleset uniq has hit policy 'unique' but rules UNQ-001, "
                                 "UNQ-002 all fired"), (pid, reason)


def test_a_unique_overlap_sends_the_patient_to_the_rejects(tmp_path: Path) -> None:
    severe = sorted(int_rules.load().codelists["frailty_severe"].codes)[0]
    cfs = sorted(int_rules.load().codelists["clinical_frailty_scale"].codes)[0]
    records = [int_rules.PatientRecord.from_dict({
        "patient_id": "OVERLAP", "date_of_birth": "1940-01-01",
        "events": [{"code": severe, "date": "2025-01-01"},
                   {"code": cfs, "date": "2025-01-02", "value": 7}]}),
        int_rules.PatientRecord.from_dict({"patient_id": "FINE",
                                           "date_of_birth": "1950-01-01"})]
    write_tables(records, tmp_path)
    run = run_population(BOOK, tmp_path, dt.date(2026, 1, 1))
    try:
        results = [r["patient_id"] for r in run.result_rows()]
        rejects = run.reject_rows()
        summary = run.summary()["patients"]
    finally:
        run.close()
    assert results == ["FINE"]
    assert [(r["tbl"], r["patient_id"]) for r in rejects] == [("(rules)", "OVERLAP")]
    assert "rules UNQ-001, UNQ-002 all fired" in rejects[0]["reason"]
    assert summary["rejected_rule_conflicts"] == 1 and summary["all_accounted_for"]


def test_an_items_fact_of_someone_with_no_item_is_its_empty_value() -> None:
    """People with no item any fact reads have their facts computed apart, each items fact
    being its ``empty_sql``: that must be what ``value_sql`` gives with every aggregate
    NULL (as the join to the aggregate tables gives them), for every fact kind."""
    import duckdb

    from int_rules.engines.sql import DUCKDB, compile_model

    con = duckdb.connect()
    kinds = set()
    for book in (BOOK, int_rules.load()):
        compiled = compile_model(book.model, dt.date(2026, 3, 31), DUCKDB)
        for plan in compiled.facts.values():
            if plan.stage != "items" or plan.source != "items":
                assert plan.empty_sql is None, plan.name
                continue
            assert plan.empty_sql is not None, plan.name
            nulls = ", ".join(f"NULL AS {a.name}" for a in plan.aggregates)
            got, empty = con.execute(
                f"SELECT {plan.value_sql}, {plan.empty_sql} FROM (SELECT {nulls})").fetchall()[0]
            assert got == empty, (plan.name, got, empty)
            kinds.add(plan.kind)
    assert kinds >= {"exists", "count", "latest_date", "latest_value", "latest_of"}, kinds
