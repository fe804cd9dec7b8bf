"""Schedule transformations (polypipe.transform): isl-level results, numerics, refusals.

Tiers: each transformation's new schedule equals a hand-derived isl map; the transformed
program, compiled on the C backend, computes what the Python function computes; illegal
transformations are refused with a counterexample naming both instances and the element;
one ``test_transform_rejects_<mistake>`` per kind of malformed request; and a hypothesis test
of random sequences of transformations.
"""

from __future__ import annotations

import islpy as isl
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import polypipe as pp
from polypipe import ir
from polypipe.analysis.legality import DependenceViolation
from polypipe.errors import ArgumentError, LegalityError, ScheduleError
from polypipe.kernel import CpuExecutable, bind_arguments
from polypipe.transform import (MAX_INTEGER, describe_schedule, fuse_bands, fuse_loops,
                                interchange, mark_band, replay_transforms, skew, split_band,
                                statement_loops, tile)

from .helpers import copy_args, max_relative_error, tolerance

# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------


@pp.kernel
def gemm(alpha, beta, C, A, B):
    NI, NJ = C.shape
    NK = A.shape[1]
    for i in range(NI):
        for j in range(NJ):
            C[i, j] *= beta
        for k in range(NK):
            for j in range(NJ):
                C[i, j] += alpha * A[i, k] * B[k, j]


@pp.kernel
def matmul(C, A, B):
    N, M = C.shape
    K = A.shape[1]
    for i in range(N):
        for j in range(M):
            for k in range(K):
                C[i, j] += A[i, k] * B[k, j]


@pp.kernel
def seidel_1d(T, A):
    N = len(A)
    for t in range(T):
        for i in range(1, N - 1):
            A[i] = (A[i - 1] + A[i] + A[i + 1]) / 3.0


@pp.kernel
def wavefront(A):
    N, M = A.shape
    for i in range(1, N):
        for j in range(1, M):
            A[i, j] = (A[i - 1, j] + A[i, j - 1]) * 0.5


@pp.kernel
def antidiagonal(A):
    N, M = A.shape
    for i in range(1, N):
        for j in range(M - 1):
            A[i, j] = A[i - 1, j + 1] * 0.5 + A[i, j]


@pp.kernel
def triangular(L, x):
    N = len(x)
    for i in range(1, N):
        for j in range(i):
            L[i, j] = L[i - 1, j] * 0.5 + x[j]


@pp.kernel
def reverse_scan(A):
    N, M = A.shape
    for i in range(1, N):
        for j in range(M - 2, -1, -1):
            A[i, j] = A[i, j] + A[i, j + 1] * 0.5 + A[i - 1, j] * 0.25


@pp.kernel
def three_loops(A, B, C, D):
    N = len(A)
    for i in range(N):
        B[i] = A[i] * 2.0
    for j in range(N):
        C[j] = B[j] + 1.0
    for k in range(N):
        D[k] = C[k] * B[k]


@pp.kernel
def with_empty_loop(A, B):
    N = len(A)
    for i in range(N):
        A[i] = A[i] + 1.0
    for j in range(0):
        B[j] = A[j] * 2.0


@pp.kernel
def shifted_consumer(A, B, C):
    N = len(C)
    for i in range(N + 1):
        B[i] = A[i] * 2.0
    for j in range(N):
        C[j] = B[j + 1]


@pp.kernel
def scale_then_scan(x, y):
    N = len(x)
    for i in range(N):
        x[i] = x[i] * 2.0
    for j in range(1, N):
        y[j] = y[j - 1] + x[j]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

RNG_SEED = 1234


def _rng():
    return np.random.default_rng(RNG_SEED)


def gemm_args(ni=13, nj=11, nk=9):
    rng = _rng()
    return [1.5, 0.5, rng.random((ni, nj)), rng.random((ni, nk)), rng.random((nk, nj))]


def matmul_args(n=37, m=29, k=13):
    rng = _rng()
    return [rng.random((n, m)), rng.random((n, k)), rng.random((k, m))]


def seidel_args(t=7, n=23):
    return [t, _rng().random(n)]


def square_args(n=17, m=19):
    return [_rng().random((n, m))]


def triangular_args(n=37):
    rng = _rng()
    return [rng.random((n, n)), rng.random(n)]


def three_args(n=21):
    rng = _rng()
    return [rng.random(n), np.zeros(n), np.zeros(n), np.zeros(n)]


