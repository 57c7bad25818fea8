"""Delivery and outcomes: the guide's impact indicators over a population run
(``rulesets/outcomes.yaml``).

What the file declares, this module computes; no window, band or threshold is written here.

* **Index date.** A person's index date is the first code of the pathway's ``index_step``
  (enrolment) dated on or before the as-of date and not after death. Follow-up runs from the
  index date to the end of the day of the first ``end_steps`` code (step-down, decline) or death
  on or after it, the end of the after window, or the as-of date, whichever is first.
* **Windows.** The before window is the ``window_before_days`` days before the index date (never
  starting before ``admissions_data_from``); the after window starts on the index date. An
  admission counts in the window its admission date falls in; its length of stay is discharge
  minus admission date (an open admission counts up to death or the as-of date); rates are per
  person-year (365.25 days).
* **Matched comparison.** Each enrolled person is matched with up to ``controls_per_enrolled``
  people identified for proactive care (a code of the ``eligible_step`` on or before the index
  date), never enrolled by the as-of date, without an ``excluded_steps`` code by the index date,
  alive on it, and in the same sex, cohort, age band, risk band and prior-admissions band at
  that date: *rolling entry*, each control indexed at its match's enrolment date. A person may
  be the match of several enrolled people; each enrolled person's matches share a weight of 1.
* **Difference in differences.** For a rate indicator: (after - before) in the enrolled minus
  (after - before) in their matches, from a weighted least-squares model of each person's rate
  in each window on group, period and their interaction, weighted by person-time, with standard
  errors clustered by person (statsmodels). It is observational, not causal proof.

:func:`load_outcomes` validates the file (every problem located ``file:line:column``, every
citation's quote checked against the bundled guidance), :func:`compute_outcomes` runs the SQL
over a population run's tables (``pt``, ``ev``, ``adm``, ``rs`` and ``results``),
:func:`write_outcomes_csv` writes ``outcomes.csv`` and :func:`outcomes_section` returns the
report's section.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import html
import importlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from ..engines.sql import literal
from ..errors import RulesetError, RulesetErrors
from ..language.schema import Citation, Parameter, ParamRef
from ..language.yamlsrc import load_yaml, locate, shown_path, validate_located
from .ahead import imported_ahead

if TYPE_CHECKING:
    import duckdb

    from ..rulebook import Rulebook

__all__ = [
    "ICS",
    "Outcomes",
    "OutcomesTable",
    "SmallNumber",
    "compute_outcomes",
    "disclose",
    "load_outcomes",
    "model_imported_ahead",
    "outcomes_section",
    "summary",
    "write_outcomes_csv",
]

ICS = "All neighbourhoods"
"""The label of the whole-extract row (as in ``dashboard.csv``)."""
NOT_RECORDED = "(neighbourhood not recorded)"
DAYS_PER_YEAR = 365.25

SmallNumber = Callable[[int], bool]
"""Small-number suppression: given a count of people, True if figures built on it must not be
shown. ``None`` (the default) shows every figure."""

_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
Provenance = Literal["guidance", "local-policy", "assumption"]
Number = ParamRef | int | float


# -- the file's schema ------------------------------------------------------------------------


class EnrolmentDef(BaseModel):
    """When a person joined the caseload, and what ends their follow-up (pathway step ids)."""

    model_config = _STRICT
    index_step: Identifier
    end_steps: list[Identifier] = Field(min_length=1)
    provenance: Provenance
    why: str = Field(min_length=1)
    cite: Citation | None = None


class CohortMatch(BaseModel):
    """Match on a cohort output: the first of ``priority`` the person is in, else none."""

    model_config = _STRICT
    output: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
    priority: list[str] = Field(min_length=1)


class RiskMatch(BaseModel):
    """Match on the band of the latest risk score of ``source`` on or before the index date."""

    model_config = _STRICT
    source: ParamRef | str
    band_width: Number


class MatchDef(BaseModel):
    model_config = _STRICT
    age_band_years: Number
    sex: bool = True
    cohort: CohortMatch | None = None
    risk: RiskMatch | None = None
    prior_admissions_cap: Number


class ComparisonDef(BaseModel):
    model_config = _STRICT
    eligible_step: Identifier
    excluded_steps: list[Identifier] = Field(default_factory=list)
    match: MatchDef
    controls_per_enrolled: Number
    confidence_level: Number
    min_matched_for_estimate: Number
    provenance: Provenance
    why: str = Field(min_length=1)
    cite: Citation | None = None


class AdmissionFilter(BaseModel):
    """Which admissions count: emergency or not (absent: both), a least length of stay."""

    model_config = _STRICT
    emergency: bool | None = None
    min_stay_days: int | None = Field(default=None, ge=0)


class RateDef(BaseModel):
    """A rate per person-year: admissions counted, or their bed days summed."""

    model_config = _STRICT
    admissions: AdmissionFilter | None = None
    bed_days: AdmissionFilter | None = None


class ShareDef(BaseModel):
    """A share of people by pathway state as of the as-of date."""

    model_config = _STRICT
    of_states: list[Identifier] = Field(min_length=1)
    per_states: list[Identifier] = Field(min_length=1)


class NotComputable(BaseModel):
    model_config = _STRICT
    needs: str = Field(min_length=1)


class IndicatorDef(BaseModel):
    model_config = _STRICT
    id: Identifier
    title: str = Field(min_length=1)
    direction: Literal["up", "down"]
    rate: RateDef | None = None
    share: ShareDef | None = None
    not_computable: NotComputable | None = None
    among_cohorts: list[str] | None = None
    provenance: Provenance
    why: str | None = None
    cite: Citation


class OutcomesFile(BaseModel):
    model_config = _STRICT
    outcomes: Identifier
    title: str = Field(min_length=1)
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    status: Literal["draft", "approved", "retired"]
    guidance: list[str] = Field(min_length=1)
    description: str = Field(min_length=1)
    cite: Citation | None = None
    parameters: dict[Identifier, Parameter] = Field(default_factory=dict)
    enrolment: EnrolmentDef
    comparison: ComparisonDef
    indicators: list[IndicatorDef] = Field(min_length=1)


# -- compiled ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Indicator:
    """One indicator ready to compute: ``kind`` is rate, share or not_computable."""

    definition: IndicatorDef
    kind: Literal["rate", "share", "not_computable"]
    measure: Literal["admissions", "bed_days"] | None = None
    where_sql: str = "TRUE"

    @property
    def id(self) -> str:
        return self.definition.id


@dataclass(frozen=True)
class Outcomes:
    """A loaded outcomes file for one rulebook, its parameters resolved."""

    definition: OutcomesFile
    file: str
    sha256: str
    codes: Mapping[str, tuple[str, ...]]  # role (index, end, eligible, excluded) -> codes
    before_days: int
    after_days: int
    data_from: dt.date | None  # None: the earliest admission in the extract
    age_band_years: int
    match_sex: bool
    cohort_column: str | None
    cohort_collect: bool
    cohort_priority: tuple[str, ...]
    risk_source: str | None
    risk_band_width: float
    prior_cap: int
    controls_per_enrolled: int
    confidence_level: float
    min_matched: int
    indicators: tuple[Indicator, ...]
    index_title: str  # the pathway step whose first code is the index date, in words


def default_outcomes_path(book: Rulebook) -> Path:
    return book.directory / "outcomes.yaml"


def load_outcomes(book: Rulebook, path: Path | None = None) -> Outcomes | None:
    """Load and check the outcomes file for ``book`` (``None`` if the rulebook has none).

    Raises :class:`~int_rules.errors.RulesetError` naming ``file:line:column`` for a problem:
    an unknown key, a pathway step, output, cohort or parameter that does not exist, a number
    out of range, a citation whose quote is not verbatim in the bundled guidance.
    """
    path = path or default_outcomes_path(book)
    if not path.is_file():
        return None
    shown = shown_path(path, book.directory)
    raw = load_yaml(path, shown)
    model = validate_located(OutcomesFile, raw, shown,
                             "unknown key (see the comments at the top of outcomes.yaml)")
    checker = _Checker(book, model, raw, shown)
    outcomes = checker.compile(hashlib.sha256(path.read_bytes()).hexdigest())
    checker.raise_if_any()
    assert outcomes is not None
    return outcomes


class _Checker:
    """The meaning checks of an outcomes file; problems are collected, then raised together."""

    def __init__(self, book: Rulebook, model: OutcomesFile, raw: Any, file: str) -> None:
        self.book = book
        self.model = model
        self.raw = raw
        self.file = file
        self.errors: list[RulesetError] = []
        self.params = {name: p.value for name, p in model.parameters.items()}

    def problem(self, path: tuple[int | str, ...], message: str) -> None:
        self.errors.append(RulesetError(locate(self.raw, path, self.file), message,
                                        ".".join(str(p) for p in path)))

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise RulesetErrors(self.errors)

    def value(self, v: Any, path: tuple[int | str, ...]) -> Any:
        if isinstance(v, ParamRef):
            if v.param not in self.params:
                self.problem(path, f"unknown parameter {v.param!r} (parameters: "
                                   f"{', '.join(self.params) or 'none'})")
                return None
            return self.params[v.param]
        return v

    def number(self, v: Any, path: tuple[int | str, ...], *, integer: bool, low: float,
               high: float | None = None) -> float:
        value = self.value(v, path)
        if value is None:
            return low
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                integer and not isinstance(value, int)) or not math.isfinite(value):
            self.problem(path, f"expected {'a whole number' if integer else 'a number'}, "
                               f"got {value!r}")
            return low
        if value < low or (high is not None and value > high):
            span = f"at least {low:g}" if high is None else f"between {low:g} and {high:g}"
            self.problem(path, f"must be {span}, got {value!r}")
            return low
        return float(value)

    def steps(self, names: Sequence[str], path: tuple[int | str, ...]
              ) -> tuple[list[str], bool]:
        """The codes of the named pathway steps, and whether death is among them."""
        by_id = {s.id: s for s in self.book.pathway.definition.steps}
        codes: list[str] = []
        death = False
        for i, name in enumerate(names):
            step = by_id.get(name)
            where = (*path, i) if len(names) > 1 or isinstance(self._at(path), list) else path
            if step is None:
                self.problem(where, f"no pathway step {name!r} (steps: {', '.join(by_id)})")
                continue
            if not step.codelists:
                death = True
                continue
            for cid in step.codelists:
                codes.extend(sorted(self.book.codelists[cid].codes))
        return codes, death

    def _at(self, path: tuple[int | str, ...]) -> Any:
        node = self.raw
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return None
        return node

    def citation(self, cite: Citation | None, path: tuple[int | str, ...]) -> None:
        if cite is None:
            return
        if cite.source not in self.model.guidance:
            self.problem((*path, "source"), f"{cite.source!r} is not one of this file's "
                                            f"guidance ({', '.join(self.model.guidance)})")
            return
        text = _guidance_text(self.book.directory / "guidance" / cite.source)
        if text is None:
            return  # a rulebook without its guidance copy: the source name is all we can check
        if _normal(cite.quote) not in _normal(text):
            self.problem((*path, "quote"), f"the quote is not verbatim in {cite.source}")
        elif not re.search(rf"(?m)^[ \t]*{re.escape(cite.section)}[ \t]*$", text):
            self.problem((*path, "section"), f"no line of {cite.source} is the heading "
                                             f"{cite.section!r}")

    def compile(self, sha256: str) -> Outcomes | None:
        m = self.model
        self.citation(m.cite, ("cite",))
        for name, p in m.parameters.items():
            self.citation(p.cite, ("parameters", name, "cite"))
        e, c = m.enrolment, m.comparison
        self.citation(e.cite, ("enrolment", "cite"))
        self.citation(c.cite, ("comparison", "cite"))
        index, _ = self.steps([e.index_step], ("enrolment", "index_step"))
        end, death = self.steps(e.end_steps, ("enrolment", "end_steps"))
        if not death:
            self.problem(("enrolment", "end_steps"), "follow-up always ends at death: list the "
                                                     "pathway's death step here")
        eligible, _ = self.steps([c.eligible_step], ("comparison", "eligible_step"))
        excluded, _ = self.steps(c.excluded_steps, ("comparison", "excluded_steps"))
        before = self.number(self.params.get("window_before_days"),
                             ("parameters", "window_before_days"), integer=True, low=1)
        after = self.number(self.params.get("window_after_days"),
                            ("parameters", "window_after_days"), integer=True, low=1)
        for key in ("window_before_days", "window_after_days", "admissions_data_from"):
            if key not in self.params:
                self.problem(("parameters",), f"parameter {key!r} is required")
        data_from = self._data_from()
        mt = c.match
        age_band = self.number(mt.age_band_years, ("comparison", "match", "age_band_years"),
                               integer=True, low=1)
        prior = self.number(mt.prior_admissions_cap,
                            ("comparison", "match", "prior_admissions_cap"), integer=True, low=1)
        cohort_col, collect, priority = self._cohort(mt.cohort)
        risk_source = None
        width = 1.0
        if mt.risk is not None:
            src = self.value(mt.risk.source, ("comparison", "match", "risk", "source"))
            risk_source = None if src is None else str(src)
            width = self.number(mt.risk.band_width, ("comparison", "match", "risk",
                                                     "band_width"), integer=False, low=1e-9)
        k = self.number(c.controls_per_enrolled, ("comparison", "controls_per_enrolled"),
                        integer=True, low=1, high=100)
        level = self.number(c.confidence_level, ("comparison", "confidence_level"),
                            integer=False, low=0.5, high=0.999)
        min_matched = self.number(c.min_matched_for_estimate,
                                  ("comparison", "min_matched_for_estimate"), integer=True,
                                  low=2)
        indicators = []
        seen: set[str] = set()
        for i, ind in enumerate(m.indicators):
            indicators.append(self.indicator(ind, ("indicators", i), seen, priority))
        if self.errors:
            return None
        return Outcomes(
            m, self.file, sha256,
            {"index": tuple(index), "end": tuple(end), "eligible": tuple(eligible),
             "excluded": tuple(excluded)},
            int(before), int(after), data_from, int(age_band), mt.sex, cohort_col, collect,
            tuple(priority), risk_source, width, int(prior), int(k), level, int(min_matched),
            tuple(indicators), next(s.title for s in self.book.pathway.definition.steps
                                    if s.id == e.index_step))

    def _data_from(self) -> dt.date | None:
        value = self.params.get("admissions_data_from")
        if value is None or value == "earliest":
            return None
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            self.problem(("parameters", "admissions_data_from", "value"),
                         f"expected 'earliest' or a date YYYY-MM-DD, got {value!r}")
            return None

    def _cohort(self, cm: CohortMatch | None) -> tuple[str | None, bool, list[str]]:
        if cm is None:
            return None, False, []
        where = ("comparison", "match", "cohort")
        ruleset, key = cm.output.split(".", 1)
        rs = next((r for r in self.book.rulesets if r.id == ruleset), None)
        out = rs.definition.outputs.get(key) if rs is not None else None
        if rs is None or out is None:
            self.problem((*where, "output"), f"no ruleset output {cm.output!r} in this rulebook")
            return None, False, []
        values = list(out.values or [])
        for i, v in enumerate(cm.priority):
            if v not in values:
                self.problem((*where, "priority", i), f"{v!r} is not a value of "
                                                      f"{cm.output} ({', '.join(values)})")
        return f"{ruleset}_{key}", rs.definition.hit_policy == "collect", list(cm.priority)

    def indicator(self, ind: IndicatorDef, path: tuple[int | str, ...], seen: set[str],
                  cohorts: Sequence[str]) -> Indicator:
        if ind.id in seen:
            self.problem((*path, "id"), f"indicator id {ind.id!r} is used twice")
        seen.add(ind.id)
        self.citation(ind.cite, (*path, "cite"))
        kinds = [k for k in ("rate", "share", "not_computable") if getattr(ind, k) is not None]
        if len(kinds) != 1:
            self.problem(path, "an indicator needs exactly one of rate, share or not_computable")
            return Indicator(ind, "not_computable")
        if ind.among_cohorts is not None:
            if ind.rate is None:
                self.problem((*path, "among_cohorts"), "among_cohorts applies to a rate only")
            for i, v in enumerate(ind.among_cohorts):
                if v not in cohorts:
                    self.problem((*path, "among_cohorts", i), f"{v!r} is not a matching cohort "
                                                              f"({', '.join(cohorts) or 'none'})")
        if ind.share is not None:
            states = {s.id for s in self.book.pathway.definition.states}
            for key in ("of_states", "per_states"):
                for i, s in enumerate(getattr(ind.share, key)):
                    if s not in states:
                        self.problem((*path, "share", key, i), f"no pathway state {s!r}")
            return Indicator(ind, "share")
        if ind.rate is not None:
            r = ind.rate
            if (r.admissions is None) == (r.bed_days is None):
                self.problem((*path, "rate"), "a rate needs exactly one of admissions or "
                                              "bed_days")
                return Indicator(ind, "not_computable")
            flt = r.admissions or r.bed_days
            assert flt is not None
            parts = []
            if flt.emergency is not None:
                parts.append("a.emergency" if flt.emergency else "NOT a.emergency")
            if flt.min_stay_days is not None:
                parts.append(f"a.stay >= {int(flt.min_stay_days)}")
            return Indicator(ind, "rate", "admissions" if r.admissions else "bed_days",
                             " AND ".join(parts) or "TRUE")
        return Indicator(ind, "not_computable")


def _normal(text: str) -> str:
    return " ".join(text.split())


def _guidance_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


# -- computing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """One rate indicator for one group of enrolled people and their matches."""

    enrolled: int  # matched enrolled people with a baseline
    controls: int  # distinct matched people
    py_enrolled_before: float
    py_enrolled_after: float
    py_controls_before: float
    py_controls_after: float
    enrolled_before: float
    enrolled_after: float
    controls_before: float
    controls_after: float
    did: float | None
    ci_low: float | None
    ci_high: float | None
    note: str = ""


@dataclass
class OutcomesTable:
    """The computed outcomes: one row per indicator and neighbourhood (the ICS last)."""

    outcomes: Outcomes
    as_of: dt.date
    data_from: dt.date | None  # where the before windows may start (None: no admissions)
    neighbourhoods: list[str]  # in order, ICS last
    by_cohort: dict[tuple[str, str], dict[str, int]]  # (neighbourhood, cohort) -> counts
    rows: list[dict[str, Any]] = field(default_factory=list)
    suppression: str = "off"  # the disclosure rule applied to the counts, if any
    rounded: Callable[[int], int | str] | None = None  # that rule, for one count

    def counts_for(self, nb: str, cohorts: set[str] | None = None) -> dict[str, int]:
        """How many enrolled people (with no baseline, matched, unmatched; how follow-up
        ended) in ``nb`` (or the ICS), optionally only the given matching cohorts."""
        out = dict.fromkeys(COUNT_KEYS, 0)
        for (where, cohort), counts in self.by_cohort.items():
            if (nb == ICS or where == nb) and (cohorts is None or cohort in cohorts):
                for k in COUNT_KEYS:
                    out[k] += counts[k]
        return out

    def row(self, indicator: str, nb: str = ICS) -> dict[str, Any]:
        """The row of one indicator for one neighbourhood (the ICS by default)."""
        for r in self.rows:
            if r["indicator"] == indicator and r["neighbourhood"] == nb:
                return r
        raise KeyError((indicator, nb))


COUNT_KEYS = ("enrolled", "no_baseline", "matched", "unmatched", "ended_step", "ended_death",
              "ended_as_of")
"""The counts of enrolled people on every rate row of ``outcomes.csv``."""


def summary(table: OutcomesTable) -> dict[str, Any]:
    """What ``run_summary.json`` says of the outcomes: the file, its version and status, its
    sha256, where the before windows may start, and the ICS counts."""
    d = table.outcomes.definition
    return {"file": table.outcomes.file, "version": d.version, "status": d.status,
            "sha256": table.outcomes.sha256,
            "admissions_data_from": table.data_from.isoformat() if table.data_from else None,
            "enrolled": {k: (table.rounded(v) if table.rounded else v)
                         for k, v in table.counts_for(ICS).items()},
            "small_number_suppression": table.suppression,
            "not_computable": [i.id for i in table.outcomes.indicators
                               if i.kind == "not_computable"]}


def disclose(table: OutcomesTable, rounded: Callable[[int], int | str], rule: str
             ) -> OutcomesTable:
    """``table`` with every count of people passed through ``rounded`` (the run's small-number
    rule, e.g. 1-7 redacted and others rounded to 5) and shares recomputed from the rounded
    counts; figures built on a suppressed count are already empty (``compute_outcomes``'s
    ``suppress``)."""
    counts = (*COUNT_KEYS, "controls", "numerator", "denominator")
    for row in table.rows:
        for name in counts:
            value = row.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                row[name] = rounded(value)
        if row["kind"] == "share":
            num, den = row.get("numerator"), row.get("denominator")
            row["share"] = num / den if isinstance(num, int) and isinstance(den, int) and den \
                else None
    table.suppression = rule
    table.rounded = rounded
    return table


def compute_outcomes(con: duckdb.DuckDBPyConnection, book: Rulebook, outcomes: Outcomes,
                     as_of: dt.date, *, suppress: SmallNumber | None = None) -> OutcomesTable:
    """Compute every indicator over a population run's tables in ``con``.

    Needs ``pt``, ``ev``, ``adm``, ``rs`` (:mod:`.tables`) and ``results`` (pid,
    ``pathway_state`` and the cohort output). Leaves the per-person windows in the temporary
    table ``outcome_units`` (one row per enrolled person and per match) for inspection.
    """
    _units(con, outcomes, as_of)
    data_from = con.execute("SELECT data_from FROM __oc_meta").fetchall()[0][0]
    nbs, by_cohort = _counts(con)
    table = OutcomesTable(outcomes, as_of, data_from, nbs, by_cohort)
    no_admissions = data_from is None
    for ind in outcomes.indicators:
        units = Units.from_rows(_unit_rows(con, ind, as_of)) if ind.kind == "rate" else None
        shares = (_shares(con, ind.definition.share)
                  if ind.definition.share is not None else None)
        where = [ICS] if ind.kind == "not_computable" else nbs
        for nb in where:
            row = _row(table, ind, nb, units, shares, suppress)
            if ind.kind == "rate" and no_admissions:
                row.update(dict.fromkeys(_FIGURES), controls=None,
                           note="not available: the extract has no admissions")
            table.rows.append(row)
    return table


def _units(con: duckdb.DuckDBPyConnection, o: Outcomes, as_of: dt.date) -> None:
    """``outcome_units``: every enrolled person and every match, with their windows."""
    _people(con, o, as_of)
    _enrolled(con, o, as_of)
    _matches(con, o)
    _windows(con, o, as_of)


def _people(con: duckdb.DuckDBPyConnection, o: Outcomes, as_of: dt.date) -> None:
    """``__oc_people``: per person, what matching reads and their first index, eligible and
    excluded codes on or before the as-of date; ``__oc_meta``: where the admissions start."""
    a = literal(as_of)
    con.execute("CREATE OR REPLACE TEMP TABLE __oc_codes (role VARCHAR, code VARCHAR)")
    pairs = [(role, code) for role, codes in o.codes.items() for code in codes]
    if pairs:
        con.executemany("INSERT INTO __oc_codes VALUES (?, ?)", pairs)
    data_from = (literal(o.data_from) if o.data_from is not None
                 else "(SELECT min(admitted) FROM adm)")
    con.execute(f"CREATE OR REPLACE TEMP TABLE __oc_meta AS SELECT {data_from} AS data_from")
    # Each person's first code of each role, on or before the as-of date.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __oc_first AS
        SELECT e.pid, c.role, min(e.d) AS d
        FROM ev e JOIN __oc_codes c ON e.code = c.code
        WHERE e.d <= {a} AND c.role IN ('index', 'eligible', 'excluded')
        GROUP BY ALL""")
    cohort = "'none'"
    if o.cohort_column is not None:
        col = f"r.{o.cohort_column}"
        tests = [(f"COALESCE(list_contains({col}, {literal(v)}), FALSE)" if o.cohort_collect
                  else f"COALESCE({col} = {literal(v)}, FALSE)") for v in o.cohort_priority]
        cohort = ("CASE " + " ".join(f"WHEN {t} THEN {literal(v)}"
                                     for t, v in zip(tests, o.cohort_priority, strict=True))
                  + " ELSE 'none' END")
    sex = "COALESCE(p.sex, 'unknown')" if o.match_sex else "'any'"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __oc_people AS
        SELECT p.pid, p.patient_id, COALESCE(p.neighbourhood, {literal(NOT_RECORDED)}) AS nb,
               p.dob, p.dod, {sex} AS sex, {cohort} AS cohort, r.pathway_state,
               i.d AS index_d, g.d AS eligible_d, x.d AS excluded_d
        FROM pt p JOIN results r USING (pid)
        LEFT JOIN __oc_first i ON i.pid = p.pid AND i.role = 'index'
        LEFT JOIN __oc_first g ON g.pid = p.pid AND g.role = 'eligible'
        LEFT JOIN __oc_first x ON x.pid = p.pid AND x.role = 'excluded'""")


def _enrolled(con: duckdb.DuckDBPyConnection, o: Outcomes, as_of: dt.date) -> None:
    """``__oc_enrolled``: index date not after death; the end of follow-up (exclusive), and
    why it ended there."""
    a = literal(as_of)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __oc_enrolled AS
        SELECT q.*, (SELECT data_from FROM __oc_meta) AS data_from,
               CAST(least(q.index_d + {o.after_days}, {a} + 1,
                          COALESCE(q.dod + 1, {a} + 1),
                          COALESCE(s.end_d + 1, {a} + 1)) AS DATE) AS end_d,
               CASE WHEN s.end_d IS NOT NULL AND s.end_d + 1 <= least(q.index_d
                         + {o.after_days}, {a} + 1, COALESCE(q.dod + 1, {a} + 1))
                    THEN 'step'
                    WHEN q.dod IS NOT NULL AND q.dod + 1 <= least(q.index_d + {o.after_days},
                         {a} + 1) THEN 'death'
                    WHEN {a} + 1 < q.index_d + {o.after_days} THEN 'as_of'
                    ELSE 'window' END AS end_reason
        FROM __oc_people q
        LEFT JOIN (SELECT e.pid, min(e.d) AS end_d
                   FROM ev e JOIN __oc_codes c ON e.code = c.code AND c.role = 'end'
                   JOIN __oc_people q2 ON q2.pid = e.pid
                   WHERE e.d >= q2.index_d AND e.d <= {a} GROUP BY e.pid) s USING (pid)
        WHERE q.index_d IS NOT NULL AND (q.dod IS NULL OR q.index_d <= q.dod)""")


