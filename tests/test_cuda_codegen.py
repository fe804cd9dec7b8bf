"""Generated CUDA compiles with nvcc for sm_80 and sm_90, without spills, with the shared
memory the transformation computed. Needs nvcc (present on CPU machines too); skips without."""

import numpy as np
import pytest

import polypipe as pp
from polypipe.codegen.nvcc import find_nvcc, compile_cubin, parse_resource_usage
from tests.kernels.contractions import CASES

needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="nvcc not installed")


def _optimized(name, config):
    return pp.optimize(pp.kernel(CASES[name].func), config, prove=False)


@needs_nvcc
@pytest.mark.parametrize("name", sorted(CASES))
def test_cuda_compiles_for_sm90_and_sm80(name):
    opt = _optimized(name, pp.GpuConfig())
    source = opt.cuda_source()
    for arch in ("sm_90", "sm_80"):
        _, resources = compile_cubin(source, arch)
        assert {r.name for r in resources} == {k.name for k in opt.kernels}


@needs_nvcc
@pytest.mark.parametrize("dtype, itemsize", [("float32", 4), ("float64", 8)])
def test_cuda_default_gemm_has_no_spills_and_the_computed_shared_memory(dtype, itemsize):
    opt = _optimized("gemm", pp.GpuConfig())
    _, [resources] = compile_cubin(opt.cuda_source(dtype=dtype), "sm_90")
    assert resources.spill_stores == 0 and resources.spill_loads == 0
    computed = opt.kernels[0].shared_bytes(itemsize)
    # Beyond 48 KiB (float64: padded rows of A) the buffers are dynamic, sized at launch.
    assert resources.shared_bytes == (computed if computed <= 48 * 1024 else 0)
    assert resources.registers <= 255


@needs_nvcc
def test_cuda_large_tiles_use_dynamic_shared_memory():
    config = pp.GpuConfig(block=(128, 128), threads=(16, 16), reduction=32, shared_stages=4)
    opt = _optimized("gemm", config)
    source = opt.cuda_source()
    assert "PP_SHARED_DYNAMIC(float" in source and "PP_SHARED(float" not in source and opt.kernels[0].shared_bytes(4) > 48 * 1024
    _, [resources] = compile_cubin(source, "sm_90")
    assert resources.shared_bytes == 0  # dynamic: sized at launch


@needs_nvcc
@pytest.mark.parametrize("stages", [1, 2, 4])
def test_cuda_every_stage_count_compiles(stages):
    config = pp.GpuConfig(shared_stages=stages, register_stages=1 if stages == 1 else 2)
    opt = _optimized("gemm", config)
    source = opt.cuda_source()
    assert source.count("__syncthreads()") >= 1 and "cp.async.commit_group" in source
    if stages >= 2:
        assert f"pp_cp_async_wait<{stages - 2}>" in source
    compile_cubin(source, "sm_90")


def test_cuda_source_uses_argument_dtypes():
    opt = _optimized("gemm", pp.GpuConfig())
    args = CASES["gemm"].make(np.random.default_rng(0), 8, 8, 8, np.float64)
    source = opt.cuda_source(*args)
    # Specialised to 8x8x8: rows of 8 doubles are whole 16-byte-aligned groups of 4 lanes.
    assert "double *__restrict__ a_C" in source and "pp_cp_async<16>" in source
    assert "const int n_A_1 = 8;" in source
    generic = opt.cuda_source(dtype="float64")
    assert "pp_cp_async<8>" in generic and "pp_cp_async<16>" not in generic
    compile_cubin(source, "sm_80")


def test_cuda_resource_usage_parser():
    text = """ptxas info    : Compiling entry function 'k0' for 'sm_90'
ptxas info    : Function properties for k0
    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 96 registers, 24576 bytes smem, 400 bytes cmem[0]
"""
    [r] = parse_resource_usage(text)
    assert (r.name, r.registers, r.shared_bytes, r.stack_bytes, r.spill_stores,
            r.spill_loads) == ("k0", 96, 24576, 8, 4, 12)
