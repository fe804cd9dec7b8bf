"""The CPU CUDA runtime (codegen.cuda_cpu): hand-written translation units in the printed
interface, run with GPU semantics, and mutations of them that each check must report."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from polypipe.codegen.cuda_cpu import (CudaCpuError, GlobalArray, asan_library,
                                       compile_cuda_cpu, compile_library)
from polypipe.codegen.cuda_device import DEVICE_PRELUDE
from polypipe.codegen.nvcc import compile_cubin, find_nvcc
from polypipe.errors import KernelRuntimeError

FIXTURES = Path(__file__).parent / "cuda_cpu"
ORDERS = ("scrambled", "forward", "reverse")


def source(name: str, replacements: dict[str, str] | None = None) -> str:
    """The translation unit of a fixture, with each replaced text occurring exactly once."""
    text = (FIXTURES / name).read_text()
    for old, new in (replacements or {}).items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return DEVICE_PRELUDE + text


def pointer(array: np.ndarray) -> np.uintp:
    return np.uintp(array.ctypes.data)


# ---- SGEMM -------------------------------------------------------------------------------------
def sgemm(module, M: int, N: int, K: int, *, order="scrambled", seed=0, dynamic=0, rng=0):
    """Run the fixture on integer-valued data (exact in float32); returns (C, expected)."""
    generator = np.random.default_rng(rng)
    A = generator.integers(-3, 4, (M, K)).astype(np.float32)
    B = generator.integers(-3, 4, (K, N)).astype(np.float32)
    C = generator.integers(-3, 4, (M, N)).astype(np.float32)
    expected = C + A @ B
    fault = np.zeros(20, np.int64)
    params = [pointer(C), pointer(A), pointer(B), np.int64(M), np.int64(N), np.int64(K),
              np.int64(0), np.int64(0), np.int64(M // 32), np.int64(N // 32), pointer(fault)]
    arrays = [GlobalArray.of("pp_a_C", C), GlobalArray.of("pp_a_A", A),
              GlobalArray.of("pp_a_B", B)]
    module.launch("sgemm", grid=(N // 32, M // 32, 1), block=(8, 8, 1), dynamic_shared=dynamic,
                  parameters=params, arrays=arrays, order=order, seed=seed)
    return C, expected


@pytest.mark.parametrize("shape", [(32, 32, 16), (64, 96, 48), (96, 64, 112)])
def test_sgemm_matches_numpy(shape):
    C, expected = sgemm(compile_cuda_cpu(source("sgemm.cu")), *shape)
    assert np.array_equal(C, expected)


@pytest.mark.parametrize("order", ORDERS)
def test_sgemm_under_every_thread_order(order):
    for seed in (0, 1, 2**63 + 5):
        C, expected = sgemm(compile_cuda_cpu(source("sgemm.cu")), 64, 64, 64, order=order,
                            seed=seed)
        assert np.array_equal(C, expected)


DYNAMIC = {"PP_SHARED(float, pp_a_A_s, 1536);": "PP_SHARED_DYNAMIC(float, pp_a_A_s, 1536, 0);",
           "PP_SHARED(float, pp_a_B_s, 1536);":
               "PP_SHARED_DYNAMIC(float, pp_a_B_s, 1536, 6144);"}


def test_sgemm_with_dynamic_shared_memory():
    C, expected = sgemm(compile_cuda_cpu(source("sgemm.cu", DYNAMIC)), 64, 32, 48,
                        dynamic=12288)
    assert np.array_equal(C, expected)


def reported(replacements: dict[str, str], *, M=64, N=64, K=64, dynamic=0, order="scrambled",
             seed=0) -> str:
    module = compile_cuda_cpu(source("sgemm.cu", replacements))
    with pytest.raises(CudaCpuError) as caught:
        sgemm(module, M, N, K, dynamic=dynamic, order=order, seed=seed)
    return str(caught.value)


@pytest.mark.parametrize("order", ORDERS)
def test_deleted_barrier_is_a_missing_barrier(order):
    message = reported({"__syncthreads();  /* MUTATE barrier": "/* deleted"}, order=order)
    assert "missing barrier" in message
    assert message.count("thread (") == 2 and message.count("of block (") == 2
    assert "pp_a_A_s[" in message or "pp_a_B_s[" in message
    assert "barrier interval 0" in message and "at line" in message


def test_weakened_wait_is_a_missing_wait():
    message = reported({"pp_cp_async_wait<1>();  /* MUTATE wait": "pp_cp_async_wait<2>(); /*"})
    assert message.startswith("sgemm: missing wait")
    assert "still in flight" in message and "issued at line" in message
    assert "pp_a_A_s[" in message or "pp_a_B_s[" in message


def test_shifted_global_index_is_out_of_bounds():
    message = reported({"(pp_block0 * 32 + row) * K + t * 16 + seg * 4]);  /* MUTATE A source":
                        "(pp_block0 * 32 + row + 1) * K + t * 16 + seg * 4]); /*"})
    assert "out of bounds" in message and "cp.async reads 16 bytes" in message
    assert "pp_a_A" in message and "of block (0,1,0)" in message


def test_guarded_barrier_is_divergence():
    message = reported({"/* MUTATE divergence */": "if (threadIdx.x == 0) __syncthreads();"})
    assert "divergent __syncthreads()" in message
    assert message.count("thread (") == 2
    lines = [n for n, text in enumerate(source("sgemm.cu").splitlines(), 1)
             if "MUTATE divergence" in text or "MUTATE barrier" in text]
    assert all(f"line {n}" in message for n in lines)


def test_misaligned_vector_copy():
    message = reported({"(int)threadIdx.x * 4]);  /* MUTATE fragment":
                        "(int)threadIdx.x * 4 + 1]); /*"})
    assert "misaligned access" in message and "pp_copy16 reads pp_a_B_s[" in message
    assert "16-byte aligned" in message


def test_write_race_between_blocks():
    message = reported({"pp_block0 * 32 + (int)threadIdx.y * 4 + i;  /* MUTATE output row":
                        "(int)threadIdx.y * 4 + i; /*"}, M=64, N=32)
    assert "race between blocks" in message and "pp_a_C[" in message
    assert "of block (0,1,0)" in message and "of block (0,0,0)" in message


def test_dynamic_arrays_past_the_launch_bytes():
    message = reported(DYNAMIC, dynamic=12288 - 16)
    assert "shared memory overflow" in message and "PP_SHARED_DYNAMIC(pp_a_B_s)" in message
    assert "[6144, 12288)" in message and "12272 bytes" in message


def test_static_shared_over_48_kib_is_refused():
    message = reported({"PP_SHARED(float, pp_a_A_s, 1536);": "PP_SHARED(float, pp_a_A_s, 12288);"})
    assert "static shared memory" in message and "48 KiB" in message


# ---- thread order ------------------------------------------------------------------------------
def run_order_kernel(name: str, order: str, seed: int = 0) -> np.ndarray:
    out = np.zeros(64, np.int32)
    compile_cuda_cpu(source("order.cu")).launch(
        name, grid=(1, 1, 1), block=(64, 1, 1), dynamic_shared=0, parameters=[pointer(out)],
        arrays=[GlobalArray.of("pp_a_out", out)], order=order, seed=seed)
    return out


@pytest.mark.parametrize("order", ORDERS)
def test_order_dependent_kernels_are_races_under_every_order(order):
    for seed in range(3):
        with pytest.raises(CudaCpuError, match=r"missing barrier: .*pp_a_S\["):
            run_order_kernel("neighbour", order, seed)
        with pytest.raises(CudaCpuError, match=r"missing barrier: .*writes pp_a_out\[0\]"):
            run_order_kernel("same_value", order, seed)
        assert list(run_order_kernel("neighbour_synced", order, seed)) == [
            (t + 1) % 64 for t in range(64)]


# ---- single checks -----------------------------------------------------------------------------
def test_out_of_bounds_write_is_not_made():
    buffer = np.zeros(16, np.float32)
    module = compile_cuda_cpu(source("checks.cu"))
    with pytest.raises(CudaCpuError) as caught:
        module.launch("store_at", grid=(1, 1, 1), block=(32, 1, 1), dynamic_shared=0,
                      parameters=[pointer(buffer), np.int64(8)],
                      arrays=[GlobalArray.of("pp_a_X", buffer[:8])])
    assert isinstance(caught.value, KernelRuntimeError)
    assert "writes pp_a_X[8]" in str(caught.value) and "has 8 elements" in str(caught.value)
    assert "thread (0,0,0) of block (0,0,0)" in str(caught.value)
    assert not buffer.any()


def test_unwritten_shared_and_register_data_read_as_nan():
    x, y = np.zeros(64, np.float32), np.zeros(64, np.float32)
    compile_cuda_cpu(source("checks.cu")).launch(
        "unwritten", grid=(1, 1, 1), block=(64, 1, 1), dynamic_shared=0,
        parameters=[pointer(x), pointer(y)], arrays=[GlobalArray.of("pp_a_X", x),
                                                     GlobalArray.of("pp_a_Y", y)])
    assert (x.view(np.uint32) == 0xFFFFFFFF).all()
    assert (y.view(np.uint32) == 0xFFFFFFFF).all()


def test_wait_does_not_complete_the_open_group():
    x, y = np.arange(64, dtype=np.float32), np.zeros(64, np.float32)
    with pytest.raises(CudaCpuError, match=r"missing wait: .*reads pp_a_S\[\d+\].*this same "
                                           r"thread issued"):
        compile_cuda_cpu(source("checks.cu")).launch(
            "uncommitted", grid=(1, 1, 1), block=(64, 1, 1), dynamic_shared=0,
            parameters=[pointer(x), pointer(y)], arrays=[GlobalArray.of("pp_a_X", x),
                                                         GlobalArray.of("pp_a_Y", y)])


def test_one_array_under_two_names():
    x = np.arange(64, dtype=np.float32)
    module = compile_cuda_cpu(source("checks.cu"))
    launch = dict(grid=(1, 1, 1), block=(64, 1, 1), dynamic_shared=0,
                  arrays=[GlobalArray.of("pp_a_X", x), GlobalArray.of("pp_a_Y", x)])
    module.launch("alias", parameters=[pointer(x), pointer(x), np.int64(0)], **launch)
    assert np.array_equal(x, np.arange(64) + 1)
    with pytest.raises(CudaCpuError, match=r"missing barrier: .*pp_a_[XY]\[\d+\].*pp_a_[XY]"):
        module.launch("alias", parameters=[pointer(x), pointer(x), np.int64(1)], **launch)


def test_parameters_are_checked_against_the_kernel():
    x = np.zeros(16, np.float32)
    module = compile_cuda_cpu(source("checks.cu"))
    launch = dict(grid=(1, 1, 1), block=(1, 1, 1), dynamic_shared=0,
                  arrays=[GlobalArray.of("pp_a_X", x)])
    with pytest.raises(CudaCpuError, match="parameter 1 is a 8-byte integer"):
        module.launch("store_at", parameters=[pointer(x), np.int32(3)], **launch)
    with pytest.raises(CudaCpuError, match="takes 2 parameters"):
        module.launch("store_at", parameters=[pointer(x)], **launch)
    with pytest.raises(CudaCpuError, match="no kernel 'absent'"):
        module.launch("absent", parameters=[], **launch)
    with pytest.raises(CudaCpuError, match="launch geometry"):
        module.launch("store_at", parameters=[pointer(x), np.int64(0)],
                      **{**launch, "block": (2048, 1, 1)})


def test_compile_errors_are_reported():
    with pytest.raises(CudaCpuError, match=r"rejected the CUDA translation unit:\n.*error"):
        compile_cuda_cpu(DEVICE_PRELUDE + '__global__ void broken(int *p) { p[0] = q; }\n')


def run_python(script: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run PREAMBLE then ``script`` in a fresh Python."""
    text = textwrap.dedent(PREAMBLE) + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", text], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


