"""Locals private to each thread in kernels of isl's schedule (polypipe/optimize.py
``_scheduled``, analysis/scheduled_proof.py ``private``): tried where no value of the local
enters or leaves its nest, kept only where the proof shows every value flows inside one
thread; before, a local was one variable in device memory and serialised its nest."""

from __future__ import annotations

import re

import numpy as np
import pytest

import polypipe as pp
from polypipe import GpuConfig
from polypipe.analysis.contraction import nest_program, top_level_nests
from polypipe.analysis.dependences import dependences
from polypipe.analysis.scheduled_proof import NotPrivate, prove_scheduled
from polypipe.analysis.scheduling import compute_schedule
from polypipe.gpu_scheduled import lower_scheduled
from tests.helpers import assert_optimized_matches_python
from tests.kernels.polybench import KERNELS

SMALL = GpuConfig(block=(32, 32), threads=(8, 8), reduction=8)


def _args(name: str, seed: int = 0):
    return KERNELS[name].make_args(np.random.default_rng(seed), np.float64)


@pytest.mark.parametrize("name, local", [("symm", "temp2"), ("deriche", "ym1"),
                                         ("sobel", "gx"), ("box_blur", "s")])
def test_a_local_of_one_iteration_is_private_and_its_loop_parallel(name, local):
    """Before: symm's ``temp2`` (one variable for the whole nest) made it one thread."""
    opt = pp.optimize(pp.kernel(KERNELS[name].func), SMALL)
    users = [k for k in opt.kernels if local in getattr(k, "private", ())]
    assert users and all(not k.one_thread_reason for k in users)
    assert any("each thread has its own" in str(p) and local in str(p) for p in opt.proofs)
    assert "private per thread: " in opt.describe()
    source = opt.cuda_source(*_args(name))
    # declared in the kernel, per thread (one variable per type where its type varies)
    assert not re.search(rf"static __device__ \w+ lv?\d*_{local} ", source)
    assert re.search(rf"^ +\w+ lv?\d*_{local} = 0;", source, re.MULTILINE)
    assert_optimized_matches_python(opt, KERNELS[name].func, _args(name, 2),
                                    thread_order="reverse")


def broadcast(x, y):
    N = len(x)
    for t in range(3):
        s = x[t] * 2.0
        for i in range(N):
            y[i] = y[i] + s


def test_a_value_read_by_another_launch_stays_shared():
    """``s`` is written by a one-thread kernel and read by the parallel one after it: a
    thread's own copy would be gone. The proof refuses the privatisation and the mapping
    keeps ``s`` in device memory."""
    program = pp.kernel(broadcast).program
    nest = nest_program(program, top_level_nests(program)[0])
    deps = dependences(nest)
    kernels = lower_scheduled(nest, compute_schedule(nest, deps).schedule, SMALL, "b", 0)
    with pytest.raises(NotPrivate, match="a value of s flows from"):
        prove_scheduled(nest, kernels, deps, frozenset({"s"}))
    opt = pp.optimize(pp.kernel(broadcast), SMALL)
    assert all(not k.private for k in opt.kernels)
    assert "static __device__ double l_s = 0;" in opt.cuda_source(np.zeros(5), np.zeros(5))
    rng = np.random.default_rng(1)
    assert_optimized_matches_python(opt, broadcast, [rng.random(7), rng.random(7)])


def carried(x, y, out):
    N = len(x)
    s = 0.0
    for i in range(N):
        y[i] = x[i] * 2.0
    for i in range(N):
        s = s + y[i]
        out[i] = s


def test_a_local_whose_value_enters_the_nest_is_not_tried():
    """The second nest reads the ``s = 0.0`` written before it: not private there, and the
    running sum stays sequential."""
    opt = pp.optimize(pp.kernel(carried), SMALL)
    assert all("s" not in getattr(k, "private", ()) for k in opt.kernels)
    rng = np.random.default_rng(3)
    assert_optimized_matches_python(opt, carried, [rng.random(9), np.zeros(9), np.zeros(9)])


