"""GPU schedules run on the CPU with GPU semantics: numerics, refusals, and sync mutations."""

import re
from dataclasses import replace

import islpy as isl
import numpy as np
import pytest

import polypipe as pp
from polypipe import GpuConfig, KernelRuntimeError, LegalityError, ScheduleError
from polypipe.analysis.gpu_proof import prove_dataflow, prove_kernel
from polypipe.errors import InternalError
from polypipe.analysis.pipeline_check import check_buffers
from polypipe.optimize import OptimizedProgram
from tests.helpers import assert_optimized_matches_python, assert_scheduled
from tests.kernels.contractions import CASES

SIZES = dict(M=100, N=72, K=53)   # divisible by no tile
DEFAULT = dict(block=(64, 64), threads=(16, 16), reduction=16)

_optimized: dict = {}


def optimized(name: str, config: GpuConfig) -> OptimizedProgram:
    key = (name, config)
    if key not in _optimized:
        _optimized[key] = pp.optimize(pp.kernel(CASES[name].func), config)
    return _optimized[key]


def check_against_numpy(name: str, config: GpuConfig, dtype=np.float64, sizes=SIZES,
                        **run_options):
    case = CASES[name]
    args = case.make(np.random.default_rng(0), sizes["M"], sizes["N"], sizes["K"], dtype)
    want = case.expect([a.copy() if isinstance(a, np.ndarray) else a for a in args])
    optimized(name, config).run(*args, **run_options)
    tolerance = 2e-4 if dtype == np.float32 else 1e-10
    for index, expected in want.items():
        scale = max(1.0, float(np.abs(expected).max()))
        error = float(np.abs(args[index] - expected).max()) / scale
        assert error <= tolerance, f"{name}: argument {index} off by {error:.2e}"


def _stage_matrix():
    """Every (shared, register) stage pair for the matrix products; for the convolutions,
    whose proofs take 10 s or more each, a covering set: every shared stage count once and
    both register stage counts twice (the hypothesis test below draws the rest at random)."""
    every = [(s, r) for s in (1, 2, 3, 4) for r in (1, 2)]
    covering = [(1, 1), (2, 2), (3, 1), (4, 2)]
    for name in ("gemm", "batched_gemm", "conv2d_s1", "conv2d_s2", "gemm_tt_local", "2mm",
                 "matmul_separate_init"):
        for shared, register in (covering if name.startswith("conv") else every):
            yield pytest.param(name, shared, register, id=f"{name}-{shared}-{register}")


@pytest.mark.parametrize("name, shared_stages, register_stages", list(_stage_matrix()))
def test_pipeline_matches_numpy(name, shared_stages, register_stages):
    config = GpuConfig(**DEFAULT, shared_stages=shared_stages, register_stages=register_stages)
    check_against_numpy(name, config)


@pytest.mark.parametrize("fragment_vector", [1, 2])
@pytest.mark.parametrize("name", ["gemm", "batched_gemm", "conv2d_s1", "gemm_tt_local", "syrk"])
def test_pipeline_matches_numpy_with_other_fragment_ownership(name, fragment_vector):
    config = GpuConfig(**DEFAULT, fragment_vector=fragment_vector)
    check_against_numpy(name, config)


@pytest.mark.parametrize("name", ["gemm", "batched_gemm", "gemm_tt_local", "2mm", "syrk",
                                  "conv2d_s2"])
def test_pipeline_matches_numpy_with_groups_inside_larger_thread_tiles(name):
    # Thread tiles of 8 x 8 owned as two groups of 4 rows (columns), 4 TM (4 TN) apart.
    # conv2d_s2's proof once ran for minutes here (isl's is_equal on composed live-in maps).
    config = GpuConfig(block=(32, 64), threads=(4, 8), reduction=16, fragment_vector=4)
    check_against_numpy(name, config)
    assert optimized(name, config).kernels[-1].config.fragment_vectors == (4, 4)


