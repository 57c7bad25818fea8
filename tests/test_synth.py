"""Synthetic populations: the 22 neighbourhoods, codes from the bundled codelists, pathway
sequences valid and invalid, deterministic, and clean input for the population engine."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import duckdb
import pytest

import int_rules
from int_rules.population.engine import run_population
from int_rules.snomed import is_valid_concept_id
from int_rules.synth import (
    DEFAULT_AS_OF,
    SynthError,
    full_scale_patients,
    load_neighbourhoods,
    share_65_plus,
    synthetic_records,
    write_population,
)

BOOK = int_rules.load()


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_population(out, 12000, seed=3, as_of=DEFAULT_AS_OF, fmt="parquet", book=BOOK)
    return out


def _q(sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect()
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_22_neighbourhoods_of_version_1(population: Path) -> None:
    nbhs = load_neighbourhoods()
    assert len(nbhs) == 22
    assert sum(n.registered_65_plus for n in nbhs) == 260_053  # the table's column total
    rows = dict(_q(f"SELECT neighbourhood, count(*) FROM '{population}/patients.parquet' "
                   "GROUP BY ALL"))
    assert set(rows) == {n.name for n in nbhs}
    # bigger over-65 populations get more people
    assert rows["Dacorum"] > rows["NORTH UTTLESFORD"]


def test_events_use_valid_codes_and_every_pathway_step(population: Path) -> None:
    codes = [str(c) for (c,) in _q(f"SELECT DISTINCT snomedct_code FROM "
                                   f"'{population}/clinical_events.parquet'")]
    assert all(is_valid_concept_id(c) for c in codes)
    in_lists = {c for cid in BOOK.codelists for c in BOOK.codelists[cid].codes}
    used = set(codes) & in_lists
    for step, step_codes in BOOK.pathway.step_codes.items():
        assert used & step_codes, f"no code of pathway step {step}"
    # and codes unrelated to any codelist (the bulk of a real record)
    assert set(codes) - in_lists


def test_clean_input_and_varied_outcomes(population: Path) -> None:
    run = run_population(BOOK, population, DEFAULT_AS_OF,
                         finding_rulesets={"data_quality": {"error": "error",
                                                            "warning": "warning"}})
    try:
        summary = run.summary()
        rows = run.result_rows()
        findings = run.finding_rows()
    finally:
        run.close()
    assert summary["patients"]["in_results"] == 12000
    assert all(t["rows_rejected"] == 0 for t in summary["tables"].values())
    states = Counter(r["pathway_state"] for r in rows)
    assert {"not_identified", "identified", "on_caseload", "stepped_down"} <= set(states)
    cohorts = Counter(c for r in rows for c in r["identification_cohort"])
    assert set(cohorts) == {"frailty", "care_home", "housebound", "end_of_life"}
    # some pathway sequences do not fit the pathway, and some events are misdated
    sources = {(f["source"], f["finding_id"]) for f in findings}
    assert any(src == "pathway" for src, _ in sources)
    assert ("data_quality", "DQ-040") in sources


def test_over_65_share_follows_the_profile(population: Path) -> None:
    [(share,)] = _q(f"SELECT avg(CASE WHEN date_diff('year', TRY_CAST(CASE WHEN "
                    f"length(date_of_birth) = 7 THEN date_of_birth || '-01' ELSE date_of_birth "
                    f"END AS DATE), DATE '{DEFAULT_AS_OF}') >= 65 THEN 1.0 ELSE 0 END) "
                    f"FROM '{population}/patients.parquet'")
    # the guide's 65+ total over the full scale, the dead (2% of the over-65s) included
    expected = share_65_plus(load_neighbourhoods(), full_scale_patients(), 0.02)
    assert abs(float(share) - expected) < 0.02  # type: ignore[arg-type]


def test_synthetic_records_are_patient_records_and_repeatable() -> None:
    a = synthetic_records(60, seed=9, as_of=dt.date(2025, 12, 31), book=BOOK)
    b = synthetic_records(60, seed=9, as_of=dt.date(2025, 12, 31), book=BOOK)
    assert len(a) == 60
    assert [r.to_dict() for r in a] == [r.to_dict() for r in b]
    assert all(isinstance(r, int_rules.PatientRecord) for r in a)
    assert sum(len(r.events) for r in a) > 60 * 10


def test_bad_requests(tmp_path: Path) -> None:
    with pytest.raises(SynthError, match="at least 1"):
        write_population(tmp_path / "x", 0, book=BOOK)
    write_population(tmp_path / "y", 5, fmt="csv", book=BOOK)
    with pytest.raises(SynthError, match="already there"):
        write_population(tmp_path / "y", 5, fmt="parquet", book=BOOK)


def test_the_rows_written_are_counted_from_the_files_written(tmp_path: Path) -> None:
    """A folder whose name reads as a pattern (``demo[1]``) counts its own files, not those of
    a folder the pattern matches (``demo1``)."""
    decoy = tmp_path / "demo1"
    decoy.mkdir()
    (decoy / "patients.csv").write_text("patient_id\nX1\nX2\n", encoding="utf-8")
    summary = write_population(tmp_path / "demo[1]", 30, book=BOOK)
    assert summary.rows["patients"] == 30
