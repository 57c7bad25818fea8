"""The population engine: a whole extract assessed on DuckDB, as of one date.

:func:`run_population` reads and validates the tables (:mod:`.tables`), then, with SQL compiled
from the rulebook (:mod:`.sql`):

1. keeps only the events some fact or the pathway reads (one pass over the input) and computes
   the facts over *every* event (e.g. "events dated after as_of") in the same counting pass;
2. replays the caseload pathway for everyone in bulk: each patient's pathway codes become a
   *signature* (the codes in replay order, which fall on the same day, whether the last falls on
   ``as_of``, and death); each distinct signature is replayed once by the pathway itself
   (:meth:`~int_rules.pathway.Pathway.replay` and :meth:`~int_rules.pathway.Pathway.next_codes`)
   on stand-in dates, and mapped back to each patient's real dates. Replay looks only at the
   order of codes and which share a day, never at the gaps between dates, so this is exact
   (``pathway_mode="per_patient"`` replays every patient instead; slower, kept to measure);
3. computes the facts level by level (a fact whose window is anchored on another fact's date
   waits for that one), each level one grouped aggregate per source;
4. evaluates every rule's condition in SQL into a bit mask per patient; each *distinct* mask
   (a few thousand at most) is resolved in Python with the ruleset hit policies and outputs
   exactly as the reference engine does, and joined back.

The :class:`PopulationRun` it returns holds the DuckDB connection with ``results`` (a view),
``facts``, ``findings`` and ``rejects_out``; :func:`write_outputs` writes them.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from ..errors import IntRulesError
from ..review.approvals import overall_status as least_approved
from ..review.approvals import status_of
from .columns import results_select
from .csvsafe import safe_csv_select
from .memory import MEMORY_DIR, ArrowStreamExportable, register_tables
from .sql import CompiledPopulation, FactPlan, RulesetPlan, compile_rulebook, fact_column, literal
from .tables import TABLES, LoadResult, PopulationInputError, RowAggregates, load_tables

if TYPE_CHECKING:
    from ..pathway import Pathway
    from ..record import PatientRecord
    from ..rulebook import Rulebook
    from .worklist import Worklists

__all__ = [
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

_STAND_IN_START = dt.date(2000, 1, 1)
_MASK_BITS = 62  # rule condition bits per BIGINT column
#: Output orders over every column, so equal inputs give equal bytes (no ties left to chance).
FINDINGS_ORDER = ("patient_id, date NULLS FIRST, finding_id, source, code NULLS FIRST, severity, "
                  "message")
REJECTS_ORDER = "tbl, file, row NULLS LAST, patient_id NULLS FIRST, reason"
TEXT_SEPARATOR = "; "
"""How lists are written in CSV cells (and in the ``*_text`` columns)."""


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

    def close(self) -> None:
        self.con.close()

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
            "engine": {"pathway_mode": self.pathway_mode,
                       "pathway_signatures": self.pathway_signatures,
                       "distinct_rule_masks": self.rule_masks},
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = con.sql(sql).to_arrow_table().to_pylist()
    return rows


def provenance(book: Rulebook) -> dict[str, Any]:
    """Which rulebook produced the outputs: id, version, sha256, ruleset versions and statuses."""
    return {
        "rulebook": book.id,
        "version": book.version,
        "sha256": book.sha256,
        "rulesets": [{"id": rs.id, "version": rs.definition.version,
                      "status": status_of(book, rs.id)} for rs in book.rulesets],
        "pathway": {"id": book.pathway.id, "version": book.pathway.version,
                    "status": status_of(book, "pathway")},
        "overrides": dict(sorted(book.overrides.items())),
    }


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


def output_column(ruleset: str, output: str) -> str:
    """The results column of one ruleset output: ``<ruleset>_<output>``."""
    return f"{ruleset}_{output}"


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
    finding_rulesets: Mapping[str, Mapping[str, str]] | None = None,
) -> PopulationRun:
    """Assess every patient in ``data_dir`` as of ``as_of`` with ``book``.

    ``data_dir`` is a folder of files, or a mapping of table name to in-memory table (pyarrow
    Table, pandas or polars DataFrame; see :mod:`.memory`, whose :func:`~.memory.assess_tables`
    also returns the results as Arrow tables), validated exactly as file rows are.

    ``keep_facts`` names facts to keep beside the rule masks in ``__cm`` (column ``f_<name>``),
    for summaries such as the dashboard that would otherwise recompute every fact.
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
    say = progress or (lambda _m, _f: None)
    directory = Path(data_dir) if not isinstance(data_dir, Mapping) else MEMORY_DIR
    compiled = compile_rulebook(book, as_of)
    con = connect(threads, memory_limit, temp_directory)
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - t
        t = now

    try:
        info = _pathway_codes(book.pathway)
        _code_tables(con, compiled, info)
        say("reading and checking the tables", 0.0)
        found = register_tables(con, data_dir) if isinstance(data_dir, Mapping) else None
        loaded = load_tables(con, directory, lambda m: say(m, 0.1), keep_codes="__relevant",
                             aggregates={"ev": _row_aggregates(compiled)}, found=found)
        lap("read_and_validate")
        run = PopulationRun(con, book, as_of, directory, loaded, compiled, timings,
                            pathway_mode=pathway_mode)
        say("replaying the caseload pathway", 0.5)
        # Every item a fact reads, in one table (see sql.ITEM_SOURCES): one aggregate per level.
        con.execute("""
            CREATE OR REPLACE TEMP TABLE items AS
            SELECT e.pid, 0 AS src, g.gid, e.d, e.value, e.seq, e.is_problem,
                   NULL::BOOLEAN AS emergency, NULL::VARCHAR AS source, NULL::VARCHAR AS kind,
                   NULL::VARCHAR AS measure
            FROM ev e JOIN __groups g ON e.code = g.code
            UNION ALL
            SELECT pid, 1, NULL, admitted, date_diff('day', admitted, discharged), seq, NULL,
                   emergency, NULL, NULL, NULL FROM adm
            UNION ALL
            SELECT pid, 2, NULL, d, value, seq, NULL, NULL, source, NULL, NULL FROM rs
            UNION ALL
            SELECT pid, 3, NULL, d, value, seq, NULL, NULL, NULL, kind, measure FROM mon""")
        run.pathway_signatures = _pathway(con, book, compiled, info, as_of, pathway_mode)
        lap("pathway")
        say("computing facts", 0.6)
        _facts(con, compiled, lambda level: say(f"computing facts (level {level})", 0.65))
        lap("facts")
        say("evaluating rules", 0.8)
        unknown = [n for n in keep_facts if n not in compiled.facts]
        if unknown:
            raise ValueError(f"keep_facts: no such fact(s): {', '.join(unknown)}")
        run.rule_masks = _rules(con, book, compiled, keep_facts, finding_rulesets or {})
        _findings(con, _mask_columns(compiled))
        lap("rules")
        run.patients_assessed = int(con.execute("SELECT count(*) FROM assessed").fetchall()[0][0])
        run.patients_rule_conflicts = int(con.execute(
            "SELECT count(*) FROM rejects WHERE tbl = '(rules)'").fetchall()[0][0])
        _rejects_out(con, loaded)
        lap("summarise")
        return run
    except duckdb.Error as exc:
        con.close()
        raise IntRulesError(f"population run failed in DuckDB: {exc}") from exc
    except BaseException:
        con.close()
        raise


