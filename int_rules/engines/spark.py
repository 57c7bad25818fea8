"""The Spark engine: the rule model evaluated over a whole population on Apache Spark.

It computes what grows with the extract, on Spark, from SQL compiled in Spark's dialect
(:func:`int_rules.engines.sql.compile_model` with :data:`~int_rules.engines.sql.SPARK`): the
items a fact reads, each patient's pathway signature, every fact (the same grouped aggregates,
level by level, as the DuckDB engine: :func:`~int_rules.engines.duckdb.fact_queries`), and
each patient's rule-condition mask (:func:`~int_rules.engines.duckdb.mask_sql`). What does not
grow with the extract is decided once, by the shared code, exactly as for DuckDB: the distinct
pathway signatures are replayed by the pathway itself
(:func:`~int_rules.engines.duckdb.replay_signatures`) and joined back on Spark, and the distinct
masks are resolved by the shared hit policies
(:func:`~int_rules.engines.duckdb.resolve_rules`).

The validated tables come from the population reader (:mod:`int_rules.population.tables`) on a
DuckDB connection; they go to Spark as Parquet in ``work_dir``, and the per-patient results
(``pw``, ``__psig``, ``facts``, ``__cm``) come back the same way, so neither side holds a whole
table in the driver's memory. The outputs are then laid out and written by the same code as a
DuckDB run, so the files are byte for byte the same. Only the SQL that DuckDB and Spark write
differently is written here: signatures (ordered lists), and one list index.

PySpark is an optional extra (``pip install 'int_rules[spark]'``, Java 17 or later);
:func:`require_pyspark` says how to install it when it is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow.parquet as pq

from ..errors import EngineUnavailableError
from . import duckdb as shared
from .sql import CompiledPopulation, literal

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from ..pathway import Pathway

__all__ = ["DEFAULT_MASTER", "INSTALL_HINT", "evaluate", "require_pyspark", "session",
           "tables_to_parquet"]

NAME = "spark"
DEFAULT_MASTER = "local[*]"
INSTALL_HINT = ("the Spark engine needs PySpark 4 and Java 17 or later: "
                "pip install 'int_rules[spark]' (and a Java 17 runtime, e.g. Debian's "
                "openjdk-17-jre-headless)")

#: The validated tables a run reads on Spark (those present), by their DuckDB names.
_INPUTS = ("pt", "ev", "adm", "rs", "mon", "__groups", "__pw_codes", "__rowaggs_ev")


def require_pyspark() -> None:
    """Raise :class:`~int_rules.errors.EngineUnavailableError` with the install command if
    PySpark cannot be imported."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise EngineUnavailableError(INSTALL_HINT) from None


def session(master: str = DEFAULT_MASTER, *, driver_memory: str | None = None,
            config: Mapping[str, str] | None = None) -> SparkSession:
    """The active Spark session (a Databricks notebook's or job's, as it is), or a new one on
    ``master``.

    A new session on a ``local[...]`` master binds the driver to 127.0.0.1, turns the web UI
    off and shuffles into as many partitions as cores. ``driver_memory`` (e.g. ``"4g"``)
    applies only when the JVM is started here. ``config`` adds or overrides Spark settings of
    a new session.
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        raise EngineUnavailableError("no Java runtime found (java is not on PATH and JAVA_HOME "
                                     "is unset); " + INSTALL_HINT)

    builder = SparkSession.builder.master(master).appName("int_rules")
    settings: dict[str, str] = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        # No _SUCCESS marker beside the Parquet parts the run reads back.
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }
    if master.startswith("local"):
        cores = master[len("local["):-1] if master.startswith("local[") else "1"
        partitions = str(os.cpu_count() or 2) if cores in ("*", "") else cores
        settings.update({"spark.driver.bindAddress": "127.0.0.1",
                         "spark.driver.host": "127.0.0.1",
                         "spark.sql.shuffle.partitions": partitions})
    if driver_memory:
        settings["spark.driver.memory"] = driver_memory
    settings.update(config or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:  # the JVM failed to start: say so in one line
        raise EngineUnavailableError(f"cannot start Spark ({master}): {exc}") from None


def _is_spark_frame(value: object) -> bool:
    return type(value).__module__.startswith("pyspark.")


def tables_to_parquet(spark: SparkSession, tables: Mapping[str, object],
                      folder: Path) -> Path | Mapping[str, object]:
    """Input tables given to a Spark run as Spark DataFrames or as names of tables the session
    can read, written as Parquet folders (``folder/<table>/part-*.parquet``) that the
    population reader validates like any extract; returns ``folder``. A mapping of in-memory
    tables (pyarrow, pandas, polars) is returned as it is."""
    spark_like = {name: value for name, value in tables.items()
                  if isinstance(value, str) or _is_spark_frame(value)}
    if not spark_like:
        return tables
    if len(spark_like) != len(tables):
        others = sorted(set(tables) - set(spark_like))
        raise TypeError(f"give every table as a Spark DataFrame or table name, or none: "
                        f"{', '.join(others)} are neither")
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in spark_like.items():
        frame: DataFrame = spark.table(value) if isinstance(value, str) else value  # type: ignore[assignment]
        frame.write.mode("overwrite").parquet(str(folder / name))
    return folder


def spark_errors() -> tuple[type[BaseException], ...]:
    """The exception types a failing Spark job raises in Python (to report them in one line)."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return (PySparkException, Py4JError)


