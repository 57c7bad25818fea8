"""The public API a Python application relies on, and the CLI's happy paths."""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import int_rules
from int_rules.cli import main

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples" / "records").glob("*.json"))
AS_OF = dt.date(2026, 11, 23)


def test_bundled_examples_exist_and_assess(book: int_rules.Rulebook) -> None:
    assert EXAMPLES, "examples/records/*.json are the README's bundled example data"
    for path in EXAMPLES:
        result = book.assess(int_rules.PatientRecord.from_json_file(path), AS_OF)
        assert result.pathway.state in book.pathway.fact_domain()
        assert set(result.results()) == {rs.id for rs in book.rulesets}


def test_assessment_carries_its_provenance(book: int_rules.Rulebook) -> None:
    result = book.assess(int_rules.PatientRecord.from_json_file(EXAMPLES[0]), AS_OF)
    prov = result.to_dict()["provenance"]
    assert prov["sha256"] == book.sha256 and len(book.sha256) == 64
    assert {r["id"] for r in prov["rulesets"]} == {rs.id for rs in book.rulesets}
    assert all(r["status"] in ("draft", "approved", "retired") for r in prov["rulesets"])


def test_safe_from_many_threads(book: int_rules.Rulebook) -> None:
    records = [int_rules.PatientRecord.from_json_file(p) for p in EXAMPLES] * 25
    serial = [book.assess(r, AS_OF).to_json() for r in records]
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda r: book.assess(r, AS_OF).to_json(), records))
    assert threaded == serial


def test_as_of_must_be_a_date(book: int_rules.Rulebook) -> None:
    rec = int_rules.PatientRecord.from_json_file(EXAMPLES[0])
    with pytest.raises(TypeError, match=r"as_of must be a datetime\.date"):
        book.assess(rec, dt.datetime(2026, 11, 23, 12, 0))  # a datetime hides a clock time
    with pytest.raises(int_rules.EngineUnavailableError, match="unknown engine 'spark'"):
        book.assess(rec, AS_OF, engine="spark")


def test_rulebook_is_immutable(book: int_rules.Rulebook) -> None:
    with pytest.raises(AttributeError):
        book.sha256 = "x"  # type: ignore[misc]
    rec = int_rules.PatientRecord.from_json_file(EXAMPLES[0])
    with pytest.raises(Exception, match="frozen"):
        rec.patient_id = "other"  # type: ignore[misc]


def test_cli_assess_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(EXAMPLES[0])
    assert main(["assess", path, "--as-of", "2026-11-23"]) == 0
    text = capsys.readouterr().out
    assert "Caseload pathway:" in text and "as of 2026-11-23" in text
    assert main(["assess", path, "--as-of", "2026-11-23", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["as_of"] == "2026-11-23" and data["engine"] == "reference"


def test_cli_may_record_lists_allowed_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["may-record", str(EXAMPLES[0]), "--on", "2026-11-23", "--format", "json"]) == 0
    decisions = json.loads(capsys.readouterr().out)
    assert decisions and all(d["allowed"] for d in decisions)
    assert all(d["code"] in int_rules.load().pathway.codes for d in decisions)


def test_cli_rejects_bad_date(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["assess", str(EXAMPLES[0]), "--as-of", "2026-02-30"])
    assert exc.value.code == 2
    assert "'2026-02-30' is not a date" in capsys.readouterr().err


def test_int_parameter_override_file(tmp_path: Path, book: int_rules.Rulebook,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    overrides = tmp_path / "my_int.yaml"
    overrides.write_text("overrides_for: hwe-int-proactive-care\n"
                         "description: an INT with level 2 monitoring\n"
                         "parameters:\n  facts.monitoring_max_available_level: 2\n")
    local = int_rules.load(overrides=overrides)
    assert local.sha256 != book.sha256
    assert local.fact_params["monitoring_max_available_level"] == 2
    assert local.overrides == {"facts.monitoring_max_available_level": 2}
    assert main(["assess", str(EXAMPLES[0]), "--as-of", "2026-11-23", "--format", "json",
                 "--params", str(overrides)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["provenance"]["overrides"] == {"facts.monitoring_max_available_level": 2}

    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("overrides_for: another-rulebook\nparameters: {facts.nope: 1}\n")
    with pytest.raises(int_rules.RulesetError) as exc:
        int_rules.load(overrides=wrong)
    assert "wrong.yaml:1:" in str(exc.value) and "not 'hwe-int-proactive-care'" in str(exc.value)
