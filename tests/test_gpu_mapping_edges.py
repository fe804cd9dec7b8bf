"""Edges of the GPU mapping found by the differential fuzzer (tests/fuzzgen.py): each nest gets
the Python function's result or a ScheduleError with the reason, never a raw Python error."""

import numpy as np
import pytest

import polypipe as pp
from polypipe import GpuConfig, ScheduleError
from polypipe.analysis.pipeline_check import max_stages, require_stages_fit, tile_trip_count
from tests.helpers import assert_optimized_matches_python, assert_scheduled
from tests.kernels.contractions import CASES

SMALL = dict(block=(8, 8), threads=(2, 2), reduction=4)


# -- fuzz seed 122: an element-wise nest whose domain is a union of pieces ----------------------

def border_columns(B, E):   # fuzz seed 122, verbatim
    N, M = E.shape[2], len(B)
    for i in range(1, N - 1):
        for j in range(0, M, 2):
            if not (0 < j < M - 1):
                B[i + 2, j - 1] = np.log1p(np.abs(0.0) + 1.0)


def outer_columns(B):
    N, M = B.shape
    for i in range(N):
        for j in range(0, M, 2):
            if not (0 < j < M - 1):
                B[i, j] = 2.0 * i + j


def test_union_domain_maps_and_is_proved():
    """isl wrote floor((j - 1)/8) as -1 on the piece j = 0: one function, not a piecewise
    mapping (it used to fail with `AssertionError: piecewise mapping for S0[i, j]`)."""
    opt = pp.optimize(pp.kernel(border_columns), GpuConfig(**SMALL))
    assert opt.proofs and "element-wise" in opt.describe()


@pytest.mark.parametrize("shape", [(5, 9), (10, 8), (3, 1), (17, 17), (0, 4)])
def test_union_domain_matches_python(shape):
    opt = pp.optimize(pp.kernel(outer_columns), GpuConfig(**SMALL))
    start = np.random.default_rng(0).standard_normal(shape)
    want, got = start.copy(), start.copy()
    outer_columns(want)
    opt.run(got, thread_order="reverse")
    np.testing.assert_array_equal(got, want)


def piecewise_element(B):
    N, M = B.shape
    for i in range(N):
        for j in range(M):
            B[i, j] = 1.0
        for j in range(M):
            B[i, max(j, 2 * j - 3)] = 2.0


def test_really_piecewise_element_is_mapped_from_isls_schedule():
    """The contraction mapping gives each element's thread by one formula; this nest has
    none, so it runs from isl's schedule, which describe() says with the reason."""
    opt = pp.optimize(pp.kernel(piecewise_element), GpuConfig(**SMALL))
    assert_scheduled(opt, "the B element it touches is not one affine function")
    assert_optimized_matches_python(opt, piecewise_element, [np.zeros((7, 4))])


def never_runs(B):
    N, M = B.shape
    for i in range(N):
        for j in range(3, 2):
            B[i, j] = 1.0


def second_never_runs(B):
    N, M = B.shape
    for i in range(N):
        for j in range(M):
            B[i, j] = 1.0 + i
        for j in range(3, 2):
            B[i, j] = 2.0


def test_nest_whose_output_statement_never_runs_is_mapped_and_does_nothing():
    opt = pp.optimize(pp.kernel(never_runs), GpuConfig(**SMALL))
    assert_scheduled(opt, "never runs")
    B = np.full((4, 5), 3.0)
    opt.run(B)
    assert np.all(B == 3.0)


def test_statement_that_never_runs_is_mapped():
    opt = pp.optimize(pp.kernel(second_never_runs), GpuConfig(**SMALL))
    got, want = np.zeros((5, 6)), np.zeros((5, 6))
    opt.run(got)
    second_never_runs(want)
    np.testing.assert_array_equal(got, want)


# -- fuzz seed 265: an element-wise nest with a statement that misses its output ----------------