PREAMBLE = f"""
    import numpy as np
    from polypipe.codegen.cuda_cpu import compile_cuda_cpu, GlobalArray
    from polypipe.codegen.cuda_device import DEVICE_PRELUDE
    checks = DEVICE_PRELUDE + open({str(FIXTURES / 'checks.cu')!r}).read()
    x = np.zeros(64, np.float32)
    def launch(module, kernel, value, threads=4):
        module.launch(kernel, grid=(1, 1, 1), block=(threads, 1, 1), dynamic_shared=0,
                      parameters=[np.uintp(x.ctypes.data), np.int64(value)],
                      arrays=[GlobalArray.of("pp_a_X", x)])
"""


def test_stack_overflow_is_an_error_not_a_crash():
    # In a subprocess: if the fault handler ever failed, only that process would die.
    result = run_python("""
        from polypipe.codegen.cuda_cpu import CudaCpuError
        module = compile_cuda_cpu(checks)
        try:
            launch(module, "deep", 100000)
        except CudaCpuError as error:
            print(error)
        try:
            launch(module, "raw_store", 64 + 1024, threads=1)
        except CudaCpuError as error:
            print(error)
        launch(module, "register_overrun", 2)
        print("still running", x[0])
    """)
    assert result.returncode == 0, result.stderr
    assert "stack overflow: thread (" in result.stdout and "still running 2.0" in result.stdout
    assert "segmentation fault at address 0x" in result.stdout
    assert "(past the end of pp_a_X) in thread (0,0,0) of block (0,0,0)" in result.stdout