def _matches(con: duckdb.DuckDBPyConnection, o: Outcomes) -> None:
    """``__oc_match``: up to ``controls_per_enrolled`` matches per enrolled person, the strata
    of each compared at the enrolled person's index date (``__oc_t``, ``__oc_cand``)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP MACRO __oc_b0(i, f) AS
            CAST(CASE WHEN f IS NULL THEN i - {o.before_days}
                      ELSE greatest(i - {o.before_days}, f) END AS DATE)""")
    risk = "-1"
    risk_join = ""
    if o.risk_source is not None:
        risk = (f"COALESCE(CAST(floor(arg_max(r.value, (r.d, r.seq)) / "
                f"{o.risk_band_width!r}) AS INTEGER), -1)")
        risk_join = (f"LEFT JOIN rs r ON r.pid = u.pid AND r.d <= u.index_d "
                     f"AND r.source = {literal(o.risk_source)}")

    def strata(source: str, name: str) -> None:
        # source: rows (key, pid, index_d, data_from) -> name: + age_band, risk_band, prior_band
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {name} AS
            WITH base AS ({source}),
            rk AS (SELECT u.key, {risk} AS risk_band FROM base u {risk_join} GROUP BY u.key),
            ad AS (SELECT u.key, least(count(a.pid), {o.prior_cap}) AS prior_band
                   FROM base u LEFT JOIN adm a ON a.pid = u.pid AND a.emergency
                        AND a.admitted >= __oc_b0(u.index_d, u.data_from)
                        AND a.admitted < u.index_d
                   GROUP BY u.key)
            SELECT u.*, CAST(floor(date_sub('year', p.dob, u.index_d) / {o.age_band_years})
                        AS INTEGER) AS age_band, rk.risk_band, ad.prior_band
            FROM base u JOIN pt p ON p.pid = u.pid JOIN rk USING (key) JOIN ad USING (key)""")

    strata("SELECT pid AS key, pid, index_d, data_from FROM __oc_enrolled", "__oc_t")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE __oc_pool AS
        SELECT * FROM __oc_people WHERE index_d IS NULL AND eligible_d IS NOT NULL""")
    strata(f"""SELECT t.pid * 4294967296 + c.pid AS key, c.pid, t.index_d, t.data_from,
                     t.pid AS t_pid
              FROM __oc_enrolled t JOIN __oc_t s ON s.pid = t.pid JOIN __oc_pool c
                ON c.sex = t.sex AND c.cohort = t.cohort AND c.eligible_d <= t.index_d
               AND CAST(floor(date_sub('year', c.dob, t.index_d) / {o.age_band_years})
                        AS INTEGER) = s.age_band
               AND (c.excluded_d IS NULL OR c.excluded_d > t.index_d)
               AND c.dob <= t.index_d AND (c.dod IS NULL OR c.dod >= t.index_d)""",
           "__oc_cand")
    # The order matches are taken in: md5 of the two patient ids, so the same people get the
    # same matches whatever the order of the input rows and in any SQL engine (not hash(),
    # which differs between engines and versions).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE __oc_match AS
        SELECT t_pid, pid AS c_pid FROM (
            SELECT c.*, row_number() OVER (
                       PARTITION BY c.t_pid
                       ORDER BY md5(pt.patient_id || '|' || pc.patient_id), pc.patient_id) AS rn
            FROM __oc_cand c JOIN __oc_t t ON t.pid = c.t_pid
            JOIN pt ON pt.pid = c.t_pid JOIN pt pc ON pc.pid = c.pid
            WHERE c.age_band = t.age_band AND c.risk_band = t.risk_band
              AND c.prior_band = t.prior_band)
        WHERE rn <= {o.controls_per_enrolled}""")


def _windows(con: duckdb.DuckDBPyConnection, o: Outcomes, as_of: dt.date) -> None:
    """``outcome_units``: one row per enrolled person and per match, with the windows and
    their person-time."""
    a = literal(as_of)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE outcome_units AS
        WITH n AS (SELECT t_pid, count(*) AS n FROM __oc_match GROUP BY t_pid),
        u AS (
            SELECT e.pid AS match_pid, e.pid, TRUE AS enrolled, e.nb, e.cohort, e.index_d,
                   __oc_b0(e.index_d, e.data_from) AS before_from, e.end_d, e.end_reason,
                   1.0 AS weight, COALESCE(n.n, 0) AS n_matches
            FROM __oc_enrolled e LEFT JOIN n ON n.t_pid = e.pid
            UNION ALL
            SELECT e.pid, m.c_pid, FALSE, e.nb, e.cohort, e.index_d,
                   __oc_b0(e.index_d, e.data_from),
                   CAST(least(e.index_d + {o.after_days}, {a} + 1,
                              COALESCE(c.dod + 1, {a} + 1)) AS DATE),
                   CASE WHEN c.dod IS NOT NULL AND c.dod + 1 <= least(e.index_d
                             + {o.after_days}, {a} + 1) THEN 'death'
                        WHEN {a} + 1 < e.index_d + {o.after_days} THEN 'as_of'
                        ELSE 'window' END,
                   1.0 / n.n, n.n
            FROM __oc_match m JOIN __oc_enrolled e ON e.pid = m.t_pid
            JOIN n ON n.t_pid = m.t_pid JOIN pt c ON c.pid = m.c_pid)
        SELECT *, date_diff('day', before_from, index_d) AS before_days,
               date_diff('day', index_d, end_d) AS after_days
        FROM u""")


