"""Approval records (DCB0129 sign-off): ``int-rules approve``, the status every result reports,
and the lint checks that hold the records to the content they approved (issue 17)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

import int_rules
from int_rules.cli import main
from int_rules.record import PatientRecord
from int_rules.review.approvals import ApprovalRecord, effective_status, overall_status
from int_rules.review.lint import lint
from tests.review_support import copy_rulebook, edit_yaml, read_rows, set_codelist_rows

AS_OF = dt.date(2026, 11, 23)
RECORD = PatientRecord.from_dict({"patient_id": "P1", "date_of_birth": "1940-05-02"})
CSO = ["--by", "Dr A Example", "--role", "Clinical Safety Officer", "--date", "2026-12-01"]


def _approve(rules: Path, target: str, *more: str) -> int:
    return main(["approve", target, *CSO, "--rules", str(rules), *more])


def _statuses(rules: Path) -> dict[str, str]:
    prov = int_rules.load(rules).assess(RECORD, AS_OF).provenance()
    out = {r["id"]: r["status"] for r in prov["rulesets"]}
    out["pathway"] = prov["pathway"]["status"]
    return out


def _checks(rules: Path) -> dict[str, list[str]]:
    report = lint(rules, use_hazard_log=False, max_nodes=2_000)
    out: dict[str, list[str]] = {}
    for f in report.findings:
        out.setdefault(f.check, []).append(f"{f.where} {f.message}")
    return out


def _record(version: str = "0.1.0", sha: str = "a" * 64) -> ApprovalRecord:
    return ApprovalRecord(target="x", version=version, sha256=sha, by="A", role="CSO",
                          date="2026-12-01")


def test_status_is_approved_only_when_declared_and_the_hash_matches() -> None:
    rec = _record()
    assert effective_status("approved", "0.1.0", "a" * 64, [rec]) == "approved"
    assert effective_status("approved", "0.1.0", "b" * 64, [rec]) == "changed since approval"
    assert effective_status("draft", "0.2.0", "b" * 64, [rec]) == "changed since approval"
    assert effective_status("approved", "0.1.0", "a" * 64, []) == "draft"
    assert effective_status("draft", "0.1.0", "a" * 64, []) == "draft"
    assert effective_status("retired", "0.1.0", "a" * 64, [rec]) == "retired"
    assert overall_status(["approved", "draft", "changed since approval"]) == \
        "changed since approval"
    assert overall_status(["approved", "approved"]) == "approved"


def test_one_command_approves_and_every_result_says_so(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    rules = copy_rulebook(tmp_path)
    rs_id = int_rules.load(rules).rulesets[0].id
    assert _statuses(rules)[rs_id] == "draft"
    assert _approve(rules, rs_id, "--note", "IDN-010=Checked against Version 2.") == 0
    assert "recorded in" in capsys.readouterr().out
    data = yaml.safe_load((rules / "approvals.yaml").read_text(encoding="utf-8"))
    (record,) = data["approvals"]
    book = int_rules.load(rules)
    assert record["target"] == rs_id and record["by"] == "Dr A Example"
    assert record["role"] == "Clinical Safety Officer" and record["date"] == "2026-12-01"
    assert record["version"] == book.rulesets[0].definition.version
    assert record["sha256"] == book.approvals.hashes[rs_id]
    assert record["notes"] == {"IDN-010": "Checked against Version 2."}
    assert book.rulesets[0].definition.status == "approved"  # the file now says so
    assert _statuses(rules)[rs_id] == "approved"
    assert f"{rs_id} {record['version']}, approved" in book.assess(RECORD, AS_OF).explain()
    assert not _checks(rules).get("approval-changed")


def test_changed_content_is_no_longer_approved_and_lint_fails(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    name = int_rules.load(rules).manifest.rulesets[0]
    rs_id = int_rules.load(rules).rulesets[0].id
    assert _approve(rules, rs_id) == 0
    edit_yaml(rules / name, lambda d: d["rules"][0].update({"title": "Reworded"}))
    assert _statuses(rules)[rs_id] == "changed since approval"
    checks = _checks(rules)
    assert len(checks["approval-changed"]) == 1
    assert "bump 'version'" in checks["approval-changed"][0]
    assert main(["lint", str(rules), "--no-hazards", "--max-nodes", "2000"]) == 1
    # a draft whose content changed under an approved version number: still an error
    edit_yaml(rules / name, lambda d: d.update({"status": "draft"}))
    assert len(_checks(rules)["version-not-bumped"]) == 1
    # bump the version: no longer an error, the status is "changed since approval" until
    # the new version is approved
    edit_yaml(rules / name, lambda d: d.update({"version": "9.0.0"}))
    checks = _checks(rules)
    assert "version-not-bumped" not in checks and "approval-changed" not in checks
    assert _statuses(rules)[rs_id] == "changed since approval"
    assert _approve(rules, rs_id) == 0
    assert _statuses(rules)[rs_id] == "approved"


def test_a_codelist_change_changes_the_hash_of_the_rulesets_using_it(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    book = int_rules.load(rules)
    rs_id = book.rulesets[0].id
    assert _approve(rules, rs_id) == 0
    rows = read_rows(tmp_path, "care_home_resident")
    set_codelist_rows(tmp_path, "care_home_resident", rows[:-1])
    assert _statuses(rules)[rs_id] == "changed since approval"


def test_said_approved_without_a_record_is_an_error(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    name = int_rules.load(rules).manifest.rulesets[0]
    edit_yaml(rules / name, lambda d: d.update({"status": "approved"}))
    (finding,) = _checks(rules)["approval-missing"]
    assert name in finding and "int-rules approve" in finding
    assert _statuses(rules)[int_rules.load(rules).rulesets[0].id] == "draft"


def test_approve_refuses_what_it_cannot_record(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    rules = copy_rulebook(tmp_path)
    book = int_rules.load(rules)
    rs_id = book.rulesets[0].id
    assert _approve(rules, "nonsense") == 2
    assert "not a ruleset, the pathway or the dashboard" in capsys.readouterr().err
    assert _approve(rules, rs_id, "--note", "XXX-999=hello") == 2
    assert "not a rule of" in capsys.readouterr().err
    assert _approve(rules, rs_id) == 0
    assert _approve(rules, rs_id) == 2
    assert "already approved" in capsys.readouterr().err
    edit_yaml(rules / book.manifest.rulesets[0],
              lambda d: d["rules"][0].update({"title": "Reworded"}))
    assert _approve(rules, rs_id) == 2
    assert "bump 'version'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["approve", rs_id, "--by", "A", "--role", "CSO", "--date", "1/12/2026"])
    assert not (tmp_path / "approvals.yaml").exists()


def test_pathway_and_dashboard_are_approved_the_same_way(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path, all_rulesets=True)
    assert _approve(rules, "pathway") == 0
    assert _statuses(rules)["pathway"] == "approved"
    assert _approve(rules, str(rules / "dashboard.yaml")) == 0
    from int_rules.review.signoff import targets

    book = int_rules.load(rules)
    dash = targets(book)["dashboard"]
    assert dash.declared == "approved"
    from int_rules.review.approvals import dashboard_status
    from int_rules.review.signoff import load_dashboard_model

    found = load_dashboard_model(book)
    assert found is not None
    assert dashboard_status(book, found[0]) == "approved"
    # the dashboard counts ruleset outputs: a change to such a ruleset is a change to it
    edit_yaml(rules / "review.yaml", lambda d: d["rules"][0].update({"title": "Reworded"}))
    book = int_rules.load(rules)
    found = load_dashboard_model(book)
    assert found is not None
    assert dashboard_status(book, found[0]) == "changed since approval"


def test_a_broken_approvals_file_is_a_located_error(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rules = copy_rulebook(tmp_path)
    (rules / "approvals.yaml").write_text(
        "approvals_for: hwe-int-proactive-care\napprovals:\n  - target: identification\n"
        "    version: 0.1.0\n    sha256: nothex\n    by: A\n    role: CSO\n"
        "    date: 2026-13-01\n", encoding="utf-8")
    with pytest.raises(int_rules.errors.RulesetError) as err:
        int_rules.load(rules)
    assert "approvals.yaml:5" in str(err.value) and "approvals.yaml:8" in str(err.value)
    assert main(["assess", "--as-of", "2026-11-23", "--rules", str(rules),
                 str(tmp_path / "missing.json")]) == 2


def test_population_outputs_report_the_effective_status(tmp_path: Path) -> None:
    from int_rules.population.engine import overall_status as rulebook_status
    from int_rules.population.engine import provenance, statuses_text

    rules = copy_rulebook(tmp_path)
    rs_id = int_rules.load(rules).rulesets[0].id
    assert _approve(rules, rs_id) == 0
    book = int_rules.load(rules)
    assert f"{rs_id} " in statuses_text(book) and " approved" in statuses_text(book)
    assert rulebook_status(book) == "draft"  # the pathway is still a draft
    assert {r["id"]: r["status"] for r in provenance(book)["rulesets"]}[rs_id] == "approved"
    assert json.loads(json.dumps(provenance(book)))["pathway"]["status"] == "draft"


def test_the_safety_case_shows_the_sign_off_and_the_dashboard(tmp_path: Path) -> None:
    from int_rules.review.lint import hazard_log_for
    from int_rules.review.safety_case import render_safety_case

    rules = copy_rulebook(tmp_path, hazards=True, all_rulesets=True)
    assert _approve(rules, "review", "--note", "REV-020=Checked with the MDT lead.") == 0
    book = int_rules.load(rules)
    report = lint(rules, max_nodes=2_000, book=book)
    text = render_safety_case(book, hazard_log_for(book), report)
    sign_off = text[text.index("### Sign-off"):text.index("## 2.")]
    (row,) = [line for line in sign_off.splitlines() if line.startswith("| ruleset `review`")]
    assert "**approved**" in row and "Dr A Example" in row and "2026-12-01" in row
    assert "REV-020: Checked with the MDT lead." in row
    assert "| dashboard `dashboard` |" in sign_off and "1 of 8 parts approved" in sign_off
    assert "| dashboard | `int_development` |" in text
    assert "`expected_identified_share` | 0.03 | guidance" in text


def test_a_hazard_is_mitigated_only_with_an_owner_and_evidence(tmp_path: Path) -> None:
    from int_rules.review.hazards import load_hazard_log, shown_status

    rules = copy_rulebook(tmp_path, hazards=True)
    log = tmp_path / "docs" / "safety" / "hazard-log.yaml"

    def strip(d: dict[str, object]) -> None:
        h = d["hazards"][0]  # type: ignore[index]
        assert h["status"] == "mitigated"
        del h["owner"], h["review_date"]

    edit_yaml(log, strip)
    checks = _checks_with_hazards(rules)
    assert len(checks["hazard-owner"]) == 1 and len(checks["hazard-review-date"]) == 1
    loaded, _ = load_hazard_log(log)
    assert loaded is not None
    hazard = loaded.log.hazards[0]
    assert shown_status(hazard) == "open (not evidenced: no owner)"
    assert shown_status(loaded.log.hazards[2]) == "mitigated"


def _checks_with_hazards(rules: Path) -> dict[str, list[str]]:
    report = lint(rules, max_nodes=2_000)
    out: dict[str, list[str]] = {}
    for f in report.findings:
        out.setdefault(f.check, []).append(f"{f.where} {f.message}")
    return out


def _edit_text(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


EDITS_THAT_COUNT = {
    "rule title": lambda d: d["rules"][0].update({"title": d["rules"][0]["title"] + "."}),
    "citation quote": lambda d: d["rules"][0]["cite"].update({"quote": "changed"}),
    "parameter value": lambda d: d["parameters"]["review_interval_high_days"].update(
        {"value": 91}),
    "parameter provenance": lambda d: d["parameters"]["review_interval_high_days"].update(
        {"provenance": "assumption"}),
    "parameter why": lambda d: d["parameters"]["review_interval_high_days"].update(
        {"why": "changed"}),
    "rule hazards": lambda d: d["rules"][0].update({"hazards": []}),
}


@pytest.mark.parametrize("edit", sorted(EDITS_THAT_COUNT))
def test_every_change_a_reviewer_must_see_changes_the_hash(tmp_path: Path, edit: str) -> None:
    rules = copy_rulebook(tmp_path, all_rulesets=True)
    before = int_rules.load(rules).approvals.hashes
    edit_yaml(rules / "review.yaml", EDITS_THAT_COUNT[edit])
    after = int_rules.load(rules).approvals.hashes
    assert after["review"] != before["review"]
    assert after["identification"] == before["identification"]  # others are untouched


def test_what_a_ruleset_reads_counts_and_layout_does_not(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path, all_rulesets=True)
    before = int_rules.load(rules).approvals.hashes
    # comments, layout and the status line are not content
    _edit_text(rules / "review.yaml", "\nrules:", "\n# a reviewer's comment\n\nrules:")
    edit_yaml(rules / "review.yaml", lambda d: d.update({"status": "approved"}))
    assert int_rules.load(rules).approvals.hashes == before
    # a fact the rules read (and nothing else reads it) is part of what is approved
    edit_yaml(rules / "facts.yaml", lambda d: d["facts"]["last_mdt_review"].update(
        {"description": "changed"}))
    after = int_rules.load(rules).approvals.hashes
    assert after["review"] != before["review"]
    assert after["monitoring"] == before["monitoring"]
    # so is a term in a codelist one of its facts uses
    rows = read_rows(tmp_path, "mdt_review")
    set_codelist_rows(tmp_path, "mdt_review", [(rows[0][0], rows[0][1] + " (x)", rows[0][2]),
                                               *rows[1:]])
    assert int_rules.load(rules).approvals.hashes["review"] != after["review"]
