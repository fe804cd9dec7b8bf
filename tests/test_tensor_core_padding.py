"""Partial tiles on tensor cores (polypipe.gpu_pad, analysis.pad_proof): sizes that do not
divide the block and reduction tiles run whole tiles with zero-filled operands, on the CPU
runtime's warp collectives against NumPy in float16 and bfloat16 (matmul at random sizes,
batched attention scores, A stored k x m, 2mm, an implicit-GEMM convolution); an infinity in
the operands stays where Python puts it; the padding's proof and the printed zero-filling
copies are what keeps them right (mutations fail); non-rectangular nests are refused."""

from __future__ import annotations

import numpy as np
import pytest

import polypipe as pp
from polypipe.errors import InternalError, ScheduleError

from .test_tensor_cores import (ONE_WARP, WARPS, _bound, _config, _optimized, _random, at_b,
                                check_convolution, matmul, scores, two_mm)

CONFIGS = [fields for fields, _ in ONE_WARP] + [fields for fields, _, _ in WARPS]


def _check_matmul(opt, rng, sizes, dtype):
    M, N, K = sizes
    A, B = _random(rng, (M, K), dtype), _random(rng, (K, N), dtype)
    C = np.full((M, N), np.nan, np.float32)
    opt.run(C, A, B)
    want = A.astype(np.float64) @ B.astype(np.float64)
    assert np.all(np.abs(C - want) <= _bound(K, A, B, "ik,kj->ij")), sizes


@pytest.mark.parametrize("fields", CONFIGS, ids=lambda f: "x".join(map(str, f["block"]))
                         + f"k{f.get('reduction', 32)}w" + "x".join(map(str, f.get("warps",
                                                                                 (1, 1)))))
def test_matmul_at_sizes_that_do_not_divide_the_tiles(fields):
    """Random sizes from 1 to 150 (each configuration in both formats), and the smallest."""
    opt = _optimized(matmul, _config(**fields))
    rng = np.random.default_rng(len(str(fields)))
    for dtype in ("float16", "bfloat16"):
        _check_matmul(opt, rng, tuple(int(s) for s in rng.integers(1, 150, 3)), dtype)
    _check_matmul(opt, rng, (1, 1, 1), "float16")


@pytest.mark.parametrize("sizes", [(0, 5, 5), (5, 0, 5), (5, 5, 0)])
def test_empty_sizes_give_pythons_result(sizes):
    """No tile at all (M or N zero), or no reduction (K zero: C is all zeros)."""
    opt = _optimized(matmul, _config(block=(32, 32), reduction=32))
    M, N, K = sizes
    A, B = np.ones((M, K), np.float16), np.ones((K, N), np.float16)
    C = np.full((M, N), np.nan, np.float32)
    opt.run(C, A, B)
    want = np.full((M, N), np.nan, np.float32)
    matmul.python(want, A, B)
    assert np.array_equal(C, want)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_batched_attention_scores_at_partial_sizes(dtype):
    opt = _optimized(scores, _config(block=(32, 32), reduction=32))
    rng = np.random.default_rng(11)
    Q, K = _random(rng, (3, 40, 72), dtype), _random(rng, (3, 21, 72), dtype)
    S = np.full((3, 40, 21), np.nan, np.float32)
    opt.run(S, Q, K)
    want = np.einsum("hid,hjd->hij", Q.astype(np.float64), K.astype(np.float64))
    assert np.all(np.abs(S - want) <= _bound(72, Q, K, "hid,hjd->hij"))


def test_a_stored_k_by_m_at_partial_sizes():
    opt = _optimized(at_b, _config(block=(32, 32), reduction=32))
    rng = np.random.default_rng(12)
    A, B = _random(rng, (50, 33), "bfloat16"), _random(rng, (50, 45), "bfloat16")
    C = np.full((33, 45), np.nan, np.float32)
    opt.run(C, A, B)
    want = A.astype(np.float64).T @ B.astype(np.float64)
    assert np.all(np.abs(C - want) <= _bound(50, A.T, B, "ik,kj->ij"))


def test_two_contractions_at_partial_sizes():
    opt = _optimized(two_mm, _config(block=(32, 32), reduction=32))
    rng = np.random.default_rng(13)
    M, N, K, L = 20, 40, 50, 12
    A, B, C16 = (_random(rng, s, "float16") for s in ((M, K), (K, N), (N, L)))
    T, D = np.zeros((M, N), np.float32), np.zeros((M, L), np.float32)
    E = np.zeros((M, N), np.float16)
    opt.run(D, T, A, B, C16, E)
    assert np.all(np.abs(T - A.astype(np.float64) @ B) <= _bound(K, A, B, "ik,kj->ij"))
    assert np.all(E == T.astype(E.dtype))
    assert np.all(np.abs(D - E.astype(np.float64) @ C16) <= _bound(N, E, C16, "ij,jl->il"))


