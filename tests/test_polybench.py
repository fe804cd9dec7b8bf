"""Every PolyBench-style kernel of the corpus is accepted and runs compiled like plain Python."""

import numpy as np
import pytest

import polypipe as pp
from tests.helpers import assert_matches_python
from tests.kernels.polybench import KERNELS

FAMILIES = {case.family for case in KERNELS.values()}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_matches_python(name, dtype):
    case = KERNELS[name]
    k = pp.kernel(case.func)
    args = case.make_args(np.random.default_rng(1), dtype=dtype)
    assert_matches_python(k, args, dtype)


def test_corpus_covers_every_family():
    assert {"linear-algebra", "solver", "stencil", "medley", "datamining", "image",
            "dynamic-programming"} <= FAMILIES


@pytest.mark.parametrize("name", ["gemm", "2mm", "atax", "bicg", "mvt", "syrk", "trmm",
                                  "jacobi_1d", "floyd_warshall", "doitgen"])
def test_kernel_matches_python_on_random_sizes(name):
    """Sizes are parameters: one compiled kernel serves every shape, 0 and 1 included."""
    from polypipe.inputs import random_arguments

    k = pp.kernel(KERNELS[name].func)
    rng = np.random.default_rng(7)
    for trial in range(4):
        low = 0 if trial == 0 else 1
        sizes = {p: int(rng.integers(low, 9)) for p in k.program.parameter_names}
        assert_matches_python(k, random_arguments(k.program, sizes, seed=trial))