#: For a fact over every event in a data-quality window: which patients can have such events,
#: from their earliest and latest event dates (so only those are joined to their dates).
_CANDIDATES = {"before_birth": "__min_d < dob",
               "after_death": "(dod IS NOT NULL AND __max_d > dod)"}


def _row_aggregates(compiled: CompiledPopulation) -> RowAggregates:
    """The facts over every event that need no other fact: computed while counting rows."""
    plain: list[tuple[str, str]] = []
    person: list[tuple[str, str]] = []
    candidates: list[str] = []
    for plan in compiled.items_at(1, "ev_all"):
        pairs = [(a.name, a.sql) for a in plan.aggregates]
        if plan.needs_patient:
            person += pairs
            cand = _CANDIDATES.get(plan.window or "", "TRUE")
            if cand not in candidates:
                candidates.append(cand)
        else:
            plain += pairs
    return RowAggregates(plain, person, " OR ".join(candidates) or "FALSE")


def _arrow_table(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    """Copy an Arrow table into a DuckDB temp table."""
    view = f"__arrow_{name}"
    con.register(view, table)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {view}")
    finally:
        con.unregister(view)


def _code_tables(con: duckdb.DuckDBPyConnection, compiled: CompiledPopulation,
                 info: _PathwayCodes) -> None:
    """``__groups`` (code, gid), ``__pw_codes`` (code, prec), ``__relevant`` (code)."""
    _arrow_table(con, "__groups", pa.table({
        "code": pa.array([c for c, _ in compiled.groups], pa.string()),
        "gid": pa.array([g for _, g in compiled.groups], pa.int32())}))
    _arrow_table(con, "__pw_codes", pa.table({
        "code": pa.array(list(info.by_code), pa.string()),
        "prec": pa.array([p for p, _ in info.by_code.values()], pa.int32())}))
    con.execute("""CREATE OR REPLACE TEMP TABLE __relevant AS
        SELECT code FROM __groups UNION SELECT code FROM __pw_codes""")


# -- pathway ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PathwayCodes:
    by_code: Mapping[str, tuple[int, int]]  # code -> (precedence, step index)
    death_precedence: int


def _pathway_codes(pathway: Pathway) -> _PathwayCodes:
    by_code: dict[str, tuple[int, int]] = {}
    death = 0
    for i, step in enumerate(pathway.definition.steps):
        if step.codelists is None:
            death = step.precedence
            continue
        for code in pathway.step_codes[step.id]:
            by_code[code] = (step.precedence, i)
    return _PathwayCodes(by_code, death)


_FINDING = pa.struct([("id", pa.string()), ("severity", pa.string()), ("pos", pa.int32()),
                      ("code", pa.string()), ("message", pa.string())])
_PW_SCHEMA = pa.schema([
    ("sig", pa.string()),
    ("state", pa.string()),
    ("entered_pos", pa.int32()),
    ("n_findings", pa.int32()),
    ("findings", pa.list_(_FINDING)),
    ("finding_ids", pa.list_(pa.string())),
    ("next_codes", pa.list_(pa.string())),
    ("next_steps", pa.list_(pa.string())),
])


def _pathway(con: duckdb.DuckDBPyConnection, book: Rulebook, compiled: CompiledPopulation,
             info: _PathwayCodes, as_of: dt.date, mode: str) -> int:
    """Build ``pw`` (pid, pw_sig, pw_state, pw_entered, pw_n_findings, pw_may_<fact>...) and
    ``__pw_res`` (per signature: lists of findings, next codes and steps). Returns how many
    distinct signatures were replayed."""
    pathway = book.pathway
    a = literal(as_of)
    # Pathway events as replay sees them: codes dated on or before as_of, and death.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __pe AS
        SELECT e.pid, e.d, c.prec, e.code
        FROM ev e JOIN __pw_codes c ON e.code = c.code WHERE e.d <= {a}
        UNION ALL
        SELECT pid, dod, {info.death_precedence}, '' FROM pt WHERE dod <= {a}""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __psig AS
        SELECT pid,
               string_agg(dr::VARCHAR || ':' || code, ',' ORDER BY d, prec, code)
                 || CASE WHEN max(d) = {a} THEN '|on' ELSE '' END AS sig,
               list(d ORDER BY d, prec, code) AS dates
        FROM (SELECT *, dense_rank() OVER (PARTITION BY pid ORDER BY d) AS dr FROM __pe)
        GROUP BY pid""")
    if mode == "signatures":
        sigs = [str(r[0]) for r in con.execute("SELECT DISTINCT sig FROM __psig").fetchall()]
        rows = [_replay_signature(pathway, sig) for sig in ["", *sigs]]
        table = pa.Table.from_pylist(rows, schema=_PW_SCHEMA)
        n_sigs = len(sigs)
        key = "s.sig"
    else:
        table = _replay_per_patient(con, pathway, as_of)
        n_sigs = 0
        key = "CAST(s.pid AS VARCHAR)"
    may = []
    for name, fact_codes in compiled.may_record.items():
        wanted = ", ".join(literal(c) for c in sorted(fact_codes)) or "NULL"
        may.append(f"len(list_filter(next_codes, lambda c: c IN ({wanted}))) > 0 "
                   f"AS may_{name}")
    table = table.append_column("sig_idx", pa.array(range(1, table.num_rows + 1), pa.int32()))
    _arrow_table(con, "__pw_arrow", table)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE __pw_res AS
        SELECT *, array_to_string(finding_ids, '{TEXT_SEPARATOR}') AS finding_ids_text,
               array_to_string(next_codes, '{TEXT_SEPARATOR}') AS next_codes_text,
               array_to_string(next_steps, '{TEXT_SEPARATOR}') AS next_steps_text
               {''.join(', ' + m for m in may)}
        FROM __pw_arrow""")
    con.execute("DROP TABLE __pw_arrow")
    may_cols = "".join(f", r.may_{name} AS pw_may_{name}" for name in compiled.may_record)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pw AS
        SELECT p.pid, r.sig AS pw_sig, r.state AS pw_state,
               s.dates[r.entered_pos] AS pw_entered, r.n_findings AS pw_n_findings{may_cols}
        FROM pt p LEFT JOIN __psig s USING (pid)
        JOIN __pw_res r ON r.sig = COALESCE({key}, '')""")
    return n_sigs


def _replay_signature(pathway: Pathway, sig: str) -> dict[str, Any]:
    """Replay one signature on stand-in dates; positions refer to the patient's own list."""
    body, _, flag = sig.partition("|")
    events: list[tuple[dt.date, str]] = []
    death: dt.date | None = None
    day_of_pos: list[int] = []
    if body:
        for item in body.split(","):
            day_text, _, code = item.partition(":")
            day = int(day_text)
            day_of_pos.append(day)
            when = _STAND_IN_START + dt.timedelta(days=day)
            if code:
                events.append((when, code))
            else:
                death = when
    last = max(day_of_pos, default=0)
    on = _STAND_IN_START + dt.timedelta(days=last if flag == "on" else last + 1)
    first_pos: dict[int, int] = {}
    for pos, day in enumerate(day_of_pos, start=1):
        first_pos.setdefault(day, pos)

    def pos_of(when: dt.date) -> int:
        return first_pos[(when - _STAND_IN_START).days]

    return _pathway_row(pathway, sig, events, on, death, pos_of)


