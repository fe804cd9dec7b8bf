"""Python semantics of generated arithmetic: each rule of codegen/semantics.py against the
Python function itself, on the CPU backend (and the GPU emulation where a nest maps).

Every comparison is exact (bit for bit, NaN in the same places): the C code computes in the
same types and the same order as NumPy, so there is nothing to tolerate.
"""

import math
import warnings

import numpy as np
import pytest

import polypipe as pp
from polypipe.errors import (KernelRuntimeError, PythonRaisesError,
                             UnboundLocalRaised, ValueErrorRaised, ZeroDivisionRaised)


def run_both(kernel, *args):
    """(compiled arrays, Python arrays, Python's exception or None): the compiled run must
    raise where Python raises, the same exception class, with the arrays in the same state."""
    compiled = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    reference = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    raised = None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            kernel.python(*reference)
        except Exception as exc:  # noqa: BLE001 - what Python raises is the reference
            raised = exc
    if raised is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kernel(*compiled)
    else:
        with pytest.raises(PythonRaisesError) as info, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kernel(*compiled)
        assert isinstance(info.value, type(raised)), (info.value, raised)
    for got, want in zip(compiled, reference):
        if isinstance(want, np.ndarray):
            assert got.dtype == want.dtype
            assert np.array_equal(got, want, equal_nan=True), (got, want)
            assert np.array_equal(np.signbit(got), np.signbit(want))
    return compiled, reference, raised


# --------------------------------------------------------------------------------------------
# integer // and % by zero
# --------------------------------------------------------------------------------------------


@pp.kernel
def numpy_int_division(a, b, q, r):
    N = len(a)
    for i in range(N):
        q[i] = a[i] // b[i]
        r[i] = a[i] % b[i]


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_numpy_int_division_by_zero_gives_zero_and_numpy_warning(dtype):
    low = np.iinfo(dtype).min
    a = np.array([7, -7, 7, -7, 5, low, low, 0], dtype)
    b = np.array([2, 2, -2, -2, 0, -1, 0, 0], dtype)
    q, r = np.zeros(8, dtype), np.zeros(8, dtype)
    with pytest.warns(RuntimeWarning, match="divide by zero"):
        numpy_int_division(a, b, q, r)
    want_q, want_r = np.zeros(8, dtype), np.zeros(8, dtype)
    with np.errstate(all="ignore"):
        numpy_int_division.python(a, b, want_q, want_r)
    assert np.array_equal(q, want_q) and np.array_equal(r, want_r)
    assert q[4] == 0 and q[5] == low        # NumPy's values: 0 and INT_MIN // -1 == INT_MIN


@pp.kernel
def python_int_division(y, N):
    for i in range(N):
        y[i] = 10 // (i - 2) + 10 % (i - 2)


def test_python_int_division_by_zero_raises_where_python_does():
    y = np.zeros(5, np.int64)
    compiled, reference, raised = run_both(python_int_division, y, 5)
    assert isinstance(raised, ZeroDivisionError)
    assert list(compiled[0][:2]) == [10 // -2 + 10 % -2, 10 // -1 + 10 % -1]  # written before
    with pytest.raises(ZeroDivisionRaised, match=r"S0\[i=2\].*ZeroDivisionError"):
        python_int_division(np.zeros(5, np.int64), 5)


# --------------------------------------------------------------------------------------------
# float // and %
# --------------------------------------------------------------------------------------------


@pp.kernel
def float_divmod(x, d, q, r):
    N = len(x)
    for i in range(N):
        q[i] = x[i] // d[i]
        r[i] = x[i] % d[i]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_floor_division_and_modulo_follow_python(dtype):
    values = [1.0, -1.0, 0.0, -0.0, 7.5, -7.5, np.inf, -np.inf, np.nan, 1e-30]
    x = np.array([v for v in values for _ in values], dtype)
    d = np.array([w for _ in values for w in [0.1, -0.1, 2.0, -2.0, 0.0, -0.0, np.inf,
                                              -np.inf, np.nan, 3.0]], dtype)
    run_both(float_divmod, x, d, np.zeros_like(x), np.zeros_like(x))


@pp.kernel
def python_float_floordiv(y, alpha, beta):
    N = len(y)
    for i in range(N):
        y[i] = alpha // beta + alpha % beta


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.1), (-1.0, 0.1), (5.0, -0.0), (-4.0, 2.0)])
def test_python_float_divmod_and_division_by_zero(alpha, beta):
    _, reference, raised = run_both(python_float_floordiv, np.zeros(3), alpha, beta)
    if beta != 0:
        assert raised is None and reference[0][0] == alpha // beta + alpha % beta
    else:
        assert isinstance(raised, ZeroDivisionError)


