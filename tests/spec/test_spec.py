"""Every spec case (``tests/spec/cases/*.yaml``) on every engine, with its expected values."""

from __future__ import annotations

import pytest

from tests.spec.conftest import UNSUPPORTED
from tests.spec.runner import Case, all_cases, check, load_error, run

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.file}:{c.id}" for c in CASES])
def test_case(case: Case, engine: str) -> None:
    reason = UNSUPPORTED.get((engine, case.id))
    if reason is not None:
        pytest.skip(reason)
    if case.load_error is not None:
        assert case.load_error in load_error(case)
        return
    problems = check(case, run(case.file, engine, case.as_of))
    assert not problems, "\n".join(problems)


def test_patient_ids_are_unique_per_file() -> None:
    seen: dict[tuple[str, str], str] = {}
    for case in CASES:
        for r in case.records:
            key = (case.file, r["patient_id"])
            assert key not in seen, f"{key} in {case.id} and {seen[key]}"
            seen[key] = case.id