def test_address_sanitizer_catches_a_register_overrun():
    libasan = asan_library()
    if libasan is None:
        pytest.skip("the C++ compiler has no libasan")
    checks, gemm = source("checks.cu"), source("sgemm.cu")
    compile_library(checks, sanitize="address")  # built here, without libasan preloaded
    compile_library(gemm, sanitize="address")
    result = run_python(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_cuda_cpu import sgemm, source
        C, expected = sgemm(compile_cuda_cpu(source("sgemm.cu"), sanitize="address"), 64, 32, 48)
        assert np.array_equal(C, expected)
        module = compile_cuda_cpu(checks, sanitize="address")
        launch(module, "register_overrun", 3)
        print("clean runs passed", x[:4], flush=True)
        launch(module, "register_overrun", 4)
        print("the overrun was not caught")
    """, env={"LD_PRELOAD": libasan,
              "ASAN_OPTIONS": "detect_leaks=0:detect_stack_use_after_return=0"})
    assert "clean runs passed [3. 3. 3. 3.]" in result.stdout, result.stderr[-3000:]
    assert "stack-buffer-overflow" in result.stderr and "register_overrun" in result.stderr
    assert "was not caught" not in result.stdout and result.returncode != 0


# ---- the interface on both targets -------------------------------------------------------------
def interface_arrays():
    t = np.arange(64)
    return (np.zeros(64, np.float32), t.astype(np.float32), 2.0 * t, t.astype(np.int32),
            t.astype(np.int64))


def test_interface_kernel_on_the_cpu():
    module = compile_cuda_cpu(source("interface.cu"))
    for limit, faulted in ((64, False), (60, True)):
        out, x, d, i, l = arrays = interface_arrays()
        fault = np.zeros(20, np.int64)
        names = ["pp_a_out", "pp_a_in", "pp_a_d", "pp_a_i", "pp_a_l"]
        module.launch("interface", grid=(1, 1, 1), block=(64, 1, 1), dynamic_shared=1280,
                      parameters=[*map(pointer, arrays), np.int64(limit), np.float64(1.0),
                                  pointer(fault)],
                      arrays=[GlobalArray.of(n, a) for n, a in zip(names, arrays)])
        assert np.array_equal(out[:limit], 2 * x[:limit] + 1) and not out[limit:].any()
        assert fault[0] == (3 if faulted else 0) and fault[2] == 4
        assert (60 <= fault[1] < 64) if faulted else fault[1] == 0


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc not installed")
def test_interface_kernel_compiles_for_sm_90():
    _, resources = compile_cubin(source("interface.cu"), arch="sm_90")
    assert [r.name for r in resources] == ["interface"]


def test_prelude_has_the_agreed_structure():
    lines = DEVICE_PRELUDE.splitlines()
    assert lines[:5] == ["#include <stdint.h>", "#include <math.h>", "#ifdef PP_CPU",
                         '#include "pp_cuda_cpu.h"', "#else"]
    assert lines[-1] == "#endif"


# ---- figures -----------------------------------------------------------------------------------
def launch_figures() -> dict[str, float]:
    """Seconds of one launch of 16 blocks x 256 threads x 64 barriers (benchmarks/cuda_cpu.py
    prints it; no test asserts on time)."""
    module = compile_cuda_cpu(source("checks.cu"))
    x = np.zeros(16 * 256, np.float32)
    start = time.perf_counter()
    module.launch("barriers", grid=(16, 1, 1), block=(256, 1, 1), dynamic_shared=0,
                  parameters=[pointer(x), np.int64(32)], arrays=[GlobalArray.of("pp_a_X", x)])
    launch_seconds = time.perf_counter() - start
    assert (x == 31 * 32 / 2).all()
    return {"launch": launch_seconds}


def test_many_barriers_over_many_blocks():
    launch_figures()


