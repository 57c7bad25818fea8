"""The INT development dashboard: figures per neighbourhood (``rulesets/dashboard.yaml``).

The file says who is counted (``population``), what each figure counts (``measures``: a
condition in the ruleset language that may also test a ruleset output; one count per value of
an output or category fact; a share of two counts) and what the guidance expects (``expect``:
``about`` a figure within a tolerance, or ``between`` two figures). This module validates it
(every problem located ``file:line:column``), compiles it to one grouped SQL query over a
population run, and writes ``dashboard.csv``. No figure is written here: the guide's "about 3%"
and "120-200" live, cited, in the YAML.

A measure that reads a ruleset or fact this rulebook does not have is reported as *not
available* (with the reason) rather than failing the run, so a reduced rulebook still gets the
rest of its dashboard; ``tests/test_population_dashboard.py`` checks that the bundled rulebook
has every measure.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from ..engines.duckdb import output_column
from ..engines.sql import condition_sql, literal
from ..errors import Location, RulesetError, RulesetErrors
from ..language.plain import describe_leaf, format_value
from ..language.schema import Citation, Leaf, Parameter, ParamRef, Scalar
from ..language.yamlsrc import load_yaml, locate, shown_path, validate_located
from ..model import nodes
from ..model.conditions import ConditionError, resolve_condition
from .csvsafe import neutralise

if TYPE_CHECKING:
    import duckdb

    from ..rulebook import Rulebook
    from .engine import PopulationRun

__all__ = [
    "Dashboard",
    "DashboardTable",
    "Measure",
    "compute_dashboard",
    "load_dashboard",
    "write_dashboard_csv",
]

_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
ALL_NEIGHBOURHOODS = "All neighbourhoods"
NOT_RECORDED = "(neighbourhood not recorded)"


# -- the file's schema ------------------------------------------------------------------------


class OutputTest(BaseModel):
    """A test of a ruleset output: ``{output: RULESET.OUTPUT, equals: VALUE}`` (for a list
    output: the list contains the value) or ``{output: ..., present: true|false}``."""

    model_config = _STRICT
    output: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
    equals: Scalar | None = None
    present: bool | None = None


class DAll(BaseModel):
    model_config = _STRICT
    all: list[DCondition] = Field(min_length=1)


class DAny(BaseModel):
    model_config = _STRICT
    any: list[DCondition] = Field(min_length=1)


class DNot(BaseModel):
    model_config = _STRICT
    not_: DCondition = Field(alias="not")


def _kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in ("all", "any", "not", "output"):
            if key in value:
                return key
        return "fact"
    if isinstance(value, BaseModel):
        return {DAll: "all", DAny: "any", DNot: "not", OutputTest: "output",
                Leaf: "fact"}.get(type(value))
    return None


DCondition = Annotated[
    Annotated[DAll, Tag("all")] | Annotated[DAny, Tag("any")] | Annotated[DNot, Tag("not")]
    | Annotated[OutputTest, Tag("output")] | Annotated[Leaf, Tag("fact")],
    Discriminator(_kind, custom_error_type="condition",
                  custom_error_message="a condition must be {all: [...]}, {any: [...]}, "
                  "{not: ...}, {fact: NAME, <operator>: VALUE} or {output: RULESET.OUTPUT, "
                  "equals|present: ...}"),
]


class EachOf(BaseModel):
    """Count each value of a ruleset output (``output: RULESET.OUTPUT``) or category fact."""

    model_config = _STRICT
    output: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
    fact: str | None = None


class ShareOf(BaseModel):
    model_config = _STRICT
    of: Identifier
    per: Identifier


class Expect(BaseModel):
    """What the guidance expects: ``about`` a value ``within`` a tolerance, or ``between``."""

    model_config = _STRICT
    about: ParamRef | float | None = None
    within: ParamRef | float | None = None
    between: tuple[ParamRef | float, ParamRef | float] | None = None


class MeasureDef(BaseModel):
    model_config = _STRICT
    id: Identifier
    title: str = Field(min_length=1)
    count: DCondition | None = None
    count_each: EachOf | None = None
    share: ShareOf | None = None
    expect: Expect | None = None
    note: str | None = None
    not_countable: str | None = Field(
        default=None, min_length=1,
        description="Why a figure the guidance asks for cannot be counted from codes; the "
        "measure is then listed as not available with this reason, never shown as zero",
    )


class PopulationDef(BaseModel):
    model_config = _STRICT
    title: str = Field(min_length=1)
    provenance: Literal["guidance", "local-policy", "assumption"]
    why: str | None = None
    cite: Citation | None = None
    when: DCondition | None = None


class Findings(BaseModel):
    """The rulesets whose fired rules are data-quality findings (one row each); the output a
    rule sets gives the finding's severity through ``severity_by_output``."""

    model_config = _STRICT
    rulesets: list[Identifier] = Field(default_factory=list)
    severity_by_output: dict[Identifier, str] = Field(default_factory=dict)


