"""The caseload pathway: a declared state machine over pathway codes.

The pathway (``rulesets/pathway.yaml``) declares the states a person can be in with respect to
the INT caseload, the *steps* that move them (each recorded by the codes of one or more
codelists, plus death from the record's date of death), the effect of every step in every state
and the findings reported when codes do not fit. This module holds no clinical logic: it loads
that file, checks the machine statically, compiles it to a table and replays records through it.

* :func:`load_pathway` validates the file (every error names ``file:line:column``) and runs the
  static checks: every state reachable from the initial state; every non-terminal state has a
  coded way out; every step has exactly one effect in every state; every name used exists.
* :meth:`Pathway.replay` orders a record's pathway codes by date (same-day codes by the declared
  precedence, then by code), applies death at its date, and returns the state, the date it was
  entered, the history of state changes and a finding for every step that does not fit.
* :meth:`Pathway.may_record` / :meth:`Pathway.next_codes` answer whether a code may be recorded
  on a date, and which codes may, each with the state it leads to.

Everything here is immutable and pure (no clock, no global state), so one :class:`Pathway` may be
shared across threads.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import IntRulesError, Location, RulesetError, RulesetErrors
from .language.schema import Citation, HazardId, Identifier, Provenance, RuleId, Status
from .language.yamlsrc import LocatedDict, load_yaml, locate
from .model.semantics import pathway_order
from .snomed import concept_id_problem

__all__ = [
    "Citation",
    "Pathway",
    "PathwayCodeError",
    "PathwayFinding",
    "PathwayResult",
    "PathwayTransition",
    "RecordDecision",
    "StepDef",
    "TransitionDef",
    "load_pathway",
    "pathway_from_yaml",
]

Severity = Literal["error", "warning"]

#: The only non-code step source: the record's date of death.
DEATH_SOURCE = "date_of_death"


# -- results ----------------------------------------------------------------------------------


class PathwayFinding(NamedTuple):
    """A step in a record that does not fit the pathway (immutable plain data).

    ``code`` is the SNOMED code of the event (``None`` for a finding about death itself);
    ``state_before`` is the state the person was in when it was met. (A named tuple rather
    than a dataclass: replay makes these in the hot path, and tuples are made 4x faster.)
    """

    id: str
    severity: Severity
    date: dt.date
    code: str | None
    state_before: str
    message: str


class PathwayTransition(NamedTuple):
    """One change of state (immutable plain data). ``code`` is ``""`` for death (it comes
    from the date of death, not a coded event)."""

    date: dt.date
    code: str
    step: str
    from_state: str
    to_state: str


@dataclass(frozen=True, slots=True)
class PathwayResult:
    """Where a record's pathway codes lead as of a date.

    ``entered`` is the date the current state was entered (``None`` if still in the initial
    state); ``history`` holds the state changes only (codes that keep the state are not listed);
    ``findings`` every step that does not fit, in replay order.
    """

    state: str
    entered: dt.date | None
    history: tuple[PathwayTransition, ...]
    findings: tuple[PathwayFinding, ...]


@dataclass(frozen=True, slots=True)
class RecordDecision:
    """The answer to "may ``code`` be recorded ``on`` this date?".

    ``allowed`` is true when recording it would add no finding; ``resulting_state`` is the
    state as of ``on`` if it were recorded (where it leads, or where the person stays);
    ``finding_id`` the finding it would raise when not allowed; ``reason`` says why in words,
    naming the declared transition.
    """

    code: str
    on: dt.date
    allowed: bool
    reason: str
    resulting_state: str
    finding_id: str | None

    def to_dict(self) -> dict[str, str | bool | None]:
        """JSON-ready data: the fields, ``on`` as an ISO date (as ``int-rules may-record
        --format json`` writes them, less the code's term)."""
        return {"code": self.code, "on": self.on.isoformat(), "allowed": self.allowed,
                "reason": self.reason, "resulting_state": self.resulting_state,
                "finding_id": self.finding_id}


class PathwayCodeError(IntRulesError, ValueError):
    """A code that the pathway does not record was asked about."""


# -- the file's schema ------------------------------------------------------------------------

# The ruleset language's own vocabulary (citations, provenance, ids), shared with the rulesets.
_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
ItemId = RuleId  # transition, same-day and finding ids: PWY-010, PWF-020
Text = Annotated[str, Field(min_length=1)]


class StateDef(BaseModel):
    model_config = _STRICT
    id: Identifier
    title: Text
    description: Text
    terminal: bool = False
    group: Identifier | None = None


class StepDef(BaseModel):
    """A step: recorded by the codes of ``codelists``, or taken from the date of death."""

    model_config = _STRICT
    id: Identifier
    title: Text
    codelists: tuple[Identifier, ...] | None = Field(default=None, min_length=1)
    source: Literal["date_of_death"] | None = None
    precedence: int

    @model_validator(mode="after")
    def _one_source(self) -> StepDef:
        if (self.codelists is None) == (self.source is None):
            raise ValueError("a step needs exactly one of 'codelists' or 'source: date_of_death'")
        return self


class FindingDef(BaseModel):
    model_config = _STRICT
    id: ItemId
    severity: Severity
    title: Text
    message: Text


class _Provenanced(BaseModel):
    model_config = _STRICT
    provenance: Provenance
    cite: Citation | None = None
    why: Text | None = None
    hazards: tuple[HazardId, ...] = ()

    @model_validator(mode="after")
    def _cited(self) -> _Provenanced:
        if self.provenance == "guidance" and self.cite is None:
            raise ValueError("provenance 'guidance' needs a 'cite' (source, section, quote)")
        if self.provenance != "guidance" and self.why is None:
            raise ValueError(f"provenance {self.provenance!r} needs a 'why' saying our reading")
        return self


class TransitionDef(_Provenanced):
    """The effect of one step in the listed states: exactly one of to / no_change / violation.

    ``finding`` may accompany ``to`` (the person moves and a warning is reported).
    """

    id: ItemId
    step: Identifier
    from_: tuple[Identifier, ...] = Field(alias="from", min_length=1)
    to: Identifier | None = None
    no_change: Literal[True] | None = None
    violation: ItemId | None = None
    finding: ItemId | None = None

    @model_validator(mode="after")
    def _one_effect(self) -> TransitionDef:
        given = [k for k in ("to", "no_change", "violation") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a transition needs exactly one effect: 'to: STATE', 'no_change: true' or "
                f"'violation: FINDING-ID' (got {', '.join(given) or 'none'})"
            )
        if self.finding is not None and self.to is None:
            raise ValueError("'finding' goes with 'to' only (a violation names its finding)")
        return self

    @property
    def finding_id(self) -> str | None:
        return self.violation or self.finding


class SameDayDef(_Provenanced):
    """Two steps that contradict each other when recorded on the same date."""

    id: ItemId
    steps: tuple[Identifier, Identifier]
    finding: ItemId


class PathwayFile(BaseModel):
    model_config = _STRICT
    pathway: Identifier
    title: Text
    version: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")]
    status: Status
    guidance: Text
    description: Text
    initial: Identifier
    states: tuple[StateDef, ...] = Field(min_length=1)
    steps: tuple[StepDef, ...] = Field(min_length=1)
    findings: tuple[FindingDef, ...] = ()
    transitions: tuple[TransitionDef, ...] = Field(min_length=1)
    same_day: tuple[SameDayDef, ...] = ()


# -- the compiled machine ---------------------------------------------------------------------

#: What one replay leaves: state, entered, history, findings, and the last event's date with
#: the bit mask of the steps seen on that date (for same-day conflict checks).
_Run = tuple[
    int, dt.date | None, list[PathwayTransition], list[PathwayFinding], dt.date | None, int
]


@dataclass(frozen=True, slots=True)
class _Cell:
    """The compiled effect of one step in one state."""

    next_state: int
    finding: FindingDef | None
    reason: str  # names the declared transition


class Pathway:
    """A loaded, checked and compiled caseload pathway. Immutable; share it freely.

    The declaration it came from is kept as ``definition`` (for documentation and review).
    """

    __slots__ = (
        "_by_code",
        "_cells",
        "_codelists",
        "_conflicts",
        "_death",
        "_frozen",
        "_initial",
        "_step_names",
        "codes",
        "definition",
        "id",
        "initial",
        "source",
        "states",
        "status",
        "step_codes",
        "terminal",
        "version",
    )

    id: str
    version: str
    status: str
    source: str
    states: tuple[str, ...]
    initial: str
    terminal: frozenset[str]
    codes: frozenset[str]
    step_codes: Mapping[str, frozenset[str]]
    definition: PathwayFile

    def __init__(self, definition: PathwayFile, source: str,
                 codelists: Mapping[str, frozenset[str]]) -> None:
        d = definition
        self.definition = d
        self.id = d.pathway
        self.version = d.version
        self.status = d.status
        self.source = source
        self.states = tuple(s.id for s in d.states)
        self.initial = d.initial
        self.terminal = frozenset(s.id for s in d.states if s.terminal)
        state_index = {s: i for i, s in enumerate(self.states)}
        step_index = {s.id: i for i, s in enumerate(d.steps)}
        finding_defs = {f.id: f for f in d.findings}
        self._initial = state_index[d.initial]
        self._step_names = tuple(s.id for s in d.steps)

        self._codelists = {cid: frozenset(codelists[cid]) for st in d.steps
                           for cid in st.codelists or ()}
        step_codes: dict[str, frozenset[str]] = {}
        by_code: dict[str, tuple[int, int]] = {}
        death: tuple[int, int] | None = None
        for i, step in enumerate(d.steps):
            if step.codelists is None:
                death = (step.precedence, i)
                continue
            codes = frozenset(c for cid in step.codelists for c in codelists[cid])
            step_codes[step.id] = codes
            for c in codes:
                by_code[c] = (step.precedence, i)
        assert death is not None
        self._death = death
        self._by_code = by_code
        self.step_codes = step_codes
        self.codes = frozenset(by_code)

        titles = {s.id: s.title for s in d.states}
        cells: list[list[_Cell | None]] = [[None] * len(d.steps) for _ in self.states]
        for t in d.transitions:
            fdef = finding_defs[t.finding_id] if t.finding_id else None
            step_i = step_index[t.step]
            for f in t.from_:
                fi = state_index[f]
                if t.to is not None:
                    nxt = state_index[t.to]
                    reason = f"{t.id}: moves from {titles[f]!r} to {titles[t.to]!r}"
                    if fdef is not None:
                        reason += f", with {fdef.severity} {fdef.id}: {fdef.message}"
                elif fdef is not None:  # violation
                    nxt = fi
                    reason = f"{t.id}: {fdef.severity} {fdef.id}: {fdef.message}"
                else:
                    nxt = fi
                    reason = f"{t.id}: accepted, stays {titles[f]!r}"
                cells[fi][step_i] = _Cell(nxt, fdef, reason)
        full: list[tuple[_Cell, ...]] = []
        for row in cells:
            assert all(c is not None for c in row)
            full.append(tuple(c for c in row if c is not None))
        self._cells = tuple(full)

        # Same-day conflicts: for each step, the (earlier-seen step, finding) pairs.
        conflicts: list[list[tuple[int, FindingDef]]] = [[] for _ in d.steps]
        for sd in d.same_day:
            a, b = (step_index[s] for s in sd.steps)
            fdef = finding_defs[sd.finding]
            conflicts[a].append((b, fdef))
            conflicts[b].append((a, fdef))
        self._conflicts = tuple(tuple(c) for c in conflicts)
        self._frozen = True

    def __setattr__(self, name: str, value: object) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(f"Pathway is immutable (cannot set {name!r})")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Pathway is immutable (cannot delete {name!r})")

    # -- public API ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Pathway({self.id!r}, version={self.version!r}, status={self.status!r})"

    def fact_domain(self) -> tuple[str, ...]:
        """The states, in declared order: the domain of a ``pathway_state`` fact."""
        return self.states

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Named groups of states (e.g. ``caseload``: every state of being on the caseload)."""
        out: dict[str, list[str]] = {}
        for s in self.definition.states:
            if s.group is not None:
                out.setdefault(s.group, []).append(s.id)
        return {g: tuple(members) for g, members in out.items()}

    def codelist_codes(self, codelist_id: str) -> frozenset[str]:
        """The codes of one of the codelists the pathway's steps name."""
        return self._codelists[codelist_id]

    def step_of(self, code: str) -> str | None:
        """The step a code records, or ``None`` if the pathway does not react to it."""
        info = self._by_code.get(code)
        return self._step_names[info[1]] if info is not None else None

    def replay(self, events: Iterable[tuple[dt.date, str]], as_of: dt.date,
               date_of_death: dt.date | None = None) -> PathwayResult:
        """Replay ``(date, code)`` events (any order) to the state as of ``as_of``.

        Codes the pathway does not record are ignored, as are events after ``as_of``. Events
        are taken in date order; same-day events in the declared precedence, then by code.
        Death (when ``date_of_death <= as_of``) is a step at its date.
        """
        state, entered, history, findings, _, _ = self._run(self._order(events, as_of,
                                                                         date_of_death))
        return PathwayResult(self.states[state], entered, tuple(history), tuple(findings))

    def may_record(self, events: Iterable[tuple[dt.date, str]], code: str, on: dt.date,
                   date_of_death: dt.date | None = None) -> RecordDecision:
        """May ``code`` be recorded ``on`` this date, given the record's events?

        Allowed when recording it would add no finding to the replay as of ``on``. Raises
        :class:`PathwayCodeError` for a code the pathway does not record.
        """
        info = self._by_code.get(code)
        if info is None:
            raise PathwayCodeError(f"{code!r} is not a code of pathway {self.id!r}; its codes "
                                   f"are {', '.join(sorted(self.codes))}")
        ordered = self._order(events, on, date_of_death)
        return self._decide(ordered, code, info, on)

    def next_codes(self, events: Iterable[tuple[dt.date, str]], on: dt.date,
                   date_of_death: dt.date | None = None) -> tuple[RecordDecision, ...]:
        """Every code that may be recorded ``on`` this date, in precedence order, with where
        each leads (codes that keep the state are included; see ``resulting_state``)."""
        ordered = self._order(events, on, date_of_death)
        base = self._run(ordered)
        out = []
        for code, info in sorted(self._by_code.items(), key=lambda kv: (kv[1][0], kv[0])):
            decision = self._decide(ordered, code, info, on, base)
            if decision.allowed:
                out.append(decision)
        return tuple(out)

    def replay_and_allow(
        self, events: Iterable[tuple[dt.date, str]], as_of: dt.date,
        date_of_death: dt.date | None, codes: Iterable[str],
    ) -> tuple[PathwayResult, frozenset[str]]:
        """:meth:`replay` as of ``as_of``, plus which of ``codes`` may be recorded on that date.

        One ordering and one replay serve both answers (the assessment's hot path, where
        ``may_record`` facts ask about a few codes); the decisions are exactly
        :meth:`may_record`'s.
        """
        ordered = self._order(events, as_of, date_of_death)
        base = self._run(ordered)
        state, entered, history, findings, _, _ = base
        allowed = frozenset(
            code for code in codes
            if (info := self._by_code.get(code)) is not None
            and self._decide(ordered, code, info, as_of, base).allowed
        )
        result = PathwayResult(self.states[state], entered, tuple(history), tuple(findings))
        return result, allowed

    def to_mermaid(self) -> str:
        """The state diagram as Mermaid ``stateDiagram-v2`` source (state changes only)."""
        d = self.definition
        step_titles = {s.id: s.title for s in d.steps}
        lines = ["stateDiagram-v2", "    direction LR"]
        for s in d.states:
            lines.append(f"    state \"{_mermaid_text(s.title)}\" as {s.id}")
        lines.append(f"    [*] --> {d.initial}")
        edges: dict[tuple[str, str], list[str]] = {}
        for t in d.transitions:
            if t.to is None:
                continue
            label = step_titles[t.step] + (f" ({t.finding})" if t.finding else "")
            for f in t.from_:
                labels = edges.setdefault((f, t.to), [])
                if label not in labels:
                    labels.append(label)
        for (a, b), labels in edges.items():
            lines.append(f"    {a} --> {b} : {_mermaid_text('; '.join(labels))}")
        for s in d.states:
            if s.terminal:
                lines.append(f"    {s.id} --> [*]")
        for group, members in self.groups().items():
            lines.append(f"    classDef {group} fill:#e6f2e6,stroke:#2e7d32")
            lines.append(f"    class {','.join(members)} {group}")
        return "\n".join(lines) + "\n"

    # -- the engine ---------------------------------------------------------------------------

    def _order(self, events: Iterable[tuple[dt.date, str]], as_of: dt.date,
               date_of_death: dt.date | None) -> list[tuple[dt.date, int, str, int]]:
        return pathway_order(events, self._by_code, self._death, as_of, date_of_death)

    def _run(self, ordered: Sequence[tuple[dt.date, int, str, int]]) -> _Run:
        """Replay ordered events. Returns state, entered, history, findings, and the last
        event's date with the mask of steps seen on it (for same-day conflict checks)."""
        cells = self._cells
        conflicts = self._conflicts
        states = self.states
        steps = self._step_names
        state = self._initial
        entered: dt.date | None = None
        history: list[PathwayTransition] = []
        findings: list[PathwayFinding] = []
        day: dt.date | None = None
        seen = 0
        for when, _, code, step in ordered:
            if when != day:
                day = when
                seen = 0
            if seen and conflicts[step]:
                for other, fdef in conflicts[step]:
                    if seen >> other & 1:
                        findings.append(PathwayFinding(fdef.id, fdef.severity, when, code or None,
                                                       states[state], fdef.message))
            seen |= 1 << step
            cell = cells[state][step]
            if cell.finding is not None:
                f = cell.finding
                findings.append(PathwayFinding(f.id, f.severity, when, code or None,
                                               states[state], f.message))
            if cell.next_state != state:
                history.append(PathwayTransition(when, code, steps[step], states[state],
                                                 states[cell.next_state]))
                state = cell.next_state
                entered = when
        return state, entered, history, findings, day, seen

    def _decide(self, ordered: list[tuple[dt.date, int, str, int]], code: str,
                info: tuple[int, int], on: dt.date, base: _Run | None = None) -> RecordDecision:
        prec, step = info
        new = (on, prec, code, step)
        before = base if base is not None else self._run(ordered)
        if not ordered or ordered[-1] <= new:
            # The new code would be the last event as of `on`: one table lookup.
            state, _, _, _, day, seen = before
            cell = self._cells[state][step]
            if day == on and seen:
                for other, fdef in self._conflicts[step]:
                    if seen >> other & 1:
                        return RecordDecision(code, on, False,
                                              f"same-day {fdef.severity} {fdef.id}: "
                                              f"{fdef.message}",
                                              self.states[cell.next_state], fdef.id)
            f = cell.finding
            return RecordDecision(code, on, f is None, cell.reason,
                                  self.states[cell.next_state], f.id if f else None)
        # It would sit before events already recorded on `on` (by precedence): replay both ways
        # and compare, since it changes what those later events do.
        after_order = sorted([*ordered, new])
        after = self._run(after_order)
        added = Counter(after[3]) - Counter(before[3])
        state_at = self._state_before(after_order, new)
        cell = self._cells[state_at][step]
        resulting = self.states[after[0]]
        if added:
            first = next(iter(added))
            return RecordDecision(code, on, False,
                                  f"{first.severity} {first.id} on {first.date.isoformat()}: "
                                  f"{first.message}", resulting, first.id)
        return RecordDecision(code, on, True, cell.reason, resulting, None)

    def _state_before(self, ordered: list[tuple[dt.date, int, str, int]],
                      target: tuple[dt.date, int, str, int]) -> int:
        cut = ordered.index(target)
        return self._run(ordered[:cut])[0]


def _mermaid_text(text: str) -> str:
    """Text safe inside a Mermaid state label or edge label."""
    return text.replace('"', "'").replace(":", " -").replace("#", "")


# -- loading and static checks ----------------------------------------------------------------


def load_pathway(path: str | Path, codelists: Mapping[str, frozenset[str]],
                 display_name: str | None = None) -> Pathway:
    """Load, validate, statically check and compile a pathway file.

    ``codelists`` maps codelist id to its codes. Every problem found is reported at once as a
    :class:`~int_rules.errors.RulesetError` (``RulesetErrors`` when several) whose message
    starts ``file:line:column: key:``.
    """
    name = display_name or str(path)
    return pathway_from_yaml(load_yaml(path, name), codelists, name)


def pathway_from_yaml(raw: Any, codelists: Mapping[str, frozenset[str]], name: str) -> Pathway:
    """Validate, check and compile an already parsed pathway file (as :func:`load_yaml`
    returns it, so errors are located); ``name`` is the file as errors name it."""
    if not isinstance(raw, dict):
        raise RulesetError(Location(name, 1, 1), "a pathway file must be a YAML mapping")
    try:
        definition = PathwayFile.model_validate(raw)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            where = locate(raw, loc, name)
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
                where = _locate_key(raw, loc, name) or where
            elif err["type"] == "missing":
                msg = "required key is missing"
            errors.append(RulesetError(where, msg, key=_key(loc) or None))
        raise _bundle(errors) from None
    problems = _check(definition, raw, name, codelists)
    if problems:
        raise _bundle(problems)
    return Pathway(definition, Path(name).name, codelists)


def _locate_key(raw: Any, loc: Sequence[int | str], file: str) -> Location | None:
    """Where the key at the end of ``loc`` was written (rather than its value)."""
    parent = raw
    for part in loc[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return None
    if isinstance(parent, LocatedDict) and loc and loc[-1] in parent.key_positions:
        line, column = parent.key_positions[loc[-1]]
        return Location(parent.file or file, line, column)
    return None


def _bundle(errors: list[RulesetError]) -> RulesetError:
    return errors[0] if len(errors) == 1 else RulesetErrors(errors)


def _key(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _check(d: PathwayFile, raw: Any, file: str,
           codelists: Mapping[str, frozenset[str]]) -> list[RulesetError]:
    """The static checks. Every problem, located; an empty list when the machine is sound."""
    problems: list[RulesetError] = []

    def err(loc: tuple[int | str, ...], message: str, key: str | None = None) -> None:
        problems.append(RulesetError(locate(raw, loc, file), message, key=key or _key(loc)))

    # Names are unique.
    state_ids: dict[str, int] = {}
    for i, sdef in enumerate(d.states):
        if sdef.id in state_ids:
            err(("states", i, "id"), f"state {sdef.id!r} is declared twice "
                f"(first as states[{state_ids[sdef.id]}])")
        state_ids.setdefault(sdef.id, i)
    step_ids: dict[str, int] = {}
    precedences: dict[int, str] = {}
    for i, st in enumerate(d.steps):
        if st.id in step_ids:
            err(("steps", i, "id"), f"step {st.id!r} is declared twice "
                f"(first as steps[{step_ids[st.id]}])")
        step_ids.setdefault(st.id, i)
        if st.precedence in precedences:
            err(("steps", i, "precedence"), f"step {st.id!r} has the same precedence "
                f"({st.precedence}) as step {precedences[st.precedence]!r}: same-day order "
                "would be ambiguous")
        precedences.setdefault(st.precedence, st.id)
    finding_ids: dict[str, int] = {}
    for i, fdef in enumerate(d.findings):
        if fdef.id in finding_ids:
            err(("findings", i, "id"), f"finding {fdef.id!r} is declared twice")
        finding_ids.setdefault(fdef.id, i)
    item_ids: set[str] = set(finding_ids)
    sections: tuple[tuple[str, Sequence[TransitionDef | SameDayDef]], ...] = (
        ("transitions", d.transitions), ("same_day", d.same_day))
    for section, items in sections:
        for i, item in enumerate(items):
            if item.id in item_ids:
                err((section, i, "id"), f"id {item.id!r} is used twice in this file")
            item_ids.add(item.id)

    # The initial state.
    if d.initial not in state_ids:
        err(("initial",), f"unknown state {d.initial!r}; states are {_names(state_ids)}")
    elif d.states[state_ids[d.initial]].terminal:
        err(("initial",), f"the initial state {d.initial!r} is terminal")

    # Steps: sources exist and codes are sound; a code belongs to one step; one death step.
    code_owner: dict[str, str] = {}
    death_steps = [i for i, st in enumerate(d.steps) if st.source == DEATH_SOURCE]
    if not death_steps:
        err(("steps",), "no step has 'source: date_of_death': the pathway must declare what "
            "happens on death", key="steps")
    for i in death_steps[1:]:
        err(("steps", i, "source"), "only one step may take its date from the date of death")
    for i, st in enumerate(d.steps):
        for j, cid in enumerate(st.codelists or ()):
            loc: tuple[int | str, ...] = ("steps", i, "codelists", j)
            if cid not in codelists:
                err(loc, f"unknown codelist {cid!r}", key=f"step {st.id}")
                continue
            if not codelists[cid]:
                err(loc, f"codelist {cid!r} has no codes: the step could never happen",
                    key=f"step {st.id}")
            for code in sorted(codelists[cid]):
                problem = concept_id_problem(code)
                if problem:
                    err(loc, f"codelist {cid!r}: {code!r} is not a SNOMED CT concept id: "
                        f"{problem}", key=f"step {st.id}")
                owner = code_owner.setdefault(code, st.id)
                if owner != st.id:
                    err(loc, f"code {code} (codelist {cid!r}) also records step {owner!r}: a "
                        "code must record one step", key=f"step {st.id}")

    # Findings named exist.
    used_findings: set[str] = set()

    def need_finding(fid: str, loc: tuple[int | str, ...], key: str) -> None:
        used_findings.add(fid)
        if fid not in finding_ids:
            err(loc, f"unknown finding {fid!r}; findings are {_names(finding_ids)}", key=key)

    # Transitions: names exist; at most one effect per (state, step).
    declared: dict[tuple[str, str], tuple[str, int, int]] = {}
    for i, t in enumerate(d.transitions):
        key = f"transition {t.id}"
        if t.step not in step_ids:
            err(("transitions", i, "step"), f"unknown step {t.step!r}; steps are "
                f"{_names(step_ids)}", key=key)
        if t.to is not None and t.to not in state_ids:
            err(("transitions", i, "to"), f"unknown state {t.to!r}; states are "
                f"{_names(state_ids)}", key=key)
        if t.violation is not None:
            need_finding(t.violation, ("transitions", i, "violation"), key)
        if t.finding is not None:
            need_finding(t.finding, ("transitions", i, "finding"), key)
        for j, f in enumerate(t.from_):
            loc = ("transitions", i, "from", j)
            if f not in state_ids:
                err(loc, f"unknown state {f!r}; states are {_names(state_ids)}", key=key)
                continue
            if t.to == f:
                err(loc, f"moves {f!r} to itself: write 'no_change: true' so the effect reads "
                    "plainly", key=key)
            if t.step in step_ids:
                first = declared.setdefault((f, t.step), (t.id, i, j))
                if first[1:] != (i, j):
                    line = locate(raw, ("transitions", first[1], "from", first[2]), file).line
                    err(loc, f"step {t.step!r} in state {f!r} already has an effect "
                        f"(transition {first[0]}, line {line}): two transitions for one code "
                        "and state", key=key)
    for i, sd in enumerate(d.same_day):
        key = f"same_day {sd.id}"
        for j, step_name in enumerate(sd.steps):
            if step_name not in step_ids:
                err(("same_day", i, "steps", j), f"unknown step {step_name!r}", key=key)
        if sd.steps[0] == sd.steps[1]:
            err(("same_day", i, "steps"), "a same-day conflict needs two different steps",
                key=key)
        need_finding(sd.finding, ("same_day", i, "finding"), key)
    for fid, i in finding_ids.items():
        if fid not in used_findings:
            err(("findings", i, "id"), f"finding {fid!r} is never reported by any transition",
                key=f"finding {fid}")
    if problems:
        return problems  # the machine-level checks below need sound names

    # Completeness: every step has an effect in every state.
    for i, st in enumerate(d.steps):
        missing = [s.id for s in d.states if (s.id, st.id) not in declared]
        if missing:
            err(("steps", i, "id"), f"step {st.id!r} has no effect declared in state(s) "
                f"{', '.join(missing)}: add a transition (to, no_change or violation)",
                key=f"step {st.id}")

    # Terminal states are left by nothing; other states by at least one coded step.
    exits: dict[str, set[str]] = {s.id: set() for s in d.states}
    coded_exits: dict[str, set[str]] = {s.id: set() for s in d.states}
    death_id = d.steps[death_steps[0]].id if death_steps else None
    for i, t in enumerate(d.transitions):
        if t.to is None:
            continue
        for f in t.from_:
            exits[f].add(t.to)
            if t.step != death_id:
                coded_exits[f].add(t.to)
            if d.states[state_ids[f]].terminal:
                err(("transitions", i, "to"), f"terminal state {f!r} must not be left "
                    f"(moves to {t.to!r})", key=f"transition {t.id}")
    for i, sdef in enumerate(d.states):
        if not sdef.terminal and not coded_exits[sdef.id]:
            err(("states", i, "id"), f"state {sdef.id!r} has no coded way out and is not "
                "declared terminal: a person could never leave it", key=f"state {sdef.id}")

    # Reachability from the initial state.
    reached = {d.initial}
    frontier = [d.initial]
    while frontier:
        for nxt in exits[frontier.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    for i, sdef in enumerate(d.states):
        if sdef.id not in reached:
            err(("states", i, "id"), f"state {sdef.id!r} cannot be reached from the initial "
                f"state {d.initial!r}", key=f"state {sdef.id}")
    return problems


def _names(ids: Mapping[str, int]) -> str:
    return ", ".join(ids)
