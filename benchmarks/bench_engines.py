"""Throughput of the durable engine against the reference engine, on the same records.

Both engines assess the same generated records with the whole bundled rulebook, in one process,
interleaved (best of ``--repeat`` rounds each). The reference engine is the baseline (the
generated engine, the default for ``Rulebook.assess``, is shown beside it):
the figure to read is the ratio, since these machines are noisy. The script first checks that
both engines give equal assessments for every record (exit status 1 if not), so the two timings
measure the same work. It also shows how the gap grows with the number of rules that fire
(durable_rules runs a Python action per fired rule) and reports the one-off compile time.

Records (``--records N``, ``--seed S``): each has a caseload pathway walk (codes from the
pathway's codelists, in the order a record would carry them), codes drawn from the bundled
codelists and unrelated concept ids, dates over five years before ``as_of`` with same-day
clusters, admissions and DELPPHI risk scores. ``--synth`` uses
:func:`int_rules.synth.synthetic_records` instead, when that module is available.

Run: ``python benchmarks/bench_engines.py [--records 2000] [--seed 1] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import int_rules
from int_rules.engines import durable
from int_rules.record import PatientRecord
from int_rules.snomed import check_digit

AS_OF = dt.date(2026, 11, 23)


def generate(n: int, seed: int, book: int_rules.Rulebook) -> list[PatientRecord]:
    rng = random.Random(seed)
    lists = [sorted(cl.codes) for cl in book.codelists.values() if cl.codes]
    steps = [sorted(book.pathway.step_codes[s.id]) for s in book.pathway.definition.steps
             if s.id in book.pathway.step_codes]

    def day(back: int) -> str:
        return (AS_OF - dt.timedelta(days=back)).isoformat()

    def unrelated() -> str:
        payload = f"{rng.randrange(100, 10**8)}00"
        return payload + check_digit(payload)

    records = []
    for i in range(n):
        anchors = [rng.randrange(0, 1800) for _ in range(3)]
        events: list[dict[str, Any]] = []
        back = rng.randrange(200, 1800)
        for step in steps[: rng.randrange(0, len(steps) + 1)]:  # a pathway walk, in order
            back = max(0, back - rng.randrange(0, 300))
            events.append({"code": rng.choice(step), "date": day(back)})
        for _ in range(rng.randrange(0, 30)):
            code = rng.choice(rng.choice(lists)) if rng.random() < 0.6 else unrelated()
            when = rng.choice(anchors) if rng.random() < 0.3 else rng.randrange(0, 1800)
            event: dict[str, Any] = {"code": code, "date": day(when)}
            if rng.random() < 0.2:
                event["value"] = round(rng.uniform(0, 9), 2)
            events.append(event)
        records.append(PatientRecord.from_dict({
            "patient_id": f"B{i}",
            "date_of_birth": day(rng.randrange(40 * 365, 100 * 365)),
            "gp_system": rng.choice(["EMIS", "SystmOne", "other", None]),
            "events": events,
            "admissions": [{"admitted": day(rng.randrange(0, 900)), "emergency": rng.random() < 0.7}
                           for _ in range(rng.randrange(0, 3))],
            "risk_scores": [{"date": day(rng.randrange(0, 200)), "value": rng.random(),
                             "source": "DELPPHI"} for _ in range(rng.randrange(0, 2))],
        }))
    return records


def rates(engines: Sequence[Callable[[PatientRecord], Any]], records: Sequence[PatientRecord],
          repeat: int) -> list[float]:
    """Records per CPU second (``process_time``) of each engine, best of ``repeat`` rounds;
    in each round every engine runs once, in turn, so that a busy machine slows them alike.
    CPU time, not wall time: on a shared machine the wall clock also counts the time other
    work held the core."""
    best = [float("inf")] * len(engines)
    for _ in range(repeat):
        for i, assess in enumerate(engines):
            start = time.process_time()
            for record in records:
                assess(record)
            best[i] = min(best[i], time.process_time() - start)
    return [len(records) / b for b in best]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--synth", action="store_true",
                        help="use int_rules.synth.synthetic_records for the records")
    args = parser.parse_args(argv)

    book = int_rules.load()
    if args.synth:
        from int_rules.synth import synthetic_records

        records = synthetic_records(args.records, seed=args.seed, as_of=AS_OF, book=book)
    else:
        records = generate(args.records, args.seed, book)

    start = time.perf_counter()
    durable.definitions(book)  # compiles the rulebook for durable_rules (once per Rulebook)
    compile_ms = (time.perf_counter() - start) * 1000

    fired: list[int] = []
    for record in records:
        ref = book.assess(record, AS_OF, engine="reference")
        dur = book.assess(record, AS_OF, engine="durable")
        gen = book.assess(record, AS_OF, engine="generated")
        if not dur.comparable() == gen.comparable() == ref.comparable():
            print(f"engines disagree on patient {record.patient_id}", file=sys.stderr)
            return 1
        fired.append(len(ref.fired))

    def reference(r: PatientRecord) -> Any:
        return book.assess(r, AS_OF, engine="reference")

    def on_generated(r: PatientRecord) -> Any:
        return book.assess(r, AS_OF, engine="generated")

    def on_durable(r: PatientRecord) -> Any:
        return book.assess(r, AS_OF, engine="durable")

    n_rules = sum(len(rs.rules) for rs in book.rulesets)
    parts = sum(name.startswith("rules") for name in durable.definitions(book))
    print(f"{len(records)} records (mean {sum(len(r.events) for r in records) / len(records):.1f}"
          f" events), {n_rules} rules in {parts} durable ruleset(s), as of {AS_OF}; "
          f"durable compile {compile_ms:.0f} ms; all {len(records)} assessments equal")
    print(f"{'records':<26}{'reference rec/s':>16}{'generated rec/s':>16}{'durable rec/s':>15}"
          f"{'ratio':>8}")
    cut = sorted(fired)
    bands = [("all", lambda k: True),
             (f"<= {cut[len(cut) // 3]} rules fired", lambda k: k <= cut[len(cut) // 3]),
             (f">= {cut[2 * len(cut) // 3]} rules fired", lambda k: k >= cut[2 * len(cut) // 3])]
    for label, keep in bands:
        chosen = [r for r, k in zip(records, fired, strict=True) if keep(k)]
        ref_rate, gen_rate, dur_rate = rates((reference, on_generated, on_durable), chosen,
                                             args.repeat)
        print(f"{label + f' ({len(chosen)})':<26}{ref_rate:>16,.0f}{gen_rate:>16,.0f}"
              f"{dur_rate:>15,.0f}{ref_rate / dur_rate:>7.1f}x")
    print("ratio = how many times slower durable is than the reference engine (CPU time, same "
          "records, same run, the three engines interleaved)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
