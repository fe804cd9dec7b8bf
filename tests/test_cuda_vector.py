"""Shape-specialised CUDA: tile layouts, fragment ownership, proved 16-byte copies and loads,
32-bit indices (nvcc/PTX)."""

import re
from dataclasses import replace

import numpy as np
import pytest

import polypipe as pp
from polypipe.analysis.alignment import vector_groups
from polypipe.codegen.nvcc import compile_cubin, compile_ptx, find_nvcc
from polypipe.kernel import bind_arguments
from tests.kernels.contractions import CASES, matmul_every_other_column

needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")


STRIDED = pp.GpuConfig(fragment_vector=1)   # thread ty owns rows ty, ty + TM, ...
GROUPED = pp.GpuConfig(fragment_vector=4)   # thread ty owns rows 4 ty .. 4 ty + 3, ...


def _kernel(func, config=STRIDED):
    return pp.optimize(pp.kernel(func), config, prove=False)


def _binding(opt, args):
    return bind_arguments(opt.original, args)


def _layouts(opt):
    [kernel] = opt.kernels
    return {opt.kernels[0].program.statement(name).reads[0].array: layout
            for name, layout in kernel.copy_layouts}


def _proved(opt, args, kind="async_copy"):
    """Arrays read by the proved vector groups of ``kind`` (copies: global arrays; fragment
    loads: shared buffers)."""
    b = _binding(opt, args)
    [kernel] = opt.kernels
    itemsize = {a.name: np.dtype(dict(b.dtypes).get(a.name, "float32")).itemsize
                for a in kernel.program.arrays}
    names = vector_groups(kernel, b.params, b.extents, itemsize)
    return {kernel.program.statement(n).reads[0].array for n in names
            if kernel.program.statement(n).kind == kind}


def test_tiles_are_stored_in_the_arrays_own_order():
    layouts = _layouts(_kernel(CASES["matmul"].func))
    # A[i, k]: k innermost; B[k, j]: j innermost, so a warp's copies read one row segment.
    assert [d.name for d in layouts["A"].order] == ["pp_lm", "pp_lk"]
    assert [d.name for d in layouts["B"].order] == ["pp_lk", "pp_ln"]
    transposed = _layouts(_kernel(CASES["gemm_tt_local"].func))
    assert [d.name for d in transposed["A"].order] == ["pp_lk", "pp_lm"]
    assert [d.name for d in transposed["B"].order] == ["pp_ln", "pp_lk"]


def test_rows_read_across_a_warp_are_padded_against_bank_conflicts():
    # B[j, k] stored [n][k]: 16 threads of a warp read 16 rows at one k; unpadded rows of 16
    # words would put 8 of them in one bank.
    transposed = _layouts(_kernel(CASES["gemm_tt_local"].func))
    assert transposed["B"].padding == 4 and transposed["B"].stored_extents == (64, 20)
    assert transposed["A"].padding == 0
    assert _layouts(_kernel(CASES["matmul"].func))["B"].padding == 0


@pytest.mark.parametrize("K, expected", [(64, {"A", "B"}), (61, {"B"}), (62, {"B"})])
def test_wide_copies_need_rows_that_start_aligned(K, expected):
    opt = _kernel(CASES["matmul"].func)
    args = CASES["matmul"].make(np.random.default_rng(0), 96, 64, K, np.float32)
    # A's rows are K floats long: unless K is a multiple of 4, some rows start misaligned.
    assert _proved(opt, args) == expected


def test_wide_copies_need_consecutive_elements():
    opt = _kernel(matmul_every_other_column)
    args = [np.zeros((64, 64), np.float32), np.zeros((64, 128), np.float32),
            np.zeros((64, 64), np.float32)]
    assert _proved(opt, args) == {"B"}


def test_specialised_source_prints_sizes_and_wide_copies():
    opt = _kernel(CASES["matmul"].func)
    args = CASES["matmul"].make(np.random.default_rng(0), 256, 128, 512, np.float32)
    source = opt.cuda_source(*args)
    assert "const int n_A_1 = 512;" in source and "pp_min(" not in source.split("#define pp_max")[1]
    assert source.count("pp_cp_async<16>") >= 2 and "pp_cp_async<4>" not in source
    unaligned = opt.cuda_source_for(_binding(opt, args), unaligned=frozenset({"A"}))
    assert "pp_cp_async<4>(&a_A_s" in unaligned and "pp_cp_async<16>((char *)&a_B_s" in unaligned


def test_huge_arrays_keep_64_bit_indices():
    from polypipe.codegen.cuda_printer import index_type_for

    assert index_type_for({"M": 8192}, {"A": (8192, 8192)}) == "int"
    assert index_type_for({"M": 65536}, {"A": (65536, 65536)}) == "int64_t"
    assert index_type_for({"M": 8}, {"A": (2**23, 8)}) == "int64_t"


