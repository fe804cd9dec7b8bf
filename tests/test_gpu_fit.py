"""The default configuration fitted to each run's sizes (polypipe.gpu_fit): the decision on its
own (stages, block halving, its limits), then optimize() without a configuration: the run, the
CUDA text and describe() all use the fitted kernels, which are proved and match NumPy; a
given configuration is never fitted."""

from __future__ import annotations

import itertools
import numpy as np
import pytest

import polypipe as pp
from polypipe.codegen.nvcc import find_nvcc
from polypipe.gpu_config import A100, GpuConfig
from polypipe.gpu_fit import (MIN_BLOCK, MIN_THREADS, KernelSizes, fit_config, grid_blocks,
                              _halved)
from polypipe.kernel import bind_arguments
from tests.kernels.contractions import CASES

DEFAULT = GpuConfig()


def _sizes(rows, cols, reduction=None, outer=1):
    return KernelSizes(outer, rows, cols, reduction, "k" if reduction is not None else "")


# --- the decision ------------------------------------------------------------------------------

def test_large_sizes_keep_the_default():
    fit = fit_config(DEFAULT, _sizes(4096, 4096, 4096), 132)
    assert not fit.changed and fit.config == DEFAULT


def test_shared_stages_drop_to_the_reduction_tiles():
    fit = fit_config(DEFAULT, _sizes(2048, 2048, 20), 132)       # 2 tiles of 16
    assert fit.config.shared_stages == 2 and fit.config.block == DEFAULT.block
    assert "2 tile(s) of 16: 2 shared stage(s) instead of 3" in fit.reasons[0]
    assert fit_config(DEFAULT, _sizes(2048, 2048, 48), 132).config.shared_stages == 3
    # An empty reduction leaves the stages alone (nothing runs; nothing to fit).
    assert fit_config(DEFAULT, _sizes(2048, 2048, 0), 132).config.shared_stages == 3


def test_an_element_wise_kernel_has_no_stages_to_fit():
    fit = fit_config(DEFAULT, _sizes(4096, 4096), 132)
    assert not fit.changed


def test_a_block_larger_than_the_outputs_is_trimmed_even_with_enough_blocks():
    # 8 rows in 64-row blocks: half of each block's thread rows would own nothing.
    fit = fit_config(DEFAULT, _sizes(8, 100000, 64), 132)
    assert fit.config.block[0] == 8 and fit.config.block[1] == 64
    assert grid_blocks(_sizes(8, 100000), fit.config.block) == grid_blocks(
        _sizes(8, 100000), DEFAULT.block)


@pytest.mark.parametrize("rows, cols", [(256, 256), (100, 300), (13, 17), (1, 1), (1000, 40)])
def test_blocks_halve_until_the_gpu_fills_or_the_block_is_smallest(rows, cols):
    sizes = _sizes(rows, cols, 64)
    fit = fit_config(DEFAULT, sizes, 132)
    config = fit.config
    config.validate()
    blocks = grid_blocks(sizes, config.block)
    assert blocks >= grid_blocks(sizes, DEFAULT.block)
    if blocks < 132:      # no halving left that would add blocks
        for axis in (0, 1):
            halved = _halved(config.block, config.threads, axis)
            assert halved is None or grid_blocks(sizes, halved[0]) == blocks
    assert min(config.block) >= MIN_BLOCK and config.thread_count >= MIN_THREADS


def test_256_square_takes_the_largest_block_that_fills_132_sms():
    fit = fit_config(DEFAULT, _sizes(256, 256, 256), 132)
    # 16 blocks of 64x64, 32 of 32x64, 64 of 32x32, 128 of 16x32: not yet; 256 of 16x16.
    assert fit.config.block == (16, 16) and fit.config.threads == (16, 16)
    assert "16 block(s) of 64x64 over 256x256 outputs for 132 SMs: 256 of 16x16" \
        in fit.reasons[0]


