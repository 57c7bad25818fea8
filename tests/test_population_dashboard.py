"""The INT development dashboard: the bundled definitions, the figures, and bad definitions."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path

import pytest

import int_rules
from int_rules.errors import RulesetError
from int_rules.population.dashboard import (
    ALL_NEIGHBOURHOODS,
    compute_dashboard,
    load_dashboard,
    unavailable,
)
from int_rules.population.engine import records_from_tables, run_population
from int_rules.synth import write_population

BOOK = int_rules.load()
AS_OF = dt.date(2026, 3, 31)
DASHBOARD = BOOK.directory / "dashboard.yaml"


def test_bundled_dashboard_has_every_measure() -> None:
    dash = load_dashboard(BOOK, AS_OF)
    assert dash is not None
    # the only measure not computed is the one the guidance asks for but codes cannot show
    missing = dict(unavailable(dash))
    assert list(missing) == ["record_sharing"]
    assert missing["record_sharing"].startswith("not countable:")
    assert not [c for m in dash.measures if m.id == "record_sharing" for c in m.columns]
    ids = [m.id for m in dash.measures]
    for wanted in ("registered_65_plus", "cohort", "identified", "identified_share",
                   "pathway_state", "caseload", "cga_recorded", "mdt_reviewed",
                   "reviews_overdue", "stepped_down"):
        assert wanted in ids, wanted
    params = dash.params
    assert params["expected_identified_share"] == 0.03
    assert (params["caseload_min"], params["caseload_max"]) == (120, 200)
    # the guidance's figures are cited, not invented
    for name in ("expected_identified_share", "caseload_min", "caseload_max", "over_65_age"):
        p = dash.definition.parameters[name]
        assert p.provenance == "guidance" and p.cite is not None, name


def test_figures_equal_counts_from_the_reference_engine(tmp_path: Path) -> None:
    write_population(tmp_path, 1500, seed=21, as_of=AS_OF, fmt="parquet", book=BOOK)
    dash = load_dashboard(BOOK, AS_OF)
    assert dash is not None
    run = run_population(BOOK, tmp_path, AS_OF, keep_facts=dash.facts)
    try:
        table = compute_dashboard(run, dash)
        records = records_from_tables(run.con)
    finally:
        run.close()
    expected: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        a = BOOK.assess(record, AS_OF)
        if a.values["pathway_state"] == "deceased":
            continue
        for key in (record.neighbourhood, ALL_NEIGHBOURHOODS):
            c = expected[key]
            c["population"] += 1
            c["registered_65_plus"] += a.values["age"] >= 65
            for cohort in a.results()["identification"]["cohort"]:
                c[f"cohort_{cohort}"] += 1
            c[f"pathway_state_{a.values['pathway_state']}"] += 1
            c["caseload"] += a.values["on_caseload"] is True
            c["stepped_down"] += a.values["pathway_state"] == "stepped_down"
            c["reviews_overdue"] += "review_date_reached" in a.results()["review"]["reason"]
            c["data_quality_errors"] += bool(a.results()["data_quality"]["error"])
    got = {row["neighbourhood"]: row for row in table.rows}
    assert set(got) == set(expected)
    for name, counts in expected.items():
        row = got[name]
        for column, value in counts.items():
            assert row[column] == value, (name, column)
        share = row["identified_share"]
        assert share == pytest.approx(row["identified"] / row["registered_65_plus"])
        status = row["identified_share_vs_guidance"]
        if share > 0.04:
            assert status == "above"
        elif share < 0.02:
            assert status == "below"
        else:
            assert status == "about as expected"
        caseload = row["caseload"]
        if name == ALL_NEIGHBOURHOODS:  # the range is per neighbourhood: never the total
            assert row["caseload_vs_guidance"] == ""
            continue
        assert row["caseload_vs_guidance"] == ("below" if caseload < 120 else
                                               "above" if caseload > 200 else "within")


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = DASHBOARD.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "dashboard.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_unknown_key_is_located(tmp_path: Path) -> None:
    path = _variant(tmp_path, "  - id: caseload\n", "  - id: caseload\n    colour: red\n")
    with pytest.raises(RulesetError) as err:
        load_dashboard(BOOK, AS_OF, path)
    assert "dashboard.yaml:" in str(err.value)
    assert "unknown key" in str(err.value)
    assert err.value.location is not None and err.value.location.line is not None


def test_unknown_output_of_a_known_ruleset_is_an_error(tmp_path: Path) -> None:
    path = _variant(tmp_path, "review.review_due", "review.review_overdue")
    with pytest.raises(RulesetError, match="ruleset review has no output 'review_overdue'"):
        load_dashboard(BOOK, AS_OF, path)


def test_value_not_declared_by_the_output_is_an_error(tmp_path: Path) -> None:
    path = _variant(tmp_path, "equals: review_date_reached", "equals: review_date_passed")
    with pytest.raises(RulesetError, match="'review_date_passed' is not a value"):
        load_dashboard(BOOK, AS_OF, path)


def test_a_ruleset_this_rulebook_lacks_makes_the_measure_unavailable(tmp_path: Path) -> None:
    path = _variant(tmp_path, "step_down.consider_step_down", "discharge.consider_step_down")
    dash = load_dashboard(BOOK, AS_OF, path)
    assert dash is not None
    assert dict(unavailable(dash))["step_down_to_consider"] == (
        "ruleset 'discharge' is not in this rulebook")
    assert "step_down_to_consider" not in [c.measure for c in dash.columns()]


def test_share_of_an_unknown_count_is_an_error(tmp_path: Path) -> None:
    path = _variant(tmp_path, "share: {of: identified,", "share: {of: identifed,")
    with pytest.raises(RulesetError, match="'identifed' is not one"):
        load_dashboard(BOOK, AS_OF, path)


def test_a_rulebook_without_a_dashboard_has_none(tmp_path: Path) -> None:
    assert load_dashboard(BOOK, AS_OF, tmp_path / "absent.yaml") is None


def test_a_not_countable_measure_cannot_also_count(tmp_path: Path) -> None:
    path = _variant(tmp_path, "    title: On the caseload with record sharing recorded\n",
                    "    title: On the caseload with record sharing recorded\n"
                    "    count: {fact: on_caseload, equals: true}\n")
    with pytest.raises(RulesetError, match="not_countable has no count"):
        load_dashboard(BOOK, AS_OF, path)
