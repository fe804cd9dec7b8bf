"""Shape-specialised CUDA: tile layouts, proved 16-byte cp.async, 32-bit indices (nvcc/PTX)."""

import numpy as np
import pytest

import polypipe as pp
from polypipe.analysis.alignment import vector_copies
from polypipe.codegen.nvcc import compile_cubin, compile_ptx, find_nvcc
from polypipe.kernel import bind_arguments
from tests.kernels.contractions import CASES, matmul_every_other_column

needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")


def _kernel(func, config=None):
    return pp.optimize(pp.kernel(func), config or pp.GpuConfig(), prove=False)


def _binding(opt, args):
    return bind_arguments(opt.original, args)


def _layouts(opt):
    [kernel] = opt.kernels
    return {opt.kernels[0].program.statement(name).reads[0].array: layout
            for name, layout in kernel.copy_layouts}


def _proved(opt, args):
    b = _binding(opt, args)
    itemsize = {n: np.dtype(d).itemsize for n, d in b.dtypes}
    [kernel] = opt.kernels
    names = vector_copies(kernel, b.params, b.extents, itemsize)
    return {kernel.program.statement(n).reads[0].array for n in names}


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
    assert "const int a_A_d1 = 512;" in source and "pp_min(" not in source.split("#define pp_max")[1]
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


@needs_nvcc
def test_specialised_sources_compile_for_every_case():
    rng = np.random.default_rng(0)
    for name, case in sorted(CASES.items()):
        opt = pp.optimize(pp.kernel(case.func), pp.GpuConfig(), prove=False)
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

    for config in (pp.GpuConfig(), pp.GpuConfig(block=(128, 64), threads=(8, 16), reduction=32,
                                                shared_stages=4, register_stages=1,
                                                blocks_per_sm=1)):
        assert parse_config(format_config(config)) == config
