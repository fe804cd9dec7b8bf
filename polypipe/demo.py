"""``polypipe demo``: the embedded GEMM example, from Python source to a checked compiled run."""

from __future__ import annotations

import inspect
import sys

import numpy as np

from .kernel import kernel

DTYPE = "float64"   # what the demo runs (NumPy's default); buffer sizes use its itemsize


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
    """Print each step polypipe takes on GEMM and run it; 0 if every run matched Python.

    ``size`` (at least 1) is NI; NJ is ``size + 8`` and NK ``max(size - 8, 1)``.
    """
    from .analysis.dependences import dependences
    from .analysis.pipelinable import format_table, pipelinable_reads
    from .analysis.pipeline_check import check_buffers, max_stages
    from .cli import run_and_check
    from .gpu_config import GpuConfig
    from .inputs import random_arguments
    from .optimize import optimize
    from .timeline import format_timeline, pipeline_timeline
    from polypipe.codegen.ast_build import build_ast

    from .errors import ArgumentError
    from .inputs import check_memory

    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ArgumentError(f"demo size {size!r} must be an integer >= 1")
    sizes = {"NI": size, "NJ": size + 8, "NK": max(size - 8, 1)}
    check_memory(gemm.program, sizes, DTYPE, copies=5)
    itemsize = np.dtype(DTYPE).itemsize
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

    _section("3. Exact dependences (value-based flow, anti, output) and parallel loops", out)
    print(dependences(gemm.program).to_text(), file=out)
    print("\nReads that could be streamed through a staging buffer:", file=out)
    print(format_table(pipelinable_reads(gemm.program)), file=out)

    _section("4. Run on the CPU backend (generated C) and compare with Python", out)
    ok = run_and_check(gemm, sizes, dtype=DTYPE, seed=0, check=True, out=out)
    source = gemm.c_source(*random_arguments(gemm.program, sizes, dtype=DTYPE))
    print("\nThe generated loop nest:", file=out)
    body = source[source.index("  for ("):source.rindex("}")]
    print(body, file=out)

    # Three shared stages, or fewer when the reduction has too few tiles to fill them.
    tiles = -(-sizes["NK"] // 16)
    config = GpuConfig(block=(32, 32), threads=(8, 8), reduction=16,
                       shared_stages=min(3, tiles + 1), register_stages=2)
    _section(f"5. GPU mapping with a {config.shared_stages}-stage shared / 2-stage register "
             "pipeline, proved", out)
    print(f"polypipe.optimize(gemm, GpuConfig({config.describe()})):", file=out)
    optimized = optimize(gemm.program, config)
    print(optimized.describe(), file=out)
    kernel = optimized.kernels[0]
    print(f"\nPromoted buffers, {DTYPE} ({itemsize} bytes per element; docs/design.md, "
          "\"Buffers and stages\": pure copy, read-only source, consumed in its own tile, "
          "single writer):", file=out)
    for verdict in check_buffers(kernel, itemsize):
        print("  " + verdict.line(), file=out)
    limit, why = max_stages(kernel, itemsize, sizes)
    print(f"  deepest useful shared_stages at these sizes: {limit} (limited by {why})", file=out)

    _section("6. The pipelined schedule (isl AST: prologue, steady state, epilogue)", out)
    print(build_ast(kernel.program).to_C_str(), file=out)

    _section("7. Pipeline timeline (read off the schedule's instances)", out)
    print(format_timeline(kernel, pipeline_timeline(kernel, sizes)), file=out)

    _section("8. Run the GPU kernel on the CPU with GPU semantics and compare with Python", out)
    print("The CUDA text itself, compiled for the CPU: threads switch at __syncthreads() in\n"
          "a scrambled order, asynchronous copies land only at the wait that covers them, and\n"
          "every shared and global access is checked for races and bounds.", file=out)
    ok &= run_and_check(gemm, sizes, dtype=DTYPE, seed=0, check=True, out=out,
                        backend="emulate", config=config)
    print("\nresult: " + ("every run matches the Python function" if ok
                          else "MISMATCH between a compiled kernel and Python"), file=out)
    return 0 if ok else 1
