"""Helpers for the population tests: write records as analyst tables, compare with the
reference engine patient by patient."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from int_rules import PatientRecord, Rulebook
from int_rules.engines import conformance
from int_rules.population.engine import PopulationRun

OPTIONAL_TABLES = ("admissions", "risk_scores", "monitoring")


def one_line(record: PatientRecord) -> PatientRecord:
    """``record`` with line breaks in its text replaced by spaces: a CSV table holds one row per
    line (a cell may not hold a line break; docs/population.md), so such text goes by Parquet."""
    def flat(text: str | None) -> str | None:
        return None if text is None else text.replace("\r", " ").replace("\n", " ")

    return record.model_copy(update={
        "patient_id": flat(record.patient_id), "practice": flat(record.practice),
        "neighbourhood": flat(record.neighbourhood),
        "risk_scores": tuple(r.model_copy(update={"source": flat(r.source)})
                             for r in record.risk_scores),
        "monitoring": tuple(m.model_copy(update={"measure": flat(m.measure)})
                            for m in record.monitoring),
    })


table_rows = conformance.table_rows


def write_tables(records: Sequence[PatientRecord], directory: Path, fmt: str = "csv",
                 omit: Iterable[str] = ()) -> None:
    """Write ``records`` as the input tables (CSV or Parquet), leaving out ``omit`` tables."""
    directory.mkdir(parents=True, exist_ok=True)
    skip = set(omit)
    for name, (header, rows) in table_rows(records).items():
        if name in skip:
            continue
        if fmt == "csv":
            with (directory / f"{name}.csv").open("w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(header)
                w.writerows([[conformance.table_cell(v) for v in row] for row in rows])
        else:
            columns = list(zip(*rows, strict=True)) if rows else [[] for _ in header]
            arrays = []
            for col_name, values in zip(header, columns, strict=True):
                arrays.append(pa.array(list(values), type=_parquet_type(col_name)))
            pq.write_table(pa.table(dict(zip(header, arrays, strict=True))),
                           directory / f"{name}.parquet")


def _parquet_type(column: str) -> pa.DataType:
    if column in ("date", "admission_date", "discharge_date", "date_of_death"):
        return pa.date32()
    if column in ("numeric_value", "score", "value"):
        return pa.float64()
    if column in ("is_problem", "emergency"):
        return pa.bool_()
    return pa.string()


def as_read(records: Sequence[PatientRecord]) -> list[PatientRecord]:
    """The records as the tables give them back: an empty text cell is "not recorded" (a CSV
    cannot tell an empty practice from a missing one), so '' becomes None."""
    return [r.model_copy(update={"practice": r.practice or None,
                                 "neighbourhood": r.neighbourhood or None}) for r in records]


def without(records: Sequence[PatientRecord], tables: Iterable[str]) -> list[PatientRecord]:
    """The records as the reference engine sees them when those optional tables are absent."""
    drop = set(tables)
    field = {"admissions": "admissions", "risk_scores": "risk_scores",
             "monitoring": "monitoring"}
    return [r.model_copy(update={field[t]: () for t in drop}) for r in records]


def differences(book: Rulebook, run: PopulationRun, records: Sequence[PatientRecord],
                as_of: dt.date) -> list[str]:
    """Every way the population results differ from ``book.assess`` for each record."""
    ids = [r.patient_id for r in records]
    problems = conformance.differences(conformance.outcomes(book, records, as_of, "reference"),
                                       conformance.run_outcomes(book, run, ids), "population")
    assessed = {r["patient_id"] for r in run.result_rows()}
    rejected = {r["patient_id"] for r in run.reject_rows() if r["tbl"] == "(rules)"}
    if len(assessed) + len(rejected) != len(records):
        problems.append(f"{len(records)} records, {len(assessed)} results and {len(rejected)} "
                        "rule rejects")
    return problems
