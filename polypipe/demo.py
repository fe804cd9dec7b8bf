"""``polypipe demo``: the embedded GEMM example, from Python source to a checked compiled run."""

from __future__ import annotations

import inspect
import sys

from .kernel import kernel


@kernel
def gemm(alpha, beta, C, A, B):
    NI, NJ = C.shape
    NK = A.shape[1]
    for i in range(NI):
        for j in range(NJ):
            C[i, j] *= beta
        for k in range(NK):
            for j in range(NJ):
                C[i, j] += alpha * A[i, k] * B[k, j]


def _section(title: str, out) -> None:
    print(f"\n== {title} " + "=" * max(0, 72 - len(title)), file=out)


def run_demo(size: int = 96, out=None) -> int:
    """Print each step polypipe takes on GEMM and run it on the CPU backend; 0 if it matched."""
    from .cli import run_and_check
    from .inputs import random_arguments

    out = out or sys.stdout
    print("polypipe demo: C = alpha * A @ B + beta * C, written as a plain Python loop nest "
          "(PolyBench gemm).", file=out)
    _section("1. The Python function (it still runs as plain Python)", out)
    print(inspect.getsource(gemm.python), file=out)

    _section("2. The polyhedral model polypipe built from it", out)
    print("Each assignment is a statement S0, S1, ... with an integer-set domain over its loop\n"
          "variables, exact access relations, and a schedule that encodes the source order.",
          file=out)
    print(gemm.program, file=out)

    sizes = {"NI": size, "NJ": size + 8, "NK": max(size - 8, 1)}
    _section("3. Run on the CPU backend and compare with the Python function", out)
    ok = run_and_check(gemm, sizes, seed=0, check=True, out=out)
    _section("4. The C it generated and ran (isl AST -> C printer)", out)
    source = gemm.c_source(*random_arguments(gemm.program, sizes))
    body = source[source.index("void pp_kernel"):]
    print(body, file=out)

    print("\nresult: " + ("the compiled kernel matches the Python function" if ok
                          else "MISMATCH between the compiled kernel and Python"), file=out)
    return 0 if ok else 1
