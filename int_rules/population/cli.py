"""The ``population``, ``synth`` and ``demo`` subcommands of ``int-rules``.

Each reports bad input as one message on stderr and exit code 2 (through
:class:`~int_rules.errors.IntRulesError`), shows a progress bar on stderr unless ``--quiet``,
and prints where its outputs are on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
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
DEFAULT_DEMO_PATIENTS = 100_000


class CliInputError(IntRulesError):
    """A command-line value that cannot be used."""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", "")) if len(text) <= 20 else None
    except ValueError:
        value = None
    if value is None:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


#: --threads is at most this many per CPU core (DuckDB starts every thread it is given).
THREADS_PER_CORE = 4


def _threads(text: str) -> int:
    value = _positive(text)
    most = THREADS_PER_CORE * (os.cpu_count() or 1)
    if value > most:
        raise argparse.ArgumentTypeError(f"at most {most} on this machine "
                                         f"({THREADS_PER_CORE} per CPU core), got {value:,}")
    return value


@contextmanager
def _progress(quiet: bool, what: str) -> Iterator[Callable[[str, float], None]]:
    """A rich progress bar on stderr (nothing when ``quiet``), fed (message, share done)."""
    if quiet:
        yield lambda _m, _f: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    # Share done, time taken and (once the rate is known) the time left.
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                  TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                  TextColumn("{task.fields[step]}"), console=console, transient=True) as bar:
        task = bar.add_task(what, total=1.0, step="")

        def update(message: str, done: float) -> None:
            bar.update(task, completed=max(0.0, min(1.0, done)), step=message)

        yield update


@contextmanager
def _interrupts() -> Iterator[None]:
    """Ctrl-C (which DuckDB turns into an error inside a query) and SIGTERM become
    KeyboardInterrupt: the staging folder is removed on the way out, and the CLI prints
    ``interrupted`` and exits 130."""
    import duckdb

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous: Any = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread: leave SIGTERM alone
        previous = None
    try:
        yield
    except (duckdb.InterruptException, RuntimeError) as exc:
        # DuckDB reports Ctrl-C inside a query as a RuntimeError "Query interrupted".
        if isinstance(exc, duckdb.InterruptException) or "interrupted" in str(exc).lower():
            raise KeyboardInterrupt from None
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _load_book(args: argparse.Namespace) -> Any:
    from ..rulebook import load

    return load(args.rules, args.params)


def _rulebook_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", metavar="DIR", type=Path, default=None,
                   help="rulebook directory (default: the bundled rulesets/)")
    p.add_argument("--params", metavar="FILE", type=Path, default=None,
                   help="an INT's parameter overrides (YAML; see docs/language.md)")


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=_threads, default=None, metavar="N",
                   help="DuckDB worker threads (default: one per CPU core; at most "
                        f"{THREADS_PER_CORE} per core)")
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
    if args.spark_master is not None and args.engine != "spark":
        raise CliInputError("--spark-master is for the Spark engine: give --engine spark too")
    if args.engine == "spark":
        from ..engines.spark import require_pyspark

        require_pyspark()
    with _interrupts(), _progress(args.quiet, "population") as progress:
        if args.fhir:
            from ..fhir.bulk import read_fhir_for_population

            data_dir = read_fhir_for_population(args.data_dir, args.out, args.practices,
                                                progress, args.threads, args.quiet,
                                                args.memory_limit)
        result = population_report(book, data_dir, args.as_of, args.out, progress=progress,
                                   with_facts=args.with_facts, results_csv=args.results_csv,
                                   threads=args.threads, memory_limit=args.memory_limit,
                                   suppress_small_numbers=args.suppress_small_numbers,
                                   engine=args.engine, spark_master=args.spark_master)
    for warning in result.summary.get("warnings", ()):
        print(f"int-rules: warning: {warning}", file=sys.stderr)
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
                                   book, threads=args.threads, on_step=progress,
                                   enrolment_effect=args.enrolment_effect)
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
                         threads=args.threads,
                         on_step=lambda m, f: progress(m, 0.3 * f))
        result = population_report(book, data, DEFAULT_AS_OF, report,
                                   progress=lambda m, f: progress(m, 0.3 + 0.7 * f),
                                   threads=args.threads)
    if not args.quiet:
        print(f"Synthetic extract ({args.patients:,} patients, as of "
              f"{DEFAULT_AS_OF.isoformat()}): {data.resolve()}")
        print(_scale_note(result, args.patients))
    _print_report(result, args.quiet)
    if not args.quiet:
        print("Open the report in a browser (it works offline). To run your own extract: "
              "int-rules population DATA_DIR --as-of YYYY-MM-DD --out OUT_DIR")
    return EXIT_OK


def _cmd_worklist(args: argparse.Namespace) -> int:
    from .worklist import (
        WorklistError,
        load_worklists,
        run_metadata,
        worklists_from_results,
        write_worklists,
    )

    book = _load_book(args)
    wl = load_worklists(book)
    if wl is None:
        raise WorklistError(f"the rulebook in {book.directory} has no worklists.yaml")
    meta = run_metadata(args.run_dir)
    sha = meta.get("provenance", {}).get("sha256")
    if sha and sha != book.sha256:
        raise WorklistError(f"{args.run_dir} was made with rulebook {sha[:12]}..., not the one "
                            f"loaded ({book.sha256[:12]}...); pass the same --rules/--params")
    lists = worklists_from_results(args.run_dir, wl, args.neighbourhood, args.practice,
                                   args.list)
    scope = "; ".join([*(f"neighbourhood {n}" for n in args.neighbourhood),
                       *(f"practice {p}" for p in args.practice)]) or "everyone in the run"
    about = {
        "For": scope,
        "As of": str(meta.get("as_of", "")),
        "Population run": str(args.run_dir.resolve()),
        "Rulebook": f"{book.id} {book.version} (sha256 {book.sha256})",
        "Worklists": f"{wl.file} {wl.definition.version} ({wl.definition.status})",
        "Order": "highest predicted risk first, then most emergency admissions, then oldest",
        "Codes": "SNOMED CT codes are text cells: copy them as they are",
        "Confidential": "Patient-level lists for the care team only: not for sharing beyond it",
    }
    if any(r.get("status") != "approved" for r in meta.get("provenance", {}).get("rulesets", [])):
        about["Draft rules"] = ("Some rules are drafts not yet approved by clinical safety "
                                "review: check each person clinically before acting")
    out = args.out or args.run_dir / "worklists"
    stem = "worklists" + "".join(f"_{_slug(x)}" for x in [*args.neighbourhood, *args.practice])
    links: dict[str, str] = {}
    if args.theographs:
        wanted = list(dict.fromkeys(str(r["patient_id"]) for w in lists
                                    for r in w.rows[:args.theographs]))
        if wanted:
            with _progress(args.quiet, "theographs") as progress:
                pages = _theographs(book, args.run_dir, wanted, out / "theographs", progress)
            links = {pid: f"theographs/{path.name}" for pid, path in pages.items()}
        about["Theographs"] = (f"the first {args.theographs:,} people of each list link to "
                               "their theograph page (in the theographs folder beside this "
                               "file)")
    files = write_worklists(lists, wl, out, about, stem, links)
    for lid, n in files.counts.items():
        print(f"  {lid}: {n:,} {'person' if n == 1 else 'people'}")
    print(f"Worklists: {files.xlsx.resolve()} (and one CSV per list beside it)")
    return EXIT_OK


def _theographs(book: Any, run_dir: Path, patient_ids: list[str], out: Path,
                progress: Callable[[str, float], None]) -> dict[str, Path]:
    """Write a theograph page per patient of a population run; returns the page of each."""
    from ..theograph import load_theograph, theograph_page
    from .engine import records_from_tables, run_tables_only
    from .worklist import WorklistError, run_metadata

    meta = run_metadata(run_dir)
    if not meta:
        raise WorklistError(f"'{run_dir}' has no run_summary.json: run 'int-rules "
                            "population' into it first")
    data_dir = Path(meta["data_dir"])
    as_of = dt.date.fromisoformat(meta["as_of"])
    if not data_dir.is_dir():
        raise WorklistError(f"the run's data folder '{data_dir}' is no longer there (the "
                            "theograph is drawn from the input tables)")
    progress("reading the input tables", 0.1)
    con = run_tables_only(data_dir)
    try:
        progress("building the records", 0.6)
        records = records_from_tables(con, patient_ids)
    finally:
        con.close()
    found = {r.patient_id: r for r in records}
    missing = [p for p in patient_ids if p not in found]
    if missing:
        raise WorklistError(f"no accepted patient {', '.join(map(repr, missing))} in "
                            f"{data_dir} (see the run's rejects.csv)")
    out.mkdir(parents=True, exist_ok=True)
    note = ""
    if (data_dir / "synth.json").is_file():
        note = "Synthetic data (int-rules synth): not a real person."
    tg = load_theograph(book)
    pages: dict[str, Path] = {}
    for i, pid in enumerate(patient_ids):
        progress(f"drawing {i + 1:,} of {len(patient_ids):,}", 0.7 + 0.3 * i / len(patient_ids))
        record = found[pid]
        page = theograph_page(book, record, book.assess(record, as_of), tg, note=note)
        path = out / f"theograph_{_slug(pid)}.html"
        path.write_text(page, encoding="utf-8")
        pages[pid] = path
    return pages


def _cmd_theograph(args: argparse.Namespace) -> int:
    book = _load_book(args)
    with _progress(args.quiet, "theograph") as progress:
        pages = _theographs(book, args.run_dir, list(dict.fromkeys(args.patient_ids)),
                            args.out or args.run_dir / "theographs", progress)
    for path in pages.values():
        print(f"Theograph: {path.resolve()}")
    return EXIT_OK


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-").lower()


def _scale_note(result: Any, patients: int) -> str:
    """What scale a synthetic run is, and its caseloads scaled to the full synthetic ICS."""
    import csv

    from ..synth import full_scale_patients

    full = full_scale_patients()
    if patients >= full:
        head = f"Scale: the full synthetic ICS ({patients:,} people)."
        factor = 1.0
    else:
        factor = full / patients
        head = (f"Scale: a {patients:,}-person sample of the {full:,}-person synthetic ICS "
                f"(1 in {factor:,.1f}).")
    path = result.files.get("dashboard_csv")
    if path is None:
        return head
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["neighbourhood"] != "All neighbourhoods"]
    loads = sorted(round(int(r["caseload"]) * factor) for r in rows
                   if r.get("caseload", "").isdigit())
    if not loads:
        return head
    what = "Caseload per neighbourhood" + (" at full scale" if factor != 1.0 else "")
    return (f"{head} {what}: {loads[0]:,} to {loads[-1]:,} (the report's summary sets each "
            "against the guide's range).")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``population``, ``worklist``, ``synth`` and ``demo`` to the ``int-rules`` command
    line."""
    p = sub.add_parser(
        "worklist", help="worklists an INT can act on, from a population run's results",
        description="Write the worklists of a finished population run (its results.parquet): "
                    "one list per action (consent, CGA due, MDT due, review due, step-down to "
                    "consider, urgent monitoring alerts, data quality to fix), as declared in "
                    "rulesets/worklists.yaml; one row per person, ordered by predicted risk, "
                    "then recent emergency admissions, then age, with the reason in words, the "
                    "key dates, the code to record and its term. Writes worklists.xlsx (one "
                    "sheet per list, codes as text, header frozen) and one CSV per list.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                   help="the --out folder of 'int-rules population'")
    p.add_argument("--neighbourhood", action="append", default=[], metavar="NAME",
                   help="only this neighbourhood (repeat for several)")
    p.add_argument("--practice", action="append", default=[], metavar="CODE",
                   help="only this practice (repeat for several)")
    p.add_argument("--list", action="append", default=[], metavar="ID",
                   help="only this list (repeat for several; default: every list)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="folder for the files (default RUN_DIR/worklists)")
    p.add_argument("--theographs", type=_non_negative, default=0, metavar="N",
                   help="also draw a theograph page for the first N people of each list, "
                        "linked from their patient id in the XLSX (reads the input tables "
                        "again; default 0: none)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _rulebook_args(p)
    p.set_defaults(func=_cmd_worklist)

    p = sub.add_parser(
        "theograph", help="a theograph page for people of a population run",
        description="Write one self-contained HTML page per person (no network needed): a "
                    "timeline of the person's pathway codes, CGA and MDT reviews, hospital "
                    "admissions with length of stay, frailty and end-of-life codes, risk "
                    "scores and monitoring alerts (lanes as declared in "
                    "rulesets/theograph.yaml), and the full explanation of the assessment. "
                    "Reads the run's input tables again (named in run_summary.json).",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                   help="the --out folder of 'int-rules population'")
    p.add_argument("patient_ids", nargs="+", metavar="PATIENT_ID", help="one or more patients")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="folder for the pages (default RUN_DIR/theographs)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _rulebook_args(p)
    p.set_defaults(func=_cmd_theograph)

    p = sub.add_parser(
        "population", help="assess a whole GP extract (CSV/Parquet tables) as of a date",
        description="Assess every patient in DATA_DIR as of a date on DuckDB and write, into "
                    "OUT_DIR: results.parquet (one row per patient: cohorts, "
                    "pathway state, next steps, review reasons, step-down, monitoring level, "
                    "finding ids; with --results-csv also as results.csv), findings.csv "
                    "(one row per data-quality finding), "
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
    p.add_argument("--results-csv", action="store_true",
                   help="also write the results as results.csv, for a spreadsheet (a "
                        "spreadsheet holds about a million rows; the worklists are the "
                        "per-neighbourhood view: 'int-rules worklists')")
    p.add_argument("--fail-on-rejects", action="store_true",
                   help="exit with code 1 when any row was rejected (outputs are still written)")
    p.add_argument("--suppress-small-numbers", action="store_true",
                   help="small-number suppression of the dashboard figures, for sharing beyond "
                        "the care team: counts of 1-7 suppressed, others rounded to the "
                        "nearest 5 (as OpenSAFELY does); the report and dashboard.csv say so")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or file list")
    p.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb",
                   help="where facts, pathway and rules are computed: duckdb (default) or "
                        "spark (the spark extra and Java 17; the same outputs, byte for byte; "
                        "see docs/spark.md)")
    p.add_argument("--spark-master", default=None, metavar="URL",
                   help="with --engine spark: the Spark master (default local[*], every core "
                        "of this machine; e.g. spark://host:7077 for a cluster)")
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
    p.add_argument("--threads", type=_threads, default=None, metavar="N",
                   help="DuckDB worker threads (default: one per CPU core)")
    p.add_argument("--enrolment-effect", type=float, default=None, metavar="CHANGE",
                   help="relative change in emergency admissions in the year after joining the "
                        "caseload, between -1 and 0 (default 0: no effect), to test the "
                        "outcomes comparison against a known answer")
    p.set_defaults(func=_cmd_synth_defaults)

    p = sub.add_parser(
        "demo", help="make a synthetic population and its population report in one go",
        description="The quickest look at what int-rules does for analysts: make a synthetic "
                    "population (default 100,000 people, a 1-in-16 sample of the synthetic ICS), "
                    "run the population report on it with "
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
    p.add_argument("--threads", type=_threads, default=None, metavar="N",
                   help="DuckDB worker threads (default: one per CPU core)")
    p.set_defaults(func=_cmd_demo)


def _cmd_synth_defaults(args: argparse.Namespace) -> int:
    if args.as_of is None:
        from ..synth import DEFAULT_AS_OF

        args.as_of = DEFAULT_AS_OF
    return _cmd_synth(args)