def assert_program_matches_python(program: ir.Program, kernel: pp.Kernel, args) -> None:
    """Compile ``program`` (a transformed ``kernel.program``) on the C backend and compare it
    with the Python function on equal inputs."""
    compiled, reference = copy_args(args), copy_args(args)
    executable = CpuExecutable.build(program, bind_arguments(program, compiled))
    executable.run(compiled)
    kernel.python(*reference)
    for index, (got, want) in enumerate(zip(compiled, reference)):
        if isinstance(want, np.ndarray):
            error = max_relative_error(got, want)
            assert error <= tolerance(want.dtype), (
                f"argument {index} ({program.arguments[index].name}) differs by {error:.3e} "
                f"after {program.transforms}")


def assert_schedule(program: ir.Program, expected: str) -> None:
    """The program's flat schedule equals ``expected`` on its domain (isl ``is_equal``)."""
    domain = program.domain
    got = program.schedule_map.intersect_domain(domain)
    want = isl.UnionMap(expected).intersect_domain(domain)
    assert got.is_equal(want), f"schedule {got}\nexpected {want}"


def bands_of(program: ir.Program) -> list:
    """The band nodes of the tree, depth first, as tuples of member names; marks as
    ``'mark:<name>'`` (read from :func:`describe_schedule`)."""
    found = []
    for line in describe_schedule(program).splitlines():
        line = line.strip()
        if line.startswith("band ["):
            found.append(tuple(line[len("band ["):-1].split(", ")))
        elif line.startswith("mark "):
            found.append(f"mark:{line[len('mark '):]}")
    return found


# --------------------------------------------------------------------------------------------
# interchange
# --------------------------------------------------------------------------------------------


def test_interchange_gemm_k_and_j():
    p = interchange(gemm.program, "k", "j", statement="S1")
    assert_schedule(p, "[NI, NJ, NK] -> { S0[i, j] -> [i, 0, j, 0]; S1[i, k, j] -> [i, 1, j, k] }")
    assert p.transforms == ("interchange(outer='k', inner='j', statement='S1')",)
    assert statement_loops(p, "S1") == ("i", "j", "k")
    assert gemm.program.transforms == ()  # the input program is unchanged
    assert_program_matches_python(p, gemm, gemm_args())


def test_interchange_non_adjacent_loops_of_a_perfect_nest():
    p = interchange(matmul.program, "i", "k")
    assert_schedule(p, "[N, M, K] -> { S0[i, j, k] -> [k, j, i] }")
    assert_program_matches_python(p, matmul, matmul_args())


def test_interchange_within_one_band():
    p = interchange(fuse_bands(matmul.program, ("i", "j", "k")), "i", "j")
    assert bands_of(p) == [("j", "i", "k")]
    assert_schedule(p, "[N, M, K] -> { S0[i, j, k] -> [j, i, k] }")
    assert_program_matches_python(p, matmul, matmul_args())


def test_interchange_refused_for_antidiagonal_dependence():
    with pytest.raises(DependenceViolation) as info:
        interchange(antidiagonal.program, "i", "j")
    error = info.value
    message = str(error)
    assert message.startswith("interchange(outer='i', inner='j') is illegal for antidiagonal")
    assert error.kind == "flow" and error.array == "A"
    assert error.source in message and error.sink in message and error.element in message
    # A[i, j] = A[i - 1, j + 1]: the value written at (i, j + 1) is read one row later, at j
    assert error.source == "S0[i=1, j=1]" and error.sink == "S0[i=2, j=0]"
    assert error.element == "A[1, 1]"


# --------------------------------------------------------------------------------------------
# tile
# --------------------------------------------------------------------------------------------


def test_tile_sizes_that_do_not_divide_the_extents():
    p = tile(matmul.program, ("i", "j"), (8, 8))
    assert_schedule(p, "[N, M, K] -> { S0[i, j, k] -> [floor(i/8), floor(j/8), i, j, k] }")
    assert bands_of(p) == [("i_tile", "j_tile"), ("i", "j"), ("k",)]
    assert p.transforms == ("tile(loops=('i', 'j'), sizes=(8, 8))",)
    assert_program_matches_python(p, matmul, matmul_args(n=37, m=29, k=13))


def test_tile_three_loops_with_mixed_sizes():
    p = tile(matmul.program, ["i", "j", "k"], [5, 3, 4])
    assert_schedule(p, "[N, M, K] -> { S0[i, j, k] -> [floor(i/5), floor(j/3), floor(k/4), "
                       "i, j, k] }")
    assert p.transforms == ("tile(loops=('i', 'j', 'k'), sizes=(5, 3, 4))",)
    assert_program_matches_python(p, matmul, matmul_args(n=11, m=7, k=10))