@needs_nvcc
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_specialised_matmul_ptx_has_wide_copies_and_no_division(dtype):
    opt = _kernel(CASES["matmul"].func)
    args = CASES["matmul"].make(np.random.default_rng(0), 1024, 1024, 1024, dtype)
    source = opt.cuda_source(*args)
    ptx = compile_ptx(source, "sm_90")
    assert "cp.async.cg.shared.global" in ptx and "cp.async.ca.shared.global" not in ptx
    # The slot and fragment rotations fold to constants: no integer division is left.
    assert "div.s" not in ptx and "rem.s" not in ptx
    _, [resources] = compile_cubin(source, "sm_80")
    assert resources.spill_stores == 0 and resources.spill_loads == 0


@pytest.mark.slow      # 44 s each: nvcc on every specialised source of both ownerships
@needs_nvcc
@pytest.mark.parametrize("config", [STRIDED, GROUPED], ids=["strided", "grouped"])
def test_specialised_sources_compile_for_every_case(config):
    rng = np.random.default_rng(0)
    for name, case in sorted(CASES.items()):
        opt = pp.optimize(pp.kernel(case.func), config, prove=False)
        args = case.make(rng, 100, 72, 53, np.float32)
        for arch in ("sm_80", "sm_90"):
            compile_cubin(opt.cuda_source(*args), arch)


@needs_nvcc
def test_one_block_per_sm_lets_large_tiles_keep_their_registers():
    from polypipe.gpu_config import parse_config

    config = parse_config("block=128x128,threads=16x16,reduction=16,blocks_per_sm=1")
    assert config.blocks_per_sm == 1 and "blocks_per_sm=1" in config.describe()
    opt = _kernel(CASES["batched_gemm"].func, config)
    args = CASES["batched_gemm"].make(np.random.default_rng(0), 512, 512, 64, np.float32)
    source = opt.cuda_source(*args)
    assert "__launch_bounds__(256, 1)" in source
    _, [resources] = compile_cubin(source, "sm_90")
    assert resources.spill_stores == 0 and resources.spill_loads == 0


def test_blocks_per_sm_must_not_be_negative():
    with pytest.raises(pp.ScheduleError, match="blocks_per_sm"):
        pp.GpuConfig(blocks_per_sm=-1).validate()


def test_config_text_round_trips():
    from polypipe.gpu_config import format_config, parse_config

    for config in (pp.GpuConfig(), STRIDED,
                   pp.GpuConfig(block=(128, 64), threads=(8, 16), reduction=32, shared_stages=4,
                                register_stages=1, blocks_per_sm=1, fragment_vector=2)):
        assert parse_config(format_config(config)) == config


# -- grouped fragment ownership (fragment_vector) -------------------------------------------


LARGE = pp.GpuConfig(block=(128, 128), threads=(16, 16), reduction=16, fragment_vector=4)


def test_grouped_ownership_stores_tiles_reduction_major():
    layouts = _layouts(_kernel(CASES["matmul"].func, GROUPED))
    # A thread's fragment of A (rows) and of B (columns) lies along one stored row of length
    # BM (BN): one group is one 16-byte load. Copies still follow the arrays' own order.
    assert [d.name for d in layouts["A"].order] == ["pp_lk", "pp_lm"]
    assert [d.name for d in layouts["A"].copy_order] == ["pp_lm", "pp_lk"]
    assert [d.name for d in layouts["B"].order] == ["pp_lk", "pp_ln"]
    assert layouts["B"].padding == 0


