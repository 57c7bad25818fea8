"""The guide's expected figures per neighbourhood, beside a run's dashboard.

Version 1's supporting information ("INT Caseloads - Searches") gives, per neighbourhood, the
registered population aged 65+, the prevalence of frailty, and how many people its searches
identified (a share of the over-65s). The bundled copy, ``int_rules/data/neighbourhoods.tsv``,
is the only place those numbers are written; :func:`add_expected` puts them in the dashboard
rows (columns ``guide_*``) of the neighbourhoods that have a row there (matched by name,
ignoring case and spacing), and the report shows them next to the run's own figures.

A synthetic run is a sample of a full-scale synthetic ICS: :func:`synthetic_scale` reads the
``synth.json`` ``int-rules synth`` writes beside the tables, and the report gives each
neighbourhood's caseload scaled to the full size.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..synth import Neighbourhood, full_scale_patients, load_neighbourhoods
from .dashboard import ALL_NEIGHBOURHOODS, Column, DashboardTable

__all__ = ["GUIDE_COLUMNS", "SyntheticScale", "add_expected", "synthetic_scale"]

GUIDE_SOURCE = ("Version 1 (2024), supporting information, \u201cINT Caseloads - Searches\u201d "
                "(int_rules/data/neighbourhoods.tsv)")

#: The guide's columns added to the dashboard (name, title).
GUIDE_COLUMNS: tuple[Column, ...] = (
    Column("guide_registered_65_plus", "Guide: registered population 65+", "guide"),
    Column("guide_frailty_prevalence", "Guide: people living with frailty (prevalence)", "guide"),
    Column("guide_frailty_share", "Guide: frailty prevalence, share of the 65+", "guide"),
    Column("guide_identified", "Guide: identified by the Version 1 searches", "guide"),
    Column("guide_identified_share", "Guide: identified, share of the 65+", "guide"),
)


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def guide_rows(neighbourhoods: Sequence[Neighbourhood] | None = None
               ) -> dict[str, dict[str, Any]]:
    """The guide's figures by neighbourhood key (and the total under ``ALL_NEIGHBOURHOODS``)."""
    rows: dict[str, dict[str, Any]] = {}
    nbhs = load_neighbourhoods() if neighbourhoods is None else neighbourhoods
    for n in nbhs:
        rows[_key(n.name)] = {
            "guide_registered_65_plus": n.registered_65_plus,
            "guide_frailty_prevalence": n.frailty_prevalence_count,
            "guide_frailty_share": n.frailty_prevalence_count / n.registered_65_plus,
            "guide_identified": n.identified,
            "guide_identified_share": n.identified_share,
        }
    reg = sum(n.registered_65_plus for n in nbhs)
    frail = sum(n.frailty_prevalence_count for n in nbhs)
    ident = sum(n.identified for n in nbhs)
    rows[_key(ALL_NEIGHBOURHOODS)] = {
        "guide_registered_65_plus": reg, "guide_frailty_prevalence": frail,
        "guide_frailty_share": frail / reg if reg else None, "guide_identified": ident,
        "guide_identified_share": ident / reg if reg else None}
    return rows


def add_expected(table: DashboardTable) -> DashboardTable:
    """``table`` with the guide's columns filled for every neighbourhood the guide lists (the
    total row gets the guide's totals only when every guide neighbourhood is in the run)."""
    guide = guide_rows()
    names = {_key(r["neighbourhood"]) for r in table.rows}
    complete = all(k in names for k in guide if k != _key(ALL_NEIGHBOURHOODS))
    for row in table.rows:
        key = _key(row["neighbourhood"])
        values = guide.get(key) if (key != _key(ALL_NEIGHBOURHOODS) or complete) else None
        for c in GUIDE_COLUMNS:
            row[c.name] = None if values is None else values[c.name]
    table.extra = [*table.extra, *GUIDE_COLUMNS]
    return table


@dataclass(frozen=True)
class SyntheticScale:
    """A synthetic run's size against the full-scale synthetic ICS."""

    patients: int
    full_scale: int
    seed: int | None

    @property
    def factor(self) -> float:
        return self.full_scale / self.patients

    @property
    def is_full_scale(self) -> bool:
        return self.patients >= self.full_scale


def synthetic_scale(data_dir: Path) -> SyntheticScale | None:
    """The scale of a synthetic extract (from its ``synth.json``), or ``None`` if the data are
    not from ``int-rules synth``."""
    path = data_dir / "synth.json"
    if not path.is_file():
        return None
    try:
        meta: Mapping[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        patients = int(meta["patients"])
    except (ValueError, KeyError, TypeError):
        return None
    seed = meta.get("seed")
    return SyntheticScale(patients, full_scale_patients(), seed if isinstance(seed, int)
                          else None)
