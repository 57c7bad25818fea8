"""Helpers for the population tests: write records as analyst tables, compare with the
reference engine patient by patient."""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from int_rules import HitPolicyError, PatientRecord, Rulebook
from int_rules.population.engine import PopulationRun, output_column

OPTIONAL_TABLES = ("admissions", "risk_scores", "monitoring")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


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


def table_rows(records: Sequence[PatientRecord]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """Each record as rows of the five input tables (header, rows), in record order."""
    out: dict[str, tuple[list[str], list[list[Any]]]] = {
        "patients": (["patient_id", "date_of_birth", "sex", "practice", "neighbourhood",
                      "gp_system", "date_of_death"], []),
        "clinical_events": (["patient_id", "date", "snomedct_code", "numeric_value", "unit",
                             "is_problem"], []),
        "admissions": (["patient_id", "admission_date", "discharge_date", "emergency"], []),
        "risk_scores": (["patient_id", "date", "score", "source"], []),
        "monitoring": (["patient_id", "date", "kind", "measure", "value"], []),
    }
    for r in records:
        dob = r.date_of_birth.isoformat()[:7] if r.birth_precision == "month" \
            else r.date_of_birth.isoformat()
        out["patients"][1].append([r.patient_id, dob, r.sex, r.practice, r.neighbourhood,
                                   r.gp_system, r.date_of_death])
        for e in r.events:
            out["clinical_events"][1].append([r.patient_id, e.date, e.code, e.value, e.unit,
                                              e.is_problem])
        for a in r.admissions:
            out["admissions"][1].append([r.patient_id, a.admitted, a.discharged, a.emergency])
        for s in r.risk_scores:
            out["risk_scores"][1].append([r.patient_id, s.date, s.value, s.source])
        for m in r.monitoring:
            out["monitoring"][1].append([r.patient_id, m.date, m.kind, m.measure, m.value])
    return out


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
                w.writerows([[_cell(v) for v in row] for row in rows])
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


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _expected_output(value: Any, otype: str) -> Any:
    if otype == "code":
        return [str(v) for v in value] if isinstance(value, list) else \
            (None if value is None else str(value))
    return value


def differences(book: Rulebook, run: PopulationRun, records: Sequence[PatientRecord],
                as_of: dt.date) -> list[str]:
    """Every way the population results differ from ``book.assess`` for each record."""
    results = {r["patient_id"]: r for r in run.result_rows()}
    facts = {r["patient_id"]: r for r in run.fact_rows()}
    rejected = {r["patient_id"] for r in run.reject_rows() if r["tbl"] == "(rules)"}
    problems: list[str] = []
    for record in records:
        pid = record.patient_id
        try:
            a = book.assess(record, as_of)
        except HitPolicyError:
            if pid not in rejected or pid in results:
                problems.append(f"{pid}: reference raises HitPolicyError; population did not "
                                "reject the patient")
            continue
        if pid not in results:
            problems.append(f"{pid}: missing from the population results")
            continue
        row, frow = results[pid], facts[pid]
        for name, fv in a.facts.items():
            if not _same(fv.value, frow[name]):
                problems.append(f"{pid}: fact {name}: reference {fv.value!r}, population "
                                f"{frow[name]!r}")
        res = a.results()
        for rs in book.rulesets:
            for key, out in rs.definition.outputs.items():
                want = _expected_output(res[rs.id][key], out.type)
                got = row[output_column(rs.id, key)]
                if want != got:
                    problems.append(f"{pid}: {rs.id}.{key}: reference {want!r}, population "
                                    f"{got!r}")
        if list(a.rule_ids) != row["rule_ids"]:
            problems.append(f"{pid}: rules fired: reference {list(a.rule_ids)}, population "
                            f"{row['rule_ids']}")
        p = a.pathway
        if (p.state, p.entered) != (row["pathway_state"], row["pathway_entered"]):
            problems.append(f"{pid}: pathway: reference {p.state} since {p.entered}, "
                            f"population {row['pathway_state']} since {row['pathway_entered']}")
        if [f.id for f in p.findings] != row["pathway_findings"]:
            problems.append(f"{pid}: pathway findings: reference {[f.id for f in p.findings]}, "
                            f"population {row['pathway_findings']}")
        allowed = [d.code for d in book.next_codes(record, as_of)]
        if allowed != row["pathway_next_codes"]:
            problems.append(f"{pid}: next codes: reference {allowed}, population "
                            f"{row['pathway_next_codes']}")
    if len(results) + len(rejected) != len(records):
        problems.append(f"{len(records)} records, {len(results)} results and {len(rejected)} "
                        "rule rejects")
    return problems
