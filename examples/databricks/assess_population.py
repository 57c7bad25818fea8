"""Assess a population on Spark, from tables already in the workspace: a Databricks notebook
or job (a ``spark_python_task``), or locally on a Spark session of your own.

On Databricks the session is the notebook's or job's own; the input tables are Unity Catalog
tables (or any DataFrames) with the columns of docs/population.md, and the outputs go to a
Unity Catalog volume, which the driver writes like a local folder::

    python assess_population.py --as-of 2026-03-31 \\
        --table patients=main.int.patients --table clinical_events=main.int.clinical_events \\
        --table admissions=main.int.admissions --out /Volumes/main/int/outputs/2026-03-31

Locally (after ``pip install 'int_rules[spark]'`` and with Java 17), give a folder of CSV or
Parquet files instead of tables: ``python assess_population.py --as-of 2026-03-31
--files DATA_DIR --out OUT``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

import int_rules
from int_rules.engines.spark import session
from int_rules.population.engine import run_population, write_outputs


def assess(spark: Any, tables: dict[str, Any], as_of: dt.date, out: Path) -> dict[str, Path]:
    """Assess every patient of ``tables`` (table name -> Spark DataFrame or table name) as of
    ``as_of`` on ``spark``, write the outputs into ``out``, and return their paths."""
    book = int_rules.load()
    run = run_population(book, tables, as_of, spark=spark)
    try:
        summary = run.summary()
        print(f"{summary['patients']['read']:,} patients read, "
              f"{summary['patients']['in_results']:,} assessed; every patient accounted for: "
              f"{summary['patients']['all_accounted_for']}")
        return write_outputs(run, out)
    finally:
        run.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--as-of", type=dt.date.fromisoformat, required=True)
    p.add_argument("--table", action="append", default=[], metavar="NAME=TABLE",
                   help="an input table: e.g. patients=main.int.patients (repeat)")
    p.add_argument("--files", type=Path, default=None,
                   help="instead of tables: a folder of CSV or Parquet files")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    spark = session()
    if args.files is not None:
        tables: dict[str, Any] = {}
        for path in sorted(args.files.iterdir()):
            name, _, suffix = path.name.partition(".")
            if suffix == "csv":
                tables[name] = spark.read.option("header", True).csv(str(path))
            elif suffix == "parquet":
                tables[name] = spark.read.parquet(str(path))
    else:
        tables = dict(item.split("=", 1) for item in args.table)
    for name, path in assess(spark, tables, args.as_of, args.out).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
