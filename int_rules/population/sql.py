"""The rulebook compiled to DuckDB SQL: facts as grouped aggregates, conditions as boolean
expressions, hit policies as CASE chains.

Nothing here knows a code, a threshold or a rule: everything is read from the loaded
:class:`~int_rules.rulebook.Rulebook`, so the SQL grows with the rulesets. The semantics are
those of the reference engine (:mod:`int_rules.facts`, :mod:`int_rules.conditions`,
:mod:`int_rules.engines.reference`), clause by clause:

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
* hit policies: ``collect`` every rule; ``first`` the first in file order; ``priority`` the
  highest ``priority`` (ties to file order); ``unique`` the one rule, and more than one is
  reported for that patient (the reference raises :class:`~int_rules.HitPolicyError`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..conditions import resolve
from ..facts import FactType
from ..language.schema import AllOf, AnyOf, Condition, FactDef, FactRef, Leaf, Not, ParamRef

if TYPE_CHECKING:
    from ..rulebook import CompiledRuleset, Rulebook

__all__ = [
    "CompiledPopulation",
    "FactPlan",
    "ItemAggregate",
    "RulesetPlan",
    "compile_rulebook",
    "condition_sql",
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


def literal(value: Any) -> str:
    """A Python value as a DuckDB literal."""
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
    return "'" + text.replace("'", "''") + "'"


def sql_type(ftype: FactType) -> str:
    return {"bool": "BOOLEAN", "int": "BIGINT", "number": "DOUBLE", "date": "DATE",
            "category": "VARCHAR", "text": "VARCHAR"}[ftype.kind]


def fact_column(name: str) -> str:
    """The column holding a fact inside the engine (``f_`` + its name)."""
    return f"f_{name}"


def _days_before(as_of: dt.date, days: int) -> dt.date:
    try:
        return as_of - dt.timedelta(days=days)
    except OverflowError:
        return dt.date.min


# -- conditions -------------------------------------------------------------------------------


def condition_sql(cond: Condition, types: Mapping[str, FactType], params: Mapping[str, Any],
                  as_of: dt.date, column: Callable[[str], str] = fact_column,
                  never_null: frozenset[str] = frozenset()) -> str:
    """A ``when`` tree as a SQL boolean that is never NULL (two-valued logic).

    ``never_null`` names facts that always have a value (counts, exists, derived...): their
    tests need no ``COALESCE``.
    """
    def sub(c: Condition) -> str:
        return condition_sql(c, types, params, as_of, column, never_null)

    if isinstance(cond, AllOf):
        return "(" + " AND ".join(sub(c) for c in cond.all) + ")"
    if isinstance(cond, AnyOf):
        return "(" + " OR ".join(sub(c) for c in cond.any) + ")"
    if isinstance(cond, Not):
        return "(NOT " + sub(cond.not_) + ")"
    if not isinstance(cond, Leaf):  # {condition: NAME} is expanded when the rulebook loads
        raise TypeError(f"unexpanded condition reference: {cond!r}")
    sql = _leaf_sql(cond, types, params, as_of, column)
    operand = cond.operand
    both_known = cond.fact in never_null and (not isinstance(operand, FactRef)
                                              or operand.fact in never_null)
    if both_known and sql.startswith("COALESCE(") and sql.endswith(", FALSE)"):
        inner = sql[len("COALESCE("):-len(", FALSE)")]
        if inner.endswith(" = TRUE"):
            return inner[: -len(" = TRUE")]
        if inner.endswith(" = FALSE"):
            return f"(NOT {inner[: -len(' = FALSE')]})"
        return f"({inner})"
    return sql


def _rank(col: str, scale: tuple[str, ...]) -> str:
    whens = " ".join(f"WHEN {literal(c)} THEN {i}" for i, c in enumerate(scale))
    return f"(CASE {col} {whens} END)"


def _leaf_sql(leaf: Leaf, types: Mapping[str, FactType], params: Mapping[str, Any],
              as_of: dt.date, column: Callable[[str], str]) -> str:
    name = leaf.fact
    ftype = types[name]
    col = column(name)
    op = leaf.op
    raw = leaf.operand

    if op == "present":
        return f"({col} IS NOT NULL)" if bool(raw) else f"({col} IS NULL)"

    if isinstance(raw, FactRef):
        other = column(raw.fact)
        otype = types[raw.fact]
        if op in ("after", "before"):
            test = f"{col} {'>' if op == 'after' else '<'} {other}"
        elif op in ("equals", "not_equals"):
            test = f"{col} {'=' if op == 'equals' else '<>'} {other}"
        elif (ftype.kind == "category" and ftype.scale and otype.scale == ftype.scale):
            test = f"{_rank(col, ftype.scale)} {_ORDER[op]} {_rank(other, ftype.scale)}"
        else:
            test = f"{col} {_ORDER[op]} {other}"
        return f"COALESCE({test}, FALSE)"

    value = resolve(raw, params, (), op)
    if op == "within_days":
        start = _days_before(as_of, int(value))
        return f"COALESCE({col} BETWEEN {literal(start)} AND {literal(as_of)}, FALSE)"
    if op == "older_than_days":
        return f"COALESCE({col} < {literal(_days_before(as_of, int(value)))}, FALSE)"
    if op == "in":
        items = ", ".join(literal(x) for x in value)
        return f"COALESCE({col} IN ({items}), FALSE)"
    if op == "equals":
        return f"COALESCE({col} = {literal(value)}, FALSE)"
    if op == "not_equals":
        return f"COALESCE({col} <> {literal(value)}, FALSE)"
    sym = _ORDER[op]
    if ftype.kind == "category":
        assert ftype.scale is not None
        rank = {c: i for i, c in enumerate(ftype.scale)}
        return f"COALESCE({_rank(col, ftype.scale)} {sym} {rank[value]}, FALSE)"
    return f"COALESCE({col} {sym} {literal(value)}, FALSE)"


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
    for bool and count facts.
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


@dataclass(frozen=True)
class RulePlan:
    rule_id: str
    condition: str
    then: Mapping[str, Any]
    priority: int | None


@dataclass(frozen=True)
class RulesetPlan:
    """A ruleset's rules as SQL, with what its hit policy needs."""

    id: str
    hit_policy: str
    rules: tuple[RulePlan, ...]
    outputs: Mapping[str, str]  # output key -> its type (category, bool, text, code)


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


