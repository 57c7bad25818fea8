"""``int-rules docs``: the ruleset reference a clinician reads, and its staleness check."""

from __future__ import annotations

from pathlib import Path

import pytest

from int_rules.cli import main
from int_rules.review.docs import HIT_POLICY_WORDS, check_reference, render_reference
from int_rules.review.lint import hazard_log_for
from int_rules.rulebook import load
from tests.review_support import REPO, add_ruleset, bundled, copy_rulebook, edit_yaml, rule

REFERENCE = REPO / "docs" / "reference"


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    book = bundled()
    return render_reference(book, hazard_log_for(book))


def test_committed_reference_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["docs", "--check"])
    assert code == 0, capsys.readouterr().err


def test_every_ruleset_has_a_page_and_the_index_links_it(pages: dict[str, str]) -> None:
    book = bundled()
    for rs in book.rulesets:
        assert f"{rs.id}.md" in pages
        assert f"[{rs.id}]({rs.id}.md)" in pages["index.md"]
    assert book.sha256 in pages["index.md"]
    for page in ("facts.md", "pathway.md", "codelists.md", "hazards.md"):
        assert page in pages and f"({page})" in pages["index.md"]


def _block(page: str, rule_id: str) -> str:
    """The block of one rule: from its heading to the next heading."""
    start = page.index(f'### <a id="{rule_id.lower()}"></a>{rule_id}:')
    rest = page[start + 4:]
    ends = [i for i in (rest.find("\n### "), rest.find("\n## ")) if i >= 0]
    return page[start:start + 4 + min(ends)] if ends else page[start:]


def test_every_rule_is_a_block_with_plain_english_provenance_quote_and_hazards(
        pages: dict[str, str]) -> None:
    from int_rules.language.plain import describe_leaf
    from int_rules.language.schema import Leaf

    book = bundled()
    for rs in book.rulesets:
        page = pages[f"{rs.id}.md"]
        assert HIT_POLICY_WORDS[rs.definition.hit_policy] in page
        assert "| <a id=" not in page  # no wide table rows
        for written in rs.definition.rules:
            block = _block(page, written.id)
            lines = block.splitlines()
            # one test per line, as written (named conditions by name)
            for leaf in _leaves(written.when):
                assert isinstance(leaf, Leaf)
                assert any(x.strip().removeprefix("- ") == describe_leaf(leaf, rs.params)
                           for x in lines), (written.id, describe_leaf(leaf, rs.params))
            assert f"- **Provenance**: **{written.provenance}** (the rule)" in block
            assert " ".join(written.cite.quote.split()) in block
            for h in written.hazards:
                assert f"[{h}](hazards.md#{h.lower()})" in block
        for name, p in rs.definition.parameters.items():
            line = next(x for x in page.splitlines() if x.startswith(f"| `{name}` |"))
            assert p.provenance in line and " ".join(p.why.split())[:40] in line


def _leaves(cond: object) -> list[object]:
    from int_rules.language.schema import AllOf, AnyOf, ConditionRef, Not

    if isinstance(cond, AllOf):
        return [x for c in cond.all for x in _leaves(c)]
    if isinstance(cond, AnyOf):
        return [x for c in cond.any for x in _leaves(c)]
    if isinstance(cond, Not):
        return _leaves(cond.not_)
    if isinstance(cond, ConditionRef):
        return []
    return [cond]


