"""Delivery and outcomes (``rulesets/outcomes.yaml``): the bundled definitions, the per-person
windows on hand-built records and against an independent computation, the difference in
differences, a planted effect recovered and no effect found, the outputs, and bad files."""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import math
import sys
import threading
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import int_rules
from int_rules.errors import RulesetError
from int_rules.population.engine import run_population
from int_rules.population.outcomes import (
    ICS,
    Outcomes,
    _unit_rows,
    compute_outcomes,
    estimate,
    load_outcomes,
    model_imported_ahead,
)
from int_rules.population.run import population_report
from int_rules.synth import _profile, write_population

BOOK = int_rules.load()
AS_OF = dt.date(2026, 3, 31)
OUTCOMES_FILE = BOOK.directory / "outcomes.yaml"


def _outcomes() -> Outcomes:
    o = load_outcomes(BOOK)
    assert o is not None
    return o


def _code(step: str) -> str:
    for s in BOOK.pathway.definition.steps:
        if s.id == step:
            assert s.codelists
            return sorted(BOOK.codelists[s.codelists[0]].codes)[0]
    raise KeyError(step)


def D(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


# -- the bundled definitions ------------------------------------------------------------------


def test_every_indicator_of_the_guide_is_declared_and_cited() -> None:
    o = _outcomes()
    by_id = {i.id: i for i in o.indicators}
    # Version 2's table, and Version 1's expected outcomes
    v2 = {"emergency_admissions": "down", "emergency_admissions_los_gt_0": "down",
          "acsc_admissions": "down", "outpatient_activity": "down",
          "emergency_care_cost": "down", "progression_to_frailty_eol": "up",
          "proms_prems": "up", "activation": "up", "staff_experience": "up"}
    v1 = {"agreed_plan": "up", "frail_eol_emergency_admissions": "down"}
    for ident, direction in {**v2, **v1}.items():
        assert ident in by_id, ident
        assert by_id[ident].definition.direction == direction, ident
    for ident in v2:
        assert by_id[ident].definition.cite.source == "001_0d4f5c8ba846d66c.txt"
        assert by_id[ident].definition.cite.section == "Measuring impact and outcomes"
    computed = {i.id for i in o.indicators if i.kind != "not_computable"}
    assert computed == {"emergency_admissions", "emergency_admissions_los_gt_0",
                        "emergency_bed_days", "frail_eol_emergency_admissions", "agreed_plan"}
    for ind in o.indicators:
        if ind.kind == "not_computable":
            assert ind.definition.not_computable is not None
            assert len(ind.definition.not_computable.needs.split()) >= 8, ind.id


def _citations() -> list[tuple[str, Any]]:
    d = _outcomes().definition
    out: list[tuple[str, Any]] = [("outcomes", d.cite), ("enrolment", d.enrolment.cite),
                                  ("comparison", d.comparison.cite)]
    out += [(f"parameter {n}", p.cite) for n, p in d.parameters.items() if p.cite is not None]
    out += [(f"indicator {i.id}", i.cite) for i in d.indicators]
    return out


@pytest.mark.parametrize("where,cite", _citations(), ids=[w for w, _ in _citations()])
def test_citation_is_verbatim_under_its_heading(where: str, cite: Any) -> None:
    """As for every rule (tests/test_scenarios.py): the quote is in the bundled guidance, word
    for word, within about a slide after a line that is its section heading."""
    import re

    text = (BOOK.directory / "guidance" / cite.source).read_text(encoding="utf-8")
    assert cite.quote in text, f"{where}: quote is not verbatim in {cite.source}"
    heads = [m.end() for m in re.finditer(rf"(?m)^[ \t]*{re.escape(cite.section)}[ \t]*$",
                                          text)]
    starts = [m.start() for m in re.finditer(re.escape(cite.quote), text)]
    assert any(0 <= q - h <= 2500 for h in heads for q in starts), (
        f"{where}: quote is not under the heading {cite.section!r}")


def test_every_number_is_a_parameter_that_says_why() -> None:
    o = _outcomes()
    params = o.definition.parameters
    for name in ("window_before_days", "window_after_days", "age_band_years",
                 "risk_band_width", "prior_admissions_cap", "controls_per_enrolled",
                 "confidence_level", "min_matched_for_estimate", "admissions_data_from"):
        assert name in params, name
        p = params[name]
        assert p.provenance in ("assumption", "local-policy"), name
        assert len(p.why.split()) >= 8, name
    assert (o.before_days, o.after_days) == (365, 365)
    assert o.data_from is None  # "earliest"


# -- hand-built records: the windows, follow-up and matches known in advance --------------------


def _write(directory: Path, name: str, header: str, rows: list[str]) -> None:
    (directory / f"{name}.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def hand_built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Known answers, worked out by hand (as of 2026-03-31; windows 365 days; the admissions
    data start at the earliest admission, 2024-01-01)."""
    d = tmp_path_factory.mktemp("hand_built")
    ident, enrol, step_down, not_app = (_code("identify"), _code("enrol"), _code("step_down"),
                                        _code("not_appropriate"))
    _write(d, "patients", "patient_id,date_of_birth,sex,practice,neighbourhood,gp_system,"
           "date_of_death", [
               "E1,1940-05-01,female,P1,A,EMIS,",
               "E2,1950-03-03,male,P1,A,EMIS,",
               "E3,1935-01-01,female,P2,B,EMIS,2026-01-15",
               "E4,1945-07-07,male,P2,B,EMIS,",
               "E5,1944-01-01,male,P2,B,EMIS,",          # enrolment code after the as-of date
               "E6,1939-01-01,male,P2,B,EMIS,2025-01-01",  # enrolment code after death
               "C1,1941-01-01,female,P2,B,EMIS,",          # E1's match
               "C3,1940-08-01,female,P1,A,EMIS,",          # 'not appropriate' before E1 joined
               "C4,1940-02-01,female,P1,A,EMIS,2025-01-05",  # died before E1 joined
               "C5,1940-09-01,female,P1,A,EMIS,",          # identified after E1 joined
               "C6,1940-06-01,female,P1,A,EMIS,",          # no admission before: other band
           ])
    _write(d, "clinical_events", "patient_id,date,snomedct_code", [
        f"E1,2024-12-01,{ident}", f"E1,2025-01-10,{enrol}",
        f"E2,2025-06-01,{enrol}", f"E2,2025-09-01,{step_down}", f"E2,2025-11-01,{enrol}",
        f"E3,2025-10-01,{enrol}",
        f"E4,2025-12-01,{enrol}",
        f"E5,2026-05-01,{enrol}",
        f"E6,2025-02-01,{enrol}",
        f"C1,2024-11-01,{ident}",
        f"C3,2024-10-01,{ident}", f"C3,2024-12-15,{not_app}",
        f"C4,2024-10-01,{ident}",
        f"C5,2025-03-01,{ident}",
        f"C6,2024-09-01,{ident}",
    ])
    _write(d, "admissions", "patient_id,admission_date,discharge_date,emergency", [
        "E1,2024-01-01,2024-01-03,true",   # before the before window (2024-01-11 on)
        "E1,2024-06-01,2024-06-04,true",   # before: 3 bed days
        "E1,2025-02-01,2025-02-01,true",   # after, a length of stay of 0
        "E1,2025-03-01,2025-03-06,false",  # after, planned
        "E1,2026-02-01,2026-02-02,true",   # after the after window (ends 2026-01-09)
        "E2,2025-08-01,2025-08-04,true",   # after: 3 bed days
        "E2,2025-10-01,2025-10-02,true",   # after step-down: not counted
        "E3,2026-01-10,,true",             # open at death: 5 bed days
        "C1,2024-07-01,2024-07-02,true",   # before E1's index: one prior admission, like E1
        "C1,2025-05-01,2025-05-03,true",   # in the window after E1's index
        "C3,2024-07-01,2024-07-02,true",
        "C4,2024-07-01,2024-07-02,true",
        "C5,2024-07-01,2024-07-02,true",
    ])
    run = run_population(BOOK, d, AS_OF)
    try:
        table = compute_outcomes(run.con, BOOK, _outcomes(), AS_OF)
        units = {(r["match_pid"], r["patient_id"]): r for r in run.con.sql(
            "SELECT u.*, p.patient_id, m.patient_id AS match_id FROM outcome_units u "
            "JOIN pt p ON p.pid = u.pid JOIN pt m ON m.pid = u.match_pid"
        ).to_arrow_table().to_pylist()}
        units = {(r["match_id"], r["patient_id"]): r for r in units.values()}
    finally:
        run.close()
    return {"table": table, "units": units}


def test_index_dates_and_follow_up_on_hand_built_records(hand_built: dict[str, Any]) -> None:
    units = hand_built["units"]
    enrolled = {k[1]: u for k, u in units.items() if u["enrolled"]}
    assert sorted(enrolled) == ["E1", "E2", "E3", "E4"]  # not E5 (after as-of), E6 (after death)
    expect = {  # index, before window from, end (exclusive), why follow-up ended
        "E1": ("2025-01-10", "2024-01-11", "2026-01-10", "window"),
        "E2": ("2025-06-01", "2024-06-01", "2025-09-02", "step"),   # first enrolment kept
        "E3": ("2025-10-01", "2024-10-01", "2026-01-16", "death"),
        "E4": ("2025-12-01", "2024-12-01", "2026-04-01", "as_of"),
    }
    for pid, (index, before_from, end, why) in expect.items():
        u = enrolled[pid]
        assert (u["index_d"], u["before_from"], u["end_d"], u["end_reason"]) == (
            D(index), D(before_from), D(end), why), pid
        assert u["before_days"] == (D(index) - D(before_from)).days
        assert u["after_days"] == (D(end) - D(index)).days
    assert enrolled["E2"]["after_days"] == 93
    counts = hand_built["table"].counts_for(ICS)
    assert counts == {"enrolled": 4, "no_baseline": 0, "matched": 1, "unmatched": 3,
                      "ended_step": 1, "ended_death": 1, "ended_as_of": 1}


def test_matches_on_hand_built_records(hand_built: dict[str, Any]) -> None:
    units = hand_built["units"]
    controls = sorted(k for k, u in units.items() if not u["enrolled"])
    # C3 was found not appropriate, C4 had died, C5 was identified later, C6 had no admission
    # in the year before (E1 had one): only C1 matches E1, indexed at E1's enrolment date.
    assert controls == [("E1", "C1")]
    c1 = units[("E1", "C1")]
    assert (c1["index_d"], c1["end_d"], c1["weight"]) == (D("2025-01-10"), D("2026-01-10"), 1.0)


def test_rates_on_hand_built_records(hand_built: dict[str, Any]) -> None:
    table = hand_built["table"]
    years = 365 / 365.25
    admissions = table.row("emergency_admissions")
    assert admissions["matched"] == 1 and admissions["controls"] == 1
    assert admissions["enrolled_before"] == pytest.approx(1 / years)
    assert admissions["enrolled_after"] == pytest.approx(1 / years)  # 2025-02-01 only
    assert admissions["controls_before"] == pytest.approx(1 / years)
    assert admissions["controls_after"] == pytest.approx(1 / years)
    assert admissions["did"] is None and "fewer than 20" in admissions["note"]
    los = table.row("emergency_admissions_los_gt_0")
    assert los["enrolled_after"] == 0.0  # the same-day discharge has a length of stay of 0
    beds = table.row("emergency_bed_days")
    assert beds["enrolled_before"] == pytest.approx(3 / years)
    assert beds["controls_after"] == pytest.approx(2 / years)
    plan = table.row("agreed_plan")
    assert plan["kind"] == "share" and plan["denominator"] == 3  # E1, E2 (re-enrolled), E4
    assert table.row("acsc_admissions")["note"].startswith("not computable from a GP extract")


# -- the SQL against an independent computation on a synthetic population --------------------


def _reference(con: Any, o: Outcomes, as_of: dt.date) -> dict[tuple[int, int], dict[str, Any]]:
    """Every unit (enrolled person or match) computed in plain Python from the run's tables."""
    people = {r[0]: r for r in con.execute(
        "SELECT p.pid, p.dob, p.dod, COALESCE(p.sex, 'unknown'), r.identification_cohort "
        "FROM pt p JOIN results r USING (pid)").fetchall()}
    role_of = defaultdict(set)
    for role, codes in o.codes.items():
        for c in codes:
            role_of[c].add(role)
    dates: dict[tuple[int, str], list[dt.date]] = defaultdict(list)
    for pid, d, code in con.execute("SELECT pid, d, code FROM ev").fetchall():
        for role in role_of.get(code, ()):
            if d <= as_of:
                dates[(pid, role)].append(d)
    adm = defaultdict(list)
    for pid, admitted, discharged, emergency in con.execute(
            "SELECT pid, admitted, discharged, emergency FROM adm").fetchall():
        adm[pid].append((admitted, discharged, emergency))
    risk = defaultdict(list)
    for pid, d, seq, value in con.execute(
            "SELECT pid, d, seq, value FROM rs WHERE source = ?", [o.risk_source]).fetchall():
        risk[pid].append((d, seq, value))
    all_adm = [a for rows in adm.values() for a in rows]
    data_from = min(a[0] for a in all_adm) if all_adm else None

    def cohort(pid: int) -> str:
        got = people[pid][4] or []
        return next((c for c in o.cohort_priority if c in got), "none")

    def before_from(index: dt.date) -> dt.date:
        start = index - dt.timedelta(days=o.before_days)
        return max(start, data_from) if data_from else start

    def strata(pid: int, index: dt.date) -> tuple[Any, ...]:
        dob = people[pid][1]
        age = index.year - dob.year - ((index.month, index.day) < (dob.month, dob.day))
        scores = sorted(r for r in risk[pid] if r[0] <= index)
        band = math.floor(scores[-1][2] / o.risk_band_width) if scores else -1
        prior = sum(1 for a in adm[pid] if a[2] and before_from(index) <= a[0] < index)
        return (people[pid][3], cohort(pid), age // o.age_band_years, band,
                min(prior, o.prior_cap))

    plus = dt.timedelta(days=1)
    units: dict[tuple[int, int], dict[str, Any]] = {}
    pool = [p for p in people if not dates[(p, "index")] and dates[(p, "eligible")]]
    for pid, (_, _dob, dod, _sex, _c) in people.items():
        if not dates[(pid, "index")]:
            continue
        index = min(dates[(pid, "index")])
        if dod is not None and index > dod:
            continue
        ends = [d for d in dates[(pid, "end")] if d >= index]
        end = min([index + dt.timedelta(days=o.after_days), as_of + plus]
                  + ([dod + plus] if dod else []) + ([min(ends) + plus] if ends else []))
        units[(pid, pid)] = {"index_d": index, "end_d": end, "before_from": before_from(index)}
        mine = strata(pid, index)
        valid = {c for c in pool
                 if min(dates[(c, "eligible")]) <= index
                 and not any(d <= index for d in dates[(c, "excluded")])
                 and people[c][1] <= index and (people[c][2] is None or people[c][2] >= index)
                 and strata(c, index) == mine}
        units[(pid, pid)]["valid"] = valid
        for c in valid:
            cdod = people[c][2]
            units[(pid, c)] = {"index_d": index, "before_from": before_from(index),
                               "end_d": min([index + dt.timedelta(days=o.after_days),
                                             as_of + plus] + ([cdod + plus] if cdod else []))}
    for (_m, pid), u in units.items():
        dod = people[pid][2]
        u["admissions_before"] = sum(1 for a in adm[pid]
                                     if a[2] and u["before_from"] <= a[0] < u["index_d"])
        u["admissions_after"] = sum(1 for a in adm[pid]
                                    if a[2] and u["index_d"] <= a[0] < u["end_d"])
        stays = [(a[0], (min([a[1] or as_of, as_of] + ([dod] if dod else [])) - a[0]).days)
                 for a in adm[pid] if a[2]]
        u["beds_before"] = sum(s for d, s in stays if s >= 1 and u["before_from"] <= d
                               < u["index_d"])
        u["beds_after"] = sum(s for d, s in stays if s >= 1 and u["index_d"] <= d < u["end_d"])
    return units


def _dense_profile() -> dict[str, Any]:
    """The bundled profile with about 90% of people over 65 (a full scale of 290,000 for the
    guide's 260,053 over-65s) and half of the identified people's pathway records cut to their
    first code, so a small population has many enrolled people and many eligible not enrolled."""
    prof = _profile()
    prof["full_scale_patients"] = 290_000
    prof["pathway"] = {**prof["pathway"], "first_step_only_share": 0.5}
    return prof


def test_windows_and_matches_equal_an_independent_computation(tmp_path: Path) -> None:
    o = _outcomes()
    prof = _dense_profile()
    write_population(tmp_path, 3000, seed=5, as_of=AS_OF, fmt="parquet", book=BOOK,
                     profile=prof)
    run = run_population(BOOK, tmp_path, AS_OF)
    try:
        table = compute_outcomes(run.con, BOOK, o, AS_OF)
        expected = _reference(run.con, o, AS_OF)
        cohort_of = dict(run.con.execute("SELECT pid, cohort FROM __oc_people").fetchall())
        got = {(r[0], r[1]): r for r in run.con.execute(
            "SELECT match_pid, pid, enrolled, index_d, before_from, end_d FROM outcome_units"
        ).fetchall()}
        inds = {i.id: i for i in o.indicators}
        admissions = {(r[2], r[3]): r for r in _unit_rows(run.con, inds["emergency_admissions"],
                                                          AS_OF)}
        beds = {(r[2], r[3]): r for r in _unit_rows(run.con, inds["emergency_bed_days"], AS_OF)}
    finally:
        run.close()
    enrolled = [k for k in expected if k[0] == k[1]]
    assert len(enrolled) >= 30, "the population should have enough enrolled people to test"
    matched = 0
    for key in enrolled:
        exp = expected[key]
        assert got[key][3:] == (exp["index_d"], exp["before_from"], exp["end_d"]), key
        chosen = {pid for (m, pid) in got if m == key[0] and pid != key[0]}
        assert chosen <= exp["valid"], key
        assert len(chosen) == min(o.controls_per_enrolled, len(exp["valid"])), key
        matched += bool(chosen)
        for c in chosen:
            assert got[(key[0], c)][3:] == (expected[(key[0], c)]["index_d"],
                                            expected[(key[0], c)]["before_from"],
                                            expected[(key[0], c)]["end_d"])
    assert matched >= 10
    with_baseline = [k for k in enrolled if expected[k]["before_from"] < expected[k]["index_d"]]
    assert table.row("emergency_admissions")["matched"] == sum(
        1 for k in with_baseline if any(m == k[0] and p != m for m, p in got))
    frail_eol = {"frailty", "end_of_life"}
    assert table.row("frail_eol_emergency_admissions")["matched"] == sum(
        1 for k in with_baseline if cohort_of[k[0]] in frail_eol
        and any(m == k[0] and p != m for m, p in got))
    for key, row in admissions.items():
        exp = expected[key]
        assert (row[8], row[9]) == (exp["admissions_before"], exp["admissions_after"]), key
        assert (beds[key][8], beds[key][9]) == (exp["beds_before"], exp["beds_after"]), key


def test_an_extract_without_admissions_has_no_baseline_and_no_error(tmp_path: Path) -> None:
    write_population(tmp_path, 1500, seed=6, as_of=AS_OF, fmt="csv", book=BOOK)
    (tmp_path / "admissions.csv").unlink()
    run = run_population(BOOK, tmp_path, AS_OF)
    try:
        table = compute_outcomes(run.con, BOOK, _outcomes(), AS_OF)
    finally:
        run.close()
    assert table.data_from is None
    row = table.row("emergency_admissions")
    assert row["enrolled"] > 0 and row["no_baseline"] == 0  # the window is not cut short
    assert row["did"] is None and row["enrolled_before"] is None
    assert row["note"] == "not available: the extract has no admissions"


# -- the difference in differences ------------------------------------------------------------


def test_estimate_is_the_difference_of_pooled_rates() -> None:
    # (nb, cohort, match, pid, enrolled, weight, before days, after days, before, after)
    units = []
    for i in range(30):
        units.append(("A", "none", i, i, True, 1.0, 365, 200 + i, 2 + i % 3, i % 2))
        for j in range(2):
            units.append(("A", "none", i, 100 + 2 * i + j, False, 0.5, 365, 365, 1 + j, 1))
    est = estimate(units, 0.95, 20)
    py = 365 / 365.25
    t_before = sum(u[8] for u in units if u[4]) / (30 * py)
    t_after = sum(u[9] for u in units if u[4]) / sum(u[7] / 365.25 for u in units if u[4])
    c_before = sum(0.5 * u[8] for u in units if not u[4]) / (30 * py)
    c_after = sum(0.5 * u[9] for u in units if not u[4]) / (30 * py)
    assert est.enrolled_before == pytest.approx(t_before)
    assert est.enrolled_after == pytest.approx(t_after)
    assert est.controls_before == pytest.approx(c_before)
    assert est.did == pytest.approx((t_after - t_before) - (c_after - c_before))
    assert est.ci_low is not None and est.ci_high is not None
    assert est.ci_low < est.did < est.ci_high
    assert (est.enrolled, est.controls) == (30, 60)
    small = estimate(units[:30], 0.95, 20)
    assert small.did is None and "fewer than 20" in small.note


def test_no_estimate_when_the_records_cannot_identify_one() -> None:
    """Enough matched people, but none with person-time after joining: the model's design has
    no after period, so the difference in differences is not identified; it is reported as no
    estimate, with why, and nothing is printed."""
    # (nb, cohort, match, pid, enrolled, weight, before days, after days, before, after)
    units = [("A", "none", i, i, True, 1.0, 365, 0, 1 + i % 2, 0) for i in range(3)]
    units += [("A", "none", i, 10 + i, False, 1.0, 365, 0, 2 - i % 2, 0) for i in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = estimate(units, 0.95, 2)
    assert est.did is None and est.ci_low is None and est.ci_high is None
    assert "cannot identify" in est.note


# -- a planted effect is recovered, and no effect is found ------------------------------------
#
# Power: with the dense profile (about 90% of people over 65, half of the identified never
# enrolled) and about one emergency admission per person-year, about 320 of 45,000 people are
# enrolled and matched, and the difference in differences has a standard error of about 0.11
# admissions per person-year. A 60% fall in the enrolled's admissions after joining is about
# -0.56 per person-year, five standard errors from zero, so its 95% interval excludes zero for
# all but a fraction of a per cent of seeds; with no effect the interval contains zero for 95%
# of seeds. The two runs differ only in the enrolled's admissions after joining, so the planted
# estimate is exactly the no-effect estimate plus the effect planted; its interval is a little
# narrower (fewer admissions), so it contains the planted effect for about 9 seeds in 10.
# Seeds 1 to 4 pass all three checks (seed 1: no-effect estimate -0.005, interval half-width
# 0.23). The seed is fixed, so the test is deterministic.


EFFECT_PATIENTS = 45_000


def _effect_run(tmp: Path, effect: float) -> dict[str, Any]:
    prof = _dense_profile()
    prof["admissions"] = {**prof["admissions"], "per_year_65_plus": 1.0, "boost": 2.0,
                          "boost_exponent": 1, "years": 6}
    write_population(tmp, EFFECT_PATIENTS, seed=1, as_of=AS_OF, fmt="parquet", book=BOOK, profile=prof,
                     enrolment_effect=effect)
    run = run_population(BOOK, tmp, AS_OF)
    try:
        return compute_outcomes(run.con, BOOK, _outcomes(), AS_OF).row("emergency_admissions")
    finally:
        run.close()


def test_a_planted_effect_is_recovered_and_none_is_found_without_one(tmp_path: Path) -> None:
    none = _effect_run(tmp_path / "none", 0.0)
    planted = _effect_run(tmp_path / "planted", -0.6)
    assert none["matched"] == planted["matched"] >= 200
    # The same people and matches; only the enrolled's admissions after joining differ, so the
    # effect actually planted in this sample is the change in their after-rate.
    assert planted["controls_after"] == pytest.approx(none["controls_after"])
    assert planted["enrolled_before"] == pytest.approx(none["enrolled_before"])
    truth = planted["enrolled_after"] - none["enrolled_after"]
    assert truth < -0.4
    assert planted["did"] - none["did"] == pytest.approx(truth)
    assert none["ci_low"] < 0 < none["ci_high"], none
    assert planted["ci_low"] < truth < planted["ci_high"], (truth, planted)
    assert planted["ci_high"] < 0, planted


# -- outputs ----------------------------------------------------------------------------------


def test_population_report_writes_outcomes_csv_and_the_report_section(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_population(data, 2000, seed=3, as_of=AS_OF, fmt="parquet", book=BOOK)
    result = population_report(BOOK, data, AS_OF, tmp_path / "out")
    path = result.files["outcomes_csv"]
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["indicator"] for r in rows} == {i.id for i in _outcomes().indicators}
    ics = [r for r in rows if r["neighbourhood"] == ICS]
    assert len(ics) == len(_outcomes().indicators)
    assert all(r["rulebook_sha256"] == BOOK.sha256 for r in rows)
    nbs = {r["neighbourhood"] for r in rows if r["indicator"] == "emergency_admissions"}
    assert len(nbs) == 23  # 22 neighbourhoods and the ICS
    page = result.report.read_text(encoding="utf-8")
    assert 'id="outcomes"' in page and "Observational, not proof of cause" in page
    assert "desired: \u2193 a fall" in page and "desired: \u2191 a rise" in page
    assert "Not computable from a GP extract" in page
    assert result.summary["outcomes"]["sha256"] == _outcomes().sha256
    assert result.summary["outcomes"]["enrolled"]["enrolled"] == sum(
        int(r["enrolled"]) for r in rows
        if r["indicator"] == "emergency_admissions" and r["neighbourhood"] != ICS)


def test_synth_effect_is_checked_and_reachable_from_the_cli(tmp_path: Path) -> None:
    from int_rules.cli import main
    from int_rules.synth import SynthError

    with pytest.raises(SynthError, match="between -1 and 0"):
        write_population(tmp_path / "bad", 10, seed=1, as_of=AS_OF, book=BOOK,
                         enrolment_effect=0.5)
    assert main(["synth", "--patients", "3000", "--out", str(tmp_path / "none"), "--quiet"]) == 0
    assert main(["synth", "--patients", "3000", "--out", str(tmp_path / "fall"), "--quiet",
                 "--enrolment-effect", "-1"]) == 0
    none = (tmp_path / "none" / "admissions.csv").read_text(encoding="utf-8").splitlines()
    fall = (tmp_path / "fall" / "admissions.csv").read_text(encoding="utf-8").splitlines()
    assert set(fall) < set(none)  # only admissions removed, the rest the same


def test_small_numbers_are_suppressed_when_asked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_population(data, 1500, seed=4, as_of=AS_OF, fmt="parquet", book=BOOK)
    run = run_population(BOOK, data, AS_OF)
    try:
        table = compute_outcomes(run.con, BOOK, _outcomes(), AS_OF, suppress=lambda n: n < 10)
    finally:
        run.close()
    for row in table.rows:
        if row["kind"] == "rate" and row["note"] == "suppressed (small numbers)":
            assert row["enrolled_after"] is None and row["did"] is None
    assert any(r["note"] == "suppressed (small numbers)" for r in table.rows)


def test_the_runs_small_number_suppression_covers_the_outcomes(tmp_path: Path) -> None:
    from int_rules.population.disclosure import REDACTED, SUPPRESSION

    data = tmp_path / "data"
    write_population(data, 2000, seed=3, as_of=AS_OF, fmt="parquet", book=BOOK)
    result = population_report(BOOK, data, AS_OF, tmp_path / "out", suppress_small_numbers=True)
    with result.files["outcomes_csv"].open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    counts = [r[k] for r in rows if r["kind"] == "rate"
              for k in ("enrolled", "matched", "unmatched", "no_baseline")]
    assert counts and all(c == REDACTED or int(c) % 5 == 0 for c in counts), counts
    for r in rows:
        if r["kind"] == "rate" and r["matched"] in (REDACTED, ""):
            assert r["did"] == "" and r["enrolled_after"] == ""
    assert result.summary["outcomes"]["small_number_suppression"] == SUPPRESSION
    assert "Small-number suppression is on" in result.report.read_text(encoding="utf-8")


# -- bad files --------------------------------------------------------------------------------


def _bad(tmp_path: Path, old: str, new: str) -> str:
    text = OUTCOMES_FILE.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / "outcomes.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(RulesetError) as err:
        load_outcomes(BOOK, path)
    return str(err.value)


@pytest.mark.parametrize("old,new,expected", [
    ("  index_step: enrol", "  index_step: enroll", "no pathway step 'enroll'"),
    ("end_steps: [step_down, decline, death]", "end_steps: [step_down, decline]",
     "follow-up always ends at death"),
    ("age_band_years: {param: age_band_years}", "age_band_years: {param: age_bands}",
     "unknown parameter 'age_bands'"),
    ("    value: 365\n    unit: days", "    value: 0\n    unit: days", "must be at least 1"),
    ("quote: Reduction in unplanned hospital admissions",
     "quote: Reduction in planned hospital admissions", "not verbatim"),
    ("    direction: down\n    rate: {admissions: {emergency: true}}\n",
     "    direction: down\n    rate: {admissions: {emergency: true}}\n    colour: red\n",
     "unknown key"),
    ("priority: [end_of_life, care_home, housebound, frailty]",
     "priority: [end_of_life, carehome]", "'carehome' is not a value of identification.cohort"),
    ("of_states: [on_caseload_reviewed]", "of_states: [reviewed]", "no pathway state"),
])
def test_bad_outcomes_file_errors_name_the_place(tmp_path: Path, old: str, new: str,
                                                 expected: str) -> None:
    message = _bad(tmp_path, old, new)
    assert expected in message, message
    assert message.startswith(f"{tmp_path / 'outcomes.yaml'}:") or "outcomes.yaml:" in message
    line = message.split(":")[1]
    assert line.isdigit(), message


def _no_import_thread() -> bool:
    return not any(t.name == "int-rules-import-model" for t in threading.enumerate())


def test_the_model_imported_ahead_is_whole_by_the_time_the_block_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "slow_model.py").write_text(
        "import time\ntime.sleep(0.2)\nDONE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "slow_model", raising=False)
    with model_imported_ahead("slow_model"):
        pass  # the run's work would be here
    # Whole (a module is in sys.modules while it is still being imported), and no thread left.
    assert getattr(sys.modules.get("slow_model"), "DONE", False) and _no_import_thread()


def test_a_model_that_cannot_be_imported_fails_where_it_is_used_not_ahead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken_model.py").write_text("raise ImportError('no such model here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "broken_model", raising=False)
    with model_imported_ahead("broken_model"):
        pass
    assert capfd.readouterr().err == "" and _no_import_thread()
    with pytest.raises(ImportError, match="no such model here"):
        importlib.import_module("broken_model")
