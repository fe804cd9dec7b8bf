"""float16 and bfloat16 inputs on the GPU path (CUDA cores): contractions accumulating in
float32 and element-wise nests, run by the CPU runtime of the CUDA text and compiled with nvcc.

The operand tiles hold the 16-bit bits (shared and register buffers of ``uint16_t``), their
copies are 8-byte ``cp.async`` groups where proved aligned, and every product is formed from
the widened values as the Python function forms it. The float32 sums may be added in another
order than Python's, so contractions are compared within the bound a float32 sum of K exact
products has; element-wise nests compare bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

import polypipe as pp
from polypipe.codegen.nvcc import compile_cubin, find_nvcc

ml_dtypes = pytest.importorskip("ml_dtypes")

DTYPES = [np.float16, ml_dtypes.bfloat16]
needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="nvcc not installed")


@pp.kernel
def hgemm(A, B, C, NI, NJ, NK):
    for i in range(NI):
        for j in range(NJ):
            for k in range(NK):
                C[i, j] += np.float32(A[i, k]) * B[k, j]


@pp.kernel
def batched(Q, K, S, NB, NQ, NKV, D):
    for b in range(NB):
        for q in range(NQ):
            for t in range(NKV):
                for d in range(D):
                    S[b, q, t] += np.float32(Q[b, q, d]) * np.float32(K[b, t, d])


@pp.kernel
def rounded_products(A, B, C, NI, NJ, NK):
    for i in range(NI):
        for j in range(NJ):
            for k in range(NK):
                C[i, j] += A[i, k] * B[k, j]          # float16 products, as Python rounds them


@pp.kernel
def scale_shift(X, Y, N, M):
    for i in range(N):
        for j in range(M):
            Y[i, j] = X[i, j] * 0.1 + Y[i, j]


def _within_sum_bound(got, want64, magnitude, terms):
    """|got - exact| <= (terms + 1) 2^-24 sum|products| + the float32 rounding of the result."""
    bound = (terms + 1) * 2.0**-24 * magnitude + 2.0**-149
    return np.all(np.abs(got.astype(np.float64) - want64) <= bound)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(64, 64, 64), (70, 45, 53), (130, 66, 24)])
def test_half_gemm_with_float32_accumulation_on_the_cpu_runtime(dtype, shape):
    ni, nj, nk = shape
    rng = np.random.default_rng(sum(shape))
    a = rng.standard_normal((ni, nk)).astype(dtype)
    b = rng.standard_normal((nk, nj)).astype(dtype)
    c = rng.standard_normal((ni, nj)).astype(np.float32)
    got = c.copy()
    opt = pp.optimize(hgemm)
    opt.run(a, b, got, ni, nj, nk, backend="emulate")
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    exact = c.astype(np.float64) + a64 @ b64
    assert _within_sum_bound(got, exact, np.abs(c) + np.abs(a64) @ np.abs(b64), nk)
    source = opt.cuda_source(a, b, got, ni, nj, nk)
    assert "uint16_t *__restrict__ a_A" in source and "PP_SHARED(uint16_t" in source
    if nk % 8 == 0 and nj % 8 == 0:
        assert "pp_cp_async<8>" in source     # 4-element groups of 2-byte elements


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_half_batched_scores_on_the_cpu_runtime(dtype):
    nb, nq, nkv, d = 2, 40, 24, 32
    rng = np.random.default_rng(3)
    q = rng.standard_normal((nb, nq, d)).astype(dtype)
    k = rng.standard_normal((nb, nkv, d)).astype(dtype)
    s = np.zeros((nb, nq, nkv), np.float32)
    pp.optimize(batched).run(q, k, s, nb, nq, nkv, d, backend="emulate")
    q64, k64 = q.astype(np.float64), k.astype(np.float64)
    exact = np.einsum("bqd,btd->bqt", q64, k64)
    magnitude = np.einsum("bqd,btd->bqt", np.abs(q64), np.abs(k64))
    assert _within_sum_bound(s, exact, magnitude, d)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_half_products_round_as_python_rounds_them(dtype):
    """``A[i, k] * B[k, j]`` of two float16 values is a float16 in Python: rounded before it
    is added. Values with many bits make the rounding visible: the kernel agrees with Python,
    not with the exact products."""
    ni, nj, nk = 32, 24, 16
    rng = np.random.default_rng(5)
    a = rng.uniform(1, 2, (ni, nk)).astype(dtype)
    b = rng.uniform(1, 2, (nk, nj)).astype(dtype)
    got, want = np.zeros((ni, nj), np.float32), np.zeros((ni, nj), np.float32)
    pp.optimize(rounded_products).run(a, b, got, ni, nj, nk, backend="emulate")
    rounded_products.python(a, b, want, ni, nj, nk)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.max(np.abs(want - exact)) > 1e-3           # the rounding is visible
    assert np.allclose(got, want, rtol=nk * 2.0**-23, atol=0)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_half_elementwise_nest_is_bit_exact_on_the_cpu_runtime(dtype):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((33, 20)) * 100).astype(dtype)
    y = rng.standard_normal((33, 20)).astype(dtype)
    got, want = y.copy(), y.copy()
    pp.optimize(scale_shift).run(x, got, 33, 20, backend="emulate")
    scale_shift.python(x, want, 33, 20)
    assert got.dtype == want.dtype and np.array_equal(got.view(np.uint16), want.view(np.uint16))


@needs_nvcc
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_half_kernels_compile_for_sm80_and_sm90_without_spills(dtype):
    a, b = np.zeros((128, 64), dtype), np.zeros((64, 128), dtype)
    c = np.zeros((128, 128), np.float32)
    sources = [pp.optimize(hgemm).cuda_source(a, b, c, 128, 128, 64),
               pp.optimize(scale_shift).cuda_source(a, a.copy(), 128, 64)]
    for source in sources:
        for arch in ("sm_80", "sm_90"):
            _, resources = compile_cubin(source, arch)
            assert resources and all(r.spill_stores == 0 and r.spill_loads == 0
                                     for r in resources)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["gemm", "batched_gemm", "gemm_tt_local", "2mm", "syrk",
                                  "conv2d_s1", "conv2d_s2", "conv_igemm"])
def test_every_contraction_shape_is_bit_exact_in_16_bits(name, dtype):
    """Every array 16-bit (accumulator included): each += rounds as Python's does, and the
    CUDA-core kernel adds each element's terms in Python's order, so the results are equal
    bit for bit, at sizes that divide no tile."""
    from tests.kernels.contractions import CASES

    case = CASES[name]
    kernel = pp.kernel(case.func)
    args = case.make(np.random.default_rng(0), 37, 29, 23, dtype)
    got = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    want = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    config = pp.GpuConfig(block=(16, 16), threads=(4, 4), reduction=8)
    pp.optimize(kernel, config).run(*got, backend="emulate")
    kernel.python(*want)
    for mine, python in zip(got, want):
        if isinstance(mine, np.ndarray):
            assert np.array_equal(mine.view(np.uint16), python.view(np.uint16))
