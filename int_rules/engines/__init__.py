"""The engines: backends that translate the rule model (:mod:`int_rules.model`).

Per-record engines (``reference``, ``durable``) follow :class:`RecordEngine`: a function
``assess(book, record, as_of) -> Assessment``. Population engines (``duckdb``) follow
:class:`PopulationEngine`. No engine reads the YAML language models; each reads the model.
Register a new per-record engine in :data:`RECORD_ENGINES` and add it to the spec fixture
(``tests/spec/conftest.py``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
from typing import TYPE_CHECKING, Protocol

from ..errors import EngineUnavailableError

if TYPE_CHECKING:
    from pathlib import Path

    from ..assessment import Assessment
    from ..population.engine import PopulationRun
    from ..record import PatientRecord
    from ..rulebook import Rulebook

__all__ = ["RECORD_ENGINES", "PopulationEngine", "RecordEngine", "record_engine"]


class RecordEngine(Protocol):
    """Assess one record as of one date."""

    def __call__(self, book: Rulebook, record: PatientRecord, as_of: dt.date) -> Assessment: ...


class PopulationEngine(Protocol):
    """Assess every patient of an extract (a directory of analyst tables) as of one date:
    :func:`int_rules.population.run_population` runs the ``duckdb`` engine
    (:func:`int_rules.engines.duckdb.evaluate`) this way."""

    def __call__(self, book: Rulebook, data_dir: str | Path, as_of: dt.date) -> PopulationRun: ...


#: Per-record engines by name: the module whose ``assess`` runs it (imported when first used).
RECORD_ENGINES = {"reference": "int_rules.engines.reference",
                  "generated": "int_rules.engines.generated",
                  "durable": "int_rules.engines.durable"}


def record_engine(name: str) -> RecordEngine:
    """The ``assess`` function of the per-record engine ``name``."""
    module = RECORD_ENGINES.get(name)
    if module is None:
        raise EngineUnavailableError(
            f"unknown engine {name!r}; choose one of: {', '.join(RECORD_ENGINES)}")
    loaded = sys.modules.get(module)  # imported already: no import machinery per call
    engine: RecordEngine = (loaded if loaded is not None
                            else importlib.import_module(module)).assess
    return engine
