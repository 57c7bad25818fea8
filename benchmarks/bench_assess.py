"""Throughput of ``Rulebook.assess`` on records of about 50 events, against a naive baseline.

Every run uses the whole bundled rulebook on the same generated records, in the same process:

* **generated** (``Rulebook.assess``, the default engine): the rulebook as one generated
  Python function (:mod:`int_rules.engines.generated`);
* **reference** baseline: the reference engine, one closure per fact over the record's events
  indexed once by *match group* (the codelists each fact reads);
* **naive** baseline: the reference engine with no index (every fact scans every event of the
  record and tests codelist membership itself).

It also reports the cost of building records: from a dict (``PatientRecord.from_dict``), against
validating every event through pydantic (``PatientRecord.model_validate``, what ``from_dict``
did before it built plain events itself), and from JSON text (``PatientRecord.from_json``).
Records built are kept (as a caller holding a batch does) except in the "each dropped at once"
line (as a loop that assesses each record and moves on does): keeping them adds the garbage
collector's full passes over the growing heap, a cost of the objects kept, not of building.
The "rest of the heap frozen" line keeps them too, with the benchmark's own objects (its
inputs, the records of the assess rounds) frozen out of the collector's passes (``gc.freeze``),
so the passes scan only what is being built.

Run: ``python benchmarks/bench_assess.py [--records N] [--events E] [--seed S] [--repeat R]``.
Prints records per CPU second for each and the ratios; the runs are interleaved and the best
of ``--repeat`` rounds kept. Machines are noisy: compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import random
import time
from collections.abc import Callable
from typing import Any

import int_rules
from int_rules import facts as facts_module
from int_rules.engines import generated, reference
from int_rules.facts import EvalContext, MatchGroups
from int_rules.record import PatientRecord
from int_rules.snomed import check_digit

AS_OF = dt.date(2026, 11, 23)


def generate(n: int, events: int, seed: int, book: int_rules.Rulebook) -> list[dict[str, Any]]:
    """Records with ``events`` coded events each: half from the rulebook's codelists."""
    rng = random.Random(seed)
    listed = sorted({c for cl in book.codelists.values() for c in cl.codes})
    unrelated = []
    while len(unrelated) < 300:
        payload = str(rng.randint(10**7, 10**9)) + "10"
        unrelated.append(payload + check_digit(payload))
    out = []
    for i in range(n):
        evs = []
        for _ in range(events):
            code = rng.choice(listed) if rng.random() < 0.5 else rng.choice(unrelated)
            day = AS_OF - dt.timedelta(days=rng.randint(0, 3650))
            ev: dict[str, Any] = {"code": code, "date": day.isoformat()}
            if rng.random() < 0.1:
                ev["value"] = rng.randint(1, 9)
            evs.append(ev)
        out.append({
            "patient_id": f"B{i:06d}",
            "date_of_birth": (AS_OF - dt.timedelta(days=rng.randint(60 * 365, 100 * 365)))
            .isoformat(),
            "gp_system": rng.choice(["EMIS", "SystmOne"]),
            "events": evs,
            "admissions": [
                {"admitted": (AS_OF - dt.timedelta(days=rng.randint(0, 900))).isoformat(),
                 "emergency": rng.random() < 0.7}
                for _ in range(rng.randint(0, 3))
            ],
            "risk_scores": [{"date": (AS_OF - dt.timedelta(days=rng.randint(0, 120))).isoformat(),
                             "value": round(rng.random(), 3), "source": "DELPPHI"}],
        })
    return out


def naive_build(record: PatientRecord, as_of: dt.date, match: MatchGroups) -> EvalContext:
    """The baseline: for every match group, scan every event and test membership (no index)."""
    events = sorted(record.events, key=lambda e: e.date)
    group_codes: dict[int, set[str]] = {}
    for code, gids in match.code_groups.items():
        for gid in gids:
            group_codes.setdefault(gid, set()).add(code)
    groups = {gid: [ev for ev in events if ev.code in group_codes.get(gid, set())]
              for gid in range(len(match))}
    return EvalContext(record=record, as_of=as_of, groups=groups, events=events)


