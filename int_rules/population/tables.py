"""The analyst's input tables: schemas, reading a directory of CSV/Parquet files, row validation.

A data directory holds one entry per table: ``<table>.csv``, ``<table>.csv.gz``,
``<table>.parquet`` or a folder ``<table>/`` of such files (read in name order). ``patients`` and
``clinical_events`` are required; ``admissions``, ``risk_scores`` and ``monitoring`` are optional
(a missing optional table means "no such items for anyone"). The shapes follow OpenSAFELY
ehrQL's ``patients``, ``clinical_events`` and ``apcs`` tables.

Every row is validated in DuckDB (vectorised). A bad row goes to the rejects with its file, its
row (for CSV: the line number in the file, the header being line 1; for Parquet: the row number,
1-based) and the reason. A rejected *patients* row rejects that patient (every row of theirs is
then left out, and counted). A rejected row of another table leaves the patient in the run, with
``rejected_rows`` on their result saying their record is incomplete. Nothing is dropped without
a trace: each input row is accepted, rejected, or counted as belonging to a rejected patient.

No clinical logic here: which codes mean what is the rulebook's business.
"""

from __future__ import annotations

import difflib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import duckdb
import pyarrow as pa

from ..engines.duckdb import file_path, interrupted
from ..errors import IntRulesError
from ..snomed import concept_id_problem
from ..vocabulary import (
    FALSE_TEXT,
    GP_SYSTEMS,
    MAX_ID_LENGTH,
    MAX_NUMBER_TEXT,
    MONITORING_KINDS,
    SEXES,
    TRUE_TEXT,
)
from .csvlines import CsvHeaderError, PlainFile, plain_file, read_blocks, read_header

__all__ = [
    "TABLES",
    "Column",
    "LoadResult",
    "PopulationInputError",
    "TableFile",
    "TableSpec",
    "TableStats",
    "discover",
    "load_tables",
    "table_spec",
]

ColumnKind = Literal[
    "id", "date", "birth_date", "code", "number", "bool", "text", "sex", "gp_system", "kind"
]


class PopulationInputError(IntRulesError):
    """A data directory or input file that cannot be used (the run stops; exit code 2)."""


@dataclass(frozen=True)
class Column:
    """One column of an input table."""

    name: str
    kind: ColumnKind
    required: bool
    description: str
    example: str
    target: str  # the column name in the engine's table


@dataclass(frozen=True)
class TableSpec:
    """One input table: its name, whether it must be present, and its columns."""

    name: str
    required: bool
    description: str
    columns: tuple[Column, ...]
    internal: str  # the engine's table name

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _c(name: str, kind: ColumnKind, required: bool, description: str, example: str,
       target: str | None = None) -> Column:
    return Column(name, kind, required, description, example, target or name)


TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "patients", True,
        "One row per person in the extract. Every other table's patient_id must be here.",
        (
            _c("patient_id", "id", True, "pseudonymised patient identifier", "P0000001"),
            _c("date_of_birth", "birth_date", True,
               "YYYY-MM-DD, or YYYY-MM (then taken as the 1st of the month)", "1941-06",
               "dob"),
            _c("sex", "sex", False, "female, male, other or unknown (empty: unknown)", "female"),
            _c("practice", "text", False, "registered practice (code or name)", "E82001"),
            _c("neighbourhood", "text", False, "the INT (neighbourhood) the practice belongs to",
               "HATFIELD"),
            _c("gp_system", "gp_system", False, "EMIS, SystmOne (or S1) or other", "EMIS"),
            _c("date_of_death", "date", False, "YYYY-MM-DD, empty if alive", "", "dod"),
        ),
        "pt",
    ),
    TableSpec(
        "clinical_events", True,
        "Coded events from the GP record: one SNOMED CT concept on a date.",
        (
            _c("patient_id", "id", True, "as in patients", "P0000001"),
            _c("date", "date", True, "YYYY-MM-DD", "2025-03-14", "d"),
            _c("snomedct_code", "code", True, "SNOMED CT concept id", "925861000000102", "code"),
            _c("numeric_value", "number", False, "a numeric result (e.g. a frailty score)",
               "0.31", "value"),
            _c("unit", "text", False, "unit of numeric_value (carried, not used by rules)", ""),
            _c("is_problem", "bool", False,
               "true if recorded (or upgraded) as a problem; true/false, 1/0, yes/no; "
               "empty: false", "true"),
        ),
        "ev",
    ),
    TableSpec(
        "admissions", False,
        "Hospital admissions (like ehrQL's apcs table).",
        (
            _c("patient_id", "id", True, "as in patients", "P0000001"),
            _c("admission_date", "date", True, "YYYY-MM-DD", "2025-06-01", "admitted"),
            _c("discharge_date", "date", False, "YYYY-MM-DD, empty while still in hospital",
               "2025-06-09", "discharged"),
            _c("emergency", "bool", True, "true for an emergency (unplanned) admission",
               "true"),
        ),
        "adm",
    ),
    TableSpec(
        "risk_scores", False,
        "Externally computed risk scores, e.g. DELPPHI's predicted risk of emergency admission.",
        (
            _c("patient_id", "id", True, "as in patients", "P0000001"),
            _c("date", "date", True, "YYYY-MM-DD the score was computed", "2026-01-05", "d"),
            _c("score", "number", True, "the score as supplied (not rescaled)", "0.42",
               "value"),
            _c("source", "text", True, "the model that produced it", "DELPPHI"),
        ),
        "rs",
    ),
    TableSpec(
        "monitoring", False,
        "Remote-monitoring readings and alerts.",
        (
            _c("patient_id", "id", True, "as in patients", "P0000001"),
            _c("date", "date", True, "YYYY-MM-DD", "2026-02-11", "d"),
            _c("kind", "kind", True, "reading or alert", "alert"),
            _c("measure", "text", False, "what was measured, e.g. spo2", "spo2"),
            _c("value", "number", False, "the reading", "91"),
        ),
        "mon",
    ),
)


def table_spec(name: str) -> TableSpec:
    for t in TABLES:
        if t.name == name:
            return t
    raise KeyError(name)


# -- discovering files ------------------------------------------------------------------------

_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_NOT_DATA = frozenset({".json", ".md", ".txt", ".yaml", ".yml"})


@dataclass(frozen=True)
class TableFile:
    """One input file of one table (or an in-memory table, see :mod:`.memory`)."""

    table: str
    path: Path
    shown: str  # as reported to the user (relative to the data directory)
    format: Literal["csv", "parquet", "memory"]
    relation: str | None = None  # "memory": the DuckDB view it is registered as


def _format_of(path: Path) -> Literal["csv", "parquet"] | None:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    return None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


#: Notes that start with this are warnings too (shown on stderr and in the report).
WARNING_PREFIX = "warning: "


def _maybe_misspelt(stem: str, shown: str, known: set[str], notes: list[str]) -> None:
    close = difflib.get_close_matches(stem.lower(), sorted(known), n=1, cutoff=0.75)
    if close and close[0] != stem:
        notes.append(f"{WARNING_PREFIX}'{shown}' looks like a misspelt {close[0]} table and was "
                     f"not read: if it is meant to be {close[0]}, rename it")