def _counts(con: duckdb.DuckDBPyConnection
            ) -> tuple[list[str], dict[tuple[str, str], dict[str, int]]]:
    nbs = [str(r[0]) for r in con.execute(
        f"SELECT DISTINCT COALESCE(neighbourhood, {literal(NOT_RECORDED)}) AS nb FROM pt "
        "ORDER BY nb").fetchall()]
    rows = con.execute("""
        SELECT nb, cohort, count(*) AS enrolled,
               count(*) FILTER (WHERE before_days <= 0) AS no_baseline,
               count(*) FILTER (WHERE before_days > 0 AND n_matches > 0) AS matched,
               count(*) FILTER (WHERE before_days > 0 AND n_matches = 0) AS unmatched,
               count(*) FILTER (WHERE end_reason = 'step') AS ended_step,
               count(*) FILTER (WHERE end_reason = 'death') AS ended_death,
               count(*) FILTER (WHERE end_reason = 'as_of') AS ended_as_of
        FROM outcome_units WHERE enrolled GROUP BY ALL""").fetchall()
    by = {(str(r[0]), str(r[1])): {k: int(v) for k, v in zip(COUNT_KEYS, r[2:], strict=True)}
          for r in rows}
    return [*nbs, ICS], by


def _unit_rows(con: duckdb.DuckDBPyConnection, ind: Indicator, as_of: dt.date
               ) -> list[tuple[Any, ...]]:
    """Per unit with a baseline and matches: (nb, cohort, match_pid, pid, enrolled, weight,
    before_days, after_days, before value, after value)."""
    value = ("count(*) FILTER (WHERE {w})" if ind.measure == "admissions"
             else "COALESCE(sum(stay) FILTER (WHERE {w}), 0)")
    a = literal(as_of)
    rows: list[tuple[Any, ...]] = con.execute(f"""
        WITH x AS (SELECT u.match_pid, u.pid, u.enrolled, a.admitted < u.index_d AS before,
                          a.stay
                   FROM outcome_units u
                   JOIN (SELECT pid, admitted, emergency,
                                date_diff('day', admitted, least(COALESCE(discharged, {a}),
                                                                 COALESCE(p.dod, {a}), {a}))
                                    AS stay
                         FROM adm JOIN pt p USING (pid)) a
                     ON a.pid = u.pid AND a.admitted >= u.before_from AND a.admitted < u.end_d
                   WHERE {ind.where_sql}),
        v AS (SELECT match_pid, pid, enrolled, {value.format(w='before')} AS bv,
                     {value.format(w='NOT before')} AS av
              FROM x GROUP BY ALL)
        SELECT u.nb, u.cohort, u.match_pid, u.pid, u.enrolled, u.weight, u.before_days,
               u.after_days, COALESCE(v.bv, 0), COALESCE(v.av, 0)
        FROM outcome_units u LEFT JOIN v USING (match_pid, pid, enrolled)
        WHERE u.before_days > 0 AND u.n_matches > 0
        ORDER BY u.match_pid, u.enrolled DESC, u.pid""").fetchall()
    return rows


