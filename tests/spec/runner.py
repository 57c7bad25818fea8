"""Spec cases as data: reading ``cases/*.yaml``, building their rulebooks, running engines.

A case file holds one small rulebook (``facts`` and optionally ``rulesets``), a table of code
aliases (``codes``) and its ``cases``. Each case gives ``as_of``, the ``records`` (as for
``PatientRecord.from_dict``; event codes may be aliases) and what each patient must get
(``expect``: ``facts``, ``rule_ids``, ``outputs``, ``pathway_state``, ``pathway_entered``,
``pathway_findings``, ``overlap``), or ``load_error``: a text the load error must contain
(then ``facts`` and ``rulesets`` belong to the case itself).

Engines run every record of a file with the same ``as_of`` in one go (one population run for
DuckDB), and each case checks its own patients.
"""

from __future__ import annotations

import datetime as dt
import functools
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from int_rules import PatientRecord, Rulebook, RulesetError
from int_rules.engines.conformance import PatientOutcome, outcomes
from tests.bookfactory import CITE, make_book

CASES = Path(__file__).parent / "cases"


@dataclass(frozen=True)
class Case:
    file: str
    id: str
    as_of: dt.date
    records: tuple[dict[str, Any], ...]
    expect: dict[str, dict[str, Any]]
    load_error: str | None = None
    book_yaml: dict[str, Any] | None = None  # for load errors: the case's own rulebook


def _files() -> list[Path]:
    return sorted(CASES.glob("*.yaml"))


@functools.cache
def _file(path: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return data


def all_cases() -> list[Case]:
    out = []
    for path in _files():
        data = _file(str(path))
        codes = data.get("codes", {})
        for c in data["cases"]:
            records = tuple(_record(r, codes) for r in c.get("records", ()))
            out.append(Case(path.stem, c["id"], c.get("as_of", dt.date(2026, 1, 1)), records,
                            c.get("expect", {}), c.get("load_error"),
                            {"facts": c.get("facts"), "rulesets": c.get("rulesets", {})}
                            if c.get("load_error") else None))
    return out


def _record(raw: dict[str, Any], codes: dict[str, str]) -> dict[str, Any]:
    rec = dict(raw)
    rec.setdefault("date_of_birth", dt.date(1940, 6, 15))
    rec["events"] = [{**e, "code": codes.get(e["code"], e["code"])}
                     for e in rec.get("events", ())]
    return rec


def _ruleset_yaml(rid: str, spec: dict[str, Any]) -> str:
    rules = []
    for r in spec["rules"]:
        rule = {"id": r["id"], "title": r.get("title", r["id"]), "when": r["when"],
                "then": r["then"], "provenance": "assumption"}
        if "priority" in r:
            rule["priority"] = r["priority"]
        text = yaml.safe_dump([rule], sort_keys=False, default_flow_style=None)
        rules.append(textwrap.indent(text, "  ") + f"    {CITE}\n")
    head = {"ruleset": rid, "title": "T", "version": "0.0.1", "status": "draft",
            "guidance": ["001_0d4f5c8ba846d66c.txt"], "hit_policy": spec["hit_policy"],
            "description": "D", "parameters": spec.get("parameters", {}),
            "outputs": spec["outputs"]}
    return yaml.safe_dump(head, sort_keys=False) + "rules:\n" + "".join(rules)


def _facts_yaml(facts: dict[str, Any]) -> str:
    body = {"facts_version": "0.0.1", "title": "spec facts",
            "parameters": facts.get("parameters", {}), "facts": facts["facts"]}
    return yaml.safe_dump(body, sort_keys=False)


_DEFAULT_RULESET = {"hit_policy": "collect",
                    "outputs": {"flag": {"type": "bool", "description": "d"}},
                    "rules": [{"id": "SPC-001", "when": {"fact": "age", "at_least": 0},
                               "then": {"flag": True}}]}


def build_book(facts: dict[str, Any], rulesets: dict[str, Any], directory: Path) -> Rulebook:
    """A rulebook from a case file's ``facts`` and ``rulesets`` (a trivial ruleset if none)."""
    sets = rulesets or {"spec": _DEFAULT_RULESET}
    return make_book(directory, _facts_yaml(facts),
                     {rid: _ruleset_yaml(rid, spec) for rid, spec in sets.items()})


@functools.cache
def book_of(file: str) -> Rulebook:
    data = _file(str(CASES / f"{file}.yaml"))
    return build_book(data["facts"], data.get("rulesets", {}), Path(tempfile.mkdtemp()))


@functools.cache
def run(file: str, engine: str, as_of: dt.date) -> dict[str, PatientOutcome]:
    """Every patient of ``file`` assessed as of ``as_of`` on ``engine``."""
    records = [PatientRecord.from_dict(r) for c in all_cases()
               if c.file == file and c.as_of == as_of and c.load_error is None
               for r in c.records]
    return outcomes(book_of(file), records, as_of, engine, Path(tempfile.mkdtemp()))


def load_error(case: Case) -> str:
    """The load error of a ``load_error`` case (its message), or '' when it loads."""
    assert case.book_yaml is not None
    try:
        build_book(case.book_yaml["facts"], case.book_yaml["rulesets"],
                   Path(tempfile.mkdtemp()))
    except RulesetError as exc:
        return str(exc)
    return ""


def check(case: Case, got: dict[str, PatientOutcome]) -> list[str]:
    """How the outcomes of the case's patients differ from what it expects."""
    problems = []
    for pid, want in case.expect.items():
        have = got[pid]
        for key, value in want.items():
            if key == "facts":
                for name, v in value.items():
                    actual = have.facts[name]
                    if actual != v or isinstance(actual, bool) != isinstance(v, bool):
                        problems.append(f"{pid}: fact {name}: expected {v!r}, got {actual!r}")
            elif key == "outputs":
                for name, v in value.items():
                    if have.outputs[name] != v:
                        problems.append(f"{pid}: output {name}: expected {v!r}, got "
                                        f"{have.outputs[name]!r}")
            else:
                actual = getattr(have, key)
                if isinstance(actual, tuple):
                    actual = list(actual)
                if actual != value:
                    problems.append(f"{pid}: {key}: expected {value!r}, got {actual!r}")
    return problems