def discover(data_dir: Path) -> tuple[dict[str, list[TableFile]], list[str]]:
    """The files of each table in ``data_dir``, and notes about entries that were not read."""
    if not data_dir.exists():
        raise PopulationInputError(f"data directory '{data_dir}' does not exist")
    if not data_dir.is_dir():
        raise PopulationInputError(f"'{data_dir}' is not a directory (give the folder that holds "
                                   "patients.csv, clinical_events.csv, ...)")
    try:
        entries = sorted(data_dir.iterdir())
    except OSError as exc:
        raise PopulationInputError(f"cannot list data directory '{data_dir}': "
                                   f"{exc.strerror}") from None
    known = {t.name for t in TABLES}
    found: dict[str, list[TableFile]] = {}
    notes: list[str] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if entry.name not in known:
                notes.append(f"folder '{entry.name}/' ignored: not a table name "
                             f"({', '.join(sorted(known))})")
                _maybe_misspelt(entry.name, entry.name + "/", known, notes)
                continue
            if entry.name in found:
                raise PopulationInputError(f"{entry.name}: both a folder and a file in "
                                           f"'{data_dir}'; keep one")
            files = []
            for part in sorted(entry.iterdir()):
                fmt = _format_of(part)
                if part.is_file() and fmt is not None:
                    files.append(TableFile(entry.name, part, f"{entry.name}/{part.name}", fmt))
                elif not part.name.startswith("."):
                    notes.append(f"'{entry.name}/{part.name}' ignored: not a .csv, .csv.gz or "
                                 ".parquet file")
            if not files:
                raise PopulationInputError(f"folder '{entry}' holds no .csv, .csv.gz or .parquet "
                                           "files")
            found[entry.name] = files
            continue
        fmt = _format_of(entry)
        stem = _stem(entry)
        if fmt is None and entry.suffix.lower() in _NOT_DATA:
            continue  # a README or a synth.json beside the tables
        if fmt is None or stem not in known:
            notes.append(f"'{entry.name}' ignored: tables are "
                         f"{', '.join(t.name + '.csv' for t in TABLES)} (or .parquet)")
            _maybe_misspelt(stem if fmt else entry.stem, entry.name, known, notes)
            continue
        if stem in found:
            raise PopulationInputError(f"{stem}: more than one file or folder for this table in "
                                       f"'{data_dir}' ({found[stem][0].shown}, {entry.name}); "
                                       "keep one")
        found[stem] = [TableFile(stem, entry, entry.name, fmt)]
    for spec in TABLES:
        if spec.required and spec.name not in found:
            raise PopulationInputError(
                f"no {spec.name} table in '{data_dir}' (expected {spec.name}.csv, "
                f"{spec.name}.parquet or a {spec.name}/ folder); see docs/population.md"
            )
    return found, notes


# -- loading ----------------------------------------------------------------------------------


@dataclass
class TableStats:
    """Row counts of one table."""

    table: str
    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    rows_of_rejected_patients: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    lines: int = 0  # CSV: lines in the files (header, blank lines and rows)
    blank_lines: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "rows_rejected": self.rows_rejected,
            "rows_of_rejected_patients": self.rows_of_rejected_patients,
            "ignored_columns": self.ignored_columns,
            "csv_lines": self.lines,
            "csv_blank_lines": self.blank_lines,
        }


@dataclass
class LoadResult:
    """What :func:`load_tables` left in the connection, with the counts."""

    stats: dict[str, TableStats]
    notes: list[str]
    present: frozenset[str]  # tables that had files
    files: list[TableFile]  # every file read, indexed by file_idx
    patients_read: int
    patients_accepted: int
    patients_rejected: int
    #: Things the analyst should see (on stderr and at the top of the report), e.g. a file
    #: whose name looks like a misspelt optional table, so that table counted as empty.
    warnings: list[str] = field(default_factory=list)


Progress = Callable[[str], None]

_ROW_BITS = 40  # seq = file_idx << 40 | row: input order across files, and where a row came from