class DashboardFile(BaseModel):
    model_config = _STRICT
    dashboard: Identifier
    title: str = Field(min_length=1)
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    status: Literal["draft", "approved", "retired"]
    guidance: list[str] = Field(min_length=1)
    description: str = Field(min_length=1)
    cite: Citation | None = None
    parameters: dict[Identifier, Parameter] = Field(default_factory=dict)
    population: PopulationDef
    measures: list[MeasureDef] = Field(min_length=1)
    findings: Findings = Field(default_factory=Findings)


DAll.model_rebuild()
DAny.model_rebuild()
DNot.model_rebuild()
MeasureDef.model_rebuild()
PopulationDef.model_rebuild()


# -- compiled ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of the dashboard table."""

    name: str
    title: str
    measure: str


@dataclass(frozen=True)
class Measure:
    """A measure ready to compute (``available``) or the reason it is not."""

    definition: MeasureDef
    kind: Literal["count", "count_each", "share"]
    columns: tuple[Column, ...]
    sql: tuple[str, ...]  # one condition per column (count kinds)
    unavailable: str | None
    description: str
    expect: tuple[str, float, float] | None  # ("about", value, tolerance) or ("between", lo, hi)

    @property
    def id(self) -> str:
        return self.definition.id


@dataclass(frozen=True)
class Dashboard:
    """A loaded dashboard for one rulebook."""

    definition: DashboardFile
    file: str
    sha256: str
    params: Mapping[str, Any]
    population_sql: str
    population_text: str
    measures: tuple[Measure, ...]
    facts: tuple[str, ...]  # the facts the conditions read
    outputs: tuple[str, ...]  # the result columns the conditions read

    @property
    def available(self) -> tuple[Measure, ...]:
        return tuple(m for m in self.measures if m.unavailable is None)

    def columns(self) -> list[Column]:
        return [c for m in self.available for c in m.columns]


class _Unavailable(Exception):
    pass


def default_dashboard_path(book: Rulebook) -> Path:
    return book.directory / "dashboard.yaml"


def load_dashboard(book: Rulebook, as_of: dt.date, path: Path | None = None
                   ) -> Dashboard | None:
    """Load and compile the dashboard for ``book`` (``None`` if the rulebook has none).

    Raises :class:`~int_rules.errors.RulesetError` naming ``file:line:column`` for a problem.
    """
    path = path or default_dashboard_path(book)
    if not path.is_file():
        return None
    shown = shown_path(path, book.directory)
    raw = load_yaml(path, shown)
    model = validate_located(DashboardFile, raw, shown,
                             "unknown key (see the comments at the top of dashboard.yaml)")
    params = {name: p.value for name, p in model.parameters.items()}
    compiler = _Compiler(book, params, as_of, raw, shown)
    population_sql = "TRUE"
    population_text = "everyone in the patients table"
    if model.population.when is not None:
        population_sql = compiler.condition(model.population.when, ("population", "when"))
        population_text = compiler.describe(model.population.when)
    measures = []
    seen: set[str] = set()
    for i, m in enumerate(model.measures):
        where = ("measures", i)
        if m.id in seen:
            compiler.problem((*where, "id"), f"measure id {m.id!r} is used twice")
        seen.add(m.id)
        measures.append(compiler.measure(m, where, seen))
    compiler.raise_if_any()
    return Dashboard(model, shown, hashlib.sha256(path.read_bytes()).hexdigest(), params,
                     population_sql, population_text, tuple(measures),
                     tuple(compiler.facts), tuple(compiler.outputs))


