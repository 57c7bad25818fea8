"""The caseload pathway: scenarios, questions an application asks, static checks, bad YAML, docs.

Scenario codes are read from the bundled codelists by codelist id, never written here, so the
tests follow the codelists. The property-based and stateful tests are in
``test_pathway_properties.py``.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from int_rules.errors import RulesetError, RulesetErrors
from int_rules.pathway import Pathway, PathwayCodeError, load_pathway
from int_rules.pathway_doc import (
    default_pathway_path,
    load_bundled_pathway,
    render_pathway_markdown,
)

REPO = Path(__file__).resolve().parent.parent
PATHWAY_YAML = default_pathway_path()
DOC = REPO / "docs" / "pathway.md"
D = dt.date


@pytest.fixture(scope="module")
def bundled() -> tuple[Pathway, dict[str, tuple[str, bool]]]:
    return load_bundled_pathway()


@pytest.fixture(scope="module")
def pw(bundled: tuple[Pathway, dict[str, tuple[str, bool]]]) -> Pathway:
    return bundled[0]


@pytest.fixture(scope="module")
def codelists(pw: Pathway) -> dict[str, frozenset[str]]:
    """The pathway's codelists (id -> codes), as load_pathway takes them."""
    ids = {cid for st in pw.definition.steps for cid in st.codelists or ()}
    return {cid: pw.codelist_codes(cid) for cid in ids}


class Codes:
    """One code per step, looked up from the codelists (e.g. ``c.enrol``)."""

    def __init__(self, pw: Pathway) -> None:
        for step, codes in pw.step_codes.items():
            setattr(self, step, min(codes))
        self.identify_other = max(pw.step_codes["identify"])

    def __getattr__(self, name: str) -> str:  # for mypy: attributes are set dynamically
        raise AttributeError(name)


@pytest.fixture(scope="module")
def c(pw: Pathway) -> Codes:
    return Codes(pw)


def ids(findings: Any) -> list[str]:
    return [f.id for f in findings]


# -- the bundled pathway ----------------------------------------------------------------------


def test_bundled_pathway_loads_with_the_contracted_shape(pw: Pathway) -> None:
    assert pw.id == "int_caseload"
    assert pw.source == "pathway.yaml"
    assert pw.status in {"draft", "approved", "retired"}
    assert pw.initial == "not_identified"
    assert pw.terminal == {"deceased"}
    assert pw.fact_domain() == pw.states
    assert set(pw.states) >= {"not_identified", "identified", "not_appropriate", "declined",
                              "on_caseload", "stepped_down", "deceased"}
    assert pw.groups()["caseload"] == ("on_caseload", "on_caseload_assessed",
                                       "on_caseload_reviewed")


def test_pathway_codes_are_exactly_the_guidance_codes(pw: Pathway) -> None:
    # The codes the issue and the guidance name, by codelist id.
    expected = {
        "int_at_risk_emergency_admission": "788921000000108",
        "int_eligible_icp": "936221000000104",
        "int_not_appropriate": "1239441000000103",
        "int_declined": "877011000000107",
        "int_on_pathway": "818241000000105",
        "int_no_longer_on_pathway": "894581000000106",
        "cga": "836131000000104",
        "mdt_review": "1026051000000106",
    }
    for cid, code in expected.items():
        assert pw.codelist_codes(cid) == {code}
    assert pw.codes == set(expected.values())


def test_pathway_is_immutable(pw: Pathway) -> None:
    with pytest.raises(AttributeError):
        pw.initial = "declined"
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        pw.definition.initial = "declined"  # type: ignore[misc]


# -- replay scenarios -------------------------------------------------------------------------