def test_refused_grouped_ownership_falls_back_to_strided(monkeypatch):
    import polypipe.analysis.gpu_proof as gpu_proof

    real = gpu_proof.prove_kernel

    def refuse_grouped(program, kernel):
        if kernel.config.fragment_vectors != (1, 1):
            raise LegalityError("the GPU schedule changes where S1's read gets its value: x")
        return real(program, kernel)

    monkeypatch.setattr(gpu_proof, "prove_kernel", refuse_grouped)
    config = GpuConfig(**DEFAULT, fragment_vector=4)
    opt = pp.optimize(pp.kernel(CASES["gemm"].func), config)
    assert opt.kernels[0].config.fragment_vector == 1
    assert "fragment_vector=4 was refused" in opt.describe()
    monkeypatch.setattr(gpu_proof, "prove_kernel", lambda program, kernel: (_ for _ in ()).throw(
        LegalityError("missing barrier: both refused")))
    # Both ownerships refused: the nest is mapped from isl's schedule instead, and describe()
    # names the refusal.
    opt = pp.optimize(pp.kernel(CASES["gemm"].func), config)
    assert_scheduled(opt, "the proof refused the contraction mapping: missing barrier: both "
                          "refused")


def test_copies_that_all_go_to_thread_0_run_on_thread_0_only():
    # A 4 x 1 tile of A is one copy group and B's tile one element: isl prints no thread loop
    # around those copies. Found by hypothesis: the emulation refused the phase, and CUDA ran
    # the copies on every thread.
    config = GpuConfig(block=(4, 1), threads=(2, 1), reduction=1, shared_stages=1,
                       register_stages=1, fragment_vector=1)
    check_against_numpy("gemm_tt_local", config, sizes=dict(M=1, N=1, K=1))
    check_against_numpy("gemm_tt_local", config, sizes=dict(M=7, N=3, K=5))
    source = optimized("gemm_tt_local", config).cuda_source()
    assert source.count("if (threadIdx.y == 0) {") == 2 * source.count("pp_cp_async_commit();")


@pytest.mark.parametrize("name", ["gemm", "syrk", "conv2d_s2"])
def test_pipeline_matches_numpy_float32_small_tiles(name):
    config = GpuConfig(block=(16, 8), threads=(4, 2), reduction=4, shared_stages=3,
                       register_stages=2)
    check_against_numpy(name, config, dtype=np.float32)


@pytest.mark.parametrize("order, seed", [("forward", 0), ("reverse", 0), ("scrambled", 1),
                                         ("scrambled", 7)])
def test_pipeline_result_independent_of_thread_order(order, seed):
    config = GpuConfig(block=(16, 16), threads=(4, 4), reduction=8, shared_stages=3)
    check_against_numpy("gemm", config, thread_order=order, seed=seed)


def test_pipeline_describe_names_buffers_and_proof():
    text = optimized("gemm", GpuConfig(**DEFAULT)).describe()
    assert ("A: shared A_s x3 stages (stored [k][m] + 4 padding, 4-element copies), "
            "registers A_r x2") in text
    assert "B: shared B_s x3 stages" in text and "proof:" in text


def test_pipeline_buffers_are_pipelinable():
    kernel = optimized("gemm", GpuConfig(**DEFAULT)).kernels[0]
    verdicts = check_buffers(kernel)
    assert [(v.buffer, v.source, v.pipelinable) for v in verdicts] == [
        ("A_s", "A", True), ("B_s", "B", True)]
    # A's tile is stored [k][m] (grouped ownership), its rows padded by 4 against conflicts.
    assert verdicts[0].bytes_per_stage == 16 * (64 + 4) * 4


# ---------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------


def writes_operand(C, A, B):
    M, N = C.shape
    K = A.shape[1]
    for i in range(M):
        for j in range(N):
            C[i, j] = 0.0
            for k in range(K):
                C[i, j] += A[i, k] * B[k, j]
            A[i, 0] = C[i, j]


