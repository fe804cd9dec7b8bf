"""expand_local: scalar expansion of a local, proved with isl and logged (before/after)."""

from __future__ import annotations

import pytest

import polypipe as pp
from polypipe.errors import LegalityError, ScheduleError
from polypipe.transform import expand_local, replay_transforms
from tests.kernels.contractions import CASES


def test_accumulator_becomes_one_element_per_output():
    program = pp.kernel(CASES["gemm_tt_local"].func).program
    after = expand_local(program, "acc")
    array = after.array("acc_x")
    assert array.rank == 2 and not array.is_local and "acc" not in {a.name for a in after.arrays}
    for stmt in after.statements:
        for access in stmt.accesses:
            if access.array == "acc_x":   # indexed by the statement's own (i, j)
                assert access.indices == stmt.iterators[:2]
    assert str(after.schedule) == str(program.schedule)
    assert after.transforms[-1] == "expand_local(local='acc')"
    assert replay_transforms(program, after.transforms).array("acc_x").rank == 2


def test_the_gpu_mapping_logs_the_expansion():
    opt = pp.optimize(pp.kernel(CASES["gemm_tt_local"].func),
                      pp.GpuConfig(block=(16, 16), threads=(4, 4), reduction=4))
    assert "expand_local(local='acc')" in opt.kernels[0].program.transforms


def carried_across_rows(A, B):
    N = A.shape[0]
    for i in range(N):
        if i == 0:
            t = 0.0
        t += A[i]
        B[i] = t


def test_a_value_carried_across_iterations_is_refused_with_both_instances():
    program = pp.kernel(carried_across_rows).program
    with pytest.raises(LegalityError, match=r"S\d\[i=\d+\] reads the `t` that S\d\[i=\d+\] "
                                            r"assigned in another iteration"):
        expand_local(program, "t")


def test_refusals_of_bad_requests():
    program = pp.kernel(CASES["gemm_tt_local"].func).program
    with pytest.raises(ScheduleError, match="'C' is not a local scalar"):
        expand_local(program, "C")
    with pytest.raises(ScheduleError, match="is not a local scalar"):
        expand_local(program, 3)
