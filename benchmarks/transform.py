"""Time to map a contraction to the GPU, prove it, and generate code, per kernel and config.

    python benchmarks/transform.py

Columns: build (tiling, promotion, pipelining: the GPU program and its schedule tree), prove
(the isl proofs of analysis/gpu_proof.py), ast (isl AST generation: prologue, steady state,
epilogue), print (CUDA), total. Goal (issue 4): GEMM with both pipeline levels under
1 s for optimize + code generation.
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
from polypipe.codegen.ast_build import build_ast  # noqa: E402
from polypipe.lower import lower_contraction  # noqa: E402
from tests.kernels.contractions import CASES  # noqa: E402

CONFIGS = [
    pp.GpuConfig(shared_stages=1, register_stages=1),
    pp.GpuConfig(shared_stages=3, register_stages=2),
    pp.GpuConfig(block=(128, 128), threads=(16, 16), reduction=32, shared_stages=4,
                 register_stages=2),
]


def measure(name: str, config: pp.GpuConfig) -> tuple[float, float, float, float]:
    program = pp.kernel(CASES[name].func).program
    start = time.perf_counter()
    kernels = [lower_contraction(recognise(program, nest), config, f"k{i}")
               for i, nest in enumerate(top_level_nests(program))]
    built = time.perf_counter()
    for kernel in kernels:
        prove_kernel(program, kernel)
    proved = time.perf_counter()
    for kernel in kernels:
        build_ast(kernel.program)
    generated = time.perf_counter()
    optimized = pp.optimize(program, config, prove=False)
    args = CASES[name].make(np.random.default_rng(0), 8, 8, 8, np.float32)
    printing = time.perf_counter()
    optimized.cuda_source(*args)  # AST again + printing, without compiling
    printed = time.perf_counter() - printing - (generated - proved)
    return built - start, proved - built, generated - proved, max(printed, 0.0)


def main() -> None:
    print(f"{'kernel':14} {'config':58} {'build':>7} {'prove':>7} {'ast':>7} {'print':>7} "
          f"{'total':>7}")
    for name in ("gemm", "batched_gemm", "gemm_tt_local", "2mm", "syrk", "conv2d_s1",
                 "conv2d_s2"):
        for config in CONFIGS:
            build, prove, ast, printed = measure(name, config)
            total = build + prove + ast + printed
            print(f"{name:14} {config.describe():58} {build:6.2f}s {prove:6.2f}s {ast:6.2f}s "
                  f"{printed:6.2f}s {total:6.2f}s")


if __name__ == "__main__":
    main()
