"""Results are a documented format: every scenario's ``Assessment.to_dict()`` validates against
the published ``docs/schema/assessment.schema.json``, and the schema rejects what is not one."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

import int_rules
from int_rules.scenarios import load_scenarios, run_scenarios

jsonschema = pytest.importorskip("jsonschema")

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "docs" / "schema" / "assessment.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
BOOK = int_rules.load()


def _errors(data: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in VALIDATOR.iter_errors(data)]


def test_the_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_every_scenario_output_validates() -> None:
    results = run_scenarios(BOOK, load_scenarios(BOOK))
    assert len(results) > 50  # every bundled scenario, not a sample
    bad = {}
    for res in results:
        assert res.assessment is not None, res.diff()
        # Through JSON text, as an application receives it.
        data = json.loads(res.assessment.to_json())
        errors = _errors(data)
        if errors:
            bad[res.scenario.id] = errors
    assert not bad, bad


def test_cli_json_output_validates(capsys: pytest.CaptureFixture[str]) -> None:
    from int_rules.cli import main

    record = REPO / "examples" / "records" / "frail_on_caseload.json"
    assert main(["assess", str(record), "--as-of", "2026-11-23", "--format", "json"]) == 0
    assert _errors(json.loads(capsys.readouterr().out)) == []


def _example() -> dict[str, Any]:
    record = int_rules.PatientRecord.from_json_file(
        REPO / "examples" / "records" / "frail_on_caseload.json")
    data: dict[str, Any] = json.loads(BOOK.assess(record, dt.date(2026, 11, 23)).to_json())
    return data


@pytest.mark.parametrize(("change", "complaint"), [
    (lambda d: d.pop("provenance"), "'provenance' is a required property"),
    (lambda d: d.update(surprise=1), "Additional properties are not allowed"),
    (lambda d: d.update(as_of="23/11/2026"), "is not a 'date'"),
    (lambda d: d["provenance"].update(sha256="abc"), "does not match"),
    (lambda d: d["outcomes"][0].update(provenance="hunch"), "is not one of"),
    (lambda d: d["facts"]["age"].update(value=[88]), "is not valid under any of the given"),
])
def test_the_schema_rejects_what_is_not_an_assessment(change: Any, complaint: str) -> None:
    data = copy.deepcopy(_example())
    assert _errors(data) == []
    change(data)
    errors = _errors(data)
    assert any(complaint in e for e in errors), errors
