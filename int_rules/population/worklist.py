"""Worklists: the people an INT can act on, one list per action (``rulesets/worklists.yaml``).

A worklist is computed from a population run's ``results.parquet`` alone (so an analyst can
make one for any neighbourhood or practice after the run): a person is on a list when one of
its declared *reasons* holds, each reason a condition over ruleset outputs and the facts the
results carry (``columns`` in the file). Every list is ordered by the file's ``order`` (risk
first), one row per person, with the reason in words (the reason's own words, else the titles
of the rules that fired for it), the key dates, the code to record with its term, and the
predicted risk with its date.

Nothing clinical is decided here: the lists are views of what the rulesets decide, and which
outputs define each list is data in the YAML. :func:`write_worklists` writes one XLSX with one
sheet per list (codes as text, so Excel keeps all 16 digits; header row frozen), one CSV per
list, and an ``About`` sheet saying what the lists are drawn from.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..engines.duckdb import file_path
from ..engines.sql import condition_sql, literal
from ..errors import IntRulesError, RulesetError, RulesetErrors
from ..language.plain import format_value
from ..language.schema import Citation, Leaf
from ..language.yamlsrc import load_yaml, locate, shown_path, validate_located
from ..model.conditions import ConditionError, resolve_condition
from .dashboard import DAll, DAny, DCondition, DNot, OutputTest

if TYPE_CHECKING:
    import duckdb

    from ..rulebook import Rulebook

__all__ = [
    "WorklistError",
    "Worklists",
    "compute_worklists",
    "load_worklists",
    "write_worklists",
]

_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]

#: Facts the results always carry, and the results column that holds each.
BASE_FACT_COLUMNS: Mapping[str, str] = {
    "age": "age",
    "pathway_state": "pathway_state",
    "pathway_state_since": "pathway_entered",
}


class WorklistError(IntRulesError):
    """A worklist that cannot be made (no results in the folder, an unknown filter value)."""


# -- the file's schema ------------------------------------------------------------------------


class FactColumn(BaseModel):
    model_config = _STRICT
    fact: Identifier
    title: str = Field(min_length=1)


class OrderKey(BaseModel):
    model_config = _STRICT
    fact: Identifier
    descending: bool = False


class Record(BaseModel):
    """The code to record: a code output (``codelist`` keeps its codes in that codelist), or
    the codes of declared pathway steps."""

    model_config = _STRICT
    output: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
    codelist: str | None = None
    pathway_steps: list[str] | None = None


class Reason(BaseModel):
    model_config = _STRICT
    when: DCondition
    says: str | None = None
    details: list[str] = Field(default_factory=list)
    record: Record | None = None


class ListDef(BaseModel):
    model_config = _STRICT
    id: Identifier
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    cite: Citation
    reasons: list[Reason] = Field(min_length=1)
    dates: list[str] = Field(default_factory=list)


class WorklistsFile(BaseModel):
    model_config = _STRICT
    worklists: Identifier
    title: str = Field(min_length=1)
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    status: Literal["draft", "approved", "retired"]
    guidance: list[str] = Field(min_length=1)
    description: str = Field(min_length=1)
    columns: list[FactColumn] = Field(default_factory=list)
    order: list[OrderKey] = Field(default_factory=list)
    lists: list[ListDef] = Field(min_length=1)


# -- compiled ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledReason:
    definition: Reason
    sql: str  # over the results columns
    words: str | None  # fixed words, or None: the titles of ``rules`` that fired
    rules: Mapping[str, str]  # rule id -> title, of the rules that set a tested output
    details: tuple[tuple[str, str], ...]  # (results column, label)
    codes: tuple[str, ...] | None  # fixed codes to record (pathway steps)
    code_column: str | None  # or a code output's column
    code_filter: frozenset[str] | None  # keep only these codes of it


@dataclass(frozen=True)
class CompiledList:
    definition: ListDef
    reasons: tuple[CompiledReason, ...]

    @property
    def id(self) -> str:
        return self.definition.id


@dataclass(frozen=True)
class Worklists:
    """The loaded ``worklists.yaml`` for one rulebook."""

    definition: WorklistsFile
    file: str
    sha256: str
    columns: tuple[FactColumn, ...]  # facts added to the results (by fact name)
    lists: tuple[CompiledList, ...]
    scalar_outputs: frozenset[str]  # results columns of single-valued outputs
    terms: Mapping[str, str]  # code -> term, for every code a list may show

    @property
    def facts(self) -> tuple[str, ...]:
        """The facts of the results' worklist columns, in column order."""
        return tuple(c.fact for c in self.columns)

    def column_title(self, name: str) -> str:
        return next((c.title for c in self.columns if c.fact == name), name)


