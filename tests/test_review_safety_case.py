"""``int-rules safety-case``: the generated DCB0129 summary, and its staleness check."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from int_rules.cli import main
from int_rules.review.hazards import LoadedHazardLog
from int_rules.review.lint import LintReport, hazard_log_for, lint
from int_rules.review.safety_case import junit_results, render_safety_case
from int_rules.rulebook import Rulebook
from tests.review_support import REPO, add_ruleset, bundled, copy_rulebook, edit_yaml, rule


@pytest.fixture(scope="module")
def inputs() -> tuple[Rulebook, LoadedHazardLog | None, LintReport]:
    book = bundled()
    return book, hazard_log_for(book), lint(book=book)


@pytest.fixture(scope="module")
def text(inputs: tuple[Rulebook, LoadedHazardLog | None, LintReport]) -> str:
    return render_safety_case(*inputs)


def test_committed_safety_case_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["safety-case", "--check"])
    assert code == 0, capsys.readouterr().err


def test_safety_case_names_every_component_version_status_and_hash(text: str) -> None:
    book = bundled()
    assert book.sha256 in text
    for rs, name in zip(book.rulesets, book.manifest.rulesets, strict=True):
        sha = hashlib.sha256((book.directory / name).read_bytes()).hexdigest()
        row = next(x for x in text.splitlines() if f"| `{rs.id}` |" in x)
        assert rs.definition.version in row and rs.definition.status in row and sha in row
    assert book.codelists.sha256 in text


def test_safety_case_counts_rules_by_provenance(text: str) -> None:
    book = bundled()
    for rs in book.rulesets:
        counts = [sum(r.definition.provenance == p for r in rs.rules)
                  for p in ("guidance", "local-policy", "assumption")]
        row = next(x for x in text.splitlines() if x.startswith(f"| {rs.id} |"))
        assert row.startswith(f"| {rs.id} | {counts[0]} | {counts[1]} | {counts[2]} |")


def test_safety_case_lists_unverified_codes(text: str) -> None:
    book = bundled()
    unverified = [e for cl in book.codelists.values() for e in cl.unverified_codes]
    assert f"**{len(unverified)} unverified code(s)**" in text
    for e in unverified:
        assert f"| `{e.code}` | {e.term} |" in text


def test_safety_case_shows_each_hazard_with_controls_rules_and_tests(text: str) -> None:
    log = hazard_log_for(bundled())
    assert log is not None
    for h in log.log.hazards:
        assert f'### <a id="{h.id.lower()}"></a>{h.id}: {h.title}' in text
        for c in h.controls:
            for t in c.tests:
                assert f"`{t}`" in text
    assert "`int-rules lint`: **0 errors**" in text


def test_junit_results_mark_each_control_test(
        tmp_path: Path, inputs: tuple[Rulebook, LoadedHazardLog | None, LintReport]) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_review_lint" name="test_unverified_codes_are_warned"/>'
        '<testcase classname="tests.test_codelists" '
        'name="test_guidance_only_pathway_codes_are_unverified"><failure message="x"/>'
        "</testcase>"
        '<testcase classname="tests.test_scenarios" name="test_scenario[a]"/>'
        '<testcase classname="tests.test_scenarios" name="test_scenario[b]"><skipped/></testcase>'
        "</testsuite></testsuites>", encoding="utf-8")
    results = junit_results(report, REPO)
    assert results == {
        "tests/test_review_lint.py::test_unverified_codes_are_warned": "passed",
        "tests/test_codelists.py::test_guidance_only_pathway_codes_are_unverified": "failed",
        "tests/test_scenarios.py::test_scenario": "passed",
    }
    text = render_safety_case(*inputs, results)
    assert "`tests/test_codelists.py::test_guidance_only_pathway_codes_are_unverified` " \
           "**failed**" in text
    assert "`tests/test_review_lint.py::test_unverified_codes_are_warned` **passed**" in text


def test_check_fails_when_stale_and_bad_junit_is_exit_2(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    rules = copy_rulebook(tmp_path, hazards=True)
    add_ruleset(rules, "toy", "collect", [
        rule("TOY-010", {"fact": "toy_age", "at_least": 65}, {"level": "a"})])
    out = tmp_path / "docs" / "safety" / "safety-case.md"
    assert main(["safety-case", "--rules", str(rules)]) == 0
    assert out.is_file()
    assert main(["safety-case", "--rules", str(rules), "--check"]) == 0
    edit_yaml(rules / "toy.yaml", lambda d: d.update({"status": "approved"}))
    capsys.readouterr()
    assert main(["safety-case", "--rules", str(rules), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    bad = tmp_path / "junit.xml"
    bad.write_text("<not xml", encoding="utf-8")
    assert main(["safety-case", "--rules", str(rules), "--junit", str(bad)]) == 2
    assert "JUnit" in capsys.readouterr().err
