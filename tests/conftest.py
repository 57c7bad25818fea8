"""Shared pytest configuration: Hypothesis settings profiles.

Choose one with the environment variable ``INT_RULES_HYPOTHESIS_PROFILE`` (see
``docs/testing.md``):

* ``ci`` (default): quick, about 100 examples per property, for every run and for CI;
* ``deep``: thousands of examples per property, for a thorough run before a release or after
  changing a ruleset, e.g. ``INT_RULES_HYPOTHESIS_PROFILE=deep pytest tests/test_pathway_properties.py``.

Both disable Hypothesis's per-example deadline (shared CI machines are noisy). Examples are
random; a failure prints the falsifying example and how to reproduce it, and is replayed first
on the next run from Hypothesis's example database (``.hypothesis/``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

import int_rules
from int_rules.rulebook import Rulebook

PROFILE_ENV = "INT_RULES_HYPOTHESIS_PROFILE"

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "deep",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_profile = os.environ.get(PROFILE_ENV, "ci")
if _profile not in ("ci", "deep"):
    raise ValueError(f"{PROFILE_ENV}={_profile!r}: choose 'ci' or 'deep'")
settings.load_profile(_profile)


@pytest.fixture(scope="session")
def book() -> Rulebook:
    """The bundled rulebook, loaded once per test session (it is immutable)."""
    return int_rules.load()


#: Set (as CI does) to make a missing Spark (PySpark or Java) a failure instead of a skip.
REQUIRE_SPARK_ENV = "INT_RULES_REQUIRE_SPARK"


def _no_spark(reason: str) -> None:
    if os.environ.get(REQUIRE_SPARK_ENV):
        pytest.fail(f"{REQUIRE_SPARK_ENV} is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def spark_session() -> Iterator[Any]:
    """One local Spark session for the whole test run (starting one takes 10-20 s): two cores,
    two shuffle partitions, a 3 GB driver. Skips when PySpark or Java is missing."""
    import shutil

    try:
        import pyspark  # noqa: F401
    except ImportError:
        _no_spark("the spark extra is not installed (pip install -e '.[spark]')")
    if shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        _no_spark("no Java runtime (Spark needs Java 17 or later)")
    from int_rules.engines.spark import session

    spark = session("local[2]", driver_memory="3g",
                    config={"spark.sql.shuffle.partitions": "2",
                            "spark.default.parallelism": "2"})
    spark.sparkContext.setLogLevel("ERROR")
    yield spark
    spark.stop()