def test_version_1_happy_path(pw: Pathway, c: Codes) -> None:
    events = [(D(2025, 1, 6), c.identify), (D(2025, 2, 3), c.enrol), (D(2025, 3, 3), c.cga),
              (D(2025, 4, 7), c.mdt_review), (D(2025, 10, 6), c.mdt_review),
              (D(2026, 1, 5), c.step_down)]
    r = pw.replay(events, as_of=D(2026, 2, 1))
    assert r.state == "stepped_down"
    assert r.entered == D(2026, 1, 5)
    assert r.findings == ()
    assert [(t.from_state, t.to_state) for t in r.history] == [
        ("not_identified", "identified"), ("identified", "on_caseload"),
        ("on_caseload", "on_caseload_assessed"), ("on_caseload_assessed", "on_caseload_reviewed"),
        ("on_caseload_reviewed", "stepped_down")]
    assert [t.step for t in r.history] == ["identify", "enrol", "cga", "mdt_review", "step_down"]
    assert r.history[1].code == c.enrol and r.history[1].date == D(2025, 2, 3)


def test_nothing_recorded_is_the_initial_state(pw: Pathway) -> None:
    r = pw.replay([], as_of=D(2026, 1, 1))
    assert (r.state, r.entered, r.history, r.findings) == ("not_identified", None, (), ())


def test_version_2_consent_without_identification_code(pw: Pathway, c: Codes) -> None:
    r = pw.replay([(D(2026, 1, 5), c.enrol)], as_of=D(2026, 1, 5))
    assert (r.state, r.entered, r.findings) == ("on_caseload", D(2026, 1, 5), ())


def test_either_identification_code_identifies(pw: Pathway, c: Codes) -> None:
    for code in (c.identify, c.identify_other):
        assert pw.replay([(D(2025, 1, 1), code)], D(2025, 1, 1)).state == "identified"
    r = pw.replay([(D(2025, 1, 1), c.identify), (D(2025, 3, 1), c.identify_other)],
                  D(2025, 6, 1))
    assert (r.state, r.entered, r.findings) == ("identified", D(2025, 1, 1), ())


def test_not_appropriate_and_declined(pw: Pathway, c: Codes) -> None:
    r = pw.replay([(D(2025, 1, 1), c.identify), (D(2025, 1, 20), c.not_appropriate)],
                  D(2025, 6, 1))
    assert (r.state, r.findings) == ("not_appropriate", ())
    r = pw.replay([(D(2025, 1, 1), c.identify), (D(2025, 1, 20), c.decline)], D(2025, 6, 1))
    assert (r.state, r.findings) == ("declined", ())


def test_codes_outside_the_pathway_and_after_as_of_are_ignored(pw: Pathway, c: Codes) -> None:
    events = [(D(2025, 1, 1), "22298006"), (D(2025, 2, 1), c.enrol),
              (D(2025, 5, 1), c.step_down)]
    r = pw.replay(events, as_of=D(2025, 4, 30))
    assert (r.state, r.entered, r.findings) == ("on_caseload", D(2025, 2, 1), ())


def test_mdt_review_without_cga_is_accepted(pw: Pathway, c: Codes) -> None:
    r = pw.replay([(D(2025, 1, 1), c.enrol), (D(2025, 2, 1), c.mdt_review),
                   (D(2025, 5, 1), c.cga)], D(2025, 6, 1))
    assert (r.state, r.entered, r.findings) == ("on_caseload_reviewed", D(2025, 2, 1), ())


def test_cga_and_mdt_outside_the_caseload_change_nothing(pw: Pathway, c: Codes) -> None:
    r = pw.replay([(D(2025, 1, 1), c.cga), (D(2025, 2, 1), c.mdt_review)], D(2025, 6, 1))
    assert (r.state, r.history, r.findings) == ("not_identified", (), ())


def test_step_down_without_being_on_the_caseload(pw: Pathway, c: Codes) -> None:
    r = pw.replay([(D(2025, 3, 1), c.step_down)], D(2025, 6, 1))
    assert r.state == "not_identified"
    (f,) = r.findings
    assert (f.id, f.severity, f.date, f.code, f.state_before) == (
        "PWF-010", "error", D(2025, 3, 1), c.step_down, "not_identified")