def test_tile_gemm_reduction_loops_of_one_statement():
    p = tile(gemm.program, ("k", "j"), (4, 8), statement="S1")
    assert_schedule(p, "[NI, NJ, NK] -> { S0[i, j] -> [i, 0, j, 0, 0, 0]; "
                       "S1[i, k, j] -> [i, 1, floor(k/4), floor(j/8), k, j] }")
    assert statement_loops(p, "S1") == ("i", "k_tile", "j_tile", "k", "j")
    assert statement_loops(p, "S0") == ("i", "j")
    assert_program_matches_python(p, gemm, gemm_args(ni=13, nj=19, nk=10))


def test_tile_one_loop_shared_by_two_statements():
    p = tile(gemm.program, "i", 5)
    assert_schedule(p, "[NI, NJ, NK] -> { S0[i, j] -> [floor(i/5), i, 0, j, 0]; "
                       "S1[i, k, j] -> [floor(i/5), i, 1, k, j] }")
    assert_program_matches_python(p, gemm, gemm_args())


def test_tile_triangular_loops():
    p = tile(triangular.program, ("i", "j"), (8, 8))
    assert_schedule(p, "[N] -> { S0[i, j] -> [floor(i/8), floor(j/8), i, j] }")
    assert_program_matches_python(p, triangular, triangular_args(n=37))


def test_tile_reverse_loop_tiles_its_schedule_coordinate():
    p = tile(reverse_scan.program, ("i", "j"), (4, 3))
    assert_schedule(p, "[N, M] -> { S0[i, j] -> [floor(i/4), floor(-j/3), i, -j] }")
    assert_program_matches_python(p, reverse_scan, square_args(n=14, m=17))


def test_tile_twice_names_the_new_tile_loops_apart():
    p = tile(tile(matmul.program, "i", 16), "i", 4)
    assert statement_loops(p, "S0") == ("i_tile", "i_tile2", "i", "j", "k")
    assert_schedule(p, "[N, M, K] -> { S0[i, j, k] -> [floor(i/16), floor(i/4), i, j, k] }")
    assert_program_matches_python(p, matmul, matmul_args(n=37, m=5, k=3))


def test_tile_with_explicit_names():
    p = tile(matmul.program, ("i", "j"), (8, 4), tile_names=("bi", "bj"))
    assert statement_loops(p, "S0") == ("bi", "bj", "i", "j", "k")


def test_tile_refused_for_a_band_that_is_not_permutable():
    with pytest.raises(DependenceViolation) as info:
        tile(seidel_1d.program, ("t", "i"), (4, 4))
    error = info.value
    message = str(error)
    assert message.startswith("tile(loops=('t', 'i'), sizes=(4, 4)) is illegal for seidel_1d")
    assert error.source in message and error.sink in message and error.element in message
    # a value of the next tile of i, at time t, is needed by the previous tile at t + 1
    assert error.source.startswith("S0[t=0, ") and error.sink.startswith("S0[t=1, ")


# --------------------------------------------------------------------------------------------
# skew
# --------------------------------------------------------------------------------------------


def test_skew_then_interchange_makes_the_inner_loop_parallel():
    skewed = skew(seidel_1d.program, "i", "t", factor=2)
    assert_schedule(skewed, "[T, N] -> { S0[t, i] -> [t, i + 2t] }")
    assert statement_loops(skewed, "S0") == ("t", "i")
    assert_program_matches_python(skewed, seidel_1d, seidel_args())

    wave = interchange(skewed, "t", "i")
    assert_schedule(wave, "[T, N] -> { S0[t, i] -> [i + 2t, t] }")
    marked = mark_band(wave, "t", "thread")   # proved: every dependence is carried outside
    assert bands_of(marked) == [("i",), "mark:thread", ("t",)]
    assert marked.transforms == ("skew(loop='i', by='t', factor=2)",
                                 "interchange(outer='t', inner='i')",
                                 "mark_band(loops='t', kind='thread')")
    assert_program_matches_python(marked, seidel_1d, seidel_args())


def test_skew_factor_one_is_not_enough_for_seidel():
    wave = interchange(skew(seidel_1d.program, "i", "t"), "t", "i")
    with pytest.raises(DependenceViolation) as info:
        mark_band(wave, "t", "thread")
    assert "loop t (time dimension 1) must be parallel" in str(info.value)


def test_skew_makes_tiling_legal():
    p = tile(skew(seidel_1d.program, "i", "t"), ("t", "i"), (4, 4))
    assert_schedule(p, "[T, N] -> { S0[t, i] -> [floor(t/4), floor((i + t)/4), t, i + t] }")
    assert_program_matches_python(p, seidel_1d, seidel_args(t=9, n=23))


def test_skew_wavefront_2d():
    p = interchange(skew(wavefront.program, "j", "i"), "i", "j")
    assert_schedule(p, "[N, M] -> { S0[i, j] -> [i + j, i] }")
    p = mark_band(p, "i", "thread")
    assert_program_matches_python(p, wavefront, square_args())


