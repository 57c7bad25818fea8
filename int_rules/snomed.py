"""SNOMED CT identifiers: format, partition and Verhoeff check digit.

A SNOMED CT identifier (SCTID) is 6 to 18 decimal digits with no leading zero. Its last digit is
a Verhoeff check digit over the others; the two digits before it are the *partition identifier*,
which says what kind of component it identifies. Only concepts may appear in a codelist or a
record: partition ``00`` (short format, International release) or ``10`` (long format, an
extension such as the UK's, whose namespace is the seven digits before the partition).

>>> is_valid_concept_id("925791000000100")
True
>>> parse_concept_id("925791000000101")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
int_rules.errors.SnomedCodeError: '925791000000101' is not a valid SNOMED CT concept id: the ...
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator

from .errors import SnomedCodeError

__all__ = [
    "CONCEPT_PARTITIONS",
    "SnomedConceptId",
    "check_digit",
    "concept_id_problem",
    "is_valid_concept_id",
    "parse_concept_id",
]

# Verhoeff's dihedral-group tables (multiplication, permutation, inverse).
_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)

#: Partition identifiers of concept ids: short (International) and long (extension) format.
CONCEPT_PARTITIONS = frozenset({"00", "10"})
_DIGITS = frozenset("0123456789")


def _verhoeff_ok(digits: str) -> bool:
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[i % 8][ord(ch) - 48]]
    return c == 0


def check_digit(payload: str) -> str:
    """The Verhoeff check digit to append to ``payload`` (a string of digits)."""
    c = 0
    for i, ch in enumerate(reversed(payload)):
        c = _D[c][_P[(i + 1) % 8][ord(ch) - 48]]
    return str(_INV[c])


def concept_id_problem(value: object) -> str | None:
    """Why ``value`` is not a SNOMED CT concept id, or ``None`` if it is one."""
    if not isinstance(value, str):
        return f"expected a string of digits, got {type(value).__name__}"
    return _string_problem(value)


@lru_cache(maxsize=1 << 16)
def _string_problem(value: str) -> str | None:
    # Memoised: a population reuses a few thousand distinct codes millions of times, and the
    # check digit dominated the cost of building a record. The cache is bounded, thread-safe
    # and invisible to callers (the function is pure).
    if not value:
        return "it is empty"
    if not set(value) <= _DIGITS:
        return "it must contain only the digits 0-9"
    if not 6 <= len(value) <= 18:
        return f"it must be 6 to 18 digits long (this one has {len(value)})"
    if value[0] == "0":
        return "it must not start with 0"
    if not _verhoeff_ok(value):
        return f"the Verhoeff check digit is wrong (expected {check_digit(value[:-1])})"
    partition = value[-3:-1]
    if partition not in CONCEPT_PARTITIONS:
        return (
            f"partition identifier {partition!r} is not a concept partition (00 or 10); "
            "it may be a description or relationship id"
        )
    return None


def is_valid_concept_id(value: object) -> bool:
    """True if ``value`` is a well-formed SNOMED CT concept id."""
    return concept_id_problem(value) is None


def parse_concept_id(value: object) -> str:
    """Return ``value`` as a concept id string, or raise :class:`SnomedCodeError` saying why not.

    Integers are accepted and turned into their decimal string.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    problem = concept_id_problem(value)
    if problem is not None:
        raise SnomedCodeError(f"{value!r} is not a valid SNOMED CT concept id: {problem}")
    assert isinstance(value, str)
    return value


def _validate(value: str) -> str:
    problem = _string_problem(value)
    if problem is not None:
        raise SnomedCodeError(f"{value!r} is not a valid SNOMED CT concept id: {problem}")
    return value


#: A pydantic field type for a SNOMED CT concept id (stored as its decimal string).
SnomedConceptId = Annotated[str, AfterValidator(_validate)]