def default_worklists_path(book: Rulebook) -> Path:
    return book.directory / "worklists.yaml"


def single_valued_outputs(book: Rulebook) -> frozenset[str]:
    """The results columns (``<ruleset>_<output>``) of outputs that hold at most one value: every
    output of a ``first``/``unique``/``priority`` ruleset, and a ``collect`` ruleset's output that
    all its rules set to the same value (e.g. ``candidate_for_review: true``). These are written
    as scalars, not lists; a true/false one is false when no rule set it."""
    out: set[str] = set()
    for rs in book.rulesets:
        d = rs.definition
        for key in d.outputs:
            values = {r.then[key] for r in d.rules if key in r.then}
            if d.hit_policy != "collect" or len(values) <= 1:
                out.add(f"{rs.id}_{key}")
    return frozenset(out)


def load_worklists(book: Rulebook, path: Path | None = None) -> Worklists | None:
    """Load and check the worklists for ``book`` (``None`` if the rulebook has none).

    Raises :class:`~int_rules.errors.RulesetError` naming ``file:line:column`` for a problem.
    """
    path = path or default_worklists_path(book)
    if not path.is_file():
        return None
    shown = shown_path(path, book.directory)
    raw = load_yaml(path, shown)
    model = validate_located(WorklistsFile, raw, shown,
                             "unknown key (see the comments at the top of worklists.yaml)")
    return _Compiler(book, raw, shown, model).compile(
        hashlib.sha256(path.read_bytes()).hexdigest())


