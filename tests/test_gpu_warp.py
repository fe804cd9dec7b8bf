"""The warp-level plan of tensor-core configurations (polypipe.gpu_warp): ownership proved with
isl (every output element accumulated by exactly one lane register of one warp; the A and B
fragments of each k-step are exactly the operand tiles' elements), the shared layouts' bank
conflicts, the instruction counts, the estimate's tensor unit, and the refusals."""

from __future__ import annotations

import islpy as isl
import numpy as np
import pytest

import polypipe as pp
from polypipe.codegen.estimate import estimate
from polypipe.errors import ScheduleError
from polypipe.gpu_warp import plan_counts, warp_plan

MMA = "m16n8k16"
PLANS = [dict(block=(128, 128), warps=(2, 2), reduction=32),
         dict(block=(64, 128), warps=(1, 4), reduction=16, register_stages=1),
         dict(block=(128, 64), warps=(4, 1), reduction=64, shared_stages=4),
         dict(block=(32, 32), warps=(2, 2), reduction=16, register_stages=1),
         dict(block=(256, 128), warps=(4, 2), reduction=32, shared_stages=4)]


def _plan(**fields):
    return warp_plan(pp.GpuConfig(mma=MMA, **fields))


def _box(name: str, *extents: int) -> isl.Set:
    dims = [f"x{d}" for d in range(len(extents))]
    bounds = " and ".join(f"0 <= {x} < {e}" for x, e in zip(dims, extents))
    return isl.Set(f"{{ {name}[{', '.join(dims)}] : {bounds} }}")


@pytest.mark.parametrize("fields", PLANS, ids=lambda f: f"{f['block']}/{f['warps']}")
def test_every_output_element_has_exactly_one_accumulator(fields):
    plan = _plan(**fields)
    owners = plan.accumulator_map()
    assert owners.is_injective()
    assert owners.range().is_equal(_box("C", *plan.config.block))
    registers = plan.warps[0] * plan.warps[1] * 32 * plan.accumulator_registers
    assert owners.domain().count_val().to_python() == registers


@pytest.mark.parametrize("fields", PLANS, ids=lambda f: f"{f['block']}/{f['warps']}")
def test_fragments_cover_the_operand_tiles_once_per_warp_row_and_column(fields):
    plan = _plan(**fields)
    (bm, bn), bk = plan.config.block, plan.config.reduction
    for fragments, tile in ((plan.a_fragment_map(), _box("A", bm, bk)),
                            (plan.b_fragment_map(), _box("B", bk, bn))):
        assert fragments.is_injective() and fragments.range().is_equal(tile)


def test_a_fragment_rows_are_the_rows_its_accumulators_own():
    """The mma of instruction tile (tm, tn) in warp (wm, wn) reads the A rows that its
    accumulators hold and the B columns: the three maps agree on the tiles."""
    plan = _plan(**PLANS[0])
    rows_of_c = plan.accumulator_map().apply_range(isl.Map("{ C[r, c] -> R[r] }"))
    rows_of_a = plan.a_fragment_map().apply_range(isl.Map("{ A[r, k] -> R[r] }"))
    by_tile_c = isl.Map("{ W[wm, wn, lane, tm, tn, i] -> T[wm, tm] }").reverse().apply_range(
        rows_of_c)
    by_tile_a = isl.Map("{ W[wm, lane, tm, step, i] -> T[wm, tm] }").reverse().apply_range(
        rows_of_a)
    assert by_tile_c.is_equal(by_tile_a)


def test_describe_and_counts_of_the_issue_configuration():
    plan = _plan(block=(128, 128), warps=(2, 2), reduction=32, shared_stages=3,
                 register_stages=2)
    assert plan.warp_tile == (64, 64) and plan.tiles == (4, 8) and plan.k_steps == 2
    assert plan.accumulator_registers == 128 and plan.fragment_registers == 2 * (16 + 16)
    assert plan.instruction_counts() == {"mma": 64, "ldmatrix_a": 8, "ldmatrix_b": 8,
                                         "cp_async_16": 8}
    assert plan.shared_bytes == 3 * (128 * 32 + 32 * 128) * 2
    a, b = plan.operands
    assert (a.copy_degree, a.read_degree, b.copy_degree, b.read_degree) == (1, 1, 1, 1)
    assert a.row_major_degrees == (1, 4) and b.row_major_degrees == (1, 8)
    text = "\n".join(plan.describe())
    assert "swizzle" in text and "64 mma.sync" in text and "128 float32 accumulators" in text


def test_a_width_without_a_conflict_free_swizzle_reports_its_degree():
    # 48 halves = 6 chunks per row: no XOR swizzle of these makes the ldmatrix reads free.
    a, _ = _plan(block=(64, 64), warps=(2, 2), reduction=48, register_stages=1).operands
    assert a.copy_degree == 1 and a.read_degree >= 2