def stencil(A, B):
    N = A.shape[0]
    for i in range(1, N - 1):
        B[i] = A[i - 1] + A[i + 1]


def two_reductions(C, D, A, B):
    M, N = C.shape
    K = A.shape[1]
    for i in range(M):
        for j in range(N):
            for k in range(K):
                C[i, j] += A[i, k] * B[k, j]
                D[i, j] += A[i, k]


def test_pipeline_maps_source_written_inside_loop_from_isls_schedule():
    k = pp.kernel(writes_operand)
    config = GpuConfig(block=(8, 8), threads=(2, 2), reduction=4)
    unproved = pp.optimize(k, config, prove=False)
    assert ("A[i, k]", "A is written inside the loop nest") in unproved.kernels[0].unpromoted
    # A[i, 0] is written by every column of outputs and read by the next: no GPU order of
    # the contraction mapping keeps the source's dataflow, and its proof refuses with a
    # pair; the nest then runs from isl's schedule, whose proof holds.
    opt = pp.optimize(k, config)
    assert_scheduled(opt, "the proof refused the contraction mapping")
    assert re.search(r"changes where S1's read of A\[i, k\]", opt.describe())
    rng = np.random.default_rng(1)
    A, B = rng.random((9, 6)), rng.random((6, 10))
    assert_optimized_matches_python(opt, writes_operand, [np.zeros((9, 10)), A, B])


def recurrence(A):
    N, M = A.shape
    for i in range(1, N):
        for j in range(M):
            A[i, j] = A[i - 1, j] * 0.5


def shifted_update(A, B):
    N, M = A.shape
    for i in range(1, N):
        for j in range(M):
            B[i, j] = A[i, j] + 1.0
            A[i, j] = B[i - 1, j] * 0.5


@pytest.mark.parametrize("func, reason, shapes", [
    (stencil, "has no reduction statement and does not write a 2-D", [(13,), (13,)]),
    (recurrence, "touches several elements of `A`", [(9, 7)]),
    # S1 of row i runs with row i - 1's element; S0 of row i reads what it overwrites: the
    # element-wise mapping's proof refuses it (a missing barrier).
    (shifted_update, "the proof refused the contraction mapping", [(9, 7), (9, 7)]),
    (two_reductions, "several reduction statements", [(6, 5), (6, 5), (6, 4), (4, 5)]),
])
def test_pipeline_maps_other_nests_from_isls_schedule(func, reason, shapes):
    opt = pp.optimize(pp.kernel(func), GpuConfig(block=(8, 8), threads=(2, 2)))
    assert_scheduled(opt, reason)
    rng = np.random.default_rng(3)
    assert_optimized_matches_python(opt, func, [rng.random(shape) for shape in shapes])


def test_pipeline_runs_with_more_stages_than_reduction_tiles():
    """2 tiles of 16 and 4 stages: the proof holds for every size, so no run-time refusal."""
    config = GpuConfig(**DEFAULT, shared_stages=4)
    check_against_numpy("gemm", config, sizes=dict(M=30, N=20, K=20))


def test_pipeline_rejects_too_many_stages_for_shared_memory():
    config = GpuConfig(block=(256, 256), threads=(16, 16), reduction=64, shared_stages=4)
    with pytest.raises(ScheduleError, match="limited by shared memory"):
        pp.optimize(pp.kernel(CASES["gemm"].func), config)


def test_pipeline_rejects_float64_that_only_fits_as_float32():
    config = GpuConfig(block=(128, 128), threads=(16, 16), reduction=32, shared_stages=4)
    opt = pp.optimize(pp.kernel(CASES["gemm"].func), config)  # 128 KiB in float32: fits
    args = CASES["gemm"].make(np.random.default_rng(0), 8, 8, 200, np.float64)
    with pytest.raises(ScheduleError, match="limited by shared memory"):
        opt.run(*args)


