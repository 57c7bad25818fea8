"""A FHIR Bulk Data export (NDJSON) to the population tables, read by DuckDB's JSON reader.

An export directory holds one or more ``.ndjson`` (or ``.ndjson.gz``) files per resource type,
named after it (``Patient.ndjson``, ``Observation.ndjson``, ``Observation_2.ndjson.gz``,
``1.Condition.ndjson``, ...). Each line is one resource. The resources map to the tables of
docs/population.md by the same rules as one patient's Bundle (:mod:`.bundle`; the constants of
:mod:`.vocabulary`), in SQL:

=================  ==========================================================================
Patient            ``patients`` (practice: an ODS identifier on generalPractitioner, else the
                   referenced Organization's, from ``Organization.ndjson``)
Condition          ``clinical_events`` (SNOMED CT coding; onset, else recorded date; problem)
Observation        ``clinical_events``, or ``monitoring`` when in category vital-signs
Flag               ``monitoring`` (an alert)
Encounter          ``admissions`` (inpatient and emergency classes)
RiskAssessment     ``risk_scores`` (one row per prediction with a probabilityDecimal)
=================  ==========================================================================

The rows are written as Parquet under ``<out>/fhir_tables/<table>/<NDJSON file>.parquet`` and
read back by the population reader, so the checks, rejects and accounting are exactly those
of CSV and Parquet extracts. A mapping problem the tables can express (two SNOMED CT codes in
one concept, a death without a date, no date) is written as the cell it makes bad, so it is
rejected with its reason; each row keeps ``fhir_source`` (file, line, ``Type/id``) to trace a
reject back to its resource. Resources skipped (entered in error, ...) or not mapped (no
SNOMED CT coding, a class that is not an admission, another resource type) are counted in
:class:`BulkRead`; every line of every file is a row, skipped, or ignored, and counted.

A resource whose elements are not of their FHIR type (``"code": "x"`` where an object belongs)
stops the run, naming the file and line, rather than being read as empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from ..engines.duckdb import file_path
from ..population.tables import PopulationInputError
from . import vocabulary as v

__all__ = ["RESOURCE_TYPES", "BulkRead", "read_bulk_export"]

RESOURCE_TYPES = ("Patient", "Organization", "Condition", "Observation", "Flag", "Encounter",
                  "RiskAssessment")


def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_CODING = "STRUCT(system VARCHAR, code VARCHAR, display VARCHAR)"
_CONCEPT = f"STRUCT(text VARCHAR, coding {_CODING}[])"
_EXT = f"STRUCT(url VARCHAR, valueCodeableConcept {_CONCEPT})[]"
_REF = "STRUCT(reference VARCHAR, display VARCHAR)"

#: The elements read of each resource type (DuckDB types for read_json's ``columns``).
_COLUMNS: dict[str, dict[str, str]] = {
    "Patient": {"birthDate": "VARCHAR", "gender": "VARCHAR", "deceasedDateTime": "VARCHAR",
                "deceasedBoolean": "BOOLEAN",
                "generalPractitioner":
                    "STRUCT(reference VARCHAR, identifier STRUCT(system VARCHAR, "
                    "value VARCHAR))[]"},
    "Organization": {"identifier": "STRUCT(system VARCHAR, value VARCHAR)[]"},
    "Condition": {"subject": _REF, "code": _CONCEPT, "category": f"{_CONCEPT}[]",
                  "verificationStatus": _CONCEPT, "onsetDateTime": "VARCHAR",
                  "onsetPeriod": "STRUCT(start VARCHAR)", "recordedDate": "VARCHAR"},
    "Observation": {"status": "VARCHAR", "subject": _REF, "code": _CONCEPT,
                    "category": f"{_CONCEPT}[]", "interpretation": f"{_CONCEPT}[]",
                    "effectiveDateTime": "VARCHAR", "effectivePeriod": "STRUCT(start VARCHAR)",
                    "effectiveInstant": "VARCHAR", "issued": "VARCHAR",
                    "valueQuantity": "STRUCT(value DOUBLE, unit VARCHAR, code VARCHAR)",
                    "valueInteger": "BIGINT"},
    "Flag": {"status": "VARCHAR", "subject": _REF, "code": _CONCEPT,
             "period": "STRUCT(start VARCHAR)"},
    "Encounter": {"status": "VARCHAR", "subject": _REF,
                  "class": "STRUCT(system VARCHAR, code VARCHAR)",
                  "period": 'STRUCT("start" VARCHAR, "end" VARCHAR)',
                  "hospitalization": f"STRUCT(extension {_EXT})", "extension": _EXT},
    "RiskAssessment": {"status": "VARCHAR", "subject": _REF, "occurrenceDateTime": "VARCHAR",
                       "occurrencePeriod": "STRUCT(start VARCHAR)", "method": _CONCEPT,
                       "performer": _REF,
                       "prediction": "STRUCT(probabilityDecimal DOUBLE)[]"},
}


def _date(expr: str) -> str:
    """The calendar date written in a FHIR dateTime (as :func:`.bundle._date_of`)."""
    return f"(CASE WHEN substr({expr}, 11, 1) = 'T' THEN left({expr}, 10) ELSE {expr} END)"


def _has(concepts: str, system: str | None, codes: Sequence[str] | frozenset[str]) -> str:
    """Whether any coding of a list of CodeableConcepts is one of ``codes`` (in ``system``)."""
    cond = f"c.code IN ({', '.join(_q(x) for x in sorted(codes))})"
    if system is not None:
        cond = f"c.system = {_q(system)} AND {cond}"
    return (f"coalesce(len(list_filter(flatten(list_transform(coalesce({concepts}, []), "
            f"lambda k: coalesce(k.coding, []))), lambda c: {cond})) > 0, FALSE)")


def _patient_ref(expr: str = "subject.reference") -> str:
    """The patient id of a reference (``Patient/x``, or a URL ending in it); else as written."""
    return (f"coalesce(nullif(regexp_extract({expr}, '(?:^|/)Patient/([^/]+)$', 1), ''), "
            f"{expr})")


#: Computed once per resource, in an inner select, for Conditions and Observations: the codes
#: of the SNOMED CT codings of ``code`` (and, for Observations, whether it is a vital sign).
_SNOMED_LIST = (f"list_transform(list_filter(coalesce(code.coding, []), "
                f"lambda c: c.system = {_q(v.SNOMED)}), lambda c: c.code)")
_SNOMED_CODES = "__sct"
_SNOMED_CODE = (f"CASE WHEN len(list_distinct({_SNOMED_CODES})) > 1 THEN "
                f"'several SNOMED CT codes (' || array_to_string(list_sort(list_distinct("
                f"{_SNOMED_CODES})), ', ') || '): cannot tell which is meant' "
                f"ELSE {_SNOMED_CODES}[1] END")
_OTHER_CODINGS = f"len(coalesce(code.coding, [])) - len({_SNOMED_CODES})"
_MEASURE = ("coalesce(nullif(code.text, ''), nullif(code.coding[1].display, ''), "
            "code.coding[1].code)")


def _skipped(rtype: str) -> str:
    if rtype == "Condition":
        return _has("[verificationStatus]", None, v.SKIPPED_VERIFICATION)
    statuses = v.SKIPPED_STATUSES.get(rtype)
    if not statuses:
        return "FALSE"
    return f"coalesce(status IN ({', '.join(_q(s) for s in sorted(statuses))}), FALSE)"


def _skipped_reason(rtype: str) -> str:
    if rtype == "Condition":
        codes = ", ".join(_q(c) for c in sorted(v.SKIPPED_VERIFICATION))
        first = (f"list_filter(coalesce(verificationStatus.coding, []), "
                 f"lambda c: c.code IN ({codes}))[1].code")
        return f"'Condition with verificationStatus ' || {first} || ' (skipped)'"
    return f"'{rtype} with status ' || status || ' (skipped)'"


def _vital() -> str:
    return "__vital"


_VITAL = _has("category", v.OBSERVATION_CATEGORY, (v.VITAL_SIGNS,))


def _emergency_method(ext: str) -> str:
    return (f"coalesce(len(list_filter(coalesce({ext}, []), lambda e: e.url = "
            f"{_q(v.ADMISSION_METHOD_EXTENSION)} AND "
            f"{_has('[e.valueCodeableConcept]', None, v.EMERGENCY_ADMISSION_METHODS)})) > 0, "
            "FALSE)")


@dataclass(frozen=True)
class _Output:
    """One table a resource type feeds: the resources it takes, and its columns (name, SQL
    over the resource's elements)."""

    table: str
    where: str
    columns: tuple[tuple[str, str], ...]


_NO_TEXT = "CAST(NULL AS VARCHAR)"
_NO_NUMBER = "CAST(NULL AS DOUBLE)"


def _outputs(rtype: str) -> tuple[_Output, ...]:
    subject = ("patient_id", _patient_ref())
    if rtype == "Patient":
        died = (f"CASE WHEN deceasedDateTime IS NOT NULL THEN {_date('deceasedDateTime')} "
                "WHEN deceasedBoolean THEN 'deceasedBoolean true without a date' END")
        return (_Output("patients", "TRUE", (
            ("patient_id", "id"), ("date_of_birth", "birthDate"), ("sex", "gender"),
            ("practice", _patient_practice()), ("date_of_death", died))),)
    if rtype == "Condition":
        problem = _has("category", v.CONDITION_CATEGORY, (v.PROBLEM_LIST_ITEM,))
        when = "coalesce(onsetDateTime, onsetPeriod.start, recordedDate)"
        return (_Output("clinical_events", f"len({_SNOMED_CODES}) > 0", (
            subject, ("date", _date(when)), ("snomedct_code", _SNOMED_CODE),
            ("numeric_value", _NO_NUMBER), ("unit", _NO_TEXT), ("is_problem", problem))),)
    if rtype == "Observation":
        when = "coalesce(effectiveDateTime, effectivePeriod.start, effectiveInstant, issued)"
        alert = _has("interpretation", None, v.ALERT_INTERPRETATIONS)
        unit = ("CASE WHEN valueQuantity IS NOT NULL "
                "THEN coalesce(valueQuantity.unit, valueQuantity.code) END")
        return (
            _Output("clinical_events", f"NOT {_vital()} AND len({_SNOMED_CODES}) > 0", (
                subject, ("date", _date(when)), ("snomedct_code", _SNOMED_CODE),
                ("numeric_value", "coalesce(valueQuantity.value, CAST(valueInteger AS DOUBLE))"),
                ("unit", unit), ("is_problem", "FALSE"))),
            _Output("monitoring", _vital(), (
                subject, ("date", _date(when)),
                ("kind", f"CASE WHEN {alert} THEN 'alert' ELSE 'reading' END"),
                ("measure", _MEASURE), ("value", "valueQuantity.value"))),
        )
    if rtype == "Flag":
        return (_Output("monitoring", "TRUE", (
            subject, ("date", _date("period.start")), ("kind", "'alert'"),
            ("measure", _MEASURE), ("value", _NO_NUMBER))),)
    if rtype == "Encounter":
        classes = ", ".join(_q(c) for c in sorted(v.ADMITTED_CLASSES))
        emergency = (f"(class.code = {_q(v.EMERGENCY_CLASS)} "
                     f"OR {_emergency_method('hospitalization.extension')} "
                     f"OR {_emergency_method('extension')})")
        return (_Output("admissions", f"coalesce(class.code IN ({classes}), FALSE)", (
            subject, ("admission_date", _date("period.start")),
            ("discharge_date", _date('period."end"')), ("emergency", emergency))),)
    if rtype == "RiskAssessment":
        source = ("coalesce(nullif(method.text, ''), list_filter(list_transform("
                  "coalesce(method.coding, []), "
                  "lambda c: coalesce(nullif(c.display, ''), c.code)), "
                  "lambda x: x IS NOT NULL AND x <> '')[1], performer.display)")
        # One row per prediction with a probability; none: one row without a score (rejected).
        # The list is unnested when the rows are written (see _SCORES).
        preds = ("CASE WHEN len(list_filter(coalesce(prediction, []), "
                 "lambda p: p.probabilityDecimal IS NOT NULL)) = 0 THEN [CAST(NULL AS DOUBLE)] "
                 "ELSE list_transform(list_filter("
                 "prediction, lambda p: p.probabilityDecimal IS NOT NULL), "
                 "lambda p: p.probabilityDecimal) END")
        when = "coalesce(occurrenceDateTime, occurrencePeriod.start)"
        return (_Output("risk_scores", "TRUE", (
            subject, ("date", _date(when)), (_SCORES, preds), ("source", source))),)
    return ()


_SCORES = "score"  # RiskAssessment's list of probabilities, one row each


def _ignored_reason(rtype: str) -> str:
    """Why a resource that is neither skipped nor mapped was left out."""
    if rtype in ("Condition", "Observation"):
        return f"'{rtype} with no SNOMED CT coding (ignored)'"
    if rtype == "Encounter":
        return "'Encounter of class ' || coalesce(class.code, '(none)') || ' (not an admission)'"
    return f"'{rtype} (not read)'"


@dataclass
class BulkRead:
    """What :func:`read_bulk_export` wrote, and the count of every line."""

    tables_dir: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # per NDJSON file
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        lines = sum(f["lines"] for f in self.files.values())
        accounted = sum(f["rows"] + sum(f["skipped"].values()) + sum(f["ignored"].values())
                        for f in self.files.values())
        return {"tables_dir": str(self.tables_dir), "lines": lines,
                "all_lines_accounted_for": lines == accounted, "files": self.files,
                "notes": self.notes}


_TYPE_IN_NAME = re.compile(r"[A-Za-z]+")


def _resource_type(path: Path) -> str | None:
    name = path.name
    for word in _TYPE_IN_NAME.findall(name.split(".ndjson")[0]):
        if word in RESOURCE_TYPES:
            return str(word)
    return None


def discover_export(export_dir: Path) -> tuple[dict[str, list[Path]], list[str]]:
    """The NDJSON files of each resource type in ``export_dir``, and notes on others."""
    if not export_dir.is_dir():
        raise PopulationInputError(f"FHIR export directory '{export_dir}' does not exist or is "
                                   "not a directory")
    found: dict[str, list[Path]] = {}
    notes: list[str] = []
    for entry in sorted(export_dir.iterdir()):
        lowered = entry.name.lower()
        if entry.name.startswith(".") or not lowered.endswith((".ndjson", ".ndjson.gz")):
            continue
        rtype = _resource_type(entry)
        if rtype is None:
            notes.append(f"'{entry.name}' ignored: not one of the resource types read "
                         f"({', '.join(RESOURCE_TYPES)})")
            continue
        found.setdefault(rtype, []).append(entry)
    if "Patient" not in found:
        raise PopulationInputError(f"no Patient.ndjson in '{export_dir}' (a Bulk Data export "
                                   "names its files after the resource type)")
    return found, notes


def read_bulk_export(export_dir: str | Path, tables_dir: str | Path,
                     practices: str | Path | None = None,
                     progress: Callable[[str], None] | None = None,
                     threads: int | None = None, memory_limit: str | None = None) -> BulkRead:
    """Map a Bulk Data export into population tables (Parquet) under ``tables_dir``.

    ``practices`` (CSV: ``practice,neighbourhood,gp_system``) gives each practice's INT and GP
    system, which FHIR does not carry; ``<export_dir>/practices.csv`` is used when present.
    Raises :class:`~int_rules.population.tables.PopulationInputError` for an unreadable file.
    """
    say = progress or (lambda _m: None)
    export = Path(export_dir)
    out = Path(tables_dir)
    found, notes = discover_export(export)
    practices_path = Path(practices) if practices is not None else export / "practices.csv"
    if practices is not None and not practices_path.is_file():
        raise PopulationInputError(f"practices file '{practices_path}' does not exist")
    out.mkdir(parents=True, exist_ok=True)
    for old in sorted(out.glob("*/*.parquet")):
        old.unlink()
    result = BulkRead(out, notes=notes)
    config: dict[str, Any] = {"preserve_insertion_order": True}
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET enable_progress_bar = false")
    try:
        _organisations(con, found.get("Organization", []), result)
        _practices(con, practices_path if practices_path.is_file() else None)
        for rtype in RESOURCE_TYPES:
            if rtype == "Organization":
                continue
            for path in found.get(rtype, []):
                say(f"reading {path.name}")
                _read_file(con, rtype, path, out, result)
    finally:
        con.close()
    for table in ("clinical_events",):
        (out / table).mkdir(exist_ok=True)
        if not any((out / table).iterdir()):
            _empty_events(out / table / "none.parquet")
    return result


def _read_json(path: Path, rtype: str) -> str:
    cols = {"resourceType": "VARCHAR", "id": "VARCHAR", **_COLUMNS[rtype]}
    spec = "{" + ", ".join(f"{_q(k)}: {_q(t)}" for k, t in cols.items()) + "}"
    return (f"read_json({_q(str(path))}, format='newline_delimited', columns={spec}, "
            "maximum_object_size=67108864)")


def _run(con: duckdb.DuckDBPyConnection, path: Path, sql: str) -> None:
    try:
        con.execute(sql)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PopulationInputError(f"{path.name}: cannot read the file as FHIR NDJSON: "
                                   f"{first}") from None


def _read_file(con: duckdb.DuckDBPyConnection, rtype: str, path: Path, out: Path,
               result: BulkRead) -> None:
    """One pass over the file into ``__m``: per line, whether it is skipped or ignored (and
    why), which output takes it, and each output's columns, flat; then one query for the
    counts and one ``COPY`` per output. A line's number is its row's place in ``__m``
    (insertion order is kept)."""
    outputs = _outputs(rtype)
    skipped = _skipped(rtype)
    dest = " ".join(f"WHEN {o.where} THEN {i}" for i, o in enumerate(outputs))
    mapped = " OR ".join(f"({o.where})" for o in outputs) or "FALSE"
    cols = [f"({expr}) AS \"{i}_{name}\"" for i, o in enumerate(outputs)
            for name, expr in o.columns]
    other = _OTHER_CODINGS if rtype in ("Condition", "Observation") else "0"
    source = _read_json(path, rtype)
    if rtype in ("Condition", "Observation"):
        vital = f", {_VITAL} AS __vital" if rtype == "Observation" else ""
        source = f"(SELECT *, {_SNOMED_LIST} AS __sct{vital} FROM {source})"
    if rtype == "Patient":
        source = (f"(SELECT *, (SELECT map_from_entries(list({{'k': ref, 'v': ods}})) "
                  f"FROM __org) AS __orgs FROM {source})")
    _run(con, path, f"""
        CREATE OR REPLACE TEMP TABLE __m AS
        SELECT resourceType AS __type, id AS __id,
               (coalesce(resourceType, '') <> {_q(rtype)}) AS __wrong,
               {skipped} AS __skipped,
               CASE WHEN {skipped} THEN {_skipped_reason(rtype) if skipped != "FALSE"
                                         else "NULL"} END AS __skip_reason,
               CASE {dest or "WHEN FALSE THEN 0"} END AS __dest,
               CASE WHEN NOT ({mapped}) THEN {_ignored_reason(rtype)} END AS __ignored,
               {other} AS __other,
               {", ".join(cols) if cols else "NULL AS __none"}
        FROM {source}""")
    stats: dict[str, Any] = {"resource_type": rtype, "lines": 0, "rows": 0, "tables": {},
                             "skipped": {}, "ignored": {}, "other_codings_ignored": 0}
    result.files[path.name] = stats
    for wrong, skip, skip_reason, d, ignored, n, n_other in con.execute("""
            SELECT __wrong, __skipped, __skip_reason, __dest, __ignored, count(*),
                   sum(__other) FROM __m GROUP BY ALL ORDER BY ALL""").fetchall():
        n = int(n)
        stats["lines"] += n
        if wrong:
            key = f"resourceType is not {rtype} (ignored)"
            stats["ignored"][key] = stats["ignored"].get(key, 0) + n
        elif skip:
            stats["skipped"][str(skip_reason)] = stats["skipped"].get(str(skip_reason), 0) + n
        elif d is None:
            stats["ignored"][str(ignored)] = stats["ignored"].get(str(ignored), 0) + n
            stats["other_codings_ignored"] += int(n_other or 0)
        else:
            table = outputs[int(d)].table
            stats["tables"][table] = stats["tables"].get(table, 0) + n
            stats["rows"] += n
            stats["other_codings_ignored"] += int(n_other or 0)
    trace = (f"{_q(path.name)} || ' line ' || (__m.rowid + 1) || ', ' || "
             "coalesce(__type, '(no resourceType)') || '/' || coalesce(__id, '(no id)')")
    for i, o in enumerate(outputs):
        folder = out / o.table
        folder.mkdir(exist_ok=True)
        target = folder / f"{path.name}.parquet"  # in the export's file order
        names = [f"unnest(\"{i}_{name}\") AS {name}" if name == _SCORES and
                 rtype == "RiskAssessment" else f"\"{i}_{name}\" AS {name}"
                 for name, _ in o.columns]
        join, order = "", ""
        if rtype == "Patient":
            names += ["__pr.neighbourhood", "__pr.gp_system"]
            join = f"LEFT JOIN __practices __pr ON __pr.practice = __m.\"{i}_practice\""
            order = "ORDER BY __m.rowid"
        _run(con, path, f"""
            COPY (SELECT {", ".join(names)}, {trace} AS fhir_source FROM __m {join}
                  WHERE NOT __wrong AND NOT __skipped AND __dest = {i} {order})
            TO {_q(str(target))} (FORMAT parquet, COMPRESSION snappy)""")
    con.execute("DROP TABLE __m")


def _patient_practice() -> str:
    return (f"coalesce(list_filter(coalesce(generalPractitioner, []), "
            f"lambda g: g.identifier.system = {_q(v.ODS_ORGANISATION)} "
            "AND g.identifier.value IS NOT NULL)[1].identifier.value, "
            "list_filter(list_transform(coalesce(generalPractitioner, []), "
            "lambda g: __orgs[g.reference]), lambda o: o IS NOT NULL)[1])")


def _organisations(con: duckdb.DuckDBPyConnection, paths: Sequence[Path],
                   result: BulkRead) -> None:
    """``__org`` (ref ``Organization/<id>``, ods): for generalPractitioner references."""
    con.execute("CREATE OR REPLACE TEMP TABLE __org (ref VARCHAR, ods VARCHAR)")
    for path in paths:
        _run(con, path, f"""
            CREATE OR REPLACE TEMP TABLE __m AS
            SELECT resourceType, id, list_filter(coalesce(identifier, []),
                   lambda i: i.system = {_q(v.ODS_ORGANISATION)})[1].value AS ods
            FROM {_read_json(path, "Organization")}""")
        con.execute("INSERT INTO __org SELECT 'Organization/' || id, ods FROM __m "
                    "WHERE resourceType = 'Organization' AND id IS NOT NULL")
        n = int(con.execute("SELECT count(*) FROM __m").fetchall()[0][0])
        con.execute("DROP TABLE __m")
        result.files[path.name] = {"resource_type": "Organization", "lines": n, "rows": 0,
                                   "tables": {}, "skipped": {},
                                   "ignored": {"Organization (read for practice codes)": n},
                                   "other_codings_ignored": 0}


def _practices(con: duckdb.DuckDBPyConnection, path: Path | None) -> None:
    """``__practices`` (practice, neighbourhood, gp_system) from the practices CSV, if any."""
    if path is None:
        con.execute("CREATE OR REPLACE TEMP TABLE __practices (practice VARCHAR, "
                    "neighbourhood VARCHAR, gp_system VARCHAR)")
        return
    try:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE __practices AS
            SELECT practice, neighbourhood, gp_system
            FROM read_csv({file_path(path)}, all_varchar=true, header=true)""")
        dup = con.execute("SELECT practice FROM __practices GROUP BY practice "
                          "HAVING count(*) > 1 LIMIT 1").fetchall()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise PopulationInputError(f"{path}: cannot read the practices file (expected columns "
                                   f"practice, neighbourhood, gp_system): {first}") from None
    if dup:
        raise PopulationInputError(f"{path}: practice {dup[0][0]!r} is listed more than once")


def _empty_events(path: Path) -> None:
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"""COPY (SELECT CAST(NULL AS VARCHAR) AS patient_id,
            CAST(NULL AS VARCHAR) AS date, CAST(NULL AS VARCHAR) AS snomedct_code,
            CAST(NULL AS DOUBLE) AS numeric_value, CAST(NULL AS VARCHAR) AS unit,
            CAST(NULL AS BOOLEAN) AS is_problem, CAST(NULL AS VARCHAR) AS fhir_source
            WHERE FALSE) TO {_q(str(path))} (FORMAT parquet)""")
    finally:
        con.close()


def counts(read: BulkRead) -> Mapping[str, int]:
    """Lines per outcome over every file (rows, skipped, ignored), for a one-line summary."""
    files = read.files.values()
    return {"lines": sum(f["lines"] for f in files), "rows": sum(f["rows"] for f in files),
            "skipped": sum(sum(f["skipped"].values()) for f in files),
            "ignored": sum(sum(f["ignored"].values()) for f in files)}


def read_fhir_for_population(export_dir: Path, out_dir: Path, practices: Path | None,
                             progress: Callable[[str, float], None], threads: int | None,
                             quiet: bool, memory_limit: str | None = None) -> Path:
    """For ``int-rules population --fhir``: map the export into ``<out>/fhir_tables`` and
    write ``<out>/fhir_summary.json``; returns the tables directory to run on."""
    import json

    progress("reading the FHIR export", 0.0)
    read = read_bulk_export(export_dir, Path(out_dir) / "fhir_tables", practices,
                            lambda m: progress(m, 0.05), threads, memory_limit)
    summary = read.to_dict()
    (Path(out_dir) / "fhir_summary.json").write_text(json.dumps(summary, indent=2) + "\n",
                                                      encoding="utf-8")
    if not quiet:
        c = counts(read)
        print(f"FHIR export: {c['lines']:,} resources read: {c['rows']:,} mapped to tables, "
              f"{c['skipped']:,} skipped (entered in error, cancelled, ...), {c['ignored']:,} "
              f"not mapped (no SNOMED CT coding, not an admission, ...); see "
              f"{Path(out_dir) / 'fhir_summary.json'}")
    return read.tables_dir