def two_live_ranges(A, B, C):
    M, N = A.shape
    for i in range(M):
        for j in range(N):
            w = A[i, j] * 2.0
            B[i, j] = w + 1.0
            w = A[i, j] - 1.0
            C[i, j] = w * w


def test_two_live_ranges_in_one_iteration_keep_their_order():
    """isl schedules without ``w``'s anti and output dependences only where the two live
    ranges cannot interleave (conditional validity); the proof checks them in each thread."""
    opt = pp.optimize(pp.kernel(two_live_ranges), SMALL)
    assert any("w" in k.private for k in opt.kernels if hasattr(k, "private"))
    rng = np.random.default_rng(5)
    A = rng.random((11, 13))
    assert_optimized_matches_python(opt, two_live_ranges, [A, np.zeros_like(A),
                                                           np.zeros_like(A)],
                                    thread_order="reverse")


def test_without_the_proof_nothing_is_privatised():
    opt = pp.optimize(pp.kernel(KERNELS["symm"].func), SMALL, prove=False)
    assert all(not k.private for k in opt.kernels)


# Held-out nests with locals in other patterns: each must equal Python with the threads of a
# launch in any order, whether or not the local ends up private.

def outer_value_inner_loop(A, x, y):
    """``s`` is set per row and read by every column: private only if the row and its
    columns run in one thread."""
    M, N = A.shape
    for i in range(M):
        s = x[i] * 0.5
        for j in range(N):
            A[i, j] = A[i, j] * s + y[j]


def reused_in_two_loops(A, r, c):
    M, N = A.shape
    for i in range(M):
        t = 0.0
        for j in range(N):
            t += A[i, j]
        r[i] = t
    for j in range(N):
        t = 0.0
        for i in range(M):
            t += A[i, j] * A[i, j]
        c[j] = t


def conditional_local(A, B):
    M, N = A.shape
    for i in range(1, M):
        for j in range(N):
            v = A[i, j] if A[i, j] > 0.5 else A[i - 1, j]
            B[i, j] = v * v - A[i, j]


def local_carried_along_a_row(A, B):
    """``acc`` carries along ``j`` (a running sum per row): the rows are parallel, each row
    sequential in one thread with its own ``acc``."""
    M, N = A.shape
    for i in range(M):
        acc = 0.0
        for j in range(N):
            acc = acc * 0.5 + A[i, j]
            B[i, j] = acc


def local_int_and_float(A, B, k):
    M, N = A.shape
    for i in range(M):
        for j in range(N):
            m = (i * 7 + j) % k
            B[i, j] = A[i, j] * m + 1.0


HELD_OUT = [
    (outer_value_inner_loop, lambda r: [r.random((9, 11)), r.random(9), r.random(11)]),
    (reused_in_two_loops, lambda r: [r.random((9, 11)), np.zeros(9), np.zeros(11)]),
    (conditional_local, lambda r: [r.random((9, 11)), np.zeros((9, 11))]),
    (local_carried_along_a_row, lambda r: [r.random((9, 11)), np.zeros((9, 11))]),
    (local_int_and_float, lambda r: [r.random((9, 11)), np.zeros((9, 11)), 5]),
]


@pytest.mark.parametrize("func, make", HELD_OUT, ids=[f.__name__ for f, _ in HELD_OUT])
@pytest.mark.parametrize("order", ["reverse", "scrambled"])
def test_held_out_locals_equal_python(func, make, order):
    opt = pp.optimize(pp.kernel(func), GpuConfig(block=(8, 8), threads=(4, 2)))
    for seed in (0, 1):
        assert_optimized_matches_python(opt, func, make(np.random.default_rng(seed)),
                                        thread_order=order, seed=seed)


def test_a_running_sum_per_row_is_private_and_rows_are_parallel():
    opt = pp.optimize(pp.kernel(local_carried_along_a_row), SMALL)
    (kernel,) = opt.kernels
    assert kernel.private == ("acc",) and not kernel.one_thread_reason
