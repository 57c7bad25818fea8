"""``int-rules lint``: each check fires on a deliberately broken copy of the bundled rulebook.

Every test copies ``rulesets/`` and ``codelists/`` to a temporary folder, breaks one thing and
checks that lint reports that check, located, with an example input for the decision checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from int_rules.cli import main
from int_rules.review.analysis import Abstraction, analyse_ruleset
from int_rules.review.lint import CHECKS, LintReport, lint
from int_rules.rulebook import load
from tests.review_support import (
    CITE,
    add_codelist,
    add_ruleset,
    bundled,
    copy_rulebook,
    edit_yaml,
    read_rows,
    rule,
)


def run(rules: Path, **kw: Any) -> LintReport:
    kw.setdefault("use_hazard_log", False)
    return lint(rules, **kw)


def only(report: LintReport, check: str) -> list[Any]:
    found = list(report.of(check))
    assert found, f"expected a {check!r} finding; got:\n{report.text()}"
    return found


def first_rule(rules: Path, ruleset: str = "identification") -> tuple[Path, int]:
    return rules / f"{ruleset}.yaml", 0


# -- the bundled rulebook ---------------------------------------------------------------------


def test_bundled_rulebook_has_no_lint_errors() -> None:
    report = lint()
    assert not report.errors, report.text()
    # every ruleset was analysed and every decision question settled
    assert {a.ruleset for a in report.analyses} == {rs.id for rs in bundled().rulesets}
    assert all(a.exhaustive for a in report.analyses)


def test_unverified_codes_are_warned() -> None:
    report = lint(use_hazard_log=False)
    text = "\n".join(f.message for f in report.of("unverified-code"))
    # the seven guidance-only pathway codes (identification, consent, CGA, step-down)
    for code in ("788921000000108", "936221000000104", "1239441000000103", "818241000000105",
                 "877011000000107", "836131000000104", "894581000000106"):
        assert code in text
    assert all(f.severity == "warning" and f.file == "codelists/codelists.yaml"
               for f in report.of("unverified-code"))


def test_empty_codelists_in_use_are_noted_as_uncodable() -> None:
    report = lint(use_hazard_log=False)
    keys = {f.key for f in report.of("uncodable")}
    assert "codelist falls_risk_assessment" in keys


# -- references -------------------------------------------------------------------------------


def test_unknown_fact_is_an_error_located_at_the_fact(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "collect",
                [rule("TOY-010", {"fact": "toy_agee", "at_least": 65}, {"level": "a"})])
    report = run(rules)
    (f,) = [f for f in only(report, "unknown-fact") if f.key == "rule TOY-010"]
    assert f.severity == "error" and f.file == "rulesets/toy.yaml" and f.line is not None
    assert "toy_agee" in f.message
    # the rulebook does not load, so the decision checks are skipped, and say so
    assert report.of("analysis-skipped")


def test_unknown_fact_in_a_fact_definition(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    edit_yaml(rules / "facts.yaml", lambda d: d["facts"].update(
        {"toy_since": {"kind": "count", "codelist": "mdt_review", "since": "no_such_fact",
                       "description": "x"}}))
    f = only(run(rules), "unknown-fact")[0]
    assert f.file == "rulesets/facts.yaml" and f.key == "facts.toy_since"


def test_unknown_codelist(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    edit_yaml(rules / "facts.yaml", lambda d: d["facts"]["toy_care_home"].update(
        {"codelist": "care_home_residnet"}))
    f = only(run(rules), "unknown-codelist")[0]
    assert f.key == "facts.toy_care_home" and "care_home_residnet" in f.message


def test_unknown_parameter(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "collect",
                [rule("TOY-010", {"fact": "toy_age", "at_least": {"param": "min_agee"}},
                      {"level": "a"})],
                parameters={"min_age": {"value": 65, "provenance": "assumption",
                                        "why": "a toy parameter"}})
    report = run(rules)
    f = only(report, "unknown-parameter")[0]
    assert f.key == "rule TOY-010" and "min_agee" in f.message and "min_age" in f.message
    # and the declared one nobody reads is unused
    assert any(u.key == "parameters.min_age" for u in report.of("unused-parameter"))


def test_unused_fact_parameter_and_output(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "collect",
                [rule("TOY-010", {"fact": "toy_age", "at_least": 65}, {"level": "a"})],
                parameters={"spare": {"value": 3, "provenance": "local-policy",
                                      "why": "nobody reads this one"}},
                outputs={"level": {"type": "category", "values": ["a"], "description": "x"},
                         "extra": {"type": "bool", "description": "never set"}})
    report = run(rules)
    assert not report.errors, report.text()
    unused_facts = {f.key for f in report.of("unused-fact")}
    assert "facts.toy_care_home" in unused_facts  # added, read by no rule
    assert "facts.toy_age" not in unused_facts  # read by TOY-010
    assert any(f.key == "parameters.spare" for f in report.of("unused-parameter"))
    assert any(f.key == "outputs.extra" for f in report.of("unused-output"))


def test_fact_read_only_through_a_derived_fact_is_used(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "collect",
                [rule("TOY-010", {"fact": "toy_old", "equals": True}, {"level": "a"})])
    unused = {f.key for f in run(rules).of("unused-fact")}
    assert "facts.toy_old" not in unused and "facts.toy_age" not in unused


def test_named_conditions_count_as_use_and_unused_ones_are_warned(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    path = add_ruleset(rules, "toy", "collect", [
        rule("TOY-010", {"condition": "frail"}, {"level": "a"})])
    edit_yaml(path, lambda d: d.update({"conditions": {
        "frail": {"fact": "toy_frailty", "equals": {"param": "worst"}},
        "spare": {"fact": "toy_care_home", "equals": True},
    }, "parameters": {"worst": {"value": "severe", "provenance": "assumption",
                                "why": "a toy threshold"}}}))
    report = run(rules)
    assert not report.errors, report.text()
    unused = {f.key for f in report.of("unused-fact")}
    assert "facts.toy_frailty" not in unused  # read through the named condition
    assert not any(f.key == "parameters.worst" for f in report.of("unused-parameter"))
    (f,) = report.of("unused-condition")
    assert f.key == "conditions.spare" and f.severity == "warning"
    # a fact misspelt inside a named condition is reported where it is written
    edit_yaml(path, lambda d: d["conditions"]["frail"].update({"fact": "toy_frailtee"}))
    (u,) = [f for f in run(rules).of("unknown-fact") if f.key == "condition frail"]
    assert u.file == "rulesets/toy.yaml" and u.line is not None


def test_unused_codelist(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    # a code from a list the rules read, so only the new list is unused
    add_codelist(tmp_path, "toy_orphan", read_rows(tmp_path, "frailty_severe")[:1])
    f = [f for f in run(rules).of("unused-codelist") if f.key == "codelist toy_orphan"]
    assert f and f[0].file == "codelists/codelists.yaml" and f[0].line is not None


def test_duplicate_rule_id_across_rulesets(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    existing = bundled().rulesets[0].rules[0].id
    add_ruleset(rules, "toy", "collect",
                [rule(existing, {"fact": "toy_age", "at_least": 65}, {"level": "a"})])
    report = run(rules)
    f = only(report, "duplicate-id")[0]
    assert f.severity == "error" and f.file == "rulesets/toy.yaml" and existing in f.message
    assert report.errors


def test_duplicate_ruleset_id(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    path = add_ruleset(rules, "toy", "collect",
                       [rule("TOY-010", {"fact": "toy_age", "at_least": 65}, {"level": "a"})])
    edit_yaml(path, lambda d: d.update({"ruleset": "identification"}))
    f = only(run(rules), "duplicate-id")[0]
    assert "identification" in f.message and f.key == "ruleset"


def test_rule_without_citation_or_provenance(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    bare = rule("TOY-010", {"fact": "toy_age", "at_least": 65}, {"level": "a"})
    del bare["cite"], bare["provenance"]
    half = rule("TOY-020", {"fact": "toy_age", "at_least": 70}, {"level": "b"})
    half["cite"] = {"source": CITE["source"], "section": "Using This Toolkit", "quote": " "}
    add_ruleset(rules, "toy", "collect", [bare, half])
    report = run(rules)
    assert {f.key for f in only(report, "missing-citation")} == {"rule TOY-010", "rule TOY-020"}
    assert [f.key for f in only(report, "missing-provenance")] == ["rule TOY-010"]
    assert all(f.severity == "error" for f in report.of("missing-citation"))


def test_citation_of_a_file_the_ruleset_does_not_list(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    other = rule("TOY-010", {"fact": "toy_age", "at_least": 65}, {"level": "a"})
    other["cite"] = {**CITE, "source": "999_not_listed.txt"}
    add_ruleset(rules, "toy", "collect", [other])
    f = only(run(rules), "citation-source")[0]
    assert f.severity == "warning" and "999_not_listed.txt" in f.message


def test_guidance_parameter_without_citation_is_a_warning(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "collect",
                [rule("TOY-010", {"fact": "toy_age", "at_least": {"param": "min_age"}},
                      {"level": "a"})],
                parameters={"min_age": {"value": 65, "provenance": "guidance",
                                        "why": "the guidance says so"}})
    f = only(run(rules), "missing-citation")[0]
    assert f.severity == "warning" and f.key == "parameters.min_age"


def test_draft_and_retired_rulesets_are_warnings(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    path = add_ruleset(rules, "toy", "collect",
                       [rule("TOY-010", {"fact": "toy_age", "at_least": 65}, {"level": "a"})])
    report = run(rules)
    assert any(f.key == "ruleset toy" for f in report.of("draft"))
    assert any(f.key == "pathway status" for f in report.of("draft"))
    edit_yaml(path, lambda d: d.update({"status": "retired"}))
    report = run(rules)
    assert any(f.key == "ruleset toy" for f in only(report, "retired"))
    assert all(f.severity == "warning" for f in (*report.of("draft"), *report.of("retired")))
    edit_yaml(path, lambda d: d.update({"status": "approved"}))
    report = run(rules)
    assert not any(f.key == "ruleset toy" for f in (*report.of("draft"), *report.of("retired")))


# -- load problems, the pathway and the codelists --------------------------------------------


def test_yaml_error_is_located_and_other_files_are_still_checked(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "collect",
                [rule("TOY-010", {"fact": "toy_nope", "at_least": 65}, {"level": "a"})])
    broken = rules / "identification.yaml"
    broken.write_text(broken.read_text(encoding="utf-8") + "\n  bad: [unclosed\n",
                      encoding="utf-8")
    report = run(rules)
    load_errors = [f for f in report.of("load") if f.file == "rulesets/identification.yaml"]
    assert load_errors and load_errors[0].line is not None
    assert any(f.key == "rule TOY-010" for f in report.of("unknown-fact"))


def test_schema_error_is_reported_as_a_load_error(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    path = add_ruleset(rules, "toy", "collect",
                       [rule("TOY-010", {"fact": "toy_age", "at_least": 65}, {"level": "a"})])
    edit_yaml(path, lambda d: d.update({"hit_policy": "sometimes"}))
    f = [f for f in run(rules).of("load") if f.file == "rulesets/toy.yaml"]
    assert f and "hit_policy" in (f[0].key or "")


def test_pathway_static_check_failure(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    # drop one transition: some step then has no effect in some state
    edit_yaml(rules / "pathway.yaml", lambda d: d["transitions"].pop(0))
    findings = only(run(rules), "pathway")
    assert all(f.file == "rulesets/pathway.yaml" and f.severity == "error" for f in findings)


def test_pathway_step_with_unknown_codelist(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    edit_yaml(rules / "pathway.yaml",
              lambda d: d["steps"][0].update({"codelists": ["int_no_such_list"]}))
    f = only(run(rules), "unknown-codelist")[0]
    assert f.file == "rulesets/pathway.yaml" and "int_no_such_list" in f.message


def test_codelist_hash_mismatch(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    csv = tmp_path / "codelists" / "mdt_review.csv"
    csv.write_text(csv.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    f = only(run(rules), "codelists")[0]
    assert "mdt_review" in f.message and f.severity == "error"


# -- decisions --------------------------------------------------------------------------------


def _witness_fires(rules_dir: Path, ruleset: str, witness: dict[str, Any]) -> list[str]:
    """Which rules of ``ruleset`` fire on the example's values, by the compiled conditions."""
    book = load(rules_dir)
    values = Abstraction(book).complete_values(witness, list(book.facts))
    return [r.id for r in book.ruleset(ruleset).rules if r.condition.test(values)]


