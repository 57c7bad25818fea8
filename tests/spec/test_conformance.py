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


def _agrees(engine: str, records: list[PatientRecord]) -> None:
    # Analyst tables hold one row per line (docs/population.md), so text goes without breaks.
    records = [one_line(r) for r in records]
    records = [r.model_copy(update={"practice": (r.practice or "").strip() or None,
                                    "neighbourhood": (r.neighbourhood or "").strip() or None})
               for r in records]
    problems = conformance.compare_engines(BOOK, records, AS_OF, engine,
                                           workdir=Path(tempfile.mkdtemp()))
    assert not problems, "\n".join(problems)


_RECORDS = st.lists(patient_records(), min_size=1, max_size=8, unique_by=lambda r: r.patient_id)


@pytest.mark.parametrize("engine", [e for e in conformance.ENGINES
                                    if e not in ("reference", "spark")])
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(records=_RECORDS)
def test_engine_agrees_with_the_reference(engine: str, records: list[PatientRecord]) -> None:
    if engine == "durable":
        pytest.importorskip("durable_rules_engine", reason="the durable extra is not installed")
    _agrees(engine, records)


@pytest.mark.spark
@settings(max_examples=max(3, EXAMPLES // 3), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(records=st.lists(patient_records(), min_size=1, max_size=20,
                        unique_by=lambda r: r.patient_id))
def test_spark_agrees_with_the_reference(spark_session: object,
                                         records: list[PatientRecord]) -> None:
    """Each example is a Spark run (several seconds): fewer examples, more records each."""
    _agrees("spark", records)
