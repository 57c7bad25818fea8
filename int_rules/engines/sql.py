"""The rule model compiled to SQL: facts as grouped aggregates, conditions as boolean
expressions, in DuckDB's dialect or Spark's (:class:`Dialect`: only literals, type names and
the latest-value aggregate are written differently; every clause below means the same in both).

Nothing here knows a code, a threshold or a rule: everything is read from the rule model
(:mod:`int_rules.model.nodes`), so the SQL grows with the rulesets. The semantics are those of
the reference engine (:mod:`int_rules.engines.reference`), clause by clause, and the spec suite
(``tests/spec/``) holds both to them:

* a fact's window is a conjunction: on or before ``as_of``; ``within_days``: on or after
  ``as_of - N``; ``since``: strictly after the anchor (no limit when it is missing); ``from``: on
  or after it (likewise); ``until``: on or before it, and nothing at all when it is missing;
  the data-quality windows ``before_birth``, ``after_death``, ``after_as_of`` replace it;
* ``latest_value`` takes the latest item *that has a value*, same-day ties to the one given
  last in the input (the reference sorts stably by date);
* ``latest_of`` takes the category with the latest event, same-day ties to the category listed
  first;
* two-valued logic: every test is ``COALESCE(test, FALSE)``, so a test of a missing value is
  false and ``NOT`` negates plainly;
* windows reaching back past 0001-01-01 start there
  (:func:`~int_rules.model.semantics.days_before`);
* hit policies are resolved by :func:`int_rules.model.semantics.select_hits`, per distinct set
  of conditions that hold (see :mod:`int_rules.engines.duckdb`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..model import nodes as n
from ..model.nodes import ValueType as FactType
from ..model.semantics import days_before

__all__ = [
    "DUCKDB",
    "SPARK",
    "CompiledPopulation",
    "Dialect",
    "FactPlan",
    "ItemAggregate",
    "RulesetPlan",
    "age_sql",
    "compile_model",
    "condition_sql",
    "death_after_sql",
    "fact_column",
    "literal",
    "sql_type",
]

ITEM_KINDS = frozenset({"exists", "count", "latest_date", "first_date", "latest_value"})
#: Every item the facts read is one row of the engine's ``items`` table: events matched to a
#: codelist group (``gid``), admissions, risk scores and monitoring (``src`` says which), with
#: one date column ``d`` and one number ``value`` (for admissions, the length of stay).
ITEM_SOURCES = {"events": 0, "admissions": 1, "risk_scores": 2, "monitoring": 3}
_VALUE_COL = {"value": "value", "length_of_stay": "value"}
_ORDER = {"at_least": ">=", "at_most": "<=", "greater_than": ">", "less_than": "<"}


@dataclass(frozen=True)
class Dialect:
    """How one SQL engine writes what the compiled SQL needs beyond the common core.

    ``backslash_escapes``: string literals escape ``\\`` and ``'`` with a backslash (Spark),
    instead of doubling the quote (DuckDB, standard SQL: in Spark two adjacent literals are
    joined, so ``'it''s'`` would read ``its``). ``text_type``: the type name of text.
    ``arg_max``: the aggregate giving the value at the greatest ordering key.
    ``struct``: a row of values ordered field by field. ``days_between``: the days from one
    date to a later one (``{start}`` and ``{end}`` in the template).
    """

    name: str
    backslash_escapes: bool
    text_type: str
    arg_max: str
    struct: str
    days_between: str

    def days(self, start: str, end: str) -> str:
        """Whole days from the date ``start`` to the date ``end`` (negative if earlier)."""
        return self.days_between.format(start=start, end=end)

    def literal(self, value: Any) -> str:
        """A Python value as a literal of this dialect."""
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            return f"CAST({value!r} AS DOUBLE)"
        if isinstance(value, dt.date):
            return f"DATE '{value.isoformat()}'"
        text = str(value)
        if self.backslash_escapes:
            return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return "'" + text.replace("'", "''") + "'"

    def sql_type(self, ftype: FactType) -> str:
        """The column type of a fact of type ``ftype``."""
        return {"bool": "BOOLEAN", "int": "BIGINT", "number": "DOUBLE", "date": "DATE",
                "category": self.text_type, "text": self.text_type}[ftype.kind]


DUCKDB = Dialect("duckdb", backslash_escapes=False, text_type="VARCHAR", arg_max="arg_max",
                 struct="struct_pack", days_between="date_diff('day', {start}, {end})")
SPARK = Dialect("spark", backslash_escapes=True, text_type="STRING", arg_max="max_by",
                struct="struct", days_between="datediff({end}, {start})")


def literal(value: Any) -> str:
    """A Python value as a DuckDB literal."""
    return DUCKDB.literal(value)


def sql_type(ftype: FactType) -> str:
    return DUCKDB.sql_type(ftype)


def fact_column(name: str) -> str:
    """The column holding a fact inside the engine (``f_`` + its name)."""
    return f"f_{name}"


def age_sql(as_of: dt.date, dob: str) -> str:
    """Whole years from the date in column ``dob`` to ``as_of``
    (:func:`int_rules.model.semantics.age_in_years`); the same text in every dialect."""
    return (f"(year({literal(as_of)}) - year({dob}) - CASE WHEN month({dob}) > "
            f"{as_of.month} OR (month({dob}) = {as_of.month} AND day({dob}) > {as_of.day}) "
            f"THEN 1 ELSE 0 END)")


def death_after_sql(as_of: dt.date, dod: str) -> str:
    """Whether the date in column ``dod`` is after ``as_of``, false when it is NULL
    (:func:`int_rules.model.semantics.death_after_as_of`); the same text in every dialect."""
    return f"COALESCE({dod} > {literal(as_of)}, FALSE)"


# -- conditions -------------------------------------------------------------------------------


def condition_sql(cond: n.Condition, types: Mapping[str, FactType], as_of: dt.date,
                  column: Callable[[str], str] = fact_column,
                  never_null: frozenset[str] = frozenset(),
                  output: Callable[[n.OutputIs], str] | None = None,
                  dialect: Dialect = DUCKDB) -> str:
    """A condition as a SQL boolean that is never NULL (two-valued logic).

    ``never_null`` names facts that always have a value (counts, exists, derived...): their
    tests need no ``COALESCE``. ``output`` writes a test of a decision's output (where the
    outputs are columns, as in the dashboard).
    """
    def sub(c: n.Condition) -> str:
        return condition_sql(c, types, as_of, column, never_null, output, dialect)

    if isinstance(cond, n.OutputIs):
        if output is None:
            raise ValueError("a test of a decision's output needs the outputs as columns")
        return output(cond)

    if isinstance(cond, n.All):
        return "(" + " AND ".join(sub(c) for c in cond.parts) + ")"
    if isinstance(cond, n.AnyOf):
        return "(" + " OR ".join(sub(c) for c in cond.parts) + ")"
    if isinstance(cond, n.Not):
        return "(NOT " + sub(cond.part) + ")"
    sql = _leaf_sql(cond, types, as_of, column, dialect)
    both_known = cond.fact in never_null and (not isinstance(cond, n.CompareFacts)
                                              or cond.other in never_null)
    if both_known and sql.startswith("COALESCE(") and sql.endswith(", FALSE)"):
        inner = sql[len("COALESCE("):-len(", FALSE)")]
        if inner.endswith(" = TRUE"):
            return inner[: -len(" = TRUE")]
        if inner.endswith(" = FALSE"):
            return f"(NOT {inner[: -len(' = FALSE')]})"
        return f"({inner})"
    return sql


def _rank(col: str, scale: tuple[str, ...], dialect: Dialect) -> str:
    whens = " ".join(f"WHEN {dialect.literal(c)} THEN {i}" for i, c in enumerate(scale))
    return f"(CASE {col} {whens} END)"


def _leaf_sql(leaf: n.Present | n.Compare | n.InSet | n.DaysAgo | n.CompareFacts,
              types: Mapping[str, FactType], as_of: dt.date,
              column: Callable[[str], str], dialect: Dialect) -> str:
    ftype = types[leaf.fact]
    col = column(leaf.fact)

    if isinstance(leaf, n.Present):
        return f"({col} IS NOT NULL)" if leaf.present else f"({col} IS NULL)"
    if isinstance(leaf, n.CompareFacts):
        other = column(leaf.other)
        otype = types[leaf.other]
        op = leaf.op
        if op in ("after", "before"):
            test = f"{col} {'>' if op == 'after' else '<'} {other}"
        elif op in ("equals", "not_equals"):
            test = f"{col} {'=' if op == 'equals' else '<>'} {other}"
        elif ftype.kind == "category" and ftype.scale and otype.scale == ftype.scale:
            rank_col = _rank(col, ftype.scale, dialect)
            test = f"{rank_col} {_ORDER[op]} {_rank(other, ftype.scale, dialect)}"
        else:
            test = f"{col} {_ORDER[op]} {other}"
        return f"COALESCE({test}, FALSE)"
    if isinstance(leaf, n.DaysAgo):
        start = dialect.literal(days_before(as_of, leaf.days))
        if leaf.op == "within_days":
            return f"COALESCE({col} BETWEEN {start} AND {dialect.literal(as_of)}, FALSE)"
        return f"COALESCE({col} < {start}, FALSE)"
    if isinstance(leaf, n.InSet):
        items = ", ".join(dialect.literal(x) for x in leaf.values)
        return f"COALESCE({col} IN ({items}), FALSE)"
    value = leaf.value
    if leaf.op == "equals":
        return f"COALESCE({col} = {dialect.literal(value)}, FALSE)"
    if leaf.op == "not_equals":
        return f"COALESCE({col} <> {dialect.literal(value)}, FALSE)"
    sym = _ORDER[leaf.op]
    if ftype.kind == "category":
        assert ftype.scale is not None
        rank = {c: i for i, c in enumerate(ftype.scale)}
        return f"COALESCE({_rank(col, ftype.scale, dialect)} {sym} {rank[str(value)]}, FALSE)"
    return f"COALESCE({col} {sym} {dialect.literal(value)}, FALSE)"


# -- facts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemAggregate:
    """One aggregate column of an item query (``name`` AS ``sql``)."""

    name: str
    sql: str


@dataclass(frozen=True)
class FactPlan:
    """How one fact is computed.

    ``stage``: ``record`` (from the patients table), ``pathway`` (from the replay), ``items``
    (aggregated from a source at ``level``), ``derived`` (an expression over other facts).
    ``source`` for items: ``items`` (events matched to codelists, admissions, risk scores,
    monitoring) or ``ev_all`` (every event, read from the input rows). ``value_sql`` gives the
    fact's value from the aggregate columns (or the record/pathway columns); it is never NULL
    for bool and count facts. ``empty_sql``, for a fact of the ``items`` source: its value for a
    patient with no item at all (no row in any aggregate table of that source), which is what
    ``value_sql`` gives when every aggregate is NULL: ``FALSE``, ``0`` or a typed NULL.
    """

    name: str
    kind: str
    type: FactType
    stage: str
    value_sql: str
    source: str | None = None
    level: int = 0
    aggregates: tuple[ItemAggregate, ...] = ()
    needs_patient: bool = False  # the item query reads per-patient columns (anchors, dob, dod)
    window: str | None = None  # the data-quality window, if any (before_birth, ...)
    anchors: tuple[str, ...] = ()  # the facts whose dates bound the window (since/from/until)
    empty_sql: str | None = None  # items facts: the value with no item (see above)


@dataclass(frozen=True)
class RulePlan:
    rule_id: str
    condition: str
    then: Mapping[str, Any]
    priority: int | None
    node: n.Rule


@dataclass(frozen=True)
class RulesetPlan:
    """A ruleset's rules as SQL, with what its hit policy needs."""

    id: str
    hit_policy: str
    rules: tuple[RulePlan, ...]
    outputs: Mapping[str, str]  # output key -> its type (category, bool, text, code)
    decision: n.Decision

    def priority_of(self, index: int) -> int | None:
        """The priority of rule ``index`` (for the ``priority`` hit policy)."""
        return self.rules[index].priority