def test_stepping_down_someone_who_declined(pw: Pathway, c: Codes) -> None:
    r = pw.replay([(D(2025, 1, 1), c.identify), (D(2025, 2, 1), c.decline),
                   (D(2025, 3, 1), c.step_down)], D(2025, 6, 1))
    assert r.state == "declined"
    assert ids(r.findings) == ["PWF-010"]
    assert r.findings[0].state_before == "declined"


def test_consent_and_decline_on_the_same_day(pw: Pathway, c: Codes) -> None:
    for order in ((c.enrol, c.decline), (c.decline, c.enrol)):
        r = pw.replay([(D(2025, 2, 1), order[0]), (D(2025, 2, 1), order[1])], D(2025, 6, 1))
        assert r.state == "declined"  # the refusal is kept (declared precedence)
        assert "PWF-020" in ids(r.findings)
        assert {f.severity for f in r.findings if f.id == "PWF-020"} == {"error"}


def test_consent_and_not_appropriate_on_the_same_day(pw: Pathway, c: Codes) -> None:
    r = pw.replay([(D(2025, 2, 1), c.enrol), (D(2025, 2, 1), c.not_appropriate)],
                  D(2025, 6, 1))
    assert r.state == "on_caseload"
    assert ids(r.findings) == ["PWF-021"]


def test_decline_while_on_the_caseload_is_a_withdrawal(pw: Pathway, c: Codes) -> None:
    r = pw.replay([(D(2025, 1, 1), c.enrol), (D(2025, 3, 1), c.decline)], D(2025, 6, 1))
    assert (r.state, r.entered) == ("declined", D(2025, 3, 1))
    assert ids(r.findings) == ["PWF-030"]
    assert r.findings[0].severity == "warning"


def test_withdrawal_recorded_with_step_down_the_same_day_is_clean(pw: Pathway, c: Codes) -> None:
    events = [(D(2025, 1, 1), c.enrol), (D(2025, 3, 1), c.decline), (D(2025, 3, 1), c.step_down)]
    r = pw.replay(events, D(2025, 6, 1))
    assert (r.state, r.findings) == ("declined", ())


def test_not_appropriate_while_on_the_caseload_keeps_them_on_it(pw: Pathway, c: Codes) -> None:
    r = pw.replay([(D(2025, 1, 1), c.enrol), (D(2025, 2, 1), c.cga),
                   (D(2025, 3, 1), c.not_appropriate)], D(2025, 6, 1))
    assert r.state == "on_caseload_assessed"
    assert ids(r.findings) == ["PWF-040"]


@pytest.mark.parametrize("before", ["decline", "step_down", "not_appropriate"])
def test_re_enrolment_is_allowed_and_starts_afresh(pw: Pathway, c: Codes, before: str) -> None:
    start = [(D(2025, 1, 1), c.enrol), (D(2025, 2, 1), c.cga), (D(2025, 3, 1), c.mdt_review)]
    if before == "step_down":
        start.append((D(2025, 6, 1), c.step_down))
    elif before == "decline":
        start = [(D(2025, 1, 1), c.identify), (D(2025, 6, 1), c.decline)]
    else:
        start = [(D(2025, 1, 1), c.identify), (D(2025, 6, 1), c.not_appropriate)]
    r = pw.replay([*start, (D(2025, 9, 1), c.enrol)], D(2025, 12, 1))
    assert (r.state, r.entered, r.findings) == ("on_caseload", D(2025, 9, 1), ())


def test_re_identification_after_decline(pw: Pathway, c: Codes) -> None:
    r = pw.replay([(D(2024, 1, 1), c.identify), (D(2024, 2, 1), c.decline),
                   (D(2025, 2, 1), c.identify)], D(2025, 3, 1))
    assert (r.state, r.entered, r.findings) == ("identified", D(2025, 2, 1), ())


