"""Every rule scenario (rulesets/tests/*.yaml) also holds through the population path, on
each population engine (DuckDB, and Spark when the spark extra is installed).

Scenarios sharing an as-of date and parameter overrides are written together as one extract
(Parquet) and run once; each scenario is then checked by ``int_rules.scenarios.run_scenario``
with an engine that answers from the population results. The fired rules, outputs, pathway
state and facts must also equal the reference engine's for the same record.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import int_rules
from int_rules import HitPolicyError, PatientRecord, Rulebook
from int_rules.assessment import Assessment
from int_rules.pathway import PathwayResult
from int_rules.population.engine import output_column, run_population
from int_rules.scenarios import Scenario, load_scenarios, run_scenario
from tests.population_support import write_tables

BOOK = int_rules.load()
SCENARIOS = load_scenarios(BOOK)


def _book(overrides: dict[str, Any]) -> Rulebook:
    if not overrides:
        return BOOK
    return int_rules.load(BOOK.directory, overrides={**BOOK.overrides, **overrides})


@pytest.fixture(scope="module",
                params=["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def population_answers(request: pytest.FixtureRequest,
                       tmp_path_factory: pytest.TempPathFactory
                       ) -> dict[str, tuple[dict[str, Any], dict[str, Any]] | None]:
    """Scenario id -> (result row, fact row) from the population engine (None: rejected)."""
    engine: str = request.param
    if engine == "spark":
        request.getfixturevalue("spark_session")
    groups: dict[tuple[str, dt.date], list[Scenario]] = defaultdict(list)
    for s in SCENARIOS:
        groups[(json.dumps(dict(s.overrides), sort_keys=True, default=str), s.as_of)].append(s)
    answers: dict[str, tuple[dict[str, Any], dict[str, Any]] | None] = {}
    for n, ((overrides, as_of), scenarios) in enumerate(sorted(groups.items(),
                                                                key=lambda kv: str(kv[0]))):
        book = _book(json.loads(overrides))
        records = [s.record.model_copy(update={"patient_id": f"S{i:04d}"})
                   for i, s in enumerate(scenarios)]
        directory = tmp_path_factory.mktemp(f"scenarios{n}")
        write_tables(records, Path(directory), "parquet")
        run = run_population(book, directory, as_of, engine=engine)
        try:
            results = {r["patient_id"]: r for r in run.result_rows()}
            facts = {r["patient_id"]: r for r in run.fact_rows()}
        finally:
            run.close()
        for i, s in enumerate(scenarios):
            key = f"S{i:04d}"
            answers[s.id] = (results[key], facts[key]) if key in results else None
    return answers


def _as_assessment(book: Rulebook, record: PatientRecord, as_of: dt.date,
                   answer: tuple[dict[str, Any], dict[str, Any]] | None) -> Assessment:
    if answer is None:
        raise HitPolicyError(record.patient_id, "(population)", ())
    row, facts = answer
    values = {name: facts[name] for name in book.fact_order}
    values["__as_of__"] = as_of
    return Assessment(book=book, record=record, as_of=as_of, engine="population",
                      values=values, evidence={},
                      fired=tuple(book.rule(rid) for rid in row["rule_ids"]),
                      pathway=PathwayResult(row["pathway_state"], row["pathway_entered"], (),
                                            ()))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario_holds_through_the_population_path(
        scenario: Scenario,
        population_answers: dict[str, tuple[dict[str, Any], dict[str, Any]] | None]) -> None:
    answer = population_answers[scenario.id]

    def population_engine(book: Rulebook, record: PatientRecord, as_of: dt.date) -> Assessment:
        return _as_assessment(book, record, as_of, answer)

    result = run_scenario(BOOK, scenario, engine=population_engine)
    assert result.passed, result.diff()
    reference = _book(dict(scenario.overrides)).assess(scenario.record, scenario.as_of)
    assert answer is not None
    row, facts = answer
    assert row["rule_ids"] == list(reference.rule_ids)
    assert row["pathway_state"] == reference.pathway.state
    assert row["pathway_findings"] == [f.id for f in reference.pathway.findings]
    for rs_id, outputs in reference.results().items():
        for key, value in outputs.items():
            want = [str(v) for v in value] if isinstance(value, list) and value and \
                not isinstance(value[0], bool) else value
            if isinstance(value, (int, str)) and not isinstance(value, bool):
                want = str(value)
            assert row[output_column(rs_id, key)] == want, (rs_id, key)
    for name, fv in reference.facts.items():
        assert facts[name] == fv.value, name
