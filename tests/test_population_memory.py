"""Population runs from memory: pyarrow Tables, pandas and polars DataFrames in, Arrow tables
out, with rows validated and rejected exactly as rows of files are."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import int_rules
from int_rules.population import PopulationInputError, assess_tables, run_population

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "population"
AS_OF = dt.date(2026, 3, 31)
BOOK = int_rules.load()
SEVERE_FRAILTY = sorted(BOOK.codelists["frailty_severe"].codes)[0]
ON_PATHWAY = sorted(BOOK.codelists["int_on_pathway"].codes)[0]

# Rows every check rejects, as an analyst's extract might hold them (all text, as in a CSV).
BAD_PATIENTS = """patient_id,date_of_birth,sex,practice,neighbourhood,gp_system,date_of_death
P1,1940-05-02,female,E1,HATFIELD,EMIS,
P2,1950-02,male,E1,HATFIELD,S1,
P3,1930-13-01,x,E2,WARE,foo,
P4,1960-01-01,,E2,WARE,,
P4,1960-01-01,,E2,WARE,,
,1960-01-01,,,,,
P5,1950-01-01,female,,,,1949-12-31
"""
BAD_EVENTS = f"""patient_id,date,snomedct_code,numeric_value,is_problem
P1,2025-01-01,{SEVERE_FRAILTY},,
P1,2025-02-01,{ON_PATHWAY},,true
P2,2025-02-01,123,,
P2,2025-02-01,925861000000101,,
P9,2025-02-01,{ON_PATHWAY},,
P1,2025-02-xx,{ON_PATHWAY},,
P1,2025-03-01,{ON_PATHWAY},abc,
P4,2025-02-01,{ON_PATHWAY},,
P1,2025-03-02,{ON_PATHWAY},1e999,maybe
"""


def _text_table(csv_text: str) -> pa.Table:
    """A CSV's cells as an Arrow table of strings (empty cells null), as a CSV is read."""
    columns = csv_text.splitlines()[0].split(",")
    return pacsv.read_csv(pa.py_buffer(csv_text.encode()),
                          convert_options=pacsv.ConvertOptions(
                              column_types={c: pa.string() for c in columns},
                              strings_can_be_null=True))


def _example_tables() -> dict[str, pa.Table]:
    return {p.stem: pacsv.read_csv(p) for p in sorted(EXAMPLE.glob("*.csv"))}


def _file_results(directory: Path) -> list[dict[str, Any]]:
    run = run_population(BOOK, directory, AS_OF)
    try:
        return run.result_rows()
    finally:
        run.close()


def _plain(table: pa.Table) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = table.drop_columns(
        ["rulebook_sha256", "rulebook_status", "run_id", "as_of"]).to_pylist()
    return rows


@pytest.fixture(scope="module")
def from_files() -> list[dict[str, Any]]:
    return _file_results(EXAMPLE)


def test_arrow_tables_give_the_results_files_give(from_files: list[dict[str, Any]]) -> None:
    out = assess_tables(BOOK, _example_tables(), AS_OF)
    assert isinstance(out.results, pa.Table)
    assert out.results.num_rows == len(from_files) == 200
    assert _plain(out.results) == from_files
    assert set(out.results.column("rulebook_sha256").to_pylist()) == {BOOK.sha256}
    assert b"int_rules_provenance" in out.results.schema.metadata
    assert out.summary["patients"]["all_accounted_for"]
    assert out.summary["data_dir"] == "(in memory)"
    assert out.rejects.num_rows == 0


def test_arrow_results_are_the_results_file_plus_next_codes(tmp_path: Path) -> None:
    from int_rules.population.engine import write_outputs

    run = run_population(BOOK, EXAMPLE, AS_OF)
    try:
        write_outputs(run, tmp_path)
    finally:
        run.close()
    written = pq.read_table(tmp_path / "results.parquet")
    out = assess_tables(BOOK, _example_tables(), AS_OF).results
    assert out.drop_columns(["pathway_next_codes"]).to_pylist() == written.to_pylist()
    assert out.drop_columns(["pathway_next_codes"]).schema.names == written.schema.names
    assert out.schema.metadata == written.schema.metadata