def test_the_estimate_has_a_tensor_unit_bounded_by_the_peak():
    plan = _plan(**PLANS[0])
    result = estimate(plan_counts(plan, 4096, 4096, 4096))
    assert result.seconds["tensor"] > 0 and result.seconds["fma"] == 0
    peak = 2 * 4096 ** 3 / result.seconds["tensor"] / 1e12
    assert 900 < peak < 1100          # 4096 FLOP per SM per clock, 132 SMs, ~1.98 GHz
    assert result.tflops <= peak


@pytest.mark.parametrize("fields, reason", [
    (dict(mma="m16n8k8"), "not a tensor-core shape"),
    (dict(mma=MMA, block=(128, 128), warps=(3, 2)), "whole instruction tiles"),
    (dict(mma=MMA, block=(64, 24), warps=(1, 1)), "ldmatrix.x4.trans"),
    (dict(mma=MMA, reduction=24), "multiple of the instruction's k=16"),
    (dict(mma=MMA, threads=(8, 8)), "leave threads out"),
    (dict(mma=MMA, block=(256, 256), warps=(8, 8)), "2048 threads"),
    (dict(mma=MMA, block=(256, 256), warps=(1, 1), reduction=32), "accumulator"),
    (dict(mma=MMA, block=(256, 256), warps=(4, 4), reduction=64, shared_stages=4),
     "262144 bytes"),
    (dict(mma=MMA, block=(64, 64), reduction=32, register_stages=3), "k-step"),
    (dict(mma=MMA, warps=(2,)), "warps=(2,)"),
])
def test_impossible_configurations_are_refused_with_the_reason(fields, reason):
    with pytest.raises(ScheduleError, match=reason.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):
        pp.GpuConfig(**fields).validate()


def test_config_text_round_trips_with_warps_and_mma():
    from polypipe.gpu_config import format_config, parse_config

    config = parse_config("block=128x128,warps=2x4,mma=m16n8k16,reduction=32")
    assert config.warps == (2, 4) and config.mma == MMA and config.thread_count == 256
    assert parse_config(format_config(config)) == config
    assert "warps=(2, 4)" in config.describe() and "mma=m16n8k16" in config.describe()
    pair = parse_config("threads=8x4,fragment_vector=1x2")
    assert pair.fragment_vector == (1, 2) and pair.fragment_vectors == (1, 2)
    assert parse_config(format_config(pair)) == pair
    assert parse_config("fragment_vector=2").fragment_vector == 2


@pytest.mark.parametrize("vector", [(0, 2), (1, 2, 3), [1, 2], (1.0, 2), (True, 2), "1x2"])
def test_bad_fragment_vector_pairs_are_refused(vector):
    with pytest.raises(ScheduleError, match="fragment_vector=.*two of them"):
        pp.GpuConfig(fragment_vector=vector).validate()


# -- which updates tensor cores compute exactly (mma_operands) --------------------------------
@pp.kernel
def widened_gemm(A, B, C, NI, NJ, NK):
    for i in range(NI):
        for j in range(NJ):
            for k in range(NK):
                C[i, j] += np.float32(A[i, k]) * B[k, j]


@pp.kernel
def rounded_gemm(A, B, C, NI, NJ, NK):
    for i in range(NI):
        for j in range(NJ):
            for k in range(NK):
                C[i, j] += A[i, k] * B[k, j]


@pp.kernel
def transposed_a(A, B, C, NI, NJ, NK):
    for i in range(NI):
        for j in range(NJ):
            for k in range(NK):
                C[i, j] += B[k, j] * np.float32(A[k, i])


@pp.kernel
def attention_scores(Q, K, S, NB, NQ, NKV, D):
    for b in range(NB):
        for q in range(NQ):
            for t in range(NKV):
                for d in range(D):
                    S[b, q, t] += np.float32(Q[b, q, d]) * np.float32(K[b, t, d])


@pp.kernel
def scaled_gemm(A, B, C, NI, NJ, NK):
    for i in range(NI):
        for j in range(NJ):
            for k in range(NK):
                C[i, j] += 2.0 * np.float32(A[i, k]) * B[k, j]


def _operands(kernel, dtypes):
    from polypipe.analysis.contraction import recognise, top_level_nests
    from polypipe.gpu_warp import mma_operands

    nest = top_level_nests(kernel.program)[0]
    return mma_operands(recognise(kernel.program, nest), dtypes)


HALF = {"A": "float16", "B": "float16", "C": "float32"}


