"""Legality of new schedules: proofs, and refusals with one concrete counterexample each.

One ``test_check_schedule_rejects_<mistake>`` per kind of refusal: a flow, an anti and an
output dependence run backwards, two dependent instances given the same time, a dimension that
must be parallel but carries a dependence (named by loop or by position), and malformed
schedules (missing statements or instances, several times per instance, unknown names).
"""

from __future__ import annotations

import islpy as isl
import pytest

import polypipe as pp
from polypipe.analysis.dependences import dependences
from polypipe.analysis.legality import DependenceViolation, check_schedule, concrete_pair
from polypipe.errors import ArgumentError, LegalityError, ScheduleError


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
def shift_left(x):
    n = len(x)
    for i in range(n - 1):
        x[i] = x[i + 1]


@pp.kernel
def overwrite(x, y):
    n = len(y)
    for i in range(n):
        x[0] = y[i]


@pp.kernel
def suffix_sum(x, suf):
    n = len(x)
    for i in range(n - 2, -1, -1):
        suf[i] = suf[i + 1] + x[i]


@pp.kernel
def row_sums(A, out):
    N, M = A.shape
    for i in range(N):
        s = 0.0
        for j in range(M):
            s += A[i, j]
        out[i] = s


@pp.kernel
def with_empty_loop(A, B):
    N = A.shape[0]
    for i in range(N):
        A[i] = A[i] + 1.0
    for j in range(0):
        B[j] = A[j] * 2.0


@pp.kernel
def far_offsets(A):
    N = A.shape[0]
    for i in range(1000000000000000000000000000000, 1000000000000000000000000000000 + N):
        A[i - 1000000000000000000000000000000] = A[i - 1000000000000000000000000000001] + 1.0


GEMM_SOURCE_ORDER = "{ S0[i, j] -> [i, 0, j, 0]; S1[i, k, j] -> [i, 1, k, j] }"
S1_LINE = gemm.program.statement("S1").location.line
S0_LINE = gemm.program.statement("S0").location.line


def test_source_schedule_is_legal_for_every_corpus_kernel():
    from tests.kernels.polybench import KERNELS

    for case in KERNELS.values():
        program = pp.build_program(case.func)
        check_schedule(program, program.schedule)


def test_equivalent_forms_of_the_source_schedule_are_legal():
    program = gemm.program
    check_schedule(program, program.schedule_map)
    check_schedule(program, GEMM_SOURCE_ORDER)
    check_schedule(program, isl.UnionMap(GEMM_SOURCE_ORDER))


def test_interchange_of_k_and_j_is_legal_and_keeps_j_parallel():
    interchanged = "{ S0[i, j] -> [i, 0, j, 0]; S1[i, k, j] -> [i, 1, j, k] }"
    check_schedule(gemm.program, interchanged, parallel=[0, 2])


def test_parallel_loops_by_name():
    check_schedule(gemm.program, gemm.program.schedule, parallel=["i", "j"])


def test_time_vectors_of_different_lengths_are_padded():
    check_schedule(gemm.program, "{ S0[i, j] -> [i, 0, j]; S1[i, k, j] -> [i, 1, k, j] }")


def test_reverse_loop_source_order_is_legal():
    check_schedule(suffix_sum.program, suffix_sum.program.schedule)
    check_schedule(suffix_sum.program, "{ S0[i] -> [-i] }")


def test_check_schedule_rejects_backward_flow():
    reversed_k = "{ S0[i, j] -> [i, 0, j, 0]; S1[i, k, j] -> [i, 1, -k, j] }"
    with pytest.raises(DependenceViolation) as info:
        check_schedule(gemm.program, reversed_k)
    error = info.value
    assert isinstance(error, LegalityError)
    assert (error.kind, error.array) == ("flow", "C")
    assert error.source == "S1[i=0, k=0, j=0]" and error.sink == "S1[i=0, k=1, j=0]"
    assert error.element == "C[0, 0]"
    assert error.parameters == {"NI": 1, "NJ": 1, "NK": 2}
    assert error.parallel_dim is None
    message = str(error)
    assert "flow dependence on C (for NI = 1, NJ = 1, NK = 2)" in message
    assert f"S1[i=0, k=0, j=0] (line {S1_LINE}: C[i, j] += alpha * A[i, k] * B[k, j]) " \
           f"writes C[0, 0]" in message
    assert "S1[i=0, k=1, j=0]" in message and "reads that value" in message
    assert "[0, 1, 0, 0] and the second earlier, at [0, 1, -1, 0]" in message


