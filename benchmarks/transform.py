"""Compile time per kernel and configuration: lowering, proof, and the CUDA text of a call.

    python benchmarks/transform.py            # one process, one core

Columns, in seconds: lower (recognise the contraction and run the lowering passes of
polypipe/lower.py), prove (analysis/gpu_proof.py), cuda (the translation unit a first call
prints for M = N = K = 256: isl AST at those sizes, index-range check, printing), total. The
proofs' source half (the nest's own dataflow and last writers) does not depend on the
configuration and is computed once per nest: "again" is a second configuration's proof of the
same nest, what each further candidate of a tuner pays. Goal (issue 14): total under 1 s for
every workload at the default configuration.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import polypipe as pp  # noqa: E402
from polypipe.analysis.contraction import recognise, top_level_nests  # noqa: E402
from polypipe.analysis.gpu_proof import prove_kernel  # noqa: E402
from polypipe.lower import lower_contraction  # noqa: E402
from polypipe.optimize import OptimizedProgram  # noqa: E402
from tests.kernels.contractions import CASES  # noqa: E402

WORKLOADS = ("gemm", "batched_gemm", "gemm_tt_local", "2mm", "syrk", "conv2d_s1", "conv2d_s2")
CONFIGS = [
    pp.GpuConfig(),
    pp.GpuConfig(shared_stages=1, register_stages=1),
    pp.GpuConfig(block=(128, 128), threads=(16, 16), reduction=32, shared_stages=4,
                 register_stages=2),
]
SIZE = 256


def measure(name: str, config: pp.GpuConfig) -> dict[str, float]:
    program = pp.kernel(CASES[name].func).program   # a fresh program: nothing cached
    start = time.perf_counter()
    kernels = [lower_contraction(recognise(program, nest), config, f"{program.name}_k{i}")
               for i, nest in enumerate(top_level_nests(program))]
    lowered = time.perf_counter()
    proofs = tuple(prove_kernel(program, kernel) for kernel in kernels)
    proved = time.perf_counter()
    optimized = OptimizedProgram(program, config, tuple(kernels), proofs)
    args = CASES[name].make(np.random.default_rng(0), SIZE, SIZE, SIZE, np.float32)
    printing = time.perf_counter()
    optimized.cuda_source(*args)
    printed = time.perf_counter()
    rebuilt = [lower_contraction(kernel.contraction, config, kernel.name) for kernel in kernels]
    again = time.perf_counter()
    for kernel in rebuilt:          # new GPU programs, the same source nest
        prove_kernel(program, kernel)
    again = time.perf_counter() - again
    return {"lower": lowered - start, "prove": proved - lowered, "cuda": printed - printing,
            "total": printed - printing + proved - start, "again": again}


def main() -> None:
    columns = ("lower", "prove", "cuda", "total", "again")
    print(f"{'kernel':14} {'config':70} " + " ".join(f"{c:>7}" for c in columns))
    for name in WORKLOADS:
        for config in CONFIGS:
            row = measure(name, config)
            print(f"{name:14} {config.describe():70} "
                  + " ".join(f"{row[c]:6.2f}s" for c in columns))


if __name__ == "__main__":
    main()
