"""``int-rules diff``: what a reviewer must see changed between two rulebooks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from int_rules.cli import main
from int_rules.review.diff import diff_rulebooks, diff_specs, only_rewrites, render_markdown
from int_rules.rulebook import load
from tests.review_support import (
    add_ruleset,
    copy_rulebook,
    edit_yaml,
    read_rows,
    rule,
    set_codelist_rows,
)


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    """Two identical copies (with one toy ruleset): OLD and NEW."""
    old = copy_rulebook(tmp_path / "old")
    add_ruleset(old, "toy", "first", [
        rule("TOY-010", {"fact": "toy_age", "at_least": {"param": "min_age"}}, {"level": "a"}),
        rule("TOY-020", {"fact": "toy_care_home", "equals": True}, {"level": "b"}),
        rule("TOY-030", {"fact": "toy_frailty", "equals": "severe"}, {"level": "c"}),
    ], parameters={"min_age": {"value": 65, "provenance": "assumption",
                               "why": "a toy threshold"}})
    shutil.copytree(tmp_path / "old", tmp_path / "new")
    return old, tmp_path / "new" / "rulesets"


def test_identical_rulebooks_have_no_changes(two: tuple[Path, Path]) -> None:
    old, new = two
    d = diff_rulebooks(load(old), load(new))
    assert d.empty
    assert "No rule, parameter, fact, pathway or codelist changed." in render_markdown(d)


def test_rule_changes_are_listed(two: tuple[Path, Path]) -> None:
    old, new = two

    def change(doc: dict) -> None:  # type: ignore[type-arg]
        rules = doc["rules"]
        rules[1]["when"] = {"fact": "toy_care_home", "equals": False}  # condition
        rules[1]["then"] = {"level": "d"}  # outcome
        rules[1]["provenance"] = "assumption"
        rules[1]["cite"]["quote"] = "housebound"
        del rules[2]  # removed
        rules.append(rule("TOY-040", {"fact": "toy_admissions", "at_least": 2},
                          {"level": "d"}))  # added
        doc["version"] = "0.2.0"

    edit_yaml(new / "toy.yaml", change)
    d = diff_rulebooks(load(old), load(new), "v1", "v2")
    rules = {c.item: c for c in d.of("ruleset toy: rules")}
    assert rules["TOY-040"].kind == "added" and rules["TOY-030"].kind == "removed"
    changed = {name: (a, b) for name, a, b in rules["TOY-020"].fields}
    assert changed["condition"] == ("toy_care_home is true", "toy_care_home is false")
    assert changed["outcome"] == ("level = b", "level = d")
    assert changed["provenance"] == ("guidance", "assumption")
    assert "people living with frailty" in changed["citation"][0]
    assert "housebound" in changed["citation"][1]
    assert "TOY-010" not in rules  # unchanged
    text = render_markdown(d)
    assert "# Rulebook changes: `v1` → `v2`" in text
    assert "- rules: 1 added, 1 removed, 1 changed" in text
    assert "### Changed: `TOY-020`" in text
    assert "| condition | toy_care_home is ~~true~~ | toy_care_home is **false** |" in text


def test_parameter_change_shows_in_the_parameter_and_the_conditions_it_moves(
        two: tuple[Path, Path]) -> None:
    old, new = two
    edit_yaml(new / "toy.yaml", lambda d: d["parameters"]["min_age"].update(
        {"value": 70, "provenance": "local-policy"}))
    d = diff_rulebooks(load(old), load(new))
    (p,) = d.of("ruleset toy: parameters")
    assert dict((n, (a, b)) for n, a, b in p.fields) == {
        "value": ("65", "70"), "provenance": ("assumption", "local-policy")}
    (r,) = d.of("ruleset toy: rules")
    assert r.item == "TOY-010"
    assert ("condition", "toy_age is at least 65 (parameter min_age)",
            "toy_age is at least 70 (parameter min_age)") in r.fields


def test_rule_order_change_under_first_is_shown(two: tuple[Path, Path]) -> None:
    old, new = two
    edit_yaml(new / "toy.yaml", lambda d: d["rules"].reverse())
    (c,) = d_of(old, new, "rulesets")
    names = {n: (a, b) for n, a, b in c.fields}
    assert names["rule order (it decides the outcome)"] == (
        "TOY-010, TOY-020, TOY-030", "TOY-030, TOY-020, TOY-010")


def d_of(old: Path, new: Path, section: str) -> tuple[object, ...]:
    return diff_rulebooks(load(old), load(new)).of(section)  # type: ignore[return-value]


def test_codelist_membership_changes_are_listed_with_terms(two: tuple[Path, Path]) -> None:
    old, new = two
    new_root = new.parent
    rows = read_rows(new_root, "frailty_severe")
    extra = read_rows(new_root, "frailty_moderate")[0]
    set_codelist_rows(new_root, "frailty_severe", [*rows[1:], extra])
    set_codelist_rows(new_root, "frailty_moderate", read_rows(new_root, "frailty_moderate")[1:])
    d = diff_rulebooks(load(old), load(new))
    lists = {c.item: c for c in d.of("codelists")}
    severe = lists["frailty_severe"].fields
    assert ("code added", "", f"{extra[0]} {extra[1]}") in severe
    assert ("code removed", f"{rows[0][0]} {rows[0][1]}", "") in severe
    assert ("code removed", f"{extra[0]} {extra[1]}", "") in lists["frailty_moderate"].fields
    text = render_markdown(d)
    assert "2 codes removed" in text and "1 codes added" in text
    assert f"| code added | — | {extra[0]} {extra[1]} |" in text


def test_fact_and_pathway_changes(two: tuple[Path, Path]) -> None:
    old, new = two
    edit_yaml(new / "facts.yaml",
              lambda d: d["facts"]["toy_admissions"].update({"within_days": 365}))
    edit_yaml(new / "pathway.yaml", lambda d: d.update({"version": "9.9.9"}))
    d = diff_rulebooks(load(old), load(new))
    (f,) = d.of("facts")
    assert f.item == "toy_admissions" and f.kind == "changed"
    assert any("in the last 365 days" in b for _, _, b in f.fields)
    assert any(("version", a, "9.9.9") == (n, a, b) for c in d.of("pathway")
               for n, a, b in c.fields)


def test_cli_writes_markdown_and_exit_code(two: tuple[Path, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    old, new = two
    assert main(["diff", str(old), str(new), "--exit-code"]) == 0
    capsys.readouterr()
    edit_yaml(new / "toy.yaml", lambda d: d["rules"].pop())
    out = tmp_path / "change.md"
    assert main(["diff", str(old), str(new), "--out", str(out), "--exit-code"]) == 1
    assert "### Removed: `TOY-030`" in out.read_text(encoding="utf-8")


def test_git_revisions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    rules = copy_rulebook(repo)
    add_ruleset(rules, "toy", "collect", [
        rule("TOY-010", {"fact": "toy_age", "at_least": 65}, {"level": "a"})])

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "add", "rulesets", "codelists")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    edit_yaml(rules / "toy.yaml", lambda d: d["rules"][0]["when"].update({"at_least": 75}))
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "two")
    d = diff_specs("HEAD~1", "HEAD", repo)
    (c,) = d.of("ruleset toy: rules")
    assert ("condition", "toy_age is at least 65", "toy_age is at least 75") in c.fields
    # a revision against the working folder works too
    assert main(["diff", "HEAD", str(rules), "--repo", str(repo)]) == 0
    assert "No rule, parameter, fact, pathway or codelist changed." in capsys.readouterr().out
    assert main(["diff", "no-such-rev", "HEAD", "--repo", str(repo)]) == 2
    assert "neither a rulebook directory nor a git revision" in capsys.readouterr().err


def test_a_rewrite_with_the_same_meaning_is_reported_as_a_rewrite(two: tuple[Path, Path]
                                                                   ) -> None:
    old, new = two
    cond = {"all": [{"fact": "toy_age", "at_least": 70}, {"fact": "toy_care_home", "equals": True},
                    {"fact": "toy_frailty", "in": ["severe", "moderate"]}]}
    add_ruleset(old, "para", "collect", [rule("PAR-010", cond, {"level": "a"})])
    regrouped = {"all": [{"all": [{"fact": "toy_frailty", "in": ["moderate", "severe"]},
                                  {"fact": "toy_care_home", "equals": True}]},
                         {"fact": "toy_age", "at_least": 70}]}
    add_ruleset(new, "para", "collect", [rule("PAR-010", regrouped, {"level": "a"})])
    d = diff_rulebooks(load(old), load(new))
    (c,) = d.of("ruleset para: rules")
    assert c.kind == "rewritten"
    text = render_markdown(d)
    assert "0 changed, 1 rewritten (same meaning)" in text
    assert "### Rewritten (same meaning): `PAR-010`" in text
    summary = text[text.index("## Reviewer's summary"):text.index("## Counts")]
    assert "`PAR-010`" in summary.split("### Rewrites (same meaning)")[1]
    # the ruleset was added on both sides identically but for the rewrite: only a rewrite
    assert only_rewrites(d) and "**Only rewrites: every condition means what it meant" in text


def test_a_real_change_is_a_change_with_the_words_marked(two: tuple[Path, Path]) -> None:
    old, new = two
    edit_yaml(new / "toy.yaml", lambda d: d["rules"][0].update(
        {"when": {"all": [{"fact": "toy_age", "at_least": {"param": "min_age"}},
                          {"fact": "toy_care_home", "equals": True}]}}))
    edit_yaml(old / "toy.yaml", lambda d: d["rules"][0].update(
        {"when": {"all": [{"fact": "toy_age", "at_least": {"param": "min_age"}},
                          {"fact": "toy_care_home", "equals": False}]}}))
    d = diff_rulebooks(load(old), load(new))
    (c,) = [x for x in d.of("ruleset toy: rules") if x.item == "TOY-010"]
    assert c.kind == "changed"
    text = render_markdown(d)
    (row,) = [line for line in text.splitlines() if line.startswith("| condition |")
              and "toy_care_home" in line and "~~" in line]
    assert "~~false~~" in row and "**true**" in row and "toy_age" in row


def test_the_reviewers_summary_comes_first(two: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = two
    edit_yaml(new / "toy.yaml", lambda d: d["parameters"]["min_age"].update(
        {"value": 70, "provenance": "local-policy"}))
    rows = read_rows(tmp_path / "new", "care_home_resident")
    set_codelist_rows(tmp_path / "new", "care_home_resident", rows[1:])
    assert main(["approve", "toy", "--by", "Dr A Example", "--role", "CSO", "--date",
                 "2026-12-01", "--rules", str(new)]) == 0
    text = render_markdown(diff_rulebooks(load(old), load(new)))
    summary = text[text.index("## Reviewer's summary"):text.index("## Counts")]
    assert text.index("## Reviewer's summary") < text.index("## Ruleset toy")
    assert "| `toy.min_age` | changed | ~~65~~ → **70** | ~~assumption~~ → **local-policy** |" \
        in summary
    assert f"- `care_home_resident`: **removed** {rows[0][0]} {rows[0][1]}" in summary
    assert "| `toy` | status | draft | approved |" in summary
    assert "| `toy` | approved by | — | Dr A Example (CSO), 2026-12-01 |" in summary
