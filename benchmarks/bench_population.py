"""End-to-end population runs on DuckDB against the per-patient reference loop, same run.

For each size (default 10 thousand, 100 thousand and 1.6 million synthetic patients, about 30
coded events each, Parquet), in a fresh child process (so its peak memory is its own):

* **population**: ``population_report`` from the data directory to every output written
  (results CSV and Parquet, findings, rejects, dashboard, HTML report, summary): wall time, CPU
  time, peak resident memory, and the time of each stage;
* **reference** baseline: ``Rulebook.assess`` (plain Python) on a random sample of the same
  patients, the records built from the same tables: time per patient (record building not
  counted, which favours the baseline).

* **floor**: DuckDB alone on the same extract, computing per-patient facts from the rule
  model as FILTER aggregates over the codelist-joined events, joining the patients, sorting
  and writing Parquet: what no engine of ours can go below (from CSV, with DuckDB's own CSV
  reader).

It prints per-patient times, the ratio reference / population per patient, our run as a
multiple of the floor (wall time, and CPU time, the steadier figure on a shared machine), and
whether cost grows linearly. ``--pathway-modes`` also times the
pathway stage replayed per distinct signature against per patient. Synthetic data is made
once per size and seed and kept in ``--workdir`` (default: ``int-rules-bench-population``
in the system's temporary folder).

Run: ``python benchmarks/bench_population.py [--sizes 10000,100000,1600000] [--sample 2000]
[--format parquet|csv] [--pathway-modes] [--repeat N] [--workdir DIR]``. Shared machines are
noisy: the wall time depends on what else runs; CPU time is printed beside it, and the ratio is
measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

AS_OF = dt.date(2026, 3, 31)
ROOT = Path(__file__).resolve().parent.parent


def _make_data(workdir: Path, n: int, seed: int, fmt: str) -> tuple[Path, float, int]:
    from int_rules.synth import write_population

    data = workdir / f"synth-{n}-{seed}-{fmt}"
    marker = data / "synth.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        return data, float(info.get("seconds", 0.0)), int(info["rows"]["clinical_events"])
    t = time.perf_counter()
    summary = write_population(data, n, seed, AS_OF, fmt)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t
    info = summary.to_dict()
    info["seconds"] = seconds
    marker.write_text(json.dumps(info, indent=2))
    return data, seconds, int(summary.rows["clinical_events"])


def _child(args: argparse.Namespace) -> None:
    """Run one measurement and print it as JSON (run in a fresh process)."""
    import int_rules
    from int_rules.population.run import population_report

    book = int_rules.load()
    data = Path(args.data)
    result: dict[str, Any] = {}
    if args.what == "population":
        out = Path(args.out)
        c0, t0 = os.times(), time.perf_counter()
        rep = population_report(book, data, AS_OF, out, pathway_mode=args.pathway_mode,
                                 threads=args.threads)
        wall = time.perf_counter() - t0
        c1 = os.times()
        result = {"wall": wall, "cpu": (c1.user - c0.user) + (c1.system - c0.system),
                  "patients": rep.summary["patients"]["in_results"],
                  "timings": rep.summary["timings_s"],
                  "signatures": rep.summary["engine"]["pathway_signatures"]}
    elif args.what == "floor":
        result = _floor(book, data, Path(args.out), args.threads)
    else:
        from int_rules.population.engine import records_from_tables, run_tables_only

        con = run_tables_only(data, threads=args.threads)
        try:
            ids = [r[0] for r in con.execute("SELECT patient_id FROM pt").fetchall()]
            rng = random.Random(args.seed)
            sample = rng.sample(ids, min(args.sample, len(ids)))
            records = records_from_tables(con, sample)
        finally:
            con.close()
        from int_rules.record import PatientRecord

        dicts = [r.to_dict() for r in records]
        t0 = time.perf_counter()
        for d in dicts:
            PatientRecord.from_dict(d)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        for record in records:
            book.assess(record, AS_OF)
        wall = time.perf_counter() - t0
        result = {"wall": wall, "build": build, "patients": len(records),
                  "events": sum(len(r.events) for r in records)}
    result["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


FLOOR_FACTS = 9


def _floor(book: Any, data: Path, out: Path, threads: int | None) -> dict[str, Any]:
    """DuckDB alone: the floor no engine of ours can go below.

    The first ``FLOOR_FACTS`` event facts of the rulebook that read codelists (their codes from
    the rule model, a count or the latest date as of ``AS_OF``) as FILTER aggregates over the
    codelist-joined events in one pass, joined to the patients, sorted by patient and written
    as Parquet: the shape of our own run's core, without rules, pathway or checks.
    """
    import duckdb

    from int_rules.model import nodes as n

    facts = [f for f in book.model.facts if isinstance(f, n.ItemFact) and f.source == "events"
             and f.codes is not None and f.item in ("exists", "count", "latest_date")]
    facts = facts[:FLOOR_FACTS]
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    c0, t0 = os.times(), time.perf_counter()
    con.execute("CREATE TEMP TABLE cl (code VARCHAR, k INTEGER)")
    con.executemany("INSERT INTO cl VALUES (?, ?)",
                    [(code, k) for k, f in enumerate(facts) for code in sorted(f.codes.codes)])
    aggs = ", ".join(
        (f"max(e.date) FILTER (WHERE cl.k = {k} AND e.date <= DATE '{AS_OF}') AS f{k}"
         if f.item == "latest_date" else
         f"count(*) FILTER (WHERE cl.k = {k} AND e.date <= DATE '{AS_OF}') AS f{k}")
        for k, f in enumerate(facts))
    # From a CSV extract, DuckDB's own CSV reader (types detected, in parallel): the floor for
    # reading that format, which does not number lines or check cells as our run does.
    csv = (data / "clinical_events.csv").is_file()
    read = "read_csv" if csv else "read_parquet"
    events = data / f"clinical_events.{'csv' if csv else 'parquet'}"
    patients = data / f"patients.{'csv' if csv else 'parquet'}"
    con.execute(
        f"CREATE TEMP TABLE facts AS SELECT e.patient_id, {aggs} "
        f"FROM {read}('{events}') e JOIN cl ON CAST(e.snomedct_code AS VARCHAR) = cl.code "
        "GROUP BY e.patient_id")
    t1 = time.perf_counter()
    con.execute(
        f"COPY (SELECT p.patient_id, p.date_of_birth, f.* EXCLUDE (patient_id) "
        f"FROM {read}('{patients}') p LEFT JOIN facts f USING (patient_id) "
        f"ORDER BY p.patient_id) TO '{out / 'floor.parquet'}' (FORMAT parquet)")
    t2, c2 = time.perf_counter(), os.times()
    con.close()
    return {"wall": t2 - t0, "cpu": (c2.user - c0.user) + (c2.system - c0.system),
            "facts_s": t1 - t0, "write_s": t2 - t1, "facts": len(facts)}


def _spawn(*extra: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"child failed: {' '.join(cmd)}")
    line: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return line


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,1600000")
    p.add_argument("--sample", type=int, default=2000,
                   help="patients in the reference sample (default 2000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    p.add_argument("--workdir", type=Path,
                   default=Path(tempfile.gettempdir()) / "int-rules-bench-population")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeat", type=int, default=1,
                   help="run the floor and the population this many times, interleaved, and "
                        "keep the best wall time of each (default 1)")
    p.add_argument("--pathway-modes", action="store_true",
                   help="also time the pathway stage replayed per patient")
    # internal: one measurement in a child process
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--what", default="population", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--pathway-mode", default="signatures", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    threads = ["--threads", str(args.threads)] if args.threads else []
    print(f"population benchmark: as of {AS_OF}, {args.format}, {os.cpu_count()} CPU(s), "
          f"load average {os.getloadavg()[0]:.1f}")
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        data, synth_s, events = _make_data(args.workdir, n, args.seed, args.format)
        out = args.workdir / f"out-{n}"
        floor: dict[str, Any] = {}
        pop: dict[str, Any] = {}
        for _ in range(args.repeat):  # interleaved; the best wall time of each is kept
            f = _spawn("--what", "floor", "--data", str(data), "--out", str(out) + "-floor",
                       *threads)
            p_ = _spawn("--what", "population", "--data", str(data), "--out", str(out),
                        *threads)
            floor = f if not floor or f["wall"] < floor["wall"] else floor
            pop = p_ if not pop or p_["wall"] < pop["wall"] else pop
        ref = _spawn("--what", "reference", "--data", str(data), "--sample", str(args.sample),
                     "--seed", str(args.seed), *threads)
        per_pop = pop["wall"] / pop["patients"]
        per_ref = ref["wall"] / ref["patients"]
        per_build = ref["build"] / ref["patients"]
        row = {"patients": n, "events": events, "synth_s": synth_s, **pop,
               "floor_s": floor["wall"], "floor_facts_s": floor["facts_s"],
               "floor_write_s": floor["write_s"], "times_floor": pop["wall"] / floor["wall"],
               "floor_cpu_s": floor["cpu"], "times_floor_cpu": pop["cpu"] / floor["cpu"],
               "ref_per_patient_us": per_ref * 1e6, "pop_per_patient_us": per_pop * 1e6,
               "build_per_patient_us": per_build * 1e6,
               "ratio": per_ref / per_pop, "ratio_with_records": (per_ref + per_build) / per_pop,
               "ref_sample": ref["patients"],
               "ref_events_per_patient": ref["events"] / max(1, ref["patients"])}
        if args.pathway_modes:
            slow = _spawn("--what", "population", "--data", str(data), "--out",
                          str(out) + "-pp", "--pathway-mode", "per_patient", *threads)
            row["pathway_signatures_s"] = pop["timings"]["pathway"]
            row["pathway_per_patient_s"] = slow["timings"]["pathway"]
        rows.append(row)
        print(f"\n{n:,} patients, {events:,} events ({events / n:.1f} per patient); synthetic "
              f"data made in {synth_s:.1f} s")
        print(f"  population end to end: {pop['wall']:.1f} s wall, {pop['cpu']:.1f} s CPU, "
              f"peak {pop['max_rss_mib'] / 1024:.2f} GiB; {per_pop * 1e6:.1f} us/patient")
        print("  stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in pop["timings"].items()))
        print(f"  DuckDB floor ({floor['facts']} facts as FILTER aggregates, join, sort, write "
              f"Parquet): {floor['wall']:.2f} s ({floor['facts_s']:.2f} facts, "
              f"{floor['write_s']:.2f} join, sort and write); our run is "
              f"{row['times_floor']:.1f}x the floor ({floor['cpu']:.2f} CPU-s; our CPU time is "
              f"{row['times_floor_cpu']:.1f}x the floor's)")
        core = sum(pop["timings"].get(k, 0.0) for k in ("pathway", "facts", "rules"))
        row["engine_stages_s"] = core
        print(f"  the engine's own stages (pathway, facts, rules): {core:.2f} s, "
              f"{core / floor['wall']:.1f}x the floor (which computes {floor['facts']} facts "
              "and no rules)")
        print(f"  reference loop on {ref['patients']:,} sampled patients: "
              f"{per_ref * 1e6:.0f} us/patient to assess (+ {per_build * 1e6:.0f} us to build "
              "each record from a dict)")
        print(f"  ratio (reference / population, per patient): {row['ratio']:.1f}x "
              f"(assess only); {row['ratio_with_records']:.1f}x counting record building")
        if args.pathway_modes:
            print(f"  pathway stage: {row['pathway_signatures_s']:.2f} s by signature "
                  f"({pop['signatures']:,} distinct), {row['pathway_per_patient_s']:.2f} s "
                  "per patient")
    if len(rows) > 1:
        base = rows[0]
        print("\ngrowth (cost per patient relative to the smallest size): " + ", ".join(
            f"{r['patients']:,}: {r['pop_per_patient_us'] / base['pop_per_patient_us']:.2f}"
            for r in rows))
    (args.workdir / "results.json").write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
