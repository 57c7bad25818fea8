"""The durable_rules engine gives the same assessments as the reference engine.

Differential tests: generated records (tests/strategies.py) and every scenario in
rulesets/tests are assessed by both engines and must compare equal
(``Assessment.comparable()``: outcomes, facts and evidence, pathway state, history and
findings). Run thousands of examples with ``INT_RULES_HYPOTHESIS_PROFILE=deep``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from int_rules import PatientRecord
from int_rules.cli import main
from int_rules.engines import durable
from int_rules.rulebook import Rulebook
from int_rules.scenarios import load_scenarios, run_scenarios
from tests.strategies import AS_OF, EXAMPLE, as_of_dates, outcome, patient_records

pytest.importorskip("durable_rules_engine", reason="the durable extra is not installed")


def assert_same(book: Rulebook, record: PatientRecord, as_of: dt.date) -> Any:
    ref = outcome(book, record, as_of, "reference")
    dur = outcome(book, record, as_of, "durable")
    if ref != dur:  # show the first difference plainly, then the full comparison
        if isinstance(ref, dict) and isinstance(dur, dict):
            for key in ref:
                assert dur.get(key) == ref[key], f"{key} differs for {record.to_json()}"
        assert dur == ref
    return ref


# -- generated records ------------------------------------------------------------------------


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(record=patient_records())
def test_generated_records_agree(book: Rulebook, record: PatientRecord) -> None:
    assert_same(book, record, AS_OF)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_generated_records_agree_on_any_date(book: Rulebook, data: st.DataObject) -> None:
    as_of = data.draw(as_of_dates())
    record = data.draw(patient_records(as_of=as_of))
    assert_same(book, record, as_of)


# -- scenarios --------------------------------------------------------------------------------


def test_every_scenario_passes_and_agrees_on_both_engines(book: Rulebook) -> None:
    def both(the_book: Rulebook, record: PatientRecord, as_of: dt.date) -> Any:
        """Both engines on the scenario's rulebook (with its overrides); durable's result."""
        ref = the_book.assess(record, as_of)
        dur = the_book.assess(record, as_of, engine="durable")
        if dur.comparable() != ref.comparable():
            raise AssertionError("the engines disagree:\n" + json.dumps(
                {k: (ref.comparable()[k], v) for k, v in dur.comparable().items()
                 if ref.comparable()[k] != v}, indent=1, default=str))
        assert dur.engine == "durable"
        return dur

    scenarios = load_scenarios(book)
    assert scenarios, "no scenarios found in rulesets/tests"
    failed = [r.diff() for r in run_scenarios(book, scenarios, engine=both) if not r.passed]
    assert not failed, "\n".join(failed)


def test_every_rule_is_compiled_under_its_own_id(book: Rulebook) -> None:
    definitions = durable.definitions(book)
    compiled = {name.split("#")[0] for key, rules in definitions.items()
                if key.startswith("rules") for name in rules}
    assert {rule.id for rs in book.rulesets for rule in rs.rules} <= compiled
    chart = definitions["pathway$state"]
    assert set(book.pathway.states) <= set(chart)
    steps = {step.id for step in book.pathway.definition.steps}
    assert all(set(chart[state]) == steps for state in book.pathway.states)


# -- the example record and the CLI -----------------------------------------------------------


def test_example_record_agrees_and_says_it_ran_on_durable(book: Rulebook) -> None:
    record = PatientRecord.from_json_file(EXAMPLE)
    result = book.assess(record, AS_OF, engine="durable")
    assert result.engine == "durable"
    assert result.to_dict()["engine"] == "durable"
    assert "engine durable" in result.explain()
    assert result.comparable() == book.assess(record, AS_OF).comparable()
    assert result.fired  # the example fires rules, so this is not a vacuous comparison


def test_cli_assess_with_engine_durable(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["assess", str(EXAMPLE), "--as-of", AS_OF.isoformat(), "--format", "json"]
    assert main([*args, "--engine", "durable"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    want = json.loads(capsys.readouterr().out)
    assert got["engine"] == "durable" and want["engine"] == "reference"
    del got["engine"], want["engine"]
    assert got == want


# -- sessions and threads ---------------------------------------------------------------------


def test_more_records_than_durable_rules_has_sessions(book: Rulebook) -> None:
    """durable_rules holds at most 1,024 live sessions per ruleset: each call deletes its own."""
    record = PatientRecord.from_dict({
        "patient_id": "S1", "date_of_birth": "1940-01-01",
        "events": [{"code": "818241000000105", "date": "2026-01-05"},  # on the pathway
                   {"code": "925861000000102", "date": "2026-01-05"}],  # severe frailty
    })
    want = book.assess(record, AS_OF).comparable()
    assert want["outcomes"] and want["pathway"]["history"]
    for i in range(1100):
        got = book.assess(record, AS_OF, engine="durable")
        if i % 100 == 0:
            assert got.comparable() == want


def test_threads_share_a_rulebook_safely(book: Rulebook) -> None:
    records = [PatientRecord.from_json_file(EXAMPLE)]
    records += [s.record for s in load_scenarios(book)[::4]]
    want = [outcome(book, r, AS_OF, "reference") for r in records]
    results: dict[int, list[Any]] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            results[n] = [outcome(book, r, AS_OF, "durable") for r in records * 3]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for n in range(4):
        assert results[n] == want * 3