@dataclass(frozen=True)
class CompiledPopulation:
    """Everything the population engine runs, compiled from one rulebook for one ``as_of``."""

    as_of: dt.date
    facts: Mapping[str, FactPlan]
    order: tuple[str, ...]
    groups: tuple[tuple[str, int], ...]  # (code, group id): events matched to codelists
    max_level: int
    may_record: Mapping[str, frozenset[str]]  # fact -> the pathway codes it asks about
    rulesets: tuple[RulesetPlan, ...]
    dialect: Dialect = DUCKDB

    def level_sources(self, level: int) -> list[str]:
        seen: list[str] = []
        for f in self.facts.values():
            if f.stage == "items" and f.level == level and f.source not in seen:
                assert f.source is not None
                seen.append(f.source)
        return seen

    def items_at(self, level: int, source: str) -> list[FactPlan]:
        return [f for f in self.facts.values()
                if f.stage == "items" and f.level == level and f.source == source]


class _Groups:
    """Event codelist groups: each distinct set of codelists a fact reads gets an id."""

    def __init__(self) -> None:
        self.ids: dict[frozenset[str], int] = {}
        self.rows: list[tuple[str, int]] = []

    def group(self, codelist_ids: frozenset[str], codes: frozenset[str]) -> int:
        gid = self.ids.get(codelist_ids)
        if gid is None:
            gid = len(self.ids)
            self.ids[codelist_ids] = gid
            self.rows.extend((code, gid) for code in sorted(codes))
        return gid


