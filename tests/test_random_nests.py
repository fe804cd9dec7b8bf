"""Hypothesis-generated affine loop nests run compiled exactly like plain Python.

The generator (tests/loopgen.py) produces random nests with triangular and reverse loops,
steps, min/max/floor-division bounds, affine conditions, local scalars and several statements;
each one is modelled, compiled to C and compared with the Python function on the same inputs,
at its own sizes and at sizes 0, 1 and another random set.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings

import polypipe as pp
from tests.helpers import assert_matches_python
from tests.loopgen import loop_nests


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(nest=loop_nests())
def test_random_nest_matches_python(nest, tmp_path):
    func = nest.load(tmp_path)
    k = pp.kernel(func)
    for dtype in (np.float64, np.float32):
        assert_matches_python(k, nest.make_args(seed=1, dtype=dtype), dtype)
    for values in ({p: 0 for p in nest.params}, {p: 1 for p in nest.params}):
        other = nest.with_params(**values)
        assert_matches_python(k, other.make_args(seed=2))