# --------------------------------------------------------------------------------------------
# **
# --------------------------------------------------------------------------------------------


@pp.kernel
def powers(y, x, n):
    N = len(y)
    for i in range(N):
        y[i] = 2 ** -1 + (i + 1) ** -1 + x[i] ** 2 + n ** 3 + 10 ** 20 * 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_powers_with_negative_and_big_integer_results(dtype):
    _, reference, _ = run_both(powers, np.zeros(4, dtype), np.arange(4, dtype=dtype), 3)
    assert reference[0][0] == dtype(0.5 + 1.0 + 0 + 27 + 1e20)


@pp.kernel
def integer_power(y, x):
    N = len(y)
    for i in range(N):
        y[i] = x[i] ** (i - 1)


def test_numpy_integer_negative_power_raises_value_error():
    _, _, raised = run_both(integer_power, np.zeros(3, np.int64), np.arange(3, dtype=np.int64))
    assert isinstance(raised, ValueError)


@pp.kernel
def python_int_power(y, N):
    for i in range(N):
        y[i] = 2 ** (i - 1)


def test_python_int_power_with_a_negative_run_time_exponent_is_refused_not_wrapped():
    with pytest.raises(KernelRuntimeError, match="float.*exponent is not a constant") as info:
        python_int_power(np.zeros(3), 3)
    assert not isinstance(info.value, PythonRaisesError)   # Python would go on: a refusal


@pp.kernel
def python_int_overflow(y, N):
    for i in range(N):
        y[i] = (i + 3) ** 40 * 1.0


def test_python_int_overflow_is_refused_never_wrapped():
    with pytest.raises(KernelRuntimeError, match="outside int64's range"):
        python_int_overflow(np.zeros(2), 2)


@pp.kernel
def python_float_power(y, base, exponent):
    N = len(y)
    for i in range(N):
        y[i] = base ** exponent


@pytest.mark.parametrize("base,exponent,error", [
    (0.0, -1.0, ZeroDivisionError), (10.0, 400.0, OverflowError), (2.0, 0.5, None),
    (float("nan"), 0.0, None)])
def test_python_float_power_raises_where_python_does(base, exponent, error):
    _, _, raised = run_both(python_float_power, np.zeros(2), base, exponent)
    assert type(raised) is error if error else raised is None


# --------------------------------------------------------------------------------------------
# min, max, selects: NaN and the type of the branch Python takes
# --------------------------------------------------------------------------------------------


@pp.kernel
def minima(y, a, b):
    N = len(y)
    for i in range(N):
        y[i, 0] = np.minimum(a[i], b[i])
        y[i, 1] = np.maximum(a[i], b[i])
        y[i, 2] = min(a[i], b[i])
        y[i, 3] = max(a[i], b[i])
        y[i, 4] = np.fmin(a[i], b[i])
        y[i, 5] = min(a[i], b[i], 0.5)
        y[i, 6] = np.fmax(a[i], b[i])
        y[i, 7] = np.fmax(0, b[i])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_min_max_with_nan_and_signed_zeros(dtype):
    values = [np.nan, 1.0, -1.0, 0.0, -0.0, 0.3, np.inf, -np.inf]
    a = np.array([v for v in values for _ in values], dtype)
    b = np.array([w for _ in values for w in values], dtype)
    run_both(minima, np.zeros((a.size, 8), dtype), a, b)


@pp.kernel
def branch_types(y, x):
    N = len(y)
    for i in range(N):
        y[i] = x[i] if i < 0 else 0.1
        y[i] += (x[i] if i > 1 else 0.1) * 0.3
        y[i] += -(x[i] if i > 2 else -1.0)     # distributed: -(-1.0) is printed as C


