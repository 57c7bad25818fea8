"""The DuckDB engine: the rule model evaluated over a whole population as of one date.

:mod:`int_rules.population` reads and validates the tables into a connection (``pt``, ``ev``,
``adm``, ``rs``, ``mon`` and their rows); :func:`evaluate` then, with SQL compiled from the
model (:func:`int_rules.engines.sql.compile_model`):

1. gathers every item a fact reads into one ``items`` table (events matched to codelist groups,
   admissions, risk scores, monitoring); facts over *every* event are computed while the
   tables are read (:func:`row_aggregates`);
2. replays the caseload pathway for everyone in bulk: each patient's pathway codes become a
   *signature* (the codes in replay order, :func:`~int_rules.model.semantics.pathway_order`,
   which fall on the same day, whether the last falls on ``as_of``, and death); each distinct
   signature is replayed once by the pathway itself
   (:meth:`~int_rules.pathway.Pathway.replay` and :meth:`~int_rules.pathway.Pathway.next_codes`)
   on stand-in dates, and mapped back to each patient's real dates. Replay looks only at the
   order of codes and which share a day, never at the gaps between dates, so this is exact
   (``pathway_mode="per_patient"`` replays every patient instead; slower, kept to measure);
3. computes the facts level by level (a fact whose window is anchored on another fact's date
   waits for that one), each level one grouped aggregate per source;
4. evaluates every rule's condition in SQL into a bit mask per patient; each *distinct* mask
   (a few thousand at most) is resolved with the shared hit-policy and output functions
   (:mod:`int_rules.model.semantics`) and joined back.

It leaves ``facts`` (a view), ``pw`` and ``__pw_res`` (the pathway), ``__cm`` and ``__rdim``
(condition masks and what they resolve to), ``assessed``, ``facts_out`` and ``findings`` on
the connection, and adds a reject for every patient whose ``unique`` rules overlap. It reads
the rule model only, never the YAML language models.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from ..model import nodes as n
from ..model.semantics import UniqueOverlap, aggregate_outputs, overlap_message, select_hits
from .sql import CompiledPopulation, FactPlan, RulesetPlan, fact_column, literal

if TYPE_CHECKING:
    from ..pathway import Pathway

__all__ = [
    "TEXT_SEPARATOR",
    "EngineRun",
    "PathwayCodes",
    "arrow_table",
    "code_tables",
    "evaluate",
    "file_path",
    "findings",
    "interrupted",
    "mask_columns",
    "output_column",
    "pathway_codes",
    "row_aggregates",
]

NAME = "duckdb"
_STAND_IN_START = dt.date(2000, 1, 1)
_MASK_BITS = 62  # rule condition bits per BIGINT column
TEXT_SEPARATOR = "; "
"""How lists are written in CSV cells (and in the ``*_text`` columns)."""


def file_path(path: object, pattern: str = "") -> str:
    """A file's path as the SQL literal DuckDB's file readers (``read_parquet``, ``read_csv``)
    read as exactly that file. They read ``*``, ``?`` and ``[`` in a path as a pattern, so a
    folder named ``extract[1]`` would read ``extract1``'s files if there were any; each is
    written as a class of its own (``[*]``, ``[?]``, ``[[]``), which matches only itself.
    ``pattern`` is appended as it is (``"/*.parquet"``: every Parquet file of the folder)."""
    text = re.sub(r"[*?\[]", lambda m: f"[{m.group(0)}]", str(path))
    return literal(text + pattern)


def interrupted(exc: BaseException) -> bool:
    """Whether a DuckDB error is Ctrl-C: DuckDB stops a query on it, and when the signal lands
    while it reads a Python object (an Arrow table being scanned) it reports Python's
    ``KeyboardInterrupt`` as an error of its own that names it. Such an error is to be raised
    as ``KeyboardInterrupt``, never reported as a fault of the input."""
    return (isinstance(exc, duckdb.InterruptException)
            or (isinstance(exc, duckdb.Error) and "KeyboardInterrupt" in str(exc)))


def output_column(ruleset: str, output: str) -> str:
    """The results column of one ruleset output: ``<ruleset>_<output>``."""
    return f"{ruleset}_{output}"


@dataclass(frozen=True)
class EngineRun:
    """What :func:`evaluate` did: distinct pathway signatures replayed, distinct rule masks."""

    pathway_signatures: int
    rule_masks: int


def evaluate(con: duckdb.DuckDBPyConnection, compiled: CompiledPopulation, pathway: Pathway,
             info: PathwayCodes, *, pathway_mode: str = "signatures",
             keep_facts: Sequence[str] = (),
             finding_rulesets: Mapping[str, Mapping[str, str]] | None = None,
             lap: Callable[[str], None] = lambda _name: None,
             say: Callable[[str, float], None] = lambda _m, _f: None) -> EngineRun:
    """Evaluate the compiled model over the validated tables on ``con`` (see the module doc).

    ``keep_facts`` names facts to keep beside the rule masks in ``__cm`` (column ``f_<name>``);
    ``finding_rulesets`` maps a ruleset id to {output: severity}: each rule of it that fires is
    also a row of ``findings``. ``lap`` is called with the name of each stage as it ends.
    """
    as_of = compiled.as_of
    say("replaying the caseload pathway", 0.5)
    # Every item a fact reads, in one table (see sql.ITEM_SOURCES): one aggregate per level.
    con.execute(f"CREATE OR REPLACE TEMP TABLE items AS {items_sql(compiled)}")
    signatures = _pathway(con, pathway, compiled, info, as_of, pathway_mode)
    lap("pathway")
    say("computing facts", 0.6)
    _facts(con, compiled, lambda level: say(f"computing facts (level {level})", 0.65))
    lap("facts")
    say("evaluating rules", 0.8)
    unknown = [name for name in keep_facts if name not in compiled.facts]
    if unknown:
        raise ValueError(f"keep_facts: no such fact(s): {', '.join(unknown)}")
    masks = _rules(con, compiled, keep_facts, finding_rulesets or {})
    findings(con, mask_columns(compiled))
    lap("rules")
    return EngineRun(signatures, masks)


def items_sql(compiled: CompiledPopulation) -> str:
    """Every item a fact reads, as one table (see :data:`~int_rules.engines.sql.ITEM_SOURCES`):
    events matched to codelist groups, admissions (``value``: the length of stay in days),
    risk scores and monitoring."""
    stay = compiled.dialect.days("admitted", "discharged")
    return f"""
        SELECT e.pid, 0 AS src, g.gid, e.d, e.value, e.seq, e.is_problem,
               CAST(NULL AS BOOLEAN) AS emergency, CAST(NULL AS {compiled.dialect.text_type})
               AS source, CAST(NULL AS {compiled.dialect.text_type}) AS kind,
               CAST(NULL AS {compiled.dialect.text_type}) AS measure
        FROM ev e JOIN __groups g ON e.code = g.code
        UNION ALL
        SELECT pid, 1, NULL, admitted, {stay}, seq, NULL, emergency, NULL, NULL, NULL FROM adm
        UNION ALL
        SELECT pid, 2, NULL, d, value, seq, NULL, NULL, source, NULL, NULL FROM rs
        UNION ALL
        SELECT pid, 3, NULL, d, value, seq, NULL, NULL, NULL, kind, measure FROM mon"""


def pathway_events_sql(compiled: CompiledPopulation, info: PathwayCodes) -> str:
    """Pathway events as replay sees them: codes dated on or before as_of, and death (code
    ``''``)."""
    a = compiled.dialect.literal(compiled.as_of)
    return f"""
        SELECT e.pid, e.d, c.prec, e.code
        FROM ev e JOIN __pw_codes c ON e.code = c.code WHERE e.d <= {a}
        UNION ALL
        SELECT pid, dod, {info.death_precedence}, '' FROM pt WHERE dod <= {a}"""


def row_aggregates(compiled: CompiledPopulation
                   ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The facts over every event that need no other fact, computed in the pass that reads
    and counts the rows: (aggregates per patient, aggregates that also read the patient's
    dates of birth and death)."""
    plain: list[tuple[str, str]] = []
    person: list[tuple[str, str]] = []
    for plan in compiled.items_at(1, "ev_all"):
        pairs = [(a.name, a.sql) for a in plan.aggregates]
        if plan.needs_patient:
            person += pairs
        else:
            plain += pairs
    return plain, person


def arrow_table(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    """Copy an Arrow table into a DuckDB temp table."""
    view = f"__arrow_{name}"
    con.register(view, table)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {view}")
    finally:
        con.unregister(view)


def code_tables(con: duckdb.DuckDBPyConnection, compiled: CompiledPopulation,
                info: PathwayCodes) -> None:
    """``__groups`` (code, gid), ``__pw_codes`` (code, prec), ``__relevant`` (code). Made
    from lists passed to DuckDB, not Arrow arrays: the first Arrow array built from Python
    objects imports pandas when it is installed (a quarter of a second), which a run can then
    do on a thread of its own while DuckDB reads the tables (see
    :func:`~int_rules.population.engine.run_population`)."""
    con.execute("CREATE OR REPLACE TEMP TABLE __groups AS SELECT unnest($1::VARCHAR[]) AS code, "
                "unnest($2::INTEGER[]) AS gid",
                [[c for c, _ in compiled.groups], [g for _, g in compiled.groups]])
    con.execute("CREATE OR REPLACE TEMP TABLE __pw_codes AS SELECT unnest($1::VARCHAR[]) AS "
                "code, unnest($2::INTEGER[]) AS prec",
                [list(info.by_code), [p for p, _ in info.by_code.values()]])
    con.execute("""CREATE OR REPLACE TEMP TABLE __relevant AS
        SELECT code FROM __groups UNION SELECT code FROM __pw_codes""")


# -- pathway ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathwayCodes:
    by_code: Mapping[str, tuple[int, int]]  # code -> (precedence, step index)
    death_precedence: int


def pathway_codes(table: n.PathwayTable) -> PathwayCodes:
    """Each pathway code's (precedence, step index), and the death step's precedence."""
    by_code: dict[str, tuple[int, int]] = {}
    for i, step in enumerate(table.steps):
        for code in step.codes or ():
            by_code[code] = (step.precedence, i)
    return PathwayCodes(by_code, table.death_step.precedence)


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


def _pathway(con: duckdb.DuckDBPyConnection, pathway: Pathway, compiled: CompiledPopulation,
             info: PathwayCodes, as_of: dt.date, mode: str) -> int:
    """Build ``pw`` (pid, pw_sig, pw_state, pw_entered, pw_n_findings, pw_may_<fact>...) and
    ``__pw_res`` (per signature: lists of findings, next codes and steps). Returns how many
    distinct signatures were replayed."""
    a = literal(as_of)
    con.execute(f"CREATE OR REPLACE TEMP TABLE __pe AS {pathway_events_sql(compiled, info)}")
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
        table = replay_signatures(pathway, compiled, sigs)
        n_sigs = len(sigs)
        key = "s.sig"
    else:
        table = _with_may(_replay_per_patient(con, pathway, as_of), compiled)
        n_sigs = 0
        key = "CAST(s.pid AS VARCHAR)"
    pathway_results(con, table)
    may_cols = "".join(f", r.may_{name} AS pw_may_{name}" for name in compiled.may_record)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pw AS
        SELECT p.pid, r.sig AS pw_sig, r.state AS pw_state,
               s.dates[r.entered_pos] AS pw_entered, r.n_findings AS pw_n_findings{may_cols}
        FROM pt p LEFT JOIN __psig s USING (pid)
        JOIN __pw_res r ON r.sig = COALESCE({key}, '')""")
    return n_sigs


def replay_signatures(pathway: Pathway, compiled: CompiledPopulation,
                      sigs: Sequence[str]) -> pa.Table:
    """Each distinct signature (and the empty one, of a patient with no pathway event) replayed
    once by the pathway: state, entered position, findings, next codes and steps, and a
    ``may_<fact>`` column for each fact asking whether a code may be recorded."""
    rows = [_replay_signature(pathway, sig) for sig in ["", *sigs]]
    return _with_may(pa.Table.from_pylist(rows, schema=_PW_SCHEMA), compiled)


def _with_may(table: pa.Table, compiled: CompiledPopulation) -> pa.Table:
    """``table`` with ``sig_idx`` (1, 2, ...) and, per ``may_record`` fact, whether any of its
    codes is among the next codes."""
    table = table.append_column("sig_idx", pa.array(range(1, table.num_rows + 1), pa.int32()))
    next_codes = table.column("next_codes").to_pylist()
    for name, fact_codes in compiled.may_record.items():
        table = table.append_column(f"may_{name}", pa.array(
            [any(c in fact_codes for c in codes) for codes in next_codes], pa.bool_()))
    return table


def pathway_results(con: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
    """``__pw_res``: the replayed signatures, with their lists also as text."""
    arrow_table(con, "__pw_arrow", table)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE __pw_res AS
        SELECT *, array_to_string(finding_ids, '{TEXT_SEPARATOR}') AS finding_ids_text,
               array_to_string(next_codes, '{TEXT_SEPARATOR}') AS next_codes_text,
               array_to_string(next_steps, '{TEXT_SEPARATOR}') AS next_steps_text
        FROM __pw_arrow""")
    con.execute("DROP TABLE __pw_arrow")


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


@dataclass(frozen=True)
class FactQueries:
    """The facts as queries: ``tables`` (name, query) to be made in order, each one grouped
    aggregate per level and source; then ``facts``, the query of every accepted patient with
    each fact as a column ``f_<name>`` (derived facts read earlier columns by their aliases)."""

    tables: tuple[tuple[str, str, int], ...]  # (name, query, level)
    facts: str


def fact_queries(compiled: CompiledPopulation) -> FactQueries:
    """The queries computing every fact (:class:`FactQueries`), in ``compiled``'s dialect."""
    plans = compiled.facts
    tables: list[tuple[str, str, int]] = []
    agg_tables: list[str] = []  # joined USING (pid)
    done: dict[str, FactPlan] = {n: p for n, p in plans.items()
                                 if p.stage in ("record", "pathway")}
    for level in range(1, compiled.max_level + 1):
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
            tables.append((name, sql, level))
            agg_tables.append(name)
        for it in (p for p in plans.values() if p.stage == "items" and p.level == level):
            done[it.name] = it
    may = "".join(f", pw.pw_may_{n}" for n in compiled.may_record)

    def select(empty: bool) -> str:
        """Every fact as a column; ``empty``: for patients with no item, each items fact its
        ``empty_sql`` (a constant), so the facts derived from it fold to constants too."""
        values = []
        for name in compiled.order:
            plan = plans[name]
            sql = plan.empty_sql if empty and plan.empty_sql is not None else plan.value_sql
            values.append(f"{sql} AS {fact_column(name)}")  # derived: lateral aliases
        return f"""
        SELECT pid, patient_id, dob, birth_precision, sex, practice, neighbourhood, gp_system,
               dod, rejected_rows, pw_sig, pw_state, pw_entered, pw_n_findings{may},
               {', '.join(values)}"""

    joins = " ".join(f"LEFT JOIN {t} USING (pid)" for t in agg_tables)
    of_items = [t for t in agg_tables if t.endswith("_items")]
    if not of_items:
        return FactQueries(tuple(tables), f"{select(False)} FROM pt LEFT JOIN pw USING (pid) "
                                          f"{joins}")
    # Most people have no item any fact reads (at 1.6 million, 1.3 million): their facts are
    # computed apart, from constants. Every ``__agg_<level>_items`` table holds one row for
    # each patient with a row in ``items`` (each groups it by patient), so the first one says
    # who has any.
    first = of_items[0]
    others = " ".join(f"LEFT JOIN {t} USING (pid)" for t in agg_tables if t not in of_items)
    facts = (f"{select(False)} FROM pt LEFT JOIN pw USING (pid) "
             f"{joins.replace(f'LEFT JOIN {first} ', f'JOIN {first} ', 1)}\n"
             f"        UNION ALL{select(True)} FROM pt LEFT JOIN pw USING (pid) {others} "
             f"WHERE pid NOT IN (SELECT pid FROM {first})")
    return FactQueries(tuple(tables), facts)


def _facts(con: duckdb.DuckDBPyConnection, compiled: CompiledPopulation,
           progress: Callable[[int], None]) -> None:
    """Build ``facts``: every accepted patient with each fact as a column ``f_<name>``."""
    queries = fact_queries(compiled)
    for name, sql, level in queries.tables:
        progress(level)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
    # A view: every consumer (the rule masks, the facts output) computes what it reads once;
    # materialising a hundred columns for every patient would cost more than the joins.
    con.execute(f"CREATE OR REPLACE TEMP VIEW facts AS {queries.facts}")


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


def mask_sql(compiled: CompiledPopulation, keep_facts: Sequence[str]) -> str:
    """The query of ``__cm`` over ``facts``: pid, each rule's condition as one bit of the mask
    columns ``m0, m1, ...``, and the ``keep_facts`` columns."""
    flat = _flat_rules(compiled)
    terms: list[list[str]] = [[] for _ in range(mask_columns(compiled))]
    for fr in flat:
        cond = compiled.rulesets[fr.ruleset].rules[fr.index].condition
        terms[fr.bit // _MASK_BITS].append(
            f"(CASE WHEN {cond} THEN CAST({1 << (fr.bit % _MASK_BITS)} AS BIGINT) "
            "ELSE CAST(0 AS BIGINT) END)")
    masks = [f"CAST({' + '.join(ts) if ts else '0'} AS BIGINT) AS m{k}"
             for k, ts in enumerate(terms)]
    kept = "".join(f", {fact_column(n)}" for n in keep_facts)
    return f"SELECT pid, {', '.join(masks)}{kept} FROM facts"


def _rules(con: duckdb.DuckDBPyConnection, compiled: CompiledPopulation,
           keep_facts: Sequence[str], finding_rulesets: Mapping[str, Mapping[str, str]]) -> int:
    """Build ``__cm`` (pid, condition masks, the ``keep_facts`` columns), then resolve its
    distinct masks (:func:`resolve_rules`). Returns the number of distinct masks."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE __cm AS {mask_sql(compiled, keep_facts)}")
    mcols = ", ".join(f"m{k}" for k in range(mask_columns(compiled)))
    distinct = con.execute(f"SELECT DISTINCT {mcols} FROM __cm").fetchall()
    resolve_rules(con, compiled, [tuple(int(x) for x in r) for r in distinct], finding_rulesets)
    return len(distinct)


def resolve_rules(con: duckdb.DuckDBPyConnection, compiled: CompiledPopulation,
                  distinct: Sequence[tuple[int, ...]],
                  finding_rulesets: Mapping[str, Mapping[str, str]]) -> None:
    """Given ``__cm`` on ``con`` and its distinct masks, build ``__rdim`` (per mask: outputs,
    rule ids, conflict), add a reject for each patient whose ``unique`` rules overlap, and the
    views ``assessed`` (every patient with results) and ``facts_out``."""
    flat = _flat_rules(compiled)
    mcols = ", ".join(f"m{k}" for k in range(mask_columns(compiled)))
    titles = {rule.rule_id: rule.node.title for rs in compiled.rulesets for rule in rs.rules}
    table = _resolve_masks(compiled, flat, sorted(distinct), finding_rulesets, titles)
    table = table.append_column("mask_idx", pa.array(range(1, table.num_rows + 1), pa.int32()))
    arrow_table(con, "__rdim", table)
    con.execute(f"""
        INSERT INTO rejects SELECT '(rules)', NULL, NULL, p.patient_id, d.__conflict
        FROM pt p JOIN __cm c USING (pid) JOIN __rdim d USING ({mcols})
        WHERE d.__conflict IS NOT NULL""")
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW assessed AS
        SELECT c.* FROM __cm c JOIN __rdim d USING ({mcols}) WHERE d.__conflict IS NULL""")
    con.execute("""
        CREATE OR REPLACE TEMP VIEW facts_out AS
        SELECT f.* FROM facts f WHERE f.pid IN (SELECT pid FROM assessed)""")


def mask_columns(compiled: CompiledPopulation) -> int:
    return max(1, -(-len(_flat_rules(compiled)) // _MASK_BITS))


@dataclass(frozen=True)
class _Decided:
    """One ruleset's part of a mask's resolution, for the rules of it whose condition holds:
    the rules that fire, after its hit policy (:func:`~int_rules.model.semantics.select_hits`),
    or the conflict message of a ``unique`` overlap (then none fire); and the cells of its
    outputs. The same for every mask with the same rules of this ruleset holding."""

    rule_ids: tuple[str, ...]
    findings: tuple[dict[str, Any], ...]
    cells: tuple[tuple[str, Any], ...]  # (column, value) of each output (and its text)
    conflict: str | None


def _decide(rs: RulesetPlan, hits: Sequence[int], finding_outputs: Mapping[str, str] | None,
            titles: Mapping[str, str]) -> _Decided:
    """:class:`_Decided` for ruleset ``rs`` with the rules ``hits`` (indices, in declared
    order) holding; ``finding_outputs``: the ruleset's {output: severity} when its fired rules
    are findings."""
    conflict = None
    try:
        fired = select_hits(rs.hit_policy, hits, rs.priority_of)
    except UniqueOverlap:
        fired = ()
        conflict = overlap_message(rs.id, [rs.rules[j].rule_id for j in hits])
    found: list[dict[str, Any]] = []
    if finding_outputs is not None:
        for j in fired:
            rule = rs.rules[j]
            severity = next((finding_outputs[k] for k in rule.then if k in finding_outputs),
                            None)
            found.append({"source": rs.id, "finding_id": rule.rule_id, "severity": severity,
                          "message": titles.get(rule.rule_id, "")})
    res = _results_of(rs, fired)
    cells: list[tuple[str, Any]] = []
    for key, otype in rs.outputs.items():
        col = output_column(rs.id, key)
        if rs.hit_policy == "collect":
            cells += [(col, [_cell(otype, v) for v in res[key]]),
                      (f"{col}__text", _text(otype, res[key]))]
        else:
            cells.append((col, _cell(otype, res[key])))
    return _Decided(tuple(rs.rules[j].rule_id for j in fired), tuple(found), tuple(cells),
                    conflict)


def _results_of(rs: RulesetPlan, fired: Sequence[int]) -> dict[str, Any]:
    """One decision's outputs for the fired rules
    (:func:`~int_rules.model.semantics.aggregate_outputs`)."""
    return aggregate_outputs(rs.decision, [rs.rules[j].node.then for j in fired])


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
    the findings of the ``finding_rulesets`` rules that fire.

    The rulesets are resolved in order, each once per distinct set of its rules holding
    (:func:`_decide`); after a ruleset whose ``unique`` rules overlap, no rule of a later
    ruleset fires, and the mask's conflict is the first such message."""
    n_cols = mask_columns(compiled)
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
    # Each ruleset's rules as (index, mask column, bit within it).
    bits: list[list[tuple[int, int, int]]] = [[] for _ in compiled.rulesets]
    for fr in flat:
        bits[fr.ruleset].append((fr.index, fr.bit // _MASK_BITS, fr.bit % _MASK_BITS))
    decided: dict[tuple[int, tuple[int, ...]], _Decided] = {}
    for mask in masks:
        for k in range(n_cols):
            data[f"m{k}"].append(mask[k])
        conflict: str | None = None
        ids: list[str] = []
        found: list[dict[str, Any]] = []
        for i, rs in enumerate(compiled.rulesets):
            hits = (() if conflict is not None else
                    tuple(j for j, col, bit in bits[i] if mask[col] >> bit & 1))
            d = decided.get((i, hits))
            if d is None:
                d = decided[(i, hits)] = _decide(rs, hits, finding_rulesets.get(rs.id), titles)
            conflict = conflict or d.conflict
            ids += d.rule_ids
            found += d.findings
            for col, value in d.cells:
                data[col].append(value)
        data["__conflict"].append(conflict)
        data["rule_ids"].append(ids)
        data["__findings"].append(found)
        data["rule_ids_text"].append(TEXT_SEPARATOR.join(ids))
    return pa.table(data, schema=pa.schema(fields))


# -- findings and rejects ---------------------------------------------------------------------


def findings(con: duckdb.DuckDBPyConnection, n_masks: int) -> None:
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
