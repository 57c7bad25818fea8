"""Differential: every engine agrees with the reference on generated records of the bundled
rulebook (one call of :func:`int_rules.engines.conformance.compare_engines` per engine)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import int_rules
from int_rules import PatientRecord
from int_rules.engines import conformance
from tests.population_support import one_line
from tests.strategies import AS_OF, patient_records

BOOK = int_rules.load()
#: Each example is a population run for DuckDB: a few by default, more in the deep profile.
EXAMPLES = 300 if os.environ.get("INT_RULES_HYPOTHESIS_PROFILE") == "deep" else 10


@pytest.mark.parametrize("engine", [e for e in conformance.ENGINES if e != "reference"])
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(records=st.lists(patient_records(), min_size=1, max_size=8,
                        unique_by=lambda r: r.patient_id))
def test_engine_agrees_with_the_reference(engine: str, records: list[PatientRecord]) -> None:
    if engine == "durable":
        pytest.importorskip("durable_rules_engine", reason="the durable extra is not installed")
    # Analyst tables hold one row per line (docs/population.md), so text goes without breaks.
    records = [one_line(r) for r in records]
    records = [r.model_copy(update={"practice": (r.practice or "").strip() or None,
                                    "neighbourhood": (r.neighbourhood or "").strip() or None})
               for r in records]
    problems = conformance.compare_engines(BOOK, records, AS_OF, engine,
                                           workdir=Path(tempfile.mkdtemp()))
    assert not problems, "\n".join(problems)