def test_overlap_under_unique_with_an_example_that_fires_both(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "unique", [
        rule("TOY-010", {"fact": "toy_age", "at_least": 65}, {"level": "a"}),
        rule("TOY-020", {"all": [{"fact": "toy_frailty", "equals": "severe"},
                                 {"fact": "toy_age", "at_least": 70}]}, {"level": "b"}),
        rule("TOY-030", {"fact": "toy_age", "less_than": 65}, {"level": "c"}),
    ])
    report = run(rules)
    (f,) = only(report, "overlap")
    assert f.severity == "error" and f.rules == ("TOY-010", "TOY-020")
    assert f.example == {"toy_age": "70", "toy_frailty": "severe"} or (
        f.example is not None and f.example["toy_frailty"] == "severe")
    analysis = analyse_ruleset(load(rules), "toy")
    (found,) = [d for d in analysis.findings if d.check == "overlap"]
    assert found.witness is not None
    assert _witness_fires(rules, "toy", dict(found.witness)) == ["TOY-010", "TOY-020"]


def test_disjoint_unique_rules_do_not_overlap(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "unique", [
        rule("TOY-010", {"fact": "toy_frailty", "equals": "severe"}, {"level": "a"}),
        rule("TOY-020", {"fact": "toy_frailty", "equals": "moderate"}, {"level": "b"}),
        rule("TOY-030", {"fact": "toy_frailty", "present": False}, {"level": "c"}),
    ])
    assert not run(rules).of("overlap")


