"""Scenario tests as data (rulesets/tests/*.yaml), rule coverage, citations and examples.

Every scenario runs through the reference engine. A rule without a scenario that fires it and
one that does not fails ``test_every_rule_has_scenarios``. Every citation must quote the bundled
guidance (rulesets/guidance/) verbatim under the heading it names.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

import int_rules
from int_rules.conditions import leaves
from int_rules.errors import RulesetError
from int_rules.scenarios import (
    Scenario,
    ScenarioResult,
    coverage_table,
    load_scenarios,
    rule_coverage,
    run_scenario,
    write_examples,
)

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rulesets"
GUIDANCE = RULES / "guidance"
EXAMPLES = ROOT / "docs" / "examples"

BOOK = int_rules.load()
SCENARIOS = load_scenarios(BOOK)
BOOKS: dict[str, int_rules.Rulebook] = {}  # rulebooks loaded with a scenario's overrides
RESULTS: dict[str, ScenarioResult] = {}


def _result(scenario: Scenario) -> ScenarioResult:
    if scenario.id not in RESULTS:
        RESULTS[scenario.id] = run_scenario(BOOK, scenario, book_cache=BOOKS)
    return RESULTS[scenario.id]


def _all_results() -> list[ScenarioResult]:
    return [_result(s) for s in SCENARIOS]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario(scenario: Scenario) -> None:
    result = _result(scenario)
    assert result.passed, result.diff()


def test_every_rule_has_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    coverage = rule_coverage(BOOK, _all_results())
    table = coverage_table(coverage)
    with capsys.disabled():
        print("\nRule coverage by scenarios (rulesets/tests/*.yaml):\n" + table)
    missing = [c.rule_id for c in coverage if not c.covered]
    assert not missing, f"rules lacking a firing or a non-firing scenario: {missing}\n{table}"


def test_rules_waiting_for_a_local_code_are_never_silent() -> None:
    """A domain whose codelist is empty is reported as 'cannot be checked from codes' by a
    rule that fires, never as not recorded (and never silently dropped)."""
    coverage = {c.rule_id: c for c in rule_coverage(BOOK, _all_results())}
    waiting = [c for c in coverage.values() if c.waits_for_codes]
    assert waiting, "expected rules waiting for local codes (empty codelists)"
    for c in waiting:
        assert not c.fired_in
        for cid in c.waits_for_codes:
            assert not BOOK.codelists[cid].codes
        guard = next(leaf.fact for leaf in leaves(BOOK.rule(c.rule_id).definition.when)
                     if BOOK.facts_file.facts[leaf.fact].kind == "codelist_available")
        partners = [
            r.id for r in BOOK.ruleset(c.ruleset).rules
            if r.id != c.rule_id and coverage[r.id].fired_in
            and any(leaf.fact == guard and leaf.op == "equals" and leaf.operand is False
                    for leaf in leaves(r.definition.when))
        ]
        assert partners, f"{c.rule_id}: no rule says {guard} cannot be checked from codes"


def test_scenario_ids_are_unique_and_every_ruleset_has_scenarios() -> None:
    ids = [s.id for s in SCENARIOS]
    assert len(ids) == len(set(ids))
    tested = {BOOK.rule(r).ruleset for s in SCENARIOS for r in s.expect.fired}
    assert tested == {rs.id for rs in BOOK.rulesets}


# -- citations and parameters -----------------------------------------------------------------


def _guidance(name: str) -> str:
    path = GUIDANCE / name
    assert path.is_file(), f"citation names {name}, which is not bundled in rulesets/guidance/"
    return path.read_text(encoding="utf-8")


def _citations() -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for rs in BOOK.rulesets:
        for rule in rs.rules:
            out.append((rule.id, rule.definition.cite))
        for name, param in rs.definition.parameters.items():
            if param.cite is not None:
                out.append((f"{rs.id}.{name}", param.cite))
    for name, param in BOOK.facts_file.parameters.items():
        if param.cite is not None:
            out.append((f"facts.{name}", param.cite))
    for name, fdef in BOOK.facts_file.facts.items():
        if fdef.cite is not None:
            out.append((f"fact {name}", fdef.cite))
    return out


SECTION_REACH = 2500
"""A quote must start within this many characters after a line holding its section heading
(about one slide of the extracted guidance)."""


@pytest.mark.parametrize("where,cite", _citations(), ids=[w for w, _ in _citations()])
def test_citation_is_verbatim_under_its_heading(where: str, cite: object) -> None:
    source, section, quote = cite.source, cite.section, cite.quote  # type: ignore[attr-defined]
    text = _guidance(source)
    assert quote in text, f"{where}: quote is not verbatim in {source}: {quote!r}"
    heading_ends = [m.end() for m in re.finditer(rf"(?m)^[ \t]*{re.escape(section)}[ \t]*$",
                                                 text)]
    assert heading_ends, f"{where}: no line in {source} is the heading {section!r}"
    starts = [m.start() for m in re.finditer(re.escape(quote), text)]
    assert any(0 <= q - h <= SECTION_REACH for h in heading_ends for q in starts), (
        f"{where}: quote is not under the heading {section!r} in {source}"
    )


def test_bundled_guidance_is_unchanged() -> None:
    readme = (GUIDANCE / "README.md").read_text(encoding="utf-8")
    files = sorted(GUIDANCE.glob("*.txt"))
    assert len(files) == 2
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"`{path.name}`" in readme and digest in readme, (
            f"{path.name} differs from the copy recorded in rulesets/guidance/README.md")


def test_monitoring_levels_are_explained_in_the_guidance_words() -> None:
    text = _guidance("000_ae3274b61be1e38b.txt")
    levels = {}
    for rule in BOOK.ruleset("monitoring").rules:
        then = rule.definition.then
        assert "meaning" in then, f"{rule.id} gives a level without saying what it means"
        assert str(then["meaning"]) in text, f"{rule.id}: meaning is not the guidance's words"
        levels.setdefault(then["level"], set()).add(then["meaning"])
    assert set(levels) == {"level_0", "level_1", "level_2", "level_3"}
    assert all(len(m) == 1 for m in levels.values()), "one meaning per level"


def test_every_local_parameter_says_why() -> None:
    params = [(f"{rs.id}.{n}", p) for rs in BOOK.rulesets
              for n, p in rs.definition.parameters.items()]
    params += [(f"facts.{n}", p) for n, p in BOOK.facts_file.parameters.items()]
    assert params
    for key, p in params:
        if p.provenance in ("local-policy", "assumption"):
            assert len(p.why.split()) >= 5, f"{key}: 'why' should say why in a sentence"


def test_every_rule_names_a_known_hazard() -> None:
    log = Path(__file__).resolve().parent.parent / "docs" / "safety" / "hazard-log.yaml"
    known = set(re.findall(r"^  - id: (HAZ-\d{3})$", log.read_text(encoding="utf-8"), re.M))
    assert {"HAZ-001", "HAZ-012", "HAZ-013", "HAZ-014", "HAZ-015"} <= known
    for rs in BOOK.rulesets:
        for rule in rs.rules:
            hazards = rule.definition.hazards
            assert hazards, f"{rule.id}: no hazard"
            assert set(hazards) <= known, f"{rule.id}: unknown hazard {hazards}"


# -- the worked examples cannot go stale ------------------------------------------------------


def test_worked_examples_are_up_to_date() -> None:
    stale = write_examples(BOOK, EXAMPLES, check=True)
    assert not stale, (f"docs/examples out of date: {stale}; regenerate with "
                       "`python -m int_rules.scenarios --examples docs/examples`")


def test_every_ruleset_has_a_worked_example() -> None:
    pages = {p.stem for p in EXAMPLES.glob("*.md")}
    assert {rs.id for rs in BOOK.rulesets} <= pages


def test_every_example_record_has_a_scenario() -> None:
    used = {Path(s.record_file).name for s in SCENARIOS if s.record_file}
    files = {p.name for p in (ROOT / "examples" / "records").glob("*.json")}
    assert files, "no example records"
    assert files <= used, f"example records without a scenario: {sorted(files - used)}"


# -- the scenario format's errors -------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_record_names_file_line_patient_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
scenarios:
  - id: bad
    description: a bad code
    as_of: 2026-11-23
    record: {patient_id: X1, date_of_birth: 1940-01-01, events: [{code: "123", date: 2025-01-01}]}
    expect: {}
""")
    with pytest.raises(RulesetError) as err:
        load_scenarios(BOOK, [path])
    msg = str(err.value)
    assert "s.yaml:5:" in msg and "patient 'X1'" in msg and "events[0].code" in msg