def test_check_schedule_rejects_flow_between_statements():
    init_last = "{ S0[i, j] -> [i, 1, j, 0]; S1[i, k, j] -> [i, 0, k, j] }"
    with pytest.raises(DependenceViolation) as info:
        check_schedule(gemm.program, init_last)
    assert info.value.source == "S0[i=0, j=0]" and info.value.sink == "S1[i=0, k=0, j=0]"
    assert f"(line {S0_LINE}: C[i, j] *= beta)" in str(info.value)
    assert f"(line {S1_LINE}: C[i, j] +=" in str(info.value)


def test_check_schedule_rejects_backward_anti():
    with pytest.raises(DependenceViolation) as info:
        check_schedule(shift_left.program, "{ S0[i] -> [-i] }")
    error = info.value
    assert (error.kind, error.array, error.element) == ("anti", "x", "x[1]")
    assert error.source == "S0[i=0]" and error.sink == "S0[i=1]"
    assert error.parameters == {"n": 3}
    assert "reads x[1]" in str(error) and "overwrites it" in str(error)


def test_check_schedule_rejects_backward_output():
    with pytest.raises(DependenceViolation) as info:
        check_schedule(overwrite.program, "{ S0[i] -> [-i] }")
    error = info.value
    assert (error.kind, error.array, error.element) == ("output", "x", "x[0]")
    assert (error.source, error.sink) == ("S0[i=0]", "S0[i=1]")
    assert error.parameters == {"n": 2}


def test_check_schedule_rejects_forward_order_of_a_reverse_loop():
    with pytest.raises(DependenceViolation) as info:
        check_schedule(suffix_sum.program, "{ S0[i] -> [i] }")
    assert info.value.kind == "flow" and info.value.element == "suf[1]"
    assert (info.value.source, info.value.sink) == ("S0[i=1]", "S0[i=0]")


def test_check_schedule_rejects_same_time_for_dependent_instances():
    fused = "{ S0[i, j] -> [i, 0, j, 0]; S1[i, k, j] -> [i, 0, j, k] }"
    with pytest.raises(DependenceViolation, match="same time") as info:
        check_schedule(gemm.program, fused)
    assert info.value.source == "S0[i=0, j=0]" and info.value.sink == "S1[i=0, k=0, j=0]"


def test_check_schedule_rejects_carried_dependence_on_parallel_loop():
    with pytest.raises(DependenceViolation) as info:
        check_schedule(gemm.program, gemm.program.schedule, parallel=["i", "k"])
    error = info.value
    assert error.parallel_dim == 2 and error.kind == "flow"
    assert (error.source, error.sink) == ("S1[i=0, k=0, j=0]", "S1[i=0, k=1, j=0]")
    assert str(error).startswith("loop k (time dimension 2) must be parallel but carries a "
                                 "flow dependence on C")


def test_check_schedule_rejects_carried_dependence_on_parallel_dimension():
    with pytest.raises(DependenceViolation, match="time dimension 3 must be parallel") as info:
        check_schedule(gemm.program, "{ S0[i, j] -> [i, 0, j, 0]; S1[i, k, j] -> [i, 1, j, k] }",
                       parallel=[3])
    assert info.value.parallel_dim == 3


def test_check_schedule_rejects_private_scalar_reuse_on_parallel_loop():
    with pytest.raises(DependenceViolation) as info:
        check_schedule(row_sums.program, row_sums.program.schedule, parallel=["i"])
    assert info.value.array == "s" and info.value.kind in ("anti", "output")


def test_check_schedule_rejects_missing_statement():
    with pytest.raises(ScheduleError, match="does not schedule S1"):
        check_schedule(gemm.program, "{ S0[i, j] -> [i, 0, j, 0] }")