class _Compiler:
    def __init__(self, book: Rulebook, params: Mapping[str, Any], as_of: dt.date, raw: Any,
                 file: str) -> None:
        self.book = book
        self.params = params
        self.as_of = as_of
        self.raw = raw
        self.file = file
        self.types = {name: f.type for name, f in book.facts.items()}
        self.rulesets = {rs.id: rs for rs in book.rulesets}
        self.errors: list[RulesetError] = []
        self.facts: list[str] = []
        self.outputs: list[str] = []
        self.counts: set[str] = set()

    def problem(self, path: tuple[int | str, ...], message: str) -> None:
        self.errors.append(RulesetError(locate(self.raw, path, self.file), message,
                                        ".".join(str(p) for p in path)))

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise RulesetErrors(self.errors)

    def location(self, path: tuple[int | str, ...]) -> Location:
        return locate(self.raw, path, self.file)

    # conditions

    def condition(self, cond: Any, path: tuple[int | str, ...]) -> str:
        """A measure's condition as SQL: resolved into the model's condition nodes (the
        rulesets' own checks and meaning), then translated as the DuckDB engine does."""
        node = self.node(cond, path)
        if node is None:
            return "FALSE"
        return condition_sql(node, self.types, self.as_of, column=lambda n: f"f_{n}",
                             output=self.output_sql)

    def node(self, cond: Any, path: tuple[int | str, ...]) -> nodes.Condition | None:
        """``cond`` as condition nodes, or None where a problem was reported."""
        if isinstance(cond, (DAll, DAny)):
            key = "all" if isinstance(cond, DAll) else "any"
            parts = [self.node(c, (*path, key, i)) for i, c in enumerate(getattr(cond, key))]
            if any(p is None for p in parts):
                return None
            done = tuple(p for p in parts if p is not None)
            return nodes.All(done) if key == "all" else nodes.AnyOf(done)
        if isinstance(cond, DNot):
            part = self.node(cond.not_, (*path, "not"))
            return None if part is None else nodes.Not(part)
        if isinstance(cond, OutputTest):
            return self.output_test(cond, path)
        assert isinstance(cond, Leaf)
        names = [cond.fact] + ([cond.operand.fact] if hasattr(cond.operand, "fact") else [])
        for name in names:
            if name not in self.types:
                raise _Unavailable(f"fact {name!r} is not in this rulebook's facts.yaml")
        try:
            node = resolve_condition(cond, self.types, self.params)
        except ConditionError as ce:
            self.problem((*path, *ce.path), ce.message)
            return None
        for name in names:
            if name not in self.facts:
                self.facts.append(name)
        return node

    def _output(self, ref: str, path: tuple[int | str, ...]) -> tuple[str, str, Any]:
        ruleset, key = ref.split(".", 1)
        rs = self.rulesets.get(ruleset)
        if rs is None:
            raise _Unavailable(f"ruleset {ruleset!r} is not in this rulebook")
        out = next((o for o in rs.decision.outputs if o.name == key), None)
        if out is None:
            names = ", ".join(o.name for o in rs.decision.outputs)
            self.problem(path, f"ruleset {ruleset} has no output {key!r} (outputs: {names})")
            raise _Unavailable(f"ruleset {ruleset} has no output {key!r}")
        col = output_column(ruleset, key)
        if col not in self.outputs:
            self.outputs.append(col)
        return col, rs.hit_policy, out

    def output_test(self, t: OutputTest, path: tuple[int | str, ...]) -> nodes.OutputIs | None:
        _, _, out = self._output(t.output, (*path, "output"))
        if (t.equals is None) == (t.present is None):
            self.problem(path, "an output test needs exactly one of equals or present")
            return None
        ruleset, key = t.output.split(".", 1)
        if t.present is not None:
            return nodes.OutputIs(ruleset, key, None, t.present)
        value = t.equals
        if out.type == "bool":
            if not isinstance(value, bool):
                self.problem((*path, "equals"), f"output {t.output} is true/false; got {value!r}")
                return None
        else:
            if out.type == "category" and out.values and str(value) not in out.values:
                self.problem((*path, "equals"), f"{value!r} is not a value of output "
                                                f"{t.output} ({', '.join(out.values)})")
                return None
            value = str(value)
        return nodes.OutputIs(ruleset, key, value)

    def output_sql(self, test: nodes.OutputIs) -> str:
        """A test of an output column of the results (a list under ``collect``)."""
        col = output_column(test.decision, test.output)
        collect = self.rulesets[test.decision].hit_policy == "collect"
        if test.equals is None:
            sql = f"len({col}) > 0" if collect else f"{col} IS NOT NULL"
            return sql if test.present else f"NOT ({sql})"
        lit = literal(test.equals)
        if collect:
            return f"COALESCE(list_contains({col}, {lit}), FALSE)"
        return f"COALESCE({col} = {lit}, FALSE)"

    def describe(self, cond: Any) -> str:
        if isinstance(cond, DAll):
            return " AND ".join(self._nested(c) for c in cond.all)
        if isinstance(cond, DAny):
            return " OR ".join(self._nested(c) for c in cond.any)
        if isinstance(cond, DNot):
            return f"NOT ({self.describe(cond.not_)})"
        if isinstance(cond, OutputTest):
            if cond.present is not None:
                return f"{cond.output} is {'set' if cond.present else 'not set'}"
            return f"{cond.output} includes {format_value(cond.equals)}"
        assert isinstance(cond, Leaf)
        return describe_leaf(cond, self.params)

    def _nested(self, cond: Any) -> str:
        text = self.describe(cond)
        return f"({text})" if isinstance(cond, (DAll, DAny)) else text

    # measures

    def number(self, value: Any, path: tuple[int | str, ...]) -> float:
        if isinstance(value, ParamRef):
            if value.param not in self.params:
                self.problem(path, f"unknown parameter {value.param!r} (parameters: "
                                   f"{', '.join(self.params) or 'none'})")
                return 0.0
            value = self.params[value.param]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem(path, f"expected a number, got {value!r}")
            return 0.0
        return float(value)

    def measure(self, m: MeasureDef, path: tuple[int | str, ...], seen: set[str]) -> Measure:
        kinds = [k for k in ("count", "count_each", "share") if getattr(m, k) is not None]
        if m.not_countable is not None:
            if kinds:
                self.problem(path, "a measure that is not_countable has no count, count_each "
                                   "or share")
            return Measure(m, "count", (), (), f"not countable: {m.not_countable}", "", None)
        if len(kinds) != 1:
            self.problem(path, "a measure needs exactly one of count, count_each or share")
            return Measure(m, "count", (), (), "invalid", "", None)
        kind = kinds[0]
        expect = None
        if m.expect is not None:
            e = m.expect
            if e.between is not None and e.about is None and e.within is None:
                expect = ("between", self.number(e.between[0], (*path, "expect", "between", 0)),
                          self.number(e.between[1], (*path, "expect", "between", 1)))
            elif e.about is not None and e.between is None:
                tol = self.number(e.within, (*path, "expect", "within")) if e.within else 0.0
                expect = ("about", self.number(e.about, (*path, "expect", "about")), tol)
            else:
                self.problem((*path, "expect"), "expect needs {about: X, within: T} or "
                                                "{between: [LOW, HIGH]}")
        try:
            if kind == "count":
                sql = self.condition(m.count, (*path, "count"))
                self.counts.add(m.id)
                return Measure(m, "count", (Column(m.id, m.title, m.id),), (sql,), None,
                               self.describe(m.count), expect)
            if kind == "count_each":
                self.counts.add(m.id)
                return self.each(m, path, expect)
            assert m.share is not None
            for ref, key in ((m.share.of, "of"), (m.share.per, "per")):
                if ref not in self.counts:
                    self.problem((*path, "share", key), f"share needs a count measure defined "
                                                        f"before it; {ref!r} is not one")
            return Measure(m, "share", (Column(m.id, m.title, m.id),), (), None,
                           f"{m.share.of} / {m.share.per}", expect)
        except _Unavailable as why:
            return Measure(m, kind, (), (), str(why), "", expect)  # type: ignore[arg-type]

    def each(self, m: MeasureDef, path: tuple[int | str, ...],
             expect: tuple[str, float, float] | None) -> Measure:
        each = m.count_each
        assert each is not None
        if (each.output is None) == (each.fact is None):
            self.problem((*path, "count_each"), "count_each needs exactly one of output or fact")
            return Measure(m, "count_each", (), (), "invalid", "", None)
        columns = []
        sqls = []
        if each.output is not None:
            _, _, out = self._output(each.output, (*path, "count_each", "output"))
            values: list[Any] = [True] if out.type == "bool" else list(out.values or [])
            if not values:
                self.problem((*path, "count_each"), f"output {each.output} has no declared "
                                                    "values to count")
            ruleset, key = each.output.split(".", 1)
            for v in values:
                sql = self.output_sql(nodes.OutputIs(ruleset, key,
                                                     v if out.type == "bool" else str(v)))
                columns.append(Column(f"{m.id}_{_slug(v)}", f"{m.title}: {format_value(v)}",
                                      m.id))
                sqls.append(sql)
            text = f"people by each value of {each.output}"
        else:
            name = each.fact
            assert name is not None
            ftype = self.types.get(name)
            if ftype is None:
                raise _Unavailable(f"fact {name!r} is not in this rulebook's facts.yaml")
            if ftype.kind != "category" or not ftype.values:
                self.problem((*path, "count_each", "fact"), f"fact {name!r} is "
                                                            f"{ftype.describe()}; count_each "
                                                            "needs a category fact")
                return Measure(m, "count_each", (), (), "invalid", "", None)
            if name not in self.facts:
                self.facts.append(name)
            for v in ftype.values:
                columns.append(Column(f"{m.id}_{_slug(v)}", f"{m.title}: {v}", m.id))
                sqls.append(f"COALESCE(f_{name} = {literal(v)}, FALSE)")
            text = f"people by each value of {name}"
        return Measure(m, "count_each", tuple(columns), tuple(sqls), None, text, expect)


