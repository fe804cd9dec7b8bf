"""The static performance estimate: the model on hand-made counts (each unit, occupancy, the
tail wave, unrolled main loops), the schedule facts it reads (trips, multiply-adds, bytes),
and ``describe(*args)`` on real builds."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import polypipe as pp
from polypipe.codegen.estimate import (H100, H200, KernelCounts, LoopCounts, counts_from_sass,
                                       estimate, occupancy, program_estimate)
from polypipe.codegen.nvcc import KernelResources, find_nvcc
from polypipe.codegen.sass import InstructionMix, KernelSass, Loop, find_nvdisasm
from polypipe.kernel import bind_arguments
from polypipe.performance import kernel_bytes, trips_and_fmas
from tests.kernels.contractions import CASES

machine = pytest.mark.skipif(find_nvcc() is None or find_nvdisasm() is None,
                             reason="needs nvcc and nvdisasm")


def _counts(**changes) -> KernelCounts:
    """One SM's worth of blocks doing nothing but FFMA: the FP32 peak."""
    base = dict(name="k", threads=256, blocks=H200.sms, trips=1000,
                loop=LoopCounts(total=1024, fma=1024), other_instructions=0, registers=64,
                shared_bytes=16384, fmas=H200.sms * 256 * 1024 * 1000, dram_bytes=0)
    base.update(changes)
    return KernelCounts(**base)


def test_a_kernel_of_nothing_but_fma_is_bound_at_the_fp32_peak():
    result = estimate(_counts())
    assert result.bound in ("issue", "fma")
    assert result.tflops == pytest.approx(H200.fp32_tflops)
    assert H200.fp32_tflops == pytest.approx(66.9, abs=0.1)   # NVIDIA's H100/H200 figure


def test_each_unit_can_bound():
    # Shared loads (one wavefront each) beyond the issue slots they take with the FMAs.
    loads = estimate(_counts(loop=LoopCounts(total=1024 + 2000, fma=1024, shared_loads=2000)))
    assert loads.bound == "shared"
    # Integer work: the issue slots, not the FMA pipe.
    busy = estimate(_counts(loop=LoopCounts(total=4096, fma=1024)))
    assert busy.bound == "issue" and busy.tflops == pytest.approx(H200.fp32_tflops / 4)
    # Copies: every byte through L2 ...
    copies = estimate(_counts(loop=LoopCounts(total=1024, fma=1024, copy_bytes=8192)))
    assert copies.bound == "L2"
    # ... and arrays far larger than the work touch DRAM.
    dram = estimate(_counts(dram_bytes=10**12))
    assert dram.bound == "DRAM"
    assert dram.seconds["DRAM"] == pytest.approx(1e12 / 4.8e12)
    assert estimate(_counts(dram_bytes=10**12), H100).seconds["DRAM"] == pytest.approx(
        1e12 / 3.35e12)


def test_double_precision_runs_at_half_the_fma_rate():
    single, double = estimate(_counts()), estimate(_counts(double=True))
    assert double.seconds["fma"] == pytest.approx(2 * single.seconds["fma"])
    assert double.bound == "fma"


def test_the_tail_wave_is_charged_to_the_busiest_sm():
    full = estimate(_counts())
    one_more = estimate(_counts(blocks=H200.sms + 1, fmas=(H200.sms + 1) * 256 * 1024 * 1000))
    # One block more doubles the time: the busiest SM runs two.
    assert one_more.time == pytest.approx(2 * full.time)
    assert one_more.waves == pytest.approx((H200.sms + 1) / (H200.sms * occupancy(
        _counts(), H200).blocks))


def test_occupancy_follows_the_cuda_rules():
    # 121 registers -> 3872 per warp, allocated as 4096: 8 warps take 32768 of 65536.
    assert occupancy(_counts(registers=121), H200).blocks == 2
    assert occupancy(_counts(registers=129), H200).blocks == 1
    assert occupancy(_counts(registers=129), H200).limit == "registers"
    # 48 KiB + 1 KiB reserved per block: 4 blocks in 228 KiB.
    shared = occupancy(_counts(registers=32, shared_bytes=49152), H200)
    assert (shared.blocks, shared.limit) == (4, "shared memory")
    assert occupancy(_counts(registers=16, shared_bytes=0, threads=64), H200).blocks == 32
    assert occupancy(_counts(registers=16, shared_bytes=0, threads=1024), H200).blocks == 2


def test_a_block_that_cannot_fit_has_no_throughput_and_says_why():
    result = estimate(_counts(shared_bytes=240 * 1024))
    assert result.occupancy.blocks == 0 and result.tflops == 0.0
    assert result.bound == "does not fit"
    assert "245760 B of shared memory" in result.describe()
    assert "cannot launch" in program_estimate([estimate(_counts()), result])