def test_skew_negative_factor_and_inner_by():
    # skew the outer loop by an inner one of the same perfect nest (i := i - j): legal for
    # matmul, whose only dependence is carried by k
    p = skew(matmul.program, "i", "j", factor=-1)
    assert_schedule(p, "[N, M, K] -> { S0[i, j, k] -> [i - j, j, k] }")
    assert_program_matches_python(p, matmul, matmul_args(n=9, m=7, k=5))


def test_skew_refused_when_it_reverses_a_dependence():
    # i := i - t turns seidel's (1, -1) distance into (1, -2) and (0, 1) stays: legal; but
    # t := t - i makes (0, 1) ... carried backwards by t
    with pytest.raises(DependenceViolation) as info:
        skew(seidel_1d.program, "t", "i", factor=-1)
    assert info.value.source in str(info.value) and info.value.element in str(info.value)


# --------------------------------------------------------------------------------------------
# split_band / fuse_bands
# --------------------------------------------------------------------------------------------


def test_fuse_bands_then_split_band_keep_the_schedule():
    fused = fuse_bands(matmul.program, ("i", "j", "k"))
    assert bands_of(fused) == [("i", "j", "k")]
    assert_schedule(fused, "[N, M, K] -> { S0[i, j, k] -> [i, j, k] }")
    split = split_band(fused, "j")
    assert bands_of(split) == [("i",), ("j", "k")]
    assert_schedule(split, "[N, M, K] -> { S0[i, j, k] -> [i, j, k] }")
    assert split.transforms == ("fuse_bands(loops=('i', 'j', 'k'))", "split_band(loop='j')")
    assert_program_matches_python(split, matmul, matmul_args())


def test_fuse_bands_of_part_of_a_chain_keeps_the_rest_apart():
    p = fuse_bands(fuse_bands(matmul.program, ("i", "j", "k")), ("j", "k"))
    assert bands_of(p) == [("i",), ("j", "k")]


# --------------------------------------------------------------------------------------------
# mark_band
# --------------------------------------------------------------------------------------------


def test_mark_band_blocks_and_threads_on_tiled_matmul():
    p = tile(matmul.program, ("i", "j"), (8, 4))
    p = mark_band(p, ("i_tile", "j_tile"), "block")
    p = mark_band(p, ("i", "j"), kind="thread")
    assert bands_of(p) == ["mark:block", ("i_tile", "j_tile"), "mark:thread", ("i", "j"),
                           ("k",)]
    node = p.schedule.get_root().child(0).child(0)
    assert [node.band_member_get_coincident(k) for k in range(2)] == [True, True]
    assert_schedule(p, "[N, M, K] -> { S0[i, j, k] -> [floor(i/8), floor(j/4), i, j, k] }")
    assert_program_matches_python(p, matmul, matmul_args())


def test_mark_band_refused_for_a_sequential_loop():
    with pytest.raises(DependenceViolation) as info:
        mark_band(matmul.program, "k", "thread")
    error = info.value
    message = str(error)
    assert "loop k (time dimension 2) must be parallel" in message
    assert error.source == "S0[i=0, j=0, k=0]" and error.sink == "S0[i=0, j=0, k=1]"
    assert error.element == "C[0, 0]" and error.element in message


def test_mark_band_binds_only_the_marked_nest():
    # the scan loop j sits at the same depth as the marked loop i, in the next nest: it stays
    # sequential and does not make the mark illegal
    p = mark_band(scale_then_scan.program, "i", "thread")
    assert bands_of(p) == ["mark:thread", ("i",), ("j",)]
    assert_program_matches_python(p, scale_then_scan, [_rng().random(15), _rng().random(15)])
    with pytest.raises(DependenceViolation) as info:
        mark_band(p, "j", "thread")
    message = str(info.value)
    assert "loop j (time dimension 1) must be parallel" in message
    assert info.value.source == "S1[j=1]" and info.value.sink == "S1[j=2]"


def test_later_transformations_prove_marked_bands_again():
    p = mark_band(matmul.program, "i", "thread")
    # i := i + k puts instances of one reduction on different threads
    with pytest.raises(DependenceViolation) as info:
        skew(p, "i", "k")
    message = str(info.value)
    assert "(after mark_band(loops='i', kind='thread'))" in message
    assert "loop i (time dimension 0) must be parallel" in message


# --------------------------------------------------------------------------------------------
# fuse_loops
# --------------------------------------------------------------------------------------------


