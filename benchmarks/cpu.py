"""The CPU benchmark (issue 18): polypipe's compiled C beside numba and NumPy on PolyBench.

    python benchmarks/cpu.py [--only NAMES] [--scale small|medium|large] [--repeat N]
                             [--out FILE.json]      # and FILE.png where matplotlib is
    python benchmarks/cpu.py --chart FILE.json

Per kernel of ``tests/kernels/polybench.py`` (:data:`MEDIUM` lists the ones measured), at
PolyBench 4.2.1's MEDIUM_DATASET sizes by default, in one process and on the same inputs:

* ``polypipe-O2``: the generated C compiled as before issue 18 (``-O2``; the source order);
* ``polypipe``: the same C with polypipe's flags (:func:`polypipe.codegen.cpu.c_flags`:
  ``-O3 -march=native``, no fused multiply-adds); still the source order, since no CPU
  schedule (``CpuConfig``) is built yet;
* ``numba``: ``numba.njit`` of the same Python function, compiled before timing (where numba
  is installed);
* ``numpy``: the NumPy equivalent of ``benchmarks/gpu_polybench.py`` where one exists (BLAS
  for the matrix products, on every core NumPy's BLAS uses).

Each entry is the best of ``--repeat`` runs on fresh copies of the inputs, in ms, with GFLOP/s
(the arithmetic operations isl counts, :func:`polypipe.performance.program_operations`) and
its time as a ratio to polypipe's. Checks before anything is recorded: the two polypipe builds
give bit-identical results (the flags keep every rounding), numba's and NumPy's are within
1e-9 of polypipe's, relative to the largest element (NumPy adds in another order).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import polypipe as pp  # noqa: E402
import polypipe.codegen.cpu as cpu  # noqa: E402
from polypipe.kernel import bind_arguments  # noqa: E402
from polypipe.performance import program_operations  # noqa: E402
from gpu_polybench import EQUIVALENTS, large_args, max_relative_difference  # noqa: E402
from tests.kernels.polybench import KERNELS  # noqa: E402

# small test extent (and int argument) -> PolyBench 4.2.1 MEDIUM_DATASET, as gpu_polybench.LARGE
MEDIUM = {
    "gemm": {13: 200, 17: 220, 11: 240}, "2mm": {9: 180, 11: 190, 13: 210, 15: 220},
    "3mm": {8: 180, 10: 190, 12: 200, 14: 210, 16: 220}, "atax": {19: 390, 23: 410},
    "bicg": {21: 410, 17: 390}, "mvt": {22: 400}, "gemver": {21: 400}, "syrk": {15: 240, 9: 200},
    "syr2k": {14: 240, 11: 200}, "trmm": {12: 200, 16: 240}, "covariance": {19: 260, 12: 240},
    "doitgen": {7: 50, 9: 40, 11: 60}, "lu": {17: 400}, "floyd_warshall": {16: 500},
    "jacobi_1d": {8: 100, 30: 400}, "jacobi_2d": {5: 100, 14: 250}, "heat_3d": {4: 100, 9: 40},
    "fdtd_2d": {6: 100, 13: 200, 17: 240}, "seidel_2d": {4: 100, 15: 400},
}
TOLERANCE = 1e-9
IMPLS = ("polypipe-O2", "polypipe", "numba", "numpy")


def arguments(name: str, scale: str) -> list:
    if scale == "small":
        return list(KERNELS[name].make_args(np.random.default_rng(0), np.float64))
    if scale == "medium":
        return large_args(name, np.random.default_rng(0), MEDIUM[name])
    return large_args(name, np.random.default_rng(0))


def _copies(args: list) -> list:
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def best_of(run, args: list, repeat: int) -> tuple[float, list]:
    """(best seconds of ``repeat`` runs of ``run`` on fresh copies of ``args``, the last run's
    arguments)."""
    best, last = math.inf, None
    for _ in range(repeat):
        last = _copies(args)
        start = time.perf_counter()
        run(*last)
        best = min(best, time.perf_counter() - start)
    return best, last


@contextlib.contextmanager
def source_order_flags():
    """Compile with the flags polypipe used before issue 18 (codegen.cpu.SOURCE_ORDER_FLAGS)."""
    right = cpu.c_flags
    cpu.c_flags = lambda compiler=None: cpu.SOURCE_ORDER_FLAGS
    try:
        yield
    finally:
        cpu.c_flags = right


def _numba_run(func):
    try:
        import numba
    except ImportError:
        return None, "numba is not installed"
    try:
        return numba.njit(cache=False)(func), ""
    except Exception as exc:  # noqa: BLE001 - reported, the entry is skipped
        return None, f"numba: {type(exc).__name__}: {str(exc).splitlines()[0]}"


def measure(name: str, scale: str, repeat: int) -> dict:
    """One kernel's record: per implementation ms, GFLOP/s, the check, or why it is absent."""
    func = KERNELS[name].func
    args = arguments(name, scale)
    kernel = pp.kernel(func)
    operations, exact = program_operations(kernel.program,
                                           bind_arguments(kernel.program, args).params)
    record = {"name": name, "scale": scale, "operations": operations,
              "operations_exact": exact, "flags": " ".join(cpu.c_flags()), "impls": {}}
    kernel(*_copies(args))                          # compile (and warm) before timing
    seconds, reference = best_of(kernel, args, repeat)
    results = {"polypipe": (seconds, reference)}
    with source_order_flags():
        older = pp.kernel(func)
        older(*_copies(args))
        results["polypipe-O2"] = best_of(older, args, repeat)
    jitted, why = _numba_run(func)
    if jitted is not None:
        try:
            jitted(*_copies(args))
            results["numba"] = best_of(jitted, args, repeat)
        except Exception as exc:  # noqa: BLE001 - numba cannot type every kernel
            why = f"numba: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    if name in EQUIVALENTS:
        results["numpy"] = best_of(lambda *a: EQUIVALENTS[name](np, *a), args, repeat)
    for impl in IMPLS:
        if impl not in results:
            record["impls"][impl] = {"absent": why if impl == "numba" else "no equivalent"}
            continue
        seconds, got = results[impl]
        difference = max_relative_difference(got, reference)
        same = all(np.array_equal(g, w, equal_nan=True) for g, w in zip(got, reference)
                   if isinstance(w, np.ndarray))
        ok = same if impl == "polypipe-O2" else difference <= TOLERANCE
        record["impls"][impl] = {"ms": seconds * 1e3, "gflops": operations / seconds / 1e9,
                                 "ratio": seconds / results["polypipe"][0],
                                 "difference": difference, "ok": bool(ok)}
    return record


