"""FHIR Bulk Data NDJSON to results against the same people as Parquet, same run, as a ratio.

For each size (default 100 thousand synthetic patients), the same synthetic population is
written twice (``synth --format parquet`` and ``--format fhir``, same seed), and each is run end
to end in a fresh child process, once: ``int-rules population DIR`` and ``int-rules population
--fhir DIR`` (reading the export, writing the mapped tables, and every output). It prints wall
and CPU time of each, the FHIR run's mapping time, the input sizes, and the ratio FHIR / Parquet
(target: within 3x). The results files of the two runs are compared byte for byte.

Run: ``python benchmarks/bench_fhir.py [--sizes 100000,1600000] [--workdir DIR]``. Data is kept
in ``--workdir`` (default ``int-rules-bench-fhir`` in the system's temporary folder). Shared
machines are noisy: both runs are in the same invocation, one after the other.
"""

from __future__ import annotations

import argparse
import filecmp
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
        same = filecmp.cmp(out_pq / "results.csv", out_fh / "results.csv", shallow=False)
        timings = json.loads((out_fh / "run_summary.json").read_text()).get("timings_s", {})
        print(f"| {n:,} | {_size(pq) / 2**20:,.0f} MiB | {_size(fh) / 2**20:,.0f} MiB | "
              f"{base['wall_s']:.1f} s | {fhir['wall_s']:.1f} s | {fhir['cpu_s']:.1f} s | "
              f"{fhir['wall_s'] / base['wall_s']:.2f}x | {fhir['cpu_s'] / base['cpu_s']:.2f}x | "
              f"{'yes' if same else 'NO'} |")
        print(f"  (Parquet run CPU {base['cpu_s']:.1f} s; FHIR run stages after mapping: "
              f"{json.dumps(timings)})", flush=True)


if __name__ == "__main__":
    main()