def evaluate(con: duckdb.DuckDBPyConnection, compiled: CompiledPopulation, pathway: Pathway,
             info: shared.PathwayCodes, *, spark: SparkSession, work_dir: Path,
             keep_facts: Sequence[str] = (),
             finding_rulesets: Mapping[str, Mapping[str, str]] | None = None,
             lap: Callable[[str], None] = lambda _name: None,
             say: Callable[[str, float], None] = lambda _m, _f: None) -> shared.EngineRun:
    """Evaluate ``compiled`` (in the Spark dialect) over the validated tables on ``con``, on
    ``spark``; leave on ``con`` the tables a DuckDB run leaves
    (:func:`int_rules.engines.duckdb.evaluate`). ``work_dir`` holds the Parquet exchanged
    (a local folder for ``local`` masters; a path every executor reads on a cluster)."""
    if compiled.dialect.name != NAME:
        raise ValueError(f"the Spark engine needs SQL compiled for Spark, not "
                         f"{compiled.dialect.name}")
    unknown = [name for name in keep_facts if name not in compiled.facts]
    if unknown:
        raise ValueError(f"keep_facts: no such fact(s): {', '.join(unknown)}")
    inputs = work_dir / "in"
    outputs = work_dir / "out"
    views = _Views(spark)
    try:
        say("sending the tables to Spark", 0.45)
        rows_needed = any(compiled.items_at(level, "ev_all")
                          for level in range(2, compiled.max_level + 1))
        _send(con, views, inputs, (*_INPUTS, *(("__rows_ev",) if rows_needed else ())))
        say("replaying the caseload pathway", 0.5)
        views.sql("items", shared.items_sql(compiled), cache=True)
        signatures = _pathway(con, views, pathway, compiled, info, outputs)
        lap("pathway")
        say("computing facts", 0.6)
        queries = shared.fact_queries(compiled)
        for name, sql, level in queries.tables:
            say(f"computing facts (level {level})", 0.65)
            views.sql(name, sql, cache=True)
        facts = views.sql("facts", queries.facts, cache=True)
        _write(facts, outputs / _file("facts"))
        lap("facts")
        say("evaluating rules", 0.8)
        cm = views.sql("__cm", shared.mask_sql(compiled, keep_facts), cache=True)
        _write(cm, outputs / _file("__cm"))
        n_masks = shared.mask_columns(compiled)
        mcols = [f"m{k}" for k in range(n_masks)]
        distinct = [tuple(int(row[c]) for c in mcols)
                    for row in cm.select(*mcols).distinct().collect()]
    finally:
        views.drop()
    for name in ("facts", "__cm"):
        _receive(con, name, outputs / _file(name))
    shared.resolve_rules(con, compiled, distinct, finding_rulesets or {})
    shared.findings(con, n_masks)
    lap("rules")
    return shared.EngineRun(signatures, len(distinct))


def _send(con: duckdb.DuckDBPyConnection, views: _Views, folder: Path,
          names: Sequence[str]) -> None:
    """Each of the validated tables ``names`` on ``con`` (those present) written to Parquet and
    read as a Spark temp view of the same name."""
    folder.mkdir(parents=True, exist_ok=True)
    present = {str(r[0]) for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary UNION ALL "
        "SELECT view_name FROM duckdb_views() WHERE temporary").fetchall()}
    for name in names:
        if name not in present:
            continue
        path = folder / _file(name)
        con.execute(f"COPY (SELECT * FROM {name}) TO {literal(str(path))} (FORMAT parquet)")
        views.add(name, views.spark.read.parquet(str(path)))