def test_pandas_dataframes_in(from_files: list[dict[str, Any]]) -> None:
    pd = pytest.importorskip("pandas")
    # As an analyst reads them: pandas guesses the types (floats, bools, NaN for empty cells).
    typed = {p.stem: pd.read_csv(p) for p in sorted(EXAMPLE.glob("*.csv"))}
    assert _plain(assess_tables(BOOK, typed, AS_OF).results) == from_files
    # All text, empty cells as empty strings.
    text = {p.stem: pd.read_csv(p, dtype=str, keep_default_na=False)
            for p in sorted(EXAMPLE.glob("*.csv"))}
    assert _plain(assess_tables(BOOK, text, AS_OF).results) == from_files
    # Dates as datetime64 columns.
    dated = dict(text)
    dated["clinical_events"] = text["clinical_events"].assign(
        date=pd.to_datetime(text["clinical_events"]["date"]))
    assert _plain(assess_tables(BOOK, dated, AS_OF).results) == from_files


def test_polars_dataframes_in(from_files: list[dict[str, Any]]) -> None:
    pl = pytest.importorskip("polars")
    frames = {p.stem: pl.read_csv(p, infer_schema_length=0) for p in sorted(EXAMPLE.glob("*.csv"))}
    out = assess_tables(BOOK, frames, AS_OF, with_facts=True)
    assert _plain(out.results) == from_files
    assert out.facts is not None and out.facts.num_rows == 200
    assert pl.from_arrow(out.results).height == 200  # and back into polars


def _rejects(rows: list[dict[str, Any]]) -> set[tuple[str, Any, str | None, str]]:
    return {(r["tbl"] if "tbl" in r else r["table"], r["row"], r["patient_id"], r["reason"])
            for r in rows}


def test_bad_rows_are_rejected_exactly_as_rows_of_parquet_files(tmp_path: Path) -> None:
    tables = {"patients": _text_table(BAD_PATIENTS), "clinical_events": _text_table(BAD_EVENTS)}
    for name, table in tables.items():
        pq.write_table(table, tmp_path / f"{name}.parquet")
    run = run_population(BOOK, tmp_path, AS_OF)
    try:
        file_rejects = run.reject_rows()
        file_results = run.result_rows()
        file_summary = run.summary()
    finally:
        run.close()
    out = assess_tables(BOOK, tables, AS_OF)
    memory_rejects = out.rejects.to_pylist()

    assert len(file_rejects) >= 10
    assert _rejects(memory_rejects) == _rejects(file_rejects)
    assert {r["file"] for r in memory_rejects} == {"patients (in memory)",
                                                   "clinical_events (in memory)"}
    assert _plain(out.results) == file_results
    assert out.summary["patients"] == file_summary["patients"]
    for name, stats in file_summary["tables"].items():
        assert out.summary["tables"][name] == {**stats, "files": [f"{name} (in memory)"]}
    reasons = {(r["table"], r["row"]): r["reason"] for r in memory_rejects}
    assert "date_of_birth '1930-13-01' is not a date" in reasons[("patients", 3)]
    assert reasons[("patients", 6)] == "patient_id is empty"
    assert reasons[("clinical_events", 5)] == "patient_id 'P9' is not in the patients table"
    assert "numeric_value '1e999' is not a finite number" in reasons[("clinical_events", 9)]


