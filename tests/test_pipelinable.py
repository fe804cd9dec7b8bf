"""Pipelinable reads: which reads can be streamed along which loop, with footprints and reuse.

One ``test_pipeline_rejects_<reason>`` per refusal reason (written inside the loop, local
scalar, not inside the loop, loop-invariant), plus the cases where a write inside the loop does
*not* prevent streaming because its values never reach the read.
"""

from __future__ import annotations

import pytest

import polypipe as pp
from polypipe.analysis.dependences import dependences
from polypipe.analysis.pipelinable import (Reason, format_pw_aff, format_table,
                                           pipelinable_reads, pipeline_candidate)
from polypipe.errors import ArgumentError, PolypipeError, ScheduleError


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
def with_empty_loop(A, B):
    N = A.shape[0]
    for i in range(N):
        A[i] = A[i] + 1.0
    for j in range(0):
        B[j] = A[j + 1] * 2.0


@pp.kernel
def jacobi_1d(tsteps, A, B):
    N = len(A)
    for t in range(tsteps):
        for i in range(1, N - 1):
            B[i] = 0.33333 * (A[i - 1] + A[i] + A[i + 1])
        for i in range(1, N - 1):
            A[i] = 0.33333 * (B[i - 1] + B[i] + B[i + 1])


@pp.kernel
def drain(x, out):
    n = len(x)
    for k in range(n):
        out[0] += x[k]
        x[k] = 0.0


@pp.kernel
def row_sums(A, out):
    N, M = A.shape
    for i in range(N):
        s = 0.0
        for j in range(M):
            s += A[i, j]
        out[i] = s


@pp.kernel
def banded(A, x, y):
    N = len(x)
    for i in range(N):
        for j in range(max(0, i - 2), min(N, i + 3)):
            y[i] += A[i, j] * x[j]


def find(candidates, statement, read, loop):
    (match,) = [c for c in candidates
                if (c.statement, c.read, c.loop) == (statement, read, loop)]
    return match


def test_gemm_reads_of_a_and_b_stream_along_k():
    candidates = pipelinable_reads(gemm.program)
    a = find(candidates, "S1", "A[i, k]", "k")
    b = find(candidates, "S1", "B[k, j]", "k")
    assert a.pipelinable and b.pipelinable
    assert a.reason is Reason.PIPELINABLE and b.reason is Reason.PIPELINABLE
    assert a.loop_parallel is False and b.loop_parallel is False     # k is the reduction
    assert a.extents == ("1", "1") and b.extents == ("1", "NJ")
    assert a.footprint_text == "1 x 1" and b.footprint_text == "1 x NJ"
    assert a.reused_across == ("j",) and b.reused_across == ()
    assert "not written inside loop k (no writer in the kernel)" in a.explanation
    assert str(a.footprint) == ("[NI, NJ, NK] -> { S1[i, k] -> A[i, k] : NJ > 0 and "
                                "0 <= i < NI and 0 <= k < NK }")
    sequential = [(c.read, c.loop) for c in candidates if c.pipelinable and not c.loop_parallel]
    assert sequential == [("A[i, k]", "k"), ("B[k, j]", "k")]


def test_pipeline_rejects_source_written_inside_the_loop():
    c = find(pipelinable_reads(gemm.program), "S1", "C[i, j]", "k")
    assert not c.pipelinable and c.reason is Reason.WRITTEN_IN_LOOP
    assert c.explanation.startswith("C is written inside loop k (by S1)")
    assert "S1[i=0, k=0, j=0]" in c.explanation and "S1[i=0, k=1, j=0]" in c.explanation
    assert "writes C[0, 0]" in c.explanation
    outer = find(pipelinable_reads(gemm.program), "S1", "C[i, j]", "i")
    assert outer.reason is Reason.WRITTEN_IN_LOOP and "(by S0, S1)" in outer.explanation


def test_pipeline_rejects_local_scalar():
    c = pipeline_candidate(row_sums.program, "S2", "s", "i")
    assert not c.pipelinable and c.reason is Reason.LOCAL_SCALAR
    assert "s is a local scalar" in c.explanation and c.footprint is None
    assert all(c.array != "s" for c in pipelinable_reads(row_sums.program))
    with_locals = pipelinable_reads(row_sums.program, include_locals=True)
    assert {c.reason for c in with_locals if c.array == "s"} == {Reason.LOCAL_SCALAR}


