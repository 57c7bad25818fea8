"""The population engine gives exactly the reference engine's results, patient by patient.

Populations come from the shared record strategies (tests/strategies.py): codes from every
bundled codelist mixed with unrelated ones, dates clustered on shared days around as_of, edge
numbers, deaths before and after as_of, birth dates to the month. They are written as the
analyst's tables (CSV or Parquet, optional tables sometimes absent) and run through
``run_population``; every patient's fact values, ruleset outputs, fired rules, pathway state,
entry date, findings and allowed next codes must equal ``book.assess`` on the same record.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import int_rules
from int_rules.population.engine import run_population
from int_rules.synth import synthetic_records, write_population
from tests.population_support import (
    OPTIONAL_TABLES,
    as_read,
    differences,
    one_line,
    without,
    write_tables,
)
from tests.strategies import as_of_dates, patient_records

BOOK = int_rules.load()
# Each example runs DuckDB over a whole small population (dozens of queries), so it costs far
# more than one record: a quarter of the profile's examples (at most 400, about five minutes),
# each with up to a dozen patients.
_EXAMPLES = max(10, min(settings().max_examples // 4, 400))


@st.composite
def populations(draw: st.DrawFn) -> tuple[dt.date, list[int_rules.PatientRecord], str,
                                          tuple[str, ...]]:
    as_of = draw(as_of_dates())
    n = draw(st.integers(1, 12))
    records = [draw(patient_records(as_of=as_of, max_events=20)) for _ in range(n)]
    records = [r.model_copy(update={"patient_id": f"P{i:03d}"}) for i, r in enumerate(records)]
    fmt = draw(st.sampled_from(["csv", "parquet"]))
    if fmt == "csv":
        records = [one_line(r) for r in records]
    omit = tuple(t for t in OPTIONAL_TABLES if draw(st.integers(0, 3)) == 0)
    return as_of, records, fmt, omit


@settings(max_examples=_EXAMPLES, suppress_health_check=[HealthCheck.too_slow,
                                                         HealthCheck.data_too_large])
@given(populations())
def test_generated_populations_equal_the_reference_engine(
        population: tuple[dt.date, list[int_rules.PatientRecord], str, tuple[str, ...]]) -> None:
    as_of, records, fmt, omit = population
    expected = as_read(without(records, omit))
    with tempfile.TemporaryDirectory() as tmp:
        write_tables(records, Path(tmp), fmt, omit)
        run = run_population(BOOK, tmp, as_of)
        try:
            assert run.summary()["patients"]["all_accounted_for"]
            assert differences(BOOK, run, expected, as_of) == []
        finally:
            run.close()


def test_synthetic_population_equals_the_reference_engine(tmp_path: Path) -> None:
    as_of = dt.date(2026, 3, 31)
    write_population(tmp_path, 8000, seed=11, as_of=as_of, fmt="parquet", book=BOOK)
    # Data-quality rules' findings as the population report collects them (few people of a small
    # sample are on the pathway, so pathway findings alone may be none).
    run = run_population(BOOK, tmp_path, as_of, finding_rulesets={
        "data_quality": {"error": "error", "warning": "warning"}})
    try:
        from int_rules.population.engine import records_from_tables

        records = records_from_tables(run.con)
        assert len(records) == 8000
        assert differences(BOOK, run, records, as_of) == []
        # The synthetic population reaches the main pathway states and has data-quality
        # findings: the comparison above covered real pathway work.
        states = {r["pathway_state"] for r in run.result_rows()}
        assert {"identified", "on_caseload", "stepped_down"} <= states
        assert run.finding_rows(), "expected some data-quality findings"
    finally:
        run.close()


@pytest.mark.parametrize("as_of", [dt.date(2026, 3, 31), dt.date(2025, 1, 1)])
def test_pathway_replayed_per_patient_equals_by_signature(tmp_path: Path, as_of: dt.date) -> None:
    """The bulk replay (one per distinct signature) equals replaying every patient."""
    records = synthetic_records(1500, seed=4, as_of=dt.date(2026, 3, 31), book=BOOK)
    write_tables(records, tmp_path, "parquet")
    by_sig = run_population(BOOK, tmp_path, as_of)
    per_patient = run_population(BOOK, tmp_path, as_of, pathway_mode="per_patient")
    try:
        assert by_sig.result_rows() == per_patient.result_rows()
        assert by_sig.finding_rows() == per_patient.finding_rows()
        assert by_sig.pathway_signatures < 1500
    finally:
        by_sig.close()
        per_patient.close()
