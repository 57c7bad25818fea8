"""Population runs from memory: pyarrow Tables, pandas or polars DataFrames in, Arrow out.

A Python application or a notebook assesses a batch without writing files::

    import datetime as dt
    import int_rules
    from int_rules.population import assess_tables

    out = assess_tables(int_rules.load(), {"patients": patients_df,
                                           "clinical_events": events_df}, dt.date(2026, 3, 31))
    out.results.to_pandas()      # one row per assessed patient (an Arrow table)
    out.rejects                  # every rejected row, with table, row and reason

The tables are keyed by table name (``patients``, ``clinical_events``, ``admissions``,
``risk_scores``, ``monitoring``) with the columns of ``docs/population.md``. Anything that
exports an Arrow stream (``__arrow_c_stream__``: pyarrow Tables and RecordBatches, pandas 2.2+
and polars DataFrames, DuckDB relations) works; DuckDB scans it where it lies. Each table is then
read, validated and rejected by the very path file rows take (:func:`.tables.load_tables`):
the same checks, the same reasons; a rejected row's ``file`` is ``<table> (in memory)`` and its
``row`` its 1-based position in the table (not a pandas index label).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import duckdb
import pyarrow as pa

from .tables import TABLES, PopulationInputError, TableFile

if TYPE_CHECKING:
    from ..rulebook import Rulebook

__all__ = ["MEMORY_DIR", "ArrowStreamExportable", "PopulationTables", "assess_tables",
           "register_tables", "to_arrow"]

#: What a run from memory reports as its data directory.
MEMORY_DIR = Path("(in memory)")


@runtime_checkable
class ArrowStreamExportable(Protocol):
    """A table that exports an Arrow C stream (the Arrow PyCapsule interface)."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...


def _is_pandas(obj: object) -> bool:
    return type(obj).__module__.split(".")[0] == "pandas"