def test_pipeline_rejects_read_outside_the_loop():
    c = pipeline_candidate(gemm.program, "S0", "C", "k")
    assert not c.pipelinable and c.reason is Reason.NOT_IN_LOOP
    assert c.explanation == "S0 is not inside a loop over k (it runs inside i, j)"
    assert c.loop_parallel is None and c.footprint is None


def test_pipeline_rejects_loop_invariant_read():
    candidates = pipelinable_reads(gemm.program)
    a = find(candidates, "S1", "A[i, k]", "j")
    assert not a.pipelinable and a.reason is Reason.LOOP_INVARIANT
    assert "A[i, k] reads the same 1 element in every iteration of j" in a.explanation
    b = find(candidates, "S1", "B[k, j]", "i")
    assert b.reason is Reason.LOOP_INVARIANT and b.extents == ("NK", "NJ")


def test_refusal_reasons_are_distinct():
    reasons = {
        pipeline_candidate(gemm.program, "S1", "C", "k").reason,
        pipeline_candidate(row_sums.program, "S2", "s", "i").reason,
        pipeline_candidate(gemm.program, "S0", "C", "k").reason,
        pipeline_candidate(gemm.program, "S1", "A", "j").reason,
    }
    assert reasons == set(Reason) - {Reason.PIPELINABLE}


def test_write_after_the_read_does_not_block_streaming():
    """x[k] is overwritten inside k, but only after its own read: no value reaches a read."""
    c = pipeline_candidate(drain.program, "S0", "x[k]", "k")
    assert c.pipelinable, c.explanation
    assert not dependences(drain.program).loop_is_parallel("S0", "k")


def test_values_from_an_earlier_run_of_the_loop_do_not_block_streaming():
    candidates = pipelinable_reads(jacobi_1d.program)
    inner = find(candidates, "S0", "A[(i) - (1)]", "i")
    assert inner.pipelinable, inner.explanation     # A is written in the *other* i loop
    outer = find(candidates, "S0", "A[(i) - (1)]", "t")
    assert outer.reason is Reason.WRITTEN_IN_LOOP and "(by S1)" in outer.explanation
    assert outer.extents == ("-2 + N",)


def test_footprints_of_a_band_use_general_sizes():
    candidates = pipelinable_reads(banded.program)
    row = find(candidates, "S0", "A[i, j]", "i")
    assert row.pipelinable and row.extents == ("1", "5")
    vector = find(candidates, "S0", "x[j]", "i")
    assert vector.pipelinable and vector.extents == ("5",)    # a sliding window, not invariant
    y = find(candidates, "S0", "y[i]", "j")
    assert y.reason is Reason.WRITTEN_IN_LOOP


def test_exact_piecewise_footprint_is_kept():
    candidates = pipelinable_reads(banded.program)
    row = find(candidates, "S0", "A[i, j]", "i")
    assert len(row.extent_values) == 2
    exact = format_pw_aff(row.extent_values[1], general=False)
    assert "5 if N >= 5" in exact and "N if" in exact, exact


def test_table_has_one_row_per_candidate():
    candidates = pipelinable_reads(gemm.program)
    table = format_table(candidates).splitlines()
    assert table[0].split() == ["stmt", "line", "read", "loop", "kind", "per", "iteration",
                                "reused", "across", "verdict"]
    assert len(table) == 1 + len(candidates) == 12
    cells = {(line.split()[2] + line.split()[3], line.split()[4]): line for line in table[1:]
             if line.split()[0] == "S1"}
    row = cells[("B[k,j]", "k")]
    assert "sequential" in row and "1 x NJ" in row and row.endswith("pipelinable")
    refused = cells[("C[i,j]", "k")]
    assert "no (written in loop): C is written inside loop k" in refused


def test_candidate_queries_reject_unknown_names():
    with pytest.raises(ScheduleError, match="no loop over 'q'"):
        pipeline_candidate(gemm.program, "S1", "A", "q")
    with pytest.raises(PolypipeError, match="no read 'D'"):
        pipeline_candidate(gemm.program, "S1", "D", "k")
    with pytest.raises(PolypipeError, match="no statement 'S5'"):
        pipeline_candidate(gemm.program, "S5", "A", "k")
    with pytest.raises(PolypipeError, match="reads A more than once"):
        pipeline_candidate(jacobi_1d.program, "S0", "A", "i")