def test_bad_rows_are_rejected_as_rows_of_csv_files(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    (tmp_path / "patients.csv").write_text(BAD_PATIENTS, encoding="utf-8")
    (tmp_path / "clinical_events.csv").write_text(BAD_EVENTS, encoding="utf-8")
    run = run_population(BOOK, tmp_path, AS_OF)
    try:
        csv_rejects = run.reject_rows()
    finally:
        run.close()
    frames = {name: pd.read_csv(tmp_path / f"{name}.csv", dtype=str)
              for name in ("patients", "clinical_events")}
    out = assess_tables(BOOK, frames, AS_OF)
    # The same rows and reasons; a CSV row is its line (the header is line 1), a DataFrame's
    # its position from 1.
    assert {(t, row - 1, p, why) for t, row, p, why in _rejects(csv_rejects)} == \
        _rejects(out.rejects.to_pylist())


def test_a_column_of_mixed_values_rejects_only_its_bad_rows() -> None:
    pd = pytest.importorskip("pandas")
    patients = pd.DataFrame({
        "patient_id": ["P1", "P2", "P3"],
        "date_of_birth": [dt.date(1940, 5, 2), "not a date", dt.date(1950, 1, 1)],
        "sex": ["female", "male", None],
    })
    events = pd.DataFrame({"patient_id": ["P1"], "date": ["2025-01-01"],
                           "snomedct_code": [SEVERE_FRAILTY]})
    out = assess_tables(BOOK, {"patients": patients, "clinical_events": events}, AS_OF)
    assert out.results.column("patient_id").to_pylist() == ["P1", "P3"]
    assert out.rejects.to_pylist()[0]["row"] == 2
    assert "date_of_birth 'not a date' is not a date" in out.rejects.to_pylist()[0]["reason"]


def test_tables_that_cannot_be_used_are_refused_by_name() -> None:
    patients, events = _text_table(BAD_PATIENTS), _text_table(BAD_EVENTS)
    with pytest.raises(PopulationInputError, match="no patients table among the in-memory"):
        assess_tables(BOOK, {"clinical_events": events}, AS_OF)
    with pytest.raises(PopulationInputError, match="'clinical_event': not a table name"):
        assess_tables(BOOK, {"patients": patients, "clinical_event": events}, AS_OF)
    with pytest.raises(PopulationInputError, match="patients: a list is not a table"):
        assess_tables(BOOK, {"patients": [{"patient_id": "P1"}],  # type: ignore[dict-item]
                             "clinical_events": events}, AS_OF)
    with pytest.raises(PopulationInputError,
                       match=r"patients \(in memory\): missing required column\(s\) "
                             "date_of_birth"):
        assess_tables(BOOK, {"patients": patients.drop_columns(["date_of_birth"]),
                             "clinical_events": events}, AS_OF)


def test_results_file_gathered_by_mask_and_signature_is_the_results_query(
        tmp_path: Path) -> None:
    """results.parquet is made from each output once per distinct mask and each pathway list
    once per signature, gathered per patient: row for row, type for type, it is what the
    results query (every column looked up per patient in SQL) gives, worklist facts and all,
    over a population with many masks and signatures."""
    from int_rules.population.columns import results_select, worklist_fact_columns
    from int_rules.population.engine import _results_sql, write_outputs
    from int_rules.population.worklist import load_worklists
    from int_rules.synth import write_population

    write_population(tmp_path / "data", 3000, 5, AS_OF, "parquet")
    worklists = load_worklists(BOOK)
    run = run_population(BOOK, tmp_path / "data", AS_OF, result_facts=worklists.facts)
    try:
        write_outputs(run, tmp_path / "out", worklists=worklists, run_id="r1")
        masks, signatures = run.con.sql(
            "SELECT count(DISTINCT mask_idx), count(DISTINCT sig_idx) FROM __res").fetchall()[0]
        extra = (f"{worklist_fact_columns(worklists)}, 'x' AS rulebook_sha256, "
                 "'y' AS rulebook_status, 'r1' AS run_id, DATE '2026-03-31' AS as_of")
        query = results_select(_results_sql(run.compiled, False, extra, False), BOOK,
                               worklists, False)
        expected = run.con.sql(f"SELECT * EXCLUDE (rulebook_sha256, rulebook_status) "
                               f"FROM ({query}) ORDER BY patient_id").to_arrow_table()
        in_order = [r[0] for r in run.con.sql(
            "SELECT patient_id FROM __res ORDER BY pid").fetchall()]
    finally:
        run.close()
    assert masks > 20 and signatures > 5, (masks, signatures)
    written = pq.read_table(tmp_path / "out" / "results.parquet").drop_columns(
        ["rulebook_sha256", "rulebook_status"])
    assert written.column("patient_id").to_pylist() == in_order  # the patients' order
    written = written.sort_by("patient_id")
    assert written.num_rows == 3000
    assert written.schema.names == expected.schema.names
    assert written.schema.remove_metadata() == expected.schema
    assert written.to_pylist() == expected.to_pylist()