class _Compiler:
    def __init__(self, book: Rulebook, raw: Any, file: str, model: WorklistsFile) -> None:
        self.book = book
        self.raw = raw
        self.file = file
        self.model = model
        self.errors: list[RulesetError] = []
        self.scalars = single_valued_outputs(book)
        self.rulesets = {rs.id: rs for rs in book.rulesets}
        self.facts = dict(BASE_FACT_COLUMNS)
        self.types = {name: f.type for name, f in book.facts.items()}
        self.terms: dict[str, str] = {}

    def problem(self, path: tuple[int | str, ...], message: str) -> None:
        self.errors.append(RulesetError(locate(self.raw, path, self.file), message,
                                        ".".join(str(p) for p in path)))

    def compile(self, sha256: str) -> Worklists:
        output_cols = {f"{rs.id}_{k}" for rs in self.book.rulesets
                       for k in rs.definition.outputs}
        for i, c in enumerate(self.model.columns):
            if c.fact not in self.types:
                self.problem(("columns", i, "fact"), f"unknown fact {c.fact!r} (see facts.yaml)")
            elif c.fact in self.facts or c.fact in output_cols:
                self.problem(("columns", i, "fact"), f"{c.fact!r} is already a results column")
            else:
                self.facts[c.fact] = c.fact
        for i, o in enumerate(self.model.order):
            self.fact_column(o.fact, ("order", i, "fact"))
        lists = []
        seen: set[str] = set()
        for i, ld in enumerate(self.model.lists):
            if ld.id in seen:
                self.problem(("lists", i, "id"), f"list id {ld.id!r} is used twice")
            seen.add(ld.id)
            for j, name in enumerate(ld.dates):
                self.fact_column(name, ("lists", i, "dates", j))
            reasons = tuple(self.reason(r, ("lists", i, "reasons", j))
                            for j, r in enumerate(ld.reasons))
            lists.append(CompiledList(ld, reasons))
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise RulesetErrors(self.errors)
        return Worklists(self.model, self.file, sha256, tuple(self.model.columns), tuple(lists),
                         self.scalars, dict(self.terms))

    def fact_column(self, name: str, path: tuple[int | str, ...]) -> str:
        col = self.facts.get(name)
        if col is None:
            self.problem(path, f"fact {name!r} is not a results column (add it to columns; "
                               f"results carry {', '.join(self.facts)})")
            return "NULL"
        return col

    def output(self, ref: str, path: tuple[int | str, ...]) -> tuple[str, Any] | None:
        ruleset, key = ref.split(".", 1)
        rs = self.rulesets.get(ruleset)
        if rs is None or key not in rs.definition.outputs:
            self.problem(path, f"no output {ref!r} in this rulebook")
            return None
        return f"{ruleset}_{key}", rs.definition.outputs[key]

    def condition(self, cond: Any, path: tuple[int | str, ...],
                  tested: list[tuple[str, str]]) -> str:
        if isinstance(cond, DAll):
            return "(" + " AND ".join(self.condition(c, (*path, "all", i), tested)
                                      for i, c in enumerate(cond.all)) + ")"
        if isinstance(cond, DAny):
            return "(" + " OR ".join(self.condition(c, (*path, "any", i), tested)
                                     for i, c in enumerate(cond.any)) + ")"
        if isinstance(cond, DNot):
            return "(NOT " + self.condition(cond.not_, (*path, "not"), tested) + ")"
        if isinstance(cond, OutputTest):
            found = self.output(cond.output, (*path, "output"))
            if found is None:
                return "FALSE"
            col, out = found
            tested.append(tuple(cond.output.split(".", 1)))  # type: ignore[arg-type]
            scalar = col in self.scalars
            if (cond.equals is None) == (cond.present is None):
                self.problem(path, "an output test needs exactly one of equals or present")
                return "FALSE"
            if cond.present is not None:
                test = (f"{col} IS NOT NULL" if scalar and out.type != "bool"
                        else f"COALESCE({col}, FALSE)" if scalar else f"len({col}) > 0")
                return test if cond.present else f"NOT ({test})"
            if out.type == "bool":
                lit = literal(bool(cond.equals))
            else:
                if out.type == "category" and str(cond.equals) not in (out.values or []):
                    self.problem((*path, "equals"), f"{cond.equals!r} is not a value of "
                                                    f"{cond.output}")
                lit = literal(str(cond.equals))
            if scalar:
                return f"COALESCE({col} = {lit}, FALSE)"
            return f"COALESCE(list_contains({col}, {lit}), FALSE)"
        assert isinstance(cond, Leaf)
        self.fact_column(cond.fact, (*path, "fact"))
        try:  # the rulesets' own checks and meaning (the model's condition nodes)
            node = resolve_condition(cond, self.types, {})
        except ConditionError as ce:
            self.problem((*path, *ce.path), ce.message)
            return "FALSE"
        return condition_sql(node, self.types, dt.date(2000, 1, 1),
                             column=lambda n: self.facts.get(n, "NULL"))

    def reason(self, r: Reason, path: tuple[int | str, ...]) -> CompiledReason:
        tested: list[tuple[str, str]] = []
        sql = self.condition(r.when, (*path, "when"), tested)
        rules: dict[str, str] = {}
        for ruleset, key in tested:
            for rule in self.rulesets[ruleset].rules:
                if key in rule.definition.then:
                    rules[rule.id] = rule.definition.title
        if r.says is None and not rules:
            self.problem((*path, "says"), "a reason that tests no ruleset output needs says")
        details = []
        for k, ref in enumerate(r.details):
            if "." in ref:
                found = self.output(ref, (*path, "details", k))
                if found is not None:
                    details.append((found[0], ref.split(".", 1)[1].replace("_", " ")))
            else:
                col = self.fact_column(ref, (*path, "details", k))
                details.append((col, self._title(ref)))
        codes: tuple[str, ...] | None = None
        code_column = None
        code_filter = None
        if r.record is not None:
            rec = r.record
            if (rec.output is None) == (rec.pathway_steps is None):
                self.problem((*path, "record"), "record needs exactly one of output or "
                                                "pathway_steps")
            elif rec.output is not None:
                found = self.output(rec.output, (*path, "record", "output"))
                if found is not None:
                    if found[1].type != "code":
                        self.problem((*path, "record", "output"), f"{rec.output} is not a code")
                    code_column = found[0]
                    rs_id, key = rec.output.split(".", 1)
                    for rule in self.rulesets[rs_id].rules:
                        value = rule.definition.then.get(key)
                        if value is not None:
                            self._term(str(value))
                if rec.codelist is not None:
                    if rec.codelist not in self.book.codelists:
                        self.problem((*path, "record", "codelist"),
                                     f"unknown codelist {rec.codelist!r}")
                    else:
                        code_filter = self.book.codelists[rec.codelist].codes
            else:
                steps = {s.id: s for s in self.book.pathway.definition.steps}
                found_codes: list[str] = []
                for k, sid in enumerate(rec.pathway_steps or []):
                    step = steps.get(sid)
                    if step is None:
                        self.problem((*path, "record", "pathway_steps", k),
                                     f"no pathway step {sid!r} (steps: {', '.join(steps)})")
                        continue
                    for cid in step.codelists or ():
                        for code in sorted(self.book.codelists[cid].codes):
                            found_codes.append(code)
                            self._term(code)
                codes = tuple(found_codes)
        return CompiledReason(r, sql, r.says, rules, tuple(details), codes, code_column,
                              code_filter)

    def _term(self, code: str) -> None:
        term = self.book.codelists.term(code)
        if term is not None:
            self.terms[code] = term

    def _title(self, fact: str) -> str:
        return next((c.title for c in self.model.columns if c.fact == fact),
                    fact.replace("_", " "))


