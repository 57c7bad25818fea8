"""Small-number suppression for dashboard figures shared beyond the care team.

As OpenSAFELY's disclosure control does: a count of 1 to 7 is suppressed (shown as
``[REDACTED]``), every other count is rounded to the nearest 5 (0 stays 0), and a share is
recomputed from the rounded counts (suppressed when either count is). The guide's own figures
(``guide_*`` columns, already published) are left as they are. Which figures are counts comes
from the dashboard definition, not from here.
"""

from __future__ import annotations

from typing import Any

from .dashboard import DashboardTable

__all__ = ["REDACTED", "SUPPRESSION", "round_count", "suppress"]

REDACTED = "[REDACTED]"
SUPPRESSION = "counts 1-7 suppressed, others rounded to the nearest 5"
_THRESHOLD = 7
_ROUND_TO = 5


def round_count(n: int) -> int | str:
    """One count after suppression: ``[REDACTED]`` for 1 to 7, else rounded to 5 (half up)."""
    if 0 < n <= _THRESHOLD:
        return REDACTED
    return int((n + _ROUND_TO // 2) // _ROUND_TO * _ROUND_TO)


def suppress(table: DashboardTable) -> DashboardTable:
    """``table`` with every count suppressed or rounded, and shares recomputed from them."""
    counts = {"population"} | {c.name for m in table.dashboard.available
                               if m.kind != "share" for c in m.columns}
    for row in table.rows:
        for name in counts:
            value = row.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                row[name] = round_count(value)
        for m in table.dashboard.available:
            if m.kind != "share" or m.definition.share is None:
                continue
            num: Any = row.get(m.definition.share.of)
            den: Any = row.get(m.definition.share.per)
            if isinstance(num, int) and isinstance(den, int) and den:
                row[m.id] = num / den
            else:
                row[m.id] = REDACTED if REDACTED in (num, den) else None
            if m.expect is not None and isinstance(row[m.id], float):
                row[f"{m.id}_vs_guidance"] = table.status(m, row[m.id])
            elif m.expect is not None:
                row[f"{m.id}_vs_guidance"] = ""
        for m in table.dashboard.available:
            if m.kind == "count" and m.expect is not None and row.get(f"{m.id}_vs_guidance"):
                value = row.get(m.id)
                row[f"{m.id}_vs_guidance"] = (table.status(m, float(value))
                                              if isinstance(value, int) else "")
    table.suppression = SUPPRESSION
    return table
