"""The Spark engine gives the DuckDB engine's outputs, byte for byte, from the CLI and from
Python (files, Spark DataFrames, table names); without PySpark it says how to install it.

The spec suite (tests/spec/) and the conformance property run on Spark too; every bundled
scenario runs through it in tests/test_population_scenarios.py.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

import int_rules
from int_rules.cli import main
from int_rules.population.engine import run_population
from int_rules.synth import DEFAULT_AS_OF, write_population

BOOK = int_rules.load()
#: Outputs that carry the run's timings or the engine's name, compared without them.
_RUN_RECORDS = {"run_summary.json", "report.html"}
#: Compared as data (values and types): Parquet's "required" flag follows each engine's own
#: knowledge of which columns can hold no nulls, and the engines know different things.
_AS_DATA = {"facts.parquet"}


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic extract like the demo's, smaller (the demo's generator and seed)."""
    data = tmp_path_factory.mktemp("extract")
    write_population(data, 1500, 1, DEFAULT_AS_OF, "csv", BOOK)
    return data


def _population_cli(data: Path, out: Path, *extra: str) -> int:
    return main(["population", str(data), "--as-of", DEFAULT_AS_OF.isoformat(), "--out",
                 str(out), "--quiet", "--with-facts", "--results-csv", *extra])


def _summary_without_run_facts(path: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    summary.pop("timings_s", None)
    summary["engine"].pop("name")
    return summary


def _report_without_timings(path: Path) -> str:
    """The report with its timings and its own folder's name left out."""
    text = path.read_text(encoding="utf-8").replace(str(path.parent), "OUT")
    return re.sub(r"timings \(s\): [^<]*", "", text)


@pytest.mark.spark
def test_the_demo_extract_gives_duckdbs_outputs_byte_for_byte(
        spark_session: Any, extract: Path, tmp_path: Path) -> None:
    assert _population_cli(extract, tmp_path / "duckdb") == 0
    assert _population_cli(extract, tmp_path / "spark", "--engine", "spark") == 0
    duck = {p.name: p for p in (tmp_path / "duckdb").iterdir()}
    spark = {p.name: p for p in (tmp_path / "spark").iterdir()}
    assert sorted(duck) == sorted(spark)
    assert {"results.csv", "results.parquet", "facts.parquet", "findings.csv", "rejects.csv",
            "dashboard.csv", "outcomes.csv"} <= set(duck)
    for name in sorted(set(duck) - _RUN_RECORDS - _AS_DATA):
        assert duck[name].read_bytes() == spark[name].read_bytes(), name
    import pyarrow.parquet as pq

    for name in sorted(_AS_DATA):
        want_table, got_table = pq.read_table(duck[name]), pq.read_table(spark[name])
        assert [(f.name, f.type) for f in got_table.schema] == \
            [(f.name, f.type) for f in want_table.schema]
        assert got_table.to_pylist() == want_table.to_pylist()
        assert got_table.schema.metadata == want_table.schema.metadata
    assert _report_without_timings(spark["report.html"]) == \
        _report_without_timings(duck["report.html"])
    want = _summary_without_run_facts(duck["run_summary.json"])
    got = _summary_without_run_facts(spark["run_summary.json"])
    assert got == want
    assert want["patients"]["all_accounted_for"] is True
    assert json.loads(spark["run_summary.json"].read_text())["engine"]["name"] == "spark"
    results = (tmp_path / "spark" / "results.csv").read_text(encoding="utf-8").splitlines()
    assert len(results) > 1000  # a header and a row per assessed patient


@pytest.mark.spark
def test_spark_dataframes_and_table_names_give_the_files_results(
        spark_session: Any, extract: Path) -> None:
    as_of = DEFAULT_AS_OF
    want = run_population(BOOK, extract, as_of)
    frames = {p.name[: -len(".csv")]: spark_session.read.option("header", True).csv(str(p))
              for p in sorted(extract.glob("*.csv"))}
    frames["patients"].createOrReplaceTempView("int_rules_test_patients")
    tables: dict[str, object] = {**frames, "patients": "int_rules_test_patients"}
    got = run_population(BOOK, tables, as_of, spark=spark_session)
    try:
        assert got.engine == "spark"
        assert got.result_rows() == want.result_rows()
        assert got.fact_rows() == want.fact_rows()
        assert got.finding_rows() == want.finding_rows()
        assert got.summary()["patients"] == want.summary()["patients"]
    finally:
        got.close()
        want.close()
    assert got.work_dir is not None and not got.work_dir.exists()


def test_a_mix_of_spark_and_arrow_tables_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    from int_rules.engines.spark import tables_to_parquet

    class FakeSparkFrame:
        pass

    FakeSparkFrame.__module__ = "pyspark.sql.dataframe"
    with pytest.raises(TypeError, match="clinical_events are neither"):
        tables_to_parquet(None, {"patients": FakeSparkFrame(),  # type: ignore[arg-type]
                                 "clinical_events": object()}, tmp_path)


def test_without_pyspark_the_cli_says_how_to_install_it(extract: Path, tmp_path: Path) -> None:
    code = ("import sys; sys.modules['pyspark'] = None; from int_rules.cli import main; "
            f"sys.exit(main(['population', {str(extract)!r}, '--as-of', '2026-03-31', "
            f"'--out', {str(tmp_path / 'out')!r}, '--engine', 'spark', '--quiet']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "pip install 'int_rules[spark]'" in done.stderr
    assert not (tmp_path / "out").exists()


def test_spark_master_needs_the_spark_engine(extract: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert _population_cli(extract, tmp_path / "out", "--spark-master", "local[1]") == 2
    assert "--engine spark" in capsys.readouterr().err


def test_the_engine_is_checked(extract: Path) -> None:
    with pytest.raises(ValueError, match="engine must be 'duckdb' or 'spark'"):
        run_population(BOOK, extract, dt.date(2026, 3, 31), engine="sparkle")


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "databricks"


@pytest.mark.spark
def test_the_databricks_example_runs_locally(spark_session: Any, extract: Path,
                                             tmp_path: Path) -> None:
    import runpy

    example = runpy.run_path(str(EXAMPLE / "assess_population.py"))
    example["main"](["--as-of", DEFAULT_AS_OF.isoformat(), "--files", str(extract),
                     "--out", str(tmp_path / "out")])
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"results.parquet", "findings.csv", "rejects.csv"} <= written
    want = run_population(BOOK, extract, DEFAULT_AS_OF)
    try:
        rows = duckdb.sql("SELECT count(*) FROM read_parquet("
                          f"'{tmp_path / 'out' / 'results.parquet'}')").fetchall()[0][0]
        assert rows == want.summary()["patients"]["in_results"]
    finally:
        want.close()


def test_the_databricks_job_passes_arguments_the_cli_accepts() -> None:
    from int_rules import cli

    if not cli._EXTRA_COMMANDS:
        cli._register_extras()
    job = json.loads((EXAMPLE / "job.json").read_text(encoding="utf-8"))
    task = job["tasks"][0]["python_wheel_task"]
    assert task["package_name"] == "int_rules"
    import tomllib

    scripts = tomllib.loads((EXAMPLE.parent.parent / "pyproject.toml").read_text())[
        "project"]["scripts"]
    assert task["entry_point"] in scripts
    params = [p.replace("{{job.start_time.iso_date}}", "2026-03-31") for p in task["parameters"]]
    args = cli.build_parser().parse_args(params)
    assert args.engine == "spark"
    assert args.as_of == dt.date(2026, 3, 31)
