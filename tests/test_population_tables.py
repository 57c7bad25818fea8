"""Reading an extract: bad directories and files stop the run with a clear message; bad rows go
to the rejects with their file, row and reason; every patient is accounted for."""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import int_rules
from int_rules.population.engine import run_population
from int_rules.population.tables import PopulationInputError

BOOK = int_rules.load()
AS_OF = dt.date(2026, 3, 31)
SEVERE_FRAILTY = sorted(BOOK.codelists["frailty_severe"].codes)[0]
ON_PATHWAY = sorted(BOOK.codelists["int_on_pathway"].codes)[0]


def _write(path: Path, text: str) -> None:
    path.write_text(text.lstrip("\n"), encoding="utf-8")


def _patients(directory: Path, rows: str = "") -> None:
    _write(directory / "patients.csv", f"""
patient_id,date_of_birth,sex,practice,neighbourhood,gp_system,date_of_death
P1,1940-05-02,female,E1,HATFIELD,EMIS,
P2,1950-02,male,E1,HATFIELD,S1,
{rows}""")


def _events(directory: Path, rows: str = "") -> None:
    _write(directory / "clinical_events.csv", f"""
patient_id,date,snomedct_code,numeric_value,is_problem
P1,2025-01-01,{SEVERE_FRAILTY},,
P1,2025-02-01,{ON_PATHWAY},,true
{rows}""")


def _run(directory: Path) -> int_rules.population.PopulationRun:
    return run_population(BOOK, directory, AS_OF)


# -- the run stops, naming what is wrong ------------------------------------------------------


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(PopulationInputError, match="does not exist"):
        _run(tmp_path / "nowhere")


def test_a_file_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(PopulationInputError, match="is not a directory"):
        _run(tmp_path / "x.csv")


def test_missing_required_table(tmp_path: Path) -> None:
    _patients(tmp_path)
    with pytest.raises(PopulationInputError, match=r"no clinical_events table .*"
                                                   r"clinical_events\.csv"):
        _run(tmp_path)


def test_missing_required_column_names_file_and_columns(tmp_path: Path) -> None:
    _patients(tmp_path)
    _write(tmp_path / "clinical_events.csv", "patient_id,when,code\nP1,2025-01-01,1\n")
    with pytest.raises(PopulationInputError) as err:
        _run(tmp_path)
    message = str(err.value)
    assert message.startswith("clinical_events.csv: missing required column(s) date, "
                              "snomedct_code")
    assert "columns found: patient_id, when, code" in message


def test_empty_file(tmp_path: Path) -> None:
    _patients(tmp_path)
    (tmp_path / "clinical_events.csv").write_text("")
    with pytest.raises(PopulationInputError, match=r"clinical_events\.csv: the file is empty"):
        _run(tmp_path)


