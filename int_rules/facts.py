"""Facts as the reference engine evaluates them: the evaluation context and its helpers.

Each fact node of the model (:mod:`int_rules.model.nodes`) is compiled by the reference engine
(:mod:`int_rules.engines.reference`) into a closure that computes ``(value, evidence)`` from an
:class:`EvalContext`, with the helpers here. The context holds the record's events indexed
by *match group* (the set of codelists a fact reads), built once per assessment, so each fact
looks only at its own few events.

No clinical knowledge lives here: which codes, windows and categories a fact uses all come from
the YAML.
"""

from __future__ import annotations

import datetime as dt
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .model.nodes import Value, ValueType, Window
from .model.semantics import age_in_years, day_after, day_before
from .model.vocabulary import ATTRIBUTE_TYPES, VALUE_FIELDS, WHERE_FIELDS
from .record import Admission, CodedEvent, MonitoringEvent, PatientRecord, RiskScore

if TYPE_CHECKING:
    from .pathway import PathwayResult

__all__ = [
    "ATTRIBUTE_TYPES",
    "VALUE_FIELDS",
    "WHERE_FIELDS",
    "EvalContext",
    "Evidence",
    "EvidenceItem",
    "FactType",
    "FactValue",
    "MatchGroups",
    "age_in_years",
]

EvidenceItem = CodedEvent | Admission | RiskScore | MonitoringEvent
FactResult = tuple[Any, tuple[EvidenceItem, ...]]
_ONE_DAY = dt.timedelta(days=1)
_FIRST_DAY, _LAST_DAY = dt.date.min, dt.date.max
_NO_EVIDENCE: tuple[EvidenceItem, ...] = ()


FactType = ValueType
"""The type of a fact's value (see :class:`int_rules.model.nodes.ValueType`)."""


class Evidence(Mapping[str, tuple[EvidenceItem, ...]]):
    """Each fact's evidence: a read-only mapping of fact name to the record items behind it.

    Read as any mapping of name to tuple (``evidence["age"]``, ``.get(name, ())``, equal to
    a ``dict`` of the same tuples). Held as one dict whose value is the item itself when a
    fact has exactly one: most facts have one, and a one-item tuple per fact is one more
    object for Python's garbage collector to track, and to scan in each full collection,
    for as long as the assessment is kept (about 15 an assessment in the bundled rulebook).
    """

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, EvidenceItem | tuple[EvidenceItem, ...]]) -> None:
        self._items = items

    def __getitem__(self, name: str) -> tuple[EvidenceItem, ...]:
        found = self._items[name]
        return found if type(found) is tuple else (found,)  # type: ignore[return-value]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Evidence({dict(self.items())!r})"


@dataclass(frozen=True, slots=True)
class FactValue:
    """A fact's value for one record as of one date, with the record items behind it."""

    name: str
    value: Value
    evidence: tuple[EvidenceItem, ...] = ()


class MatchGroups:
    """Assigns each distinct set of codelists that some fact reads a small integer id.

    ``code_groups[code]`` lists the groups a code belongs to, so indexing a record is one dict
    lookup per event.
    """

    def __init__(self) -> None:
        self._ids: dict[frozenset[str], int] = {}
        self.code_groups: dict[str, tuple[int, ...]] = {}

    def group_for(self, codelist_ids: frozenset[str], codes: frozenset[str]) -> int:
        gid = self._ids.get(codelist_ids)
        if gid is None:
            gid = len(self._ids)
            self._ids[codelist_ids] = gid
            for code in codes:
                self.code_groups[code] = (*self.code_groups.get(code, ()), gid)
        return gid

    def __len__(self) -> int:
        return len(self._ids)


@dataclass(slots=True)
class EvalContext:
    """Everything a fact closure may read for one record as of one date."""

    record: PatientRecord
    as_of: dt.date
    groups: dict[int, list[CodedEvent]]  # events per match group present, ascending by date
    events: list[CodedEvent]  # every event, ascending by date (all dates)
    values: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, tuple[EvidenceItem, ...]] = field(default_factory=dict)
    pathway: PathwayResult | None = None
    next_codes: frozenset[str] | None = None
    _sorted: dict[str, Sequence[Any]] = field(default_factory=dict)

    @classmethod
    def build(cls, record: PatientRecord, as_of: dt.date, match: MatchGroups) -> EvalContext:
        groups: dict[int, list[CodedEvent]] = {}
        code_groups = match.code_groups
        events = sorted(record.events, key=_BY_DATE)
        for ev in events:
            gids = code_groups.get(ev.code)
            if gids:
                for gid in gids:
                    found = groups.get(gid)
                    if found is None:
                        groups[gid] = [ev]
                    else:
                        found.append(ev)
        return cls(record=record, as_of=as_of, groups=groups, events=events)

    def items(self, source: str) -> Sequence[Any]:
        """Admissions, risk scores or monitoring items, ascending by date (sorted once)."""
        found = self._sorted.get(source)
        if found is None:
            raw: Sequence[Any] = getattr(self.record, source)
            found = sorted(raw, key=_DATE_OF[source])
            self._sorted[source] = found
        return found


