"""People read the guidance as "Version 1 (2024)" / "Version 2 (December 2025)", not by file name.

The mapping is data (``guidance_names`` in the rulebook manifest); explanations, the reference
and the safety case use it, while machine-readable output keeps the exact file name.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import int_rules
from int_rules.guidance_names import guidance_name, with_guidance_names
from int_rules.record import PatientRecord
from int_rules.review.docs import render_reference

BOOK = int_rules.load()
V1, V2 = "000_ae3274b61be1e38b.txt", "001_0d4f5c8ba846d66c.txt"
RECORD = Path(__file__).resolve().parent.parent / "examples" / "records" / "frail_on_caseload.json"


def test_the_bundled_rulebook_names_both_guidance_files() -> None:
    names = BOOK.manifest.guidance_names
    assert names == {V1: "Version 1 (2024)", V2: "Version 2 (December 2025)"}


def test_a_file_without_a_name_keeps_its_file_name() -> None:
    assert guidance_name({V1: "Version 1 (2024)"}, "other.txt") == "other.txt"
    assert with_guidance_names({V1: "Version 1 (2024)"}, f"see `{V1}` and {V1}") == (
        "see Version 1 (2024) and Version 1 (2024)")


def test_explanation_names_the_version_not_the_file() -> None:
    assessment = BOOK.assess(PatientRecord.from_json_file(RECORD), dt.date(2026, 11, 23))
    text = assessment.explain()
    assert "Version 2 (December 2025)" in text
    assert V1 not in text and V2 not in text
    # the machine-readable form keeps the exact file, so a citation can be checked
    cites = {o["cite"]["source"] for o in assessment.to_dict()["outcomes"]}
    assert cites and cites <= {V1, V2}


def test_reference_pages_name_the_versions_not_the_files() -> None:
    pages = render_reference(BOOK)
    for name, text in pages.items():
        assert V1 not in text and V2 not in text, name
    assert "Version 1 (2024)" in pages["identification.md"]