def _pathway_row(pathway: Pathway, key: str, events: Sequence[tuple[dt.date, str]],
                 on: dt.date, death: dt.date | None,
                 pos_of: Callable[[dt.date], int]) -> dict[str, Any]:
    result = pathway.replay(events, on, death)
    decisions = pathway.next_codes(events, on, death)
    steps: list[str] = []
    for d in decisions:
        step = pathway.step_of(d.code)
        if d.resulting_state != result.state and step is not None and step not in steps:
            steps.append(step)
    return {
        "sig": key,
        "state": result.state,
        "entered_pos": pos_of(result.entered) if result.entered is not None else None,
        "n_findings": len(result.findings),
        "findings": [{"id": f.id, "severity": f.severity, "pos": pos_of(f.date),
                      "code": f.code, "message": f.message} for f in result.findings],
        "finding_ids": [f.id for f in result.findings],
        "next_codes": [d.code for d in decisions],
        "next_steps": steps,
    }


def _replay_per_patient(con: duckdb.DuckDBPyConnection, pathway: Pathway,
                        as_of: dt.date) -> pa.Table:
    """Every patient replayed by the pathway itself (the simple way; kept to measure)."""
    table = con.sql("SELECT pid, d, code FROM __pe ORDER BY pid, d, prec, code").to_arrow_table()
    pids = table.column("pid").to_pylist()
    dates = table.column("d").to_pylist()
    codes = table.column("code").to_pylist()
    rows = [_pathway_row(pathway, "", [], as_of, None, lambda _d: 0)]
    i = 0
    n = len(pids)
    while i < n:
        pid = pids[i]
        j = i
        while j < n and pids[j] == pid:
            j += 1
        evs = [(dates[k], codes[k]) for k in range(i, j) if codes[k]]
        death = next((dates[k] for k in range(i, j) if not codes[k]), None)
        own = dates[i:j]

        def pos_of(when: dt.date, own: list[dt.date] = own) -> int:
            return own.index(when) + 1

        rows.append(_pathway_row(pathway, str(pid), evs, as_of, death, pos_of))
        i = j
    return pa.Table.from_pylist(rows, schema=_PW_SCHEMA)