def _slug(value: Any) -> str:
    text = format_value(value).lower()
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_") or "value"


# -- computing --------------------------------------------------------------------------------


@dataclass
class DashboardTable:
    """The computed dashboard: one row per neighbourhood, then the total row."""

    dashboard: Dashboard
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)  # neighbourhood, population, ...
    extra: list[Column] = field(default_factory=list)  # columns added after (e.g. the guide's)
    suppression: str = "off"  # small-number suppression applied to the counts ("off" or how)

    def status(self, measure: Measure, value: float | None) -> str:
        """How a figure compares with the guidance: about / above / below / within / ''."""
        if measure.expect is None or value is None:
            return ""
        kind, a, b = measure.expect
        if kind == "about":
            if value > a + b:
                return "above"
            if value < a - b:
                return "below"
            return "about as expected"
        if value < a:
            return "below"
        if value > b:
            return "above"
        return "within"


def compute_dashboard(run: PopulationRun, dashboard: Dashboard) -> DashboardTable:
    """The dashboard figures of a population run, per neighbourhood and in total."""
    con: duckdb.DuckDBPyConnection = run.con
    from .engine import mask_columns_sql

    counts = []
    for m in dashboard.available:
        if m.kind == "share":
            continue
        for column, sql in zip(m.columns, m.sql, strict=True):
            counts.append(f"count(*) FILTER (WHERE __pop AND {sql}) AS {column.name}")
    pop = dashboard.population_sql
    masks = mask_columns_sql(run)
    query = f"""
        SELECT CASE WHEN grouping(nb) = 1 THEN {literal(ALL_NEIGHBOURHOODS)}
                    ELSE COALESCE(nb, {literal(NOT_RECORDED)}) END AS neighbourhood,
               grouping(nb) AS is_total,
               count(*) FILTER (WHERE __pop) AS population{''.join(', ' + c for c in counts)}
        FROM (SELECT *, {pop} AS __pop FROM (
                  SELECT p.neighbourhood AS nb, c.*, d.* EXCLUDE ({masks})
                  FROM assessed c JOIN pt p USING (pid) JOIN __rdim d USING ({masks}))) x
        GROUP BY ROLLUP (nb)
        ORDER BY is_total, neighbourhood"""
    rows = con.sql(query).to_arrow_table().to_pylist()
    table = DashboardTable(dashboard, dashboard.columns())
    for row in rows:
        out: dict[str, Any] = {"neighbourhood": row["neighbourhood"],
                               "population": int(row["population"])}
        for m in dashboard.available:
            if m.kind == "share":
                assert m.definition.share is not None
                num = row.get(m.definition.share.of)
                den = row.get(m.definition.share.per)
                out[m.id] = (num / den) if num is not None and den else None
            else:
                for column in m.columns:
                    out[column.name] = int(row[column.name])
            if m.expect is not None:
                value = out.get(m.id)
                # A count's range is per neighbourhood: the total is not compared with it.
                per_neighbourhood = m.kind != "share" and bool(row["is_total"])
                out[f"{m.id}_vs_guidance"] = "" if per_neighbourhood else table.status(m, value)
        table.rows.append(out)
    return table