def _q(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


#: The lines of the CSV block being read (see csvlines) that are not clean: ``__blk_plain``'s
#: are split on commas here, ``__blk_parsed``'s (lines with quotes, or not UTF-8) were split in
#: Python. A plain line's text ends with its line break, which the last cell keeps until it is
#: trimmed (trimming only that short cell is much cheaper than trimming every line).
_CSV_LINES = """(SELECT line, string_split(text, ',') AS __parts,
        NULL::VARCHAR AS __problem FROM __blk_plain WHERE NOT skip AND NOT clean
      UNION ALL SELECT line, parts, problem FROM __blk_parsed)"""
#: The block's clean lines (only ASCII from "!" to "~": no cell holds a space or any other
#: character to trim), split on commas; ``brk`` is the length of the line break the last cell
#: ends with.
_CSV_CLEAN_LINES = """(SELECT line, string_split(text, ',') AS __parts, brk,
        NULL::VARCHAR AS __problem FROM __blk_plain WHERE clean)"""


def _line_why(n: int) -> str:
    """Why a CSV line of ``__parts`` (and ``__problem``) is not the header's ``n`` cells."""
    return (f"CASE WHEN __problem IS NOT NULL THEN 'CSV line not readable: ' || __problem "
            f"WHEN len(__parts) <> {n} THEN 'CSV line not readable: it has ' || len(__parts) "
            f"|| ' cells, the header has {n}' END")


def _scan_sql(tf: TableFile, columns: Sequence[str]) -> str:
    """Rows of one file with ``__row`` (line number, or Parquet row number) and ``__line_why``
    (why a CSV line could not be split into the header's cells; NULL when it could)."""
    if tf.format == "memory":  # numbered like Parquet rows (file_row_number, from 0)
        assert tf.relation is not None
        return (f"(SELECT file_row_number + 1 AS __row, NULL::VARCHAR AS __line_why, * "
                f"FROM {tf.relation})")
    if tf.format == "parquet":
        return (f"(SELECT file_row_number + 1 AS __row, NULL::VARCHAR AS __line_why, * "
                f"FROM read_parquet({file_path(tf.path)}, file_row_number=true))")
    n = len(columns)
    cells = ", ".join(
        (f"__parts[{i + 1}]" if i + 1 < n else f"rtrim(__parts[{n}], chr(13) || chr(10))")
        + f" AS {_ident(name)}" for i, name in enumerate(columns))
    return f"(SELECT line AS __row, {_line_why(n)} AS __line_why, {cells} FROM {_CSV_LINES})"


def _native_scan_sql(tf: TableFile, columns: Sequence[str], plain: PlainFile) -> str:
    """Rows of one plain CSV file (see :func:`.csvlines.plain_file`) read by DuckDB's own
    reader, in the file's order, with ``__row`` NULL (the rows are numbered by that order once
    stored, see :func:`_source`) and ``__line_why`` NULL (a line with the wrong number of cells
    is that reader's error). Every cell is text as it stands in the file, an empty one ``''``.
    """
    names = ", ".join(_ident(c) for c in columns)
    types = ", ".join(f"{_q(c)}: 'VARCHAR'" for c in columns)
    newline = "\\r\\n" if plain.newline == "\r\n" else "\\n"
    return (f"(SELECT NULL::BIGINT AS __row, NULL::VARCHAR AS __line_why, * FROM read_csv("
            f"{file_path(tf.path)}, header = true, auto_detect = false, delim = ',', "
            f"quote = '\"', escape = '\"', new_line = '{newline}', strict_mode = true, "
            f"null_padding = false, encoding = 'utf-8', columns = {{{types}}}, "
            f"force_not_null = [{', '.join(_q(c) for c in columns)}]) AS __csv({names}))")


def _spaced_cell(raw: str, plain: PlainFile | None) -> str:
    """A date, number, flag or category cell ``raw`` trimmed of spaces, NULL when empty. Read
    whole from a plain file, only a cell that starts or ends with a space is trimmed (the test
    is cheaper than the trim, which most cells do not need); from a clean file, none."""
    if plain is None:
        return f"NULLIF(trim({raw}), '')"
    if plain.clean:
        return f"NULLIF({raw}, '')"
    return (f"NULLIF(CASE WHEN prefix({raw}, ' ') OR suffix({raw}, ' ') THEN trim({raw}) "
            f"ELSE {raw} END, '')")


def _text_cell(col: str, plain: PlainFile | None) -> str:
    """A free-text cell ``col`` trimmed as records trim it, NULL when empty (see
    :func:`_trim_rest`, which also trims the spaces of a cell read whole from a plain file); a
    clean file's cells hold nothing to trim."""
    return f"NULLIF({col}, '')" if plain is not None and plain.clean else _trim_rest(col)


def _clean_cell(i: int, n: int) -> str:
    """Cell ``i`` (from 0) of a clean CSV line of ``n`` cells: the last one without its line
    break (a plain slice: a clean line holds no other character to trim)."""
    return f"__parts[{i + 1}]" if i + 1 < n else f"left(__parts[{n}], -brk)"


def _describe(con: duckdb.DuckDBPyConnection, tf: TableFile) -> list[tuple[str, str]]:
    if tf.format == "memory":
        rows = con.execute(f"DESCRIBE SELECT * EXCLUDE (file_row_number) FROM {tf.relation}")
        return [(str(r[0]), str(r[1])) for r in rows.fetchall()]
    try:
        if tf.path.stat().st_size == 0:
            raise PopulationInputError(f"{tf.shown}: the file is empty (expected a header row "
                                       "naming the columns)")
        with tf.path.open("rb") as fh:
            fh.read(1)
        if tf.format == "csv":
            return [(name, "VARCHAR") for name in _csv_header(tf)]
        rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet({file_path(tf.path)})")
        return [(str(r[0]), str(r[1])) for r in rows.fetchall()
                if str(r[0]) != "file_row_number"]
    except OSError as exc:
        raise PopulationInputError(f"{tf.shown}: cannot read the file: "
                                   f"{exc.strerror or exc}") from None
    except duckdb.Error as exc:
        raise _read_failed(exc, f"{tf.shown}: cannot read the file as "
                                f"{tf.format.upper()}: {_first_line(exc)}") from None


def _csv_header(tf: TableFile) -> list[str]:
    try:
        header = read_header(tf.path)
    except CsvHeaderError as exc:
        raise PopulationInputError(f"{tf.shown}: cannot read the file: {exc}") from None
    if not header or not any(h.strip() for h in header):
        raise PopulationInputError(f"{tf.shown}: the first line is empty (expected a header row "
                                   "naming the columns)")
    return header


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _in_list(values: Sequence[str]) -> str:
    return "(" + ", ".join(_q(v) for v in values) + ")"


def _one_of(expr: str, values: Sequence[str]) -> str:
    """Whether ``expr`` is one of ``values`` (NULL when ``expr`` is), as comparisons joined by
    ``OR``: DuckDB plans an ``IN`` of five values or more (or ``list_contains`` of a constant
    list) as a join, which does not keep the rows in the order they are read (see
    :func:`_keeps_order`)."""
    return "(" + " OR ".join(f"{expr} = {_q(v)}" for v in values) + ")"


# The one input vocabulary (int_rules.vocabulary), as records read it.
_NUMERIC_TYPES = ("DOUBLE", "FLOAT", "REAL", "DECIMAL", "INTEGER", "BIGINT", "SMALLINT",
                  "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT")
_DATE_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S")
_INTEGER_TYPES = ("INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT",
                  "UINTEGER", "USMALLINT", "UTINYINT")


def _is(src_type: str, names: Sequence[str]) -> bool:
    base = src_type.upper().split("(")[0].strip()
    return base in names


#: Unicode White_Space, the characters records strip from text (pydantic strips these, not
#: Python's wider ``str.isspace`` set, which also has U+001C-U+001F): cells are trimmed of them,
#: and a cell left empty is "not recorded".
_WHITESPACE = "'" + "".join(chr(c) for c in (
    *range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
    0x202F, 0x205F, 0x3000)) + "'"


def _trim_rest(col: str) -> str:
    """``col`` (already trimmed of spaces) trimmed of the other White_Space characters too,
    and NULL when empty. The full trim is slow, so only cells that start or end with one of
    those characters (rare) get it."""
    return (f"NULLIF(CASE WHEN {col} <> '' AND (contains({_WHITESPACE}, {col}[1]) OR "
            f"contains({_WHITESPACE}, {col}[-1])) THEN trim({col}, {_WHITESPACE}) ELSE {col} "
            "END, '')")


def _fast_typed(col: Column, src_type: str) -> bool:
    """Whether a typed (Parquet) column can be used as it is, without going through text."""
    kind = col.kind
    return ((kind in ("date", "birth_date") and _is(src_type, _DATE_TYPES))
            or (kind == "number" and _is(src_type, _NUMERIC_TYPES))
            or (kind == "bool" and _is(src_type, ("BOOLEAN",)))
            or kind == "code")  # read as text; checked once per distinct code


def _typed(col: Column, src_type: str, fast: bool
           ) -> tuple[str, Callable[[str], str], str | None]:
    """(parse SQL, check, extra column SQL) for one column.

    The parse reads ``__s_<target>`` (the column as stored) when ``fast``, else ``__t_<target>``
    (its trimmed text, empty -> NULL), and is NULL when the cell does not parse; ``check`` turns
    the parsed column into the value (NULL when out of range). Two steps, so nothing is
    parsed twice.
    """
    s = f"__s_{col.target}"
    t = f"__t_{col.target}"
    kind = col.kind

    def same(p: str) -> str:
        return p

    if kind in ("date", "birth_date"):
        if fast and _is(src_type, ("DATE",)):
            parse = s
        elif fast:
            parse = f"CASE WHEN {s} = date_trunc('day', {s}) THEN CAST({s} AS DATE) END"
        else:
            # YYYY-MM-DD exactly (DuckDB's cast alone takes 2025-1-2 and spaces): ten bytes
            # that are ten characters, so ASCII, where a byte test is a character test.
            digit = f"ascii({t}) BETWEEN 48 AND 57"
            parse = (f"CASE WHEN strlen({t}) = 10 AND {t} LIKE '____-__-__' AND {digit} "
                     f"THEN TRY_CAST({t} AS DATE) "
                     + (f"WHEN strlen({t}) = 7 AND {t} LIKE '____-__' AND {digit} "
                        f"THEN TRY_CAST({t} || '-01' AS DATE) " if kind == "birth_date" else "")
                     + "END")
        extra = None
        if kind == "birth_date":
            extra = "'day'" if fast else f"CASE WHEN length({t}) = 7 THEN 'month' ELSE 'day' END"
        return parse, lambda p: f"CASE WHEN year({p}) BETWEEN 1 AND 9999 THEN {p} END", extra
    if kind == "number":
        parse = (f"CAST({s} AS DOUBLE)" if fast else
                 f"CASE WHEN strlen({t}) <= {MAX_NUMBER_TEXT} OR length({t}) <= "
                 f"{MAX_NUMBER_TEXT} THEN TRY_CAST({t} AS DOUBLE) END")
        # Records refuse NaN and infinities (engines would disagree on them); so do we.
        return parse, lambda p: f"CASE WHEN isfinite({p}) THEN {p} END", None
    if kind == "bool":
        if fast:
            parse = s
        else:
            # The spellings as listed first: most cells are, and then need no lower-casing.
            low = f"lower({t})"
            parse = (f"CASE WHEN {_one_of(t, TRUE_TEXT)} THEN TRUE "
                     f"WHEN {_one_of(t, FALSE_TEXT)} THEN FALSE "
                     f"WHEN {_one_of(low, TRUE_TEXT)} THEN TRUE "
                     f"WHEN {_one_of(low, FALSE_TEXT)} THEN FALSE END")
        if not col.required:
            raw = s if fast else t
            return parse, lambda p: f"CASE WHEN {raw} IS NULL THEN FALSE ELSE {p} END", None
        return parse, same, None
    if kind == "code":
        return s, same, None  # as written; each distinct code is checked (and trimmed) in Python
    if kind == "sex":
        return (f"CASE WHEN {t} IS NULL THEN 'unknown' WHEN {_one_of(f'lower({t})', SEXES)} "
                f"THEN lower({t}) END"), same, None
    if kind == "gp_system":
        whens = " ".join(f"WHEN {_q(k)} THEN {_q(v)}" for k, v in GP_SYSTEMS.items())
        return f"CASE lower({t}) {whens} END", same, None
    if kind == "kind":
        return (f"CASE WHEN {_one_of(f'lower({t})', MONITORING_KINDS)} THEN lower({t}) END",
                same, None)
    return t, same, None  # id, text


def _default(col: Column) -> str:
    if col.kind == "sex":
        return "'unknown'"
    if col.kind == "bool":
        return "FALSE"
    return {"date": "NULL::DATE", "birth_date": "NULL::DATE", "number": "NULL::DOUBLE",
            "code": "NULL::BIGINT"}.get(col.kind, "NULL::VARCHAR")


_EXPECT = {
    "date": "a date (expected YYYY-MM-DD)",
    "birth_date": "a date (expected YYYY-MM-DD or YYYY-MM)",
    "number": "a finite number",
    "bool": "true or false (also 1/0, yes/no)",
    "sex": "one of female, male, other, unknown",
    "gp_system": "one of EMIS, SystmOne (S1), other",
    "kind": "one of reading, alert",
}


def _reason(col: Column, fast: bool) -> tuple[str, str]:
    """SQL giving (whether, why) this column makes the row unusable (why: NULL when fine)."""
    raw = f"__s_{col.target}" if fast else f"__t_{col.target}"
    shown = f"CAST({raw} AS VARCHAR)" if fast else raw
    v = f"__v_{col.target}"
    parts = []
    bad = []
    if col.required:
        parts.append(f"WHEN {raw} IS NULL THEN {_q(col.name + ' is empty')}")
        bad.append(f"{raw} IS NULL")
    if col.kind == "id":
        parts.append(f"WHEN length({raw}) > {MAX_ID_LENGTH} THEN {_q(col.name + ' is ')} || "
                     f"length({raw}) || ' characters long (at most {MAX_ID_LENGTH})'")
        # Bytes first: a string no longer in bytes is no longer in characters.
        bad.append(f"COALESCE(strlen({raw}) > {MAX_ID_LENGTH} AND length({raw}) > "
                   f"{MAX_ID_LENGTH}, FALSE)")
    if col.kind in _EXPECT:
        parts.append(f"WHEN {raw} IS NOT NULL AND {v} IS NULL THEN {_q(col.name + ' ')} || "
                     f"'''' || left({shown}, 60) || ''' is not ' || {_q(_EXPECT[col.kind])}")
        bad.append(f"({raw} IS NOT NULL AND {v} IS NULL)")
    if not parts:
        return "FALSE", "NULL"
    return " OR ".join(bad), "CASE " + " ".join(parts) + " END"


def _extra_checks(spec: TableSpec) -> list[tuple[str, str]]:
    """Row-level checks across columns: (whether, why)."""
    if spec.name == "patients":
        return [("COALESCE(__v_dod < __v_dob, FALSE)",
                 "CASE WHEN __v_dod < __v_dob THEN 'date_of_death ' || __v_dod::VARCHAR || "
                 "' is before date_of_birth ' || __v_dob::VARCHAR END")]
    if spec.name == "admissions":
        return [("COALESCE(__v_discharged < __v_admitted, FALSE)",
                 "CASE WHEN __v_discharged < __v_admitted THEN 'discharge_date ' || "
                 "__v_discharged::VARCHAR || ' is before admission_date ' || "
                 "__v_admitted::VARCHAR END")]
    return []


def _select_typed(spec: TableSpec, tf: TableFile, file_idx: int,
                  columns: list[tuple[str, str]], plain: PlainFile | None = None
                  ) -> tuple[str, list[str]]:
    """SQL selecting (seq, typed columns..., bad, reason) from one file, and the ignored
    columns. ``seq`` is ``file_idx`` and the row's line (CSV) or row number (Parquet).

    A CSV file is read by its lines (:mod:`.csvlines`, block by block: the SQL reads the
    block's tables), or, when ``plain`` (see :func:`.csvlines.plain_file`), by DuckDB's own
    reader in one statement; the cells are then checked by the same SQL."""
    by_name: dict[str, tuple[str, str]] = {}
    for name, typ in columns:
        key = name.strip().lower()
        if key in by_name:
            raise PopulationInputError(
                f"{tf.shown}: line 1: column '{name.strip()}' appears more than once in the "
                "header; keep one (we cannot tell which is meant)")
        by_name[key] = (name, typ)
    missing = [c.name for c in spec.columns if c.required and c.name not in by_name]
    if missing:
        have = ", ".join(name for name, _ in columns) or "none"
        raise PopulationInputError(
            f"{tf.shown}: missing required column(s) {', '.join(missing)} (columns found: "
            f"{have}); the {spec.name} table needs "
            f"{', '.join(c.name for c in spec.columns if c.required)}"
        )
    wanted = {c.name for c in spec.columns}
    ignored = [name for name, _ in columns if name.strip().lower() not in wanted]
    used = [c for c in spec.columns if c.name != "unit"]  # unit: carried, never read by a rule
    inner: list[str] = []
    trimmed: list[str] = []
    clean: list[str] = []  # ``trimmed`` for a clean CSV line: the cells need no trimming
    index = {name: i for i, (name, _) in enumerate(columns)}
    parsed: list[str] = []
    mid: list[str] = []
    reasons: list[tuple[str, str]] = []
    out = [f"(CAST({file_idx} AS BIGINT) << {_ROW_BITS}) | CAST(__row AS BIGINT) AS seq"]
    for col in used:
        src, typ = by_name.get(col.name, (None, "VARCHAR"))
        if src is None:
            mid.append(f"{_default(col)} AS __v_{col.target}")
            if col.kind == "birth_date":
                mid.append(f"'day' AS __x_{col.target}")
        else:
            fast = _fast_typed(col, typ)
            keep = f"__s_{col.target}" if fast else f"__t_{col.target}"
            cell = _clean_cell(index[src], len(columns))
            clean.append(f"{cell} AS {keep}" if col.kind == "code"
                         else f"NULLIF({cell}, '') AS {keep}")
            if col.kind == "code":
                inner.append(f"CAST({_ident(src)} AS VARCHAR) AS __s_{col.target}")
                trimmed.append(keep)
            elif fast:
                inner.append(f"{_ident(src)} AS __s_{col.target}")
                trimmed.append(keep)
            elif col.kind in ("id", "text"):
                # Free text: trimmed exactly as records trim it (of spaces here, unless the
                # cells are read whole: _trim_rest trims them of spaces too).
                raw = f"CAST({_ident(src)} AS VARCHAR)"
                inner.append(f"{raw if plain else f'trim({raw})'} AS __r_{col.target}")
                trimmed.append(f"{_text_cell(f'__r_{col.target}', plain)} AS {keep}")
            else:
                # Dates, numbers, flags, categories: spaces trimmed; anything else fails to parse.
                raw = f"CAST({_ident(src)} AS VARCHAR)"
                inner.append(f"{_spaced_cell(raw, plain)} AS {keep}")
                trimmed.append(keep)
            parse, check, extra = _typed(col, typ, fast)
            parsed += [keep, f"{parse} AS __p_{col.target}"]
            mid += [keep, f"{check(f'__p_{col.target}')} AS __v_{col.target}"]
            if extra is not None:
                parsed.append(f"{extra} AS __x_{col.target}")
                mid.append(f"__x_{col.target}")
            reasons.append(_reason(col, fast))
        out.append(f"__v_{col.target} AS {col.target}")
        if col.kind == "birth_date":
            out.append(f"__x_{col.target} AS birth_precision")
    reasons += _extra_checks(spec)
    bad = " OR ".join(["__line_why IS NOT NULL", *(f"({b})" for b, _ in reasons)])
    out.append(f"({bad}) AS bad")
    # Why, for the bad rows only (most rows are fine: no strings built for them). A line that
    # could not be split into the header's cells has only that reason (its cells mean nothing).
    out.append(f"CASE WHEN __line_why IS NOT NULL THEN __line_why WHEN {bad} THEN "
               f"NULLIF(concat_ws('; ', {', '.join(w for _, w in reasons) or 'NULL'}), '') END "
               "AS reason")
    # Parquet: the row number (1-based). CSV: the line number, the header being line 1.
    names = [name for name, _ in columns]
    scan = _native_scan_sql(tf, names, plain) if plain else _scan_sql(tf, names)
    base = f"SELECT __row, __line_why, {', '.join(inner)} FROM {scan}"
    trim = f"SELECT __row, __line_why, {', '.join(trimmed)} FROM ({base})"
    if tf.format == "csv" and not plain:
        # Clean lines (most) skip the trimming: the same columns, read straight off the cells.
        trim += (f" UNION ALL SELECT line, {_line_why(len(columns))}, {', '.join(clean)} "
                 f"FROM {_CSV_CLEAN_LINES}")
    parse = f"SELECT __row, __line_why, {', '.join(parsed)} FROM ({trim})"
    middle = f"SELECT __row, __line_why, {', '.join(mid)} FROM ({parse})"
    return f"SELECT {', '.join(out)} FROM ({middle})", ignored


def _target_columns(spec: TableSpec) -> list[str]:
    cols = []
    for c in spec.columns:
        if c.name == "unit":
            continue
        cols.append(c.target)
        if c.kind == "birth_date":
            cols.append("birth_precision")
    return cols


@dataclass(frozen=True)
class RowAggregates:
    """Per-patient aggregates the engine wants computed while the rows of a table are counted
    (in the same pass over the rows).

    ``plain`` read only the row (and ``__ok``: the row is accepted); ``person`` also read the
    patient's ``dob``/``dod`` (NULL for a patient who is not accepted, whose rows are left out).
    """

    plain: Sequence[tuple[str, str]] = ()
    person: Sequence[tuple[str, str]] = ()


def load_tables(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    progress: Progress | None = None,
    keep_codes: str | None = None,
    aggregates: Mapping[str, RowAggregates] | None = None,
    found: Mapping[str, list[TableFile]] | None = None,
    stage_dir: Path | None = None,
) -> LoadResult:
    """Read and validate every table of ``data_dir`` (or the tables ``found`` gives, e.g.
    in-memory ones registered by :func:`.memory.register_tables`) into ``con``.

    Patients are read into ``pt`` (accepted patients: pid, patient_id, dob, birth_precision,
    sex, practice, neighbourhood, gp_system, dod, rejected_rows; ``pid`` follows the input
    order). Every other table ``t`` (by internal name: ``ev``, ``adm``, ``rs``, ``mon``) is
    scanned, not copied whole:

    * ``<t>``: the accepted rows with ``pid`` and ``seq`` (input order); for events only those
      whose code is in the table named by ``keep_codes`` (column ``code``);
    * ``__rowaggs_<t>``: per ``pid``, the row counts and the engine's ``aggregates[t]``;
    * ``__rows_<t>`` (a view): every accepted row, for building records.

    Rejected rows and patients go to ``rejects`` (tbl, file_idx, line, patient_id, reason).
    CSV files are parsed once, their checked rows staged: as Parquet files in ``stage_dir``
    when given (which must outlive the connection's use of the tables; the caller removes
    it), else in a table in memory (at 1.6 million people, 1.6 GiB at the peak against 4.5);
    Parquet files are scanned where they lie.
    """
    say = progress or (lambda _msg: None)
    aggregates = aggregates or {}
    found, notes = discover(data_dir) if found is None else (found, [])
    files: list[TableFile] = []
    stats: dict[str, TableStats] = {}
    con.execute("CREATE OR REPLACE TEMP TABLE rejects (tbl VARCHAR, file_idx INTEGER, "
                "line BIGINT, patient_id VARCHAR, reason VARCHAR)")
    in_order = bool(con.execute(
        "SELECT current_setting('preserve_insertion_order')").fetchall()[0][0])
    # A plain CSV file, staged: read by DuckDB's own reader, when the connection keeps rows in
    # order (its rows are numbered by that order). Every CSV file is looked at ahead.
    ahead = ([tf.path for spec in TABLES for tf in found.get(spec.name, [])
              if tf.format == "csv"] if stage_dir is not None and in_order else [])
    with _plain_ahead(ahead) as plain_of:
        _load(con, found, plain_of, files, stats, notes, keep_codes, aggregates, say, stage_dir)
    present = frozenset(found)
    patients_read, patients_accepted, patients_rejected = _patient_counts(con)
    warnings = [n.removeprefix(WARNING_PREFIX) for n in notes if n.startswith(WARNING_PREFIX)]
    for spec in TABLES:
        if not spec.required and spec.name not in present and any(
                w.endswith(f"misspelt {spec.name} table and was not read: if it is meant to be "
                           f"{spec.name}, rename it") for w in warnings):
            warnings.append(f"no {spec.name} table was read: everyone counts as having no "
                            f"{spec.name.replace('_', ' ')}")
    return LoadResult(stats, [n.removeprefix(WARNING_PREFIX) for n in notes], present, files,
                      patients_read, patients_accepted, patients_rejected, warnings)


def _load(con: duckdb.DuckDBPyConnection, found: Mapping[str, list[TableFile]],
          plain_of: Callable[[Path], PlainFile | None], files: list[TableFile],
          stats: dict[str, TableStats], notes: list[str], keep_codes: str | None,
          aggregates: Mapping[str, RowAggregates], say: Progress, stage_dir: Path | None
          ) -> None:
    """Every table read and checked in turn (see :func:`load_tables`), into ``files``,
    ``stats`` and ``notes``; ``plain_of`` gives a CSV file's :class:`.csvlines.PlainFile`
    when it is read by DuckDB's own reader."""
    for spec in TABLES:
        st = TableStats(spec.name)
        stats[spec.name] = st
        tfs = found.get(spec.name, [])
        selects: list[str] = []
        natives: list[_Native | None] = []
        for tf in tfs:
            file_idx = len(files)
            files.append(tf)
            st.files.append(tf.shown)
            columns = _describe(con, tf)
            select, ignored = _select_typed(spec, tf, file_idx, columns)
            plain = plain_of(tf.path)  # read natively below, unless a header alone
            natives.append(_Native(_select_typed(spec, tf, file_idx, columns, plain)[0], plain,
                                   file_idx, len(columns))
                           if plain and plain.lines > 1 else None)
            for name in ignored:
                if name not in st.ignored_columns:
                    st.ignored_columns.append(name)
                    notes.append(f"{tf.shown}: column '{name}' ignored (not a column of the "
                                 f"{spec.name} table)")
            selects.append(select)
        say(f"reading {spec.name}")
        _source(con, spec, tfs, selects, natives, st, stage_dir)
        if spec.name == "patients":
            _finish_patients(con, spec, st)
        else:
            _finish_rows(con, spec, st, keep_codes,
                         aggregates.get(spec.internal, RowAggregates()), say)


@contextmanager
def _plain_ahead(paths: Sequence[Path]) -> Iterator[Callable[[Path], PlainFile | None]]:
    """Each CSV file of ``paths`` looked at by :func:`.csvlines.plain_file`, in turn, on a
    thread of its own, and a function giving a file's answer (waiting for it; None for a file
    not in ``paths``). So each file is looked at while DuckDB reads the ones before it: at 1.6
    million people, the 1.9 GB events file took 1.3 s on its own once the patients were read.
    Leaving early (an error, Ctrl-C) stops the look at its next piece of the file."""
    if not paths:
        yield lambda _path: None
        return
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="int-rules-plain") as pool:
        futures: dict[Path, Future[PlainFile | None]] = {
            path: pool.submit(plain_file, path, stop=stop) for path in paths}
        try:
            yield lambda path: futures[path].result() if path in futures else None
        finally:
            stop.set()
            for future in futures.values():
                future.cancel()


