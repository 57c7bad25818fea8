"""The record vocabulary facts may read: sources, their filter and value fields, attributes."""

from __future__ import annotations

from collections.abc import Mapping

from .nodes import ValueType

__all__ = ["ATTRIBUTE_TYPES", "VALUE_FIELDS", "WHERE_FIELDS"]

#: Fields each source may be filtered on with ``where``, and their Python types.
WHERE_FIELDS: Mapping[str, Mapping[str, type]] = {
    "events": {"is_problem": bool},
    "admissions": {"emergency": bool},
    "risk_scores": {"source": str},
    "monitoring": {"kind": str, "measure": str},
}

#: Numeric fields ``latest_value`` may read, per source (the first is the default).
VALUE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "events": ("value",),
    "admissions": ("length_of_stay",),
    "risk_scores": ("value",),
    "monitoring": ("value",),
}

#: Record attributes an ``attribute`` fact may read: their type, and whether they can be missing.
ATTRIBUTE_TYPES: Mapping[str, ValueType] = {
    "sex": ValueType("category", ("female", "male", "other", "unknown")),
    "gp_system": ValueType("category", ("EMIS", "SystmOne", "other")),
    "neighbourhood": ValueType("text"),
    "practice": ValueType("text"),
}
ATTRIBUTE_NULLABLE: Mapping[str, bool] = {
    "sex": False, "gp_system": True, "neighbourhood": True, "practice": True,
}
