"""One call from a data directory to every output of a population run (what the CLI does).

>>> # population_report(book, "extract/", dt.date(2026, 3, 31), Path("out/"))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..review.approvals import dashboard_status
from .dashboard import (
    DashboardTable,
    compute_dashboard,
    load_dashboard,
    unavailable,
    write_dashboard_csv,
)
from .engine import (
    PopulationRun,
    overall_status,
    run_population,
    statuses_text,
    write_outputs,
)
from .report import write_report

if TYPE_CHECKING:
    from ..rulebook import Rulebook

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
    threads: int | None = None,
    memory_limit: str | None = None,
    pathway_mode: str = "signatures",
) -> ReportResult:
    """Run the population and write every output into ``out_dir``:

    ``results.parquet`` / ``results.csv`` (one row per assessed patient), ``findings.csv`` (one
    row per data-quality finding), ``rejects.csv`` (every rejected row and patient),
    ``dashboard.csv`` (per neighbourhood), ``report.html`` (self-contained), ``run_summary.json``
    (counts, provenance, timings) and, with ``with_facts``, ``facts.parquet`` (every fact value).
    """
    say = progress or (lambda _m, _f: None)
    out = Path(out_dir)
    dashboard = load_dashboard(book, as_of)
    keep: Sequence[str] = dashboard.facts if dashboard is not None else ()
    findings = ({rid: dashboard.definition.findings.severity_by_output
                 for rid in dashboard.definition.findings.rulesets}
                if dashboard is not None else {})
    run = run_population(book, data_dir, as_of, progress=say, threads=threads,
                         memory_limit=memory_limit, pathway_mode=pathway_mode,
                         keep_facts=keep, finding_rulesets=findings)
    timings = run.timings
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = now - t
        t = now

    try:
        say("writing results", 0.85)
        files = write_outputs(run, out, with_facts=with_facts)
        lap("write_results")
        table: DashboardTable | None = None
        if dashboard is not None:
            say("computing the dashboard", 0.93)
            table = compute_dashboard(run, dashboard)
            files["dashboard_csv"] = out / "dashboard.csv"
            write_dashboard_csv(table, files["dashboard_csv"], book.sha256,
                                overall_status(book), statuses_text(book))
            lap("dashboard")
        summary = _summary(run, table)
        files["run_summary_json"] = out / "run_summary.json"
        files["report_html"] = out / "report.html"
        summary["files"] = {k: v.name for k, v in files.items()}
        say("writing the report", 0.97)
        write_report(run, table, files["report_html"], files, summary)
        lap("report")
        summary["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
        files["run_summary_json"].write_text(json.dumps(summary, indent=2, default=str) + "\n",
                                             encoding="utf-8")
        say("done", 1.0)
        return ReportResult(out, files, summary)
    finally:
        run.close()


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