def test_launches_add_up():
    one = estimate(_counts())
    line = program_estimate([one, one])
    assert f"<= {one.tflops:.1f} TFLOP/s" in line and "2 kernels, 2 launches" in line


def _sass(loop_ffma, loop_total, lds, ldgsts):
    loop = InstructionMix(ffma=loop_ffma, lds=lds, ldgsts=ldgsts, total=loop_total)
    kernel = InstructionMix(ffma=loop_ffma + 64, lds=lds, ldgsts=ldgsts, total=loop_total + 300)
    return KernelSass("k", Loop(0, 16), loop, kernel, 1)


def test_counts_from_sass_stay_per_reduction_tile_when_ptxas_unrolls():
    resources = KernelResources("k", 120, 4096, 0, 0, 0)
    once = counts_from_sass("k", _sass(1024, 1200, ((128, 64),), ((128, 2), (32, 8))),
                            resources, 256, 100, 50, 10, 0, fma_per_trip=1024)
    twice = counts_from_sass("k", _sass(2048, 2400, ((128, 128),), ((128, 4), (32, 16))),
                             resources, 256, 100, 50, 10, 0, fma_per_trip=1024)
    assert once.loop == twice.loop
    assert once.loop.copy_bytes == 2 * 16 * 32 + 8 * 4 * 32
    assert once.other_instructions == 300 and once.registers == 120


# -- the schedule facts -------------------------------------------------------------------------


def _optimized(name, config=None):
    return pp.optimize(pp.kernel(CASES[name].func), config or pp.GpuConfig())


def test_trips_and_multiply_adds_of_a_gemm():
    opt = _optimized("gemm", pp.GpuConfig(reduction=16))
    args = CASES["gemm"].make(np.random.default_rng(0), 100, 72, 40, np.float32)
    binding = bind_arguments(opt.original, args)
    [kernel] = [k for k in opt.kernels if k.contraction.update is not None]
    trips, fmas = trips_and_fmas(kernel, binding.params)
    assert trips == math.ceil(40 / 16) and fmas == 100 * 72 * 40
    assert kernel_bytes(kernel, binding) == 4 * (100 * 72 + 100 * 40 + 40 * 72)


def test_multiply_adds_of_a_triangular_nest_are_counted_not_boxed():
    opt = _optimized("syrk")
    args = CASES["syrk"].make(np.random.default_rng(0), 60, 60, 24, np.float32)
    binding = bind_arguments(opt.original, args)
    [kernel] = [k for k in opt.kernels if k.contraction.update is not None]
    _, fmas = trips_and_fmas(kernel, binding.params)
    n, m = binding.extents["A"]
    assert fmas == n * (n + 1) // 2 * m       # the lower triangle, not n * n * m
    assert kernel_bytes(kernel, binding) == 4 * (n * n + n * m)


@machine
@pytest.mark.parametrize("name, sizes", [("gemm", (256, 256, 64)), ("2mm", (96, 80, 48)),
                                         ("conv2d_s1", (256, 64, 32))])
def test_describe_with_arguments_prints_the_estimate_of_every_launch(name, sizes):
    opt = _optimized(name)
    args = CASES[name].make(np.random.default_rng(0), *sizes, np.float32)
    text = opt.describe(*args, target="H100")
    lines = [line for line in text.splitlines() if "estimate on H100 SXM" in line]
    assert len(lines) == len(opt.kernels) + (len(opt.kernels) > 1)
    for line in lines[:len(opt.kernels)]:
        tflops = float(re.search(r"<= ([0-9.]+) TFLOP/s", line).group(1))
        assert 0 < tflops <= H100.fp32_tflops
        assert re.search(r"bound by (issue|fma|shared|L2|DRAM)", line)
    assert "estimate" not in opt.describe()     # without arguments: no sizes, no estimate


def test_describe_refuses_an_unknown_target():
    with pytest.raises(pp.ArgumentError, match="known are H100, H200"):
        _optimized("gemm").describe(target="A100")
    with pytest.raises(pp.ArgumentError, match="known are"):
        _optimized("gemm").describe(target=["H100"])


# -- kernels of isl's schedule (polypipe/performance.py, scheduled_counts) ----------------------


def _scheduled(name: str, *sizes):
    from tests.kernels.polybench import KERNELS

    opt = pp.optimize(pp.kernel(KERNELS[name].func))
    args = KERNELS[name].make_args(np.random.default_rng(0), np.float64)
    return opt, args, bind_arguments(opt.original, args)


