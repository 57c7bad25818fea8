"""The public API is typed and documented: ``help()`` answers what is returned and raised."""

from __future__ import annotations

import inspect
import pydoc
import typing
from collections.abc import Callable, Iterator
from typing import Any, get_type_hints

import pytest

import int_rules
import int_rules.assessment
import int_rules.bundle
import int_rules.engines.generated
import int_rules.engines.reference
import int_rules.pathway
import int_rules.results_schema
import int_rules.review.approvals
import int_rules.rulebook
from int_rules.population import memory

# Still typed as Any, each for a reason (anything else typed Any fails the test below).
STILL_ANY = {
    "PatientRecord.to_dict": "the JSON form, described by docs/schema/record.schema.json",
    "Assessment.comparable": "for comparing engines in tests: to_dict() without the engine",
}

# Names the modules import only for type checking.
NAMES = {**vars(int_rules.pathway), **vars(int_rules.rulebook), **vars(int_rules.assessment),
         **vars(int_rules.review.approvals), **vars(int_rules.engines.reference),
         **vars(int_rules.engines.generated), **vars(int_rules.results_schema)}


def _has_any(hint: object) -> bool:
    return hint is Any or any(_has_any(a) for a in typing.get_args(hint))


def _members() -> Iterator[tuple[str, Callable[..., object] | type]]:
    for name in int_rules.__all__:
        obj = getattr(int_rules, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            yield name, obj
        if inspect.isclass(obj) and obj.__module__.startswith("int_rules"):
            for attr, value in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(value, classmethod | staticmethod):
                    value = value.__func__
                if isinstance(value, property):
                    value = value.fget
                if inspect.isfunction(value):
                    yield f"{name}.{attr}", value
    yield "assess_tables", memory.assess_tables


def test_no_any_where_a_type_exists() -> None:
    found = []
    for name, obj in _members():
        hints = get_type_hints(obj, localns=NAMES)
        for key, hint in hints.items():
            where = name if key == "return" or inspect.isclass(obj) is False else f"{name}.{key}"
            if inspect.isclass(obj) and key.startswith("_"):
                continue
            if _has_any(hint) and where not in STILL_ANY and name not in STILL_ANY:
                found.append(f"{where} ({key}: {hint})")
    assert not found, found


@pytest.mark.parametrize(("obj", "says"), [
    (int_rules.load, ["Returns", "Rulebook", "Raises", "RulesetError", "CodelistError",
                      "full path"]),
    (int_rules.Rulebook.assess, ["Returns", "Assessment", "Raises", "HitPolicyError",
                                 "EngineUnavailableError", "TypeError"]),
    (int_rules.Assessment, ["results", "explain", "to_dict", "assessment.schema.json"]),
    (int_rules.Assessment.to_dict, ["assessment.schema.json"]),
    (int_rules.PatientRecord, ["RecordError", "from_json_file"]),
    (int_rules.PatientRecord.from_dict, ["Returns", "Raises", "RecordError"]),
    (int_rules.PatientRecord.from_json, ["Returns", "Raises", "RecordError"]),
    (int_rules.PatientRecord.from_json_file, ["Returns", "Raises", "RecordError"]),
    (memory.assess_tables, ["Raises", "PopulationInputError", "rejects"]),
])
def test_help_says_what_is_returned_and_raised(obj: object, says: list[str]) -> None:
    text = pydoc.render_doc(obj, renderer=pydoc.plaintext)
    missing = [s for s in says if s not in text]
    assert not missing, f"help() does not mention {missing}"


def test_every_public_name_has_a_docstring() -> None:
    undocumented = [name for name, obj in _members() if not inspect.getdoc(obj)]
    assert not undocumented, undocumented


def test_version_is_a_string() -> None:
    assert isinstance(int_rules.__version__, str) and int_rules.__version__[0].isdigit()


def test_a_record_decision_is_plain_json_data() -> None:
    import datetime as dt
    import json

    from int_rules.cli import main

    book = int_rules.load()
    path = "examples/records/frail_on_caseload.json"
    record = int_rules.PatientRecord.from_json_file(int_rules.bundle.bundle_root() / path)
    decision = book.may_record(record, "894581000000106", on=dt.date(2026, 11, 23))
    data = decision.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["on"] == "2026-11-23" and data["allowed"] is decision.allowed
    assert data["resulting_state"] == decision.resulting_state
    # The CLI's JSON carries the same fields (and the code's term).
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["may-record", str(int_rules.bundle.bundle_root() / path), "--on", "2026-11-23",
              "--code", "894581000000106", "--format", "json"])
    (cli,) = json.loads(out.getvalue())
    assert {k: v for k, v in cli.items() if k != "term"} == data