# -- facts ------------------------------------------------------------------------------------


def _source_sql(source: str) -> str:
    return "__rows_ev" if source == "ev_all" else source


def _anchors(items: Sequence[FactPlan]) -> list[str]:
    """The fact columns the windows of ``items`` read (their since/from/until facts)."""
    out: list[str] = []
    for it in items:
        for name in it.anchors:
            if fact_column(name) not in out:
                out.append(fact_column(name))
    return out


def _facts(con: duckdb.DuckDBPyConnection, compiled: CompiledPopulation,
           progress: Callable[[int], None]) -> None:
    """Build ``facts``: every accepted patient with each fact as a column ``f_<name>``."""
    plans = compiled.facts
    agg_tables: list[str] = []  # joined USING (pid)
    done: dict[str, FactPlan] = {n: p for n, p in plans.items()
                                 if p.stage in ("record", "pathway")}
    for level in range(1, compiled.max_level + 1):
        progress(level)
        for source in compiled.level_sources(level):
            items = compiled.items_at(level, source)
            if level == 1 and source == "ev_all":
                agg_tables.append("__rowaggs_ev")  # computed while counting the rows
                continue
            aggs = ", ".join(f"{a.sql} AS {a.name}" for it in items for a in it.aggregates)
            name = f"__agg_{level}_{source}"
            if any(it.needs_patient for it in items):
                anchors = _anchors(items)
                person = [] if source == "ev_all" else ["dob", "dod"]
                cols = ", ".join(["pid", *person, *(
                    f"{done[c[2:]].value_sql} AS {c}" for c in anchors)])
                joins = " ".join(f"LEFT JOIN {t} USING (pid)" for t in agg_tables)
                sql = (f"SELECT t.pid, {aggs} FROM {_source_sql(source)} t JOIN ("
                       f"SELECT {cols} FROM pt LEFT JOIN pw USING (pid) {joins}) a USING (pid) "
                       f"GROUP BY t.pid")
            else:
                sql = f"SELECT pid, {aggs} FROM {_source_sql(source)} GROUP BY pid"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
            agg_tables.append(name)
        for it in (p for p in plans.values() if p.stage == "items" and p.level == level):
            done[it.name] = it
    values = []
    for name in compiled.order:
        plan = plans[name]
        values.append(f"{plan.value_sql} AS {fact_column(name)}")  # derived: lateral aliases
    joins = " ".join(f"LEFT JOIN {t} USING (pid)" for t in agg_tables)
    may = "".join(f", pw.pw_may_{n}" for n in compiled.may_record)
    # A view: every consumer (the rule masks, the facts output) computes what it reads once;
    # materialising a hundred columns for every patient would cost more than the joins.
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW facts AS
        SELECT pid, patient_id, dob, birth_precision, sex, practice, neighbourhood, gp_system,
               dod, rejected_rows, pw_sig, pw_state, pw_entered, pw_n_findings{may},
               {', '.join(values)}
        FROM pt LEFT JOIN pw USING (pid) {joins}""")


# -- rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FlatRule:
    ruleset: int
    index: int  # within its ruleset
    bit: int  # across the rulebook


def _flat_rules(compiled: CompiledPopulation) -> list[_FlatRule]:
    out: list[_FlatRule] = []
    for i, rs in enumerate(compiled.rulesets):
        for j in range(len(rs.rules)):
            out.append(_FlatRule(i, j, len(out)))
    return out


def _rules(con: duckdb.DuckDBPyConnection, book: Rulebook, compiled: CompiledPopulation,
           keep_facts: Sequence[str], finding_rulesets: Mapping[str, Mapping[str, str]]) -> int:
    """Build ``__cm`` (pid, condition masks, the ``keep_facts`` columns), ``__rdim`` (per mask:
    outputs, rule ids, conflict), and the views ``assessed`` (pid of every patient with
    results), ``results`` and ``facts_out``. Returns the number of distinct masks."""
    flat = _flat_rules(compiled)
    terms: list[list[str]] = [[] for _ in range(_mask_columns(compiled))]
    for fr in flat:
        cond = compiled.rulesets[fr.ruleset].rules[fr.index].condition
        terms[fr.bit // _MASK_BITS].append(
            f"(CASE WHEN {cond} THEN {1 << (fr.bit % _MASK_BITS)} ELSE 0 END)")
    masks = [f"CAST({' + '.join(ts) if ts else '0'} AS BIGINT) AS m{k}"
             for k, ts in enumerate(terms)]
    kept = "".join(f", {fact_column(n)}" for n in keep_facts)
    con.execute(f"CREATE OR REPLACE TEMP TABLE __cm AS SELECT pid, {', '.join(masks)}{kept} "
                "FROM facts")
    mcols = ", ".join(f"m{k}" for k in range(len(terms)))
    distinct = con.execute(f"SELECT DISTINCT {mcols} FROM __cm").fetchall()
    titles = {rule.id: rule.definition.title for rs in book.rulesets for rule in rs.rules}
    table = _resolve_masks(compiled, flat, [tuple(int(x) for x in r) for r in distinct],
                           finding_rulesets, titles)
    table = table.append_column("mask_idx", pa.array(range(1, table.num_rows + 1), pa.int32()))
    _arrow_table(con, "__rdim", table)
    con.execute(f"""
        INSERT INTO rejects SELECT '(rules)', NULL, NULL, p.patient_id, d.__conflict
        FROM pt p JOIN __cm c USING (pid) JOIN __rdim d USING ({mcols})
        WHERE d.__conflict IS NOT NULL""")
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW assessed AS
        SELECT c.* FROM __cm c JOIN __rdim d USING ({mcols}) WHERE d.__conflict IS NULL""")
    # One row per assessed patient in input order, holding only keys into the per-mask and
    # per-signature tables: sorting this narrow table is cheap, and the outputs then read it in
    # order and look the lists up by index (no join, so no reordering).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __res AS
        SELECT p.pid, p.patient_id, p.practice, p.neighbourhood, p.gp_system, p.sex,
               {_age_sql(compiled.as_of, 'p.dob')} AS age, p.dod AS date_of_death,
               w.pw_state AS pathway_state, w.pw_entered AS pathway_entered, p.rejected_rows,
               d.mask_idx, r.sig_idx
        FROM pt p JOIN pw w USING (pid) JOIN __cm c USING (pid)
        JOIN __rdim d USING ({mcols}) JOIN __pw_res r ON r.sig = w.pw_sig
        WHERE d.__conflict IS NULL
        ORDER BY p.pid""")
    con.execute(f"CREATE OR REPLACE TEMP VIEW results AS {_results_sql(compiled, False)}")
    con.execute("""
        CREATE OR REPLACE TEMP VIEW facts_out AS
        SELECT f.* FROM facts f WHERE f.pid IN (SELECT pid FROM assessed)""")
    return len(distinct)


def _mask_columns(compiled: CompiledPopulation) -> int:
    return max(1, -(-len(_flat_rules(compiled)) // _MASK_BITS))


def _age_sql(as_of: dt.date, dob: str) -> str:
    return (f"CAST((year({literal(as_of)}) - year({dob}) - CASE WHEN month({dob}) > "
            f"{as_of.month} OR (month({dob}) = {as_of.month} AND day({dob}) > {as_of.day}) "
            f"THEN 1 ELSE 0 END) AS INTEGER)")


def _result_columns(compiled: CompiledPopulation, text: bool, codes: bool = True
                    ) -> tuple[list[str], list[str], list[str]]:
    """(columns, lists of ``__rdim`` by mask, lists of ``__pw_res`` by signature) of the
    results (``text``: lists as ``a; b`` strings, for CSV; ``codes``: with the pathway codes
    that may be recorded next, which the output files leave out: they follow from the state and
    are the same for everyone in it)."""
    cols = ["b.patient_id", "b.practice", "b.neighbourhood", "b.gp_system", "b.sex", "b.age",
            "b.date_of_death"]
    by_mask: list[str] = []
    by_sig: list[str] = []

    def mask(src: str, name: str) -> None:
        by_mask.append(f"list({src} ORDER BY mask_idx) AS {name}")
        cols.append(f"d.{name}[b.mask_idx] AS {name}")

    def sig(src: str, name: str) -> None:
        by_sig.append(f"list({src} ORDER BY sig_idx) AS {name}")
        cols.append(f"r.{name}[b.sig_idx] AS {name}")

    for rs in compiled.rulesets:
        for key in rs.outputs:
            col = output_column(rs.id, key)
            mask(f"{col}__text" if text and rs.hit_policy == "collect" else col, col)
    cols += ["b.pathway_state", "b.pathway_entered"]
    suffix = "_text" if text else ""
    sig(f"next_steps{suffix}", "pathway_next_steps")
    if codes:
        sig(f"next_codes{suffix}", "pathway_next_codes")
    sig(f"finding_ids{suffix}", "pathway_findings")
    mask(f"rule_ids{suffix}", "rule_ids")
    cols.append("b.rejected_rows")
    return cols, by_mask, by_sig


def _results_sql(compiled: CompiledPopulation, text: bool, extra: str = "",
                 codes: bool = True) -> str:
    """The results, one row per assessed patient in input order (``b.pid`` first)."""
    cols, by_mask, by_sig = _result_columns(compiled, text, codes)
    return (f"WITH d AS (SELECT {', '.join(by_mask)} FROM __rdim), "
            f"r AS (SELECT {', '.join(by_sig)} FROM __pw_res) "
            f"SELECT b.pid, {', '.join(cols)}{extra} FROM __res b, d, r")


def _fired(compiled: CompiledPopulation, flat: Sequence[_FlatRule],
           holds: Sequence[bool]) -> tuple[list[tuple[int, int]], str | None]:
    """The rules that fire, as (ruleset, index), after each hit policy (as the reference
    engine's ``fire_rules``); and the conflict message of a ``unique`` overlap."""
    fired: list[tuple[int, int]] = []
    by_rs: dict[int, list[int]] = {}
    for fr in flat:
        if holds[fr.bit]:
            by_rs.setdefault(fr.ruleset, []).append(fr.index)
    for i, rs in enumerate(compiled.rulesets):
        hits = by_rs.get(i, [])
        if not hits:
            continue
        policy = rs.hit_policy
        if policy == "collect":
            fired += [(i, j) for j in hits]
        elif policy == "first":
            fired.append((i, hits[0]))
        elif policy == "unique":
            if len(hits) > 1:
                ids = ", ".join(rs.rules[j].rule_id for j in hits)
                return fired, (f"ruleset {rs.id} has hit policy 'unique' but rules {ids} all "
                               f"fired; the rules overlap (run 'int-rules lint')")
            fired.append((i, hits[0]))
        else:
            best = max(hits, key=lambda j: rs.rules[j].priority or 0)
            fired.append((i, best))
    return fired, None


def _results_of(rs: RulesetPlan, fired: Sequence[int]) -> dict[str, Any]:
    """One ruleset's outputs for the fired rules (as ``Assessment.results``)."""
    collect = rs.hit_policy == "collect"
    res: dict[str, Any] = {k: ([] if collect else None) for k in rs.outputs}
    for j in fired:
        for key, value in rs.rules[j].then.items():
            if collect:
                if value not in res[key]:
                    res[key].append(value)
            else:
                res[key] = value
    return res


def _cell(otype: str, value: Any) -> Any:
    if value is None:
        return None
    if otype == "bool":
        return bool(value)
    return str(value)


def _text(otype: str, values: Sequence[Any]) -> str:
    return TEXT_SEPARATOR.join(("true" if v else "false") if otype == "bool" else str(v)
                               for v in values)


_RULE_FINDING = pa.struct([("source", pa.string()), ("finding_id", pa.string()),
                           ("severity", pa.string()), ("message", pa.string())])


def _resolve_masks(compiled: CompiledPopulation, flat: Sequence[_FlatRule],
                   masks: Sequence[tuple[int, ...]],
                   finding_rulesets: Mapping[str, Mapping[str, str]],
                   titles: Mapping[str, str]) -> pa.Table:
    """Per distinct condition mask: rule ids, outputs (lists and their text), conflict, and
    the findings of the ``finding_rulesets`` rules that fire."""
    n_cols = _mask_columns(compiled)
    data: dict[str, list[Any]] = {f"m{k}": [] for k in range(n_cols)}
    data["rule_ids"] = []
    data["rule_ids_text"] = []
    data["__conflict"] = []
    fields: list[tuple[str, pa.DataType]] = [(f"m{k}", pa.int64()) for k in range(n_cols)]
    fields += [("rule_ids", pa.list_(pa.string())), ("rule_ids_text", pa.string()),
               ("__conflict", pa.string()), ("__findings", pa.list_(_RULE_FINDING))]
    data["__findings"] = []
    for rs in compiled.rulesets:
        for key, otype in rs.outputs.items():
            col = output_column(rs.id, key)
            scalar = pa.bool_() if otype == "bool" else pa.string()
            if rs.hit_policy == "collect":
                fields += [(col, pa.list_(scalar)), (f"{col}__text", pa.string())]
                data[f"{col}__text"] = []
            else:
                fields.append((col, scalar))
            data[col] = []
    for mask in masks:
        for k in range(n_cols):
            data[f"m{k}"].append(mask[k])
        holds = [bool(mask[fr.bit // _MASK_BITS] >> (fr.bit % _MASK_BITS) & 1) for fr in flat]
        fired, conflict = _fired(compiled, flat, holds)
        data["__conflict"].append(conflict)
        ids = [compiled.rulesets[i].rules[j].rule_id for i, j in fired]
        data["rule_ids"].append(ids)
        found = []
        for i, j in fired:
            rs = compiled.rulesets[i]
            if rs.id in finding_rulesets:
                rule = rs.rules[j]
                severity = next((finding_rulesets[rs.id][k] for k in rule.then
                                 if k in finding_rulesets[rs.id]), None)
                found.append({"source": rs.id, "finding_id": rule.rule_id,
                              "severity": severity, "message": titles.get(rule.rule_id, "")})
        data["__findings"].append(found)
        data["rule_ids_text"].append(TEXT_SEPARATOR.join(ids))
        for i, rs in enumerate(compiled.rulesets):
            res = _results_of(rs, [j for (r, j) in fired if r == i])
            for key, otype in rs.outputs.items():
                col = output_column(rs.id, key)
                if rs.hit_policy == "collect":
                    data[col].append([_cell(otype, v) for v in res[key]])
                    data[f"{col}__text"].append(_text(otype, res[key]))
                else:
                    data[col].append(_cell(otype, res[key]))
    return pa.table(data, schema=pa.schema(fields))


# -- findings and rejects ---------------------------------------------------------------------


def _findings(con: duckdb.DuckDBPyConnection, n_masks: int) -> None:
    """``findings``: one row per caseload pathway finding and per fired rule of the finding
    rulesets, for every assessed patient."""
    mcols = ", ".join(f"m{k}" for k in range(n_masks))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE findings AS
        SELECT x.patient_id, x.practice, x.neighbourhood, 'pathway' AS source,
               x.f.id AS finding_id, x.f.severity AS severity, x.dates[x.f.pos] AS date,
               x.f.code AS code, x.f.message AS message
        FROM (SELECT p.pid, p.patient_id, p.practice, p.neighbourhood, s.dates,
                     unnest(r.findings) AS f
              FROM pt p JOIN pw w USING (pid) JOIN __pw_res r ON r.sig = w.pw_sig
              LEFT JOIN __psig s USING (pid)
              WHERE w.pw_n_findings > 0 AND p.pid IN (SELECT pid FROM assessed)) x
        UNION ALL
        SELECT y.patient_id, y.practice, y.neighbourhood, y.f.source, y.f.finding_id,
               y.f.severity, NULL::DATE, NULL::VARCHAR, y.f.message
        FROM (SELECT p.patient_id, p.practice, p.neighbourhood, unnest(d.__findings) AS f
              FROM assessed c JOIN pt p USING (pid) JOIN __rdim d USING ({mcols})
              WHERE len(d.__findings) > 0) y""")


def mask_columns_sql(run: PopulationRun) -> str:
    """The mask columns joining ``__cm`` (or ``assessed``) to ``__rdim``."""
    return ", ".join(f"m{k}" for k in range(_mask_columns(run.compiled)))


def _rejects_out(con: duckdb.DuckDBPyConnection, loaded: LoadResult) -> None:
    _arrow_table(con, "__files", pa.table({
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
        _arrow_table(con, "__want", pa.table({"patient_id": pa.array(list(patient_ids),
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


def write_outputs(run: PopulationRun, out_dir: Path, with_facts: bool = False,
                  worklists: Worklists | None = None, run_id: str = "") -> dict[str, Path]:
    """Write results (Parquet and CSV), findings and rejects (CSV) and, ``with_facts``, every
    fact value (Parquet) into ``out_dir``. Returns the paths written, by name. Every file
    carries the rulebook's sha256 and status: Parquet in its key-value metadata with every
    ruleset's version and status; CSV in the columns ``rulebook_sha256`` and ``rulebook_status``
    (``draft`` while any ruleset is a draft; the sha256 names the exact versions), with the
    ``run_id`` and ``as_of`` date (Parquet: metadata keys ``run_id`` and ``as_of``). CSV text
    cells that a spreadsheet would take for a formula are neutralised (see csvsafe)."""
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

    def copy(name: str, sql: str, filename: str) -> None:
        path = out_dir / filename
        if filename.endswith(".parquet"):
            opts = f"FORMAT parquet, COMPRESSION zstd, KV_METADATA {{{meta_sql}}}"
        else:
            opts = "FORMAT csv, HEADER true"
            sql = safe_csv_select(con, sql)
        try:
            con.execute(f"COPY ({sql}) TO {literal(str(path))} ({opts})")
        except duckdb.Error as exc:
            raise PopulationInputError(f"cannot write {path}: {exc}") from None
        paths[name] = path

    # In input order: __res is sorted and read by a scan; the lists are looked up by index.
    status = literal(overall_status(run.book))
    stamp = (f"{sha} AS rulebook_sha256, {status} AS rulebook_status, {literal(run_id)} AS "
             f"run_id, DATE {literal(run.as_of.isoformat())} AS as_of")
    extra = f", {stamp}"
    # Single-valued outputs as scalars, and the worklists' fact columns (see .columns).
    copy("results_parquet", results_select(_results_sql(run.compiled, False, extra, False),
                                           run.book, worklists, False), "results.parquet")
    copy("results_csv", results_select(_results_sql(run.compiled, True, extra, False),
                                       run.book, worklists, True), "results.csv")
    if with_facts:
        fact_cols = ", ".join(f"{fact_column(n)} AS {n}" for n in run.book.fact_order)
        copy("facts_parquet", f"SELECT patient_id, {fact_cols} FROM facts_out ORDER BY pid",
             "facts.parquet")
    copy("findings_csv", f"SELECT *, {stamp} FROM findings ORDER BY {FINDINGS_ORDER}",
         "findings.csv")
    copy("rejects_csv", f"SELECT tbl AS \"table\", file, row, patient_id, reason, {stamp} "
                        f"FROM rejects_out ORDER BY {REJECTS_ORDER}", "rejects.csv")
    return paths