@pytest.mark.parametrize("config, phrase", [
    (dict(block=(64, 64), threads=(16, 24)), "not a multiple of threads"),
    (dict(block=(128, 128), threads=(64, 32)), "exceed the 1024"),
    (dict(reduction=1, register_stages=2), "exceeds the 1 reduction steps"),
    (dict(shared_stages=0), "must be at least 1"),
    (dict(block=(64,)), "must be two positive integers"),
])
def test_pipeline_rejects_invalid_config(config, phrase):
    with pytest.raises(ScheduleError, match=phrase):
        pp.optimize(pp.kernel(CASES["gemm"].func), GpuConfig(**config))


def test_pipeline_rejects_buffer_read_across_iterations():
    """A consumer reading the previous tile's slot is found and named."""
    kernel = optimized("gemm", GpuConfig(**DEFAULT, shared_stages=3)).kernels[0]
    program = kernel.program
    load = program.statement("load_A")
    read = load.reads[0]
    next_slot = isl.Map("{ A_s[s, r, c] -> A_s[(s + 1) mod 3, r, c] }")
    wrong_slot = read.relation.apply_range(next_slot.align_params(read.relation.get_space()))
    assert not wrong_slot.is_equal(read.relation)
    bad_read = replace(read, relation=wrong_slot)
    bad_load = replace(load, reads=(bad_read,), value=pp.ir.Read(bad_read))
    statements = tuple(bad_load if s is load else s for s in program.statements)
    mutated = replace(kernel, program=replace(program, statements=statements))
    verdict = {v.buffer: v for v in check_buffers(mutated)}["A_s"]
    assert not verdict.pipelinable and "read across iterations" in verdict.reason
    with pytest.raises(LegalityError, match="changes which input element S1's read of A"):
        prove_kernel(mutated.contraction.program, mutated)


def _with_read(kernel, name: str, index: int, remap: str):
    """The kernel with read ``index`` of statement ``name`` sent through the map ``remap``."""
    program = kernel.program
    stmt = program.statement(name)
    read = stmt.reads[index]
    moved = read.relation.apply_range(isl.Map(remap).align_params(read.relation.get_space()))
    assert not moved.is_equal(read.relation)
    reads = tuple(replace(r, relation=moved) if i == index else r
                  for i, r in enumerate(stmt.reads))
    bad = replace(stmt, reads=reads)
    statements = tuple(bad if s is stmt else s for s in program.statements)
    return replace(kernel, program=replace(program, statements=statements))


@pytest.mark.parametrize("name, index, remap, message", [
    # A tile copied from one column too far right: S1 multiplies the wrong elements of A.
    ("copy_A", 0, "{ A[r, c] -> A[r, c + 1] }", "changes which input element S1's read of A"),
    # The product reads the other register stage: a fragment of another reduction step.
    ("S1", 1, "{ A_r[y, x, s, m] -> A_r[y, x, (s + 1) mod 2, m] }",
     "changes which input element S1's read of A"),
    # The accumulator read from the neighbouring column: a partial sum of another output.
    ("S1", 0, "{ C_r[y, x, m, n] -> C_r[y, x, m, (n + 1) mod 4] }",
     "S1's read of C.* gets its value: on the GPU the reader takes its value from this writer"),
    # The accumulator read from registers nobody writes: it was written in the source.
    ("S1", 0, "{ C_r[y, x, m, n] -> C_r[y + 4, x, m, n] }",
     "on the GPU it reads this element as it was before the nest"),
])
def test_pipeline_dataflow_mutation_is_caught(name, index, remap, message):
    kernel = optimized("gemm", GpuConfig(block=(16, 16), threads=(4, 4), reduction=4,
                                         shared_stages=3)).kernels[0]
    with pytest.raises(LegalityError, match=message):
        prove_dataflow(kernel.contraction.program, _with_read(kernel, name, index, remap))