def row(record: dict) -> str:
    cells = []
    for impl in IMPLS:
        entry = record["impls"][impl]
        if "absent" in entry:
            cells.append(f"{'-':>22}")
        else:
            mark = "" if entry["ok"] else " DIFFERS"
            cells.append(f"{entry['ms']:9.2f} ms {entry['ratio']:5.2f}x{mark:>4}")
    return f"{record['name']:15s} " + " ".join(cells)


def chart(path: Path) -> Path | None:
    """Bars of GFLOP/s per kernel and implementation (log scale), next to the JSON."""
    from charts import grouped_bars

    records = {r["name"]: r for r in json.loads(Path(path).read_text())}
    scale = next(iter(records.values()))["scale"] if records else ""
    return grouped_bars(Path(path).with_suffix(".png"), list(records), list(IMPLS),
                        lambda name, impl: records[name]["impls"][impl].get("gflops", 0.0),
                        "GFLOP/s (float64, isl's operation count)",
                        f"PolyBench {scale} on {os.cpu_count()} cores",
                        f"python benchmarks/cpu.py --chart {path}", log_scale=True)


def geomean(values) -> float:
    values = list(values)
    return math.exp(sum(map(math.log, values)) / len(values)) if values else math.nan


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="kernels, comma-separated (default: all "
                                                   "of MEDIUM)")
    parser.add_argument("--scale", default="medium", choices=("small", "medium", "large"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the records as JSON (and a chart "
                                                   "beside it)")
    parser.add_argument("--chart", default=None, metavar="FILE.json",
                        help="only draw the chart of records written before")
    options = parser.parse_args(argv)
    if options.chart:
        return 0 if chart(Path(options.chart)) else 1
    names = [n for n in options.only.split(",") if n] or list(MEDIUM)
    unknown = [n for n in names if n not in MEDIUM]
    if unknown:
        parser.error(f"unknown kernel(s) {', '.join(unknown)}; known: {', '.join(MEDIUM)}")
    print(f"# python benchmarks/cpu.py --scale {options.scale}: {os.cpu_count()} cores, "
          f"polypipe's flags: {cpu.c_flags_text()}")
    print(f"{'kernel':15s} " + " ".join(f"{impl:>22}" for impl in IMPLS)
          + "   (ms, time / polypipe's)")
    records, failures = [], 0
    for name in names:
        record = measure(name, options.scale, options.repeat)
        records.append(record)
        failures += sum(not e.get("ok", True) for e in record["impls"].values())
        print(row(record), flush=True)
    for impl in IMPLS:
        ratios = [r["impls"][impl]["ratio"] for r in records if "ratio" in r["impls"][impl]]
        print(f"geometric mean of time / polypipe's, {impl}: {geomean(ratios):.2f} over "
              f"{len(ratios)} kernel(s)")
    absent = {r["impls"]["numba"]["absent"] for r in records if "absent" in r["impls"]["numba"]}
    for why in sorted(absent):
        print(f"numba absent: {why}")
    if options.out:
        Path(options.out).write_text(json.dumps(records, indent=1) + "\n")
        chart(Path(options.out))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