@dataclass(frozen=True)
class Units:
    """The unit rows of one rate indicator as columns (see :func:`_unit_rows`)."""

    nb: NDArray[np.object_]
    cohort: NDArray[np.object_]
    pid: NDArray[np.int64]
    enrolled: NDArray[np.bool_]
    weight: NDArray[np.float64]
    before_days: NDArray[np.float64]
    after_days: NDArray[np.float64]
    before: NDArray[np.float64]
    after: NDArray[np.float64]

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[Any, ...]]) -> Units:
        cols = list(zip(*rows, strict=True)) if rows else [()] * 10
        return cls(np.array(cols[0], dtype=object), np.array(cols[1], dtype=object),
                   np.array(cols[3], dtype=np.int64), np.array(cols[4], dtype=np.bool_),
                   *(np.array(c, dtype=np.float64) for c in cols[5:10]))

    def select(self, mask: NDArray[np.bool_]) -> Units:
        return Units(*(getattr(self, f.name)[mask] for f in fields(self)))


def estimate(units: Units | Sequence[tuple[Any, ...]], level: float, min_matched: int
             ) -> Estimate:
    """Rates per person-year and the difference in differences of the unit rows (as
    :func:`_unit_rows` returns them), with a ``level`` confidence interval from weighted least
    squares with standard errors clustered by person (no estimate for fewer than
    ``min_matched`` enrolled people)."""
    u = units if isinstance(units, Units) else Units.from_rows(units)
    periods = []  # (post, days, value) for every unit with person-time in the window
    for post, days, value in ((0.0, u.before_days, u.before), (1.0, u.after_days, u.after)):
        keep = days > 0
        periods.append((post, days[keep] / DAYS_PER_YEAR, value[keep], u.enrolled[keep],
                        u.weight[keep], u.pid[keep]))
    cells: dict[tuple[bool, float], tuple[float, float]] = {}
    for post, py, value, enrolled, weight, _pid in periods:
        for group in (True, False):
            m = enrolled == group
            cells[(group, post)] = (float(np.sum(weight[m] * value[m])),
                                    float(np.sum(weight[m] * py[m])))

    def rate(group: bool, post: float) -> float:
        num, den = cells[(group, post)]
        return num / den if den else 0.0

    n_enrolled = len(set(u.pid[u.enrolled].tolist()))
    n_controls = len(set(u.pid[~u.enrolled].tolist()))
    did = lo = hi = None
    note = ""
    if n_enrolled < min_matched:
        note = f"no estimate: fewer than {min_matched} matched enrolled people"
    else:
        y = np.concatenate([value / py for _p, py, value, _e, _w, _i in periods])
        e = np.concatenate([enrolled.astype(np.float64) for *_r, enrolled, _w, _i in periods])
        t = np.concatenate([np.full(len(py), post) for post, py, *_r in periods])
        x = np.column_stack([np.ones(len(y)), e, t, e * t])
        w = np.concatenate([weight * py for _p, py, _v, _e, weight, _i in periods])
        groups = np.concatenate([pid for *_r, pid in periods])
        fitted = _did(y, x, w, groups, level)
        if fitted is None:
            note = ("no estimate: the matched people's records cannot identify the difference "
                    "in differences (too few people, or no person-time before or after "
                    "joining in one of the groups)")
        else:
            did, lo, hi = fitted
    return Estimate(n_enrolled, n_controls, cells[(True, 0.0)][1], cells[(True, 1.0)][1],
                    cells[(False, 0.0)][1], cells[(False, 1.0)][1], rate(True, 0.0),
                    rate(True, 1.0), rate(False, 0.0), rate(False, 1.0), did, lo, hi, note)