#: How staged CSV rows are compressed: lz4 is cheap to write and to read back (the checked
#: events of 1.6 million people: 13.7 s to stage against 14.5 s in a table in memory, 0.35 GB).
STAGE_COMPRESSION = "lz4_raw"


class _Native(NamedTuple):
    """A plain CSV file's select by DuckDB's own reader (see :func:`_select_typed`)."""

    select: str
    plain: PlainFile
    file_idx: int
    cells: int  # in the header


def _source(con: duckdb.DuckDBPyConnection, spec: TableSpec, tfs: Sequence[TableFile],
            selects: Sequence[str], natives: Sequence[_Native | None],
            st: TableStats, stage_dir: Path | None) -> None:
    """``__src_<t>``: the typed rows of every file of one table (for CSV a table, or a view of
    the Parquet files staged in ``stage_dir``; else a view of the files).

    A plain CSV file (``natives``, only when staging) is read by DuckDB's own reader first,
    its checked rows staged in the file's order (that reader and the Parquet writer both keep
    it), so that the staged row ``r`` (from 0) is line ``r + 2``. When that reader stops at
    something (a line with the wrong number of cells, text that is not UTF-8) or reads fewer
    rows than the file has lines after its header (a blank line), what it staged is dropped
    and the file is read again line by line, so that every line is reported as
    :mod:`.csvlines` reports it."""
    src = f"__src_{spec.internal}"
    schema = list(_schema(spec))
    cols = ", ".join(f"{name} {typ}" for name, typ in schema)
    empty_table = f"CREATE TEMP TABLE {src} (seq BIGINT, {cols}, bad BOOLEAN, reason VARCHAR)"
    con.execute(f"DROP VIEW IF EXISTS {src}")
    con.execute(f"DROP TABLE IF EXISTS {src}")
    if not tfs:
        con.execute(empty_table)
        return
    if all(tf.format != "csv" for tf in tfs):
        try:
            con.execute(f"CREATE TEMP VIEW {src} AS " + " UNION ALL ".join(
                f"({sel})" for sel in selects))
            con.execute(f"SELECT count(*) FROM {src} WHERE FALSE").fetchall()
        except duckdb.Error as exc:
            raise _read_failed(exc, f"{tfs[0].shown}: cannot read the file: "
                                    f"{_first_line(exc)}") from None
        return
    # Copied, CSV files block by block (each row numbered by its line), Parquet files beside
    # them as they are: into a table, or each block into a Parquet file of ``stage_dir``. The
    # order rows arrive in does not matter: seq says.
    staged: list[Path] = []  # each row with its seq
    in_order: list[tuple[Path, int]] = []  # staged by DuckDB's reader in order, with file_idx
    typed = ", ".join(f"CAST({name} AS {typ}) AS {name}" for name, typ in schema)
    if stage_dir is None:
        con.execute(empty_table)
    else:
        stage_dir.mkdir(parents=True, exist_ok=True)

    def copy(sel: str) -> int:
        """``sel``'s rows stored; how many."""
        if stage_dir is None:
            return int(con.execute(f"INSERT INTO {src} {sel}").fetchall()[0][0])
        path = stage_dir / f"{spec.internal}-{len(staged) + len(in_order):05d}.parquet"
        staged.append(path)
        return int(con.execute(
            f"COPY (SELECT CAST(seq AS BIGINT) AS seq, {typed}, CAST(bad AS BOOLEAN) AS bad, "
            f"CAST(reason AS VARCHAR) AS reason FROM ({sel})) TO {_q(str(path))} "
            f"(FORMAT parquet, COMPRESSION {STAGE_COMPRESSION})").fetchall()[0][0])

    def native(nat: _Native) -> bool:
        """Whether the file was read whole by DuckDB's own reader (else nothing is kept)."""
        assert stage_dir is not None
        path = stage_dir / f"{spec.internal}-{len(staged) + len(in_order):05d}.parquet"
        rows = -1
        statement = (f"COPY (SELECT {typed}, CAST(bad AS BOOLEAN) AS bad, CAST(reason AS "
                     f"VARCHAR) AS reason FROM ({nat.select})) TO {_q(str(path))} "
                     f"(FORMAT parquet, COMPRESSION {STAGE_COMPRESSION})")
        try:
            if not _keeps_order(con, statement):
                return False
            rows = int(con.execute(statement).fetchall()[0][0])
        except duckdb.Error as exc:
            if interrupted(exc):
                path.unlink(missing_ok=True)
                raise KeyboardInterrupt() from None
        if rows != nat.plain.lines - 1 or nat.plain.commas != rows * (nat.cells - 1):
            path.unlink(missing_ok=True)
            return False
        in_order.append((path, nat.file_idx))
        return True

    for tf, sel, nat in zip(tfs, selects, natives, strict=True):
        if nat is not None and native(nat):
            st.lines += nat.plain.lines
            continue
        if tf.format != "csv":
            try:
                copy(sel)
            except duckdb.Error as exc:
                raise _read_failed(exc, f"{tf.shown}: cannot read the file: "
                                        f"{_first_line(exc)}") from None
            continue
        lines, blank, rows = 1, 0, 0
        for block in read_blocks(tf.path, _unreadable(tf)):
            con.register("__blk_plain", block.plain)
            con.register("__blk_parsed", block.parsed)
            try:
                rows += copy(sel)
            except duckdb.Error as exc:
                raise _read_failed(exc, f"{tf.shown}: cannot read the file near line "
                                        f"{lines + 1}: {_first_line(exc)}") from None
            finally:
                con.unregister("__blk_plain")
                con.unregister("__blk_parsed")
            lines += block.plain.num_rows
            blank += block.blank_lines
        # Every line is the header, blank, or a row: check that none went missing.
        if rows != lines - 1 - blank:
            raise PopulationInputError(
                f"{tf.shown}: {lines:,} lines ({blank:,} blank) but {rows:,} rows read; "
                "the file was not read completely")
        st.lines += lines
        st.blank_lines += blank
    names = ", ".join(name for name, _ in schema)
    parts = [f"SELECT * FROM read_parquet([{', '.join(file_path(p) for p in staged)}])"
             ] if staged else []
    parts += [f"SELECT (CAST({idx} AS BIGINT) << {_ROW_BITS}) | (file_row_number + 2) AS seq, "
              f"{names}, bad, reason FROM read_parquet({file_path(path)}, file_row_number=true)"
              for path, idx in in_order]
    if parts:
        con.execute(f"CREATE TEMP VIEW {src} AS " + " UNION ALL ".join(parts))
    elif stage_dir is not None:  # nothing was staged (a file of a header alone)
        con.execute(empty_table)


