"""FHIR Bulk Data NDJSON to results against the same people as Parquet, same run, as a ratio.

For each size (default 100 thousand synthetic patients), the same synthetic population is
written twice (``synth --format parquet`` and ``--format fhir``, same seed), and each is run end
to end in a fresh child process, once: ``int-rules population DIR`` and ``int-rules population
--fhir DIR`` (reading the export, writing the mapped tables, and every output). It prints wall
and CPU time of each, the FHIR run's mapping time, the input sizes, and the ratio FHIR / Parquet
(target: within 3x). The results of the two runs are compared: every row and column of
``results.parquet`` in order, and ``findings.csv`` line by line, their run ids aside.

Run: ``python benchmarks/bench_fhir.py [--sizes 100000,1600000] [--workdir DIR]``. Data is kept
in ``--workdir`` (default ``int-rules-bench-fhir`` in the system's temporary folder). Shared
machines are noisy: both runs are in the same invocation, one after the other.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AS_OF = "2026-03-31"


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _make(workdir: Path, n: int, fmt: str) -> Path:
    from int_rules.synth import write_population

    data = workdir / f"synth-{n}-{fmt}"
    if not (data / "synth.json").is_file():
        write_population(data, n, 1, fmt=fmt)  # type: ignore[arg-type]
    return data


def _same_results(a: Path, b: Path) -> bool:
    """The two runs' results (``results.parquet``: every row and column, in order; the files'
    metadata name their own run) and findings (byte for byte) are the same."""
    import pyarrow.parquet as pq

    ta, tb = (pq.read_table(d / "results.parquet").drop_columns(["run_id"]) for d in (a, b))
    return (ta.replace_schema_metadata(None).equals(tb.replace_schema_metadata(None))
            and _same_csv(a / "findings.csv", b / "findings.csv"))


def _same_csv(a: Path, b: Path) -> bool:
    """Byte for byte but for the run_id column (each run has its own)."""
    def rows(path: Path) -> list[list[str]]:
        with path.open(newline="", encoding="utf-8") as fh:
            table = list(csv.reader(fh))
        drop = table[0].index("run_id") if table and "run_id" in table[0] else None
        return [[c for i, c in enumerate(r) if i != drop] for r in table]
    return rows(a) == rows(b)


def _run(data: Path, out: Path, fhir: bool) -> dict[str, float]:
    cmd = [sys.executable, "-m", "int_rules.cli", "population", str(data), "--as-of", AS_OF,
           "--out", str(out), "--quiet"] + (["--fhir"] if fhir else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "int-rules-bench-fhir")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print("| patients | Parquet input | NDJSON input | Parquet run | FHIR run | FHIR CPU | "
          "ratio (wall) | ratio (CPU) | same results |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in (int(s.replace("_", "")) for s in args.sizes.split(",")):
        pq, fh = _make(args.workdir, n, "parquet"), _make(args.workdir, n, "fhir")
        out_pq, out_fh = args.workdir / f"out-{n}-parquet", args.workdir / f"out-{n}-fhir"
        base = _run(pq, out_pq, fhir=False)
        fhir = _run(fh, out_fh, fhir=True)
        same = _same_results(out_pq, out_fh)
        timings = json.loads((out_fh / "run_summary.json").read_text()).get("timings_s", {})
        print(f"| {n:,} | {_size(pq) / 2**20:,.0f} MiB | {_size(fh) / 2**20:,.0f} MiB | "
              f"{base['wall_s']:.1f} s | {fhir['wall_s']:.1f} s | {fhir['cpu_s']:.1f} s | "
              f"{fhir['wall_s'] / base['wall_s']:.2f}x | {fhir['cpu_s'] / base['cpu_s']:.2f}x | "
              f"{'yes' if same else 'NO'} |")
        print(f"  (Parquet run CPU {base['cpu_s']:.1f} s; FHIR run stages after mapping: "
              f"{json.dumps(timings)})", flush=True)


if __name__ == "__main__":
    main()
