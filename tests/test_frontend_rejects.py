"""Every construct outside the subset is rejected at decoration time, at the right place.

Each function below is plain Python; the line that must be blamed ends with ``# <- here``. The
tests check the error class, a phrase of the message, the file, the line and that the excerpt
shows that line with a caret.
"""

import inspect
import math

import numpy as np
import pytest

import polypipe as pp
from polypipe import FrontendError

# ---------------------------------------------------------------------------------------------
# Offending kernels (module level: polypipe reads their source from this file)
# ---------------------------------------------------------------------------------------------


def while_loop(A):
    N = A.shape[0]
    i = 0
    while i < N:  # <- here
        A[i] = 0.0


def break_statement(A):
    N = A.shape[0]
    for i in range(N):
        break  # <- here


def continue_statement(A):
    N = A.shape[0]
    for i in range(N):
        continue  # <- here


def loop_over_list(A):
    for v in [1, 2, 3]:  # <- here
        A[v] = 0.0


def for_else(A):
    N = A.shape[0]
    for i in range(N):
        A[i] = 0.0
    else:
        A[0] = 1.0  # <- here


def non_constant_step(A, s):
    N = A.shape[0]
    for i in range(0, N, s):  # <- here
        A[i] = 0.0


def zero_step(A):
    N = A.shape[0]
    for i in range(0, N, 0):  # <- here
        A[i] = 0.0


def non_affine_bound(A):
    N = A.shape[0]
    for i in range(N):
        for j in range(i * i):  # <- here
            A[j] = 0.0


def data_dependent_bound(A, B):
    N = A.shape[0]
    for i in range(N):
        for j in range(B[i]):  # <- here
            A[j] = 0.0


def indirect_subscript(A, idx):
    N = A.shape[0]
    for i in range(N):
        A[idx[i]] = 0.0  # <- here


def data_dependent_if(A):
    N = A.shape[0]
    for i in range(N):
        if A[i] > 0:  # <- here
            A[i] = 0.0


def slice_subscript(A):
    N = A.shape[0]
    for i in range(N):
        A[i, :] = 0.0  # <- here


def function_call_statement(A):
    N = A.shape[0]
    for i in range(N):
        print(A[i])  # <- here


def unknown_function(A):
    N = A.shape[0]
    for i in range(N):
        A[i] = round(A[i])  # <- here


def tuple_assignment(A, B):
    N = A.shape[0]
    for i in range(N):
        A[i], B[i] = B[i], A[i]  # <- here


def chained_assignment(A, B):
    N = A.shape[0]
    for i in range(N):
        A[i] = B[i] = 0.0  # <- here


def return_value(A):
    N = A.shape[0]
    s = 0.0
    for i in range(N):
        s += A[i]
    return s  # <- here


def local_array(A):
    N = A.shape[0]
    tmp = np.zeros(N)  # <- here
    for i in range(N):
        A[i] = tmp[i]


def assign_loop_variable(A):
    N = A.shape[0]
    for i in range(N):
        i = 3  # <- here


def loop_variable_after_loop(A):
    N = A.shape[0]
    for i in range(N):
        A[i] = 0.0
    A[i] = 1.0  # <- here


def local_in_bound(A):
    N = A.shape[0]
    m = 3
    for i in range(m):  # <- here
        A[i] = 0.0


def shape_in_loop(A):
    for i in range(3):
        N = A.shape[0]  # <- here
        A[i] = N


def rank_mismatch(A):
    N = A.shape[0]
    for i in range(N):
        A[i] = A[i, 0]  # <- here


def unknown_name(A):
    N = A.shape[0]
    for i in range(N):
        A[i] = undefined_thing  # <- here  # noqa: F821


def with_block(A):
    with open("x"):  # <- here
        A[0] = 1.0


def varargs(*arrays):  # <- here
    pass


def keyword_call(A):
    N = A.shape[0]
    for i in range(N):
        A[i] = max(A[i], 0.0, key=abs)  # <- here


def bitwise_operator(A):
    N = A.shape[0]
    for i in range(N):
        A[i] = A[i] & 1  # <- here


def and_as_value(A, B):
    N = A.shape[0]
    for i in range(N):
        A[i] = A[i] and B[i]  # <- here


def string_constant(A):
    A[0] = "x"  # <- here


def subscript_of_local(A):
    N = A.shape[0]
    t = 0.0  # <- here
    for i in range(N):
        A[i] = t[i]


def assign_argument(A, alpha):
    N = A.shape[0]
    alpha = 2.0  # <- here
    for i in range(N):
        A[i] = alpha


def nested_same_loop_variable(A):
    N = A.shape[0]
    for i in range(N):
        for i in range(N):  # <- here
            A[i] = 0.0


