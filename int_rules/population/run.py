"""One call from a data directory to every output of a population run (what the CLI does).

>>> # population_report(book, "extract/", dt.date(2026, 3, 31), Path("out/"))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ..review.approvals import dashboard_status
from .columns import data_dictionary, write_data_dictionary
from .dashboard import (
    Dashboard,
    DashboardTable,
    compute_dashboard,
    load_dashboard,
    unavailable,
    write_dashboard_csv,
)
from .disclosure import REDACTED, SUPPRESSION, round_count, suppress
from .engine import (
    PopulationRun,
    overall_status,
    run_population,
    statuses_text,
    write_outputs,
)
from .expected import add_expected, synthetic_scale
from .outcomes import (
    Outcomes,
    OutcomesTable,
    compute_outcomes,
    disclose,
    load_outcomes,
    model_imported_ahead,
    outcomes_section,
    write_outcomes_csv,
)
from .outcomes import summary as outcomes_summary
from .report import write_report
from .staging import OutputError, Staging, run_id_for
from .tables import discover
from .worklist import Worklists, load_worklists

if TYPE_CHECKING:
    from ..rulebook import Rulebook
    from .tables import TableFile

__all__ = ["ReportResult", "population_report"]


@dataclass(frozen=True)
class ReportResult:
    """What a population report wrote, and its summary (as in ``run_summary.json``)."""

    out_dir: Path
    files: dict[str, Path]
    summary: dict[str, Any]

    @property
    def report(self) -> Path:
        return self.files["report_html"]


def population_report(
    book: Rulebook,
    data_dir: str | Path,
    as_of: dt.date,
    out_dir: str | Path,
    *,
    progress: Callable[[str, float], None] | None = None,
    with_facts: bool = False,
    results_csv: bool = False,
    threads: int | None = None,
    memory_limit: str | None = None,
    pathway_mode: str = "signatures",
    suppress_small_numbers: bool = False,
    run_id: str | None = None,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> ReportResult:
    """Run the population and write every output into ``out_dir``:

    ``results.parquet`` (one row per assessed patient; with ``results_csv`` also as
    ``results.csv``, for a population small enough for a spreadsheet), ``findings.csv`` (one
    row per data-quality finding), ``rejects.csv`` (every rejected row and patient),
    ``dashboard.csv`` (per neighbourhood), ``outcomes.csv`` (the impact indicators per
    neighbourhood, from ``rulesets/outcomes.yaml``), ``report.html`` (self-contained),
    ``run_summary.json`` (counts, provenance, timings) and, with ``with_facts``,
    ``facts.parquet`` (every fact value); ``data_dictionary.csv`` (every results column:
    meaning, type, source).

    ``suppress_small_numbers`` applies small-number suppression to the dashboard figures
    (:mod:`.disclosure`: counts of 1-7 suppressed, others rounded to 5), for sharing them
    beyond the care team; the report and ``dashboard.csv`` say whether it is on. It applies to
    the outcome figures too.

    ``engine`` ``"spark"`` computes facts, pathway and rules on Spark (``spark_master``, default
    ``local[*]``); the outputs are the same, byte for byte (see
    :func:`~int_rules.population.engine.run_population`).

    All or nothing: the files are written into a staging folder and moved into ``out_dir``
    only when every one is written (see :mod:`.staging`); a failed or interrupted run leaves
    ``out_dir`` as it was. Every file carries ``run_id`` (by default derived from the rulebook's
    sha256, ``as_of`` and the input files, so the same inputs give the same bytes), the as-of
    date and the rulebook's sha256.
    """
    say = progress or (lambda _m, _f: None)
    final = Path(out_dir)
    if run_id is None:
        found, _notes = discover(Path(data_dir))
        run_id = run_id_for([book.sha256, as_of.isoformat()],
                            [tf.path for tfs in found.values() for tf in tfs])
    dashboard = load_dashboard(book, as_of)
    worklists = load_worklists(book)
    outcomes = load_outcomes(book)
    keep = dashboard.facts if dashboard is not None else ()  # the facts the dashboard counts
    findings = ({rid: dashboard.definition.findings.severity_by_output
                 for rid in dashboard.definition.findings.rulesets}
                if dashboard is not None else {})
    try:
        run = run_population(book, data_dir, as_of, progress=say, threads=threads,
                             memory_limit=memory_limit, pathway_mode=pathway_mode,
                             keep_facts=keep, finding_rulesets=findings, engine=engine,
                             result_facts=worklists.facts if worklists is not None else (),
                             spark_master=spark_master)
    except duckdb.OutOfMemoryException as exc:
        within = f" within the memory limit {memory_limit}" if memory_limit else ""
        raise OutputError(f"the run ran out of memory{within} ({_first_line(exc)}); give it "
                          "more memory (--memory-limit) or fewer threads (--threads): not "
                          "every step can spill to disk") from None
    timings = run.timings
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = now - t
        t = now

    try:
        with Staging(final, run_id) as stage, _hashing(run.load.files) as hashes:
            result = _write_all(run, stage, hashes, dashboard=dashboard, worklists=worklists,
                                outcomes=outcomes,
                                with_facts=with_facts, results_csv=results_csv,
                                suppress_small_numbers=suppress_small_numbers,
                                data_dir=Path(data_dir), run_id=run_id, timings=timings,
                                lap=lap, say=say)
        return result
    except OSError as exc:
        raise OutputError(f"cannot write the outputs into '{final}': "
                          f"{exc.strerror or exc}") from None
    finally:
        run.close()


class _Stopped(Exception):
    """Hashing the input files was stopped: the run ended before it needed them."""


def input_files(files: Sequence[TableFile], stop: threading.Event | None = None
                ) -> list[dict[str, Any]]:
    """Each input file's name (as shown), size in bytes and sha256, so a report names exactly
    the data it was made from. ``stop``, when set, ends the hashing early (raising
    ``_Stopped``)."""
    out: list[dict[str, Any]] = []
    for f in files:
        if not f.path.is_file():  # tables given in memory have no file
            out.append({"table": f.table, "file": f.shown, "bytes": None, "sha256": None})
            continue
        digest = hashlib.sha256()
        with f.path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                if stop is not None and stop.is_set():
                    raise _Stopped
                digest.update(chunk)
        out.append({"table": f.table, "file": f.shown, "bytes": f.path.stat().st_size,
                    "sha256": digest.hexdigest()})
    return out


@contextmanager
def _hashing(files: Sequence[TableFile]) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The input files hashed (:func:`input_files`) on a thread of their own while the outputs
    are written, and a function that waits for the hashes. Reading and hashing a file hold no
    lock that DuckDB's work needs, and the results are made on one thread: from CSV, hashing
    the 2.5 GB extract of 1.6 million people was a second and a half of the run on its own.
    Leaving early (an error, Ctrl-C) stops the hashing at its next megabyte."""
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="int-rules-hash") as pool:
        future = pool.submit(input_files, files, stop)
        try:
            yield future.result
        finally:
            stop.set()