def csv_header(table: DashboardTable) -> list[str]:
    names = ["neighbourhood", "population"]
    for m in table.dashboard.available:
        names += [c.name for c in m.columns]
        if m.expect is not None:
            names.append(f"{m.id}_vs_guidance")
    return names + [c.name for c in table.extra]


def write_dashboard_csv(table: DashboardTable, path: Path, sha256: str, status: str,
                        statuses: str, *, run_id: str = "", as_of: str = "") -> None:
    """``dashboard.csv``: one row per neighbourhood (and the total), one column per figure,
    with the rulebook's sha256 and status, every ruleset's version and status, the
    dashboard file's own sha256, the run id and the as-of date. Text cells a spreadsheet would
    take for a formula are neutralised (see csvsafe)."""
    names = csv_header(table)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([*names, "small_number_suppression", "rulebook_sha256",
                         "rulebook_status", "ruleset_statuses", "dashboard_sha256", "run_id",
                         "as_of"])
        for row in table.rows:
            cells = []
            for name in names:
                value = row.get(name)
                if isinstance(value, float):
                    value = f"{value:.4f}"
                elif isinstance(value, str):
                    value = neutralise(value)
                cells.append("" if value is None else value)
            writer.writerow([*cells, table.suppression, sha256, status, statuses,
                             table.dashboard.sha256, run_id, as_of])


def describe_expect(measure: Measure) -> str:
    if measure.expect is None:
        return ""
    kind, a, b = measure.expect
    if kind == "about":
        points = f"{b * 100:.1f}".rstrip("0").rstrip(".")
        return f"about {_pct(a)} (\u00b1 {points} percentage point{'s' if b != 0.01 else ''})"
    return f"between {format_value(a)} and {format_value(b)}"


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%".replace(".0%", "%")


def unavailable(dashboard: Dashboard) -> list[tuple[str, str]]:
    """(measure id, reason) for every measure this rulebook cannot compute."""
    return [(m.id, m.unavailable) for m in dashboard.measures if m.unavailable is not None]