# -- computing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Worklist:
    """One computed list: its rows, in order."""

    definition: CompiledList
    headers: tuple[str, ...]
    rows: tuple[Mapping[str, Any], ...]


#: The columns of every worklist row, in order (``date:<fact>`` marks the list's key dates).
ROW_COLUMNS = ("rank", "patient_id", "neighbourhood", "practice", "age", "sex",
               "pathway_state", "reason", "details", "record_code", "record_term",
               "predicted_risk", "predicted_risk_date", "emergency_admissions_recent")


def compute_worklists(con: duckdb.DuckDBPyConnection, results: str, wl: Worklists,
                      neighbourhoods: Sequence[str] = (), practices: Sequence[str] = (),
                      only: Sequence[str] = ()) -> list[Worklist]:
    """Every list (or those named in ``only``) over the results table or view ``results``,
    filtered to the named neighbourhoods and practices (none named: everyone)."""
    where = []
    if neighbourhoods:
        where.append("neighbourhood IN (" + ", ".join(literal(n) for n in neighbourhoods) + ")")
    if practices:
        where.append("practice IN (" + ", ".join(literal(p) for p in practices) + ")")
    order = []
    for key in wl.definition.order:
        col = BASE_FACT_COLUMNS.get(key.fact, key.fact)
        order.append(f"{col} {'DESC' if key.descending else 'ASC'} NULLS LAST")
    order.append("patient_id")
    known = {c.fact for c in wl.columns}
    out = []
    for cl in wl.lists:
        if only and cl.id not in only:
            continue
        holds = [f"({r.sql}) AS __r{i}" for i, r in enumerate(cl.reasons)]
        any_holds = " OR ".join(f"({r.sql})" for r in cl.reasons)
        cond = " AND ".join([f"({any_holds})", *where])
        sql = (f"SELECT *, {', '.join(holds)} FROM {results} WHERE {cond} "
               f"ORDER BY {', '.join(order)}")
        raw = con.sql(sql).to_arrow_table().to_pylist()
        dates = [d for d in cl.definition.dates if d in known or d in BASE_FACT_COLUMNS]
        headers = [*ROW_COLUMNS, *(f"date:{d}" for d in dates)]
        rows = []
        for rank, row in enumerate(raw, start=1):
            rows.append(_row(rank, row, cl, dates, wl))
        out.append(Worklist(cl, tuple(headers), tuple(rows)))
    return out