def test_death(pw: Pathway, c: Codes) -> None:
    events = [(D(2025, 1, 1), c.enrol), (D(2025, 5, 1), c.step_down),
              (D(2025, 5, 3), c.mdt_review)]
    # Death applies at the end of its date: a code on the day of death is accepted.
    r = pw.replay(events, as_of=D(2025, 12, 1), date_of_death=D(2025, 5, 1))
    assert (r.state, r.entered) == ("deceased", D(2025, 5, 1))
    assert [t.step for t in r.history][-2:] == ["step_down", "death"]
    assert r.history[-1].code == ""
    (f,) = r.findings
    assert (f.id, f.severity, f.date, f.code, f.state_before) == (
        "PWF-090", "error", D(2025, 5, 3), c.mdt_review, "deceased")
    # A date of death after as_of is not yet known to the replay.
    r = pw.replay(events[:2], as_of=D(2025, 4, 1), date_of_death=D(2025, 5, 1))
    assert r.state == "on_caseload"
    # Death with no pathway codes at all.
    r = pw.replay([], as_of=D(2025, 6, 1), date_of_death=D(2025, 5, 1))
    assert (r.state, r.entered, r.findings) == ("deceased", D(2025, 5, 1), ())


def test_event_order_given_does_not_matter(pw: Pathway, c: Codes) -> None:
    events = [(D(2025, 1, 1), c.identify), (D(2025, 1, 1), c.enrol), (D(2025, 1, 1), c.cga),
              (D(2025, 1, 1), c.mdt_review), (D(2025, 4, 1), c.step_down)]
    expected = pw.replay(events, D(2025, 6, 1))
    assert expected.state == "stepped_down" and expected.findings == ()
    assert pw.replay(list(reversed(events)), D(2025, 6, 1)) == expected
    assert pw.replay(iter(events[2:] + events[:2]), D(2025, 6, 1)) == expected


def test_replay_is_thread_safe(pw: Pathway, c: Codes) -> None:
    records = [
        [(D(2025, 1, 1), c.enrol), (D(2025, 1 + i % 11, 2), c.cga),
         (D(2025, 1 + i % 7, 3), c.decline)]
        for i in range(40)
    ]
    expected = [pw.replay(r, D(2026, 1, 1)) for r in records]
    results: list[list[Any]] = [[] for _ in range(4)]

    def work(k: int) -> None:
        for _ in range(50):
            results[k].append([pw.replay(r, D(2026, 1, 1)) for r in records])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(run == expected for runs in results for run in runs)


# -- may_record and next_codes ----------------------------------------------------------------


def test_may_record_allowed(pw: Pathway, c: Codes) -> None:
    events = [(D(2025, 1, 1), c.identify)]
    d = pw.may_record(events, c.enrol, on=D(2025, 2, 1))
    assert (d.code, d.on, d.allowed, d.resulting_state, d.finding_id) == (
        c.enrol, D(2025, 2, 1), True, "on_caseload", None)
    assert "PWY-030" in d.reason


def test_may_record_refused_with_the_finding(pw: Pathway, c: Codes) -> None:
    d = pw.may_record([(D(2025, 1, 1), c.identify)], c.step_down, on=D(2025, 2, 1))
    assert (d.allowed, d.resulting_state, d.finding_id) == (False, "identified", "PWF-010")
    assert "PWF-010" in d.reason


def test_may_record_reports_a_same_day_conflict(pw: Pathway, c: Codes) -> None:
    d = pw.may_record([(D(2025, 2, 1), c.enrol)], c.decline, on=D(2025, 2, 1))
    assert (d.allowed, d.finding_id, d.resulting_state) == (False, "PWF-020", "declined")
    # Inserted *before* a same-day code (lower precedence): judged by replaying both ways.
    d = pw.may_record([(D(2025, 2, 1), c.decline)], c.enrol, on=D(2025, 2, 1))
    assert (d.allowed, d.finding_id, d.resulting_state) == (False, "PWF-020", "declined")
    d = pw.may_record([(D(2025, 2, 1), c.cga)], c.enrol, on=D(2025, 2, 1))
    assert (d.allowed, d.resulting_state) == (True, "on_caseload_assessed")