def test_named_conditions_are_defined_once_and_referred_to_by_name(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    path = add_ruleset(rules, "toy", "collect", [
        rule("TOY-010", {"all": [{"condition": "old"}, {"fact": "toy_care_home",
                                                        "equals": True}]}, {"level": "a"},
             provenance="guidance"),
        rule("TOY-020", {"condition": "old"}, {"level": "b"})],
        parameters={"old_age": {"value": 80, "provenance": "assumption", "why": "toy"}})
    edit_yaml(path, lambda d: d.update(
        {"conditions": {"old": {"fact": "toy_age", "at_least": {"param": "old_age"}}}}))
    page = render_reference(load(rules))["toy.md"]
    assert page.count("toy_age is at least 80") == 1  # defined once
    assert '### <a id="condition-old"></a>condition `old`' in page
    assert "Used by: [TOY-010](#toy-010), [TOY-020](#toy-020)." in page
    block = _block(page, "TOY-010")
    assert "  - the condition [**old**](#condition-old)" in block
    assert "  - toy_care_home is true" in block
    # the rule's own provenance beside its parameter's, and the weakest of them
    assert ("**guidance** (the rule); parameters: `old_age` = 80 (assumption); "
            "**weakest: assumption**") in block


def test_each_ruleset_has_a_printable_pack_with_a_sign_off_box(pages: dict[str, str]) -> None:
    book = bundled()
    for rs in book.rulesets:
        pack = pages[f"{rs.id}.pack.html"]
        assert f"[{rs.id}.pack.html]({rs.id}.pack.html)" in pages[f"{rs.id}.md"]
        assert "@media print" in pack and "break-inside: avoid" in pack
        assert book.approvals.hashes[rs.id] in pack.split("<h2>Sign-off</h2>")[1]
        for r in rs.definition.rules:
            assert f'<section class="rule" id="{r.id.lower()}">' in pack
        for name in rs.definition.conditions:
            assert f'id="condition-{name}"' in pack
        assert "<th>signature</th>" in pack


def test_unverified_codes_are_marked_prominently(pages: dict[str, str]) -> None:
    book = bundled()
    page = pages["codelists.md"]
    unverified = [e for cl in book.codelists.values() for e in cl.unverified_codes]
    assert len(unverified) >= 7
    head, _, rest = page.partition("## Empty codelists")
    assert "## ⚠ Unverified codes" in head
    for e in unverified:
        assert f"| `{e.code}` | {e.term} |" in head  # listed before anything else
        assert f"| `{e.code}` | {e.term} | ⚠ **UNVERIFIED** |" in rest  # and in its list
    # a rule that recommends an unverified code says so where the outcome is shown
    recommends = [(rs.id, r.id) for rs in book.rulesets for r in rs.rules
                  for k, v in r.definition.then.items()
                  if rs.definition.outputs[k].type == "code"
                  and any(str(v) == e.code for e in unverified)]
    assert recommends
    for rs_id, rule_id in recommends:
        assert "⚠ **UNVERIFIED**" in _block(pages[f"{rs_id}.md"], rule_id)


def test_facts_page_says_how_each_fact_is_worked_out_and_who_reads_it(
        pages: dict[str, str]) -> None:
    book = bundled()
    page = pages["facts.md"]
    for name in book.facts_file.facts:
        assert f'<a id="{name}"></a>`{name}`' in page
    # a windowed count names its window and parameter; a fact a rule reads links the rule
    some_rule = book.rulesets[0].rules[0]
    fact = some_rule.condition.facts[0]
    line = next(x for x in page.splitlines() if f'<a id="{fact}"></a>' in x)
    assert f"[{some_rule.id}]" in line


def test_pathway_page_is_the_pathway_renderer_output(pages: dict[str, str]) -> None:
    assert "```mermaid" in pages["pathway.md"]
    assert "stateDiagram-v2" in pages["pathway.md"]


def test_output_is_deterministic(pages: dict[str, str]) -> None:
    book = bundled()
    assert render_reference(book, hazard_log_for(book)) == pages


def test_check_fails_when_a_rule_changes(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "first", [
        rule("TOY-010", {"fact": "toy_age", "at_least": 65}, {"level": "a"}),
    ])
    out = tmp_path / "reference"
    assert main(["docs", "--rules", str(rules), "--out", str(out)]) == 0
    assert main(["docs", "--rules", str(rules), "--out", str(out), "--check"]) == 0
    capsys.readouterr()
    page = (out / "toy.md").read_text(encoding="utf-8")
    assert "toy_age is at least 65" in page
    edit_yaml(rules / "toy.yaml", lambda d: d["rules"][0]["when"].update({"at_least": 70}))
    assert main(["docs", "--rules", str(rules), "--out", str(out), "--check"]) == 1
    err = capsys.readouterr().err
    assert "toy.md: out of date" in err and "int-rules docs --out" in err
    assert main(["docs", "--rules", str(rules), "--out", str(out)]) == 0
    assert "toy_age is at least 70" in (out / "toy.md").read_text(encoding="utf-8")


def test_removed_ruleset_page_is_removed_but_other_files_are_kept(tmp_path: Path) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "collect", [
        rule("TOY-010", {"fact": "toy_age", "at_least": 65}, {"level": "a"}),
    ])
    out = tmp_path / "reference"
    assert main(["docs", "--rules", str(rules), "--out", str(out)]) == 0
    (out / "notes.md").write_text("my own notes\n", encoding="utf-8")
    edit_yaml(rules / "rulebook.yaml", lambda m: m["rulesets"].remove("toy.yaml"))
    book = load(rules)
    drift = check_reference(render_reference(book), out)
    assert drift.extra == ("toy.md", "toy.pack.html")
    assert main(["docs", "--rules", str(rules), "--out", str(out)]) == 0
    assert not (out / "toy.md").exists() and (out / "notes.md").exists()
    assert not (out / "toy.pack.html").exists()


def test_bad_rulebook_is_a_clear_error(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    rules = copy_rulebook(tmp_path)
    add_ruleset(rules, "toy", "collect", [
        rule("TOY-010", {"fact": "toy_nope", "at_least": 65}, {"level": "a"}),
    ])
    assert main(["docs", "--rules", str(rules), "--out", str(tmp_path / "ref")]) == 2
    err = capsys.readouterr().err
    assert "rulesets/toy.yaml:" in err and "toy_nope" in err