def test_pipeline_dropped_instance_is_caught():
    kernel = optimized("gemm", GpuConfig(block=(16, 16), threads=(4, 4), reduction=4)).kernels[0]
    program = kernel.program
    init = program.statement("S0")
    fewer = replace(init, domain=init.domain.intersect(
        isl.Set("{ S0[i, j] : i + j > 0 }").align_params(init.domain.get_space())))
    mutated = replace(kernel, program=replace(program, statements=tuple(
        fewer if s is init else s for s in program.statements)))
    # Only a polypipe bug can build such a kernel: the proof says so with an InternalError
    # (no fallback may catch it), still naming the missing instance.
    with pytest.raises(InternalError, match=r"runs other instances of S0 than the source: "
                                            r".*\{ S0\[i = 0, j = 0\]"):
        prove_dataflow(kernel.contraction.program, mutated)


# ---------------------------------------------------------------------------------------------
# Deleting one barrier or one wait: the proof refuses and the emulation fails
# ---------------------------------------------------------------------------------------------


def _without(kernel, sync):
    program = kernel.program
    keep = program.domain.subtract(isl.UnionSet.from_set(sync.domain))
    mutated = replace(program, syncs=tuple(s for s in program.syncs if s is not sync),
                      schedule=program.schedule.intersect_domain(keep))
    return replace(kernel, program=mutated)


def _mutations():
    for stages in (1, 2, 3):
        config = GpuConfig(block=(16, 16), threads=(4, 4), reduction=4, shared_stages=stages)
        opt = optimized("gemm", config)
        for sync in opt.kernels[0].program.syncs:
            if sync.kind in ("barrier", "wait"):
                yield pytest.param(config, sync.name, id=f"S{stages}-{sync.name}")


@pytest.mark.parametrize("config, sync_name", list(_mutations()))
def test_pipeline_mutation_is_caught(config, sync_name):
    opt = optimized("gemm", config)
    kernel = opt.kernels[0]
    sync = kernel.program.sync(sync_name)
    mutated = _without(kernel, sync)
    with pytest.raises(LegalityError, match="missing (barrier|wait)"):
        prove_kernel(opt.original, mutated)
    broken = OptimizedProgram(opt.original, config, (mutated,))
    case = CASES["gemm"]
    args = case.make(np.random.default_rng(0), 37, 29, 23, np.float64)
    want = case.expect([a.copy() if isinstance(a, np.ndarray) else a for a in args])[2]
    with pytest.raises(KernelRuntimeError, match=f"missing {sync.kind}"):
        broken.run(*args)
    if sync.kind == "wait":  # copies never landed: the numbers are wrong too
        assert not np.allclose(args[2], want, equal_nan=False)


# ---------------------------------------------------------------------------------------------
# Hypothesis: random contraction shapes and configurations
# ---------------------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def shapes_and_configs(draw):
    name = draw(st.sampled_from(["gemm", "batched_gemm", "gemm_tt_local", "syrk"]))
    tm, tn = draw(st.sampled_from([1, 2, 4])), draw(st.sampled_from([1, 2, 4]))
    bm, bn = tm * draw(st.sampled_from([1, 2, 4])), tn * draw(st.sampled_from([1, 2, 4]))
    reduction = draw(st.integers(1, 8))
    config = GpuConfig(block=(bm, bn), threads=(tm, tn), reduction=reduction,
                       shared_stages=draw(st.integers(1, 4)),
                       register_stages=draw(st.integers(1, min(2, reduction))),
                       fragment_vector=draw(st.sampled_from([1, 2, 4])))
    sizes = dict(M=draw(st.integers(1, 40)), N=draw(st.integers(1, 40)),
                 K=draw(st.integers(1, 40)))
    return name, config, sizes


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=shapes_and_configs())
def test_pipeline_random_shapes_and_configs(case):
    name, config, sizes = case
    check_against_numpy(name, config, sizes=sizes)   # fewer tiles than stages included