def _write_all(run: PopulationRun, stage: Staging,
               hashes: Callable[[], list[dict[str, Any]]], *, dashboard: Dashboard | None,
               worklists: Worklists | None, outcomes: Outcomes | None, with_facts: bool,
               results_csv: bool,
               suppress_small_numbers: bool,
               data_dir: Path, run_id: str, timings: dict[str, float],
               lap: Callable[[str], None], say: Callable[[str, float], None]) -> ReportResult:
    """Every output of ``run`` into the staging folder, then moved into place; ``hashes``
    waits for the input files' hashes (see :func:`_hashing`)."""
    book = run.book
    out = stage.dir
    # The results are made on one thread and encoded on another (see write_outputs): the
    # outcomes' model is imported meanwhile, beside the encoding (most of a second on its own).
    ahead: AbstractContextManager[None] = (model_imported_ahead() if outcomes is not None
                                           else nullcontext())
    with ahead:
        say("writing results", 0.85)
        files = write_outputs(run, out, with_facts=with_facts, worklists=worklists, run_id=run_id,
                              results_csv=results_csv)
        dictionary = data_dictionary(book, worklists)
        files["data_dictionary_csv"] = out / "data_dictionary.csv"
        write_data_dictionary(dictionary, files["data_dictionary_csv"])
        lap("write_results")
        table: DashboardTable | None = None
        if dashboard is not None:
            say("computing the dashboard", 0.93)
            table = add_expected(compute_dashboard(run, dashboard))
            if suppress_small_numbers:
                table = suppress(table)
            files["dashboard_csv"] = out / "dashboard.csv"
            write_dashboard_csv(table, files["dashboard_csv"], book.sha256,
                                overall_status(book), statuses_text(book), run_id=run_id,
                                as_of=run.as_of.isoformat())
            lap("dashboard")
    outcomes_html = ""
    computed: OutcomesTable | None = None
    if outcomes is not None:
        say("computing outcomes", 0.94)
        # Small-number suppression as for the dashboard: figures built on a count the rule
        # redacts are left empty, and every count is rounded by the same rule.
        hide = (lambda n: round_count(n) == REDACTED) if suppress_small_numbers else None
        computed = compute_outcomes(run.con, book, outcomes, run.as_of, suppress=hide)
        if suppress_small_numbers:
            disclose(computed, round_count, SUPPRESSION)
        files["outcomes_csv"] = out / "outcomes.csv"
        write_outcomes_csv(computed, files["outcomes_csv"], book.sha256, overall_status(book),
                           run_id=run_id)
        outcomes_html = outcomes_section(computed, files["outcomes_csv"].name)
        lap("outcomes")
    summary = _summary(run, table)
    summary["run_id"] = run_id
    if computed is not None:
        summary["outcomes"] = outcomes_summary(computed)
    say("hashing the input files", 0.95)
    summary["inputs"] = hashes()
    scale = synthetic_scale(data_dir)
    if scale is not None:
        summary["synthetic"] = {"patients": scale.patients, "full_scale": scale.full_scale,
                                "seed": scale.seed}
    summary["small_number_suppression"] = table.suppression if table is not None else "off"
    files["run_summary_json"] = out / "run_summary.json"
    files["report_html"] = out / "report.html"
    summary["files"] = {k: v.name for k, v in files.items()}
    say("writing the report", 0.97)
    final = {k: stage.out_dir / v.name for k, v in files.items()}  # where they will be
    write_report(run, table, files["report_html"], final, summary,
                 dictionary=dictionary, scale=scale,
                 sections=(outcomes_html,) if outcomes_html else ())
    lap("report")
    summary["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    files["run_summary_json"].write_text(json.dumps(summary, indent=2, default=str) + "\n",
                                         encoding="utf-8")
    order = sorted(files, key=lambda k: k == "run_summary_json")
    moved = stage.commit([files[k].name for k in order])
    say("done", 1.0)
    return ReportResult(stage.out_dir, {k: moved[files[k].name] for k in order}, summary)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _summary(run: PopulationRun, table: DashboardTable | None) -> dict[str, Any]:
    data = run.summary()
    if table is not None:
        d = table.dashboard
        data["dashboard"] = {"file": d.file, "version": d.definition.version,
                             "status": dashboard_status(run.book, d.definition), "sha256": d.sha256,
                             "not_available": dict(unavailable(d))}
    findings = run.con.sql("SELECT count(*) FROM findings").fetchall()[0][0]
    rejects = run.con.sql("SELECT count(*) FROM rejects_out").fetchall()[0][0]
    data["findings"] = int(findings)
    data["rejected_rows"] = int(rejects)
    return data
