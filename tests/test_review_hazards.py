"""The hazard log: it covers every hazard the rules name, and each control's rules and tests
exist. Each check is shown failing on a deliberately broken copy of the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from int_rules.review.hazards import (
    HazardRef,
    check_hazard_log,
    load_hazard_log,
    test_exists,
)
from int_rules.review.lint import lint
from int_rules.rulebook import Rulebook
from tests.review_support import HAZARD_LOG, REPO, bundled, copy_rulebook, edit_yaml


def _book() -> Rulebook:
    return bundled()


def _ids_and_refs() -> tuple[set[str], list[HazardRef]]:
    book = _book()
    ids = {r.id for rs in book.rulesets for r in rs.rules}
    d = book.pathway.definition
    ids |= {t.id for t in d.transitions} | {s.id for s in d.same_day} | {f.id for f in d.findings}
    refs = [HazardRef(h, r.id, None) for rs in book.rulesets for r in rs.rules
            for h in r.definition.hazards]
    refs += [HazardRef(h, t.id, None) for t in d.transitions for h in t.hazards]
    return ids, refs


def check(tmp_path: Path, change: Any = None) -> list[Any]:
    path = tmp_path / "hazard-log.yaml"
    path.write_text(HAZARD_LOG.read_text(encoding="utf-8"), encoding="utf-8")
    if change is not None:
        edit_yaml(path, change)
    loaded, problems = load_hazard_log(path, "hazard-log.yaml")
    if loaded is None:
        return problems
    ids, refs = _ids_and_refs()
    return check_hazard_log(loaded, ids, refs, REPO, _book().id)


def checks(findings: list[Any]) -> set[str]:
    return {f.check for f in findings if f.severity == "error"}


def test_committed_hazard_log_passes_every_check() -> None:
    report = lint(book=_book())
    hazard_findings = [f for f in report.findings if f.check.startswith("hazard")]
    assert not [f for f in hazard_findings if f.severity == "error"], \
        "\n".join(f.text() for f in hazard_findings)
    assert report.hazard_log == "docs/safety/hazard-log.yaml"


def test_every_hazard_has_a_control() -> None:
    loaded, problems = load_hazard_log(HAZARD_LOG)
    assert loaded is not None and not problems
    for h in loaded.log.hazards:
        assert h.controls, h.id
        assert all(c.rules or c.tests for c in h.controls), h.id


def test_every_hazard_a_rule_names_is_in_the_log() -> None:
    loaded, _ = load_hazard_log(HAZARD_LOG)
    assert loaded is not None
    logged = {h.id for h in loaded.log.hazards}
    _, refs = _ids_and_refs()
    assert {r.hazard for r in refs} <= logged


def test_hazard_without_a_control(tmp_path: Path) -> None:
    found = check(tmp_path, lambda d: d["hazards"][0].update({"controls": []}))
    (f,) = [f for f in found if f.check == "hazard-no-control"]
    assert f.key == "HAZ-001" and f.file == "hazard-log.yaml" and f.line is not None


def test_control_naming_a_rule_that_does_not_exist(tmp_path: Path) -> None:
    found = check(tmp_path, lambda d: d["hazards"][0]["controls"][0]["rules"].append("IDN-999"))
    (f,) = [f for f in found if f.check == "hazard-unknown-rule"]
    assert "IDN-999" in f.message and f.line is not None


@pytest.mark.parametrize("test_id, why", [
    ("tests/test_nowhere.py::test_x", "does not exist"),
    ("tests/test_review_hazards.py::test_no_such_test", "defines no test"),
])
def test_control_naming_a_test_that_does_not_exist(tmp_path: Path, test_id: str,
                                                   why: str) -> None:
    found = check(tmp_path, lambda d: d["hazards"][1]["controls"][0]["tests"].append(test_id))
    (f,) = [f for f in found if f.check == "hazard-unknown-test"]
    assert f.key == "HAZ-002" and why in f.message


def test_rule_naming_a_hazard_not_in_the_log(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path, hazards=True, all_rulesets=True)
    name = _book().manifest.rulesets[0]
    edit_yaml(rules / name, lambda d: d["rules"][0].update({"hazards": ["HAZ-099"]}))
    report = lint(rules, project_root=REPO)
    (f,) = report.of("hazard-unknown")
    assert f.severity == "error" and f.file == f"rulesets/{name}" and "HAZ-099" in f.message
    # removing a hazard from the log that rules name is caught the same way
    edit_yaml(tmp_path / "docs" / "safety" / "hazard-log.yaml",
              lambda d: d.update({"hazards": [h for h in d["hazards"] if h["id"] != "HAZ-003"]}))
    assert any("HAZ-003" in f.message for f in lint(rules, project_root=REPO).of("hazard-unknown"))


def test_risk_that_does_not_match_the_matrix(tmp_path: Path) -> None:
    found = check(tmp_path, lambda d: d["hazards"][0]["initial"].update({"risk": 5}))
    (f,) = [f for f in found if f.check == "hazard-risk"]
    assert "matrix gives 3" in f.message


def test_unknown_severity_name(tmp_path: Path) -> None:
    found = check(tmp_path, lambda d: d["hazards"][0]["residual"].update({"severity": "huge"}))
    assert any(f.check == "hazard-risk" and "huge" in f.message for f in found)


def test_duplicate_hazard_id(tmp_path: Path) -> None:
    found = check(tmp_path, lambda d: d["hazards"].append(dict(d["hazards"][0])))
    assert "hazard-duplicate" in checks(found)


def test_schema_problem_is_located(tmp_path: Path) -> None:
    found = check(tmp_path, lambda d: d["hazards"][0].pop("harm"))
    (f,) = found
    assert f.check == "hazard-log" and f.key == "hazards.0.harm" and f.line is not None


def test_control_without_tests_and_residual_above_initial_are_warnings(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["hazards"][0]["controls"][0]["tests"] = []
        d["hazards"][0]["residual"] = {"severity": "major", "likelihood": "high", "risk": 4}

    found = check(tmp_path, change)
    warned = {f.check for f in found if f.severity == "warning"}
    assert {"hazard-untested-control", "hazard-residual"} <= warned
    assert not checks(found)


def test_test_ids_with_classes_and_parameters(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "class TestA:\n    def test_b(self):\n        pass\n\ndef test_c():\n    pass\n",
        encoding="utf-8")
    assert test_exists("tests/test_x.py::TestA::test_b", tmp_path) is None
    assert test_exists("tests/test_x.py::test_c[case-1]", tmp_path) is None
    assert test_exists("tests/test_x.py::test_b", tmp_path) is not None


def test_the_log_is_yaml_a_reviewer_can_read() -> None:
    doc = yaml.safe_load(HAZARD_LOG.read_text(encoding="utf-8"))
    for h in doc["hazards"]:
        for key in ("id", "title", "description", "cause", "effect", "harm", "initial",
                    "controls", "residual", "status"):
            assert key in h, (h.get("id"), key)
