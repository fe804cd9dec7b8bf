"""Time the dependence and pipelinability analyses per kernel.

    python benchmarks/analysis.py [--repeat 3] [NAME ...]

For GEMM (examples/gemm.py) and every kernel of ``tests/kernels/polybench.py`` (when present): the
time of ``dependences(program)`` and of ``pipelinable_reads(program, deps=...)`` (best of
``--repeat`` runs, the program built once outside the timing), with the number of statements,
dependence records and candidates. The goal is under one second per kernel.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import polypipe as pp  # noqa: E402
from polypipe.analysis.dependences import dependences  # noqa: E402
from polypipe.analysis.pipelinable import pipelinable_reads  # noqa: E402


def gemm(alpha, beta, C, A, B):
    NI, NJ = C.shape
    NK = A.shape[1]
    for i in range(NI):
        for j in range(NJ):
            C[i, j] *= beta
        for k in range(NK):
            for j in range(NJ):
                C[i, j] += alpha * A[i, k] * B[k, j]


def kernels() -> dict[str, Callable]:
    found = {"gemm (examples/gemm.py)": gemm}
    try:
        from tests.kernels.polybench import KERNELS
    except ImportError:
        print("(tests/kernels/polybench.py not found: timing GEMM only)")
        return found
    found.update({name: case.func for name, case in KERNELS.items()})
    return found


def best_of(repeat: int, call: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="kernels to time (default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args(argv)
    table = kernels()
    names = options.names or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        parser.error(f"unknown kernels {unknown}; known: {', '.join(table)}")

    print(f"{'kernel':<20} {'stmts':>5} {'deps':>5} {'cands':>5} {'dependences':>12} "
          f"{'pipelinable':>12} {'total':>9}")
    totals = []
    for name in names:
        program = pp.build_program(table[name])
        dep_time, deps = best_of(options.repeat, lambda: dependences(program))
        pipe_time, candidates = best_of(
            options.repeat, lambda: pipelinable_reads(program, deps=deps))
        total = dep_time + pipe_time
        totals.append((total, name))
        flag = "" if total < 1.0 else "  <-- over 1 s"
        print(f"{name:<20} {len(program.statements):>5} {len(deps):>5} {len(candidates):>5} "
              f"{dep_time * 1e3:>9.1f} ms {pipe_time * 1e3:>9.1f} ms {total * 1e3:>6.0f} ms"
              f"{flag}")
    worst, worst_name = max(totals)
    print(f"\n{len(totals)} kernels, total {sum(t for t, _ in totals):.2f} s, "
          f"slowest {worst_name} {worst * 1e3:.0f} ms "
          f"({'all under' if worst < 1.0 else 'NOT all under'} 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