def test_the_target_s_sm_count_decides():
    # 128 blocks of 16x32 are enough for 108 SMs (A100), not for 132 (H100).
    sizes = _sizes(256, 256, 256)
    assert fit_config(replace_target(A100), sizes, A100.sms).config.block == (16, 32)
    assert fit_config(DEFAULT, sizes, 132).config.block == (16, 16)


def replace_target(target):
    from dataclasses import replace

    return replace(DEFAULT, target=target)


@pytest.mark.parametrize("block, threads", [((64, 64), (16, 16)), ((128, 64), (8, 32)),
                                            ((32, 96), (4, 8)), ((64, 64), (64, 4))])
def test_every_fit_of_a_valid_configuration_is_valid(block, threads):
    base = GpuConfig(block=block, threads=threads)
    for rows, cols, k in itertools.product((1, 7, 64, 300), (1, 9, 130), (1, 17, 100)):
        fitted = fit_config(base, _sizes(rows, cols, k), 132).config
        fitted.validate()
        assert fitted.shared_stages <= base.shared_stages
        assert fitted.shared_stages == min(base.shared_stages, -(-k // base.reduction))


def test_outer_dimensions_count_blocks():
    # 200 images of 64x64: enough blocks with the default's block.
    assert not fit_config(DEFAULT, _sizes(64, 64, 64, outer=200), 132).changed


# --- optimize() without a configuration -------------------------------------------------------

@pytest.fixture(scope="module")
def fitted_gemm():
    return pp.optimize(pp.kernel(CASES["gemm"].func))


def _binding(opt, args):
    return bind_arguments(opt.original, args)


def test_the_run_launches_the_fitted_kernel(fitted_gemm):
    args = CASES["gemm"].make(np.random.default_rng(0), 13, 17, 11, np.float32)
    fitted = fitted_gemm.for_sizes(_binding(fitted_gemm, args))
    assert fitted is not fitted_gemm and fitted.fit_notes
    (kernel,) = fitted.kernels
    assert kernel.config.shared_stages == 1 and kernel.config.block == (8, 8)
    assert fitted.proofs and fitted.proofs[0].kernel == kernel.name
    # Fitted once per set of sizes: the same object on the second call.
    assert fitted_gemm.for_sizes(_binding(fitted_gemm, args)) is fitted
    # The text the run launches is the fitted kernel's.
    text = fitted_gemm.cuda_source(*args)
    assert text == fitted.cuda_source(*args)
    assert text != fitted_gemm.cuda_source_for(_binding(fitted_gemm, args))


def test_sizes_with_the_same_fit_share_the_rebuilt_kernel(fitted_gemm):
    first = CASES["gemm"].make(np.random.default_rng(0), 13, 17, 11, np.float32)
    second = CASES["gemm"].make(np.random.default_rng(0), 14, 20, 9, np.float32)
    one = fitted_gemm.for_sizes(_binding(fitted_gemm, first))
    other = fitted_gemm.for_sizes(_binding(fitted_gemm, second))
    assert one is not other                        # each says why for its own sizes
    assert one.kernels[0] is other.kernels[0]      # one lowering and proof for both
    assert "reduction over k (9)" in other.fit_notes[0]


def test_large_sizes_launch_the_default_kernel(fitted_gemm):
    args = CASES["gemm"].make(np.random.default_rng(0), 1024, 1024, 64, np.float32)
    assert fitted_gemm.for_sizes(_binding(fitted_gemm, args)) is fitted_gemm


def test_a_given_configuration_is_never_fitted():
    opt = pp.optimize(pp.kernel(CASES["gemm"].func), GpuConfig())
    args = CASES["gemm"].make(np.random.default_rng(0), 13, 17, 11, np.float32)
    assert opt.for_sizes(_binding(opt, args)) is opt
    text = opt.describe(*args)
    assert "fitted" not in text and "fewer than the 3 shared stages" in text


def test_describe_names_the_fitted_configuration(fitted_gemm):
    assert "the default configuration, fitted to each run's sizes" in fitted_gemm.describe()
    args = CASES["gemm"].make(np.random.default_rng(0), 13, 17, 11, np.float32)
    text = fitted_gemm.describe(*args)
    assert "gemm_k0: configuration fitted to these sizes: block=(8, 8) threads=(8, 8)" in text
    assert "A: shared A_s x1 stages" in text
    assert "fewer than the" not in text


# Sizes that fit the default badly, and some that do not divide the fitted blocks.
SHAPES = [(1, 1, 1), (5, 7, 3), (13, 17, 11), (33, 65, 17), (130, 70, 40), (250, 9, 100)]


RUNS = ([("gemm", shape) for shape in SHAPES]
        + [(name, shape) for name in ("batched_gemm", "gemm_tt_local", "2mm", "syrk")
           for shape in (SHAPES[2], SHAPES[4])]
        + [("conv2d_s2", SHAPES[3])])


@pytest.mark.parametrize("name, shape", RUNS,
                         ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in RUNS])
def test_fitted_kernels_match_numpy(name, shape):
    case = CASES[name]
    opt = _optimized(name)
    args = case.make(np.random.default_rng(sum(shape)), *shape, np.float64)
    expected = case.expect(args)
    opt.run(*args)
    for index, value in expected.items():
        np.testing.assert_allclose(args[index], value, rtol=1e-10, atol=1e-10)


_OPTIMIZED = {}


def _optimized(name):
    if name not in _OPTIMIZED:
        _OPTIMIZED[name] = pp.optimize(pp.kernel(CASES[name].func))
    return _OPTIMIZED[name]


def test_fused_consumers_stay_fused_in_the_fitted_kernel():
    from tests.test_gpu_fusion import mm_bias_relu

    opt = pp.optimize(mm_bias_relu)
    rng = np.random.default_rng(3)
    C = np.zeros((20, 30))
    A, B, bias = rng.random((20, 9)) - 0.5, rng.random((9, 30)) - 0.5, rng.random(30) - 0.5
    fitted = opt.for_sizes(_binding(opt, (C, A, B, bias)))
    assert len(fitted.kernels) == 1 and fitted.fit_notes
    opt.run(C, A, B, bias)
    assert np.abs(C - np.maximum(A @ B + bias, 0.0)).max() <= 1e-12


@pytest.mark.skipif(find_nvcc() is None, reason="needs nvcc")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_fitted_kernels_compile(arch, fitted_gemm):
    from polypipe.codegen.nvcc import compile_cubin

    args = CASES["gemm"].make(np.random.default_rng(0), 33, 65, 17, np.float32)
    _, resources = compile_cubin(fitted_gemm.cuda_source(*args), arch)
    assert [r.name for r in resources] == ["gemm_k0"]
    assert all(r.spill_stores == 0 for r in resources)


def test_the_cuda_command_prints_the_fitted_launch(tmp_path, capsys):
    from polypipe.cli import main

    source = tmp_path / "mm.py"
    source.write_text("def mm(C, A, B):\n"
                      "    M, N = C.shape\n"
                      "    K = A.shape[1]\n"
                      "    for i in range(M):\n"
                      "        for j in range(N):\n"
                      "            for k in range(K):\n"
                      "                C[i, j] += A[i, k] * B[k, j]\n")
    assert main(["cuda", f"{source}:mm", "--size", "M=20,N=20,K=8"]) == 0
    header = capsys.readouterr().out.splitlines()[:3]
    # 20 x 20 outputs: 8x8 blocks of 8x8 threads, a grid of 3 x 3.
    assert "grid (3, 3, 1), block (8, 8, 1)" in header[2], header
    assert main(["cuda", f"{source}:mm", "--size", "M=20,N=20,K=8", "--config", "block=64x64"]) == 0
    assert "grid (1, 1, 1), block (16, 16, 1)" in capsys.readouterr().out.splitlines()[2]