def test_check_schedule_rejects_missing_instances():
    partial = "{ S0[i, j] -> [i, 0, j, 0] : i < 5; S1[i, k, j] -> [i, 1, k, j] }"
    with pytest.raises(ScheduleError, match=r"no time for S0\[i=5, j=0\]"):
        check_schedule(gemm.program, partial)


def test_check_schedule_rejects_several_times_per_instance():
    relation = "{ S0[i, j] -> [i, 0, j, t] : 0 <= t <= 1; S1[i, k, j] -> [i, 1, k, j] }"
    with pytest.raises(ScheduleError, match="several times"):
        check_schedule(gemm.program, relation)


def test_check_schedule_rejects_unknown_statement_and_wrong_arity():
    with pytest.raises(ScheduleError, match="does not have: S7"):
        check_schedule(gemm.program, GEMM_SOURCE_ORDER[:-1] + "; S7[i] -> [i, 0, 0, 0] }")
    with pytest.raises(ScheduleError, match="S1 with 2 iterator"):
        check_schedule(gemm.program, "{ S0[i, j] -> [i, 0, j, 0]; S1[i, k] -> [i, 1, k, 0] }")


def test_check_schedule_rejects_bad_parallel_requests():
    with pytest.raises(ScheduleError, match="no loop or time dimension named 'q'"):
        check_schedule(gemm.program, gemm.program.schedule, parallel=["q"])
    with pytest.raises(ScheduleError, match="outside the time vector"):
        check_schedule(gemm.program, gemm.program.schedule, parallel=[4])
    with pytest.raises(ScheduleError, match="ints .* or names"):
        check_schedule(gemm.program, gemm.program.schedule, parallel=[1.5])


def test_check_schedule_rejects_non_schedules():
    with pytest.raises(ScheduleError, match="cannot read the schedule"):
        check_schedule(gemm.program, "{ S0[i, j] -> [i, }")
    with pytest.raises(ScheduleError, match="isl.Schedule or an isl.UnionMap"):
        check_schedule(gemm.program, [1, 2])


def test_concrete_pair_picks_smallest_sizes_and_instances():
    relation = isl.Map("[N, M] -> { S[i] -> T[j] : 2 <= i < j < N and M >= 3 }")
    pair = concrete_pair(relation, isl.Set("[N, M] -> { : N >= 0 and M >= 0 }"))
    assert pair.parameters == {"N": 4, "M": 3}
    assert (pair.source, pair.source_values, pair.sink, pair.sink_values) == (
        "S", (2,), "T", (3,))


def test_concrete_pair_handles_unbounded_parameters():
    relation = isl.Map("[t] -> { S[i] -> S[i + 1] : t <= i < t + 3 }")
    pair = concrete_pair(relation, isl.Set("[t] -> { : }"))
    assert pair.parameters == {"t": 0} and pair.source_values == (0,)
    negative = isl.Map("[t] -> { S[i] -> S[i + 1] : t < -5 and 0 <= i < 2 }")
    pair = concrete_pair(negative, isl.Set("[t] -> { : }"))
    assert pair.parameters["t"] < -5


def test_legality_reuses_given_dependences():
    deps = dependences(gemm.program)
    check_schedule(gemm.program, gemm.program.schedule, deps=deps)


# --------------------------------------------------------------------------------------------
# Arguments: kernels accepted as programs, everything else refused clearly
# --------------------------------------------------------------------------------------------


def test_check_schedule_accepts_a_kernel():
    check_schedule(gemm, gemm.program.schedule, parallel=["i"])
    with pytest.raises(DependenceViolation, match="loop k"):
        check_schedule(gemm, gemm.program.schedule, parallel=["k"])


@pytest.mark.parametrize("program", [None, "gemm", 42, gemm.python],
                         ids=["none", "string", "int", "plain-function"])
def test_check_schedule_rejects_a_non_program(program):
    with pytest.raises(ArgumentError, match=r"check_schedule\(\) takes a @polypipe.kernel "
                                            r"function or its program"):
        check_schedule(program, GEMM_SOURCE_ORDER)