def test_every_corpus_kernel_is_analysed():
    from tests.kernels.polybench import KERNELS

    for case in KERNELS.values():
        program = pp.build_program(case.func)
        for candidate in pipelinable_reads(program):
            assert candidate.explanation
            assert candidate.pipelinable == (candidate.reason is Reason.PIPELINABLE)


# --------------------------------------------------------------------------------------------
# Arguments: kernels accepted as programs, everything else refused clearly
# --------------------------------------------------------------------------------------------


def test_pipelinable_reads_accepts_a_kernel():
    from_kernel = [(c.statement, c.read, c.loop, c.reason) for c in pipelinable_reads(gemm)]
    assert from_kernel == [(c.statement, c.read, c.loop, c.reason)
                           for c in pipelinable_reads(gemm.program)]
    assert pipeline_candidate(gemm, "S1", "A", "k").reason is Reason.PIPELINABLE


@pytest.mark.parametrize("program", [None, "gemm", 7, gemm.python],
                         ids=["none", "string", "int", "plain-function"])
def test_pipelinable_reads_rejects_a_non_program(program):
    with pytest.raises(ArgumentError, match=r"pipelinable_reads\(\) takes a @polypipe.kernel "
                                            r"function or its program"):
        pipelinable_reads(program)
    with pytest.raises(ArgumentError, match=r"pipeline_candidate\(\) takes a @polypipe.kernel"):
        pipeline_candidate(program, "S1", "A", "k")


def test_pipelinable_reads_rejects_bad_options():
    with pytest.raises(ArgumentError, match=r"include_locals must be True or False, got None"):
        pipelinable_reads(gemm.program, include_locals=None)
    with pytest.raises(ArgumentError, match=r"deps must be the Dependences that "
                                            r"polypipe.dependences\(\) returns, not str"):
        pipelinable_reads(gemm.program, deps="x")
    with pytest.raises(ScheduleError, match=r"deps were computed for jacobi_1d"):
        pipeline_candidate(gemm.program, "S1", "A", "k", deps=dependences(jacobi_1d.program))


@pytest.mark.parametrize("statement, read, loop, message", [
    (["S1"], "A", "k", r"statement must be a name \(a non-empty string\), got \['S1'\]"),
    ("S1", "A", None, r"the loop variable must be a name \(a non-empty string\), got None"),
    ("S1", None, "k", r"read must be an index into S1's reads or an array name"),
    ("S1", 2.0, "k", r"read must be an index into S1's reads"),
    ("S1", 99, "k", r"S1 \(.*\) has no read 99 \(it reads C\[i, j\], A\[i, k\], B\[k, j\]\)"),
], ids=["statement-list", "loop-none", "read-none", "read-float", "read-out-of-range"])
def test_pipeline_candidate_rejects_malformed_requests(statement, read, loop, message):
    with pytest.raises(ScheduleError, match=message):
        pipeline_candidate(gemm.program, statement, read, loop)


def test_pipeline_candidate_takes_numpy_read_indices():
    import numpy as np

    assert pipeline_candidate(gemm.program, "S1", np.int64(1), "k").read == "A[i, k]"


def test_pipeline_candidate_rejects_a_statement_without_instances():
    program = with_empty_loop.program
    assert [c.statement for c in pipelinable_reads(program)] == ["S0"]
    with pytest.raises(ScheduleError, match=r"S1 \(line \d+\) never runs"):
        pipeline_candidate(program, "S1", "A", "j")


@pytest.mark.parametrize("candidates, message", [
    (None, r"format_table\(\) takes the list pipelinable_reads\(\) returns, not None"),
    ("S1", r"format_table\(\) takes the list pipelinable_reads\(\) returns, not str"),
    ([1], r"format_table\(\) takes PipelineCandidate objects .*, got int"),
], ids=["none", "string", "list-of-ints"])
def test_format_table_rejects_what_is_not_candidates(candidates, message):
    with pytest.raises(ArgumentError, match=message):
        format_table(candidates)
