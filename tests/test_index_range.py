"""Interval arithmetic over the isl AST's integer expressions (codegen.index_range): sound for
the int64 check, tight enough to give per-thread loops constant bounds."""

import numpy as np
import pytest

import polypipe as pp
import polypipe.codegen.cuda_printer as cuda_printer
from polypipe.codegen.index_range import _interval, _upper_bound
from tests.kernels.contractions import CASES

OP = __import__("islpy").ast_expr_op_type
I = ("id", "i")


def op(kind, *args):
    return ("op", kind, args)


def test_division_by_a_constant_is_the_quotients_of_the_ends():
    for kind in (OP.pdiv_q, OP.fdiv_q, OP.div):
        assert _interval(op(kind, I, ("int", 64)), {"i": (78, 140)}) == (1, 3)
    # Negative numerators: floor below, ceiling above, so C's truncation is covered too.
    low, high = _interval(op(OP.div, I, ("int", 4)), {"i": (-7, -5)})
    assert low <= int(-7 / 4) and high >= int(-5 / 4) and (low, high) == (-2, -1)
    assert _interval(op(OP.pdiv_r, I, ("int", 8)), {"i": (0, 5)}) == (0, 5)
    assert _interval(op(OP.pdiv_r, I, ("int", 8)), {"i": (0, 100)}) == (0, 7)


@pytest.mark.parametrize("values", [(-9, 9), (0, 1000), (-1000, -1)])
def test_quotient_intervals_contain_every_quotient(values):
    for d in (1, 3, 64):
        for kind, divide in ((OP.fdiv_q, lambda n: n // d), (OP.div, lambda n: int(n / d))):
            low, high = _interval(op(kind, I, ("int", d)), {"i": values})
            assert all(low <= divide(n) <= high for n in range(values[0], values[1] + 1))


def test_upper_bounds_of_loop_conditions():
    env = {"x": (0, 10), "N": (7, 7)}
    le = op(OP.le, ("id", "c"), ("id", "x"))
    assert _upper_bound(le, "c", env) == 10
    assert _upper_bound(op(OP.lt, ("id", "c"), ("int", 4)), "c", env) == 4
    assert _upper_bound(op(OP.ge, ("id", "N"), ("id", "c")), "c", env) == 7
    # A conjunction takes its tightest bound; a disjunction needs one on every side.
    both = op(OP.and_, le, op(OP.le, ("id", "c"), ("int", 5)))
    assert _upper_bound(both, "c", env) == 5
    lower = op(OP.ge, ("id", "c"), ("int", 3))          # a lower bound is no upper bound
    assert _upper_bound(lower, "c", env) is None
    assert _upper_bound(op(OP.or_, le, lower), "c", env) is None
    assert _upper_bound(op(OP.and_, le, lower), "c", env) == 10
    scaled = op(OP.le, op(OP.mul, ("int", 4), ("id", "c")), ("int", 9))
    assert _upper_bound(scaled, "c", env) is None       # not of the form c <= e
    assert _upper_bound(op(OP.le, ("id", "c"), ("id", "unknown")), "c", env) is None


BIG = pp.GpuConfig(block=(128, 128), threads=(16, 16), reduction=16, shared_stages=3,
                   register_stages=2)


@pytest.mark.parametrize("name", ["gemm", "conv2d_s1"])
def test_partial_fragment_loops_get_constant_bounds_and_stay_exact(name, monkeypatch):
    # 100 x 72 against 128 x 128 tiles: each thread's fragment groups have run-time trip
    # counts that depend on its coordinates (loops bounded by e.g. 2 - (c5 + 4*c7 + 78)/64).
    case = CASES[name]
    opt = pp.optimize(pp.kernel(case.func), BIG)
    args = case.make(np.random.default_rng(0), 100, 72, 53, np.float64)
    want = case.expect([a.copy() if isinstance(a, np.ndarray) else a for a in args])
    guarded = opt.cuda_source(*args)
    opt.run(*args)
    for index, expected in want.items():
        assert np.abs(args[index] - expected).max() <= 1e-10 * max(1.0, np.abs(expected).max())
    monkeypatch.setattr(cuda_printer, "MAX_GUARDED_TRIPS", 0)
    assert opt.cuda_source(*args) != guarded   # the interval path printed some loop
