"""The compiled rule model: what a rulebook means, independent of any engine.

Every node is a frozen dataclass holding resolved values only: codelists are code sets, windows
are whole days and named anchors, parameters are their (overridden) values, and every fact has a
value type and says whether it can be missing. The resolver (:mod:`int_rules.model.resolve`)
builds these from the YAML language models; engines (:mod:`int_rules.engines`) translate them
and never read the YAML models. :func:`to_json` prints a model as stable JSON, for docs, lint
and the semantic diff.

The nodes follow ehrQL's ``query_model/nodes.py``: a small closed vocabulary, one class per
kind, no behaviour beyond what describes the node itself.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

from ..errors import Location

__all__ = [
    "AgeFact",
    "All",
    "AnyOf",
    "AttributeFact",
    "CodeSet",
    "CodelistAvailableFact",
    "Compare",
    "CompareFacts",
    "Condition",
    "ConstantFact",
    "DaysAgo",
    "DeathAfterAsOfFact",
    "Decision",
    "DerivedFact",
    "Fact",
    "InSet",
    "ItemFact",
    "LatestOfFact",
    "Not",
    "Output",
    "OutputIs",
    "OutputValue",
    "ParamValue",
    "PathwayCell",
    "PathwayFact",
    "PathwayFinding",
    "PathwaySameDay",
    "PathwayStep",
    "PathwayTable",
    "Present",
    "Rule",
    "RuleModel",
    "Scalar",
    "Value",
    "ValueKind",
    "ValueType",
    "Window",
    "to_json",
]

ValueKind = Literal["bool", "int", "number", "date", "category", "text"]
Scalar = bool | int | float | str
#: A fact's value for one patient (``None``: missing).
Value = bool | int | float | str | dt.date | None
#: A parameter's value: one scalar or a list of them.
ParamValue = Scalar | list[Scalar]
#: A decision output's value: one scalar (``None``: not set) or, under ``collect``, a list.
OutputValue = Scalar | list[Scalar] | None
ItemKind = Literal["exists", "count", "latest_date", "first_date", "latest_value"]
Source = Literal["events", "admissions", "risk_scores", "monitoring"]
SpecialWindow = Literal["before_birth", "after_death", "after_as_of"]
HitPolicy = Literal["collect", "unique", "first", "priority"]

#: The most days a window or a days test may span: the whole calendar, 0001-01-01 to
#: 9999-12-31. A larger count is a load error; a window reaching back past 0001-01-01 starts
#: there (see :func:`int_rules.model.semantics.days_before`).
MAX_DAYS = (dt.date.max - dt.date.min).days


# -- types ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ValueType:
    """The type of a fact's value: what operators may test it and what values it can take."""

    kind: ValueKind
    values: tuple[str, ...] | None = None  # for categories: every value it can take
    scale: tuple[str, ...] | None = None  # for ordered categories: low to high

    def describe(self) -> str:
        if self.kind == "category" and self.values:
            return f"category ({', '.join(self.values)})"
        return self.kind


# -- facts ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeSet:
    """Codelists resolved to their codes."""

    codelists: tuple[str, ...]
    codes: frozenset[str]