def _window(window: n.Window, as_of: dt.date, date_col: str,
            anchor: Callable[[str], str], dialect: Dialect) -> tuple[str, bool]:
    """The fact's window over ``date_col`` as SQL, and whether it reads per-patient columns."""
    if window.special == "before_birth":
        return f"{date_col} < dob", True
    if window.special == "after_death":
        return (f"(dod IS NOT NULL AND dod < {dialect.literal(as_of)} AND {date_col} > dod AND "
                f"{date_col} <= {dialect.literal(as_of)})", True)
    if window.special == "after_as_of":
        return f"{date_col} > {dialect.literal(as_of)}", False
    parts = [f"{date_col} <= {dialect.literal(as_of)}"]
    needs = False
    if window.within_days is not None:
        parts.append(f"{date_col} >= {dialect.literal(days_before(as_of, window.within_days))}")
    if window.since is not None:
        a = anchor(window.since)
        parts.append(f"({a} IS NULL OR {date_col} > {a})")
        needs = True
    if window.from_ is not None:
        a = anchor(window.from_)
        parts.append(f"({a} IS NULL OR {date_col} >= {a})")
        needs = True
    if window.until is not None:
        a = anchor(window.until)
        parts.append(f"({a} IS NOT NULL AND {date_col} <= {a})")
        needs = True
    return " AND ".join(parts), needs