def test_gap_in_a_complete_decision_with_an_example_no_rule_covers(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "first", [
        rule("TOY-010", {"fact": "toy_frailty", "at_least": "moderate"}, {"level": "a"}),
        rule("TOY-020", {"fact": "toy_frailty", "equals": "mild"}, {"level": "b"}),
    ], complete=True)
    report = run(rules)
    (f,) = only(report, "gap")
    assert f.severity == "error" and f.key == "ruleset toy" and f.file == "rulesets/toy.yaml"
    assert f.example == {"toy_frailty": "not recorded"}
    analysis = analyse_ruleset(load(rules), "toy")
    (found,) = [d for d in analysis.findings if d.check == "gap"]
    assert found.witness is not None
    assert _witness_fires(rules, "toy", dict(found.witness)) == []


def test_complete_decision_without_gaps(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "first", [
        rule("TOY-010", {"fact": "toy_frailty", "at_least": "moderate"}, {"level": "a"}),
        rule("TOY-020", {"not": {"fact": "toy_frailty", "at_least": "moderate"}}, {"level": "b"}),
    ], complete=True)
    assert not run(rules).of("gap")


def test_gap_over_dates_uses_day_offsets_from_the_thresholds(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "first", [
        rule("TOY-010", {"fact": "toy_last_review", "within_days": 84}, {"level": "a"}),
        rule("TOY-020", {"fact": "toy_last_review", "older_than_days": 90}, {"level": "b"}),
        rule("TOY-030", {"fact": "toy_last_review", "present": False}, {"level": "c"}),
    ], complete=True)
    (f,) = only(run(rules), "gap")
    assert f.example == {"toy_last_review": "85 days before the as-of date"}