def test_transposing_copies_get_the_padding_with_fewer_conflicts():
    from polypipe.gpu_layout import wavefronts as _wavefronts

    # A warp's 4-byte copies of A into [k][m] rows of 128: 8 rows of k, 4 apart in k, land in
    # 8 banks (4-way); rows of 132 spread them over 16 banks (2-way).
    assert _wavefronts([4 * (t % 4) * 128 + t // 4 for t in range(32)], 1) == 4
    assert _wavefronts([4 * (t % 4) * 132 + t // 4 for t in range(32)], 1) == 2
    assert _layouts(_kernel(CASES["matmul"].func, LARGE))["A"].stored_extents == (16, 132)


def test_wavefront_model():
    from polypipe.gpu_layout import wavefronts as _wavefronts

    assert _wavefronts([0] * 32, 1) == 1                         # broadcast
    assert _wavefronts(list(range(32)), 1) == 1
    assert _wavefronts([32 * t for t in range(32)], 1) == 32     # one bank
    assert _wavefronts([4 * t for t in range(32)], 4) == 4       # 16-byte loads: 4 phases
    assert _wavefronts([0] * 32, 4) == 4


@pytest.mark.parametrize("K", [64, 61])
def test_fragment_loads_are_proved_wide(K):
    opt = _kernel(CASES["matmul"].func, GROUPED)
    args = CASES["matmul"].make(np.random.default_rng(0), 96, 64, K, np.float32)
    # Shared rows are BM (BN) long whatever the sizes, so both fragment loads are wide; the
    # copy of A now transposes (4-byte copies), B's stays wide when its rows start aligned.
    # (C_r: the accumulator's copy-out, 4 consecutive columns of a row per group.)
    assert _proved(opt, args, kind="copy") == {"A_s", "B_s", "C_r"}
    assert _proved(opt, args) == {"B"}
    source = opt.cuda_source(*args)
    assert "pp_copy16<float4>((char *)&a_A_r[" in source
    assert "pp_copy16<float4>((char *)&a_B_r[" in source


def test_strided_ownership_loads_fragments_one_element_at_a_time():
    opt = _kernel(CASES["matmul"].func, STRIDED)
    args = CASES["matmul"].make(np.random.default_rng(0), 96, 64, 64, np.float32)
    assert _proved(opt, args, kind="copy") == set()
    assert "pp_copy16<" not in opt.cuda_source(*args)


@pytest.mark.parametrize("M, N, wide", [(96, 64, True), (96, 70, False), (1, 6, False)])
def test_accumulator_copies_are_wide_where_whole_groups_start_aligned(M, N, wide):
    # gemm (C = alpha A B + beta C) copies C into registers and back out. Rows of 70 floats
    # start misaligned; one row of 6 starts aligned but its second group has 2 columns, so
    # isl's lane loop has no constant bound and the printer keeps it scalar.
    opt = _kernel(CASES["gemm"].func, GROUPED)
    args = CASES["gemm"].make(np.random.default_rng(0), M, N, 64, np.float32)
    source = opt.cuda_source(*args)
    assert ("pp_copy16<float4>((char *)&a_C[" in source) == wide             # copy-out
    assert ("(const char *)&a_C[" in source) == wide                        # copy-in
    assert ("C_r" in _proved(opt, args, kind="copy")) == (N == 64 or M == 1)
    unaligned = opt.cuda_source_for(_binding(opt, args), unaligned=frozenset({"C"}))
    assert "(char *)&a_C[" not in unaligned and "(const char *)&a_C[" not in unaligned


def _ptx_mix(config, dtype=np.float32):
    opt = _kernel(CASES["matmul"].func, config)
    args = CASES["matmul"].make(np.random.default_rng(0), 512, 512, 512, dtype)
    source = opt.cuda_source(*args)
    ptx = compile_ptx(source, "sm_90")
    _, [resources] = compile_cubin(source, "sm_90")
    count = {name: len(re.findall(pattern, ptx)) for name, pattern in (
        ("scalar", r"ld\.shared\.f(32|64)\b"), ("wide", r"ld\.shared\.v[24]\.f(32|64)"),
        ("local", r"(ld|st)\.local"), ("fma", r"fma\.rn\.f(32|64)"),
        ("scalar_store", r"st\.global\.f(32|64)\b"),
        ("wide_store", r"st\.global\.v[24]\.f(32|64)"))}
    return count, resources


@needs_nvcc
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grouped_ownership_ptx_loads_fragments_as_vectors(dtype):
    grouped, resources = _ptx_mix(LARGE, dtype)
    strided, _ = _ptx_mix(replace(LARGE, fragment_vector=1), dtype)
    assert grouped["scalar"] == 0 and grouped["wide"] > 0 and grouped["local"] == 0
    # The result leaves as 16-byte stores, a thread's 4 consecutive columns at a time.
    assert grouped["scalar_store"] == 0 and grouped["wide_store"] > 0
    assert strided["wide_store"] == 0 and strided["scalar_store"] > 0
    assert resources.spill_stores == 0 and resources.spill_loads == 0
    # The same multiply-adds with fewer shared-memory load instructions: under half for
    # float32 (4 elements a load), fewer for float64 (2).
    assert grouped["fma"] == strided["fma"]
    factor = 2 if dtype == np.float32 else 1
    assert factor * grouped["wide"] < strided["scalar"] + strided["wide"]


def test_fragment_vector_must_be_positive():
    with pytest.raises(pp.ScheduleError, match="fragment_vector"):
        pp.GpuConfig(fragment_vector=0).validate()
    # An axis whose thread tile is no multiple of the group is owned strided.
    assert pp.GpuConfig(block=(32, 64), threads=(16, 16), fragment_vector=4).fragment_vectors \
        == (1, 4)
