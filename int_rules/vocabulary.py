"""The input vocabulary: the values a record (JSON) and an analyst's table (CSV/Parquet) accept.

Written once and used by both readers (:mod:`int_rules.record` and
:mod:`int_rules.population.tables`), so a value means the same wherever it is given:

* **dates**: ``YYYY-MM-DD`` text (a real date, years 1 to 9999) or a ``datetime.date``; nothing
  else (no timestamps, no numbers, no date-and-time). A date of birth may also be ``YYYY-MM``
  (taken as the 1st of the month, precision ``month``).
* **numbers**: a finite number, or its decimal text (``-1.5``, ``2e3``; at most
  :data:`MAX_NUMBER_TEXT` characters); never NaN, infinity or a boolean.
* **flags** (``is_problem``, ``emergency``): true or false, or the text forms in
  :data:`TRUE_TEXT` / :data:`FALSE_TEXT` (any case).
* **sex**: :data:`SEXES` (any case); **GP system**: :data:`GP_SYSTEMS` (any case, ``S1`` for
  SystmOne); **monitoring kind**: :data:`MONITORING_KINDS` (any case).
* **text** is trimmed of surrounding white space; empty text is "not recorded". A patient id
  is at most :data:`MAX_ID_LENGTH` characters.

Each ``parse_*`` function returns the value or raises :class:`ValueError` with a message that
says what was expected.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

__all__ = [
    "FALSE_TEXT",
    "GP_SYSTEMS",
    "MAX_ID_LENGTH",
    "MAX_NUMBER_TEXT",
    "MONITORING_KINDS",
    "SEXES",
    "TRUE_TEXT",
    "parse_bool",
    "parse_date",
    "parse_gp_system",
    "parse_kind",
    "parse_number",
    "parse_sex",
]

TRUE_TEXT = ("true", "t", "1", "yes", "y")
FALSE_TEXT = ("false", "f", "0", "no", "n")
SEXES = ("female", "male", "other", "unknown")
MONITORING_KINDS = ("reading", "alert")
#: Lower-cased text -> the GP system it names.
GP_SYSTEMS = {"emis": "EMIS", "systmone": "SystmOne", "s1": "SystmOne", "other": "other"}
MAX_NUMBER_TEXT = 50
#: A patient id is at most this many characters (pseudonyms and NHS numbers are far shorter;
#: a longer one is a broken extract, and would be repeated in every message about it).
MAX_ID_LENGTH = 256

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_date(value: Any) -> dt.date:
    """A date: a ``datetime.date`` or ``YYYY-MM-DD`` text."""
    if isinstance(value, dt.datetime):
        raise ValueError(f"{_shown(value)} is a date and time, not a date (expected YYYY-MM-DD)")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _DATE.fullmatch(text):
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{_shown(value)} is not a valid date (expected "
                                 "YYYY-MM-DD): no such day") from None
    raise ValueError(f"{_shown(value)} is not a valid date (expected YYYY-MM-DD)")


def parse_birth_date(value: Any) -> tuple[dt.date, str]:
    """(date, precision): ``YYYY-MM-DD`` (``day``) or ``YYYY-MM`` (``month``: the 1st)."""
    if isinstance(value, str) and _MONTH.fullmatch(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip() + "-01"), "month"
        except ValueError:
            raise ValueError(f"{_shown(value)} is not a valid date (expected YYYY-MM-DD or "
                             "YYYY-MM): no such month") from None
    try:
        return parse_date(value), "day"
    except ValueError:
        raise ValueError(f"{_shown(value)} is not a valid date (expected YYYY-MM-DD or YYYY-MM)"
                         ) from None


def parse_number(value: Any) -> float:
    """A finite number, or its decimal text."""
    if isinstance(value, bool):
        raise ValueError(f"{_shown(value)} is not a number (true/false is a flag)")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise ValueError("the number is too large") from None
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_NUMBER_TEXT:
            raise ValueError(f"{len(text):,} characters is too long for a number (at most "
                             f"{MAX_NUMBER_TEXT})")
        if not _NUMBER.fullmatch(text):
            raise ValueError(f"{_shown(value)} is not a number")
        number = float(text)
    else:
        raise ValueError(f"{_shown(value)} is not a number")
    if not math.isfinite(number):
        raise ValueError(f"{_shown(value)} is not a finite number (no NaN or infinity)")
    return number


def parse_bool(value: Any) -> bool:
    """True or false, or one of their text forms (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in TRUE_TEXT:
            return True
        if low in FALSE_TEXT:
            return False
    raise ValueError(f"{_shown(value)} is not true or false (also 1/0, yes/no)")


def _one_of(value: Any, allowed: tuple[str, ...], what: str) -> str:
    if isinstance(value, str) and value.strip().lower() in allowed:
        return value.strip().lower()
    raise ValueError(f"{_shown(value)} is not {what}: one of {', '.join(allowed)}")


def parse_sex(value: Any) -> str:
    """One of :data:`SEXES` (any case)."""
    return _one_of(value, SEXES, "a sex")


def parse_kind(value: Any) -> str:
    """One of :data:`MONITORING_KINDS` (any case)."""
    return _one_of(value, MONITORING_KINDS, "a monitoring kind")


def parse_gp_system(value: Any) -> str:
    """EMIS, SystmOne (or S1) or other, any case."""
    if isinstance(value, str) and value.strip().lower() in GP_SYSTEMS:
        return GP_SYSTEMS[value.strip().lower()]
    raise ValueError(f"{_shown(value)} is not a GP system: one of EMIS, SystmOne (S1), other")