def test_fuse_loops_of_consecutive_nests():
    p = fuse_loops(three_loops.program, "S0", "S1")
    assert_schedule(p, "[N] -> { S0[i] -> [0, i, 0]; S1[j] -> [0, j, 1]; S2[k] -> [1, k, 0] }")
    assert statement_loops(p, "S1") == ("i",)
    assert_program_matches_python(p, three_loops, three_args())
    q = fuse_loops(p, "S1", "S2")
    assert_schedule(q, "[N] -> { S0[i] -> [i, 0]; S1[j] -> [j, 1]; S2[k] -> [k, 2] }")
    assert_program_matches_python(q, three_loops, three_args())


def test_fuse_loops_refused_when_the_consumer_reads_ahead():
    with pytest.raises(DependenceViolation) as info:
        fuse_loops(shifted_consumer.program, "S0", "S1")
    error = info.value
    assert error.kind == "flow" and error.source == "S0[i=1]" and error.sink == "S1[j=0]"
    assert error.element == "B[1]" and "B[1]" in str(error)


# --------------------------------------------------------------------------------------------
# The log
# --------------------------------------------------------------------------------------------


def test_replay_transforms_rebuilds_the_program():
    p = tile(matmul.program, ("i", "j"), (8, 4))
    p = mark_band(p, ("i_tile", "j_tile"), "block")
    p = interchange(p, "j", "k")
    p = split_band(p, "k")
    p = mark_band(p, "j", "thread")
    assert bands_of(p) == ["mark:block", ("i_tile", "j_tile"), ("i",), ("k",), "mark:thread",
                           ("j",)]
    again = replay_transforms(matmul.program, p.transforms)
    assert again.transforms == p.transforms
    assert again.schedule_map.is_equal(p.schedule_map)
    assert describe_schedule(again) == describe_schedule(p)
    assert "transforms: tile(loops=('i', 'j'), sizes=(8, 4)); mark_band(" in str(p)
    assert_program_matches_python(p, matmul, matmul_args())


def test_describe_schedule_outlines_the_tree():
    assert describe_schedule(gemm.program) == "\n".join([
        "band [i]",
        "  sequence",
        "    filter S0",
        "      band [j]",
        "        S0",
        "    filter S1",
        "      band [k]",
        "        band [j]",
        "          S1"])


# --------------------------------------------------------------------------------------------
# Malformed requests: one test per kind
# --------------------------------------------------------------------------------------------


def test_transform_rejects_unknown_loop():
    with pytest.raises(ScheduleError, match=r"statement S1 is not inside a loop named 'x'; "
                                            r"its loops, outer to inner: i, k, j"):
        tile(gemm.program, ("k", "x"), (8, 8), statement="S1")
    with pytest.raises(ScheduleError, match=r"no statement of matmul is inside loops named "
                                            r"'x'.*S0: i, j, k"):
        interchange(matmul.program, "x", "j")


def test_transform_rejects_unknown_statement():
    with pytest.raises(ScheduleError, match=r"no statement 'S7' in gemm \(statements: S0, S1\)"):
        skew(gemm.program, "j", "i", statement="S7")


def test_transform_rejects_ambiguous_loop_name():
    with pytest.raises(ScheduleError, match=r"mean different loops around S0, S1; say which "
                                            r"with statement='S0' or statement='S1'"):
        mark_band(gemm.program, "j", "thread")


def test_transform_rejects_non_positive_tile_sizes():
    for sizes in ((8, 0), (-4, 8)):
        with pytest.raises(ScheduleError, match=r"tile sizes must be positive integers"):
            tile(matmul.program, ("i", "j"), sizes)
    for sizes in ((8, 2.5), (True, 8)):
        with pytest.raises(ScheduleError, match=r"a tile size must be an integer"):
            tile(matmul.program, ("i", "j"), sizes)


def test_transform_rejects_wrong_number_of_tile_sizes():
    with pytest.raises(ScheduleError, match=r"give one tile size per loop: 2 loop\(s\)"):
        tile(matmul.program, ("i", "j"), (8,))


def test_transform_rejects_loops_not_nested_in_one_another():
    with pytest.raises(ScheduleError) as info:
        tile(gemm.program, ("i", "j"), (8, 8), statement="S0")
    message = str(info.value)
    assert message.startswith("tile(loops=('i', 'j'), sizes=(8, 8), statement='S0') on gemm:")
    assert "not perfectly nested around S0: S1 runs between them" in message
    with pytest.raises(ScheduleError, match=r"not perfectly nested around S1"):
        interchange(gemm.program, "i", "k")


def test_transform_rejects_loops_separated_by_a_mark():
    p = mark_band(matmul.program, "j", "thread")
    with pytest.raises(ScheduleError, match=r"a 'thread' mark sits between loop i and loop j; "
                                            r"transform loops before marking them"):
        tile(p, ("i", "j"), (4, 4))


