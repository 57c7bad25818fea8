"""Every step of the caseload pathway in every state, on every engine.

For each cell of the pathway table (``rulesets/pathway.yaml``: what a step does in a state) a
record reaches the state by the shortest run of steps that raise no finding, then takes the
step a few days later. The expected state and finding are the cell's own, as declared.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import tempfile
from pathlib import Path
from typing import Any

import pytest

from int_rules import PatientRecord
from int_rules.engines.conformance import PatientOutcome, outcomes
from int_rules.model import nodes as n
from tests.spec.runner import book_of

AS_OF = dt.date(2026, 1, 1)
START = dt.date(2020, 1, 1)


def _table() -> n.PathwayTable:
    return book_of("pathway").model.pathway


def _paths(table: n.PathwayTable) -> dict[str, list[str]]:
    """The shortest finding-free run of steps from the initial state to each state."""
    cells = collections.defaultdict(list)
    for c in table.cells:
        if c.finding is None and c.to_state != c.state:
            cells[c.state].append(c)
    paths = {table.initial: []}
    queue = collections.deque([table.initial])
    while queue:
        state = queue.popleft()
        for c in cells[state]:
            if c.to_state not in paths:
                paths[c.to_state] = [*paths[state], c.step]
                queue.append(c.to_state)
    return paths


def _record(table: n.PathwayTable, pid: str, steps: list[str]) -> dict[str, Any]:
    code_of = {s.id: min(s.codes) for s in table.steps if s.codes}
    events = []
    death = None
    for i, step in enumerate(steps):
        day = START + dt.timedelta(days=10 * (i + 1))
        if step in code_of:
            events.append({"code": code_of[step], "date": day})
        else:
            death = day
    return {"patient_id": pid, "date_of_birth": dt.date(1940, 1, 1), "events": events,
            "date_of_death": death}


def _cases() -> list[tuple[str, n.PathwayCell]]:
    table = _table()
    return [(f"{c.state}-{c.step}", c) for c in table.cells
            if not (c.state == "deceased" and c.step == table.death_step.id)]


@functools.cache
def _run(engine: str) -> dict[str, PatientOutcome]:
    table = _table()
    paths = _paths(table)
    records = [PatientRecord.from_dict(_record(table, pid, [*paths[c.state], c.step]))
               for pid, c in _cases()]
    return outcomes(book_of("pathway"), records, AS_OF, engine, Path(tempfile.mkdtemp()))


def test_every_state_is_reached() -> None:
    table = _table()
    assert set(_paths(table)) == set(table.states)


@pytest.mark.parametrize(("pid", "cell"), _cases(), ids=[pid for pid, _ in _cases()])
def test_step_in_state(pid: str, cell: n.PathwayCell, engine: str) -> None:
    got = _run(engine)[pid]
    want_findings = (cell.finding.id,) if cell.finding is not None else ()
    assert (got.pathway_state, got.pathway_findings) == (cell.to_state, want_findings)
