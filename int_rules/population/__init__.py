"""Population runs for analysts: a whole GP extract assessed on DuckDB, as of one date.

* :mod:`.memory`: in-memory tables (pyarrow, pandas, polars) in, Arrow tables out:
  :func:`assess_tables`.
* :mod:`.tables`: the input tables (patients, clinical events, admissions, risk scores,
  monitoring), read from a directory of CSV or Parquet files; every row validated; bad rows to
  the rejects with file, row and reason.
* :mod:`.sql`: the rulebook's facts, conditions and hit policies compiled to DuckDB SQL.
* :mod:`.engine`: the run itself: facts per patient, the caseload pathway replayed in bulk,
  rules evaluated with their hit policies; :func:`run_population` is the entry point.
* :mod:`.dashboard`: the INT development dashboard per neighbourhood (``rulesets/dashboard.yaml``).
* :mod:`.report`: one self-contained HTML report (inline SVG charts; opens offline).
* :mod:`.run`: :func:`population_report`, from a data directory to every output.
* :mod:`.cli`: the ``population``, ``synth`` and ``demo`` subcommands.

The results equal the reference engine's patient by patient (``tests/test_population_*.py``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["TABLES", "PopulationInputError", "PopulationRun", "PopulationTables",
           "assess_tables", "population_report", "run_population"]

_LAZY = {
    "TABLES": "tables",
    "PopulationInputError": "tables",
    "PopulationRun": "engine",
    "PopulationTables": "memory",
    "assess_tables": "memory",
    "run_population": "engine",
    "population_report": "run",
}


def __getattr__(name: str) -> Any:
    # DuckDB loads only when something here is used (``int-rules --help`` stays quick).
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