def _values(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def _row(rank: int, row: Mapping[str, Any], cl: CompiledList, dates: Sequence[str],
         wl: Worklists) -> dict[str, Any]:
    fired = set(_values(row.get("rule_ids")))
    reasons: list[str] = []
    details: list[str] = []
    codes: list[str] = []
    for i, r in enumerate(cl.reasons):
        if not row.get(f"__r{i}"):
            continue
        if r.words is not None:
            reasons.append(r.words)
        else:
            reasons += [title for rid, title in r.rules.items() if rid in fired]
        for col, label in r.details:
            vals = [format_value(v) for v in _values(row.get(col))]
            if vals:
                details.append(f"{label}: {', '.join(v.replace('_', ' ') for v in vals)}")
        if r.codes is not None:
            codes += [c for c in r.codes if c not in codes]
        elif r.code_column is not None:
            for c in _values(row.get(r.code_column)):
                if (r.code_filter is None or c in r.code_filter) and c not in codes:
                    codes.append(str(c))
    out: dict[str, Any] = {
        "rank": rank,
        "patient_id": row["patient_id"],
        "neighbourhood": row.get("neighbourhood"),
        "practice": row.get("practice"),
        "age": row.get("age"),
        "sex": row.get("sex"),
        "pathway_state": row.get("pathway_state"),
        "reason": "; ".join(dict.fromkeys(reasons)),
        "details": "; ".join(dict.fromkeys(details)),
        "record_code": " or ".join(codes),
        "record_term": " or ".join(wl.terms.get(c, "") for c in codes),
        "predicted_risk": row.get("predicted_risk"),
        "predicted_risk_date": row.get("predicted_risk_date"),
        "emergency_admissions_recent": row.get("emergency_admissions_recent"),
    }
    for d in dates:
        out[f"date:{d}"] = row.get(BASE_FACT_COLUMNS.get(d, d))
    return out


def header_title(wl: Worklists, name: str) -> str:
    """The heading a reader sees for a worklist column."""
    fixed = {"rank": "#", "patient_id": "Patient", "neighbourhood": "Neighbourhood",
             "practice": "Practice", "age": "Age", "sex": "Sex",
             "pathway_state": "Pathway state", "reason": "Why on this list",
             "details": "Details", "record_code": "Code to record",
             "record_term": "Term of the code to record"}
    if name in fixed:
        return fixed[name]
    return wl.column_title(name.removeprefix("date:"))


# -- writing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorklistFiles:
    xlsx: Path
    csv: Mapping[str, Path]
    counts: Mapping[str, int]


def write_worklists(lists: Sequence[Worklist], wl: Worklists, out_dir: Path,
                    about: Mapping[str, str], stem: str = "worklists",
                    links: Mapping[str, str] | None = None) -> WorklistFiles:
    """``<stem>.xlsx`` (an About sheet, then one sheet per list) and ``<stem>_<list>.csv``.

    ``links`` maps a patient id to a page (a path relative to ``out_dir``, e.g. the person's
    theograph): that patient's id cells link to it, and the CSVs get a ``theograph`` column.
    """
    links = links or {}
    import xlsxwriter

    out_dir.mkdir(parents=True, exist_ok=True)
    csvs: dict[str, Path] = {}
    counts: dict[str, int] = {}
    for w in lists:
        path = out_dir / f"{stem}_{w.definition.id}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([h.removeprefix("date:") for h in w.headers]
                            + (["theograph"] if links else []))
            for row in w.rows:
                writer.writerow(["" if row[h] is None else _plain(row[h]) for h in w.headers]
                                + ([links.get(str(row["patient_id"]), "")] if links else []))
        csvs[w.definition.id] = path
        counts[w.definition.id] = len(w.rows)
    xlsx = out_dir / f"{stem}.xlsx"
    book = xlsxwriter.Workbook(str(xlsx), {"constant_memory": True,
                                           "strings_to_numbers": False,
                                           "strings_to_formulas": False,
                                           "strings_to_urls": False})
    try:
        bold = book.add_format({"bold": True, "text_wrap": True, "valign": "top",
                                "bg_color": "#EEF3F8", "border": 1})
        text = book.add_format({"num_format": "@"})
        date = book.add_format({"num_format": "yyyy-mm-dd"})
        risk = book.add_format({"num_format": "0.000"})
        link = book.add_format({"num_format": "@", "font_color": "blue", "underline": 1})
        sheet = book.add_worksheet("About")
        sheet.set_column(0, 0, 28)
        sheet.set_column(1, 1, 100)
        sheet.write_string(0, 0, "INT worklists", bold)
        r = 1
        for key, value in about.items():
            sheet.write_string(r, 0, key)
            sheet.write_string(r, 1, value)
            r += 1
        r += 1
        sheet.write_string(r, 0, "List", bold)
        sheet.write_string(r, 1, "Who is on it (people)", bold)
        for w in lists:
            r += 1
            sheet.write_string(r, 0, w.definition.definition.title)
            sheet.write_string(r, 1, f"{w.definition.definition.description} "
                                     f"({len(w.rows):,} people)")
        for w in lists:
            ws = book.add_worksheet(_sheet_name(w.definition.definition.title))
            ws.freeze_panes(1, 0)
            for c, h in enumerate(w.headers):
                ws.write_string(0, c, header_title(wl, h), bold)
                ws.set_column(c, c, _width(h), text if h in _TEXT_COLUMNS else None)
            ws.set_row(0, 30)
            for i, row in enumerate(w.rows, start=1):
                for c, h in enumerate(w.headers):
                    value = row[h]
                    if value is None:
                        continue
                    if h == "patient_id" and str(value) in links:
                        ws.write_url(i, c, "external:" + links[str(value)], link,
                                     string=str(value))
                    elif isinstance(value, dt.date):
                        ws.write_datetime(i, c, dt.datetime(value.year, value.month, value.day),
                                          date)
                    elif isinstance(value, bool):
                        ws.write_boolean(i, c, value)
                    elif isinstance(value, (int, float)) and h not in _TEXT_COLUMNS:
                        ws.write_number(i, c, value, risk if h == "predicted_risk" else None)
                    else:
                        ws.write_string(i, c, str(value), text)
            if w.rows:
                ws.autofilter(0, 0, len(w.rows), len(w.headers) - 1)
    finally:
        book.close()
    return WorklistFiles(xlsx, csvs, counts)