def test_may_record_ignores_later_events_and_respects_death(pw: Pathway, c: Codes) -> None:
    events = [(D(2025, 1, 1), c.enrol), (D(2025, 9, 1), c.step_down)]
    d = pw.may_record(events, c.cga, on=D(2025, 3, 1))
    assert (d.allowed, d.resulting_state) == (True, "on_caseload_assessed")
    d = pw.may_record(events, c.cga, on=D(2025, 3, 1), date_of_death=D(2025, 2, 1))
    assert (d.allowed, d.finding_id, d.resulting_state) == (False, "PWF-090", "deceased")
    d = pw.may_record(events, c.cga, on=D(2025, 3, 1), date_of_death=D(2025, 3, 1))
    assert (d.allowed, d.resulting_state) == (True, "deceased")


def test_may_record_rejects_a_code_the_pathway_does_not_record(pw: Pathway) -> None:
    with pytest.raises(PathwayCodeError, match="not a code of pathway"):
        pw.may_record([], "22298006", on=D(2025, 1, 1))


def test_next_codes(pw: Pathway, c: Codes) -> None:
    nxt = pw.next_codes([], on=D(2025, 1, 1))
    by_code = {d.code: d.resulting_state for d in nxt}
    assert c.step_down not in by_code
    assert by_code[c.identify] == "identified"
    assert by_code[c.enrol] == "on_caseload"
    assert by_code[c.cga] == "not_identified"
    assert all(d.allowed for d in nxt)
    precedence = {s.id: s.precedence for s in pw.definition.steps}
    order = [(precedence[pw.step_of(d.code) or ""], d.code) for d in nxt]
    assert order == sorted(order)
    assert pw.next_codes([], on=D(2025, 1, 2), date_of_death=D(2025, 1, 1)) == ()


# -- static checks and bad YAML ---------------------------------------------------------------

TEXT = PATHWAY_YAML.read_text(encoding="utf-8")
LOC_RE = re.compile(r"^rulesets/pathway\.yaml:(\d+):(\d+): ")


def load_text(tmp_path: Path, text: str, codelists: dict[str, frozenset[str]]) -> Pathway:
    path = tmp_path / "pathway.yaml"
    path.write_text(text, encoding="utf-8")
    return load_pathway(path, codelists, display_name="rulesets/pathway.yaml")


def load_mutated(tmp_path: Path, mutate: Callable[[dict[str, Any]], None],
                 codelists: dict[str, frozenset[str]]) -> str:
    """Load a structurally mutated copy; return the error message (the test expects one)."""
    data = yaml.safe_load(TEXT)
    mutate(data)
    with pytest.raises(RulesetError) as info:
        load_text(tmp_path, yaml.safe_dump(data, sort_keys=False, width=200), codelists)
    return str(info.value)


def line_of(text: str, needle: str, after: str | None = None) -> int:
    """1-based line number of the first line containing ``needle`` (after ``after``)."""
    lines = text.splitlines()
    start = 0
    if after is not None:
        start = next(i for i, line in enumerate(lines) if after in line)
    return next(i for i, line in enumerate(lines) if i >= start and needle in line) + 1


def error_lines(message: str) -> list[tuple[int, str]]:
    out = []
    for line in message.splitlines():
        m = LOC_RE.match(line)
        assert m, f"error line without file:line:col: {line!r}"
        out.append((int(m.group(1)), line))
    return out