_BY_DATE = operator.attrgetter("date")


# C-level getters: these run inside every bisection and selection.
_DATE_OF: dict[str, Callable[[Any], dt.date]] = {
    "events": _BY_DATE,
    "admissions": operator.attrgetter("admitted"),
    "risk_scores": _BY_DATE,
    "monitoring": _BY_DATE,
}

# -- window and selection ---------------------------------------------------------------------

WindowFn = Callable[[EvalContext], "tuple[dt.date | None, dt.date | None] | None"]


def make_window(window: Window) -> WindowFn:
    """A function giving the inclusive (start, end) dates a fact looks at, or None for nothing.

    At the calendar's edges: a window reaching back past 0001-01-01 starts there; a window
    after 9999-12-31 or before 0001-01-01 holds nothing (:mod:`int_rules.model.semantics`).
    """
    special = window.special
    if special == "before_birth":
        def before_birth(ctx: EvalContext) -> tuple[dt.date | None, dt.date | None] | None:
            end = day_before(ctx.record.date_of_birth)
            return None if end is None else (None, end)
        return before_birth
    if special == "after_death":
        def after_death(ctx: EvalContext) -> tuple[dt.date | None, dt.date | None] | None:
            dod = ctx.record.date_of_death
            if dod is None or dod >= ctx.as_of:
                return None
            return dod + _ONE_DAY, ctx.as_of
        return after_death
    if special == "after_as_of":
        def after_as_of(ctx: EvalContext) -> tuple[dt.date | None, dt.date | None] | None:
            start = day_after(ctx.as_of)
            return None if start is None else (start, None)
        return after_as_of

    since, from_, until = window.since, window.from_, window.until
    span = dt.timedelta(days=window.within_days) if window.within_days is not None else None

    def bounds(ctx: EvalContext) -> tuple[dt.date | None, dt.date | None] | None:
        as_of = ctx.as_of
        end: dt.date | None = as_of
        start: dt.date | None = None
        if span is not None:
            try:
                start = as_of - span
            except OverflowError:  # longer than the calendar: from its first day
                start = _FIRST_DAY
        if since is not None:
            anchor = ctx.values[since]
            if anchor is not None:
                if anchor == _LAST_DAY:  # nothing is dated after the calendar's last day
                    return None
                after = anchor + _ONE_DAY
                start = after if start is None or after > start else start
        if from_ is not None:
            anchor = ctx.values[from_]
            if anchor is not None:
                start = anchor if start is None or anchor > start else start
        if until is not None:
            anchor = ctx.values[until]
            if anchor is None:
                return None
            end = anchor if anchor < ctx.as_of else ctx.as_of
        return start, end

    return bounds


def select(
    items: Sequence[Any],
    bounds: tuple[dt.date | None, dt.date | None],
    date_of: Callable[[Any], dt.date],
    keep: Callable[[Any], bool] | None,
) -> list[Any]:
    """Items (ascending by date) whose date is within inclusive bounds and that ``keep``.

    The bounds are found by bisection, so a window over a long list costs its own length.
    """
    start, end = bounds
    lo = 0 if start is None else bisect_left(items, start, key=date_of)
    hi = len(items) if end is None else bisect_right(items, end, lo=lo, key=date_of)
    window = list(items[lo:hi])
    return window if keep is None else [item for item in window if keep(item)]


def make_where(where: Mapping[str, Any] | None) -> Callable[[Any], bool] | None:
    """A predicate testing an item's fields for equality, or None when there is no filter."""
    if not where:
        return None
    pairs = tuple(where.items())
    if len(pairs) == 1:
        (name, wanted), = pairs
        get = operator.attrgetter(name)
        return lambda item: bool(get(item) == wanted)

    def keep(item: Any) -> bool:
        return all(getattr(item, name) == wanted for name, wanted in pairs)

    return keep


EVIDENCE_CAP = 20
"""At most this many items are kept as evidence of a count (the latest ones)."""


def reduce_items(kind: str, matched: list[Any], date_of: Callable[[Any], dt.date],
                 value_field: str) -> FactResult:
    """Turn the matched items (ascending by date) into the fact's value and evidence."""
    if kind == "exists":
        return (True, (matched[-1],)) if matched else (False, _NO_EVIDENCE)
    if kind == "count":
        return len(matched), tuple(matched[-EVIDENCE_CAP:])
    if kind == "latest_date":
        return (date_of(matched[-1]), (matched[-1],)) if matched else (None, _NO_EVIDENCE)
    if kind == "first_date":
        return (date_of(matched[0]), (matched[0],)) if matched else (None, _NO_EVIDENCE)
    if kind == "latest_value":
        for item in reversed(matched):
            value = getattr(item, value_field)
            if value is not None:
                return float(value), (item,)
        return None, _NO_EVIDENCE
    raise AssertionError(f"not an item kind: {kind}")