def in_operator_condition(A):
    N = A.shape[0]
    for i in range(N):
        if i in (1, 2):  # <- here
            A[i] = 0.0


def attribute_value(A):
    N = A.shape[0]
    for i in range(N):
        A[i] = A.size  # <- here


def lambda_value(A):
    N = A.shape[0]
    for i in range(N):
        A[i] = (lambda v: v)(A[i])  # <- here


def modulo_by_variable(A):
    N = A.shape[0]
    for i in range(N):
        if i % N == 0:  # <- here
            A[i] = 0.0


def math_function_wrong_arity(A):
    N = A.shape[0]
    for i in range(N):
        A[i] = math.sqrt(A[i], 2.0)  # <- here


def float_in_subscript(A):
    N = A.shape[0]
    for i in range(N):
        A[i * 1.5] = 0.0  # <- here


CASES = [
    (while_loop, "while loop is not supported"),
    (break_statement, "break is not supported"),
    (continue_statement, "continue is not supported"),
    (loop_over_list, "must iterate over `range(...)`"),
    (for_else, "`for ... else` is not supported"),
    (non_constant_step, "step of range() must be an integer constant"),
    (zero_step, "step must not be zero"),
    (non_affine_bound, "product of two non-constant terms is not affine"),
    (data_dependent_bound, "array values and inline shapes cannot appear"),
    (indirect_subscript, "array values and inline shapes cannot appear"),
    (data_dependent_if, "array values and inline shapes cannot appear"),
    (slice_subscript, "slices are not supported"),
    (function_call_statement, "function call as a statement is not supported"),
    (unknown_function, "call of `round` is not supported"),
    (tuple_assignment, "tuple assignment is not supported"),
    (chained_assignment, "chained assignment"),
    (return_value, "cannot return a value"),
    (local_array, "local arrays are not supported"),
    (assign_loop_variable, "loop variable `i` is assigned"),
    (loop_variable_after_loop, "loop variable `i` is used outside its loop"),
    (local_in_bound, "local variable `m` cannot appear in a loop bound"),
    (shape_in_loop, "must be at the top level"),
    (rank_mismatch, "indexed with 2 subscripts here but 1"),
    (unknown_name, "`undefined_thing` is not defined here"),
    (with_block, "with block is not supported"),
    (varargs, "*args is not supported"),
    (keyword_call, "keyword arguments are not supported"),
    (bitwise_operator, "only + - * / // % ** are supported"),
    (and_as_value, "`and`/`or` are only supported inside conditions"),
    (string_constant, "is not a number"),
    (subscript_of_local, "local arrays are not supported"),
    (assign_argument, "argument `alpha` is reassigned"),
    (nested_same_loop_variable, "already the variable of an enclosing loop"),
    (in_operator_condition, "only <, <=, >, >=, == and != are allowed"),
    (attribute_value, "attributes are not supported"),
    (lambda_value, "call of `lambda v: v` is not supported"),
    (modulo_by_variable, "`%` needs an integer constant on the right"),
    (math_function_wrong_arity, "takes 1 argument(s), got 2"),
    (float_in_subscript, "is not an integer"),
]


def _marked_line(func) -> int:
    lines, first = inspect.getsourcelines(func)
    for offset, line in enumerate(lines):
        if "# <- here" in line:
            return first + offset
    raise AssertionError(f"{func.__name__} has no '# <- here' marker")


@pytest.mark.parametrize("func, phrase", CASES, ids=[f.__name__ for f, _ in CASES])
def test_frontend_rejects(func, phrase):
    with pytest.raises(FrontendError) as info:
        pp.kernel(func)
    error = info.value
    assert phrase in error.message, error.message
    assert error.location is not None
    assert error.location.filename == __file__
    assert error.location.line == _marked_line(func), str(error)
    text = str(error)
    assert f"{__file__}:{error.location.line}:" in text
    shown, caret = text.splitlines()[-2:]
    assert shown.strip() and shown.strip() in inspect.getsource(func)
    assert caret.strip() == "^"


def test_frontend_rejects_every_case_once():
    # One test per kind of mistake: no two cases blame the same function twice.
    assert len({f.__name__ for f, _ in CASES}) == len(CASES)


def test_frontend_rejects_interactive_source():
    namespace: dict = {}
    exec("def f(A):\n    A[0] = 1.0\n", namespace)
    with pytest.raises(FrontendError, match="cannot read the source"):
        pp.kernel(namespace["f"])


def test_frontend_rejects_caret_points_at_column():
    with pytest.raises(FrontendError) as info:
        pp.kernel(indirect_subscript)
    shown, caret = str(info.value).splitlines()[-2:]
    # The caret sits under `idx[i]`, the offending subscript inside `A[...]`.
    assert shown[caret.index("^"):].startswith("idx[i]")