def test_bundled_file_passes_the_static_checks(tmp_path: Path,
                                               codelists: dict[str, frozenset[str]]) -> None:
    assert load_text(tmp_path, TEXT, codelists).states


def test_unknown_state_in_a_transition(tmp_path: Path,
                                       codelists: dict[str, frozenset[str]]) -> None:
    bad = TEXT.replace("    to: on_caseload_assessed\n", "    to: on_caseload_asessed\n", 1)
    with pytest.raises(RulesetError) as info:
        load_text(tmp_path, bad, codelists)
    [(line, msg)] = error_lines(str(info.value))
    assert line == line_of(bad, "to: on_caseload_asessed")
    assert "transition PWY-040: unknown state 'on_caseload_asessed'" in msg


def test_unknown_state_in_from(tmp_path: Path, codelists: dict[str, frozenset[str]]) -> None:
    bad = TEXT.replace("    from: [stepped_down]\n    no_change: true",
                       "    from: [steped_down]\n    no_change: true", 1)
    with pytest.raises(RulesetError) as info:
        load_text(tmp_path, bad, codelists)
    [(line, msg)] = error_lines(str(info.value))
    assert line == line_of(bad, "from: [steped_down]")
    assert "unknown state 'steped_down'" in msg


def test_unknown_codelist_id(tmp_path: Path, codelists: dict[str, frozenset[str]]) -> None:
    bad = TEXT.replace("codelists: [int_declined]", "codelists: [int_decline]", 1)
    with pytest.raises(RulesetError) as info:
        load_text(tmp_path, bad, codelists)
    [(line, msg)] = error_lines(str(info.value))
    assert line == line_of(bad, "codelists: [int_decline]")
    assert "step decline: unknown codelist 'int_decline'" in msg


def test_duplicate_step(tmp_path: Path, codelists: dict[str, frozenset[str]]) -> None:
    bad = TEXT.replace("  - id: cga\n    title: Comprehensive Geriatric Assessment\n",
                       "  - id: mdt_review\n    title: Comprehensive Geriatric Assessment\n", 1)
    with pytest.raises(RulesetError) as info:
        load_text(tmp_path, bad, codelists)
    message = str(info.value)
    first = error_lines(message)[0]
    # Reported at the second declaration (the original mdt_review, after the renamed cga).
    assert first[0] == line_of(bad, "  - id: mdt_review", after="codelists: [cga]")
    assert "step 'mdt_review' is declared twice" in first[1]


def test_codelist_with_an_invalid_or_shared_code(tmp_path: Path,
                                                 codelists: dict[str, frozenset[str]]) -> None:
    lists = dict(codelists)
    lists["cga"] = frozenset({"836131000000105"})  # check digit wrong
    with pytest.raises(RulesetError, match="not a SNOMED CT concept id"):
        load_text(tmp_path, TEXT, lists)
    lists["cga"] = codelists["mdt_review"]
    with pytest.raises(RulesetError, match="a code must record one step"):
        load_text(tmp_path, TEXT, lists)
    lists["cga"] = frozenset()
    with pytest.raises(RulesetError, match="has no codes"):
        load_text(tmp_path, TEXT, lists)


def test_removed_transition_leaves_a_gap(tmp_path: Path,
                                         codelists: dict[str, frozenset[str]]) -> None:
    def drop(data: dict[str, Any]) -> None:
        data["transitions"] = [t for t in data["transitions"] if t["id"] != "PWY-062"]

    message = load_mutated(tmp_path, drop, codelists)
    [(_, msg)] = error_lines(message)
    assert "step 'step_down' has no effect declared in state(s) stepped_down" in msg


def test_duplicated_transition(tmp_path: Path, codelists: dict[str, frozenset[str]]) -> None:
    def dup(data: dict[str, Any]) -> None:
        extra = dict(next(t for t in data["transitions"] if t["id"] == "PWY-070"))
        extra["id"] = "PWY-099"
        data["transitions"].append(extra)

    message = load_mutated(tmp_path, dup, codelists)
    [(_, msg)] = error_lines(message)
    assert "transition PWY-099: step 'decline' in state 'identified' already has an effect " \
           "(transition PWY-070" in msg