def test_transform_rejects_loops_that_are_not_adjacent():
    with pytest.raises(ScheduleError, match=r"loops 'i' and 'k' are not adjacent around S0: j "
                                            r"runs between them"):
        tile(matmul.program, ("i", "k"), (8, 8))


def test_transform_rejects_loops_in_the_wrong_order():
    with pytest.raises(ScheduleError, match=r"give the loops outer to inner: around S0 they "
                                            r"nest as i, j"):
        fuse_bands(matmul.program, ("j", "i"))
    with pytest.raises(ScheduleError, match=r"loop 'k' runs inside loop 'i' around S0; pass "
                                            r"outer='i', inner='k'"):
        interchange(matmul.program, "k", "i")


def test_transform_rejects_a_loop_named_twice():
    with pytest.raises(ScheduleError, match=r"loops names loop 'i' more than once"):
        tile(matmul.program, ("i", "i"), (4, 4))
    with pytest.raises(ScheduleError, match=r"outer and inner are both 'i'"):
        interchange(matmul.program, "i", "i")


def test_transform_rejects_bad_loop_arguments():
    with pytest.raises(ScheduleError, match=r"loops must name at least one loop"):
        tile(matmul.program, (), ())
    with pytest.raises(ScheduleError, match=r"loops must be loop names \(strings\), got 3"):
        mark_band(matmul.program, ("i", 3), "block")


def test_transform_rejects_unknown_mark_kind():
    with pytest.raises(ScheduleError, match=r"kind must be one of 'block', 'thread', got "
                                            r"'warp'"):
        mark_band(matmul.program, ("i", "j"), "warp")


def test_transform_rejects_nested_or_repeated_marks():
    threads = mark_band(matmul.program, "j", "thread")
    with pytest.raises(ScheduleError, match=r"loop 'k' runs inside a 'thread' band around S0; "
                                            r"marks of one kind do not nest"):
        mark_band(threads, "k", "thread")
    with pytest.raises(ScheduleError, match=r"block bands must enclose thread bands"):
        mark_band(threads, "k", "block")
    with pytest.raises(ScheduleError, match=r"loop 'j' is in a band already marked 'thread'"):
        mark_band(threads, "j", "block")


def test_transform_rejects_zero_or_self_skew():
    with pytest.raises(ScheduleError, match=r"skew factor must not be zero"):
        skew(seidel_1d.program, "i", "t", factor=0)
    with pytest.raises(ScheduleError, match=r"cannot skew loop 't' by itself"):
        skew(seidel_1d.program, "t", "t")


def test_transform_rejects_skew_by_a_loop_that_does_not_enclose():
    # S1's k runs around S1 only; gemm's i runs around S0 as well
    with pytest.raises(ScheduleError, match=r"loop 'k' does not run around S0, which loop 'i' "
                                            r"runs around"):
        skew(gemm.program, "i", "k", statement="S1")


def test_transform_rejects_split_at_the_first_member():
    with pytest.raises(ScheduleError, match=r"loop 'i' is already the outermost member of its "
                                            r"band around S0; .* \(band: \[i\]\)"):
        split_band(matmul.program, "i")


def test_transform_rejects_fusing_what_is_one_band_already():
    fused = fuse_bands(matmul.program, ("i", "j"))
    with pytest.raises(ScheduleError, match=r"loops 'i', 'j' already form one band"):
        fuse_bands(fused, ("i", "j"))
    with pytest.raises(ScheduleError, match=r"needs at least two loops"):
        fuse_bands(matmul.program, "i")


def test_transform_rejects_tile_name_clashes():
    with pytest.raises(ScheduleError, match=r"tile name 'k' is already the name of a loop"):
        tile(matmul.program, ("i", "j"), (4, 4), tile_names=("k", "jj"))
    with pytest.raises(ScheduleError, match=r"tile name '2x' is not a valid identifier"):
        tile(matmul.program, "i", 4, tile_names="2x")


def test_transform_rejects_fusing_loops_that_are_not_adjacent():
    with pytest.raises(ScheduleError, match=r"not consecutive children of one sequence"):
        fuse_loops(three_loops.program, "S0", "S2")
    with pytest.raises(ScheduleError, match=r"S1 runs after S0; pass first='S0', second='S1'"):
        fuse_loops(three_loops.program, "S1", "S0")
    with pytest.raises(ScheduleError, match=r"S0 is not inside a loop below the sequence it "
                                            r"shares with the other statement"):
        fuse_loops(fuse_loops(three_loops.program, "S0", "S1"), "S0", "S1")


