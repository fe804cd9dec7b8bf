"""Arguments are checked against the model before anything runs; mistakes get clear errors."""

import numpy as np
import pytest

import polypipe as pp
from polypipe import ArgumentError, CodegenError
from tests.helpers import assert_matches_python


@pp.kernel
def shift(x, y):
    N = len(y)
    for i in range(N):
        y[i] = x[i + 1]


@pp.kernel
def scaled(alpha, n, x):
    for i in range(n):
        x[i] *= alpha


@pp.kernel
def mixed_types(x, y, k):
    N = len(x)
    for i in range(N):
        y[i] = x[i] // 3 + x[i] % 4 + k - i / 2


def test_runtime_rejects_out_of_bounds_access_with_instance():
    x, y = np.zeros(5), np.zeros(5)
    with pytest.raises(ArgumentError) as info:
        shift(x, y)
    message = str(info.value)
    assert "S0[i=4]" in message and "reads x[5]" in message and "(5,)" in message
    assert info.value.location is not None and "y[i] = x[i + 1]" in message


def test_runtime_accepts_exact_fit():
    x, y = np.arange(6.0), np.zeros(5)
    shift(x, y)
    assert np.array_equal(y, np.arange(1.0, 6.0))


def test_runtime_rejects_int_parameter_too_large():
    with pytest.raises(ArgumentError, match=r"S0\[i=3\].* x\[3\], outside x.s shape \(3,\)"):
        scaled(2.0, 4, np.ones(3))


def test_runtime_rejects_wrong_dtype():
    with pytest.raises(ArgumentError, match="dtype complex128"):
        shift(np.zeros(6, dtype=complex), np.zeros(5, dtype=complex))


def test_runtime_rejects_wrong_rank():
    with pytest.raises(ArgumentError, match="must have 1 dimension"):
        shift(np.zeros((6, 2)), np.zeros(5))


def test_runtime_rejects_non_contiguous():
    with pytest.raises(ArgumentError, match="not C-contiguous"):
        shift(np.zeros(12)[::2], np.zeros(5))


def test_runtime_rejects_read_only_output():
    y = np.zeros(5)
    y.flags.writeable = False
    with pytest.raises(ArgumentError, match="read-only"):
        shift(np.zeros(6), y)


def test_runtime_rejects_wrong_argument_count():
    with pytest.raises(ArgumentError, match="takes 2 arguments"):
        shift(np.zeros(6))


def test_runtime_rejects_non_array():
    with pytest.raises(ArgumentError, match="must be a NumPy array"):
        shift([0.0] * 6, np.zeros(5))


def test_runtime_rejects_float_size():
    with pytest.raises(ArgumentError, match="must be an int"):
        scaled(2.0, 3.0, np.ones(3))


def test_runtime_rejects_unknown_backend():
    with pytest.raises(pp.PolypipeError, match="unknown backend"):
        shift(np.zeros(6), np.zeros(5), backend="fpga")


def test_runtime_rejects_missing_compiler(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "definitely-not-a-compiler")
    monkeypatch.setenv("POLYPIPE_CACHE_DIR", str(tmp_path))
    fresh = pp.kernel(shift.python)
    with pytest.raises(CodegenError, match="no C compiler found"):
        fresh(np.zeros(6), np.zeros(5))


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64"])
def test_runtime_integer_and_float_semantics_follow_python(dtype):
    """Floor division, modulo of negatives, true division: NumPy's rules, exactly."""
    x = np.arange(-7, 9).astype(dtype)
    for k in (3, -2):
        assert_matches_python(mixed_types, [x, np.zeros(16, dtype=dtype), k], dtype)


def test_runtime_scalar_types_follow_numpy():
    x32 = np.linspace(0.1, 1.0, 7, dtype=np.float32)
    # A Python float adapts to float32; a NumPy float64 scalar forces float64 arithmetic.
    for alpha in (0.1, np.float64(0.1), np.float32(0.1)):
        assert_matches_python(scaled, [alpha, 7, x32.copy()], np.float32)


def test_runtime_repeated_calls_reuse_the_executable():
    x, y = np.arange(6.0), np.zeros(5)
    shift(x, y)
    cached = dict(shift._seen)
    shift(x + 1, y)
    assert shift._seen == cached and np.array_equal(y, np.arange(2.0, 7.0))
    shift(np.arange(8.0), np.zeros(7))  # new sizes: checked again, same executable
    assert len(shift._executables) == 1
