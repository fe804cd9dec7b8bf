"""Front-end and CPU-backend costs per kernel: model, first call, cached-call overhead.

    python benchmarks/frontend.py [KERNEL ...]

For every kernel of the PolyBench-style corpus (tests/kernels/polybench.py) prints:
  model   time to read the source and build the polyhedral model (best of 3)
  first   time of the first call: bind + isl bounds proof + C generation + compile + run
          (with an empty compile cache, so the compiler really runs)
  cached  time of a later call with the same argument types and shapes (median of many)
  loop    time of the compiled function alone, called directly through ctypes
  over    cached - loop: what polypipe adds to each call
Goals (issue 2): model < 0.3 s, first call < 2 s, overhead < 50 us.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import polypipe as pp  # noqa: E402
from tests.kernels.polybench import KERNELS  # noqa: E402


def best(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def median_call(fn, calls=200):
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(case):
    model = best(lambda: pp.kernel(case.func))
    k = pp.kernel(case.func)
    args = case.make_args(np.random.default_rng(0))
    start = time.perf_counter()
    k(*args)
    first = time.perf_counter() - start
    cached = median_call(lambda: k(*args))
    executable = next(iter(k._seen.values()))
    raw_args = executable.packer.pack(tuple(args))
    loop = median_call(lambda: executable.function(*raw_args))
    return model, first, cached, loop


def main(names):
    names = names or list(KERNELS)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["POLYPIPE_CACHE_DIR"] = cache
        print(f"{'kernel':20} {'model':>9} {'first':>9} {'cached':>10} {'loop':>10} {'over':>9}")
        rows = []
        for name in names:
            model, first, cached, loop = measure(KERNELS[name])
            rows.append((model, first, cached - loop))
            print(f"{name:20} {model * 1e3:7.1f}ms {first * 1e3:7.1f}ms {cached * 1e6:8.1f}us "
                  f"{loop * 1e6:8.1f}us {(cached - loop) * 1e6:7.1f}us")
        models, firsts, overs = zip(*rows)
        print(f"\nworst: model {max(models) * 1e3:.1f} ms (goal < 300), first call "
              f"{max(firsts) * 1e3:.1f} ms (goal < 2000), overhead {max(overs) * 1e6:.1f} us "
              f"(goal < 50); median overhead {statistics.median(overs) * 1e6:.1f} us")


if __name__ == "__main__":
    main(sys.argv[1:])
