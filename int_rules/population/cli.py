"""The ``population``, ``synth`` and ``demo`` subcommands of ``int-rules``.

Each reports bad input as one message on stderr and exit code 2 (through
:class:`~int_rules.errors.IntRulesError`), shows a progress bar on stderr unless ``--quiet``,
and prints where its outputs are on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import IntRulesError

__all__ = ["register"]

EXIT_OK = 0
EXIT_REJECTS = 1
DEFAULT_DEMO_DIR = Path("int-rules-demo")
DEFAULT_DEMO_PATIENTS = 20_000


class CliInputError(IntRulesError):
    """A command-line value that cannot be used."""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


@contextmanager
def _progress(quiet: bool, what: str) -> Iterator[Callable[[str, float], None]]:
    """A rich progress bar on stderr (nothing when ``quiet``), fed (message, share done)."""
    if quiet:
        yield lambda _m, _f: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[step]}"), console=console, transient=True) as bar:
        task = bar.add_task(what, total=1.0, step="")

        def update(message: str, done: float) -> None:
            bar.update(task, completed=max(0.0, min(1.0, done)), step=message)

        yield update


def _load_book(args: argparse.Namespace) -> Any:
    from ..rulebook import load

    return load(args.rules, args.params)


def _rulebook_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", metavar="DIR", type=Path, default=None,
                   help="rulebook directory (default: the bundled rulesets/)")
    p.add_argument("--params", metavar="FILE", type=Path, default=None,
                   help="an INT's parameter overrides (YAML; see docs/language.md)")


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=_positive, default=None, metavar="N",
                   help="DuckDB worker threads (default: one per CPU core)")
    p.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="DuckDB memory limit, e.g. 6GB (default: 80%% of RAM); beyond it "
                        "DuckDB spills to a temporary directory")


def _print_report(result: Any, quiet: bool) -> None:
    s = result.summary
    pats = s["patients"]
    if not quiet:
        print(f"{pats['read']:,} patients read: {pats['in_results']:,} assessed, "
              f"{pats['in_rejects']:,} in the rejects; {s['rejected_rows']:,} rejected rows; "
              f"{s['findings']:,} data-quality findings.")
        for name in ("results_csv", "results_parquet", "findings_csv", "dashboard_csv",
                     "rejects_csv", "run_summary_json", "facts_parquet"):
            if name in result.files:
                print(f"  {result.files[name]}")
    print(f"Report: {result.report.resolve()}")


def _cmd_population(args: argparse.Namespace) -> int:
    from .run import population_report

    book = _load_book(args)
    data_dir = args.data_dir
    if args.practices is not None and not args.fhir:
        raise CliInputError("--practices is for a FHIR export: give --fhir too")
    with _progress(args.quiet, "population") as progress:
        if args.fhir:
            from ..fhir.bulk import read_fhir_for_population

            data_dir = read_fhir_for_population(args.data_dir, args.out, args.practices,
                                                progress, args.threads, args.quiet,
                                                args.memory_limit)
        result = population_report(book, data_dir, args.as_of, args.out, progress=progress,
                                   with_facts=args.with_facts, threads=args.threads,
                                   memory_limit=args.memory_limit)
    _print_report(result, args.quiet)
    if args.fail_on_rejects and result.summary["rejected_rows"]:
        print(f"int-rules: {result.summary['rejected_rows']:,} rows were rejected "
              "(--fail-on-rejects)", file=sys.stderr)
        return EXIT_REJECTS
    return EXIT_OK


def _cmd_synth(args: argparse.Namespace) -> int:
    from ..synth import write_population

    book = _load_book(args)
    with _progress(args.quiet, "synth") as progress:
        summary = write_population(args.out, args.patients, args.seed, args.as_of, args.format,
                                   book, progress=lambda m: progress(m, 0.5),
                                   threads=args.threads)
    rows = ", ".join(f"{name} {n:,}" for name, n in summary.rows.items())
    print(f"Wrote {summary.patients:,} synthetic patients (seed {summary.seed}, histories up to "
          f"{summary.as_of.isoformat()}) to {Path(args.out).resolve()}: {rows}.")
    print(f"Next: int-rules population {args.out} --as-of {summary.as_of.isoformat()} "
          f"--out {args.out}-report")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..synth import DEFAULT_AS_OF, write_population
    from .run import population_report

    book = _load_book(args)
    data = args.out / "data"
    report = args.out / "report"
    with _progress(args.quiet, "demo") as progress:
        progress(f"making {args.patients:,} synthetic patients", 0.0)
        write_population(data, args.patients, args.seed, DEFAULT_AS_OF, "csv", book,
                         threads=args.threads)
        result = population_report(book, data, DEFAULT_AS_OF, report,
                                   progress=lambda m, f: progress(m, 0.3 + 0.7 * f),
                                   threads=args.threads)
    if not args.quiet:
        print(f"Synthetic extract ({args.patients:,} patients, as of "
              f"{DEFAULT_AS_OF.isoformat()}): {data.resolve()}")
    _print_report(result, args.quiet)
    if not args.quiet:
        print("Open the report in a browser (it works offline). To run your own extract: "
              "int-rules population DATA_DIR --as-of YYYY-MM-DD --out OUT_DIR")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``population``, ``synth`` and ``demo`` to the ``int-rules`` command line."""
    p = sub.add_parser(
        "population", help="assess a whole GP extract (CSV/Parquet tables) as of a date",
        description="Assess every patient in DATA_DIR as of a date on DuckDB and write, into "
                    "OUT_DIR: results.csv and results.parquet (one row per patient: cohorts, "
                    "pathway state, next steps, review reasons, step-down, monitoring level, "
                    "finding ids), findings.csv (one row per data-quality finding), "
                    "dashboard.csv (the INT development dashboard per neighbourhood), "
                    "report.html (one self-contained file with charts), rejects.csv (every "
                    "row that could not be used, with file, row and reason) and "
                    "run_summary.json. DATA_DIR holds patients.csv and clinical_events.csv "
                    "(required) and admissions.csv, risk_scores.csv, monitoring.csv (optional); "
                    ".parquet files or folders of files also work. See docs/population.md.",
    )
    p.add_argument("data_dir", type=Path, metavar="DATA_DIR",
                   help="folder holding the input tables")
    p.add_argument("--as-of", type=_date, required=True, metavar="YYYY-MM-DD",
                   help="the date to assess as of; events after it are ignored (and reported)")
    p.add_argument("--out", type=Path, required=True, metavar="OUT_DIR",
                   help="folder for the outputs (created if needed; our files are replaced)")
    p.add_argument("--fhir", action="store_true",
                   help="DATA_DIR is a FHIR Bulk Data export (Patient.ndjson, Condition.ndjson, "
                        "Observation.ndjson, Encounter.ndjson, RiskAssessment.ndjson, "
                        "Flag.ndjson, Organization.ndjson; .ndjson.gz too): see docs/fhir.md")
    p.add_argument("--practices", type=Path, default=None, metavar="FILE",
                   help="with --fhir: CSV of practice,neighbourhood,gp_system (FHIR carries "
                        "neither; default DATA_DIR/practices.csv when present)")
    p.add_argument("--with-facts", action="store_true",
                   help="also write facts.parquet: every fact's value for every patient")
    p.add_argument("--fail-on-rejects", action="store_true",
                   help="exit with code 1 when any row was rejected (outputs are still written)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or file list")
    _rulebook_args(p)
    _engine_args(p)
    p.set_defaults(func=_cmd_population)

    p = sub.add_parser(
        "synth", help="make a synthetic population (tables like a GP extract)",
        description="Write synthetic patients, clinical events, admissions, risk scores and "
                    "monitoring tables for the 22 neighbourhoods of the guide's supporting "
                    "information, with codes from the bundled codelists and caseload pathway "
                    "codes in valid and some invalid sequences. Same seed, same files. For "
                    "demos, tests and benchmarks: not real people.",
    )
    p.add_argument("--patients", type=_positive, required=True, metavar="N",
                   help="how many people (1.6 million takes a few minutes)")
    p.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default 1)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="folder to write the tables into")
    p.add_argument("--as-of", type=_date, default=None, metavar="YYYY-MM-DD",
                   help="the date histories run up to (default 2026-03-31)")
    p.add_argument("--format", choices=("csv", "parquet", "fhir"), default="csv",
                   help="file format (default csv; parquet is smaller and faster to read; fhir "
                        "writes the same people as a FHIR Bulk Data export, NDJSON: see "
                        "docs/fhir.md)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _rulebook_args(p)
    p.add_argument("--threads", type=_positive, default=None, metavar="N",
                   help="DuckDB worker threads (default: one per CPU core)")
    p.set_defaults(func=_cmd_synth_defaults)

    p = sub.add_parser(
        "demo", help="make a synthetic population and its population report in one go",
        description="The quickest look at what int-rules does for analysts: make a synthetic "
                    "population (default 20,000 people), run the population report on it with "
                    "the bundled rules, and print where the HTML report is.",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_DEMO_DIR, metavar="DIR",
                   help=f"folder for the data and the report (default ./{DEFAULT_DEMO_DIR})")
    p.add_argument("--patients", type=_positive, default=DEFAULT_DEMO_PATIENTS, metavar="N",
                   help=f"how many synthetic people (default {DEFAULT_DEMO_PATIENTS:,})")
    p.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default 1)")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print only where the report is")
    _rulebook_args(p)
    p.add_argument("--threads", type=_positive, default=None, metavar="N",
                   help="DuckDB worker threads (default: one per CPU core)")
    p.set_defaults(func=_cmd_demo)


def _cmd_synth_defaults(args: argparse.Namespace) -> int:
    if args.as_of is None:
        from ..synth import DEFAULT_AS_OF

        args.as_of = DEFAULT_AS_OF
    return _cmd_synth(args)