def _keeps_order(con: duckdb.DuckDBPyConnection, copy: str) -> bool:
    """Whether DuckDB writes the rows of ``copy`` (a ``COPY ... TO``) in the order it reads
    them: its plan is then the ordered copy (``BATCH_COPY_TO_FILE``), which writes each batch
    of rows in the scan's order. A plan with an operator that does not keep that order (a
    join, say) is the plain copy, which writes the batches as the threads finish them."""
    plan = json.loads(str(con.execute("EXPLAIN (FORMAT json) " + copy).fetchall()[0][1]))
    return bool(plan) and plan[0].get("name") == "BATCH_COPY_TO_FILE"


def _read_failed(exc: duckdb.Error, message: str) -> BaseException:
    """What to raise when DuckDB fails reading a file: ``KeyboardInterrupt`` when the failure is
    Ctrl-C (see :func:`~int_rules.engines.duckdb.interrupted`), else the ``message`` as a
    :class:`PopulationInputError`."""
    return KeyboardInterrupt() if interrupted(exc) else PopulationInputError(message)


def _unreadable(tf: TableFile) -> Callable[[str], Exception]:
    def error(message: str) -> Exception:
        return PopulationInputError(f"{tf.shown}: cannot read the file: {message}")
    return error


def _schema(spec: TableSpec) -> Iterator[tuple[str, str]]:
    types = {"id": "VARCHAR", "date": "DATE", "birth_date": "DATE", "code": "VARCHAR",
             "number": "DOUBLE", "bool": "BOOLEAN", "text": "VARCHAR", "sex": "VARCHAR",
             "gp_system": "VARCHAR", "kind": "VARCHAR"}
    for c in spec.columns:
        if c.name == "unit":
            continue
        yield _ident(c.target), types[c.kind]
        if c.kind == "birth_date":
            yield "birth_precision", "VARCHAR"