@dataclass(frozen=True, slots=True)
class Window:
    """The dates a fact reads, all inclusive.

    Everything on or before ``as_of``, narrowed by ``within_days`` (on or after ``as_of - N``),
    ``since`` (strictly after the date of another fact; unbounded when that fact is missing),
    ``from_`` (on or after it; likewise) and ``until`` (on or before it; nothing at all when it
    is missing). ``special`` replaces all of that with a data-quality window: ``before_birth``
    (before the date of birth), ``after_death`` (after the date of death, up to ``as_of``, when
    the person died before ``as_of``) or ``after_as_of`` (after ``as_of``).
    """

    within_days: int | None = None
    since: str | None = None
    from_: str | None = None
    until: str | None = None
    special: SpecialWindow | None = None

    @property
    def anchors(self) -> tuple[str, ...]:
        """The facts whose dates bound this window."""
        return tuple(a for a in (self.since, self.from_, self.until) if a is not None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fact:
    """A named per-patient value as of a date. ``nullable``: whether it can be missing."""

    name: str
    type: ValueType
    nullable: bool
    deps: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """The fact kind, as written in the YAML (``exists``, ``age``...)."""
        return _KIND_OF[type(self).__name__]

    @property
    def codelists(self) -> tuple[str, ...]:
        """The codelists this fact reads, in declared order."""
        return ()

    @property
    def reads_after_as_of(self) -> bool:
        """Whether this fact sees items dated after ``as_of`` (only the ``after_as_of`` window)."""
        window: Window | None = getattr(self, "window", None)
        return window is not None and window.special == "after_as_of"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgeFact(Fact):
    """Whole years from the date of birth to ``as_of``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttributeFact(Fact):
    """A field of the record: sex, gp_system, neighbourhood or practice."""

    field: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemFact(Fact):
    """exists / count / latest_date / first_date / latest_value over the items of ``source``
    that are in ``codes`` (events; ``None``: every event), match ``where`` and fall in
    ``window``. ``value_field`` is the number ``latest_value`` reads."""

    item: ItemKind
    source: Source
    codes: CodeSet | None
    where: tuple[tuple[str, Scalar], ...]
    window: Window
    value_field: str

    @property
    def kind(self) -> str:
        return self.item

    @property
    def codelists(self) -> tuple[str, ...]:
        return self.codes.codelists if self.codes is not None else ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LatestOfFact(Fact):
    """Which category has the latest event in the window (same day: the one listed first)."""

    categories: tuple[tuple[str, CodeSet], ...]
    window: Window

    @property
    def codelists(self) -> tuple[str, ...]:
        return tuple(c for _, cs in self.categories for c in cs.codelists)


@dataclass(frozen=True, slots=True, kw_only=True)
class DerivedFact(Fact):
    """A boolean defined by a condition over earlier facts."""

    condition: Condition


@dataclass(frozen=True, slots=True, kw_only=True)
class PathwayFact(Fact):
    """From the caseload pathway replay: ``state``, ``entered``, ``findings`` (how many) or
    ``may_record`` (may one of ``codes`` be recorded on ``as_of``)."""

    field: Literal["state", "entered", "findings", "may_record"]
    codes: CodeSet | None = None

    @property
    def codelists(self) -> tuple[str, ...]:
        return self.codes.codelists if self.codes is not None else ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConstantFact(Fact):
    """A parameter's value, the same for everyone."""

    value: Scalar


@dataclass(frozen=True, slots=True, kw_only=True)
class CodelistAvailableFact(Fact):
    """Whether ``codes`` has any code at all (the same for everyone)."""

    codes: CodeSet
    available: bool

    @property
    def codelists(self) -> tuple[str, ...]:
        return self.codes.codelists


@dataclass(frozen=True, slots=True, kw_only=True)
class DeathAfterAsOfFact(Fact):
    """Whether the date of death is after ``as_of`` (false when there is none)."""


_KIND_OF = {
    "AgeFact": "age", "AttributeFact": "attribute", "LatestOfFact": "latest_of",
    "DerivedFact": "derived", "PathwayFact": "pathway", "ConstantFact": "constant",
    "CodelistAvailableFact": "codelist_available", "DeathAfterAsOfFact": "death_after_as_of",
}


# -- conditions -------------------------------------------------------------------------------
#
# Two-valued logic everywhere: a test of a missing fact is false, except Present(present=False);
# Not negates plainly; a comparison with another fact that is missing is false.


@dataclass(frozen=True, slots=True)
class Compare:
    """``fact <op> value``: equals, not_equals (present and different), at_least, at_most,
    greater_than, less_than (numbers; ordered categories by their rank on the scale)."""

    fact: str
    op: Literal["equals", "not_equals", "at_least", "at_most", "greater_than", "less_than"]
    value: Scalar


@dataclass(frozen=True, slots=True)
class InSet:
    """The fact's value is one of ``values``."""

    fact: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class Present:
    """The fact has a value (``present``) or has none (``not present``)."""

    fact: str
    present: bool


@dataclass(frozen=True, slots=True)
class DaysAgo:
    """A date fact ``within_days`` (on or before ``as_of`` and on or after ``as_of - days``) or
    ``older_than_days`` (before ``as_of - days``)."""

    fact: str
    op: Literal["within_days", "older_than_days"]
    days: int


@dataclass(frozen=True, slots=True)
class CompareFacts:
    """``fact <op> other`` for two facts both present: equals, not_equals, the order operators
    (numbers, dates, categories on one scale), after / before (dates, strictly)."""

    fact: str
    op: Literal["equals", "not_equals", "at_least", "at_most", "greater_than", "less_than",
                "after", "before"]
    other: str


@dataclass(frozen=True, slots=True)
class OutputIs:
    """A decision's output (for the dashboard's measures, which count results): it includes
    ``equals`` (a list output) or is ``equals``; or, with ``equals`` None, it is set
    (``present``) or not."""

    decision: str
    output: str
    equals: Scalar | None = None
    present: bool = True


@dataclass(frozen=True, slots=True)
class All:
    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: Condition


Condition = Compare | InSet | Present | DaysAgo | CompareFacts | OutputIs | All | AnyOf | Not


def condition_facts(cond: Condition) -> tuple[str, ...]:
    """Every fact a condition reads, in order of first appearance."""
    out: list[str] = []

    def walk(c: Condition) -> None:
        if isinstance(c, (All, AnyOf)):
            for p in c.parts:
                walk(p)
        elif isinstance(c, Not):
            walk(c.part)
        elif not isinstance(c, OutputIs):
            for name in (c.fact, c.other if isinstance(c, CompareFacts) else None):
                if name is not None and name not in out:
                    out.append(name)

    walk(cond)
    return tuple(out)


# -- decisions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Output:
    """An output a decision's rules set: ``bool``, ``category`` (of ``values``), ``text`` or
    ``code``."""

    name: str
    type: Literal["category", "bool", "text", "code"]
    values: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: when ``condition`` holds, ``then`` sets outputs. ``facts``: what it reads;
    ``location``: where it is written."""

    id: str
    decision: str
    title: str
    condition: Condition
    then: tuple[tuple[str, Scalar], ...]
    priority: int | None
    provenance: str
    facts: tuple[str, ...]
    location: Location | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Decision:
    """A ruleset: its rules in declared order under one hit policy, and its outputs."""

    id: str
    version: str
    status: str
    hit_policy: HitPolicy
    outputs: tuple[Output, ...]
    rules: tuple[Rule, ...]


# -- the pathway table ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathwayFinding:
    id: str
    severity: str
    message: str


@dataclass(frozen=True, slots=True)
class PathwayStep:
    """A step, recorded by ``codes`` (``None``: the date of death). Same-day steps are
    replayed by ``precedence``, then by code (:func:`~int_rules.model.semantics.pathway_order`)."""

    id: str
    precedence: int
    codes: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class PathwayCell:
    """What ``step`` does in ``state``: the state it leads to, and any finding it raises."""

    state: str
    step: str
    to_state: str
    finding: PathwayFinding | None


@dataclass(frozen=True, slots=True)
class PathwaySameDay:
    """Two steps that conflict when recorded on one day, and the finding they raise."""

    id: str
    steps: tuple[str, str]
    finding: PathwayFinding


@dataclass(frozen=True, slots=True)
class PathwayTable:
    """The caseload pathway as its table: states, steps, one cell per (state, step)."""

    id: str
    version: str
    status: str
    states: tuple[str, ...]
    initial: str
    steps: tuple[PathwayStep, ...]
    cells: tuple[PathwayCell, ...]
    same_day: tuple[PathwaySameDay, ...]

    @property
    def death_step(self) -> PathwayStep:
        return next(s for s in self.steps if s.codes is None)


# -- the model --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleModel:
    """A whole rulebook: facts in dependency order, decisions in rulebook order, the pathway.

    ``may_record_codes``: every pathway code some ``may_record`` fact asks about.
    """

    rulebook: str
    version: str
    sha256: str
    facts: tuple[Fact, ...]
    decisions: tuple[Decision, ...]
    pathway: PathwayTable
    overrides: tuple[tuple[str, Scalar | tuple[Scalar, ...]], ...] = ()

    def fact(self, name: str) -> Fact:
        for f in self.facts:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def fact_types(self) -> dict[str, ValueType]:
        return {f.name: f.type for f in self.facts}

    @property
    def may_record_codes(self) -> frozenset[str]:
        return frozenset(c for f in self.facts if isinstance(f, PathwayFact)
                         and f.codes is not None for c in f.codes.codes)

    def to_json(self) -> str:
        return to_json(self)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"node": type(value).__name__}
        for f in fields(value):
            out[f.name] = _plain(getattr(value, f.name))
        return out
    if isinstance(value, (frozenset, set)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Location):
        return str(value)
    return value


def to_json(node: Any) -> str:
    """A model (or any node) as stable JSON: sorted keys, code sets sorted, one node name per
    object (``"node": "ItemFact"``)."""
    return json.dumps(_plain(node), sort_keys=True, indent=1, ensure_ascii=False)