def test_a_stencil_counts_its_launches_instances_and_footprints_exactly():
    """jacobi-1d: per time step, B[i] = 0.33333 * (A[i-1] + A[i] + A[i+1]) for 1 <= i < N-1
    and back: 3 loads, a store and 3 operations (2 instructions of them at best) per
    instance; A's N and B's N-2 elements per launch."""
    from polypipe.gpu_scheduled import launch_sequence
    from polypipe.performance import scheduled_counts

    opt, (steps, A, _), binding = _scheduled("jacobi_1d")
    n = A.shape[0]
    sequence = launch_sequence(opt.kernels, binding.params)
    for index, kernel in enumerate(opt.kernels):
        counts = scheduled_counts(kernel, binding)
        assert counts.launches == steps == sum(k == index for k, _ in sequence)
        assert counts.thread_points == steps * (n - 2)
        assert counts.thread_instructions == steps * (n - 2) * (3 + 1 + 2)
        assert counts.flops == steps * (n - 2) * 3
        assert counts.dram_bytes == 8 * (n + n - 2)
        assert counts.l2_bytes == steps * counts.dram_bytes
        assert counts.inexact == ()


def test_triangular_work_is_counted_not_boxed_at_large_sizes():
    """lu at N = 2000: the k < i, k < j update has sum (N-1-k)^2 instances, counted by
    extrapolating exact counts at small dilations (a box would say N^3)."""
    from polypipe.performance import scheduled_counts

    opt, _, binding = _scheduled("lu")
    from dataclasses import replace
    big = replace(binding, params={**binding.params, "N": 2000})
    counts = [scheduled_counts(k, big) for k in opt.kernels]
    assert all(c.inexact == () for c in counts)
    n = 2000
    update = sum((n - 1 - k) ** 2 for k in range(n))     # A[i][j] -= A[i][k] * A[k][j]
    assert sum(c.flops for c in counts) >= 2 * update
    assert sum(c.flops for c in counts) < 2 * update + 3 * n * n


def test_the_scheduled_estimate_charges_launches_and_a_thread_s_sequence():
    from polypipe.codegen.estimate import H200 as target
    from polypipe.performance import ScheduledCounts, scheduled_estimate

    many = scheduled_estimate(ScheduledCounts("k", 10_000, 10_000 * 256, 256, 10_000 * 256,
                                              0, 1024, 1024 * 10_000), 32, target)
    assert many.bound == "launch" and many.time == pytest.approx(10_000 * target.launch_s)
    assert many.launches == 10_000 and "over 10000 launches" in many.describe()
    lonely = scheduled_estimate(ScheduledCounts("k", 1, 1, 1, 10**9, 10**9, 8, 8), 32, target)
    assert lonely.bound == "thread"                   # one thread issues one per clock
    assert lonely.time == pytest.approx(10**9 / (target.clock_ghz * 1e9))
    wide = scheduled_estimate(ScheduledCounts("k", 1, 2**24, 256, 2**24 * 8, 2**24, 2**27,
                                              2**27), 32, target)
    assert wide.bound == "DRAM" and wide.waves == pytest.approx(2**16 / (132 * 8))
    boxed = scheduled_estimate(ScheduledCounts("k", 1, 1, 1, 1, 1, 8, 8, ("launches",)), 32,
                               target)
    assert "bounding boxes (upper bounds) count the launches" in boxed.describe()


@machine
@pytest.mark.parametrize("name", ["jacobi_1d", "durbin", "atax"])
def test_describe_estimates_every_kernel_of_a_host_sequence(name):
    opt, args, _ = _scheduled(name)
    lines = [line for line in opt.describe(*args).splitlines() if "estimate on H200" in line]
    assert len(lines) == len(opt.kernels) + (len(opt.kernels) > 1)
    assert not any("not modelled" in line for line in lines)
    assert re.search(rf"{len(opt.kernels)} kernels, \d+ launches: >= [0-9.e-]+ ms", lines[-1])
    for line in lines[:-1]:
        assert re.search(r"bound by (launch|issue|thread|DRAM|L2)", line), line


@pytest.mark.skipif(find_nvcc() is None, reason="needs nvcc")
def test_describe_says_when_the_sizes_fit_the_configuration_badly():
    """GEMM with the default configuration given (64x64 blocks, 3 shared stages of 16; not
    fitted to the sizes, see tests/test_gpu_fit.py) at K = 3 runs, correctly, with one
    reduction tile and one block: describe says both; at 1024 x 1024 x 64 (256 blocks,
    4 tiles) neither."""
    opt = pp.optimize(pp.kernel(CASES["gemm"].func), pp.GpuConfig())
    short = CASES["gemm"].make(np.random.default_rng(0), 5, 7, 3, np.float32)
    text = opt.describe(*short)
    assert ("reduction over k (3) is 1 tile(s) of 16, fewer than the 3 shared stages: at most "
            "1 in flight") in text
    assert "1 block(s) of 64x64 at these sizes, for the 132 SMs of H200 SXM" in text
    full = CASES["gemm"].make(np.random.default_rng(0), 1024, 1024, 64, np.float32)
    text = opt.describe(*full)
    assert "in flight" not in text and "spread the work" not in text
