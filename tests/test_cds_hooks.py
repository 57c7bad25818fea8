"""CDS Hooks 2.0 cards out: the shape (a JSON Schema written from the specification), and
suggestions only where the pathway allows the code."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jsonschema
import pytest

import int_rules
from int_rules.cli import main

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "docs/schema/cds-hooks-response.schema.json").read_text())
RECORDS = sorted((REPO / "examples" / "records").glob("*.json"))
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def book() -> int_rules.Rulebook:
    return int_rules.load()


def test_the_schema_is_valid_and_rejects_what_the_specification_forbids() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    card = {"summary": "x", "indicator": "info", "source": {"label": "guide"}}
    assert VALIDATOR.is_valid({"cards": [card]})
    assert not VALIDATOR.is_valid({"cards": [{**card, "summary": "x" * 140}]})
    assert not VALIDATOR.is_valid({"cards": [{**card, "indicator": "hint"}]})
    assert not VALIDATOR.is_valid({"cards": [{k: v for k, v in card.items() if k != "source"}]})
    assert not VALIDATOR.is_valid({"cards": [{**card, "suggestions": [{"label": "s"}]}]})


@pytest.mark.parametrize("as_of", [dt.date(2026, 3, 31), dt.date(2026, 11, 23)])
@pytest.mark.parametrize("path", RECORDS, ids=lambda p: p.name)
def test_cards_for_every_example_record(book: int_rules.Rulebook, path: Path,
                                        as_of: dt.date) -> None:
    record = int_rules.PatientRecord.from_json_file(path)
    a = book.assess(record, as_of)
    response = a.to_cds_hooks()
    VALIDATOR.validate(response)
    cards = response["cards"]
    assert len(cards) == len(a.fired) + len(a.pathway.findings)
    for card, rule in zip(cards, a.fired, strict=False):
        assert card["source"]["topic"]["code"] == rule.id
        assert rule.definition.cite.section in card["source"]["label"]
        assert rule.definition.cite.quote in card["detail"]
    assert response == a.to_cds_hooks()  # same inputs, same cards (uuids included)


def test_a_suggestion_carries_the_code_when_may_record_allows_it(
        book: int_rules.Rulebook) -> None:
    seen = 0
    for path in RECORDS:
        record = int_rules.PatientRecord.from_json_file(path)
        for as_of in (dt.date(2026, 3, 31), dt.date(2026, 11, 23)):
            a = book.assess(record, as_of)
            for card, rule in zip(a.to_cds_hooks()["cards"], a.fired, strict=False):
                codes = [str(v) for k, v in rule.definition.then.items()
                         if book.ruleset(rule.ruleset).definition.outputs[k].type == "code"]
                allowed = [c for c in codes if book.may_record(record, c, as_of).allowed]
                got = [s["actions"][0]["resource"]["code"]["coding"][0]["code"]
                       for s in card.get("suggestions", [])]
                assert got == allowed
                seen += len(got)
    assert seen > 0  # the examples include a code to record


def test_the_cga_card_suggests_recording_the_cga(book: int_rules.Rulebook) -> None:
    record = int_rules.PatientRecord.from_json_file(REPO / "examples/records/"
                                                    "data_quality_problems.json")
    cards = book.assess(record, dt.date(2026, 3, 31)).to_cds_hooks()["cards"]
    card = next(c for c in cards if c["source"]["topic"]["code"] == "AMD-011")
    action = card["suggestions"][0]["actions"][0]
    assert action["type"] == "create"
    assert action["resource"]["code"]["coding"][0] == {
        "system": "http://snomed.info/sct", "code": "836131000000104",
        "display": book.codelists.term("836131000000104")}
    assert action["resource"]["subject"] == {"reference": "Patient/EX-006"}


def test_cli_prints_cards(capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "examples/fhir/frail_on_caseload.bundle.json"
    assert main(["assess", str(path), "--as-of", "2026-11-23", "--format", "cds-hooks"]) == 0
    VALIDATOR.validate(json.loads(capsys.readouterr().out))
