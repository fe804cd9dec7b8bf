"""Fast tier of the differential fuzzer: random nests (tests/fuzzgen.py) run as plain Python and
through polypipe must agree.

Every nest runs in a worker subprocess (a segfault or SIGFPE is a crash of that seed, not of
pytest). A nest passes when each backend matches Python, or raises where Python raises, or
refuses it with a PolypipeError (refusals are reported by ``benchmarks/fuzz.py``, not failed
here). A mismatch or a crash fails the test with the seeds and their sources; reproduce one
with ``python benchmarks/fuzz.py --count 1 --seed SEED --verbose``.

The long campaign is ``python benchmarks/fuzz.py --count 300 --seed 1``. Seeds it found that
were fixed go into REGRESSION_SEEDS, which always run (SLOW_REGRESSION_SEEDS with ``-m slow``).
"""

from __future__ import annotations

import numpy as np
import pytest

import polypipe as pp
from tests.fuzzgen import _run_python, generate, run_campaign

FAST_SEEDS = tuple(range(1, 51))
BACKENDS = ("c", "emulate")

# Seeds of fixed bugs (from benchmarks/fuzz.py campaigns): always run, on both backends.
# 1 ... 265: found on 748e2ab (SIGFPE and SIGILL from integer division by zero, Python raising
# where the kernel went on, float //, select branch types, NumPy's int // 0, optimize crashes);
# 5007, 5554: locals whose type changes from instance to instance; 12155: a size passed as a
# NumPy int computes as one; 12346: a constant float32 cannot hold; 14089: np.fmax's tie of
# zeros; 22085: a local read twice in one operation (t + t) while its type varies; 30787:
# isl's dataflow fails on a local under modulo guards; 31457: it takes 34 s on another;
# 33861: Python raises ZeroDivisionError before an unassigned local is read. The seeds name
# nests of this generator: a change to it that changes them must pick new seeds.
REGRESSION_SEEDS: list[int] = [1, 3, 15, 17, 25, 67, 101, 105, 122, 136, 140, 147, 164, 170,
                               175, 183, 193, 204, 236, 265, 5007, 5554, 12155, 12346, 14089,
                               22085, 30787, 33861]
# Seeds that take over a minute each (31457: 79 s on one worker here, most of it isl's
# dataflow): run with ``-m slow``, to keep the default suite within its 20 minutes.
SLOW_REGRESSION_SEEDS: list[int] = [31457]


def _failures(seeds) -> str:
    outcomes = run_campaign(seeds, BACKENDS, workers=2, timeout=120)
    assert [o.seed for o in outcomes] == list(seeds), "the campaign lost some seeds"
    bad = [o for o in outcomes if o.worst in ("mismatch", "crash", "generator_error")]
    if not bad:
        return ""
    counts = {cls: sum(1 for o in bad if o.worst == cls) for cls in ("mismatch", "crash",
                                                                      "generator_error")}
    header = (f"{len(bad)} of {len(outcomes)} fuzz nests fail ({counts}); seeds "
              f"{' '.join(str(o.seed) for o in bad)}")
    return header + "\n\n" + "\n\n".join(o.report() for o in bad)


def test_fuzz_fast_tier():
    message = _failures(FAST_SEEDS)
    assert not message, message


def test_fuzz_regression_seeds():
    if REGRESSION_SEEDS:
        message = _failures(tuple(REGRESSION_SEEDS))
        assert not message, message


@pytest.mark.slow
def test_fuzz_slow_regression_seeds():
    message = _failures(tuple(SLOW_REGRESSION_SEEDS))
    assert not message, message


def test_fuzz_generator_is_deterministic_and_in_the_subset(tmp_path):
    """Same seed, same nest and arguments; every nest is accepted by the front end and its
    Python run keeps every subscript inside its array (checked element by element)."""
    problems = []
    for seed in range(1000, 1150):
        nest, again = generate(seed), generate(seed)
        assert nest.source == again.source, f"seed {seed}: generate() is not deterministic"
        for a, b in zip(nest.make_args(), again.make_args()):
            if isinstance(a, np.ndarray):
                assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), seed
            else:
                assert type(a) is type(b) and (a == b or a != a), seed
        func = nest.load(tmp_path)
        try:
            pp.kernel(func)
        except pp.PolypipeError as exc:
            problems.append(f"seed {seed}: front end refused: {exc}\n{nest.source}")
            continue
        try:
            _run_python(func, nest.make_args())
        except Exception as exc:  # noqa: BLE001 - GeneratorIndexError or a Python time-out
            problems.append(f"seed {seed}: {type(exc).__name__}: {exc}\n{nest.source}")
    assert not problems, "\n\n".join(problems)


def test_fuzz_oracle_classifies():
    """The oracle's verdicts, on stand-in backends (nothing compiled, nothing can crash)."""
    from polypipe.errors import InternalError, ZeroDivisionRaised
    from tests.fuzzgen import _judge, _Runner, compare_arrays

    names = ("x", "n")
    want = (np.array([1.0, np.nan, -0.0]), 3)

    def judge(effect, python_exc=None, tolerant=False):
        def call(x, n):
            if isinstance(effect, BaseException):
                raise effect
            x[:] = effect
        return _judge("c", names, want, python_exc, _Runner((want[0].copy(), 3), call),
                      tolerant, compare_at_raise=True)

    assert judge(want[0])["class"] == "match"
    assert judge(np.array([1.0, np.nan, 0.0]))["class"] == "mismatch"        # -0.0 vs 0.0
    assert judge(np.array([1.0, 2.0, -0.0]))["class"] == "mismatch"          # NaN lost
    assert judge(np.array([1.0 + 1e-15, np.nan, -0.0]), tolerant=True)["class"] == "match"
    assert judge(pp.ArgumentError("no"))["class"] == "refusal"
    assert judge(InternalError("bug"))["class"] == "crash"
    assert judge(ValueError("bug"))["class"] == "crash"
    raised = ZeroDivisionError("division by zero")
    assert judge(want[0], python_exc=raised)["class"] == "mismatch"           # did not raise
    verdict = judge(ZeroDivisionRaised("division by zero"), python_exc=raised)
    assert verdict["class"] == "both_raise" and verdict["agree"] is True
    verdict = judge(pp.ArgumentError("bounds"), python_exc=raised)
    assert verdict["class"] == "both_raise" and verdict["agree"] is False
    ints = (np.array([1, 2], dtype=np.int32),)
    assert compare_arrays(("a",), ints, (np.array([1, 3], dtype=np.int32),), True)
    assert not compare_arrays(("a",), ints, (ints[0].copy(),), False)
