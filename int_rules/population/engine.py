"""Population runs: a whole extract assessed as of one date.

:func:`run_population` reads and validates the tables (:mod:`.tables`), runs the DuckDB engine
(:mod:`int_rules.engines.duckdb`, over SQL compiled from the rule model by
:mod:`int_rules.engines.sql`), and lays out the results. The :class:`PopulationRun` it returns
holds the DuckDB connection with ``results`` (a view), ``facts``, ``findings`` and
``rejects_out``; :func:`write_outputs` writes them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..engines import duckdb as duckdb_engine
from ..engines.duckdb import TEXT_SEPARATOR, arrow_table, mask_columns, output_column
from ..engines.sql import (
    DUCKDB,
    SPARK,
    CompiledPopulation,
    age_sql,
    compile_model,
    fact_column,
    literal,
)
from ..errors import IntRulesError
from ..review.approvals import overall_status as least_approved
from ..review.approvals import status_of
from .ahead import imported_ahead
from .columns import results_select, worklist_fact_columns
from .csvsafe import neutralise_sql, safe_csv_select
from .memory import MEMORY_DIR, ArrowStreamExportable, register_tables
from .tables import TABLES, LoadResult, PopulationInputError, RowAggregates, load_tables

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from ..record import PatientRecord
    from ..rulebook import Rulebook
    from .worklist import Worklists

__all__ = [
    "TEXT_SEPARATOR",
    "PopulationRun",
    "connect",
    "output_column",
    "provenance",
    "records_from_tables",
    "run_population",
    "run_tables_only",
    "statuses_text",
    "write_outputs",
]

Progress = Callable[[str, float], None]
"""Called with a message and the share of the run done (0 to 1)."""

#: Output orders over every column, so equal inputs give equal bytes (no ties left to chance).
FINDINGS_ORDER = ("patient_id, date NULLS FIRST, finding_id, source, code NULLS FIRST, severity, "
                  "message")
REJECTS_ORDER = "tbl, file, row NULLS LAST, patient_id NULLS FIRST, reason"


@dataclass
class PopulationRun:
    """A finished run: the connection holding its tables, and what happened."""

    con: duckdb.DuckDBPyConnection
    book: Rulebook
    as_of: dt.date
    data_dir: Path
    load: LoadResult
    compiled: CompiledPopulation
    timings: dict[str, float] = field(default_factory=dict)
    patients_assessed: int = 0
    patients_rule_conflicts: int = 0
    pathway_signatures: int = 0
    rule_masks: int = 0
    pathway_mode: str = "signatures"
    engine: str = "duckdb"
    #: The run's scratch folder (the checked CSV rows staged as Parquet; the Spark engine's
    #: exchange), removed on close.
    work_dir: Path | None = None
    result_facts: tuple[str, ...] = ()  # the facts ``__res`` holds beside the results (f_<name>)

    def close(self) -> None:
        self.con.close()
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    # -- plain data, for tests and applications --------------------------------------------

    def result_rows(self) -> list[dict[str, Any]]:
        """Every row of ``results`` as a dict (lists stay lists). For small runs and tests."""
        return _rows(self.con, "SELECT * EXCLUDE (pid) FROM results ORDER BY pid")

    def fact_rows(self) -> list[dict[str, Any]]:
        """Every assessed patient's fact values: ``patient_id`` plus one key per fact."""
        cols = ", ".join(f"{fact_column(n)} AS {n}" for n in self.book.fact_order)
        return _rows(self.con, f"SELECT patient_id, {cols} FROM facts_out ORDER BY pid")

    def reject_rows(self) -> list[dict[str, Any]]:
        return _rows(self.con, f"SELECT * FROM rejects_out ORDER BY {REJECTS_ORDER}")

    def finding_rows(self) -> list[dict[str, Any]]:
        return _rows(self.con, f"SELECT * FROM findings ORDER BY {FINDINGS_ORDER}")

    def summary(self) -> dict[str, Any]:
        """The run summary: counts read, accepted, rejected; provenance; timings."""
        load = self.load
        rejected_patients = load.patients_rejected + self.patients_rule_conflicts
        return {
            "as_of": self.as_of.isoformat(),
            "data_dir": str(self.data_dir),
            "provenance": provenance(self.book),
            "patients": {
                "read": load.patients_read,
                "accepted": load.patients_accepted,
                "rejected_in_patients_table": load.patients_rejected,
                "rejected_rule_conflicts": self.patients_rule_conflicts,
                "in_results": self.patients_assessed,
                "in_rejects": rejected_patients,
                "all_accounted_for": (self.patients_assessed + rejected_patients
                                      == load.patients_read),
            },
            "tables": {name: st.to_dict() for name, st in load.stats.items()
                       if name in load.present},
            "tables_missing": [t.name for t in TABLES if t.name not in load.present],
            "notes": list(load.notes),
            "warnings": list(load.warnings),
            "engine": {"name": self.engine, "pathway_mode": self.pathway_mode,
                       "pathway_signatures": self.pathway_signatures,
                       "distinct_rule_masks": self.rule_masks},
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = con.sql(sql).to_arrow_table().to_pylist()
    return rows


def provenance(book: Rulebook) -> dict[str, Any]:
    """Which rulebook produced the outputs: id, version, sha256, ruleset versions and statuses."""
    return dict(book.provenance())


def statuses_text(book: Rulebook) -> str:
    """``identification 0.1.0 draft; ...``: every ruleset's version and status in one cell."""
    parts = [f"{rs.id} {rs.definition.version} {status_of(book, rs.id)}" for rs in book.rulesets]
    parts.append(f"pathway {book.pathway.version} {status_of(book, 'pathway')}")
    return "; ".join(parts)


def overall_status(book: Rulebook) -> str:
    """The least approved status of any ruleset or the pathway (one word for every output row):
    ``changed since approval``, then ``draft``, then ``retired``, else ``approved``."""
    return least_approved(status_of(book, t) for t in (*(rs.id for rs in book.rulesets),
                                                       "pathway"))


# -- the run ----------------------------------------------------------------------------------


def connect(threads: int | None = None, memory_limit: str | None = None,
            temp_directory: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection set up for a population run."""
    config: dict[str, Any] = {"preserve_insertion_order": True}
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    if temp_directory is not None:
        config["temp_directory"] = str(temp_directory)
    try:
        con = duckdb.connect(":memory:", config=config)
        con.execute("SET enable_progress_bar = false")
        return con
    except duckdb.Error as exc:
        raise PopulationInputError(f"cannot start DuckDB: {exc}") from None


def run_population(
    book: Rulebook,
    data_dir: str | Path | Mapping[str, ArrowStreamExportable | pa.Table],
    as_of: dt.date,
    *,
    progress: Progress | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_directory: Path | None = None,
    pathway_mode: str = "signatures",
    keep_facts: Sequence[str] = (),
    result_facts: Sequence[str] = (),
    finding_rulesets: Mapping[str, Mapping[str, str]] | None = None,
    engine: str = "duckdb",
    spark: SparkSession | None = None,
    spark_master: str | None = None,
) -> PopulationRun:
    """Assess every patient in ``data_dir`` as of ``as_of`` with ``book``.

    ``data_dir`` is a folder of files, or a mapping of table name to in-memory table (pyarrow
    Table, pandas or polars DataFrame; see :mod:`.memory`, whose :func:`~.memory.assess_tables`
    also returns the results as Arrow tables), validated exactly as file rows are.

    ``engine`` is ``"duckdb"`` (the default) or ``"spark"`` (:mod:`int_rules.engines.spark`;
    the ``spark`` extra): facts, pathway signatures and rule masks are then computed on Spark,
    on the session ``spark`` (e.g. a Databricks notebook's) or one started on ``spark_master``
    (default ``local[*]``). Passing ``spark`` implies ``engine="spark"``; with it, ``data_dir``
    may also map table names to Spark DataFrames or to the names of tables the session can
    read. Either engine gives the same tables, so the same outputs, byte for byte.

    ``keep_facts`` names facts to keep beside the rule masks in ``__cm`` (column ``f_<name>``),
    for summaries such as the dashboard that would otherwise recompute every fact.
    ``result_facts`` names facts to carry in the results too (``__res``; the worklist columns
    of the results files: see :func:`write_outputs`); they are kept in ``__cm`` as well.
    ``finding_rulesets`` maps a ruleset id to {output: severity}: each rule of it that fires is
    also a row of ``findings`` (the dashboard file says which; see ``rulesets/dashboard.yaml``).

    Raises :class:`~int_rules.population.tables.PopulationInputError` when the directory or a
    file cannot be used. Bad rows do not raise: they go to the rejects.
    """
    if not isinstance(as_of, dt.date) or isinstance(as_of, dt.datetime):
        raise TypeError(f"as_of must be a datetime.date, got {type(as_of).__name__}")
    if pathway_mode not in ("signatures", "per_patient"):
        raise ValueError(f"pathway_mode must be 'signatures' or 'per_patient', not "
                         f"{pathway_mode!r}")
    if spark is not None:
        engine = "spark"
    if engine not in ("duckdb", "spark"):
        raise ValueError(f"engine must be 'duckdb' or 'spark', not {engine!r}")
    if engine == "spark" and pathway_mode != "signatures":
        raise ValueError("the Spark engine replays pathway signatures (pathway_mode "
                         "'signatures')")
    say = progress or (lambda _m, _f: None)
    if engine == "spark":
        from ..engines import spark as spark_engine

        spark_engine.require_pyspark()
        if spark is None:
            say("starting Spark", 0.0)
            spark = spark_engine.session(spark_master or spark_engine.DEFAULT_MASTER)
    try:
        work_dir = Path(tempfile.mkdtemp(prefix=f"int_rules_{engine}_", dir=temp_directory))
    except OSError as exc:
        raise PopulationInputError(f"cannot make a scratch folder in "
                                   f"{temp_directory or tempfile.gettempdir()}: {exc}") from None
    try:
        if spark is not None and isinstance(data_dir, Mapping):
            data_dir = spark_engine.tables_to_parquet(spark, data_dir, work_dir / "tables")
        con = connect(threads, memory_limit, temp_directory)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    directory = Path(data_dir) if not isinstance(data_dir, Mapping) else MEMORY_DIR
    compiled = compile_model(book.model, as_of, SPARK if engine == "spark" else DUCKDB)
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - t
        t = now

    try:
        info = duckdb_engine.pathway_codes(book.model.pathway)
        duckdb_engine.code_tables(con, compiled, info)
        say("reading and checking the tables", 0.0)
        found = register_tables(con, data_dir) if isinstance(data_dir, Mapping) else None
        # pandas, when installed, is imported by the first Arrow array made from Python
        # objects (a quarter of a second): here, beside DuckDB's reading, not in its way.
        with imported_ahead("pandas"):
            loaded = load_tables(con, directory, lambda m: say(m, 0.1),
                                 keep_codes="__relevant", aggregates={"ev": RowAggregates(
                                     *duckdb_engine.row_aggregates(compiled))},
                                 found=found, stage_dir=work_dir / "staged")
        lap("read_and_validate")
        run = PopulationRun(con, book, as_of, directory, loaded, compiled, timings,
                            pathway_mode=pathway_mode, engine=engine, work_dir=work_dir,
                            result_facts=tuple(dict.fromkeys(result_facts)))
        keep_facts = tuple(dict.fromkeys([*keep_facts, *result_facts]))
        if spark is not None:
            try:
                done = spark_engine.evaluate(con, compiled, book.pathway, info, spark=spark,
                                             work_dir=work_dir / "exchange",
                                             keep_facts=keep_facts,
                                             finding_rulesets=finding_rulesets, lap=lap,
                                             say=say)
            except spark_engine.spark_errors() as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise IntRulesError(f"population run failed on Spark: {first}") from exc
        else:
            done = duckdb_engine.evaluate(con, compiled, book.pathway, info,
                                          pathway_mode=pathway_mode, keep_facts=keep_facts,
                                          finding_rulesets=finding_rulesets, lap=lap, say=say)
        run.pathway_signatures = done.pathway_signatures
        run.rule_masks = done.rule_masks
        _results(con, compiled, run.result_facts)
        run.patients_assessed = int(con.execute("SELECT count(*) FROM assessed").fetchall()[0][0])
        run.patients_rule_conflicts = int(con.execute(
            "SELECT count(*) FROM rejects WHERE tbl = '(rules)'").fetchall()[0][0])
        _rejects_out(con, loaded)
        lap("summarise")
        return run
    except duckdb.Error as exc:
        _abandon(con, work_dir)
        if duckdb_engine.interrupted(exc):
            raise KeyboardInterrupt from None
        raise IntRulesError(f"population run failed in DuckDB: {exc}") from exc
    except BaseException:
        _abandon(con, work_dir)
        raise


def _abandon(con: duckdb.DuckDBPyConnection, work_dir: Path | None) -> None:
    con.close()
    if work_dir is not None:
        shutil.rmtree(work_dir, ignore_errors=True)


def _results(con: duckdb.DuckDBPyConnection, compiled: CompiledPopulation,
             result_facts: Sequence[str]) -> None:
    """``__res`` (one row per assessed patient, keys into the per-mask and per-signature
    tables, and the ``result_facts`` columns of ``__cm``) and the ``results`` view."""
    kept = "".join(f", c.{fact_column(n)}" for n in result_facts)
    mcols = ", ".join(f"m{k}" for k in range(mask_columns(compiled)))
    # One row per assessed patient in input order, holding keys into the per-mask and
    # per-signature tables and the result facts: sorting this narrow table is cheap, and the
    # outputs then stream it in order past the one row of lists, looked up by index. (Joining
    # each patient to their mask's row instead keeps no order, and sorting the wide rows
    # afterwards holds them all in memory: 3.4 GiB at 1.6 million people.)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __res AS
        SELECT p.pid, p.patient_id, p.practice, p.neighbourhood, p.gp_system, p.sex,
               CAST({age_sql(compiled.as_of, 'p.dob')} AS INTEGER) AS age, p.dod AS date_of_death,
               w.pw_state AS pathway_state, w.pw_entered AS pathway_entered, p.rejected_rows,
               d.mask_idx, r.sig_idx{kept}
        FROM pt p JOIN pw w USING (pid) JOIN __cm c USING (pid)
        JOIN __rdim d USING ({mcols}) JOIN __pw_res r ON r.sig = w.pw_sig
        WHERE d.__conflict IS NULL
        ORDER BY p.pid""")
    con.execute(f"CREATE OR REPLACE TEMP VIEW results AS {_results_sql(compiled, False)}")


class _ResultColumns(NamedTuple):
    """The results' columns (see :func:`_result_columns`)."""

    cols: list[str]  # each column's expression, over __res ``b`` and the lists ``d`` and ``r``
    by_mask: list[str]  # lists of ``__rdim`` by mask
    by_sig: list[str]  # lists of ``__pw_res`` by signature
    neutralised: list[str]  # the text columns neutralised for spreadsheets
    sources: list[tuple[str, str]]  # each column's name and where it is read: b, d or r


def _result_columns(compiled: CompiledPopulation, text: bool, codes: bool = True
                    ) -> _ResultColumns:
    """The columns of the results (:class:`_ResultColumns`; ``text``: lists as ``a; b``
    strings, for CSV, every text cell neutralised once per mask or signature (see csvsafe),
    not once per patient; ``codes``: with the pathway codes that may be recorded next, which
    the output files leave out: they follow from the state and are the same for everyone in
    it)."""
    cols: list[str] = []
    by_mask: list[str] = []
    by_sig: list[str] = []
    neutralised: list[str] = []
    sources: list[tuple[str, str]] = []

    def own(*names: str) -> None:
        cols.extend(f"b.{name}" for name in names)
        sources.extend((name, "b") for name in names)

    def cell(src: str, name: str, is_text: bool) -> str:
        if text and is_text:
            neutralised.append(name)
            return neutralise_sql(src)
        return src

    def mask(src: str, name: str, is_text: bool) -> None:
        by_mask.append(f"list({cell(src, name, is_text)} ORDER BY mask_idx) AS {name}")
        cols.append(f"d.{name}[b.mask_idx] AS {name}")
        sources.append((name, "d"))

    def sig(src: str, name: str) -> None:
        by_sig.append(f"list({cell(src, name, True)} ORDER BY sig_idx) AS {name}")
        cols.append(f"r.{name}[b.sig_idx] AS {name}")
        sources.append((name, "r"))

    own("patient_id", "practice", "neighbourhood", "gp_system", "sex", "age", "date_of_death")
    for rs in compiled.rulesets:
        for key, otype in rs.outputs.items():
            col = output_column(rs.id, key)
            joined = text and rs.hit_policy == "collect"
            mask(f"{col}__text" if joined else col, col, joined or otype != "bool")
    own("pathway_state", "pathway_entered")
    suffix = "_text" if text else ""
    sig(f"next_steps{suffix}", "pathway_next_steps")
    if codes:
        sig(f"next_codes{suffix}", "pathway_next_codes")
    sig(f"finding_ids{suffix}", "pathway_findings")
    mask(f"rule_ids{suffix}", "rule_ids", True)
    own("rejected_rows")
    return _ResultColumns(cols, by_mask, by_sig, neutralised, sources)


def _results_sql(compiled: CompiledPopulation, text: bool, extra: str = "",
                 codes: bool = True) -> str:
    """The results, one row per assessed patient in input order (``b.pid`` first)."""
    cols, by_mask, by_sig, _neutralised, _sources = _result_columns(compiled, text, codes)
    return (f"WITH d AS (SELECT {', '.join(by_mask)} FROM __rdim), "
            f"r AS (SELECT {', '.join(by_sig)} FROM __pw_res) "
            f"SELECT b.pid, {', '.join(cols)}{extra} FROM __res b, d, r")


def mask_columns_sql(run: PopulationRun) -> str:
    """The mask columns joining ``__cm`` (or ``assessed``) to ``__rdim``."""
    return ", ".join(f"m{k}" for k in range(mask_columns(run.compiled)))


def _rejects_out(con: duckdb.DuckDBPyConnection, loaded: LoadResult) -> None:
    arrow_table(con, "__files", pa.table({
        "file_idx": pa.array(list(range(len(loaded.files))), pa.int32()),
        "file": pa.array([f.shown for f in loaded.files], pa.string())}))
    con.execute("""
        CREATE OR REPLACE TEMP TABLE rejects_out AS
        SELECT r.tbl, COALESCE(f.file, '(rules)') AS file, r.line AS row, r.patient_id,
               r.reason
        FROM rejects r LEFT JOIN __files f USING (file_idx)""")


# -- records ----------------------------------------------------------------------------------


def run_tables_only(data_dir: Path, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A connection with ``data_dir``'s tables read and checked (no rules run)."""
    con = connect(threads)
    try:
        load_tables(con, data_dir)
    except BaseException:
        con.close()
        raise
    return con


def records_from_tables(con: duckdb.DuckDBPyConnection,
                        patient_ids: Sequence[str] | None = None) -> list[PatientRecord]:
    """The accepted patients of a loaded connection as :class:`PatientRecord` objects, with
    every accepted row in input order: the record the reference engine would be given."""
    from ..record import PatientRecord

    where = ""
    pwhere = ""
    if patient_ids is not None:
        arrow_table(con, "__want", pa.table({"patient_id": pa.array(list(patient_ids),
                                                                       pa.string())}))
        where = "WHERE pid IN (SELECT pid FROM pt JOIN __want USING (patient_id))"
        pwhere = "WHERE patient_id IN (SELECT patient_id FROM __want)"
    people = _rows(con, f"SELECT * FROM pt {pwhere} ORDER BY pid")
    by_pid: dict[int, dict[str, Any]] = {}
    for p in people:
        dob: dt.date = p["dob"]
        by_pid[p["pid"]] = {
            "patient_id": p["patient_id"],
            "date_of_birth": dob.isoformat()[:7] if p["birth_precision"] == "month"
            else dob.isoformat(),
            "sex": p["sex"], "practice": p["practice"], "neighbourhood": p["neighbourhood"],
            "gp_system": p["gp_system"], "date_of_death": p["dod"],
            "events": [], "admissions": [], "risk_scores": [], "monitoring": [],
        }
    for r in _rows(con, f"SELECT pid, d, code, value, is_problem "
                        f"FROM __rows_ev {where} ORDER BY seq"):
        by_pid[r["pid"]]["events"].append({"code": r["code"], "date": r["d"],
                                           "value": r["value"], "is_problem": r["is_problem"]})
    for r in _rows(con, f"SELECT * FROM __rows_adm {where} ORDER BY seq"):
        by_pid[r["pid"]]["admissions"].append({"admitted": r["admitted"],
                                               "discharged": r["discharged"],
                                               "emergency": r["emergency"]})
    for r in _rows(con, f"SELECT * FROM __rows_rs {where} ORDER BY seq"):
        by_pid[r["pid"]]["risk_scores"].append({"date": r["d"], "value": r["value"],
                                                "source": r["source"]})
    for r in _rows(con, f"SELECT * FROM __rows_mon {where} ORDER BY seq"):
        by_pid[r["pid"]]["monitoring"].append({"date": r["d"], "kind": r["kind"],
                                               "measure": r["measure"], "value": r["value"]})
    return [PatientRecord.from_dict(d) for d in by_pid.values()]


# -- writing ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _one_thread(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """DuckDB on one thread meanwhile. For the results, one row per patient in order: on
    several threads each holds its rows until the ones before them are written (at 1.6 million
    people 2.4 GiB at the peak against 1.7 GiB, for 15% less wall time and more CPU time)."""
    threads = int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])
    con.execute("SET threads = 1")
    try:
        yield
    finally:
        con.execute(f"SET threads = {threads}")


#: Rows per batch (and per row group) of ``results.parquet``: DuckDB's own row group size.
RESULTS_BATCH_ROWS = 122_880
#: DuckDB's own zstd level.
RESULTS_ZSTD_LEVEL = 3
#: The results' columns written without a dictionary: one value per row, so a dictionary only
#: adds to the file (2.9 MB against 0.6 MB at 1.6 million people).
RESULTS_PLAIN_COLUMNS = frozenset({"patient_id"})


def _gathered_results(con: duckdb.DuckDBPyConnection, compiled: CompiledPopulation,
                      book: Rulebook, worklists: Worklists | None, extra: str
                      ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The rows of ``results.parquet`` in order, as the query of :func:`_results_sql` under
    :func:`~.columns.results_select` gives them (``extra``: its extra columns, over ``b``),
    made in three parts: each output column once per distinct mask (from the lists ``d``, one
    row per element) and once per signature (``r``), then gathered for each patient's row of
    ``__res`` by its ``mask_idx`` and ``sig_idx`` (``d.x[b.mask_idx]``: element ``mask_idx``,
    from 1) in Arrow. Returns the file's schema and its batches (``__res`` is read as it lies:
    on one thread, so in order)."""
    cols, by_mask, by_sig, _neutralised, sources = _result_columns(compiled, False, False)
    own = [c for c, (_name, src) in zip(cols, sources, strict=True) if src == "b"]
    masks = [name for name, src in sources if src == "d"]
    sigs = [name for name, src in sources if src == "r"]
    per_mask = con.sql(results_select(
        "SELECT NULL AS pid, " + ", ".join(f"unnest(d.{n}) AS {n}" for n in masks)
        + f" FROM (SELECT {', '.join(by_mask)} FROM __rdim) d", book, worklists, False)
                       ).to_arrow_table()
    per_sig = con.sql("SELECT " + ", ".join(f"unnest(r.{n}) AS {n}" for n in sigs)
                      + f" FROM (SELECT {', '.join(by_sig)} FROM __pw_res) r").to_arrow_table()
    reader = con.sql(f"SELECT {', '.join(own)}{extra}, b.mask_idx AS __mask_idx, "
                     "b.sig_idx AS __sig_idx FROM __res b").to_arrow_reader(RESULTS_BATCH_ROWS)
    base = reader.schema
    mask_values = {n: per_mask.column(n).combine_chunks() for n in masks}
    sig_values = {n: per_sig.column(n).combine_chunks() for n in sigs}
    # The file's columns: the outputs in their places, the extra columns after the last.
    order = [*sources, *((name, "b") for name in base.names[len(own):-2])]
    fields = [base.field(name) if src == "b" else
              (per_mask if src == "d" else per_sig).schema.field(name) for name, src in order]
    schema = pa.schema(fields)

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            at_mask = pc.subtract(batch.column("__mask_idx"), 1)
            at_sig = pc.subtract(batch.column("__sig_idx"), 1)
            yield pa.RecordBatch.from_arrays(
                [batch.column(name) if src == "b" else
                 mask_values[name].take(at_mask) if src == "d" else
                 sig_values[name].take(at_sig) for name, src in order], schema=schema)

    return schema, batches()


def _parquet_in_order(schema: pa.Schema, batches: Iterator[pa.RecordBatch], path: Path,
                      metadata: Mapping[str, str]) -> None:
    """``batches`` into the Parquet file ``path``, in order, with ``metadata`` as its
    key-value metadata: each batch is made (DuckDB on one thread, so in order, and Arrow)
    while pyarrow encodes and writes the batch before on a thread of its own. Two cores serve
    one ordered file, and at most two batches are held at once (DuckDB writing it on two
    threads instead holds each thread's rows until the ones before them are written: 0.7 GiB
    more at 1.6 million people)."""
    dictionary = [name for name in schema.names if name not in RESULTS_PLAIN_COLUMNS]
    with (ThreadPoolExecutor(max_workers=1, thread_name_prefix="int-rules-parquet") as pool,
          pq.ParquetWriter(path, schema, compression="zstd",
                           compression_level=RESULTS_ZSTD_LEVEL, use_dictionary=dictionary,
                           store_schema=False) as writer):
        pending: Future[None] | None = None
        for batch in batches:
            if pending is not None:
                pending.result()
            pending = pool.submit(writer.write_batch, batch)
        if pending is not None:
            pending.result()
        writer.add_key_value_metadata(dict(metadata))


def write_outputs(run: PopulationRun, out_dir: Path, with_facts: bool = False,
                  worklists: Worklists | None = None, run_id: str = "",
                  results_csv: bool = False) -> dict[str, Path]:
    """Write ``results.parquet``, findings and rejects (CSV), with ``results_csv`` the results
    as CSV too and, ``with_facts``, every fact value (Parquet) into ``out_dir``. Returns the
    paths written, by name. Every file carries the rulebook's sha256 and status: Parquet in its
    key-value metadata with every ruleset's version and status; CSV in the columns
    ``rulebook_sha256`` and ``rulebook_status`` (``draft`` while any ruleset is a draft; the
    sha256 names the exact versions), with the ``run_id`` and ``as_of`` date (Parquet:
    metadata keys ``run_id`` and ``as_of``). CSV text cells that a spreadsheet would take for
    a formula are neutralised (see csvsafe).

    With ``worklists``, the results carry its fact columns: the run must have kept those facts
    (``run_population(result_facts=...)``, as :func:`~.run.population_report` does)."""
    if worklists is not None:
        missing = [f for f in worklists.facts if f not in run.result_facts]
        if missing:
            raise ValueError("write_outputs: the worklists' fact columns are not in the run's "
                             f"results (run_population(result_facts=...)): "
                             f"{', '.join(missing)}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PopulationInputError(f"cannot create output directory '{out_dir}': "
                                   f"{exc.strerror}") from None
    con = run.con
    prov = provenance(run.book)
    meta = {"int_rules_provenance": json.dumps(prov), "as_of": run.as_of.isoformat(),
            "run_id": run_id}
    meta_sql = ", ".join(f"{literal(k)}: {literal(v)}" for k, v in meta.items())
    sha = literal(run.book.sha256)
    paths: dict[str, Path] = {}

    def copy(name: str, sql: str, filename: str, neutralised: Sequence[str] = (),
             in_order: bool = False) -> None:
        """``sql`` into ``filename``; ``in_order``: a scan of ``__res`` in order, made on
        one thread (see :func:`_one_thread`)."""
        path = out_dir / filename
        if filename.endswith(".parquet"):
            opts = f"FORMAT parquet, COMPRESSION zstd, KV_METADATA {{{meta_sql}}}"
        else:
            opts = "FORMAT csv, HEADER true"
            sql = safe_csv_select(con, sql, neutralised)
        try:
            with _one_thread(con) if in_order else contextlib.nullcontext():
                con.execute(f"COPY ({sql}) TO {literal(str(path))} ({opts})")
        except duckdb.Error as exc:
            raise PopulationInputError(f"cannot write {path}: {exc}") from None
        paths[name] = path

    # In input order: __res is sorted and read by a scan; the lists are looked up by index,
    # and the worklists' fact columns are __res's own (no join, so no reordering).
    status = literal(overall_status(run.book))
    stamp = (f"{sha} AS rulebook_sha256, {status} AS rulebook_status, {literal(run_id)} AS "
             f"run_id, DATE {literal(run.as_of.isoformat())} AS as_of")
    extra = f"{worklist_fact_columns(worklists)}, {stamp}"
    # Single-valued outputs as scalars, and the worklists' fact columns (see .columns).
    path = out_dir / "results.parquet"
    try:
        with _one_thread(con):
            _parquet_in_order(*_gathered_results(con, run.compiled, run.book, worklists, extra),
                              path, meta)
    except (duckdb.Error, OSError, pa.ArrowException) as exc:
        raise PopulationInputError(f"cannot write {path}: {exc}") from None
    paths["results_parquet"] = path
    if results_csv:
        # The outputs' text cells were neutralised once per distinct mask or signature; the
        # rest (the patient's own columns, the worklist facts) once per patient.
        copy("results_csv", results_select(_results_sql(run.compiled, True, extra, False),
                                           run.book, worklists, True), "results.csv",
             _result_columns(run.compiled, True, False).neutralised, in_order=True)
    if with_facts:
        fact_cols = ", ".join(f"{fact_column(n)} AS {n}" for n in run.book.fact_order)
        copy("facts_parquet", f"SELECT patient_id, {fact_cols} FROM facts_out ORDER BY pid",
             "facts.parquet")
    copy("findings_csv", f"SELECT *, {stamp} FROM findings ORDER BY {FINDINGS_ORDER}",
         "findings.csv")
    copy("rejects_csv", f"SELECT tbl AS \"table\", file, row, patient_id, reason, {stamp} "
                        f"FROM rejects_out ORDER BY {REJECTS_ORDER}", "rejects.csv")
    return paths


if TYPE_CHECKING:  # mypy checks that run_population is a PopulationEngine
    from ..engines import PopulationEngine

    _IS_A_POPULATION_ENGINE: PopulationEngine = run_population
