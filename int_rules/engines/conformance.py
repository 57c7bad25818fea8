"""Conformance: run records through any engine and compare what each patient gets.

Every engine's answer for a patient is reduced to one plain :class:`PatientOutcome` (fact
values, rules fired, decision outputs, pathway state, date entered and findings, the codes
that may be recorded next, or the overlap that stopped the assessment), so engines with very
different machinery compare field by field. A new engine is checked with one call::

    problems = conformance.compare_engines(book, records, as_of, "myengine", workdir=tmp)
    assert not problems, problems

Per-record engines are run through :meth:`Rulebook.assess`; the population engines
(``duckdb``, ``spark``) write the records as analyst tables (CSV) under ``workdir`` and run
:func:`int_rules.population.run_population` (``spark`` on the active Spark session, or a new
local one).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..assessment import HitPolicyError

if TYPE_CHECKING:
    from ..population.engine import PopulationRun
    from ..record import PatientRecord
    from ..rulebook import Rulebook

__all__ = [
    "ENGINES",
    "POPULATION_ENGINES",
    "PatientOutcome",
    "compare_engines",
    "differences",
    "outcomes",
    "run_outcomes",
    "table_cell",
    "table_rows",
    "write_tables",
]

#: Every engine the spec suite and the differential tests run.
ENGINES = ("reference", "generated", "durable", "duckdb", "spark")
#: The engines that assess a whole extract (the others assess one record at a time).
POPULATION_ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class PatientOutcome:
    """What one engine concluded for one patient, as plain data.

    ``overlap`` holds the message when a ``unique`` decision's rules overlapped (the reference
    raises :class:`~int_rules.HitPolicyError`; population runs reject the patient), and then
    nothing else is set.
    """

    patient_id: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    rule_ids: tuple[str, ...] = ()
    outputs: Mapping[str, Any] = field(default_factory=dict)  # "<ruleset>.<output>" -> value
    pathway_state: str | None = None
    pathway_entered: dt.date | None = None
    pathway_findings: tuple[str, ...] = ()
    next_codes: tuple[str, ...] = ()
    overlap: str | None = None


def outcomes(book: Rulebook, records: Sequence[PatientRecord], as_of: dt.date, engine: str,
             workdir: Path | None = None) -> dict[str, PatientOutcome]:
    """Every record's outcome on ``engine`` (``workdir``: where a population engine writes
    the tables)."""
    if engine in POPULATION_ENGINES:
        if workdir is None:
            raise ValueError(f"the {engine} engine needs a workdir to write the tables in")
        return _population(book, records, as_of, workdir, engine)
    return {r.patient_id: _record(book, r, as_of, engine) for r in records}


def _record(book: Rulebook, record: PatientRecord, as_of: dt.date,
            engine: str) -> PatientOutcome:
    try:
        a = book.assess(record, as_of, engine=engine)
    except HitPolicyError as exc:
        return PatientOutcome(record.patient_id,
                              overlap=f"{exc.ruleset}: {', '.join(exc.rule_ids)}")
    results = a.results()
    outputs = {}
    for rs in book.rulesets:
        for out in rs.decision.outputs:
            value = results[rs.id][out.name]
            if out.type == "code":  # population outputs hold codes as text
                value = [str(v) for v in value] if isinstance(value, list) else \
                    (None if value is None else str(value))
            outputs[f"{rs.id}.{out.name}"] = value
    return PatientOutcome(
        record.patient_id,
        facts={name: a.values[name] for name in book.fact_order},
        rule_ids=a.rule_ids,
        outputs=outputs,
        pathway_state=a.pathway.state,
        pathway_entered=a.pathway.entered,
        pathway_findings=tuple(f.id for f in a.pathway.findings),
        next_codes=tuple(d.code for d in book.next_codes(record, as_of)),
    )


def _population(book: Rulebook, records: Sequence[PatientRecord], as_of: dt.date,
                workdir: Path, engine: str) -> dict[str, PatientOutcome]:
    from ..population.engine import run_population

    write_tables(records, workdir)
    run = run_population(book, workdir, as_of, engine=engine)
    try:
        return run_outcomes(book, run, [r.patient_id for r in records])
    finally:
        run.close()


def run_outcomes(book: Rulebook, run: PopulationRun,
                 patient_ids: Sequence[str]) -> dict[str, PatientOutcome]:
    """The outcomes of a finished population run, for these patients."""
    from ..population.engine import output_column

    results = {r["patient_id"]: r for r in run.result_rows()}
    facts = {r["patient_id"]: r for r in run.fact_rows()}
    rejects = {r["patient_id"]: r["reason"] for r in run.reject_rows()
               if r["tbl"] == "(rules)"}
    out: dict[str, PatientOutcome] = {}
    for pid in patient_ids:
        if pid in rejects:
            out[pid] = PatientOutcome(pid, overlap=_overlap_of(rejects[pid]))
            continue
        row = results.get(pid)
        if row is None:
            out[pid] = PatientOutcome(pid, overlap="(missing from the results)")
            continue
        out[pid] = PatientOutcome(
            pid,
            facts={name: facts[pid][name] for name in book.fact_order},
            rule_ids=tuple(row["rule_ids"]),
            outputs={f"{rs.id}.{o.name}": row[output_column(rs.id, o.name)]
                     for rs in book.rulesets for o in rs.decision.outputs},
            pathway_state=row["pathway_state"],
            pathway_entered=row["pathway_entered"],
            pathway_findings=tuple(row["pathway_findings"]),
            next_codes=tuple(row["pathway_next_codes"]),
        )
    return out


def _overlap_of(reason: str) -> str:
    """``ruleset: A, B`` from a population reject's reason (as :class:`HitPolicyError` gives)."""
    # "ruleset X has hit policy 'unique' but rules A, B all fired; ..."
    words = reason.split(" ")
    if len(words) > 1 and words[0] == "ruleset" and " but rules " in reason:
        rules = reason.split(" but rules ", 1)[1].split(" all fired", 1)[0]
        return f"{words[1]}: {rules}"
    return reason


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def differences(expected: Mapping[str, PatientOutcome], got: Mapping[str, PatientOutcome],
                label: str = "engine") -> list[str]:
    """Every way ``got`` differs from ``expected``, patient by patient, in words."""
    problems: list[str] = []
    for pid, want in expected.items():
        have = got.get(pid)
        if have is None:
            problems.append(f"{pid}: missing from {label}")
            continue
        if (want.overlap is None) != (have.overlap is None) or want.overlap != have.overlap:
            problems.append(f"{pid}: overlap: expected {want.overlap!r}, {label} "
                            f"{have.overlap!r}")
            continue
        for name, value in want.facts.items():
            if not _same(value, have.facts.get(name)):
                problems.append(f"{pid}: fact {name}: expected {value!r}, {label} "
                                f"{have.facts.get(name)!r}")
        for attr in ("rule_ids", "outputs", "pathway_state", "pathway_entered",
                     "pathway_findings", "next_codes"):
            if getattr(want, attr) != getattr(have, attr):
                problems.append(f"{pid}: {attr}: expected {getattr(want, attr)!r}, {label} "
                                f"{getattr(have, attr)!r}")
    extra = set(got) - set(expected)
    if extra:
        problems.append(f"{label} has patients nobody asked about: {sorted(extra)}")
    return problems


