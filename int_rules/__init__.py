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

The names below are imported on first use (PEP 562), so ``import int_rules`` itself imports
nothing: the command line (:mod:`int_rules.__main__`) starts inside its Ctrl-C handler, before
pydantic, DuckDB or pyarrow load.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
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

    __version__: str

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

#: Each public name -> the module that defines it.
_HOME = {
    "Assessment": "assessment", "HitPolicyError": "assessment", "Outcome": "assessment",
    "CodelistError": "errors", "EngineUnavailableError": "errors", "IntRulesError": "errors",
    "RecordError": "errors", "RulesetError": "errors", "RulesetErrors": "errors",
    "SnomedCodeError": "errors",
    "FactValue": "facts",
    "Admission": "record", "CodedEvent": "record", "MonitoringEvent": "record",
    "PatientRecord": "record", "RiskScore": "record",
    "Rulebook": "rulebook", "load": "rulebook",
}


def _version() -> str:
    """The installed version (one source: pyproject.toml, via the metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("int_rules")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> object:
    """Import a public name from its module on first use."""
    if name == "__version__":
        value: object = _version()
    elif name in _HOME:
        value = getattr(__import__(f"{__name__}.{_HOME[name]}", fromlist=[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups find it directly, as an eager import would
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