OH = OW = 3      # an output image of 3x3 and 5 input channels: no size divides a tile
CI = 5


@pp.kernel
def conv3x3_odd(Y, Xp, Wt):
    """test_tensor_cores.conv3x3 over this module's OH, OW and CI (polypipe reads a kernel's
    constants from its module)."""
    P, CO = Y.shape
    RSC = Wt.shape[0]
    for p in range(P):
        for co in range(CO):
            Y[p, co] = 0.0
            for r in range(RSC):
                Y[p, co] += np.float32(Xp[p // (OH * OW), (p // OW) % OH + r // (3 * CI),
                                          p % OW + (r // CI) % 3, r % CI]) * Wt[r, co]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_implicit_gemm_convolution_at_partial_sizes(dtype):
    """45 taps x channels over reduction tiles of 32, 2 x 9 output pixels over 32 rows, 24
    output channels over 32 columns."""
    opt = _optimized(conv3x3_odd, _config(block=(32, 32), reduction=32))
    check_convolution(opt, conv3x3_odd, (OH, OW, CI), batch=2, co=24, dtype=dtype, seed=14)


def test_infinities_next_to_the_padding_stay_where_python_puts_them():
    """An infinity in A's last row and column and in B's last row: the padding multiplies
    zeros by zeros (0 * inf would be NaN), so each output is Python's: inf, -inf, NaN or the
    finite sum."""
    opt = _optimized(matmul, _config(block=(32, 32), reduction=32))
    rng = np.random.default_rng(15)
    M, N, K = 35, 33, 37
    A, B = _random(rng, (M, K), "float16"), _random(rng, (K, N), "float16")
    A[M - 1, K - 1] = np.inf
    A[3, K - 1] = -np.inf
    B[K - 1, N - 1] = np.inf
    B[K - 1, 5] = 0.0
    C = np.full((M, N), 7.0, np.float32)
    opt.run(C, A, B)
    want = np.zeros((M, N), np.float32)
    with np.errstate(invalid="ignore"):
        matmul.python(want, A, B)
    assert np.array_equal(np.isnan(C), np.isnan(want))
    assert np.array_equal(np.isinf(C), np.isinf(want))
    assert np.array_equal(C[np.isinf(C)], want[np.isinf(want)])
    finite = np.isfinite(want)
    assert np.isnan(want).any() and finite.sum() > M * N // 2
    bound = _bound(K, np.nan_to_num(A), np.nan_to_num(B), "ik,kj->ij")
    assert np.all(np.abs(C[finite] - want[finite]) <= 2 * bound[finite])


@pp.kernel
def accumulate(C, A, B):
    """C += A B: the accumulator copied in (its padding's registers start at zero)."""
    M, N = C.shape
    K = A.shape[1]
    for i in range(M):
        for j in range(N):
            for k in range(K):
                C[i, j] += np.float32(A[i, k]) * B[k, j]


@pp.kernel
def from_one_then_scaled(D, C, A, B):
    """k starts at 1, inside the first 16-byte group of a row (zero-filling copies of a
    prefix cannot hold it: those tiles are copied element by element), and an epilogue."""
    M, N = C.shape
    K = A.shape[1]
    for i in range(M):
        for j in range(N):
            C[i, j] = 0.0
            for k in range(1, K):
                C[i, j] += np.float32(A[i, k]) * B[k, j]
            D[i, j] = 2.0 * C[i, j]


def test_an_accumulator_copied_in_at_partial_sizes():
    opt = _optimized(accumulate, _config(block=(32, 32), reduction=32))
    rng = np.random.default_rng(17)
    M, N, K = 37, 45, 50
    A, B = _random(rng, (M, K), "float16"), _random(rng, (K, N), "float16")
    before = rng.standard_normal((M, N)).astype(np.float32)
    C = before.copy()
    opt.run(C, A, B)
    want = before + A.astype(np.float64) @ B.astype(np.float64)
    assert np.all(np.abs(C - want) <= _bound(K, A, B, "ik,kj->ij") + 2.0 ** -23 * np.abs(want))


def test_a_reduction_starting_inside_a_group_and_an_epilogue():
    opt = _optimized(from_one_then_scaled, _config(block=(32, 32), reduction=32))
    assert any("element by element: the nest starts inside a group" in line
               for line in opt.kernels[0].log)
    rng = np.random.default_rng(18)
    M, N, K = 37, 45, 50
    A, B = _random(rng, (M, K), "bfloat16"), _random(rng, (K, N), "bfloat16")
    C, D = (np.full((M, N), np.nan, np.float32) for _ in range(2))
    opt.run(D, C, A, B)
    want = A[:, 1:].astype(np.float64) @ B[1:].astype(np.float64)
    assert np.all(np.abs(C - want) <= _bound(K, A, B, "ik,kj->ij")) and np.all(D == 2 * C)


def test_the_proof_reports_the_padding():
    opt = _optimized(matmul, _config(block=(32, 32), reduction=32))
    (proof,) = opt.proofs
    assert "the padding of partial tiles reads zeros of both operands" in str(proof)
    assert "2 zero-filling copies read prefixes of their groups" in str(proof)


# -- the padding's proof and the printed zero fill are what keeps results right -------------
def test_the_padding_proof_refuses_copies_that_read_the_whole_tile(monkeypatch):
    """A copy that claimed to read the array at every element of its tile (no zeros) would
    let the padding add real products: analysis.pad_proof refuses it."""
    import polypipe.gpu_promote as promote

    right = promote.zero_filled
    monkeypatch.setattr(promote, "zero_filled",
                        lambda read, real: right(read, real.universe(real.get_space())))
    with pytest.raises(InternalError, match="an instance of the padding adds a product"):
        pp.optimize(matmul, _config(block=(32, 32), reduction=32))


@pytest.mark.parametrize("old,new", [
    ("? 1u : 0u", "? 1u : 1u"),                   # the group's count of elements it reads
    ("(2u * pp_valid > 0u ? ((2u * pp_valid - 0u) < 16u ? (2u * pp_valid - 0u) : 16u) : 0u))",
     "16u)"),                                     # the bytes each cp.async reads
], ids=["count", "valid"])
def test_a_wrong_zero_fill_in_the_printed_copy_is_caught(old, new):
    """The CPU runtime runs the printed cp.async zfill: a group reading more than its
    elements of the nest reads past the array or brings in values the padding must not see."""
    from polypipe.codegen.cuda_cpu import CudaCpuError

    opt = _optimized(matmul, _config(block=(32, 32), reduction=32))
    rng = np.random.default_rng(16)
    M, N, K = 40, 24, 40
    A, B = _random(rng, (M, K), "float16"), _random(rng, (K, N), "float16")
    C = np.zeros((M, N), np.float32)
    source = opt.cuda_source(C, A, B)
    head, body = source.split("__global__", 1)
    assert old in body
    try:
        opt.run(C, A, B, source=head + "__global__" + body.replace(old, new))
    except CudaCpuError as error:
        assert "out of bounds" in str(error)
        return
    want = A.astype(np.float64) @ B.astype(np.float64)
    assert np.abs(C - want).max() > 1.0


def test_a_triangular_nest_is_refused_on_tensor_cores():
    @pp.kernel
    def lower_product(C, A, B):
        N = C.shape[0]
        for i in range(N):
            for j in range(N):
                C[i, j] = 0.0
                for k in range(i + 1):
                    C[i, j] += np.float32(A[i, k]) * B[k, j]

    with pytest.raises(ScheduleError, match="rectangular iteration domain"):
        pp.optimize(lower_product, _config())


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_partial_tiles_compile_with_the_planned_main_loop(arch):
    """At 1000^3 (no size divides 64 or 32) the main loop keeps the plan's HMMA and LDSM
    counts, with no spills or local memory; its copies are there twice, the plain ones of
    interior tiles (a test of the tile alone selects them) and the zero-filling ones."""
    from polypipe.codegen.nvcc import compile_cubin, find_nvcc
    from polypipe.codegen.sass import find_nvdisasm, kernel_sass
    from polypipe.gpu_warp import warp_plan
    from polypipe.kernel import bind_arguments

    if find_nvcc() is None or find_nvdisasm() is None:
        pytest.skip("needs nvcc and nvdisasm")
    config = _config(block=(64, 64), reduction=32)
    opt = _optimized(matmul, config)
    shapes = [np.zeros((1000, 1000), np.float32)] + [np.zeros((1000, 1000), np.float16)] * 2
    source = opt.cuda_source_for(bind_arguments(opt.original, shapes))
    assert "pp_cp_async_zfill<16>" in source
    cubin, (resources,) = compile_cubin(source, arch)
    assert resources.spill_stores + resources.spill_loads == 0
    facts = kernel_sass(cubin)[resources.name]
    counts = warp_plan(config).instruction_counts()
    assert facts.loop_mix.hmma == counts["mma"]
    assert facts.loop_mix.ldsm == 4 * (counts["ldmatrix_a"] + counts["ldmatrix_b"])
    assert dict(facts.loop_mix.ldgsts) == {128: 2 * counts["cp_async_16"]}
    assert facts.kernel_mix.local == 0
    assert source.count("pp_cp_async_zfill<16>") == source.count("pp_cp_async<16>(") > 0