def test_transform_rejects_unreadable_log_entries():
    with pytest.raises(ScheduleError, match=r"not a schedule transformation"):
        replay_transforms(matmul.program, ["gpu_map(block=(64, 64))"])
    with pytest.raises(ScheduleError, match=r"not a call with keyword arguments"):
        replay_transforms(matmul.program, ["tile(('i',), (4,))"])


# Each transformation and query, called with a well-formed request for matmul.
REQUESTS = {
    "tile": lambda p: tile(p, ("i", "j"), (4, 4)),
    "interchange": lambda p: interchange(p, "j", "k"),
    "skew": lambda p: skew(p, "j", "i"),
    "fuse_bands": lambda p: fuse_bands(p, ("i", "j")),
    "mark_band": lambda p: mark_band(p, "i", "block"),
    "replay_transforms": lambda p: replay_transforms(p, ["tile(loops='i', sizes=4)"]),
}
QUERIES = {
    "statement_loops": lambda p: statement_loops(p, "S0"),
    "describe_schedule": describe_schedule,
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_transform_accepts_a_kernel(name):
    from_kernel = REQUESTS[name](matmul)
    from_program = REQUESTS[name](matmul.program)
    assert isinstance(from_kernel, ir.Program)
    assert from_kernel.transforms == from_program.transforms
    assert from_kernel.schedule_map.is_equal(from_program.schedule_map)


def test_split_band_fuse_loops_and_queries_accept_a_kernel():
    # the front end gives every loop its own band: the kernel's program is what is refused
    with pytest.raises(ScheduleError, match=r"split_band\(loop='j'\) on matmul: loop 'j' is "
                                            r"already the outermost member of its band"):
        split_band(matmul, "j")
    assert fuse_loops(three_loops, "S0", "S1").transforms == ("fuse_loops(first='S0', "
                                                              "second='S1')",)
    for query in QUERIES.values():
        assert query(matmul) == query(matmul.program)


@pytest.mark.parametrize("program", [None, "matmul", 3, matmul.python],
                         ids=["none", "string", "int", "plain-function"])
@pytest.mark.parametrize("name", sorted(REQUESTS) + ["fuse_loops", "split_band"]
                         + sorted(QUERIES))
def test_transform_rejects_a_non_program(name, program):
    call = {**REQUESTS, **QUERIES, "fuse_loops": lambda p: fuse_loops(p, "S0", "S1"),
            "split_band": lambda p: split_band(p, "j")}[name]
    with pytest.raises(ArgumentError, match=rf"{name}\(\) takes a @polypipe.kernel function or "
                                            rf"its program \(a polypipe.Program\), not "):
        call(program)


@pytest.mark.parametrize("value", [2 ** 63, 2 ** 70, -2 ** 70], ids=["2**63", "2**70", "-2**70"])
def test_transform_rejects_integers_beyond_64_bits(value):
    with pytest.raises(ScheduleError, match=r"a tile size must be at most 2\*\*63 - 1 in "
                                            r"magnitude"):
        tile(matmul.program, "i", value)
    with pytest.raises(ScheduleError, match=r"the skew factor must be at most 2\*\*63 - 1"):
        skew(seidel_1d.program, "i", "t", factor=value)


def test_transform_takes_the_largest_64_bit_integers_exactly():
    tiled = tile(matmul.program, "i", MAX_INTEGER)
    assert_schedule(tiled, f"[N, M, K] -> {{ S0[i, j, k] -> [floor(i / {MAX_INTEGER}), i, j, k] }}")
    skewed = skew(seidel_1d.program, "i", "t", factor=-MAX_INTEGER)
    assert skewed.transforms == (f"skew(loop='i', by='t', factor={-MAX_INTEGER})",)


@pytest.mark.parametrize("sizes", ["32", None, {4}, 1.5], ids=["string", "none", "set", "float"])
def test_transform_rejects_tile_sizes_that_are_not_integers(sizes):
    with pytest.raises(ScheduleError, match=r"a tile size must be an integer, got "):
        tile(matmul.program, "i", sizes)


@pytest.mark.parametrize("loops", [{"i"}, {"i": 4}, 5, None], ids=["set", "dict", "int", "none"])
def test_transform_rejects_loops_that_are_not_a_sequence_of_names(loops):
    with pytest.raises(ScheduleError, match=r"loops must be a loop name or a sequence of loop "
                                            r"names, got "):
        tile(matmul.program, loops, 4)


def test_transform_reads_generators_and_numpy_arrays_once():
    tiled = tile(matmul.program, (n for n in ("i", "j")), np.array([4, 8]))
    assert tiled.transforms == ("tile(loops=('i', 'j'), sizes=(4, 8))",)
    assert tiled.schedule_map.is_equal(tile(matmul.program, ("i", "j"), (4, 8)).schedule_map)


def test_transform_of_a_program_with_a_statement_without_instances():
    program = with_empty_loop.program
    assert program.statement("S1").domain.is_empty()
    marked = mark_band(program, "i", "block")
    assert marked.transforms == ("mark_band(loops='i', kind='block')",)
    assert "(no instances)" in describe_schedule(program)
    assert statement_loops(tile(program, "i", 4), "S0") == ("i_tile", "i")


@pytest.mark.parametrize("entries, message", [
    (["tile(**{})"], r"unpacks arguments with \*\*"),
    (["tile(loops='i', sizes=32, bogus=1)"],
     r"does not fit tile\(\): got an unexpected keyword argument 'bogus'; tile takes loops, "
     r"sizes, statement, tile_names"),
    (["tile(sizes=32)"], r"does not fit tile\(\): missing a required argument: 'loops'"),
    (["tile(program=1, loops='i', sizes=4)"], r"multiple values for argument 'program'"),
    (None, r"transforms must be a list of transform log entries .*, got None"),
    ({"tile(loops='i', sizes=4)"}, r"transforms must be a list of transform log entries"),
    ("tile(loops='i', sizes=4)", r"not a single string"),
    ([5], r"transform log entry #0 must be a string"),
    (["tile(loops='i', sizes=4)", None], r"transform log entry #1 must be a string"),
    (["tile(loops='i', sizes=(4,)\0)"], r"cannot read transform log entry"),
    (["tile(loops=" + "(" * 10000 + ")" * 10000 + ")"], r"cannot read transform log entry"),
    (["tile(loops=lambda: 'i', sizes=4)"], r"has a non-literal argument"),
], ids=["double-star", "unknown-keyword", "missing-keyword", "program-keyword", "none", "set",
        "string", "int-entry", "none-entry", "nul", "deeply-nested", "lambda"])
def test_replay_rejects_malformed_logs(entries, message):
    with pytest.raises(ScheduleError, match=message):
        replay_transforms(matmul.program, entries)


def test_replay_takes_any_ordered_iterable_of_entries():
    log = tile(interchange(matmul.program, "j", "k"), "i", 4).transforms
    again = replay_transforms(matmul, iter(log))
    assert again.transforms == log
    assert replay_transforms(matmul.program, ()).transforms == ()


# --------------------------------------------------------------------------------------------
# Random sequences of transformations
# --------------------------------------------------------------------------------------------

# Perfectly nested kernels: every well-formed request on them is accepted or refused by
# legality, never rejected as malformed, so a ScheduleError here is a bug.
RANDOM_CASES = {
    "matmul": (matmul, lambda: matmul_args(n=11, m=7, k=5)),
    "seidel_1d": (seidel_1d, lambda: seidel_args(t=5, n=13)),
    "wavefront": (wavefront, lambda: square_args(n=9, m=11)),
    "triangular": (triangular, lambda: triangular_args(n=13)),
    "reverse_scan": (reverse_scan, lambda: square_args(n=8, m=10)),
}


def _random_step(data, program: ir.Program) -> ir.Program:
    loops = statement_loops(program, "S0")
    assert all(loops), loops
    operation = data.draw(st.sampled_from(["interchange", "tile", "skew"]))
    if operation == "interchange":
        a, b = sorted(data.draw(st.lists(st.integers(0, len(loops) - 1), min_size=2,
                                         max_size=2, unique=True)))
        return interchange(program, loops[a], loops[b])
    if operation == "tile":
        start = data.draw(st.integers(0, len(loops) - 1))
        count = data.draw(st.integers(1, min(2, len(loops) - start)))
        sizes = data.draw(st.lists(st.integers(1, 6), min_size=count, max_size=count))
        return tile(program, loops[start:start + count], sizes)
    a, b = data.draw(st.lists(st.integers(0, len(loops) - 1), min_size=2, max_size=2,
                              unique=True))
    factor = data.draw(st.sampled_from([-2, -1, 1, 2]))
    return skew(program, loops[a], loops[b], factor=factor)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_random_transformation_sequences_match_python(data):
    name = data.draw(st.sampled_from(sorted(RANDOM_CASES)))
    kernel, make_args = RANDOM_CASES[name]
    program = kernel.program
    for _ in range(data.draw(st.integers(1, 3))):
        try:
            program = _random_step(data, program)
        except LegalityError:
            continue  # refused with a counterexample: fine, the program is unchanged
    assert_program_matches_python(program, kernel, make_args())
    if program.transforms:
        again = replay_transforms(kernel.program, program.transforms)
        assert again.schedule_map.is_equal(program.schedule_map)