def test_unknown_rule_in_expectation_is_located(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
scenarios:
  - id: unknown-rule
    description: names a rule that does not exist
    as_of: 2026-11-23
    record: {patient_id: X2, date_of_birth: 1940-01-01}
    expect:
      fired: [IDN-999]
""")
    with pytest.raises(RulesetError) as err:
        load_scenarios(BOOK, [path])
    assert "s.yaml:7:" in str(err.value) and "IDN-999" in str(err.value)


def test_misspelt_key_is_located(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
scenarios:
  - id: typo
    description: misspelt key
    as_of: 2026-11-23
    record: {patient_id: X3, date_of_birth: 1940-01-01}
    expect: {fird: [IDN-010]}
""")
    with pytest.raises(RulesetError) as err:
        load_scenarios(BOOK, [path])
    assert "s.yaml:6:" in str(err.value) and "fird" in str(err.value)


def test_record_and_record_file_are_exclusive_and_outputs_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
scenarios:
  - id: both
    description: gives a record twice
    as_of: 2026-11-23
    record: {patient_id: X5, date_of_birth: 1940-01-01}
    record_file: x.json
    expect: {}
  - id: unknown-output
    description: expects an output the ruleset does not have
    as_of: 2026-11-23
    record: {patient_id: X6, date_of_birth: 1940-01-01}
    expect:
      results: {identification: {cohorts: [frailty]}}
""")
    with pytest.raises(RulesetError) as err:
        load_scenarios(BOOK, [path])
    msg = str(err.value)
    assert "s.yaml:2:" in msg and "exactly one of record or record_file" in msg
    assert "s.yaml:13:" in msg and "no output 'cohorts'" in msg


def test_failed_scenario_diff_says_what_differed(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
scenarios:
  - id: wrong-expectation
    description: expects a cohort the record does not give
    as_of: 2026-11-23
    record: {patient_id: X4, date_of_birth: 1940-01-01}
    expect:
      fired: [IDN-010]
      pathway_state: on_caseload
""")
    [scenario] = load_scenarios(BOOK, [path])
    result = run_scenario(BOOK, scenario)
    assert not result.passed
    diff = result.diff()
    assert "expected IDN-010 to fire" in diff
    assert "pathway_state: expected 'on_caseload', got 'not_identified'" in diff


def test_engine_may_be_a_function_and_its_errors_fail_the_scenario() -> None:
    def broken(book: object, record: object, as_of: object) -> object:
        raise RuntimeError("boom")

    result = run_scenario(BOOK, SCENARIOS[0], engine=broken)  # type: ignore[arg-type]
    assert not result.passed and "boom" in result.diff()