def test_select_keeps_the_type_of_the_branch_python_takes():
    _, reference, _ = run_both(branch_types, np.zeros(4), np.full(4, 0.25, np.float32))
    assert reference[0][0] == 0.1 + 0.1 * 0.3 + 1.0    # float64 arithmetic, not float32


# --------------------------------------------------------------------------------------------
# conversions to integers
# --------------------------------------------------------------------------------------------


@pp.kernel
def to_int(y, x):
    N = len(y)
    for i in range(N):
        y[i] = x[i]


@pytest.mark.parametrize("value,error", [
    (2.7, None), (-2.7, None), (np.nan, ValueError), (np.inf, OverflowError),
    (3e9, OverflowError), (-2147483648.5, None)])
def test_store_into_int32_array_checks_like_python(value, error):
    _, _, raised = run_both(to_int, np.zeros(3, np.int32), np.array([1.0, value, 2.0]))
    assert type(raised) is error if error else raised is None


@pp.kernel
def casts(y, x):
    N = len(y)
    for i in range(N):
        y[i] = int(x[i]) + math.floor(x[i]) + np.int32(x[i])


def test_int_of_nan_raises_value_error_and_numpy_cast_wraps():
    _, _, raised = run_both(casts, np.zeros(2, np.int64), np.array([1.5, -2.5]))
    assert raised is None
    with pytest.raises(ValueErrorRaised, match="NaN"):
        casts(np.zeros(2, np.int64), np.array([1.5, np.nan]))


@pp.kernel
def math_domain(y, x):
    N = len(y)
    for i in range(N):
        y[i] = math.sqrt(x[i]) + math.exp(x[i] * 100.0) + np.log(x[i])


@pytest.mark.parametrize("value,error", [(4.0, None), (-1.0, ValueError), (10.0, OverflowError)])
def test_math_functions_raise_where_cpython_does_numpy_functions_do_not(value, error):
    _, _, raised = run_both(math_domain, np.zeros(2), np.array([1.0, value]))
    assert type(raised) is error if error else raised is None


@pp.kernel
def exact_comparison(y, big):
    N = len(y)
    for i in range(N):
        y[i] = 1.0 if big + i > 2.0 ** 53 else 0.0


def test_python_int_and_float_compare_exactly():
    run_both(exact_comparison, np.zeros(3), 2**53)


# --------------------------------------------------------------------------------------------
# locals
# --------------------------------------------------------------------------------------------


@pp.kernel
def local_of_two_types(A, x, alpha, N):
    for i in range(max(N - 3, 0), N):
        s = float(i) + 0.1
        for j in range(1, N):
            s += x[i]
            A[i, j] = 1.0
        A[N - 1 - i, i] = alpha * s


@pytest.mark.parametrize("N", [1, 2, 4])
def test_local_holding_a_python_float_or_a_float32_computes_as_python(N):
    A = np.zeros((N, N), np.float32)
    x = (np.arange(N, dtype=np.float32) + 0.3) / 7
    run_both(local_of_two_types, A, x, 0.1, N)


@pp.kernel
def local_assigned_in_a_loop(y, x):
    N = len(x)
    for i in range(N):
        s = x[i]
    y[0] = s


def test_local_read_before_assignment_raises_for_the_sizes_where_python_raises():
    run_both(local_assigned_in_a_loop, np.zeros(1), np.arange(3.0))
    with pytest.raises(UnboundLocalRaised, match="no earlier instance has assigned"):
        local_assigned_in_a_loop(np.zeros(1), np.zeros(0))


@pp.kernel
def divides_before_the_unbound_read(y, x, d):
    N = len(x)
    for i in range(N):
        y[i] = 1.0 / d             # d == 0: Python raises ZeroDivisionError here first
        if i > 0:
            s = x[i]
    y[0] = s


def test_unbound_local_read_is_a_fault_in_source_order():
    # Fuzz seed 33861: an earlier instance raises something else; the arrays hold what Python
    # wrote before it raised, and the error is the one Python raises first.
    with pytest.raises(ZeroDivisionRaised):
        divides_before_the_unbound_read(np.zeros(3), np.ones(3), 0)
    y = np.full(1, 7.0)
    with pytest.raises(UnboundLocalRaised, match=r"S\d\[\] .*UnboundLocalError"):
        divides_before_the_unbound_read(y, np.array([5.0]), 4)
    assert y[0] == 0.25    # the first statement ran, as in Python