def _file(name: str) -> str:
    """The Parquet file of table ``name``: Spark skips paths that begin with ``_`` or ``.``."""
    return f"t{name}.parquet"


class _Views:
    """The temp views (and cached frames) one run makes on the session, dropped when it ends:
    a session runs one population at a time."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self.names: list[str] = []
        self.cached: list[DataFrame] = []

    def add(self, name: str, frame: DataFrame, *, cache: bool = False) -> DataFrame:
        if cache:
            frame = frame.cache()
            self.cached.append(frame)
        frame.createOrReplaceTempView(name)
        self.names.append(name)
        return frame

    def sql(self, name: str, sql: str, *, cache: bool = False) -> DataFrame:
        return self.add(name, self.spark.sql(sql), cache=cache)

    def drop(self) -> None:
        for frame in self.cached:
            frame.unpersist()
        for name in self.names:
            self.spark.catalog.dropTempView(name)


def _write(frame: DataFrame, path: Path) -> None:
    frame.write.mode("overwrite").parquet(str(path))


def _receive(con: duckdb.DuckDBPyConnection, name: str, path: Path) -> None:
    """The Parquet parts Spark wrote at ``path`` as the DuckDB temp table ``name``, in pid
    order (the order a DuckDB run holds them in)."""
    parts = shared.file_path(path, "/*.parquet")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS "
                f"SELECT * FROM read_parquet({parts}) ORDER BY pid")


def _pathway(con: duckdb.DuckDBPyConnection, views: _Views, pathway: Pathway,
             compiled: CompiledPopulation, info: shared.PathwayCodes, outputs: Path) -> int:
    """``pw`` and ``__psig`` on Spark (and back on ``con``), ``__pw_res`` on both; returns how
    many distinct signatures were replayed. The signature is the DuckDB engine's, character
    for character: ``<day rank>:<code>`` in replay order, then ``|on`` when the last falls on
    as_of (see :mod:`int_rules.engines.duckdb`)."""
    a = compiled.dialect.literal(compiled.as_of)
    views.sql("__pe", shared.pathway_events_sql(compiled, info))
    psig = views.sql("__psig", f"""
        SELECT pid,
               concat(array_join(transform(ordered, x -> concat(CAST(x.dr AS STRING), ':',
                                                                 x.code)), ','),
                      CASE WHEN last_d = {a} THEN '|on' ELSE '' END) AS sig,
               transform(ordered, x -> x.d) AS dates
        FROM (SELECT pid, array_sort(collect_list(struct(d, prec, code, dr))) AS ordered,
                     max(d) AS last_d
              FROM (SELECT *, dense_rank() OVER (PARTITION BY pid ORDER BY d) AS dr FROM __pe)
              GROUP BY pid)""", cache=True)
    sigs = sorted(str(r[0]) for r in psig.select("sig").distinct().collect())
    table = shared.replay_signatures(pathway, compiled, sigs)
    shared.pathway_results(con, table)
    keep = ["sig", "state", "entered_pos", "n_findings", *(
        f"may_{name}" for name in compiled.may_record)]
    res_path = outputs / _file("__pw_res")
    res_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.select(keep), str(res_path))
    views.add("__pw_res", views.spark.read.parquet(str(res_path)))
    may_cols = "".join(f", r.may_{name} AS pw_may_{name}" for name in compiled.may_record)
    pw = views.sql("pw", f"""
        SELECT p.pid, r.sig AS pw_sig, r.state AS pw_state,
               element_at(s.dates, r.entered_pos) AS pw_entered,
               r.n_findings AS pw_n_findings{may_cols}
        FROM pt p LEFT JOIN __psig s ON p.pid = s.pid
        JOIN __pw_res r ON r.sig = COALESCE(s.sig, '')""", cache=True)
    _write(pw, outputs / _file("pw"))
    _write(psig, outputs / _file("__psig"))
    for name in ("pw", "__psig"):
        _receive(con, name, outputs / _file(name))
    return len(sigs)