def rates(runs: dict[str, Callable[[], object]], n: int, repeat: int) -> dict[str, float]:
    """Items per CPU second of each run: the best of ``repeat`` rounds, the runs interleaved
    in each round so that a busy machine slows them alike. CPU time (``process_time``), not
    wall time: on a shared machine the wall clock also counts the time other work held the
    core."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for label, fn in runs.items():
            t0 = time.process_time()
            fn()
            best[label] = min(best[label], time.process_time() - t0)
    return {label: n / seconds for label, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    book = int_rules.load()
    raw = generate(args.records, args.events, args.seed, book)
    texts = [json.dumps(r) for r in raw]
    records = [PatientRecord.from_dict(r) for r in raw]
    for r in records[:200]:  # the engines agree before they are timed
        assert (reference.assess(book, r, AS_OF).comparable()
                == generated.assess(book, r, AS_OF).comparable())
    assert records == [PatientRecord.model_validate(r) for r in raw]

    def naive_run() -> object:
        original = facts_module.EvalContext.build
        try:
            facts_module.EvalContext.build = classmethod(  # type: ignore[method-assign,assignment]
                lambda cls, record, as_of, match: naive_build(record, as_of, match))
            return [reference.assess(book, r, AS_OF) for r in records]
        finally:
            facts_module.EvalContext.build = original  # type: ignore[method-assign]

    assess = rates({
        "generated": lambda: [book.assess(r, AS_OF) for r in records],
        "reference": lambda: [reference.assess(book, r, AS_OF) for r in records],
        "naive": naive_run,
    }, len(records), args.repeat)
    def build_and_drop() -> None:
        for r in raw:
            PatientRecord.from_dict(r)

    build = rates({
        "from_dict": lambda: [PatientRecord.from_dict(r) for r in raw],
        "dropped": build_and_drop,
        "validated": lambda: [PatientRecord.model_validate(r) for r in raw],
        "from_json": lambda: [PatientRecord.from_json(t) for t in texts],
    }, len(raw), args.repeat)
    # The same, with the benchmark's own objects (inputs, records, rulebook) moved out of the
    # collector's reach (gc.freeze): what building costs beside a heap the collector need
    # not scan, as in a worker that holds little else.
    gc.collect()
    gc.freeze()
    try:
        build.update(rates({"from_dict_frozen": lambda: [PatientRecord.from_dict(r) for r in raw]},
                           len(raw), args.repeat))
    finally:
        gc.unfreeze()

    rules = sum(len(rs.rules) for rs in book.rulesets)
    print(f"rulebook {book.id} {book.version}: {len(book.facts)} facts, {rules} rules, "
          f"{len(book.match_groups)} match groups; {len(records)} records x {args.events} "
          f"events; best of {args.repeat} interleaved rounds")

    def line(label: str, per_second: float) -> None:
        print(f"{label:34s}: {per_second:10,.0f} records/s  ({1e6 / per_second:6.1f} us/record)")

    line("assess, generated (the default)", assess["generated"])
    line("assess, reference engine (closures)", assess["reference"])
    line("assess, naive baseline (no index)", assess["naive"])
    def ratio(label: str, value: float) -> None:
        print(f"{label:34s}: {value:10.2f}x")

    ratio("ratio generated / reference", assess["generated"] / assess["reference"])
    ratio("ratio reference / naive", assess["reference"] / assess["naive"])
    line("build record from dict", build["from_dict"])
    line("build record, each dropped at once", build["dropped"])
    line("build record, rest of heap frozen", build["from_dict_frozen"])
    line("build record, every event validated", build["validated"])
    line("build record from JSON", build["from_json"])
    ratio("ratio from_dict / validated", build["from_dict"] / build["validated"])


if __name__ == "__main__":
    main()