def test_check_schedule_rejects_a_plain_function_with_a_hint():
    with pytest.raises(ArgumentError, match=r"not function \(decorate it with @polypipe.kernel"):
        check_schedule(gemm.python, GEMM_SOURCE_ORDER)


@pytest.mark.parametrize("parallel", [None, 1.5, b"i", {"i": 1}, object()],
                         ids=["none", "float", "bytes", "dict", "object"])
def test_check_schedule_rejects_parallel_of_the_wrong_type(parallel):
    with pytest.raises(ArgumentError, match=r"parallel must be a time dimension \(an int or a "
                                            r"loop name\) or a collection of them"):
        check_schedule(gemm.program, gemm.program.schedule, parallel=parallel)


def test_check_schedule_takes_numpy_integers_and_sets_as_parallel():
    import numpy as np

    check_schedule(gemm.program, GEMM_SOURCE_ORDER, parallel=np.int64(0))
    check_schedule(gemm.program, gemm.program.schedule, parallel={"i", "j"})
    with pytest.raises(DependenceViolation, match="time dimension 2 must be parallel"):
        check_schedule(gemm.program, GEMM_SOURCE_ORDER, parallel=[np.int32(2)])


def test_check_schedule_rejects_deps_that_are_not_dependences():
    with pytest.raises(ArgumentError, match=r"deps must be the Dependences that "
                                            r"polypipe.dependences\(\) returns, not str"):
        check_schedule(gemm.program, gemm.program.schedule, deps="x")


def test_check_schedule_rejects_deps_of_another_program():
    with pytest.raises(ScheduleError, match=r"deps were computed for shift_left, whose "
                                            r"statements \(S0\) are not those of gemm"):
        check_schedule(gemm.program, gemm.program.schedule, deps=dependences(shift_left))


def test_check_schedule_rejects_an_unnamed_tuple():
    with pytest.raises(ScheduleError, match=r"maps an unnamed tuple \(\{ \[i\] -> \[i\] \}\)"):
        check_schedule(gemm.program, "{ [i] -> [i] }")


def test_check_schedule_reads_schedules_of_another_isl_context():
    other = isl.Context()
    check_schedule(gemm.program, isl.UnionMap(GEMM_SOURCE_ORDER, context=other))
    reversed_k = isl.UnionMap("{ S0[i, j] -> [i, 0, j, 0]; S1[i, k, j] -> [i, 1, -k, j] }",
                              context=other)
    with pytest.raises(DependenceViolation, match="flow dependence on C"):
        check_schedule(gemm.program, reversed_k)


def test_check_schedule_takes_a_single_isl_map():
    program = shift_left.program
    check_schedule(program, isl.Map("[n] -> { S0[i] -> [i] }"))
    with pytest.raises(DependenceViolation, match="anti dependence on x"):
        check_schedule(program, isl.Map("[n] -> { S0[i] -> [-i] }"))


# --------------------------------------------------------------------------------------------
# Statements without instances (for j in range(0)): isl leaves them out of a schedule's domain
# --------------------------------------------------------------------------------------------


def test_own_schedule_is_legal_with_a_statement_without_instances():
    program = with_empty_loop.program
    assert program.statement("S1").domain.is_empty()
    check_schedule(program, program.schedule)
    check_schedule(program, program.schedule.get_map())
    check_schedule(program, program.schedule, parallel=["i"])
    # a schedule may leave it out, but not a statement that has instances
    check_schedule(program, "[N] -> { S0[i] -> [0, i] }")
    with pytest.raises(ScheduleError, match="does not schedule S0"):
        check_schedule(program, "[N] -> { S1[j] -> [1, j] }")


def test_counterexamples_beyond_a_c_long_are_exact():
    # the violating instances have i = 10**30: described exactly, not "isl failed"
    with pytest.raises(DependenceViolation) as info:
        check_schedule(far_offsets.program, "[N] -> { S0[i] -> [-i] }")
    assert info.value.source == "S0[i=1000000000000000000000000000000]"
    assert info.value.sink == "S0[i=1000000000000000000000000000001]"
    assert info.value.element == "A[0]" and info.value.parameters == {"N": 2}
