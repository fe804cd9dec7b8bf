"""The warp-level plan of tensor-core configurations (polypipe.gpu_warp): ownership proved with
isl (every output element accumulated by exactly one lane register of one warp; the A and B
fragments of each k-step are exactly the operand tiles' elements), the shared layouts' bank
conflicts, the instruction counts, the estimate's tensor unit, and the refusals."""

from __future__ import annotations

import islpy as isl
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


def test_optimize_refuses_tensor_cores_rather_than_mapping_another_way():
    from tests.kernels.contractions import CASES

    kernel = pp.kernel(CASES["gemm"].func)
    with pytest.raises(ScheduleError, match="tensor-core lowering is not built yet"):
        pp.optimize(kernel, pp.GpuConfig(block=(128, 128), warps=(2, 2), reduction=32,
                                         mma=MMA))


def test_config_text_round_trips_with_warps_and_mma():
    from polypipe.gpu_config import format_config, parse_config

    config = parse_config("block=128x128,warps=2x4,mma=m16n8k16,reduction=32")
    assert config.warps == (2, 4) and config.mma == MMA and config.thread_count == 256
    assert parse_config(format_config(config)) == config
    assert "warps=(2, 4)" in config.describe() and "mma=m16n8k16" in config.describe()
