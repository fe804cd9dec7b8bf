"""Memory safety of a call: no argument can make a kernel touch memory outside its arrays or
read data in a format it does not expect, over any sequence of calls (the fast path reuses
checks only for arguments that look exactly like an earlier call's).

Each call's output array is a view into a larger buffer whose guard bands must never change;
each call must either equal the Python function's result or raise ArgumentError, and which one
is decided here independently of polypipe.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import polypipe as pp

GUARD = 8
SENTINEL = 77


@pp.kernel
def scaled(x, y, N):
    for i in range(N):
        y[i] = x[i] * 2.0 + i


class Plain(np.ndarray):
    """A subclass that reads memory like an ndarray: accepted."""


class Remapped(np.ndarray):
    """A subclass whose indexing is its own: refused (compiled code reads memory)."""

    def __getitem__(self, index):
        return super().__getitem__(index)


INT_KINDS = [int, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32, np.uint64]
DTYPES = ["<f8", "<f4", "<i8", "<i4", ">f8", ">i4", "<f2", "<u1"]
LAYOUTS = ["contiguous", "strided", "reversed", "unaligned", "readonly", "plain-subclass",
           "remapped-subclass"]


def make_array(length: int, dtype: str, layout: str, rng) -> tuple[np.ndarray, np.ndarray]:
    """(the argument, the buffer whose guard bands must not change)."""
    buffer = np.full(length * 2 + 2 * GUARD, SENTINEL, dtype)
    if layout == "unaligned":
        raw = np.zeros(length * np.dtype(dtype).itemsize + 1, np.uint8)
        view = np.frombuffer(raw.data, dtype=dtype, count=length, offset=1) if length else \
            np.zeros(0, dtype)
        return view, buffer
    base = buffer[GUARD:GUARD + 2 * length]
    base[:] = rng.integers(0, 5, size=2 * length)
    view = {"strided": base[::2], "reversed": base[:length][::-1]}.get(layout, base[:length])
    if layout == "readonly":
        view.flags.writeable = False
    if layout == "plain-subclass":
        view = view.view(Plain)
    if layout == "remapped-subclass":
        view = view.view(Remapped)
    return view, buffer


def valid_array(array, layout: str, written: bool) -> bool:
    dtype = array.dtype
    if dtype.name not in ("float32", "float64", "int32", "int64", "float16") or not dtype.isnative:
        return False
    if layout in ("strided", "reversed") and array.size > 1:
        return False
    if layout == "unaligned" and array.size and not array.flags.aligned:
        return False
    if layout == "remapped-subclass" or (layout == "readonly" and written):
        return False
    return True


sizes = st.tuples(
    st.sampled_from(INT_KINDS) | st.sampled_from([bool, float]),
    st.integers(-2, 8) | st.sampled_from([2**31, 2**62, 2**63 - 1, 2**63, 2**64, -2**63]))
# Supported kinds drawn more often than the refused ones, so that sequences of valid calls
# (where a stale fast-path entry would do harm) are common.
dtypes = st.sampled_from(DTYPES[:4] * 3 + DTYPES[4:])
layouts = st.sampled_from(["contiguous"] * 6 + ["plain-subclass"] * 2 + LAYOUTS[1:])
lengths = st.sampled_from([0, 1, 4, 4, 4, 6])
arrays = st.tuples(lengths, dtypes, layouts, lengths, dtypes, layouts)
# Mostly the same array kinds call after call with other sizes (the fast path's case), now
# and then other arrays.
calls = st.tuples(arrays, st.lists(st.tuples(sizes, st.none() | st.none() | st.none() | arrays),
                                   min_size=1, max_size=8))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=calls)
def test_any_sequence_of_calls_is_safe(plan):
    rng = np.random.default_rng(0)
    first, steps = plan
    sequence = []
    for size, other in steps:
        first = other or first
        sequence.append(size + first)
    for kind, value, x_len, x_dtype, x_layout, y_len, y_dtype, y_layout in sequence:
        x, x_buffer = make_array(x_len, x_dtype, x_layout, rng)
        y, y_buffer = make_array(y_len, y_dtype, y_layout, rng)
        guards = [b.copy() for b in (x_buffer, y_buffer)]
        try:
            N = kind(value)
        except (OverflowError, ValueError):
            continue                       # NumPy itself cannot hold that value
        is_int = kind not in (bool, float) and -2**63 <= int(N) < 2**63
        in_bounds = is_int and (int(N) <= 0 or int(N) <= min(x_len, y_len))
        valid = (is_int and in_bounds and valid_array(x, x_layout, False)
                 and valid_array(y, y_layout, True))
        expected = y.copy()
        if valid:
            with np.errstate(all="ignore"):
                scaled.python(x, expected, N)
        try:
            scaled(x, y, N)
        except pp.ArgumentError as exc:
            # Sizes near int64's ends may be refused by the loops' int64 check (index_range).
            extreme = is_int and abs(int(N)) >= 2**62 and "too large for the generated" in str(exc)
            assert not valid or extreme, (kind, value, x_len, x_dtype, x_layout, y_len,
                                          y_dtype, y_layout)
        else:
            assert valid, (kind, value, x_len, x_dtype, x_layout, y_len, y_dtype, y_layout)
            assert np.array_equal(np.asarray(y), np.asarray(expected))
        for buffer, guard in zip((x_buffer, y_buffer), guards):
            assert np.array_equal(buffer[:GUARD], guard[:GUARD])
            assert np.array_equal(buffer[-GUARD:], guard[-GUARD:])


def test_growing_numpy_sizes_on_repeated_calls_are_checked_each_time():
    x, y = np.ones(4), np.zeros(4)
    scaled(x, y, np.int64(4))
    for size in (np.int64(5), np.int32(400), np.uint64(2**40)):
        try:
            scaled(x, y, size)
        except pp.ArgumentError as exc:
            assert "outside" in str(exc) or "int64" in str(exc)
        else:
            raise AssertionError(f"size {size!r} beyond the arrays was accepted")
