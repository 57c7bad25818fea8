"""Throughput of ``Rulebook.assess`` on records of about 50 events, against a naive baseline.

Both runs use the whole bundled rulebook on the same generated records, in the same process:

* **indexed** (what the library does): the record's events are indexed once by *match group*
  (the codelists each fact reads), so each fact looks only at its own events;
* **naive** baseline: the same facts and rules, but every fact scans every event of the record
  and tests codelist membership itself (no index).

It also reports the cost of building records: from a dict (``PatientRecord.from_dict``) and from
JSON text (``PatientRecord.from_json``).

Run: ``python benchmarks/bench_assess.py [--records N] [--events E] [--seed S]``. Prints
records/second for each and the ratio. Machines are noisy: compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import time
from collections.abc import Callable
from typing import Any

import int_rules
from int_rules import facts as facts_module
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


def rate(fn: Callable[[], object], n: int, repeat: int = 3) -> float:
    """Best of ``repeat`` runs, in items per second."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    book = int_rules.load()
    raw = generate(args.records, args.events, args.seed, book)
    texts = [json.dumps(r) for r in raw]
    records = [PatientRecord.from_dict(r) for r in raw]

    indexed = rate(lambda: [book.assess(r, AS_OF) for r in records], len(records))
    original = facts_module.EvalContext.build
    try:
        facts_module.EvalContext.build = classmethod(  # type: ignore[method-assign,assignment]
            lambda cls, record, as_of, match: naive_build(record, as_of, match))
        naive = rate(lambda: [book.assess(r, AS_OF) for r in records], len(records))
    finally:
        facts_module.EvalContext.build = original  # type: ignore[method-assign]
    from_dict = rate(lambda: [PatientRecord.from_dict(r) for r in raw], len(raw))
    from_json = rate(lambda: [PatientRecord.from_json(t) for t in texts], len(texts))

    rules = sum(len(rs.rules) for rs in book.rulesets)
    print(f"rulebook {book.id} {book.version}: {len(book.facts)} facts, {rules} rules, "
          f"{len(book.match_groups)} match groups; {len(records)} records x {args.events} events")
    def line(label: str, per_second: float) -> None:
        print(f"{label:26s}: {per_second:10,.0f} records/s  ({1e6 / per_second:6.1f} us/record)")

    line("assess, indexed (library)", indexed)
    line("assess, naive baseline", naive)
    print(f"ratio indexed / naive     : {indexed / naive:10.2f}x")
    line("build record from dict", from_dict)
    line("build record from JSON", from_json)
    print(f"assess / build-from-dict  : {indexed / from_dict:10.2f}x (above 1: building dominates)")


if __name__ == "__main__":
    main()