def compare_engines(book: Rulebook, records: Sequence[PatientRecord], as_of: dt.date,
                    engine: str, reference: str = "reference",
                    workdir: Path | None = None) -> list[str]:
    """Every difference between ``engine`` and ``reference`` on these records (empty: they
    agree on every fact, rule, output and pathway result of every patient)."""
    want = outcomes(book, records, as_of, reference,
                    workdir / reference if workdir is not None else None)
    got = outcomes(book, records, as_of, engine,
                   workdir / engine if workdir is not None else None)
    return differences(want, got, engine)


# -- records as analyst tables ----------------------------------------------------------------


def table_cell(value: Any) -> str:
    """A value as a cell of an analyst CSV table (booleans ``true``/``false``, ISO dates)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def table_rows(records: Sequence[PatientRecord]
               ) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """Each record as rows of the five input tables (header, rows), in record order."""
    tables: dict[str, tuple[list[str], list[list[Any]]]] = {
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
        tables["patients"][1].append([r.patient_id, dob, r.sex, r.practice, r.neighbourhood,
                                      r.gp_system, r.date_of_death])
        for e in r.events:
            tables["clinical_events"][1].append([r.patient_id, e.date, e.code, e.value, e.unit,
                                                 e.is_problem])
        for a in r.admissions:
            tables["admissions"][1].append([r.patient_id, a.admitted, a.discharged,
                                            a.emergency])
        for s in r.risk_scores:
            tables["risk_scores"][1].append([r.patient_id, s.date, s.value, s.source])
        for m in r.monitoring:
            tables["monitoring"][1].append([r.patient_id, m.date, m.kind, m.measure, m.value])
    return tables


def write_tables(records: Sequence[PatientRecord], directory: Path) -> None:
    """Write ``records`` as the five input tables (CSV) of a population run."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, (header, rows) in table_rows(records).items():
        with (directory / f"{name}.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows([[table_cell(v) for v in row] for row in rows])