def _where(where: tuple[tuple[str, Any], ...], dialect: Dialect) -> list[str]:
    return [f"{key} = {dialect.literal(value)}" for key, value in where]


def compile_model(model: n.RuleModel, as_of: dt.date,
                  dialect: Dialect = DUCKDB) -> CompiledPopulation:
    """Compile every fact and rule of ``model`` to SQL (in ``dialect``) for a run as of
    ``as_of``."""
    groups = _Groups()
    plans: dict[str, FactPlan] = {}
    types = model.fact_types
    may_record: dict[str, frozenset[str]] = {}
    age = age_sql(as_of, "dob")
    # Facts that always have a value: their tests need no COALESCE.
    never_null = frozenset(f.name for f in model.facts if not f.nullable)

    def level_of(name: str) -> int:
        plan = plans[name]
        return plan.level if plan.stage == "items" else 0

    for fact in model.facts:
        name, ftype, kind = fact.name, fact.type, fact.kind
        if isinstance(fact, n.AgeFact):
            # Typed explicitly: year() is a BIGINT in DuckDB and an INT in Spark.
            plans[name] = FactPlan(name, kind, ftype, "record",
                                   f"CAST({age} AS {dialect.sql_type(ftype)})")
        elif isinstance(fact, n.AttributeFact):
            plans[name] = FactPlan(name, kind, ftype, "record", fact.field)
        elif isinstance(fact, n.ConstantFact):
            value = dialect.literal(fact.value)
            plans[name] = FactPlan(name, kind, ftype, "record",
                                   f"CAST({value} AS {dialect.sql_type(ftype)})")
        elif isinstance(fact, n.CodelistAvailableFact):
            plans[name] = FactPlan(name, kind, ftype, "record", dialect.literal(fact.available))
        elif isinstance(fact, n.DeathAfterAsOfFact):
            plans[name] = FactPlan(name, kind, ftype, "record", death_after_sql(as_of, "dod"))
        elif isinstance(fact, n.PathwayFact):
            if fact.field == "may_record":
                assert fact.codes is not None
                may_record[name] = fact.codes.codes
                plans[name] = FactPlan(name, kind, ftype, "pathway", f"pw_may_{name}")
            else:
                column = {"state": "pw_state", "entered": "pw_entered",
                          "findings": "pw_n_findings"}[fact.field]
                plans[name] = FactPlan(name, kind, ftype, "pathway", column)
        elif isinstance(fact, n.DerivedFact):
            plans[name] = FactPlan(name, kind, ftype, "derived",
                                   condition_sql(fact.condition, types, as_of,
                                                 never_null=never_null, dialect=dialect))
        elif isinstance(fact, n.LatestOfFact):
            anchors = fact.window.anchors
            level = 1 + max((level_of(a) for a in anchors), default=0)
            window, needs = _window(fact.window, as_of, "d", fact_column, dialect)
            aggs = []
            cats = []
            for i, (cat, cs) in enumerate(fact.categories):
                gid = groups.group(frozenset(cs.codelists), cs.codes)
                agg_name = f"a_{name}__{i}"
                aggs.append(ItemAggregate(agg_name, f"max(d) FILTER (WHERE gid = {gid} AND "
                                                    f"{window})"))
                cats.append((cat, agg_name))
            greatest = f"greatest({', '.join(a for _, a in cats)})"
            whens = " ".join(f"WHEN {a} = {greatest} THEN {dialect.literal(c)}" for c, a in cats)
            plans[name] = FactPlan(name, kind, ftype, "items", f"CASE {whens} END", "items",
                                   level, tuple(aggs), needs, fact.window.special, anchors,
                                   f"CAST(NULL AS {dialect.sql_type(ftype)})")
        else:
            assert isinstance(fact, n.ItemFact), kind
            source = fact.source
            anchors = fact.window.anchors
            level = 1 + max((level_of(a) for a in anchors), default=0)
            date_col = "d"
            window, needs = _window(fact.window, as_of, date_col, fact_column, dialect)
            conds = [window, *_where(fact.where, dialect)]
            if source == "events":
                if fact.codes is None:
                    # Every event, not only those the codelists match: scanned from the input
                    # (``__ok``: the row is accepted).
                    table = "ev_all"
                    conds.insert(0, "__ok")
                else:
                    gid = groups.group(frozenset(fact.codes.codelists), fact.codes.codes)
                    table = "items"
                    conds.insert(0, f"gid = {gid}")
            else:
                table = "items"
                conds.insert(0, f"src = {ITEM_SOURCES[source]}")
            filt = " AND ".join(conds)
            agg_name = f"a_{name}"
            if kind == "exists":
                agg = f"count(*) FILTER (WHERE {filt}) > 0"
                value_sql = f"COALESCE({agg_name}, FALSE)"
            elif kind == "count":
                agg = f"count(*) FILTER (WHERE {filt})"
                value_sql = f"COALESCE({agg_name}, 0)"
            elif kind == "latest_date":
                agg = f"max({date_col}) FILTER (WHERE {filt})"
                value_sql = agg_name
            elif kind == "first_date":
                agg = f"min({date_col}) FILTER (WHERE {filt})"
                value_sql = agg_name
            else:
                vcol = _VALUE_COL[fact.value_field]
                agg = (f"{dialect.arg_max}(CAST({vcol} AS DOUBLE), "
                       f"{dialect.struct}({date_col}, seq)) "
                       f"FILTER (WHERE {filt} AND {vcol} IS NOT NULL)")
                value_sql = agg_name
            empty = {"exists": "FALSE", "count": "0"}.get(
                kind, f"CAST(NULL AS {dialect.sql_type(ftype)})")
            plans[name] = FactPlan(name, kind, ftype, "items", value_sql, table, level,
                                   (ItemAggregate(agg_name, agg),), needs, fact.window.special,
                                   anchors, empty if table == "items" else None)

    rulesets = tuple(_compile_decision(d, types, as_of, never_null, dialect)
                     for d in model.decisions)
    max_level = max((p.level for p in plans.values() if p.stage == "items"), default=0)
    return CompiledPopulation(as_of, plans, tuple(f.name for f in model.facts),
                              tuple(groups.rows), max_level, may_record, rulesets, dialect)


def _compile_decision(decision: n.Decision, types: Mapping[str, FactType],
                      as_of: dt.date, never_null: frozenset[str],
                      dialect: Dialect) -> RulesetPlan:
    rules = tuple(
        RulePlan(rule.id, condition_sql(rule.condition, types, as_of, never_null=never_null,
                                        dialect=dialect),
                 dict(rule.then), rule.priority, rule)
        for rule in decision.rules
    )
    outputs = {o.name: o.type for o in decision.outputs}
    return RulesetPlan(decision.id, decision.hit_policy, rules, outputs, decision)