def test_rule_subsumed_under_first_with_the_rule_that_wins(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "first", [
        rule("TOY-010", {"fact": "toy_age", "at_least": 65}, {"level": "a"}),
        rule("TOY-020", {"all": [{"fact": "toy_age", "at_least": 75},
                                 {"fact": "toy_care_home", "equals": True}]}, {"level": "b"}),
        rule("TOY-030", {"fact": "toy_care_home", "equals": True}, {"level": "c"}),
    ])
    report = run(rules)
    (f,) = only(report, "subsumed")
    assert f.key == "rule TOY-020" and f.rules == ("TOY-020", "TOY-010")
    assert "TOY-010 fires instead" in f.message
    assert f.example is not None and f.example["toy_care_home"] == "true"
    assert f.line is not None


def test_rule_subsumed_under_priority(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "priority", [
        rule("TOY-010", {"fact": "toy_admissions", "at_least": 1}, {"level": "a"}, priority=1),
        rule("TOY-020", {"fact": "toy_admissions", "at_least": 3}, {"level": "b"}, priority=5),
        rule("TOY-030", {"fact": "toy_admissions", "at_least": 2}, {"level": "c"}, priority=0),
    ])
    report = run(rules)
    (f,) = only(report, "subsumed")
    assert f.key == "rule TOY-030"
    # the higher-priority rule TOY-020 still fires for 3+, and TOY-010 for 1-2
    assert not report.of("never-fires")


