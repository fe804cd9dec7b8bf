"""Pipelined kernels run once each on the GPU, for compute-sanitizer (memcheck, racecheck,
synccheck) to watch: a GEMM whose 3 shared stages need more than 48 KiB of dynamic shared
memory, and an implicit-GEMM convolution with sizes that leave partial tiles.

    compute-sanitizer --tool racecheck python3 benchmarks/gpu_sanitize.py
    python3 benchmarks/gpu_sanitize.py --plan     # no GPU: the same builds on the CPU runtime

Each result is compared with NumPy; "ran" is printed at the end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polypipe as pp  # noqa: E402
from tests.kernels.contractions import CASES  # noqa: E402

BUILDS = [
    ("gemm", (256, 192, 128), pp.GpuConfig(block=(128, 128), threads=(16, 16), reduction=16,
                                            shared_stages=3, register_stages=2)),
    ("conv2d_s1", (100, 24, 40), pp.GpuConfig(block=(64, 64), threads=(16, 16), reduction=8,
                                               shared_stages=4, register_stages=2)),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", action="store_true",
                        help="no GPU: run the same builds with backend='emulate'")
    options = parser.parse_args(argv)
    backend = "emulate" if options.plan else "cuda"
    for name, sizes, config in BUILDS:
        case = CASES[name]
        args = case.make(np.random.default_rng(0), *sizes, np.float32)
        want = case.expect([a.copy() if isinstance(a, np.ndarray) else a for a in args])
        pp.optimize(pp.kernel(case.func), config).run(*args, backend=backend)
        for index, expected in want.items():
            error = np.max(np.abs(args[index] - expected)) / max(np.max(np.abs(expected)), 1)
            print(f"{name} {sizes} {config.describe()} on {backend}: relative error "
                  f"{error:.1e}")
            if error > 1e-4:
                return 1
    print("ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