def test_corrupt_parquet_file(tmp_path: Path) -> None:
    _patients(tmp_path)
    (tmp_path / "clinical_events.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(PopulationInputError, match=r"clinical_events\.parquet: cannot read"):
        _run(tmp_path)


def test_two_files_for_one_table(tmp_path: Path) -> None:
    _patients(tmp_path)
    _events(tmp_path)
    pq.write_table(pa.table({"patient_id": ["P1"]}), tmp_path / "clinical_events.parquet")
    with pytest.raises(PopulationInputError, match="more than one file or folder"):
        _run(tmp_path)


# -- bad rows go to the rejects ---------------------------------------------------------------


def test_bad_rows_are_rejected_with_file_row_and_reason(tmp_path: Path) -> None:
    _patients(tmp_path, "P3,1930-13-01,x,E2,WARE,foo,\nP4,1960-01-01,,E2,WARE,,\n"
                        "P4,1960-01-01,,E2,WARE,,\n,1960-01-01,,,,,\n"
                        "P5,1950-01-01,female,,,,1949-12-31\n")
    _events(tmp_path, f"P2,2025-02-01,123,,\nP2,2025-02-01,925861000000101,,\n"
                      f"P9,2025-02-01,{ON_PATHWAY},,\nP1,2025-02-xx,{ON_PATHWAY},,\n"
                      f"P1,2025-02-01,{ON_PATHWAY},,1,2\nP1,2025-03-01,{ON_PATHWAY},abc,\n"
                      f"P4,2025-02-01,{ON_PATHWAY},,\n")
    _write(tmp_path / "admissions.csv", """
patient_id,admission_date,discharge_date,emergency
P1,2025-06-01,2025-06-03,true
P1,2025-06-05,2025-06-03,true
P2,2025-06-05,,maybe
""")
    run = _run(tmp_path)
    try:
        rejects = {(r["file"], r["row"]): r for r in run.reject_rows()}
        summary = run.summary()
    finally:
        run.close()

    def reason(file: str, row: int) -> str:
        return str(rejects[(file, row)]["reason"])

    # patients.csv: the header is line 1, P1 line 2 ...
    assert "date_of_birth '1930-13-01' is not a date" in reason("patients.csv", 4)
    assert "sex 'x' is not one of female, male, other, unknown" in reason("patients.csv", 4)
    assert "gp_system 'foo'" in reason("patients.csv", 4)
    assert reason("patients.csv", 5) == "patient_id appears 2 times in the patients table"
    assert reason("patients.csv", 6) == "patient_id appears 2 times in the patients table"
    assert reason("patients.csv", 7) == "patient_id is empty"
    assert "date_of_death 1949-12-31 is before date_of_birth 1950-01-01" in \
        reason("patients.csv", 8)
    # clinical_events.csv
    assert "snomedct_code '123' is not a SNOMED CT concept id" in \
        reason("clinical_events.csv", 4)
    assert "Verhoeff check digit is wrong" in reason("clinical_events.csv", 5)
    assert reason("clinical_events.csv", 6) == "patient_id 'P9' is not in the patients table"
    assert "date '2025-02-xx' is not a date" in reason("clinical_events.csv", 7)
    assert reason("clinical_events.csv", 8).startswith("CSV line not readable")
    # the line after an unreadable line keeps its own number
    assert "numeric_value 'abc' is not a finite number" in reason("clinical_events.csv", 9)
    assert rejects[("clinical_events.csv", 9)]["patient_id"] == "P1"
    # admissions.csv
    assert "discharge_date 2025-06-03 is before admission_date 2025-06-05" in \
        reason("admissions.csv", 3)
    assert "emergency 'maybe' is not true or false" in reason("admissions.csv", 4)

    pats = summary["patients"]
    assert pats["read"] == 6  # P1..P5 and the row without an id
    assert pats["in_results"] == 2
    assert pats["in_rejects"] == 4
    assert pats["all_accounted_for"]
    ev = summary["tables"]["clinical_events"]
    assert ev["rows_read"] == 9
    assert ev["rows_rejected"] == 6
    assert ev["rows_of_rejected_patients"] == 1  # P4's event
    assert ev["rows_accepted"] == 2
    assert ev["rows_read"] == ev["rows_accepted"] + ev["rows_rejected"] + \
        ev["rows_of_rejected_patients"]


def test_patients_with_rejected_rows_are_still_assessed_and_flagged(tmp_path: Path) -> None:
    _patients(tmp_path)
    _events(tmp_path, f"P1,2025-13-01,{ON_PATHWAY},,\nP1,2025-14-01,{ON_PATHWAY},,\n")
    run = _run(tmp_path)
    try:
        rows = {r["patient_id"]: r for r in run.result_rows()}
    finally:
        run.close()
    assert rows["P1"]["rejected_rows"] == 2
    assert rows["P2"]["rejected_rows"] == 0
    assert rows["P1"]["pathway_state"] == "on_caseload"


def test_parquet_rows_are_numbered_from_one(tmp_path: Path) -> None:
    _patients(tmp_path)
    pq.write_table(pa.table({
        "patient_id": ["P1", "P2", "P1"],
        "date": [dt.date(2025, 1, 1), dt.date(2025, 1, 2), dt.date(2025, 1, 3)],
        "snomedct_code": [SEVERE_FRAILTY, "42", SEVERE_FRAILTY],
    }), tmp_path / "clinical_events.parquet")
    run = _run(tmp_path)
    try:
        rejects = run.reject_rows()
        facts = {r["patient_id"]: r for r in run.fact_rows()}
    finally:
        run.close()
    assert [(r["file"], r["row"]) for r in rejects] == [("clinical_events.parquet", 2)]
    assert facts["P1"]["frailty_category"] == "severe"


def test_a_folder_of_files_and_gzip(tmp_path: Path) -> None:
    _patients(tmp_path)
    folder = tmp_path / "clinical_events"
    folder.mkdir()
    _write(folder / "part-1.csv", f"patient_id,date,snomedct_code\nP1,2025-01-01,"
                                  f"{SEVERE_FRAILTY}\n")
    with gzip.open(folder / "part-2.csv.gz", "wt") as fh:
        fh.write(f"patient_id,date,snomedct_code\nP2,2025-01-01,{ON_PATHWAY}\nP2,bad,1\n")
    run = _run(tmp_path)
    try:
        rejects = run.reject_rows()
        rows = {r["patient_id"]: r for r in run.result_rows()}
        files = run.summary()["tables"]["clinical_events"]["files"]
    finally:
        run.close()
    assert files == ["clinical_events/part-1.csv", "clinical_events/part-2.csv.gz"]
    assert [(r["file"], r["row"]) for r in rejects] == [("clinical_events/part-2.csv.gz", 3)]
    assert rows["P2"]["pathway_state"] == "on_caseload"


def test_unknown_files_and_columns_are_noted_not_read(tmp_path: Path) -> None:
    _patients(tmp_path)
    _write(tmp_path / "clinical_events.csv", f"patient_id,date,snomedct_code,colour\n"
                                             f"P1,2025-01-01,{SEVERE_FRAILTY},red\n")
    _write(tmp_path / "events.csv", "x\n")
    run = _run(tmp_path)
    try:
        notes = run.summary()["notes"]
    finally:
        run.close()
    assert any("'events.csv' ignored" in n for n in notes)
    assert any("column 'colour' ignored" in n for n in notes)


def test_optional_tables_may_be_absent(tmp_path: Path) -> None:
    _patients(tmp_path)
    _events(tmp_path)
    run = _run(tmp_path)
    try:
        summary = run.summary()
        facts = {r["patient_id"]: r for r in run.fact_rows()}
    finally:
        run.close()
    assert summary["tables_missing"] == ["admissions", "risk_scores", "monitoring"]
    assert facts["P1"]["emergency_admissions_recent"] == 0


# -- checked CSV rows staged as Parquet, in a scratch folder removed with the run --------------


def _folders(root: Path, *names: str) -> list[Path]:
    """Empty folders ``names`` under ``root``."""
    made = [root / name for name in names]
    for folder in made:
        folder.mkdir()
    return made


def _mixed_extract(directory: Path) -> None:
    """Patients (one bad), events from a CSV and a Parquet file (a bad row in each, a stray
    quote), and an admissions table with a header and no rows."""
    _patients(directory, "P3,not a date,female,E1,HATFIELD,EMIS,\n")
    folder = directory / "clinical_events"
    folder.mkdir()
    _write(folder / "part-1.csv", f"""
patient_id,date,snomedct_code,numeric_value,is_problem
P1,2025-01-01,{SEVERE_FRAILTY},,
P2,2025-13-01,{ON_PATHWAY},,
"P2,2025-02-01,{ON_PATHWAY},,

P2,2025-03-01,{ON_PATHWAY}, 7.5 ,yes
P9,2025-03-01,{ON_PATHWAY},,
""")
    pq.write_table(pa.table({
        "patient_id": ["P1", "P2", "P1"],
        "date": [dt.date(2025, 1, 1), dt.date(2025, 1, 2), dt.date(2025, 1, 3)],
        "snomedct_code": [SEVERE_FRAILTY, "42", SEVERE_FRAILTY],
    }), folder / "part-2.parquet")
    _write(directory / "admissions.csv", "patient_id,admission_date,emergency\n")


def test_staged_rows_are_the_rows_read_into_memory(tmp_path: Path) -> None:
    """Every table's checked rows, and the rejects, are the same staged as Parquet files as
    held in a table in memory."""
    from int_rules.population.engine import connect
    from int_rules.population.tables import load_tables

    (data,) = _folders(tmp_path, "data")
    _mixed_extract(data)
    seen = []
    for stage in (None, tmp_path / "staged"):
        con = connect()
        try:
            load_tables(con, data, stage_dir=stage)
            seen.append({t: con.execute(f"SELECT * FROM __src_{t} ORDER BY seq").fetchall()
                         for t in ("pt", "ev", "adm", "rs", "mon")}
                        | {"rejects": con.execute("SELECT * FROM rejects ORDER BY ALL")
                           .fetchall()})
        finally:
            con.close()
    assert seen[0] == seen[1]
    assert len(seen[0]["ev"]) == 8 and seen[0]["adm"] == []
    assert sorted(p.name for p in (tmp_path / "staged").iterdir()) == [
        "ev-00000.parquet", "ev-00001.parquet", "pt-00000.parquet"]  # no rows: no file


def test_a_run_from_csv_removes_its_scratch_folder(tmp_path: Path) -> None:
    scratch, data = _folders(tmp_path, "scratch", "data")
    _mixed_extract(data)
    run = run_population(BOOK, data, AS_OF, temp_directory=scratch)
    try:
        assert run.work_dir is not None and run.work_dir.parent == scratch
        assert any(run.work_dir.rglob("*.parquet"))
        rejects = [(r["file"], r["row"]) for r in run.reject_rows()]
        rows = {r["patient_id"]: r for r in run.result_rows()}
    finally:
        run.close()
    assert list(scratch.iterdir()) == []
    assert sorted(rejects) == [("clinical_events/part-1.csv", 3),
                               ("clinical_events/part-1.csv", 4),
                               ("clinical_events/part-1.csv", 7),
                               ("clinical_events/part-2.parquet", 2),
                               ("patients.csv", 4)]
    assert set(rows) == {"P1", "P2"}


def test_a_run_that_stops_removes_its_scratch_folder(tmp_path: Path) -> None:
    scratch, data = _folders(tmp_path, "scratch", "data")
    _patients(data)
    _write(data / "clinical_events.csv", "patient_id,snomedct_code\nP1,1\n")
    with pytest.raises(PopulationInputError, match="missing required column"):
        run_population(BOOK, data, AS_OF, temp_directory=scratch)
    assert list(scratch.iterdir()) == []


def test_a_path_that_reads_as_a_pattern_reads_only_its_own_files(tmp_path: Path) -> None:
    """DuckDB reads ``*``, ``?`` and ``[`` in a path as a pattern: ``extract[1]`` would match
    ``extract1``. Each file is read as the path it is, inputs and staged rows alike."""
    data = tmp_path / "extract[1]"
    decoy = tmp_path / "extract1"
    for folder, code in ((data, SEVERE_FRAILTY), (decoy, "42")):
        folder.mkdir()
        _patients(folder)
        pq.write_table(pa.table({"patient_id": ["P1"], "date": [dt.date(2025, 1, 1)],
                                 "snomedct_code": [code]}), folder / "clinical_events.parquet")
    scratch = tmp_path / "scratch?[*]"
    scratch.mkdir()
    run = run_population(BOOK, data, AS_OF, temp_directory=scratch)
    try:
        assert any(scratch.rglob("*.parquet"))  # the patients, staged from CSV
        rejects = run.reject_rows()
        facts = {r["patient_id"]: r for r in run.fact_rows()}
    finally:
        run.close()
    assert list(scratch.iterdir()) == []
    assert rejects == []
    assert facts["P1"]["frailty_category"] == "severe"


def test_ctrl_c_while_a_csv_block_is_read_is_an_interrupt_not_bad_input(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB reports a KeyboardInterrupt raised while it scans a Python object (the block of
    lines) as an error of its own; the run stops as interrupted, not as a file it cannot read."""
    from int_rules.population import csvlines, tables

    _patients(tmp_path)
    _events(tmp_path)
    real = csvlines.read_blocks

    def stream(batches: list[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        yield from batches
        raise KeyboardInterrupt

    def interrupted_blocks(*args: Any, **kwargs: Any) -> Iterator[csvlines.CsvBlock]:
        for block in real(*args, **kwargs):
            plain = pa.RecordBatchReader.from_batches(block.plain.schema,
                                                      stream(block.plain.to_batches()))
            yield csvlines.CsvBlock(plain, block.parsed, block.blank_lines)

    monkeypatch.setattr(tables, "read_blocks", interrupted_blocks)
    monkeypatch.setattr(tables, "plain_file", lambda *_a, **_k: None)  # read line by line
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(KeyboardInterrupt):
        run_population(BOOK, tmp_path, AS_OF, temp_directory=scratch)
    assert list(scratch.iterdir()) == []
