"""analysis.scheduling: isl's schedule from the exact dependences, validity and every parallel
member proved, on the PolyBench kernels and on hand-made cases with a known answer."""

import islpy as isl
import pytest

import polypipe as pp
from polypipe.analysis.dependences import dependences
from polypipe.analysis.scheduling import compute_schedule, prove_coincident
from polypipe.errors import InternalError
from tests.kernels import polybench as pb

# heat_3d alone takes isl's scheduler about 10 s: marked slow below.
FAST = ["atax", "bicg", "mvt", "gemver", "gesummv", "doitgen", "trisolv", "covariance", "symm",
        "gramschmidt", "lu", "ludcmp", "fdtd_2d", "correlation", "durbin", "deriche", "adi",
        "jacobi_1d", "jacobi_2d", "seidel_2d", "trmm", "floyd_warshall", "cholesky",
        "nussinov", "gemm", "syrk", "syr2k", "k2mm", "k3mm", "lcs", "box_blur"]


def _schedule(name):
    return compute_schedule(pp.kernel(getattr(pb, name)))


def _flat(schedule: isl.Schedule) -> isl.UnionMap:
    return schedule.get_map()


@pytest.mark.parametrize("name", FAST + [pytest.param("heat_3d", marks=pytest.mark.slow)])
def test_every_polybench_kernel_gets_a_proved_schedule(name):
    result = _schedule(name)
    program = result.program
    # Every instance is scheduled once: the flat schedule's domain is the whole iteration space.
    scheduled = _flat(result.schedule).domain()
    for stmt in program.statements:
        assert isl.UnionSet.from_set(stmt.domain).is_subset(scheduled), stmt.name
    # compute_schedule proved the members it reports parallel; check that the report is the
    # tree's flags and that each band's statements are the ones under it.
    assert result.bands
    for band in result.bands:
        assert band.members == len(band.coincident) >= 1
        assert band.statements <= {s.name for s in program.statements}
    assert f"schedule of {program.name}" in result.describe()


@pytest.mark.parametrize("name, outer_parallel", [
    ("gemm", 2), ("syrk", 2), ("mvt", 1), ("atax", 1), ("gesummv", 1)])
def test_independent_outputs_are_parallel_outermost(name, outer_parallel):
    result = _schedule(name)
    for stmt in result.program.statements:
        band = result.parallel_band(stmt.name)
        assert band is not None and band.depth == 0
        assert band.coincident[:outer_parallel] == (True,) * outer_parallel
        assert result.sequential_outer(stmt.name) == 0


@pytest.mark.parametrize("name, sequential", [("jacobi_1d", 1), ("jacobi_2d", 1),
                                              ("fdtd_2d", 1), ("seidel_2d", 1), ("lu", 1),
                                              ("floyd_warshall", 2)])
def test_time_and_pivot_loops_stay_outside_the_parallel_band(name, sequential):
    # What becomes a host-side sequence of launches: the time step of a stencil, LU's pivot,
    # Floyd-Warshall's k (and, memory-based, its row i: row k is read while rows are written).
    result = _schedule(name)
    for stmt in result.program.statements:
        assert result.sequential_outer(stmt.name) == sequential, stmt.name
        assert result.parallel_band(stmt.name) is not None


def test_an_in_place_sweep_is_parallel_along_its_wavefront():
    @pp.kernel
    def sweep(A):
        N, M = A.shape
        for i in range(1, N):
            for j in range(1, M):
                A[i, j] = A[i - 1, j] + A[i, j - 1]

    # Both source loops carry a dependence; isl's outer member is the diagonal i + j.
    assert not dependences(sweep.program).parallel_loops()
    result = compute_schedule(sweep)
    outer = result.schedule.get_root().child(0)
    assert outer.band_member_get_coincident(0) == 0
    skew = outer.band_get_partial_schedule().get_union_pw_aff(0)
    point = isl.UnionSet("[N, M] -> { S0[i = 3, j = 5] }")
    values = isl.UnionMap.from_union_pw_aff(skew).intersect_domain(point)
    assert values.is_equal(isl.UnionMap("[N, M] -> { S0[i = 3, j = 5] -> [8] }"))
    band = result.parallel_band("S0")
    assert band.depth == 1 and result.sequential_outer("S0") == 1


def test_no_parallelism_is_reported_as_such():
    result = _schedule("ludcmp")
    assert all(result.parallel_band(s.name) is None for s in result.program.statements)
    assert "no parallel loop" in result.describe()


def test_a_member_wrongly_marked_parallel_is_an_internal_error_naming_the_pair():
    result = _schedule("jacobi_1d")
    time_band = result.schedule.get_root().child(0)
    assert time_band.band_member_get_coincident(0) == 0
    with pytest.raises(InternalError) as info:
        prove_coincident(result.program, time_band, 0, dependences(result.program))
    text = str(info.value)
    assert "carries" in text and "S0[" in text and "S1[" in text
    assert "A[" in text or "B[" in text      # the element of the dependence
