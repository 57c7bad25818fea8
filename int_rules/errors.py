"""The error types int_rules raises.

Every error the library raises on bad input is an :class:`IntRulesError`, so an application can
catch one type. Each subclass says *where* the problem is: a ruleset error names the file, line,
column and key; a record error names the patient and the field; a codelist error names the
codelist file (and row where there is one).
"""

from __future__ import annotations

from pathlib import Path


class IntRulesError(Exception):
    """Base class of every error int_rules raises on bad input."""


class SnomedCodeError(IntRulesError, ValueError):
    """A value that is not a well-formed SNOMED CT concept identifier."""


#: Messages show at most this many characters of a patient id, and list at most this many
#: problems of one record (then how many more): a hostile record cannot flood a terminal.
MAX_ID_SHOWN = 60
MAX_PROBLEMS_SHOWN = 20


def _who(patient_id: str | None) -> str:
    if not patient_id:
        return "record (no patient_id)"
    shown = patient_id if len(patient_id) <= MAX_ID_SHOWN else (
        f"{patient_id[:MAX_ID_SHOWN]}... ({len(patient_id):,} characters)")
    return f"patient {shown!r}"


class RecordError(IntRulesError, ValueError):
    """A patient record that cannot be used, naming the patient and the field."""

    def __init__(self, patient_id: str | None, field: str, message: str) -> None:
        self.patient_id = patient_id
        self.field = field
        self.message = message
        super().__init__(f"{_who(patient_id)}: {field}: {message}")


class RecordErrors(RecordError):
    """Several problems with one record, reported together (the first
    :data:`MAX_PROBLEMS_SHOWN` listed in the message, all of them in ``problems``)."""

    def __init__(self, patient_id: str | None, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        first_field, first_message = problems[0]
        super().__init__(patient_id, first_field, first_message)
        who = _who(patient_id)
        lines = [f"{who}: {field}: {message}" for field, message in problems[:MAX_PROBLEMS_SHOWN]]
        if len(problems) > MAX_PROBLEMS_SHOWN:
            lines.append(f"{who}: ... and {len(problems) - MAX_PROBLEMS_SHOWN:,} more problems")
        self.args = ("\n".join(lines),)


class Location:
    """Where in a YAML file something was written (1-based line and column)."""

    __slots__ = ("column", "file", "line")

    def __init__(self, file: str | Path, line: int | None = None, column: int | None = None):
        self.file = str(file)
        self.line = line
        self.column = column

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __repr__(self) -> str:
        return f"Location({self!s})"


class RulesetError(IntRulesError):
    """A ruleset, pathway, parameter-override or codelist manifest that cannot be used.

    The message starts with ``file:line:column:`` so editors and CI logs link straight to it,
    then names the key or rule, e.g.
    ``rulesets/review.yaml:42:7: rule REV-020: unknown fact 'days_since_mdt'``.
    """

    def __init__(self, location: Location | None, message: str, key: str | None = None) -> None:
        self.location = location
        self.key = key
        self.message = message
        prefix = f"{location}: " if location is not None else ""
        where = f"{key}: " if key else ""
        super().__init__(f"{prefix}{where}{message}")


class RulesetErrors(RulesetError):
    """Several ruleset problems found in one load, reported together."""

    def __init__(self, errors: list[RulesetError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.location, first.message, first.key)
        self.args = ("\n".join(str(e) for e in errors),)


class CodelistError(IntRulesError):
    """A codelist file or manifest entry that cannot be used."""


class EngineUnavailableError(IntRulesError):
    """An engine was asked for that cannot run here (e.g. its optional dependency is missing)."""