_ROW_MASK = (1 << _ROW_BITS) - 1
_LINE_SQL = f"(s.seq & {_ROW_MASK})"


def _finish_patients(con: duckdb.DuckDBPyConnection, spec: TableSpec, st: TableStats) -> None:
    """``__ids`` (every patient_id: pid, accepted, dob, dod) and ``pt`` (accepted patients).

    A patient_id given on two rows is rejected on both: we cannot tell which is right.
    ``pid`` is the row's place in the input, so results come out in the patients' order.
    """
    src = f"__src_{spec.internal}"
    others = [c for c in _target_columns(spec) if c != "patient_id"]
    con.execute(f"CREATE OR REPLACE TEMP TABLE __pts AS SELECT * FROM {src}")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE __pdup AS
        SELECT patient_id, count(*) AS n FROM __pts WHERE patient_id IS NOT NULL
        GROUP BY patient_id HAVING count(*) > 1""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pt AS
        SELECT seq AS pid, patient_id, {', '.join(others)}, 0 AS rejected_rows
        FROM __pts WHERE NOT bad AND patient_id IS NOT NULL
          AND patient_id NOT IN (SELECT patient_id FROM __pdup)""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE __ids AS
        SELECT patient_id, pid, TRUE AS accepted, dob, dod FROM pt
        UNION ALL
        SELECT patient_id, min(seq), FALSE, NULL::DATE, NULL::DATE FROM __pts
        WHERE patient_id IS NOT NULL AND patient_id NOT IN (SELECT patient_id FROM pt)
        GROUP BY patient_id""")
    n_read, n_ok = (int(x or 0) for x in con.execute(
        "SELECT (SELECT count(*) FROM __pts), (SELECT count(*) FROM pt)").fetchall()[0])
    if n_read == 0:
        raise PopulationInputError(f"{', '.join(st.files)}: no rows after the header (the "
                                   "patients table needs at least one person)")
    st.rows_read += n_read
    st.rows_rejected += n_read - n_ok
    st.rows_accepted = n_ok
    if n_read > n_ok:
        con.execute(f"""
            INSERT INTO rejects SELECT 'patients', CAST(s.seq >> {_ROW_BITS} AS INTEGER),
                   {_LINE_SQL}, {_SHOWN_ID},
                   NULLIF(concat_ws('; ', s.reason, CASE WHEN g.n > 1 THEN
                       'patient_id appears ' || g.n || ' times in the patients table' END), '')
            FROM __pts s LEFT JOIN __pdup g USING (patient_id)
            WHERE s.bad OR g.n > 1""")
    con.execute("DROP TABLE __pts")


#: The patient id as the rejects show it: an over-long one shortened.
_SHOWN_ID = (f"CASE WHEN length(s.patient_id) > {MAX_ID_LENGTH} THEN left(s.patient_id, 60) || "
             "'...' ELSE s.patient_id END")
_ORPHAN = ("CASE WHEN s.patient_id IS NOT NULL AND i.pid IS NULL THEN 'patient_id ''' || "
           "left(s.patient_id, 60) || ''' is not in the patients table' END")


def _finish_rows(con: duckdb.DuckDBPyConnection, spec: TableSpec, st: TableStats,
                 keep_codes: str | None, aggs: RowAggregates, say: Progress) -> None:
    t = spec.internal
    src = f"__src_{t}"
    cols = [c for c in _target_columns(spec) if c not in ("patient_id", "code")]
    events = spec.name == "clinical_events"
    date_col = {"adm": "admitted"}.get(t, "d")
    sel = ", ".join(f"s.{c} AS {c}" for c in cols)
    code_join = ""
    row_bad = "s.bad"
    code_col = ""
    why = "s.reason"
    keep = "TRUE"
    if events:
        say("checking SNOMED CT codes")
        any_bad, kept = _check_codes(con, src, keep_codes)
        code_join = "LEFT JOIN __codes c ON c.raw = s.code"
        code_col = ", c.code"
        # The codes as written that the engine reads, also as a list the scan can filter on
        # before any other cell is checked (few events have one; the join alone would check
        # every row first).
        keep = f"c.keep AND s.code IN {_in_list(kept)}" if kept else "FALSE"
        if any_bad:
            row_bad = "(s.bad OR c.bad_why IS NOT NULL)"
            why = "NULLIF(concat_ws('; ', s.reason, c.bad_why), '')"
    # 1. One pass: counts and the engine's per-patient aggregates (those that read the
    #    patient's dates too), each row joined to its patient_id's entry (accepted or not, or
    #    none: not in the patients table) and grouped by the patient_id as written. The codes
    #    are joined only when some are bad (the aggregates here never read them).
    say(f"counting {spec.name} rows")
    plain = "".join(f", {sql} AS {name}" for name, sql in (*aggs.plain, *aggs.person))
    pa_join = code_join if row_bad != "s.bad" else ""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __pa_{t} AS
        SELECT patient_id, any_value(__pid) AS __pid, any_value(__accepted) AS __accepted,
               count(*) AS __n, count(*) FILTER (WHERE NOT __ok) AS __n_bad,
               min({date_col}) FILTER (WHERE __ok) AS __min_d,
               max({date_col}) FILTER (WHERE __ok) AS __max_d{plain}
        FROM (SELECT s.patient_id, s.seq, {sel}, NOT {row_bad} AS __ok, i.pid AS __pid,
                     i.accepted AS __accepted, i.dob, i.dod
              FROM {src} s {pa_join} LEFT JOIN __ids i ON i.patient_id = s.patient_id)
        GROUP BY patient_id""")
    agg_cols = "".join(f", {name}" for name, _ in (*aggs.plain, *aggs.person))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __rowaggs_{t} AS
        SELECT __pid AS pid, __n, __n_bad, __min_d, __max_d{agg_cols}
        FROM __pa_{t} WHERE __accepted""")
    n_read, n_bad, n_orphan, n_rej = (int(x or 0) for x in con.execute(f"""
        SELECT sum(__n), sum(__n_bad), sum(__n - __n_bad) FILTER (WHERE __pid IS NULL),
               sum(__n - __n_bad) FILTER (WHERE __pid IS NOT NULL AND NOT __accepted)
        FROM __pa_{t}""").fetchall()[0])
    st.rows_read += n_read
    st.rows_rejected += n_bad + n_orphan
    st.rows_of_rejected_patients = n_rej
    st.rows_accepted = n_read - n_bad - n_orphan - n_rej
    # 2. The rows the rules read (for events: codes some fact or the pathway reads).
    say(f"selecting the {spec.name} rows the rules read")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {t} AS
        SELECT i.pid, x.* EXCLUDE (patient_id)
        FROM (SELECT s.seq, s.patient_id, {sel}{code_col}
              FROM {src} s {code_join} WHERE NOT {row_bad} AND {keep}) x
        JOIN __ids i ON i.patient_id = x.patient_id AND i.accepted""")
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW __rows_{t} AS
        SELECT i.pid, s.seq, {sel}{code_col}, i.dob, i.dod, TRUE AS __ok
        FROM {src} s {code_join} JOIN __ids i ON i.patient_id = s.patient_id AND i.accepted
        WHERE NOT {row_bad}""")
    # 4. The rejected rows, listed (only when there are some).
    if n_bad or n_orphan:
        say(f"listing rejected {spec.name} rows")
        con.execute(f"""
            INSERT INTO rejects
            SELECT {_q(spec.name)}, CAST(s.seq >> {_ROW_BITS} AS INTEGER), {_LINE_SQL},
                   {_SHOWN_ID}, NULLIF(concat_ws('; ', {why}, {_ORPHAN}), '')
            FROM {src} s {code_join} LEFT JOIN __ids i ON i.patient_id = s.patient_id
            WHERE {row_bad} OR (s.patient_id IS NOT NULL AND i.pid IS NULL)""")
    if n_bad:
        # Patients with rejected rows here: their record is incomplete; say so on their result.
        con.execute(f"""
            UPDATE pt SET rejected_rows = pt.rejected_rows + b.__n_bad
            FROM __rowaggs_{t} b WHERE pt.pid = b.pid AND b.__n_bad > 0""")
    con.execute(f"DROP TABLE __pa_{t}")


def _check_codes(con: duckdb.DuckDBPyConnection, src: str, keep_codes: str | None
                 ) -> tuple[bool, list[str]]:
    """``__codes`` (raw, code, bad_why, keep): every distinct code as written, trimmed and
    checked once (format, partition, Verhoeff check digit); ``keep`` when the engine reads it.
    Returns whether any code is bad, and the codes as written that are kept (sorted)."""
    raws = [r[0] for r in con.execute(
        f"SELECT DISTINCT code FROM {src} WHERE code IS NOT NULL").fetchall()]
    wanted: set[str] = set()
    if keep_codes is not None:
        wanted = {str(r[0]) for r in con.execute(f"SELECT code FROM {keep_codes}").fetchall()}
    rows = []
    for raw in raws:
        code = str(raw).strip()
        if not code:
            why: str | None = "snomedct_code is empty"
        else:
            problem = concept_id_problem(code)
            why = (f"snomedct_code '{code[:60]}' is not a SNOMED CT concept id: {problem}"
                   if problem else None)
        rows.append((raw, code, why, why is None and code in wanted))
    table = pa.table({
        "raw": pa.array([r[0] for r in rows], pa.string()),
        "code": pa.array([r[1] for r in rows], pa.string()),
        "bad_why": pa.array([r[2] for r in rows], pa.string()),
        "keep": pa.array([r[3] for r in rows], pa.bool_()),
    })
    con.register("__codes_arrow", table)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE __codes AS SELECT * FROM __codes_arrow")
    finally:
        con.unregister("__codes_arrow")
    return (any(why is not None for _, _, why, _ in rows),
            sorted(str(raw) for raw, _, _, kept in rows if kept))


def _patient_counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    row = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE accepted) FROM __ids").fetchall()[0]
    no_id = con.execute("SELECT count(*) FROM rejects WHERE tbl = 'patients' AND "
                        "patient_id IS NULL").fetchall()[0]
    ids, accepted = int(row[0]), int(row[1])
    return ids + int(no_id[0]), accepted, ids - accepted + int(no_id[0])