# Written as text cells: identifiers and SNOMED CT codes (Excel would turn a 16-digit code
# into 1.02605E+15 and lose its last digit).
_TEXT_COLUMNS = frozenset({"patient_id", "practice", "record_code", "neighbourhood"})


def _sheet_name(title: str) -> str:
    """An Excel sheet name: at most 31 characters, none of []:*?/\\."""
    return "".join(" " if ch in "[]:*?/\\" else ch for ch in title)[:31].strip() or "List"


def _width(header: str) -> int:
    return {"rank": 6, "patient_id": 12, "age": 6, "sex": 8, "reason": 60, "details": 50,
            "record_code": 20, "record_term": 50, "neighbourhood": 24}.get(header, 16)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def worklists_from_results(out_dir: Path, wl: Worklists, neighbourhoods: Sequence[str] = (),
                           practices: Sequence[str] = (), only: Sequence[str] = ()
                           ) -> list[Worklist]:
    """The worklists of a finished population run in ``out_dir`` (its ``results.parquet``).

    Raises :class:`WorklistError` when the folder has no results, or a neighbourhood, practice
    or list named is not in them (with the values that are)."""
    import duckdb

    path = out_dir / "results.parquet"
    if not path.is_file():
        raise WorklistError(f"'{out_dir}' has no results.parquet: run 'int-rules population' "
                            "into it first")
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"CREATE VIEW results AS SELECT * FROM read_parquet({file_path(path)})")
        cols = {r[0] for r in con.execute("DESCRIBE results").fetchall()}
        missing = sorted({c.fact for c in wl.columns} - cols)
        if missing:
            raise WorklistError(f"{path} has no column {', '.join(missing)}: it was written by "
                                "an older int-rules or another rulebook; run the population "
                                "again")
        for name, values in (("neighbourhood", neighbourhoods), ("practice", practices)):
            if values:
                have = {r[0] for r in con.execute(
                    f"SELECT DISTINCT {name} FROM results WHERE {name} IS NOT NULL").fetchall()}
                unknown = [v for v in values if v not in have]
                if unknown:
                    raise WorklistError(f"no {name} {', '.join(map(repr, unknown))} in {path} "
                                        f"({name}s: {', '.join(sorted(have)[:40])})")
        ids = [cl.id for cl in wl.lists]
        bad = [x for x in only if x not in ids]
        if bad:
            raise WorklistError(f"no worklist {', '.join(map(repr, bad))} (lists: "
                                f"{', '.join(ids)})")
        return compute_worklists(con, "results", wl, neighbourhoods, practices, only)
    finally:
        con.close()


def run_metadata(out_dir: Path) -> dict[str, Any]:
    """``run_summary.json`` of a population run (empty if it is not there)."""
    path = out_dir / "run_summary.json"
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
