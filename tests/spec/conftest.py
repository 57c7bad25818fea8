"""The spec suite's engine fixture: every case runs on every engine.

An engine that cannot support a case is listed in :data:`UNSUPPORTED` with the reason (as
ehrQL lists its ignored errors); the list is meant to stay empty.
"""

from __future__ import annotations

import pytest

from int_rules.engines.conformance import ENGINES

#: (engine, case id) -> why the engine cannot run that case.
UNSUPPORTED: dict[tuple[str, str], str] = {}


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "durable":
        pytest.importorskip("durable_rules_engine", reason="the durable extra is not installed")
    if name == "spark":
        request.getfixturevalue("spark_session")  # started once; skips without Spark
    return name