def test_equal_priorities_that_overlap_are_a_warning(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "priority", [
        rule("TOY-010", {"fact": "toy_admissions", "at_least": 1}, {"level": "a"}, priority=1),
        rule("TOY-020", {"fact": "toy_care_home", "equals": True}, {"level": "b"}, priority=1),
    ])
    (f,) = only(run(rules), "priority-tie")
    assert f.severity == "warning" and f.rules == ("TOY-010", "TOY-020")


def test_rule_that_can_never_fire_is_reported(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "collect", [
        rule("TOY-010", {"all": [{"fact": "toy_age", "at_least": 70},
                                 {"fact": "toy_age", "less_than": 60}]}, {"level": "a"}),
        rule("TOY-020", {"all": [{"fact": "toy_old", "equals": True},
                                 {"fact": "toy_age", "less_than": 80}]}, {"level": "b"}),
        rule("TOY-030", {"fact": "toy_age", "at_least": 65}, {"level": "c"}),
    ])
    found = only(run(rules), "never-fires")
    # TOY-020 can never fire through the derived fact toy_old (age >= 80)
    assert sorted(f.key for f in found) == ["rule TOY-010", "rule TOY-020"]
    assert all(f.severity == "error" and f.example is None for f in found)


def test_search_bound_is_reported_not_hidden(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "unique", [
        rule("TOY-010", {"fact": "toy_age", "at_least": 65}, {"level": "a"}),
        rule("TOY-020", {"all": [{"fact": "toy_frailty", "equals": "severe"},
                                 {"fact": "toy_care_home", "equals": True}]}, {"level": "b"}),
    ])
    report = run(rules, max_nodes=2)
    assert report.of("not-settled")
    assert not all(a.exhaustive for a in report.analyses)
    assert "not exhaustive" in report.text()


# -- output and the command line --------------------------------------------------------------


def test_every_check_is_documented() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "review.md").read_text("utf-8")
    missing = [c for c in CHECKS if f"`{c}`" not in text]
    assert not missing, f"docs/review.md does not describe: {missing}"


def test_cli_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = copy_rulebook(tmp_path)
    assert main(["lint", str(rules), "--no-hazards"]) == 0
    capsys.readouterr()
    add_ruleset(rules, "toy", "unique", [
        rule("TOY-010", {"fact": "toy_age", "at_least": 65}, {"level": "a"}),
        rule("TOY-020", {"fact": "toy_age", "at_least": 70}, {"level": "b"}),
    ])
    assert main(["lint", str(rules), "--no-hazards", "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    overlaps = [f for f in data["findings"] if f["check"] == "overlap"]
    assert overlaps[0]["rules"] == ["TOY-010", "TOY-020"]
    assert overlaps[0]["example"] == {"toy_age": "70"}
    assert overlaps[0]["file"] == "rulesets/toy.yaml"
    assert data["summary"]["error"] >= 1


def test_cli_text_names_file_line_and_check(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "unique", [
        rule("TOY-010", {"fact": "toy_age", "at_least": 65}, {"level": "a"}),
        rule("TOY-020", {"fact": "toy_age", "at_least": 70}, {"level": "b"}),
    ])
    assert main(["lint", str(rules / "toy.yaml"), "--no-hazards"]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "[overlap]" in x)
    assert line.startswith("rulesets/toy.yaml:") and "rule TOY-020" in line
    assert "example input: toy_age = 70" in out
    # only findings about toy.yaml (and the rulebook as a whole) are shown for one file
    assert "rulesets/identification.yaml" not in out


def test_cli_missing_path_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(tmp_path / "nowhere")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["lint", str(tmp_path)]) == 2
    assert "rulebook.yaml" in capsys.readouterr().err