def test_unreachable_state(tmp_path: Path, codelists: dict[str, frozenset[str]]) -> None:
    def add_state(data: dict[str, Any]) -> None:
        data["states"].append({"id": "limbo", "title": "Limbo", "description": "Nowhere."})
        for t in data["transitions"]:  # every step acts in it as in stepped_down; no way in
            if "stepped_down" in t["from"]:
                t["from"] = [*t["from"], "limbo"]

    message = load_mutated(tmp_path, add_state, codelists)
    [(_, msg)] = error_lines(message)
    assert "state 'limbo' cannot be reached from the initial state 'not_identified'" in msg


def test_state_without_a_way_out(tmp_path: Path, codelists: dict[str, frozenset[str]]) -> None:
    def trap(data: dict[str, Any]) -> None:
        # Make 'declined' final: every coded step keeps it (only death leaves it).
        for t in data["transitions"]:
            if "declined" in t["from"] and t["step"] != "death" and "to" in t:
                t["from"] = [f for f in t["from"] if f != "declined"]
        data["transitions"] = [t for t in data["transitions"] if t["from"]]
        data["transitions"].append({
            "id": "PWY-097", "step": "identify", "from": ["declined"], "no_change": True,
            "provenance": "assumption", "why": "test"})
        data["transitions"].append({
            "id": "PWY-096", "step": "enrol", "from": ["declined"], "no_change": True,
            "provenance": "assumption", "why": "test"})
        data["transitions"].append({
            "id": "PWY-095", "step": "not_appropriate", "from": ["declined"], "no_change": True,
            "provenance": "assumption", "why": "test"})

    message = load_mutated(tmp_path, trap, codelists)
    [(_, msg)] = error_lines(message)
    assert "state 'declined' has no coded way out and is not declared terminal" in msg


def test_terminal_state_must_not_be_left(tmp_path: Path,
                                         codelists: dict[str, frozenset[str]]) -> None:
    def revive(data: dict[str, Any]) -> None:
        t = next(t for t in data["transitions"] if t["id"] == "PWY-039")
        del t["violation"]
        t["to"] = "on_caseload"

    message = load_mutated(tmp_path, revive, codelists)
    assert "terminal state 'deceased' must not be left" in message


@pytest.mark.parametrize(
    ("old", "new", "needle", "expected"),
    [
        ("    to: identified\n    provenance: guidance", "    no_change: true\n    to: identified"
         "\n    provenance: guidance", "  - id: PWY-010", "exactly one effect"),
        ("    violation: PWF-010\n", "    violation: PWF-011\n", "violation: PWF-011",
         "unknown finding 'PWF-011'"),
        ("    provenance: guidance\n    cite:\n      source: 000_ae3274b61be1e38b.txt\n"
         "      section: Identifying patients",
         "    provenance: guidance\n    kite:\n      source: 000_ae3274b61be1e38b.txt\n"
         "      section: Identifying patients", "kite:", "unknown key"),
        ("status: draft\n", "status: drafty\n", "status: drafty", "status"),
        ("    precedence: 40\n", "    precedence: 30  # same as enrol\n", "same as enrol",
         "same precedence (30) as step 'enrol'"),
        ("    hazards: [HAZ-020]\n", "    hazards: [HAZARD-20]\n", "HAZARD-20", "hazards"),
        ("initial: not_identified\n", "initial: nowhere\n", "initial: nowhere",
         "unknown state 'nowhere'"),
    ],
)
def test_bad_yaml_is_reported_at_its_line(tmp_path: Path, codelists: dict[str, frozenset[str]],
                                          old: str, new: str, needle: str,
                                          expected: str) -> None:
    assert old in TEXT
    bad = TEXT.replace(old, new, 1)
    with pytest.raises(RulesetError) as info:
        load_text(tmp_path, bad, codelists)
    lines = error_lines(str(info.value))
    assert any(line == line_of(bad, needle) and expected in msg for line, msg in lines), lines


