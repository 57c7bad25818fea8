"""The generated engine: one Python function per rulebook, written from the rule model.

Its equality with the reference engine is proven by the spec suite (``tests/spec/``: every
case runs on every engine, ``generated`` included) and the differential tests
(``tests/spec/test_conformance.py`` on generated records, and
``tests/test_durable_compiler.py`` on generated rules under every hit policy). These tests
check what is particular to it: where its constants come from, that it is built once, and
that every scenario gives the same assessment as the reference.
"""

from __future__ import annotations

import re

import int_rules
from int_rules.facts import Evidence
from int_rules.scenarios import run_scenarios
from tests.strategies import AS_OF

BOOK = int_rules.load()


def test_the_source_holds_no_code_or_parameter_value() -> None:
    """Codes, windows and thresholds are bound as constants from the model, never written
    into the generated text: no SNOMED CT id (6 to 18 digits) appears in it."""
    source = BOOK.generated.source
    assert source.startswith("def run(record, as_of, pathway, next_codes, fire):")
    assert not re.findall(r"\b\d{6,18}\b", source)
    listed = {c for cl in BOOK.codelists.values() for c in cl.codes}
    assert listed and not any(code in source for code in listed)
    for rs in BOOK.model.decisions:
        assert f"# decision {rs.id}" in source  # every decision is written, in order


def test_built_once_at_load_and_shared_by_every_assessment() -> None:
    record = int_rules.PatientRecord.from_dict({"patient_id": "p", "date_of_birth": "1940-01-01"})
    plan = BOOK.generated
    first = BOOK.assess(record, AS_OF)
    second = BOOK.assess(record, AS_OF)
    assert BOOK.generated is plan and first.engine == "generated"
    assert first.comparable() == second.comparable()
    assert first.comparable() == BOOK.assess(record, AS_OF, engine="reference").comparable()


def test_every_scenario_passes_and_equals_the_reference() -> None:
    cache: dict[str, int_rules.Rulebook] = {}
    generated = run_scenarios(BOOK, engine="generated", book_cache=cache)
    reference = run_scenarios(BOOK, engine="reference", book_cache=cache)
    assert generated and all(r.passed for r in generated), [
        (r.scenario, r.problems) for r in generated if not r.passed]
    for got, want in zip(generated, reference, strict=True):
        assert got.assessment is not None and want.assessment is not None
        assert got.assessment.comparable() == want.assessment.comparable()


def test_evidence_reads_as_tuples_equal_to_the_reference() -> None:
    """The generated engine holds a fact's single item without a tuple around it; read
    through the mapping, every fact's evidence is the tuple the reference engine gives."""
    record = int_rules.PatientRecord.from_dict({
        "patient_id": "p", "date_of_birth": "1940-01-01",
        "events": [{"code": code, "date": "2026-01-05"}
                   for code in sorted(BOOK.codelists["frailty_severe"].codes)[:2]]
        + [{"code": sorted(BOOK.codelists["frailty_moderate"].codes)[0],
            "date": "2025-06-01"}],
        "admissions": [{"admitted": day, "discharged": day, "emergency": True}
                       for day in ("2026-01-10", "2026-02-10")],
    })
    got = BOOK.assess(record, AS_OF).evidence
    want = BOOK.assess(record, AS_OF, engine="reference").evidence
    assert isinstance(got, Evidence)
    assert got == want and dict(got) == dict(want) and list(got) == list(want)
    assert len(got) == len(want) and any(len(items) == 1 for items in got.values())
    assert any(len(items) > 1 for items in got.values())
    for name, items in got.items():
        assert type(items) is tuple and items == want[name]
    assert got.get("no such fact", ()) == () and "no such fact" not in got
    assert repr(got).startswith("Evidence({")