def two_outputs(B, alpha, beta, C, M, D):   # fuzz seed 265, verbatim
    N = len(B)
    for i in range(N - 2, -1, -1):
        for j in range(0, N, 3):
            B[i, j] = (j if not (i // 2 > N - 1) else 1) * beta
        for j in range(N):
            for k in range(i, -1, -1):
                C[i, j, j] = D[max(j - 1, 0), i]


def test_elementwise_statement_off_the_output_is_mapped_from_isls_schedule():
    """It used to fail with `AttributeError: 'NoneType' object has no attribute 'location'`;
    then it was refused (S1 does not touch B); now isl's schedule maps it."""
    opt = pp.optimize(pp.kernel(two_outputs), GpuConfig(**SMALL))
    assert_scheduled(opt, "does not touch `B`")
    rng = np.random.default_rng(5)
    N = 7
    args = [rng.random((N, N)), 0.5, 1.5, rng.random((N, N, N)), 3, rng.random((N, N))]
    assert_optimized_matches_python(opt, two_outputs, args)


# -- fuzz seed 166: short and empty reductions (fewer tiles than shared stages) -----------------

def local_acc(B, C, A):   # fuzz seed 166, verbatim
    N, M = C.shape
    _, P = A.shape
    for i in range(N):
        for j in range(M):
            acc = C[i, j]
            for k in range(P):
                acc += (-B[k, j]) * A[i, k] * B[k, j]
            C[i, j] = acc


_opt: dict = {}


def _optimized(func, **config):
    key = (func, tuple(sorted(config.items())))
    if key not in _opt:
        _opt[key] = pp.optimize(pp.kernel(func), GpuConfig(**SMALL, **config))
    return _opt[key]


@pytest.mark.parametrize("M, P", [(0, 6), (5, 0), (5, 3), (5, 6), (7, 9)])
def test_local_accumulator_with_short_or_empty_reduction(M, P):
    """0, 1 and 2 tiles of 4 with 2 stages (M = 0: nothing at all to compute)."""
    rng = np.random.default_rng(M * 10 + P)
    B, C, A = rng.standard_normal((P, M)), rng.standard_normal((5, M)), rng.standard_normal((5, P))
    want = C.copy()
    local_acc(B, want, A)
    _optimized(local_acc, shared_stages=2, register_stages=2).run(B, C, A)
    np.testing.assert_allclose(C, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order, seed", [("scrambled", 0), ("forward", 0), ("reverse", 0),
                                         ("scrambled", 5)])
@pytest.mark.parametrize("stages, registers", [(3, 2), (4, 1)])
@pytest.mark.parametrize("K", [0, 1, 4, 5])   # 0, 1, 1 and 2 tiles of 4
def test_gemm_with_fewer_tiles_than_stages(K, stages, registers, order, seed):
    case = CASES["gemm"]
    args = case.make(np.random.default_rng(K), 9, 6, K, np.float64)
    want = case.expect([a.copy() if isinstance(a, np.ndarray) else a for a in args])
    _optimized(case.func, shared_stages=stages, register_stages=registers).run(
        *args, thread_order=order, seed=seed)
    for index, expected in want.items():
        np.testing.assert_allclose(args[index], expected, rtol=1e-12, atol=1e-12)


def test_trip_count_is_reported_but_not_refused():
    kernel = _optimized(CASES["gemm"].func, shared_stages=4, register_stages=1).kernels[0]
    sizes = {"NI": 9, "NJ": 6, "NK": 5}
    assert tile_trip_count(kernel, sizes) == 2
    assert max_stages(kernel, 8, sizes) == (3, "trip count: 2 reduction tile(s) of 4 at these "
                                                "sizes")
    require_stages_fit(kernel, 8)   # no refusal: the kernel is proved for all sizes


def test_shared_memory_beyond_the_target_is_still_refused_with_what_to_do():
    config = GpuConfig(block=(256, 256), threads=(16, 16), reduction=64, shared_stages=4)
    with pytest.raises(ScheduleError, match=r"shared_stages=4 is more than the \d that fit; "
                                            r"limited by shared memory: .* lower shared_stages"):
        pp.optimize(pp.kernel(CASES["gemm"].func), config)


def test_element_function_found_when_isl_writes_it_piece_by_piece():
    """Pieces that each write the element their own way (``-1`` where ``j = 0``) still give
    one function: a piece's expression or the relation's affine hull."""
    import islpy as isl

    from polypipe.gpu_tree import _element_function

    relation = isl.Map("[M] -> { S[i, j] -> B[i, -1] : j = 0 and 0 <= i < 4 and M >= 6; "
                       "S[i, j] -> B[i, M - 2] : j = M - 1 and 0 <= i < 4 and M >= 6 }")
    function = _element_function(relation, "S[i, j]")
    assert isl.Map.from_multi_aff(function).intersect_domain(relation.domain()).is_equal(
        relation)
    assert "-1 + j" in str(function)
