"""Generated CUDA on a real GPU: results against NumPy, device arrays, alignment variants, and
compute-sanitizer's racecheck and synccheck. Every test here is marked ``gpu`` and skips
where PyCUDA or a GPU is missing."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import polypipe as pp
from polypipe.codegen.cuda_runtime import cuda_unavailable_reason
from tests.kernels.contractions import CASES

NO_GPU = cuda_unavailable_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(NO_GPU is not None, reason=str(NO_GPU))]

_OPTIMIZED: dict = {}


def _optimized(name, config):
    key = (name, config)
    if key not in _OPTIMIZED:
        _OPTIMIZED[key] = pp.optimize(pp.kernel(CASES[name].func), config)
    return _OPTIMIZED[key]


def _check(name, config, sizes, dtype, tolerance):
    case = CASES[name]
    args = case.make(np.random.default_rng(0), *sizes, dtype)
    want = case.expect([a.copy() if isinstance(a, np.ndarray) else a for a in args])
    _optimized(name, config).run(*args, backend="cuda")
    for index, expected in want.items():
        error = np.max(np.abs(args[index] - expected)) / max(np.max(np.abs(expected)), 1.0)
        assert error < tolerance, f"{name} {config.describe()}: relative error {error:.2e}"


# POLYPIPE_GPU_STAGES="1x1,3x2" narrows the stage counts (benchmarks/gpu_session.py does, to
# fit the session's minutes).
STAGES = [tuple(int(n) for n in item.split("x")) for item in os.environ.get(
    "POLYPIPE_GPU_STAGES", "1x1,2x1,2x2,3x2,4x2").split(",")]


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("stages", STAGES)
def test_every_case_and_stage_count_matches_numpy(name, stages):
    config = pp.GpuConfig(shared_stages=stages[0], register_stages=stages[1])
    _check(name, config, (100, 72, 53), np.float32, 1e-5)


@pytest.mark.parametrize("name", ["matmul", "gemm", "batched_gemm", "conv2d_s1"])
@pytest.mark.parametrize("sizes", [(128, 128, 64), (256, 192, 96), (130, 66, 36)])
def test_wide_copies_match_numpy(name, sizes):
    # Multiples of 4 in the innermost extents: copies are 16-byte cp.async.
    config = pp.GpuConfig(block=(128, 64), threads=(16, 16), reduction=16, shared_stages=3)
    _check(name, config, sizes, np.float32, 1e-5)


@pytest.mark.parametrize("name", ["matmul", "gemm_tt_local"])
def test_float64_matches_numpy(name):
    _check(name, pp.GpuConfig(), (100, 72, 64), np.float64, 1e-12)


@pytest.mark.parametrize("name", ["jacobi_2d", "seidel_2d", "lu", "atax", "durbin",
                                  "nussinov", "gramschmidt", "deriche"])
def test_kernels_of_computed_schedules_match_python(name):
    """Host loops, wavefronts, one-thread kernels and device-memory locals on the GPU."""
    from tests.helpers import copy_args, max_relative_error
    from tests.kernels.polybench import KERNELS

    case = KERNELS[name]
    args = case.make_args(np.random.default_rng(0), np.float64)
    want = copy_args(args)
    case.func(*want)
    pp.optimize(pp.kernel(case.func)).run(*args, backend="cuda")
    for got, expected in zip(args, want):
        if isinstance(expected, np.ndarray):
            assert max_relative_error(got, expected) <= 1e-9, name


def test_device_arrays_are_used_in_place_and_misaligned_views_fall_back():
    cupy = pytest.importorskip("cupy")
    opt = _optimized("matmul", pp.GpuConfig())
    rng = np.random.default_rng(1)
    a = rng.random((96, 65), dtype=np.float32)
    b = rng.random((64, 80), dtype=np.float32)
    # A contiguous (96, 64) array starting 4 bytes into an allocation: not 16-byte aligned,
    # so its copies must be printed scalar.
    shifted = cupy.zeros(64 * 96 + 1, dtype=cupy.float32)[1:].reshape(96, 64)
    shifted[...] = cupy.asarray(a[:, 1:])
    c = cupy.zeros((96, 80), dtype=cupy.float32)
    opt.run(c, shifted, cupy.asarray(b), backend="cuda")
    assert np.allclose(cupy.asnumpy(c), a[:, 1:].astype(np.float64) @ b, rtol=1e-5)
    assert opt.time_cuda(c, shifted, cupy.asarray(b), repeat=3) > 0


@pytest.mark.parametrize("tool", ["memcheck", "racecheck", "synccheck"])
def test_pipelined_gemm_is_clean_under_compute_sanitizer(tool):
    sanitizer = shutil.which("compute-sanitizer")
    if sanitizer is None:
        pytest.skip("compute-sanitizer is not installed")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    result = subprocess.run([sanitizer, "--tool", tool, "--error-exitcode", "3",
                             sys.executable, str(root / "benchmarks" / "gpu_sanitize.py")],
                            capture_output=True, text=True,
                            cwd=root, env=env, timeout=900)
    report = result.stdout + result.stderr
    assert result.returncode == 0 and "ran" in result.stdout, report[-4000:]
    assert "ERROR SUMMARY: 0 errors" in report, report[-4000:]