@pytest.mark.parametrize("kernel, dtypes, want", [
    (widened_gemm, HALF, (("A", "k", False), ("B", "j", True))),
    (transposed_a, HALF, (("A", "i", True), ("B", "j", True))),
    (attention_scores, {"Q": "bfloat16", "K": "bfloat16", "S": "float32"},
     (("Q", "d", False), ("K", "d", False))),
])
def test_operands_and_their_ldmatrix_orientation(kernel, dtypes, want):
    found = _operands(kernel, dtypes)
    got = tuple((op.array, op.contiguous, op.trans) for op in (found.a, found.b))
    assert got == want and found.accumulator_dtype == "float32"
    assert found.a.dtype == found.b.dtype == next(iter(dtypes.values()))


@pytest.mark.parametrize("kernel, dtypes, reason", [
    (rounded_gemm, HALF, "rounded to float16 in Python"),
    (widened_gemm, {"A": "float16", "B": "bfloat16", "C": "float32"}, "bfloat16 and float16"),
    (widened_gemm, {"A": "float32", "B": "float32", "C": "float32"}, "float32"),
    (widened_gemm, {"A": "float16", "B": "float16", "C": "float16"}, "accumulates float32"),
    (scaled_gemm, HALF, "not `C"),
])
def test_updates_tensor_cores_would_compute_differently_are_refused(kernel, dtypes, reason):
    with pytest.raises(ScheduleError, match=reason.replace("(", r"\(")):
        _operands(kernel, dtypes)


@pytest.fixture(scope="module")
def half_gemm():
    from .kernels.contractions import half_matmul

    return pp.kernel(half_matmul)


def _mma_ownership(block):
    """The CUDA-core configuration whose ownership is one warp's mma accumulator layout."""
    return pp.GpuConfig(block=block, threads=(8, 4), fragment_vector=(1, 2), reduction=16,
                        shared_stages=3, register_stages=2)


@pytest.mark.parametrize("block", [(16, 16), (64, 64), (32, 128), (128, 32)])
def test_one_warps_accumulators_are_the_cuda_core_ownership_of_threads_8x4(half_gemm, block):
    """The design the tensor-core lowering builds on, proved: for one warp per block, lane
    4g + t of mma's accumulator layout owns exactly what thread (ty, tx) = (g, t) owns in the
    CUDA-core kernel built with threads (8, 4), rows strided and columns in pairs
    (``fragment_vector=(1, 2)``), and its fragment slot (2 tm + h, 2 tn + e) is accumulator
    i = 2 h + e of tile (tm, tn). So that kernel's per-thread register fragments and updates,
    which the existing proofs cover, are what ldmatrix and mma.sync compute per lane."""
    from polypipe.gpu_mapping import TileMapping

    plan = _plan(block=block, warps=(1, 1), reduction=16, register_stages=1)
    mma = plan.accumulator_map().reverse().apply_range(isl.Map(
        "{ W[wm, wn, lane, tm, tn, i] -> O[lane, tm, tn, i] }"))
    (kernel,) = pp.optimize(half_gemm, _mma_ownership(block)).kernels
    tx = TileMapping(kernel.contraction, kernel.config)
    element = ["row", "col"]
    (ty, tx_), (frag_row, frag_col) = tx.thread_of(element), tx.fragment_of(element)
    cuda_core = isl.Map(
        f"{{ C[row, col] -> O[4 * {ty} + {tx_}, floor(({frag_row})/2), floor(({frag_col})/2), "
        f"2 * (({frag_row}) mod 2) + (({frag_col}) mod 2)] : 0 <= row < {block[0]} and "
        f"0 <= col < {block[1]} }}")
    assert mma.is_equal(cuda_core)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("block,sizes", [((16, 16), (16, 16, 16)), ((32, 64), (37, 45, 50)),
                                         ((64, 32), (70, 31, 33))])
def test_the_mma_shaped_cuda_core_kernel_is_proved_and_matches_numpy(half_gemm, dtype, block,
                                                                     sizes):
    """That kernel is built, proved and run like any other (the CPU runtime of its CUDA text),
    at sizes that do and do not divide the tiles."""
    from polypipe.codegen.value_types import numpy_dtype

    opt = pp.optimize(half_gemm, _mma_ownership(block))
    assert "fragment_vector=(1, 2)" in opt.describe()
    rng = np.random.default_rng(sum(sizes))
    M, N, K = sizes
    A = rng.standard_normal((M, K)).astype(numpy_dtype(dtype))
    B = rng.standard_normal((K, N)).astype(numpy_dtype(dtype))
    C = np.full((M, N), np.nan, np.float32)
    opt.run(C, A, B)
    want = A.astype(np.float64) @ B.astype(np.float64)
    assert np.abs(C - want).max() <= K * 2.0 ** -24 * (np.abs(A).astype(np.float64)
                                                        @ np.abs(B)).max()