#: The one model the difference in differences is fitted with (``statsmodels.api`` would
#: import every model: a second or so more).
MODEL_MODULE = "statsmodels.regression.linear_model"


def model_imported_ahead(module: str = MODEL_MODULE) -> AbstractContextManager[None]:
    """Import ``module`` (the outcomes' model) on a thread of its own meanwhile, so it is
    ready when the outcomes are compared (:func:`.ahead.imported_ahead`). Importing statsmodels
    takes most of a second on one core; a population report imports it while the results are
    written, which DuckDB does on one thread, leaving the other core free."""
    return imported_ahead(module)


def _did(y: NDArray[np.float64], x: NDArray[np.float64], w: NDArray[np.float64],
         groups: NDArray[np.int64], level: float) -> tuple[float, float, float] | None:
    """The interaction's coefficient and its confidence interval; None when the data cannot
    identify it (a design of lower rank: no person-time in one of the four cells; no more
    observations than coefficients, or one person: the clustered errors' small-sample
    correction would divide by zero) or the figures are not finite numbers."""
    # The one model needed, usually imported ahead (model_imported_ahead).
    wls = importlib.import_module(MODEL_MODULE).WLS

    # The standard errors of the other coefficients may not exist (no variation in a cell):
    # numpy would warn of the square root of a negative variance; only the interaction's
    # figures are used, and they are checked here.
    if (len(y) <= x.shape[1] or len(np.unique(groups)) < 2
            or np.linalg.matrix_rank(x * np.sqrt(w)[:, None]) < x.shape[1]):
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        fit = wls(y, x, weights=w).fit(cov_type="cluster", cov_kwds={"groups": groups},
                                       use_t=True)
        ci = fit.conf_int(alpha=1 - level)
    out = (float(fit.params[3]), float(ci[3][0]), float(ci[3][1]))
    return out if all(math.isfinite(v) for v in out) else None