def _ids(value: str | list[str] | None) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _window(fdef: FactDef, params: Mapping[str, Any], as_of: dt.date, date_col: str,
            anchor: Callable[[str], str]) -> tuple[str, bool]:
    """The fact's window over ``date_col`` as SQL, and whether it reads per-patient columns."""
    if fdef.window == "before_birth":
        return f"{date_col} < dob", True
    if fdef.window == "after_death":
        return (f"(dod IS NOT NULL AND dod < {literal(as_of)} AND {date_col} > dod AND "
                f"{date_col} <= {literal(as_of)})", True)
    if fdef.window == "after_as_of":
        return f"{date_col} > {literal(as_of)}", False
    parts = [f"{date_col} <= {literal(as_of)}"]
    needs = False
    days = fdef.within_days
    if days is not None:
        n = params[days.param] if hasattr(days, "param") else days
        parts.append(f"{date_col} >= {literal(_days_before(as_of, int(n)))}")
    if fdef.since is not None:
        a = anchor(fdef.since)
        parts.append(f"({a} IS NULL OR {date_col} > {a})")
        needs = True
    if fdef.from_ is not None:
        a = anchor(fdef.from_)
        parts.append(f"({a} IS NULL OR {date_col} >= {a})")
        needs = True
    if fdef.until is not None:
        a = anchor(fdef.until)
        parts.append(f"({a} IS NOT NULL AND {date_col} <= {a})")
        needs = True
    return " AND ".join(parts), needs


def _where(source: str, where: Mapping[str, Any] | None) -> list[str]:
    return [f"{key} = {literal(value)}" for key, value in (where or {}).items()]