def test_local_never_assigned_before_its_read_is_refused_at_decoration(tmp_path):
    from tests.helpers import load_source

    with pytest.raises(pp.FrontendError, match="before it is assigned"):
        pp.kernel(load_source(tmp_path, "def f(y):\n    y[0] = s\n    s = 1.0\n"))


# --------------------------------------------------------------------------------------------
# guarded accesses
# --------------------------------------------------------------------------------------------


@pp.kernel
def guarded(y, x):
    N = len(x)
    for i in range(N):
        y[i] = x[i - 1] if i > 0 and x[i] > 0.0 else (x[i + 1] if i < N - 1 else -1.0)


def test_guarded_accesses_pass_the_bounds_proof_and_never_run_out_of_bounds():
    run_both(guarded, np.zeros(5), np.array([1.0, -2.0, 3.0, -4.0, 5.0]))
    run_both(guarded, np.zeros(1), np.array([1.0]))


# --------------------------------------------------------------------------------------------
# the GPU path: the same rules in the emulation and in the CUDA text
# --------------------------------------------------------------------------------------------


@pp.kernel
def integer_gemm(C, A, B):
    NI, NJ = C.shape
    NK = A.shape[1]
    for i in range(NI):
        for j in range(NJ):
            for k in range(NK):
                C[i, j] += A[i, k] // B[k, j] + A[i, k] % B[k, j]


SMALL = pp.GpuConfig(block=(8, 8), threads=(2, 2), reduction=4, shared_stages=2,
                     register_stages=2)


def _integer_operands(dtype):
    rng = np.random.default_rng(3)
    A = rng.integers(-9, 9, size=(8, 12)).astype(dtype)
    B = rng.integers(-3, 3, size=(12, 8)).astype(dtype)     # zeros: NumPy gives 0
    return np.zeros((8, 8), dtype), A, B


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_emulated_gpu_kernel_follows_numpy_integer_division(dtype):
    opt = pp.optimize(integer_gemm, SMALL)
    C, A, B = _integer_operands(dtype)
    want = C.copy()
    with np.errstate(all="ignore"):
        integer_gemm.python(want, A, B)
    with pytest.warns(RuntimeWarning, match="divide by zero"):
        opt.run(C, A, B)
    assert np.array_equal(C, want)


def test_emulated_gpu_kernel_refuses_aliased_written_arrays():
    opt = pp.optimize(integer_gemm, SMALL)
    C, A, B = _integer_operands(np.int64)
    with pytest.raises(pp.ArgumentError, match="`C` and `A` share memory"):
        opt.run(C, C, B[:8])           # C is also the left operand (8 x 8)


def test_cuda_text_of_faulting_operations_compiles():
    from polypipe.codegen.nvcc import compile_cubin, find_nvcc

    if find_nvcc() is None:
        pytest.skip("nvcc not installed")
    opt = pp.optimize(integer_gemm, SMALL, prove=False)
    source = opt.cuda_source(*_integer_operands(np.int64))
    assert "pp_np_floordiv_i64" in source and "int64_t *pp_fault" in source
    for arch in ("sm_80", "sm_90"):
        compile_cubin(source, arch)


@pp.kernel
def numpy_of_booleans(y, x):
    N = len(x)
    for i in range(N):
        y[i, 0] = np.maximum(x[i] > 0, x[i] < 1)
        y[i, 1] = np.minimum(x[i] > 0, x[i] < 1)
        y[i, 2] = np.fmax(x[i] > 0, 2.5)
        y[i, 3] = np.float32(x[i] > 0) + np.int32(i > 1)
        y[i, 4] = np.abs(x[i] > 0) + np.floor(x[i] > 1)     # bool + bool is NumPy's `or`
        y[i, 5] = np.arctan2(x[i] > 0, 2.0)


def test_numpy_functions_of_booleans_keep_numpys_types():
    run_both(numpy_of_booleans, np.zeros((4, 6)), np.array([-1.0, 0.5, 2.0, np.nan]))