def _pandas_as_text(frame: Any, table: str) -> pa.Table:
    """A pandas DataFrame whose object columns Arrow cannot type (mixed values, as a CSV cell
    may hold anything): such a column is read as text, so each bad cell rejects its row as it
    would in a file, instead of the whole table failing."""
    import pandas as pd

    columns: dict[str, pa.Array] = {}
    for name in frame.columns:
        series = frame[name]
        try:
            columns[str(name)] = pa.array(series, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            columns[str(name)] = pa.array(
                [None if pd.isna(v) else str(v) for v in series], type=pa.string())
    try:
        return pa.table(columns)
    except pa.ArrowException as exc:
        raise PopulationInputError(f"{table} (in memory): cannot read the DataFrame: "
                                   f"{exc}") from None


def to_arrow(data: ArrowStreamExportable | pa.Table, table: str = "table") -> pa.Table:
    """``data`` as a pyarrow Table (zero-copy where Arrow allows). Raises
    :class:`~int_rules.population.tables.PopulationInputError` naming ``table`` if it is not
    a table."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if _is_pandas(data):
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return _pandas_as_text(data, table)
    if isinstance(data, ArrowStreamExportable):
        try:
            return pa.table(data)
        except pa.ArrowException as exc:
            raise PopulationInputError(f"{table} (in memory): cannot read it as an Arrow "
                                       f"table: {exc}") from None
    raise PopulationInputError(
        f"{table}: a {type(data).__name__} is not a table; give a pyarrow Table, a pandas or "
        "polars DataFrame (anything with __arrow_c_stream__), or a folder of files")


def register_tables(con: duckdb.DuckDBPyConnection,
                    tables: Mapping[str, ArrowStreamExportable | pa.Table]
                    ) -> dict[str, list[TableFile]]:
    """Register each in-memory table with ``con`` and describe it as :func:`.tables.discover`
    describes files, for :func:`.tables.load_tables`.

    Raises :class:`~int_rules.population.tables.PopulationInputError` for a name that is not a
    table, or when a required table (``patients``) is missing.
    """
    known = {t.name for t in TABLES}
    unknown = sorted(str(k) for k in tables if k not in known)
    if unknown:
        raise PopulationInputError(f"in-memory table {', '.join(map(repr, unknown))}: not a "
                                   f"table name (tables are "
                                   f"{', '.join(t.name for t in TABLES)})")
    for spec in TABLES:
        if spec.required and spec.name not in tables:
            raise PopulationInputError(f"no {spec.name} table among the in-memory tables "
                                       f"(given: {', '.join(tables) or 'none'}); see "
                                       "docs/population.md")
    found: dict[str, list[TableFile]] = {}
    for spec in TABLES:
        if spec.name not in tables:
            continue
        arrow = to_arrow(tables[spec.name], spec.name)
        if "file_row_number" in arrow.column_names:
            raise PopulationInputError(f"{spec.name} (in memory): the column name "
                                       "'file_row_number' is reserved; rename it")
        numbered = arrow.append_column("file_row_number",
                                       pa.array(range(arrow.num_rows), type=pa.int64()))
        relation = f"__mem_{spec.name}"
        con.register(relation, numbered)
        found[spec.name] = [TableFile(spec.name, MEMORY_DIR / spec.name,
                                      f"{spec.name} (in memory)", "memory", relation)]
    return found


@dataclass(frozen=True)
class PopulationTables:
    """A finished population run as Arrow tables (the connection is closed).

    ``results``: one row per assessed patient, in input order: the rows and columns of
    ``results.parquet`` (lists stay lists, ``rulebook_sha256`` and ``rulebook_status``
    included, the provenance in the schema metadata: ``int_rules_provenance``, ``as_of``), plus
    ``pathway_next_codes`` (the codes that may validly be recorded next). ``rejects``:
    every rejected row and patient (table, file, row, patient_id, reason). ``findings``: every
    data-quality finding. ``facts``: every fact value per patient, when asked for.
    ``summary``: counts read, accepted and rejected, provenance, timings (as
    ``run_summary.json``).
    """

    results: pa.Table
    rejects: pa.Table
    findings: pa.Table
    facts: pa.Table | None
    summary: dict[str, Any]


def assess_tables(
    book: Rulebook,
    tables: Mapping[str, ArrowStreamExportable | pa.Table],
    as_of: dt.date,
    *,
    with_facts: bool = False,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> PopulationTables:
    """Assess every patient of in-memory ``tables`` as of ``as_of``; results as Arrow tables.

    ``tables`` maps table name to a pyarrow Table or a pandas or polars DataFrame (see the
    module docstring). Rows are validated and rejected exactly as rows of files are. Raises
    :class:`~int_rules.population.tables.PopulationInputError` when a table cannot be used at
    all (unknown name, no ``patients``, a missing required column); bad rows do not raise:
    they are in ``rejects``, and every patient is in ``results`` or ``rejects``.
    """
    from ..engines.sql import fact_column
    from .engine import (
        FINDINGS_ORDER,
        REJECTS_ORDER,
        overall_status,
        provenance,
        run_population,
    )

    run = run_population(book, tables, as_of, threads=threads, memory_limit=memory_limit)
    try:
        con = run.con
        sha = book.sha256.replace("'", "''")
        status = overall_status(book)
        # The columns and metadata of results.parquet (no run id: nothing was written).
        results = con.sql(f"SELECT * EXCLUDE (pid), '{sha}' AS rulebook_sha256, "
                          f"'{status}' AS rulebook_status, '' AS run_id, "
                          f"DATE '{as_of.isoformat()}' AS as_of FROM results ORDER BY pid"
                          ).to_arrow_table()
        meta = {"int_rules_provenance": json.dumps(provenance(book)),
                "as_of": as_of.isoformat(), "run_id": ""}
        results = results.replace_schema_metadata(meta)
        rejects = con.sql('SELECT tbl AS "table", file, row, patient_id, reason '
                          f"FROM rejects_out ORDER BY {REJECTS_ORDER}").to_arrow_table()
        findings = con.sql(f"SELECT * FROM findings ORDER BY {FINDINGS_ORDER}"
                           ).to_arrow_table()
        facts = None
        if with_facts:
            cols = ", ".join(f"{fact_column(n)} AS {n}" for n in book.fact_order)
            facts = con.sql(f"SELECT patient_id, {cols} FROM facts_out ORDER BY pid"
                            ).to_arrow_table()
        return PopulationTables(results, rejects, findings, facts, run.summary())
    finally:
        run.close()