def compile_rulebook(book: Rulebook, as_of: dt.date) -> CompiledPopulation:
    """Compile every fact and rule of ``book`` to SQL for a run as of ``as_of``."""
    groups = _Groups()
    plans: dict[str, FactPlan] = {}
    types = {name: f.type for name, f in book.facts.items()}
    params = book.fact_params
    may_record: dict[str, frozenset[str]] = {}
    age = (f"(year({literal(as_of)}) - year(dob) - CASE WHEN month(dob) > {as_of.month} OR "
           f"(month(dob) = {as_of.month} AND day(dob) > {as_of.day}) THEN 1 ELSE 0 END)")

    # Facts that always have a value: their tests need no COALESCE. (age: the date of birth is
    # required; the pathway always has a state.)
    never_null: set[str] = set()
    for name in book.fact_order:
        fdef = book.facts_file.facts[name]
        if (fdef.kind in ("exists", "count", "derived", "codelist_available", "age")
                or (fdef.kind == "pathway" and fdef.field in ("state", "findings",
                                                              "may_record"))
                or (fdef.kind == "constant")):
            never_null.add(name)

    def level_of(name: str) -> int:
        plan = plans[name]
        return plan.level if plan.stage == "items" else 0

    for name in book.fact_order:
        fdef = book.facts_file.facts[name]
        compiled = book.facts[name]
        ftype = compiled.type
        kind = fdef.kind
        if kind == "age":
            plans[name] = FactPlan(name, kind, ftype, "record", age)
        elif kind == "attribute":
            plans[name] = FactPlan(name, kind, ftype, "record", str(fdef.field))
        elif kind == "constant":
            raw = fdef.value
            value = params[raw.param] if isinstance(raw, ParamRef) else raw
            plans[name] = FactPlan(name, kind, ftype, "record",
                                   f"CAST({literal(value)} AS {sql_type(ftype)})")
        elif kind == "codelist_available":
            available = any(book.codelists[c].codes for c in _ids(fdef.codelist))
            plans[name] = FactPlan(name, kind, ftype, "record", literal(available))
        elif kind == "pathway":
            field = fdef.field
            if field == "state":
                plans[name] = FactPlan(name, kind, ftype, "pathway", "pw_state")
            elif field == "entered":
                plans[name] = FactPlan(name, kind, ftype, "pathway", "pw_entered")
            elif field == "findings":
                plans[name] = FactPlan(name, kind, ftype, "pathway", "pw_n_findings")
            else:
                codes = frozenset(c for cid in _ids(fdef.codelist)
                                  for c in book.codelists[cid].codes)
                may_record[name] = codes
                plans[name] = FactPlan(name, kind, ftype, "pathway", f"pw_may_{name}")
        elif kind == "derived":
            assert fdef.when is not None
            plans[name] = FactPlan(name, kind, ftype, "derived",
                                   condition_sql(fdef.when, types, params, as_of,
                                                 never_null=frozenset(never_null)))
        elif kind == "latest_of":
            assert fdef.categories is not None
            anchors = [a for a in (fdef.since, fdef.from_, fdef.until) if a is not None]
            level = 1 + max((level_of(a) for a in anchors), default=0)
            window, needs = _window(fdef, params, as_of, "d", fact_column)
            aggs = []
            cats = []
            for i, (cat, value) in enumerate(fdef.categories.items()):
                ids = _ids(value)
                codes = frozenset(c for cid in ids for c in book.codelists[cid].codes)
                gid = groups.group(frozenset(ids), codes)
                agg_name = f"a_{name}__{i}"
                aggs.append(ItemAggregate(agg_name, f"max(d) FILTER (WHERE gid = {gid} AND "
                                                    f"{window})"))
                cats.append((cat, agg_name))
            greatest = f"greatest({', '.join(a for _, a in cats)})"
            whens = " ".join(f"WHEN {a} = {greatest} THEN {literal(c)}" for c, a in cats)
            plans[name] = FactPlan(name, kind, ftype, "items", f"CASE {whens} END", "items",
                                   level, tuple(aggs), needs, fdef.window, tuple(anchors))
        else:
            assert kind in ITEM_KINDS, kind
            source = fdef.source
            anchors = [a for a in (fdef.since, fdef.from_, fdef.until) if a is not None]
            level = 1 + max((level_of(a) for a in anchors), default=0)
            date_col = "d"
            window, needs = _window(fdef, params, as_of, date_col, fact_column)
            conds = [window, *_where(source, fdef.where)]
            if source == "events":
                if fdef.codelist is None:
                    # Every event, not only those the codelists match: scanned from the input
                    # (``__ok``: the row is accepted).
                    table = "ev_all"
                    conds.insert(0, "__ok")
                else:
                    ids = _ids(fdef.codelist)
                    codes = frozenset(c for cid in ids for c in book.codelists[cid].codes)
                    gid = groups.group(frozenset(ids), codes)
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
                vcol = _VALUE_COL[fdef.field or "value"]
                agg = (f"arg_max(CAST({vcol} AS DOUBLE), struct_pack({date_col}, seq)) "
                       f"FILTER (WHERE {filt} AND {vcol} IS NOT NULL)")
                value_sql = agg_name
            plans[name] = FactPlan(name, kind, ftype, "items", value_sql, table, level,
                                   (ItemAggregate(agg_name, agg),), needs, fdef.window,
                                   tuple(anchors))

    rulesets = tuple(_compile_ruleset(rs, types, as_of, frozenset(never_null))
                     for rs in book.rulesets)
    max_level = max((p.level for p in plans.values() if p.stage == "items"), default=0)
    return CompiledPopulation(as_of, plans, tuple(book.fact_order), tuple(groups.rows),
                              max_level, may_record, rulesets)


def _compile_ruleset(rs: CompiledRuleset, types: Mapping[str, FactType],
                     as_of: dt.date, never_null: frozenset[str]) -> RulesetPlan:
    rules = tuple(
        RulePlan(rule.id, condition_sql(rule.definition.when, types, rs.params, as_of,
                                        never_null=never_null),
                 dict(rule.definition.then), rule.definition.priority)
        for rule in rs.rules
    )
    outputs = {key: out.type for key, out in rs.definition.outputs.items()}
    return RulesetPlan(rs.id, rs.definition.hit_policy, rules, outputs)
