"""Spark against DuckDB on the same synthetic extracts, in the same run.

For each size (default 100 thousand and 1.6 million patients, Parquet, made once per size and
seed in ``--workdir``), each engine runs ``population_report`` end to end (every output
written) in a fresh child process, so that its peak memory (the child's and, for Spark, its
JVM's) is its own. It prints wall time, CPU time (the process and its children: the JVM), peak
resident memory (Python's and, for Spark, the JVM's, read from /proc: Linux), the stages, and
Spark's time as a multiple of DuckDB's. Spark's session start
(10-20 s: the JVM) is timed apart and not counted in the run.

Spark will be slower on one machine: it is there for populations beyond one machine
(docs/spark.md), and this measures what that costs where both can run.

Run: ``python benchmarks/bench_spark.py [--sizes 100000,1600000] [--master local[*]]
[--driver-memory 8g]``. Needs the spark extra and Java 17.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

AS_OF = dt.date(2026, 3, 31)


def _make_data(workdir: Path, n: int, seed: int) -> Path:
    from int_rules.synth import write_population

    data = workdir / f"synth-{n}-{seed}-parquet"
    if not (data / "synth.json").is_file():
        print(f"making {n:,} synthetic patients in {data} ...", flush=True)
        summary = write_population(data, n, seed, AS_OF, "parquet")
        (data / "synth.json").write_text(json.dumps(summary.to_dict(), indent=2))
    return data


def _child(args: argparse.Namespace) -> None:
    import int_rules
    from int_rules.population.run import population_report

    book = int_rules.load()
    extra: dict[str, Any] = {}
    session_s = 0.0
    if args.engine == "spark":
        from int_rules.engines.spark import session

        t = time.perf_counter()
        spark = session(args.master, driver_memory=args.driver_memory)
        spark.sparkContext.setLogLevel("ERROR")
        session_s = time.perf_counter() - t
        extra = {"engine": "spark", "spark_master": args.master}
    jvm = _jvm_pid(spark) if args.engine == "spark" else None
    jvm_cpu0 = _cpu_of(jvm)
    t = time.perf_counter()
    cpu = time.process_time()
    result = population_report(book, Path(args.data), AS_OF, Path(args.out), **extra)
    wall = time.perf_counter() - t
    own_cpu = time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(json.dumps({"wall": wall, "cpu": own_cpu + _cpu_of(jvm) - jvm_cpu0,
                      "peak_gib": peak + _peak_gib_of(jvm), "session_s": session_s,
                      "patients": result.summary["patients"]["read"],
                      "timings": result.summary["timings_s"]}))


def _jvm_pid(spark: Any) -> int:
    return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())


def _cpu_of(pid: int | None) -> float:
    """CPU seconds (user + system) of process ``pid`` so far, from /proc (Linux)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_gib_of(pid: int | None) -> float:
    """Peak resident memory (VmHWM) of process ``pid``, in GiB, from /proc (Linux)."""
    if pid is None:
        return 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _spawn(engine: str, data: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--engine", engine, "--data", str(data),
           "--out", str(out), "--master", args.master, "--driver-memory", args.driver_memory]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{engine} run failed:\n{done.stderr[-3000:]}")
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1]
    info: dict[str, Any] = json.loads(line)
    return info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100000,1600000")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--master", default="local[*]")
    p.add_argument("--driver-memory", default="8g")
    p.add_argument("--workdir", type=Path,
                   default=Path(tempfile.gettempdir()) / "int-rules-bench-population")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", default="duckdb", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"Spark ({args.master}, driver {args.driver_memory}) against DuckDB; CPU and peak "
          "memory count the Python process and, for Spark, its JVM.")
    for n in (int(x) for x in args.sizes.split(",")):
        data = _make_data(args.workdir, n, args.seed)
        runs = {engine: _spawn(engine, data, args.workdir / f"out-{engine}-{n}", args)
                for engine in ("duckdb", "spark")}
        for engine, r in runs.items():
            stages = ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items())
            start = f"; session start {r['session_s']:.1f} s (not counted)" \
                if engine == "spark" else ""
            print(f"{n:>9,} {engine:<6}: wall {r['wall']:7.1f} s, CPU {r['cpu']:7.1f} s, "
                  f"peak {r['peak_gib']:.2f} GiB, {1e6 * r['wall'] / n:6.1f} µs/patient "
                  f"[{stages}]{start}")
        d, s = runs["duckdb"], runs["spark"]
        print(f"{n:>9,} ratio : Spark / DuckDB = {s['wall'] / d['wall']:.1f}x wall, "
              f"{s['cpu'] / max(d['cpu'], 1e-9):.1f}x CPU")


if __name__ == "__main__":
    main()
