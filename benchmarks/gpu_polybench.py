"""PolyBench on the GPU: polypipe's kernels at LARGE sizes beside CuPy equivalents.

    python benchmarks/gpu_polybench.py --check            # CPU: the equivalents equal Python
    python benchmarks/gpu_polybench.py --dry-run [--only gemm,lu] [--out FILE]
    python benchmarks/gpu_polybench.py [--only ...] [--json FILE]   # on a GPU (CuPy, PyCUDA)

Every PolyBench 4.2.1 kernel of ``tests/kernels/polybench.py`` runs at its LARGE_DATASET
sizes in float64 (PolyBench's ``DATA_TYPE``), with the default ``GpuConfig``. Sizes come from
the small test arguments by a per-kernel map (``LARGE``: each small extent to its LARGE one),
so the arguments keep the test builders' structure (positive definite for cholesky, diagonally
dominant for the solvers).

``--dry-run`` (no GPU): builds and proves each program, prints its CUDA at the LARGE sizes,
compiles it with nvcc for sm_90 and reports kernels, launches (isl counts the host loops'
points), registers and spills, the static estimate on an H200 (the sum of every kernel's
lower bound on the time, and the unit that bounds the slowest kernel) and the build time. The
GPU run leaves the estimate out (its seconds go to measuring); the committed dry-run table
(``benchmarks/results/cpu_polybench_gpu_dryrun.txt``) has it beside each kernel's name.

On a GPU: per kernel, milliseconds of polypipe's launches (``time_cuda`` on CuPy arrays) and
of the CuPy equivalent where one exists (``EQUIVALENTS``; matrix products through cuBLAS,
stencils by slicing, one CuPy call per time step), their ratio, and the largest relative
difference between the two results. Kernels with more than ``MAX_LAUNCHES`` launches at LARGE
sizes are skipped with the count. ``--check`` runs the equivalents with NumPy at the small
sizes against the Python functions (the test suite does).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import polypipe as pp  # noqa: E402
from tests.kernels.polybench import KERNELS  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MAX_LAUNCHES = 200_000

# small extent (and int argument) of the test arguments -> PolyBench 4.2.1 LARGE_DATASET
LARGE = {
    "correlation": {17: 1400, 13: 1200}, "covariance": {19: 1400, 12: 1200},
    "gemm": {13: 1000, 17: 1100, 11: 1200}, "gemver": {21: 2000}, "gesummv": {23: 1300},
    "symm": {13: 1000, 17: 1200}, "syr2k": {14: 1200, 11: 1000}, "syrk": {15: 1200, 9: 1000},
    "trmm": {12: 1000, 16: 1200}, "2mm": {9: 800, 11: 900, 13: 1100, 15: 1200},
    "3mm": {8: 800, 10: 900, 12: 1000, 14: 1100, 16: 1200}, "atax": {19: 1900, 23: 2100},
    "bicg": {21: 2100, 17: 1900}, "doitgen": {7: 150, 9: 140, 11: 160}, "mvt": {22: 2000},
    "cholesky": {18: 2000}, "durbin": {24: 2000}, "gramschmidt": {17: 1000, 11: 1200},
    "lu": {17: 2000}, "ludcmp": {16: 2000}, "trisolv": {25: 2000},
    "deriche": {19: 4096, 14: 2160}, "floyd_warshall": {16: 2800}, "nussinov": {25: 2500},
    "adi": {5: 500, 12: 1000}, "fdtd_2d": {6: 500, 13: 1000, 17: 1200},
    "heat_3d": {4: 500, 9: 120}, "jacobi_1d": {8: 500, 30: 2000},
    "jacobi_2d": {5: 500, 14: 1300}, "seidel_2d": {4: 500, 15: 2000},
}
# arguments the kernels need with structure (the rest: uniform in [0, 1))
_SPD, _DOMINANT = ("cholesky",), ("lu", "ludcmp", "trisolv")


def large_args(name: str, rng, scale: dict | None = None) -> list:
    """The kernel's arguments at the sizes ``scale`` maps its small ones to (LARGE by
    default)."""
    scale = LARGE[name] if scale is None else scale
    small = KERNELS[name].make_args(np.random.default_rng(0), np.float64)
    args = []
    for value in small:
        if isinstance(value, np.ndarray):
            shape = tuple(scale.get(extent, extent) for extent in value.shape)
            args.append(_array(name, value, shape, rng))
        elif isinstance(value, int) and not isinstance(value, bool):
            args.append(scale.get(value, value))
        elif isinstance(value, float) and value.is_integer() and int(value) in scale:
            args.append(float(scale[int(value)]))          # correlation's float_n
        else:
            args.append(value)
    return args


def _array(name: str, small: np.ndarray, shape: tuple, rng) -> np.ndarray:
    if small.dtype.kind in "iu":
        return rng.integers(0, 4, size=shape).astype(small.dtype)
    if len(shape) == 2 and shape[0] == shape[1] and name in _SPD + _DOMINANT:
        n = shape[0]
        base = rng.random(shape)
        base = (base + base.T) / 2.0 if name in _SPD else base - 0.5
        return base + n * np.eye(n)
    if not small.any():
        return np.zeros(shape)
    return rng.random(shape)


# -- CuPy (or NumPy) equivalents: the same arguments, the same outputs, in place -------------

def _tril(xp, matrix):
    return xp.tril(xp.ones(matrix.shape, dtype=bool))


def _jacobi_1d(xp, tsteps, A, B):
    for _ in range(tsteps):
        B[1:-1] = 0.33333 * (A[:-2] + A[1:-1] + A[2:])
        A[1:-1] = 0.33333 * (B[:-2] + B[1:-1] + B[2:])


def _jacobi_2d(xp, tsteps, A, B):
    for _ in range(tsteps):
        B[1:-1, 1:-1] = 0.2 * (A[1:-1, 1:-1] + A[1:-1, :-2] + A[1:-1, 2:] + A[2:, 1:-1]
                               + A[:-2, 1:-1])
        A[1:-1, 1:-1] = 0.2 * (B[1:-1, 1:-1] + B[1:-1, :-2] + B[1:-1, 2:] + B[2:, 1:-1]
                               + B[:-2, 1:-1])


def _heat_sweep(src, dst):
    c = src[1:-1, 1:-1, 1:-1]
    dst[1:-1, 1:-1, 1:-1] = (0.125 * (src[2:, 1:-1, 1:-1] - 2.0 * c + src[:-2, 1:-1, 1:-1])
                             + 0.125 * (src[1:-1, 2:, 1:-1] - 2.0 * c + src[1:-1, :-2, 1:-1])
                             + 0.125 * (src[1:-1, 1:-1, 2:] - 2.0 * c + src[1:-1, 1:-1, :-2])
                             + c)


def _heat_3d(xp, tsteps, A, B):
    for _ in range(tsteps):
        _heat_sweep(A, B)
        _heat_sweep(B, A)


def _fdtd_2d(xp, tmax, ex, ey, hz, fict):
    for t in range(tmax):
        ey[0, :] = fict[t]
        ey[1:, :] -= 0.5 * (hz[1:, :] - hz[:-1, :])
        ex[:, 1:] -= 0.5 * (hz[:, 1:] - hz[:, :-1])
        hz[:-1, :-1] -= 0.7 * (ex[:-1, 1:] - ex[:-1, :-1] + ey[1:, :-1] - ey[:-1, :-1])


def _floyd_warshall(xp, path):
    for k in range(path.shape[0]):
        xp.minimum(path, path[:, k].copy()[:, None] + path[k].copy()[None, :], out=path)


def _doitgen(xp, A, C4, sum_):
    sum_[:] = A[-1, -1] @ C4
    A[:] = xp.matmul(A, C4)


def _covariance(xp, float_n, data, cov, mean):
    mean[:] = data.sum(axis=0) / float_n
    data -= mean
    cov[:] = data.T @ data / (float_n - 1.0)


def _cholesky(xp, A):
    A[:] = xp.where(_tril(xp, A), xp.linalg.cholesky(A), A)


EQUIVALENTS = {
    "gemm": lambda xp, alpha, beta, C, A, B: C.__setitem__(..., beta * C + alpha * (A @ B)),
    "2mm": lambda xp, alpha, beta, tmp, A, B, C, D: (
        tmp.__setitem__(..., alpha * (A @ B)), D.__setitem__(..., beta * D + tmp @ C)),
    "3mm": lambda xp, E, A, B, F, C, D, G: (
        E.__setitem__(..., A @ B), F.__setitem__(..., C @ D), G.__setitem__(..., E @ F)),
    "atax": lambda xp, A, x, y, tmp: (tmp.__setitem__(..., A @ x),
                                      y.__setitem__(..., A.T @ tmp)),
    "bicg": lambda xp, A, s, q, p, r: (s.__setitem__(..., r @ A), q.__setitem__(..., A @ p)),
    "mvt": lambda xp, x1, x2, y_1, y_2, A: (x1.__setitem__(..., x1 + A @ y_1),
                                            x2.__setitem__(..., x2 + A.T @ y_2)),
    "gemver": lambda xp, alpha, beta, A, u1, v1, u2, v2, w, x, y, z: (
        A.__setitem__(..., A + xp.outer(u1, v1) + xp.outer(u2, v2)),
        x.__setitem__(..., x + beta * (A.T @ y) + z), w.__setitem__(..., w + alpha * (A @ x))),
    "gesummv": lambda xp, alpha, beta, A, B, tmp, x, y: (
        tmp.__setitem__(..., A @ x), y.__setitem__(..., alpha * tmp + beta * (B @ x))),
    "syrk": lambda xp, alpha, beta, C, A: C.__setitem__(..., xp.where(
        _tril(xp, C), beta * C + alpha * (A @ A.T), C)),
    "syr2k": lambda xp, alpha, beta, C, A, B: C.__setitem__(..., xp.where(
        _tril(xp, C), beta * C + alpha * (B @ A.T + A @ B.T), C)),
    "trmm": lambda xp, alpha, A, B: B.__setitem__(..., alpha * (B + xp.triu(A.T, 1) @ B)),
    "doitgen": _doitgen, "covariance": _covariance, "cholesky": _cholesky,
    "jacobi_1d": _jacobi_1d, "jacobi_2d": _jacobi_2d, "heat_3d": _heat_3d,
    "fdtd_2d": _fdtd_2d, "floyd_warshall": _floyd_warshall,
}


def max_relative_difference(got, want) -> float:
    worst = 0.0
    for g, w in zip(got, want):
        if isinstance(w, np.ndarray) and w.size:
            scale = max(1.0, float(np.abs(w).max()))
            worst = max(worst, float(np.abs(g - w).max()) / scale)
    return worst


def check(names) -> int:
    """The equivalents (NumPy) against the Python functions at the small sizes."""
    failures = 0
    for name in names:
        if name not in EQUIVALENTS:
            continue
        args = KERNELS[name].make_args(np.random.default_rng(1), np.float64)
        want = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        got = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        KERNELS[name].func(*want)
        EQUIVALENTS[name](np, *got)
        error = max_relative_difference(got, want)
        ok = error <= 1e-9
        failures += not ok
        print(f"{name:16s} {'ok' if ok else 'DIFFERS'}  max relative difference {error:.1e}")
    return failures


def launch_count(opt, args) -> int:
    """Launches at these arguments' sizes: isl counts the points of each kernel's keys."""
    from polypipe.gpu_scheduled import ScheduledKernel
    from polypipe.kernel import bind_arguments

    params = bind_arguments(opt.original, args).params
    total = 0
    for kernel in opt.kernels:
        if not isinstance(kernel, ScheduledKernel):
            total += 1
            continue
        keys = kernel.launch_of.intersect_domain(kernel.launch_domain).range()
        keys = keys.intersect_params(_fixed(keys, params))
        keys.foreach_set(lambda s: _add(s.count_val().to_python()))
        total += _add.total
        _add.total = 0
    return total


def _add(value: int) -> None:
    _add.total += value


_add.total = 0


def _fixed(values, params):
    from polypipe.analysis.bounds import fix_parameters

    return fix_parameters(values.params(), params)


def estimate_of(opt, args, target: str = "H200") -> tuple[float, str]:
    """The static estimate of the program at these arguments: milliseconds (the launches'
    lower bounds added up) and the unit bounding its slowest kernel."""
    from polypipe.errors import CodegenError
    from polypipe.kernel import bind_arguments
    from polypipe.performance import launch_estimates

    binding = bind_arguments(opt.original, args, device_arrays=True)
    try:   # the kernels a run at these sizes launches (the default fitted to them)
        estimates = launch_estimates(opt.for_sizes(binding), binding, target)
    except CodegenError:      # no nvdisasm: the rest of the row stands
        return math.nan, "none"
    if not estimates:
        return 0.0, "-"
    return (sum(e.time for e in estimates) * 1e3, max(estimates, key=lambda e: e.time).bound)


def dry_run(names, out: Path | None) -> int:
    from polypipe.codegen.nvcc import compile_cubin

    lines = ["PolyBench at LARGE sizes, float64, the default GpuConfig fitted to the sizes: "
             "built, proved, printed and compiled for sm_90 (no GPU)",
             f"{'kernel':16s} {'kernels':>7s} {'launches':>10s} {'regs':>5s} {'spill B':>7s} "
             f"{'est. ms':>9s} {'bound':>7s} {'build s':>8s}  equivalent"]
    print("\n".join(lines))
    failures = 0
    for name in names:
        started = time.perf_counter()
        try:
            opt = pp.optimize(pp.kernel(KERNELS[name].func))
            args = large_args(name, np.random.default_rng(0))
            source = opt.cuda_source(*args)
            _, resources = compile_cubin(source, "sm_90")
            launches = launch_count(opt, args)
            estimated, bound = estimate_of(opt, args)
        except pp.PolypipeError as exc:
            failures += 1
            line = f"{name:16s} FAILED: {str(exc).splitlines()[0][:100]}"
        else:
            regs = max(r.registers for r in resources)
            spills = sum(r.spill_stores + r.spill_loads for r in resources)
            line = (f"{name:16s} {len(opt.kernels):7d} {launches:10d} {regs:5d} {spills:7d} "
                    f"{estimated:9.3g} {bound:>7s} {time.perf_counter() - started:8.1f}  "
                    f"{'CuPy' if name in EQUIVALENTS else '-'}")
        print(line, flush=True)
        lines.append(line)
    if out is not None:
        out.write_text("\n".join(lines) + "\n")
    return failures


def gpu_run(names, out: Path) -> int:
    import cupy as cp  # type: ignore

    records = []
    for name in names:
        opt = pp.optimize(pp.kernel(KERNELS[name].func))
        host = large_args(name, np.random.default_rng(0))
        launches = launch_count(opt, host)
        record = {"kernel": name, "kernels": len(opt.kernels), "launches": launches,
                  "dtype": "float64"}
        if launches > MAX_LAUNCHES:
            record["skipped"] = f"{launches} launches"
        else:
            device = [cp.asarray(a) if isinstance(a, np.ndarray) else a for a in host]
            record["polypipe_ms"] = opt.time_cuda(*device, repeat=3)
            got = [cp.asarray(a) if isinstance(a, np.ndarray) else a for a in host]
            opt.run(*got, backend="cuda")
            if name in EQUIVALENTS:
                want = [cp.asarray(a) if isinstance(a, np.ndarray) else a for a in host]
                record["cupy_ms"] = _time_cupy(cp, EQUIVALENTS[name], want)
                record["speedup"] = record["cupy_ms"] / record["polypipe_ms"]
                fresh = [cp.asarray(a) if isinstance(a, np.ndarray) else a for a in host]
                EQUIVALENTS[name](cp, *fresh)
                record["max_relative_difference"] = max_relative_difference(
                    [cp.asnumpy(a) if isinstance(a, cp.ndarray) else a for a in got],
                    [cp.asnumpy(a) if isinstance(a, cp.ndarray) else a for a in fresh])
        print(json.dumps(record), flush=True)
        records.append(record)
        out.write_text(json.dumps(records, indent=1) + "\n")
    return 0


def _time_cupy(cp, function, args) -> float:
    start, end = cp.cuda.Event(), cp.cuda.Event()
    function(cp, *args)       # warm-up (cuBLAS handles, kernel compilation)
    start.record()
    function(cp, *args)
    end.record()
    end.synchronize()
    return cp.cuda.get_elapsed_time(start, end)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="equivalents against Python")
    parser.add_argument("--dry-run", action="store_true", help="no GPU: build and compile")
    parser.add_argument("--only", help="comma-separated kernel names")
    parser.add_argument("--out", type=Path, help="the dry run's table")
    parser.add_argument("--json", type=Path, default=RESULTS / "gpu_polybench.json")
    options = parser.parse_args(argv)
    names = options.only.split(",") if options.only else list(LARGE)
    unknown = [n for n in names if n not in LARGE]
    if unknown:
        parser.error(f"unknown kernel(s) {', '.join(unknown)}; known: {', '.join(LARGE)}")
    if options.check:
        return 1 if check(names) else 0
    if options.dry_run:
        return 1 if dry_run(names, options.out) else 0
    return gpu_run(names, options.json)


if __name__ == "__main__":
    sys.exit(main())