def _row(table: OutcomesTable, ind: Indicator, nb: str,
         units: Units | None,
         shares: Mapping[str, tuple[int, int]] | None,
         suppress: SmallNumber | None) -> dict[str, Any]:
    d = ind.definition
    row: dict[str, Any] = {"neighbourhood": nb, "indicator": d.id, "title": d.title,
                           "direction": d.direction, "kind": ind.kind, "note": ""}
    if ind.kind == "not_computable":
        assert d.not_computable is not None
        row["note"] = "not computable from a GP extract: " + " ".join(
            d.not_computable.needs.split())
        return row
    if ind.kind == "share":
        assert d.share is not None
        num, den = (shares or {}).get(nb, (0, 0))
        row.update(numerator=num, denominator=den, share=(num / den) if den else None)
        if suppress is not None and (suppress(num) or suppress(den)):
            row.update(numerator=None, denominator=None, share=None,
                       note="suppressed (small numbers)")
        return row
    assert units is not None
    cohorts = set(d.among_cohorts) if d.among_cohorts is not None else None
    mask = np.ones(len(units.pid), dtype=np.bool_) if nb == ICS else units.nb == nb
    if cohorts is not None:
        mask &= np.isin(units.cohort, sorted(cohorts))
    mine = units.select(mask)
    counts = table.counts_for(nb, cohorts)
    est = estimate(mine, table.outcomes.confidence_level, table.outcomes.min_matched)
    row.update(counts)
    row.update(
        controls=est.controls,
        person_years_enrolled_before=est.py_enrolled_before,
        person_years_enrolled_after=est.py_enrolled_after,
        person_years_controls_before=est.py_controls_before,
        person_years_controls_after=est.py_controls_after,
        enrolled_before=est.enrolled_before, enrolled_after=est.enrolled_after,
        controls_before=est.controls_before, controls_after=est.controls_after,
        did=est.did, ci_low=est.ci_low, ci_high=est.ci_high,
        confidence_level=table.outcomes.confidence_level, note=est.note)
    if est.enrolled == 0:
        for key in ("enrolled_before", "enrolled_after", "controls_before", "controls_after"):
            row[key] = None
        row["note"] = "no matched enrolled people"
    if suppress is not None and (suppress(est.enrolled) or suppress(est.controls)):
        for key in (*_FIGURES, "controls", "matched"):
            row[key] = None
        row["note"] = "suppressed (small numbers)"
    return row


