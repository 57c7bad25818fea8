"""The durable_rules engine (being written under issue 5; not available yet)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from ..errors import EngineUnavailableError

if TYPE_CHECKING:
    from ..assessment import Assessment
    from ..record import PatientRecord
    from ..rulebook import Rulebook


def assess(book: Rulebook, record: PatientRecord, as_of: dt.date) -> Assessment:
    raise EngineUnavailableError("the durable engine is not available in this version")
