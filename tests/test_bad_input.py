"""Bad rulesets, records and codes get one clear error naming where the problem is."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import int_rules
from int_rules import PatientRecord, RecordError, RulesetError, SnomedCodeError
from int_rules.cli import main
from int_rules.rulebook import default_rulebook_dir
from tests.bookfactory import CITE, make_book, ruleset

FACTS = """
facts_version: 0.0.1
title: t
facts:
  age: {kind: age, description: age}
  cga_ever: {kind: exists, codelist: cga, description: any CGA}
"""
OUT = "  flag: {type: category, values: [a, b], description: d}"


def one_rule(when: str = "{fact: age, at_least: 65}", then: str = "{flag: a}",
             rid: str = "TST-001") -> str:
    return (f"  - id: {rid}\n    title: t\n    when: {when}\n    then: {then}\n"
            f"    provenance: guidance\n    {CITE}\n")


def load_error(tmp_path: Path, facts: str = FACTS, rules: str | None = None,
               text: str | None = None) -> str:
    body = text if text is not None else ruleset("t", rules or one_rule(), OUT)
    with pytest.raises(RulesetError) as exc:
        make_book(tmp_path, facts, {"t": body})
    return str(exc.value)


def test_malformed_yaml_names_file_line_and_column(tmp_path: Path) -> None:
    msg = load_error(tmp_path, text="ruleset: t\nrules: [\n  - {id: X\n")
    assert re.match(r"book/t\.yaml:\d+:\d+: invalid YAML", msg), msg


def test_python_object_tag_is_refused(tmp_path: Path) -> None:
    msg = load_error(tmp_path, text="ruleset: !!python/object/apply:os.system ['echo hi']\n")
    assert msg.startswith("book/t.yaml:1:10:") and "tag not allowed" in msg


def test_unknown_fact_names_rule_and_position(tmp_path: Path) -> None:
    msg = load_error(tmp_path, rules=one_rule("{fact: days_since_mdt, at_least: 3}"))
    assert re.match(r"book/t\.yaml:14:\d+: rule TST-001: unknown fact 'days_since_mdt'", msg), msg


def test_unknown_codelist_in_fact(tmp_path: Path) -> None:
    facts = FACTS + "  bad: {kind: exists, codelist: no_such_list, description: x}\n"
    msg = load_error(tmp_path, facts=facts)
    assert re.match(r"book/facts\.yaml:7:\d+: facts\.bad: unknown codelist 'no_such_list'", msg), msg


def test_unknown_parameter(tmp_path: Path) -> None:
    msg = load_error(tmp_path, rules=one_rule("{fact: age, at_least: {param: nope}}"))
    assert "rule TST-001: unknown parameter 'nope'" in msg and msg.startswith("book/t.yaml:14:")


def test_duplicate_rule_id(tmp_path: Path) -> None:
    msg = load_error(tmp_path, rules=one_rule() + one_rule())
    assert re.match(r"book/t\.yaml:18:\d+: rule TST-001: duplicate rule id \(first defined at "
                    r"book/t\.yaml:12:\d+\)", msg), msg


def test_duplicate_key_in_yaml(tmp_path: Path) -> None:
    text = ruleset("t", one_rule(), OUT).replace("version: 0.0.1\n", "version: 0.0.1\nversion: 1.0.0\n")
    msg = load_error(tmp_path, text=text)
    assert "book/t.yaml:4:1: version: key 'version' appears twice" in msg


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    msg = load_error(tmp_path, rules=one_rule("{fact: cga_ever, equals: 3}"))
    assert "rule TST-001: fact 'cga_ever' is a bool" in msg and msg.startswith("book/t.yaml:14:")
    msg = load_error(tmp_path / "b", text=ruleset("t", one_rule(), OUT, hit_policy="sometimes"))
    assert re.match(r"book/t\.yaml:6:\d+: hit_policy: Input should be 'collect'", msg), msg


def test_output_value_not_declared(tmp_path: Path) -> None:
    msg = load_error(tmp_path, rules=one_rule(then="{flag: z}"))
    assert "'z' is not a value of output 'flag' (a, b)" in msg


def test_impossible_date_in_yaml_is_our_error_not_a_bare_valueerror(tmp_path: Path) -> None:
    facts = FACTS.replace("facts_version: 0.0.1", "facts_version: 2026-02-30")
    msg = load_error(tmp_path, facts=facts)
    assert msg.startswith("book/facts.yaml:2:16: facts_version:"), msg


def test_several_problems_reported_together(tmp_path: Path) -> None:
    rules = one_rule("{fact: nope, equals: 1}") + one_rule("{fact: nah, equals: 1}", rid="TST-002")
    msg = load_error(tmp_path, rules=rules)
    assert "unknown fact 'nope'" in msg and "unknown fact 'nah'" in msg


def test_guidance_parameter_cannot_be_overridden(tmp_path: Path) -> None:
    params = "{n: {value: 65, provenance: guidance, why: stated}}"
    body = ruleset("t", one_rule("{fact: age, at_least: {param: n}}"), OUT, parameters=params)
    with pytest.raises(RulesetError, match="comes from the guidance and cannot be overridden"):
        make_book(tmp_path, FACTS, {"t": body}, overrides={"t.n": 70})
    with pytest.raises(RulesetError, match=r"no parameter 't\.m' to override"):
        make_book(tmp_path, FACTS, {"t": body}, overrides={"t.m": 70})


def test_bundled_rulebook_edit_reports_real_file(tmp_path: Path) -> None:
    copy = tmp_path / "rulesets"
    shutil.copytree(default_rulebook_dir(), copy)
    shutil.copytree(default_rulebook_dir().parent / "codelists", tmp_path / "codelists")
    facts = (copy / "facts.yaml").read_text().replace("codelist: cga\n", "codelist: cgaa\n", 1)
    (copy / "facts.yaml").write_text(facts)
    with pytest.raises(RulesetError, match=r"rulesets/facts\.yaml:\d+:\d+: .*unknown codelist 'cgaa'"):
        int_rules.load(copy)


# -- records --------------------------------------------------------------------------------


def test_record_errors_name_patient_and_field() -> None:
    with pytest.raises(RecordError) as exc:
        PatientRecord.from_dict({"patient_id": "P9", "date_of_birth": "1950-01-01",
                                 "events": [{"code": "12345", "date": "2020-01-01"}]})
    assert str(exc.value).startswith("patient 'P9': events[0].code: '12345' is not a valid SNOMED")
    with pytest.raises(RecordError, match=r"patient 'P9': date_of_birth: '2026-02-30' is not a valid date"):
        PatientRecord.from_dict({"patient_id": "P9", "date_of_birth": "2026-02-30"})
    with pytest.raises(RecordError, match=r"patient 'P9': admissions\[0\]: discharged 2020-01-01 is before"):
        PatientRecord.from_dict({"patient_id": "P9", "date_of_birth": "1950-01-01", "admissions": [
            {"admitted": "2020-01-05", "discharged": "2020-01-01", "emergency": True}]})
    with pytest.raises(RecordError, match=r"patient 'P9': colour: unknown field"):
        PatientRecord.from_dict({"patient_id": "P9", "date_of_birth": "1950-01-01", "colour": 1})
    with pytest.raises(RecordError, match=r"record \(no patient_id\): patient_id"):
        PatientRecord.from_dict({"date_of_birth": "1950-01-01"})


def test_snomed_check_digit_message_shows_value() -> None:
    with pytest.raises(SnomedCodeError, match=r"'925861000000103' .* check digit is wrong"):
        int_rules.snomed.parse_concept_id("925861000000103")
    with pytest.raises(SnomedCodeError, match="partition identifier '01'"):
        int_rules.snomed.parse_concept_id("1000000" + "01" + int_rules.snomed.check_digit("100000001"))


# -- CLI --------------------------------------------------------------------------------------


def test_cli_bad_record_is_a_message_and_exit_2(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"patient_id": "P7", "date_of_birth": "1940-01-01",
                               "events": [{"code": "123", "date": "2020-01-01"}]}))
    assert main(["assess", str(bad), "--as-of", "2026-11-23"]) == 2
    err = capsys.readouterr().err
    assert "patient 'P7': events[0].code: '123'" in err and "Traceback" not in err
    assert main(["assess", str(tmp_path / "missing.json"), "--as-of", "2026-11-23"]) == 2
    assert "cannot read file" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{")
    assert main(["assess", str(tmp_path / "broken.json"), "--as-of", "2026-11-23"]) == 2


def test_cli_bad_ruleset_is_a_message_and_exit_2(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from tests.bookfactory import write_book

    base = write_book(tmp_path, FACTS, {"t": ruleset("t", one_rule("{fact: x, equals: 1}"), OUT)})
    rec = tmp_path / "r.json"
    rec.write_text(json.dumps({"patient_id": "P1", "date_of_birth": "1940-01-01"}))
    assert main(["assess", str(rec), "--as-of", "2026-11-23", "--rules", str(base)]) == 2
    err = capsys.readouterr().err
    assert "t.yaml:14:" in err and "unknown fact 'x'" in err and "Traceback" not in err


def test_unknown_key_points_at_the_key(tmp_path: Path) -> None:
    text = ruleset("t", one_rule(), OUT).replace("hit_policy: collect", "hit_policy: collect\nhit_polcy: first")
    msg = load_error(tmp_path, text=text)
    assert msg.startswith("book/t.yaml:7:1: hit_polcy: unknown key"), msg


def test_manifest_naming_a_missing_file(tmp_path: Path) -> None:
    from tests.bookfactory import write_book

    base = write_book(tmp_path, FACTS, {"t": ruleset("t", one_rule(), OUT)})
    manifest = (base / "rulebook.yaml").read_text().replace("  - t.yaml", "  - t.yaml\n  - gone.yaml")
    (base / "rulebook.yaml").write_text(manifest)
    with pytest.raises(RulesetError, match=r"book/rulebook\.yaml:9:5: rulesets: file 'gone\.yaml' does not exist"):
        int_rules.load(base)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_record_values_must_be_finite(bad: float) -> None:
    with pytest.raises(RecordError, match=r"patient 'P5': events\[0\]\.value: .*finite"):
        PatientRecord.from_dict({"patient_id": "P5", "date_of_birth": "1950-01-01",
                                 "events": [{"code": "763264000", "date": "2020-01-01", "value": bad}]})
    with pytest.raises(RecordError, match=r"risk_scores\[0\]\.value"):
        PatientRecord.from_dict({"patient_id": "P5", "date_of_birth": "1950-01-01",
                                 "risk_scores": [{"date": "2020-01-01", "value": bad, "source": "D"}]})