_FIGURES = ("person_years_enrolled_before", "person_years_enrolled_after",
            "person_years_controls_before", "person_years_controls_after", "enrolled_before",
            "enrolled_after", "controls_before", "controls_after", "did", "ci_low", "ci_high")


def _shares(con: duckdb.DuckDBPyConnection, share: ShareDef) -> dict[str, tuple[int, int]]:
    """(numerator, denominator) of a share by neighbourhood and for the ICS."""
    of = ", ".join(literal(s) for s in share.of_states)
    per = ", ".join(literal(s) for s in share.per_states)
    rows = con.execute(f"""
        SELECT CASE WHEN grouping(nb) = 1 THEN ? ELSE nb END,
               count(*) FILTER (WHERE pathway_state IN ({of}) AND pathway_state IN ({per})),
               count(*) FILTER (WHERE pathway_state IN ({per}))
        FROM __oc_people GROUP BY ROLLUP (nb)""", [ICS]).fetchall()
    return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}


# -- outputs ----------------------------------------------------------------------------------

CSV_COLUMNS = (
    "neighbourhood", "indicator", "title", "direction", "kind", *COUNT_KEYS, "controls",
    *_FIGURES, "confidence_level", "numerator", "denominator", "share", "note",
)
"""The columns of ``outcomes.csv`` (then the rulebook's sha256 and status and the outcomes
file's sha256)."""


def write_outcomes_csv(table: OutcomesTable, path: Path, sha256: str, status: str, *,
                       run_id: str = "") -> None:
    """``outcomes.csv``: one row per indicator and neighbourhood (and the ICS); rates per
    person-year, the difference in differences and its interval, counts, and for an indicator
    a GP extract cannot measure, what it would need; then the run id, the as-of date, the
    rulebook's sha256 and status, and the outcomes file's sha256."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([*CSV_COLUMNS, "run_id", "as_of", "rulebook_sha256", "rulebook_status",
                         "outcomes_sha256"])
        for row in table.rows:
            cells = []
            for name in CSV_COLUMNS:
                value = row.get(name)
                if isinstance(value, float):
                    value = f"{value:.4f}"
                cells.append("" if value is None else value)
            writer.writerow([*cells, run_id, table.as_of.isoformat(), sha256, status,
                             table.outcomes.sha256])


_ARROW = {"down": "\u2193 a fall", "up": "\u2191 a rise"}


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "\u2013"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return _e(value)


def forest_svg(labels: Sequence[str], points: Sequence[tuple[float, float, float] | None],
               direction: str, title: str) -> str:
    """Each row's estimate with its interval around a zero line; the side of zero that is the
    guide's desired direction is shaded."""
    label_w, plot_w, row_h, top = 260, 520, 18, 22
    height = top + row_h * len(labels) + 26
    spans = [abs(v) for p in points if p is not None for v in p]
    half = (max(spans) if spans else 1.0) * 1.1 or 1.0

    def x(v: float) -> float:
        return label_w + plot_w * (v + half) / (2 * half)

    good = (label_w, x(0)) if direction == "down" else (x(0), label_w + plot_w)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 200}" '
           f'height="{height}" viewBox="0 0 {label_w + plot_w + 200} {height}" role="img" '
           f'aria-label="{_e(title)}" font-size="11" '
           f'font-family="system-ui,Arial,sans-serif">',
           f'<rect x="{good[0]:.1f}" y="{top - 4}" width="{good[1] - good[0]:.1f}" '
           f'height="{row_h * len(labels) + 8}" fill="#e9f6ec"/>',
           f'<text x="{(good[0] + good[1]) / 2:.1f}" y="13" text-anchor="middle" '
           f'fill="#2e7d32">desired: {_e(_ARROW.get(direction, direction))}</text>']
    for i, label in enumerate(labels):
        y = top + i * row_h + 9
        out.append(f'<text x="{label_w - 6}" y="{y + 4}" text-anchor="end">{_e(label)}</text>')
        p = points[i]
        if p is None:
            out.append(f'<text x="{label_w + 4}" y="{y + 4}" fill="#777">no estimate</text>')
            continue
        est, lo, hi = p
        out.append(f'<line x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="{y}" y2="{y}" '
                   f'stroke="#005eb8" stroke-width="2"/>'
                   f'<circle cx="{x(est):.1f}" cy="{y}" r="4" fill="#005eb8">'
                   f'<title>{_e(label)}: {est:.3f} ({lo:.3f} to {hi:.3f})</title></circle>'
                   f'<text x="{label_w + plot_w + 6}" y="{y + 4}">{est:+.3f} '
                   f'({lo:+.3f} to {hi:+.3f})</text>')
    out.append(f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{top - 6}" '
               f'y2="{top + row_h * len(labels) + 4}" stroke="#444" stroke-width="1"/>'
               f'<text x="{x(0):.1f}" y="{height - 6}" text-anchor="middle">0 (no difference)'
               "</text></svg>")
    return "".join(out)