def test_several_problems_are_reported_together(tmp_path: Path,
                                                codelists: dict[str, frozenset[str]]) -> None:
    bad = (TEXT.replace("codelists: [int_declined]", "codelists: [int_decline]", 1)
           .replace("    to: on_caseload_assessed\n", "    to: on_caseload_asessed\n", 1))
    with pytest.raises(RulesetErrors) as info:
        load_text(tmp_path, bad, codelists)
    assert len(info.value.errors) == 2


def test_guidance_provenance_needs_a_citation(tmp_path: Path,
                                              codelists: dict[str, frozenset[str]]) -> None:
    def uncite(data: dict[str, Any]) -> None:
        del next(t for t in data["transitions"] if t["id"] == "PWY-010")["cite"]

    assert "provenance 'guidance' needs a 'cite'" in load_mutated(tmp_path, uncite, codelists)


# -- citations --------------------------------------------------------------------------------


def _guidance_dir() -> Path | None:
    for candidate in (REPO / "rulesets" / "guidance", REPO.parent / "shared" / "guidance"):
        if candidate.is_dir():
            return candidate
    return None


def _norm(text: str) -> str:
    return " ".join(text.replace("**", "").split())


@pytest.mark.skipif(_guidance_dir() is None, reason="guidance files not present")
def test_every_citation_is_verbatim_under_its_heading(pw: Pathway) -> None:
    folder = _guidance_dir()
    assert folder is not None
    d = pw.definition
    cited = [(t.id, t.cite) for t in d.transitions] + [(s.id, s.cite) for s in d.same_day]
    assert (folder / d.guidance).is_file()
    for item_id, cite in cited:
        if cite is None:
            continue
        lines = (folder / cite.source).read_text(encoding="utf-8").splitlines()
        starts = [i for i, line in enumerate(lines) if _norm(line) == _norm(cite.section)]
        assert starts, f"{item_id}: heading {cite.section!r} not in {cite.source}"
        # The quote sits within the passage under one of the heading's occurrences.
        assert any(_norm(cite.quote) in _norm(" ".join(lines[i:i + 45])) for i in starts), (
            f"{item_id}: quote not found under {cite.section!r}: {cite.quote!r}")


# -- documentation ----------------------------------------------------------------------------


def test_docs_pathway_md_is_current(bundled: tuple[Pathway, dict[str, tuple[str, bool]]]) -> None:
    assert DOC.read_text(encoding="utf-8") == render_pathway_markdown(*bundled), (
        "docs/pathway.md is stale: run `python -m int_rules.pathway_doc > docs/pathway.md`")


def test_docs_mark_unverified_codes_and_cover_every_transition(pw: Pathway) -> None:
    terms = {code: ("A term", code != min(pw.codes)) for code in pw.codes}
    page = render_pathway_markdown(pw, terms)
    assert "```mermaid" in page
    unverified_rows = [line for line in page.splitlines()
                       if line.startswith("|") and "UNVERIFIED" in line]
    assert len(unverified_rows) == 1 and min(pw.codes) in unverified_rows[0]
    for t in pw.definition.transitions:
        assert f"| {t.id} |" in page
    assert "**missing**" not in page


def test_mermaid_has_every_state_and_change(pw: Pathway) -> None:
    text = pw.to_mermaid()
    assert text.startswith("stateDiagram-v2\n")
    for s in pw.states:
        assert f" as {s}\n" in text
    assert f"[*] --> {pw.initial}\n" in text
    for t in pw.definition.transitions:
        if t.to is not None:
            for f in t.from_:
                assert f"    {f} --> {t.to} : " in text
