"""Figures of the CPU CUDA runtime (codegen/cuda_cpu.py): compile and launch times.

    python benchmarks/cuda_cpu.py

Rows, on a cold cache: building the runtime library (once per flavour), printing and compiling
the translation unit of examples/gemm.py for 128^3 and 256^3 (the exact text
``opt.cuda_source(*args)`` returns), running it (``backend="emulate"``, checked element by
element) with the compile cached, the hand-written SGEMM fixture, and one launch of
16 blocks x 256 threads x 64 barriers. Goal: compile under 1 s per kernel, the barrier launch
under 1 s.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import polypipe as pp  # noqa: E402
from polypipe.codegen import cuda_cpu  # noqa: E402
from polypipe.codegen.cuda_device import DEVICE_PRELUDE  # noqa: E402
from tests.test_cuda_cpu import FIXTURES, launch_figures, sgemm  # noqa: E402

CONFIG = pp.GpuConfig(block=(64, 64), threads=(16, 16), reduction=16, shared_stages=3,
                      register_stages=2)


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def printed_gemm(n: int) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    from gemm import gemm  # noqa: E402

    opt = pp.optimize(gemm, CONFIG)
    rng = np.random.default_rng(0)
    C, A, B = (rng.standard_normal((n, n)) for _ in range(3))
    seconds, text = timed(lambda: opt.cuda_source(1.5, 1.25, C, A, B))
    print(f"{f'print GEMM {n}^3 ({text.count(chr(10))} lines)':38} {seconds:7.3f} s")
    seconds, _ = timed(lambda: cuda_cpu.compile_cuda_cpu(text))
    print(f"{f'compile GEMM {n}^3':38} {seconds:7.3f} s")
    want = 1.25 * C + 1.5 * (A @ B)
    seconds, _ = timed(lambda: opt.run(1.5, 1.25, C, A, B))
    assert np.allclose(C, want)
    print(f"{f'run GEMM {n}^3 (compile cached)':38} {seconds:7.3f} s")


def main() -> None:
    os.environ["POLYPIPE_CACHE_DIR"] = tempfile.mkdtemp(prefix="pp_cuda_cpu_")  # cold cache
    seconds, _ = timed(cuda_cpu.runtime_library)
    print(f"{'runtime library build':38} {seconds:7.3f} s")
    for n in (128, 256):
        printed_gemm(n)
    text = DEVICE_PRELUDE + (FIXTURES / "sgemm.cu").read_text()
    seconds, sgemm_module = timed(lambda: cuda_cpu.compile_cuda_cpu(text))
    print(f"{'compile SGEMM fixture':38} {seconds:7.3f} s")
    for n in (128, 256):
        seconds, (C, expected) = timed(lambda: sgemm(sgemm_module, n, n, n))
        assert np.array_equal(C, expected)
        print(f"{f'SGEMM fixture {n}^3 launch':38} {seconds:7.3f} s")
    print(f"{'launch 16 x 256 threads x 64 barriers':38} {launch_figures()['launch']:7.3f} s")


if __name__ == "__main__":
    main()
