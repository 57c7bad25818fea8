"""int_rules: the HWE proactive care blueprint for Integrated Neighbourhood Teams, as rules.

Typical use::

    import datetime as dt
    import int_rules

    book = int_rules.load()                                  # the bundled, validated rulebook
    record = int_rules.PatientRecord.from_json_file("examples/records/frail_on_caseload.json")
    result = book.assess(record, as_of=dt.date(2026, 11, 23))
    print(result.results()["identification"]["cohort"])
    print(result.explain())

Everything is immutable and pure: no clock reads, no global state, safe across threads.
"""

from importlib.metadata import PackageNotFoundError, version

from .assessment import Assessment, HitPolicyError, Outcome
from .errors import (
    CodelistError,
    EngineUnavailableError,
    IntRulesError,
    RecordError,
    RulesetError,
    RulesetErrors,
    SnomedCodeError,
)
from .facts import FactValue
from .record import Admission, CodedEvent, MonitoringEvent, PatientRecord, RiskScore
from .rulebook import Rulebook, load

try:
    __version__: str = version("int_rules")  # one source: pyproject.toml, via the metadata
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Admission",
    "Assessment",
    "CodedEvent",
    "CodelistError",
    "EngineUnavailableError",
    "FactValue",
    "HitPolicyError",
    "IntRulesError",
    "MonitoringEvent",
    "Outcome",
    "PatientRecord",
    "RecordError",
    "RiskScore",
    "Rulebook",
    "RulesetError",
    "RulesetErrors",
    "SnomedCodeError",
    "__version__",
    "load",
]
