"""float16 and bfloat16 arrays on the CPU backend, bit for bit against the Python function.

Every case runs the same statement on NumPy (float16) or ml_dtypes (bfloat16) arrays and on
the compiled kernel, over values where rounding is hardest: midpoints, subnormals, values near
overflow, infinities, NaN, signed zeros. The generated code computes in float and rounds
after every operation (codegen.semantics), and converts float64 and int64 values with one
rounding; the comparison is exact, NaN in the same places and signs of zeros included.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import polypipe as pp
from polypipe.errors import ArgumentError, PythonRaisesError

from .helpers import load_source

ml_dtypes = pytest.importorskip("ml_dtypes")

DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
N = 512

# (statement, dtype of o: "h" for the 16-bit type under test, else a NumPy dtype name)
CASES = [
    ("o[i] = a[i] + b[i]", "h"),
    ("o[i] = a[i] - b[i]", "h"),
    ("o[i] = a[i] * b[i]", "h"),
    ("o[i] = a[i] / b[i]", "h"),
    ("o[i] = a[i] // b[i]", "h"),
    ("o[i] = a[i] % b[i]", "h"),
    ("o[i] = a[i] ** 2", "h"),
    ("o[i] = a[i] * 0.1 + 1", "h"),
    ("o[i] = 2.5 - a[i] / 3", "h"),
    ("o[i] = -a[i]", "h"),
    ("o[i] = a[i] + x[i]", "float32"),
    ("o[i] = a[i] * n[i]", "float64"),
    ("o[i] = np.float32(a[i]) * b[i]", "float32"),
    ("o[i] = np.sqrt(a[i])", "h"),
    ("o[i] = np.abs(a[i]) + abs(b[i])", "h"),
    ("o[i] = np.floor(a[i]) + np.square(b[i])", "h"),
    ("o[i] = np.minimum(a[i], b[i]) - np.maximum(a[i], b[i])", "h"),
    ("o[i] = min(a[i], b[i])", "h"),
    ("o[i] = a[i] if a[i] > b[i] else b[i]", "h"),
    ("o[i] = a[i] if a[i] < 0.1 else 0.1", "h"),
    ("o[i] = a[i] == 0.1", "int32"),
    ("o[i] = x[i]", "h"),
    ("o[i] = s", "h"),
    ("o[i] = n[i]", "h"),
    ("o[i] = i * 1000003 - 7", "h"),
    ("o[i] = float(a[i]) * 1.0000001", "h"),
    ("o[i] = x[i] * 1.0000001", "h"),
    ("o[i] = y[i]", "h"),
    ("o[i] = m[i]", "h"),
    ("o[i] = a[i] + y[i]", "float64"),
    ("o[i] = a[i]", "h"),
    ("o[i] = a[i]", "float64"),
    ("t = a[i] * b[i]\n        o[i] = t * t + a[i]", "h"),
    ("o[i] += a[i] * b[i]", "h"),
    ("o[i] += a[i] * b[i]", "float32"),
    ("o[i] = int(a[i]) if a[i] == a[i] and abs(a[i]) < 1e9 else 0", "int64"),
]


def _values(dtype, seed: int):
    """Values of the 16-bit format under test where rounding is hardest (its bits)."""
    rng = np.random.default_rng(seed)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.1, 3.0, 65504.0,
                        -65504.0, 6e-8, 1e-5, 1e30, -1e30, 1e-38, 3e38], dtype=np.float64)
    with np.errstate(all="ignore"):
        special = special.astype(dtype)
        bits = rng.integers(0, 1 << 16, N, dtype=np.uint16).view(dtype)
        scaled = (rng.standard_normal(N) * np.exp2(rng.integers(-12, 12, N))).astype(dtype)
    chosen = np.where(rng.random(N) < 0.5, bits, scaled)
    chosen[:len(special)] = special
    return chosen


def _arguments(format_name: str, out: str, seed: int = 0):
    dtype = DTYPES[format_name]
    a, b = _values(dtype, seed), _values(dtype, seed + 1)[::-1].copy()
    rng = np.random.default_rng(seed + 2)
    x = (rng.standard_normal(N) * np.exp2(rng.integers(-30, 30, N))).astype(np.float32)
    x[:4] = [np.float32(1 + 2**-11 + 2**-20), np.float32(1 + 2**-8 + 2**-20), 65520.0, -0.0]
    n = rng.integers(-70000, 70000, N).astype(np.int32)
    y, m = _midpoints(dtype, rng)
    o = np.zeros(N, dtype=dtype if out == "h" else np.dtype(out))
    if out != "int32" and out != "int64":
        o[:] = a[::-1]
    return [a, b, x, y, n, m, o, 0.1]


def _midpoints(dtype, rng):
    """float64 and int64 values a hair above or below the midpoint of two neighbouring values
    of the format: rounding them through float32 first rounds twice, wrongly."""
    with np.errstate(all="ignore"):
        low = rng.integers(0, 0x7c00 if dtype == np.float16 else 0x7f80, N).astype(np.uint16)
        below, above = low.view(dtype).astype(np.float64), (low + 1).view(dtype).astype(np.float64)
    middle = (below + above) / 2
    hair = np.where(rng.random(N) < 0.5, 1 + 2.0**-40, 1 - 2.0**-40)
    y = middle * hair * np.where(rng.random(N) < 0.5, 1, -1)
    # int64 midpoints 2**top + (2 j + 1) ulp / 2, and one either side (beyond 2**53 those
    # are no doubles: int64 -> double -> bfloat16 rounds twice).
    top, ulp = (11, 2) if dtype == np.float16 else (60, 2**53)
    m = np.array([2**top + (2 * int(j) + 1) * ulp // 2 for j in rng.integers(0, 2**7, N)],
                 dtype=np.int64) + rng.integers(-1, 2, N)
    m[::3] = rng.integers(-2**62, 2**62, len(m[::3]))
    return y, m


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    """Bit for bit, except that any NaN equals any NaN (NumPy's NaN payloads vary)."""
    if got.dtype != want.dtype:
        return False
    with np.errstate(all="ignore"):
        wide_got, wide_want = got.astype(np.float64), want.astype(np.float64)
    nan = np.isnan(wide_want)
    if not np.array_equal(np.isnan(wide_got), nan):
        return False
    return np.array_equal(got[~nan].view(np.uint8), want[~nan].view(np.uint8)) if \
        got.dtype.itemsize > 1 else np.array_equal(got[~nan], want[~nan])


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    directory = tmp_path_factory.mktemp("half")
    made = {}
    for index, (body, _) in enumerate(CASES):
        source = (f"def f(a, b, x, y, n, m, o, s):\n    N = len(a)\n    for i in range(N):\n"
                  f"        {body}\n")
        made[index] = pp.kernel(load_source(directory, source))
    return made


def _run(kernel, args):
    compiled = [v.copy() if isinstance(v, np.ndarray) else v for v in args]
    reference = [v.copy() if isinstance(v, np.ndarray) else v for v in args]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        kernel.python(*reference)
        kernel(*compiled)
    return compiled, reference


@pytest.mark.parametrize("format_name", sorted(DTYPES))
@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[0].split("\n")[0] + "->" + c[1]
                                                          for c in CASES])
def test_statement_matches_numpy_bit_for_bit(kernels, format_name, case):
    compiled, reference = _run(kernels[case], _arguments(format_name, CASES[case][1]))
    for got, want in zip(compiled[:7], reference[:7]):
        assert _same(got, want), (CASES[case], got[:20], want[:20])


def test_int_conversion_faults_where_python_raises(tmp_path):
    source = "def f(a, o):\n    N = len(a)\n    for i in range(N):\n        o[i] = int(a[i])\n"
    kernel = pp.kernel(load_source(tmp_path, source))
    a = np.array([1.5, -2.0, np.inf], dtype=np.float16)
    o = np.zeros(3, dtype=np.int64)
    with pytest.raises(PythonRaisesError, match="infinity"):
        kernel(a, o)
    assert list(o[:2]) == [1, -2]


def test_sixteen_bit_scalars_are_refused_with_the_supported_types(tmp_path):
    source = "def f(a, s):\n    N = len(a)\n    for i in range(N):\n        a[i] = a[i] * s\n"
    kernel = pp.kernel(load_source(tmp_path, source))
    with pytest.raises(ArgumentError, match="float16"):
        kernel(np.ones(4, np.float16), np.float16(2))