def _bars_svg(labels: Sequence[str], values: Sequence[float | None], direction: str,
              title: str) -> str:
    label_w, bar_w, row_h, top = 260, 520, 18, 22
    height = top + row_h * len(labels) + 8
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 80}" '
           f'height="{height}" viewBox="0 0 {label_w + bar_w + 80} {height}" role="img" '
           f'aria-label="{_e(title)}" font-size="11" '
           f'font-family="system-ui,Arial,sans-serif">',
           f'<text x="{label_w}" y="13" fill="#2e7d32">desired: '
           f'{_e(_ARROW.get(direction, direction))}</text>']
    for i, label in enumerate(labels):
        y = top + i * row_h
        out.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{_e(label)}</text>')
        v = values[i]
        if v is None:
            out.append(f'<text x="{label_w + 4}" y="{y + 12}" fill="#777">not available</text>')
            continue
        out.append(f'<rect x="{label_w}" y="{y + 2}" width="{bar_w * v:.1f}" '
                   f'height="{row_h - 5}" fill="#005eb8"/><text x="{label_w + bar_w * v + 4:.1f}"'
                   f' y="{y + 12}">{v * 100:.1f}%</text>')
    out.append("</svg>")
    return "".join(out)


def outcomes_section(table: OutcomesTable, csv_name: str = "outcomes.csv") -> str:
    """The report's "Delivery and outcomes" section (HTML, inline SVG), with a chart per
    indicator showing the guide's desired direction."""
    o = table.outcomes
    d = o.definition
    raw = table.counts_for(ICS)
    ics: dict[str, Any] = {k: (table.rounded(v) if table.rounded else v) for k, v in raw.items()}
    parts = [f'<h2 id="outcomes">{_e(d.title)}</h2>', f"<p>{_e(d.description)}</p>",
             '<div class="banner"><b>Observational, not proof of cause.</b> The enrolled are '
             "compared with matched people who were eligible but not enrolled (same sex, "
             "cohort, age band, risk band and prior emergency admissions, each indexed at their "
             "match's enrolment date). Why a person was or was not enrolled is not in the "
             "extract, so a difference may have other causes; before-and-after figures alone "
             "also show regression to the mean.</div>"]
    if d.status != "approved":
        parts.append(f'<p class="small">Outcome definitions ({_e(o.file)} {_e(d.version)}) '
                     f"are {_e(d.status)}.</p>")
    if table.suppression != "off":
        parts.append(f'<p class="small">Small-number suppression is on: {_e(table.suppression)};'
                     " figures built on a suppressed count are not shown.</p>")
    start = table.data_from.isoformat() if table.data_from else "no admissions"
    parts.append(
        f"<p>Enrolled (a first ‘{_e(o.index_title)}’ code by the as-of date): "
        f"<b>{_f(ics['enrolled'])}</b>; with no admissions history before joining (index "
        f"before {_e(start)}): {_f(ics['no_baseline'])}; matched: <b>{_f(ics['matched'])}</b>; "
        f"no match found: {_f(ics['unmatched'])}. Windows: {o.before_days} days before and up "
        f"to {o.after_days} days after joining; follow-up ended early at step-down or decline "
        f"for {_f(ics['ended_step'])}, at death for {_f(ics['ended_death'])} and at the as-of "
        f"date for {_f(ics['ended_as_of'])}. Rates are per person-year; the difference in "
        f"differences (DiD) is the change in the enrolled minus the change in their matches, "
        f"with a {o.confidence_level * 100:g}% confidence interval (standard errors clustered by "
        f"person). No estimate is shown for fewer than {o.min_matched} matched enrolled "
        f"people.</p>")
    for ind in o.indicators:
        rows = [r for r in table.rows if r["indicator"] == ind.id]
        idef = ind.definition
        head = (f'<h3 id="o-{_e(ind.id)}">{_e(idef.title)}</h3><p class="small">Desired change '
                f"({_e(idef.cite.source)}, \u201c{_e(idef.cite.section)}\u201d: "
                f"\u201c{_e(idef.cite.quote)}\u201d): {_e(_ARROW[idef.direction])}.</p>")
        if ind.kind == "rate":
            parts.append(head)
            shown = [r for r in rows if r.get("did") is not None or r["neighbourhood"] == ICS]
            labels = [r["neighbourhood"] for r in shown]
            points = [(r["did"], r["ci_low"], r["ci_high"]) if r.get("did") is not None
                      else None for r in shown]
            parts.append(forest_svg(labels, points, idef.direction, idef.title))
            hidden = len(rows) - len(shown)
            if hidden:
                parts.append(f'<p class="small">No estimate for {hidden} neighbourhood'
                             f"{'s' if hidden != 1 else ''} (too few matched enrolled people, "
                             "or suppressed): see the figures by neighbourhood.</p>")
            parts.append("<details><summary>Figures by neighbourhood</summary>"
                         + _rate_table(rows) + "</details>")
        elif ind.kind == "share":
            parts.append(head)
            parts.append(_bars_svg([r["neighbourhood"] for r in rows],
                                   [r.get("share") for r in rows], idef.direction, idef.title))
            ics_row = rows[-1]
            parts.append(f'<p class="small">All neighbourhoods: {_f(ics_row.get("numerator"))}'
                         f' of {_f(ics_row.get("denominator"))} '
                         f"({_f((ics_row.get('share') or 0) * 100, 1)}%).</p>")
    missing = [i for i in o.indicators if i.kind == "not_computable"]
    if missing:
        parts.append("<h3>Not computable from a GP extract</h3><ul>")
        for ind in missing:
            idef = ind.definition
            assert idef.not_computable is not None
            parts.append(f"<li><b>{_e(idef.title)}</b> ({_e(_ARROW[idef.direction])}): needs "
                         f"{_e(' '.join(idef.not_computable.needs.split()))}</li>")
        parts.append("</ul>")
    parts.append(f'<p class="small">Every figure, per neighbourhood, is in '
                 f"<code>{_e(csv_name)}</code>; definitions in <code>{_e(o.file)}</code>.</p>")
    return "".join(parts)


def _rate_table(rows: Sequence[Mapping[str, Any]]) -> str:
    heads = ["neighbourhood", "matched enrolled", "matches", "enrolled before", "enrolled after",
             "matches before", "matches after", "DiD", "interval", "note"]
    out = ['<div class="scroll"><table><thead><tr>']
    out += [f'<th class="{"l" if i in (0, 9) else ""}">{_e(h)}</th>' for i, h in enumerate(heads)]
    out.append("</tr></thead><tbody>")
    for i, r in enumerate(rows):
        cls = ' class="total"' if i == len(rows) - 1 else ""
        interval = ("\u2013" if r.get("ci_low") is None
                    else f"{r['ci_low']:+.3f} to {r['ci_high']:+.3f}")
        did = "\u2013" if r.get("did") is None else f"{r['did']:+.3f}"
        cells = [_e(r["neighbourhood"]), _f(r.get("matched")), _f(r.get("controls")),
                 _f(r.get("enrolled_before")), _f(r.get("enrolled_after")),
                 _f(r.get("controls_before")), _f(r.get("controls_after")), did, interval,
                 _e(r.get("note") or "")]
        out.append(f"<tr{cls}>" + "".join(
            f'<td class="{"l" if j in (0, 9) else ""}">{c}</td>' for j, c in enumerate(cells))
            + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)
