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
