"""Hostile inputs: every one gets the plain Python result or a clear ``PolypipeError``.

polypipe's promise, checked case by case below: for every input, either the result the plain
Python function gives, or an error that is a :class:`polypipe.PolypipeError` subclass with a
non-empty message and no traceback in it -- never a raw Python / isl / compiler exception,
never an interpreter crash, never a silently wrong result. ``InternalError`` (a polypipe bug)
counts as a failure. On the command line bad input prints ``polypipe: error: ...`` on stderr
and returns 2 (argparse's own usage errors, ``SystemExit(2)``, are accepted too).

Every case runs in a forked child process (see :func:`isolated`), so a segfault, an abort, a
hang or a runaway allocation is reported as that case's failure (``CRASH``, ``HANG``) while the
rest of the file keeps running. Failure messages start with a class tag:

``RAW``            a non-PolypipeError exception escaped
``INTERNAL``       polypipe.errors.InternalError (a polypipe bug)
``UNCLEAR``        a PolypipeError with an empty message or a traceback in it
``MISMATCH``       polypipe ran but an array differs from the Python result
``NO-ERROR``       Python raises on this input, polypipe ran without a word
``REFUSED``        an input that is clearly supported was refused (with a clear error)
``RETURN``         the Python function returns a value the kernel does not return
``PARTIAL``        a PythonRaisesError left the arrays unlike Python's at its raise
``CRASH``/``HANG`` the child died on a signal / ran past its time limit
``CLI``            the command line returned or printed the wrong thing
"""

from __future__ import annotations

import decimal
import fractions
import functools
import importlib.util
import os
import pickle
import select
import signal
import sys
import textwrap
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest

import polypipe as pp
from polypipe import GpuConfig, GpuTarget, PolypipeError
from polypipe.errors import InternalError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

CASE_TIMEOUT = 150          # seconds per case before it counts as a HANG
MEMORY_LIMIT = 8 << 30      # address-space limit of each case: a huge allocation fails fast


# =============================================================================================
# Isolation: each case in a forked child
# =============================================================================================


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, (AssertionError, pytest.fail.Exception)):
        return text[:3000]
    return f"RAW {type(exc).__name__} escaped the test: {text.splitlines()[0] if text else ''}"[:600]


def isolated(fn):
    """Run the test body in a forked child; report crashes, hangs and failures."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if os.environ.get("HOSTILE_NO_FORK"):  # debugging: run in the pytest process
            return fn(*args, **kwargs)
        sys.stdout.flush()
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            try:
                os.close(read_end)
                try:
                    import resource

                    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
                except Exception:
                    pass
                result = ("pass", "")
                try:
                    fn(*args, **kwargs)
                except pytest.skip.Exception as exc:
                    result = ("skip", str(exc))
                except BaseException as exc:  # noqa: BLE001 - everything goes to the parent
                    result = ("fail", _describe(exc))
                data = pickle.dumps(result)
                with os.fdopen(write_end, "wb") as pipe:
                    pipe.write(data)
            finally:
                os._exit(0)
        os.close(write_end)
        chunks = []
        deadline = time.monotonic() + CASE_TIMEOUT
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    pytest.fail(f"HANG: no result after {CASE_TIMEOUT} s", pytrace=False)
                ready, _, _ = select.select([read_end], [], [], left)
                if not ready:
                    continue
                chunk = os.read(read_end, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(read_end)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            pytest.fail(f"CRASH: the interpreter died on {signal.Signals(sig).name}",
                        pytrace=False)
        if not chunks:
            pytest.fail(f"CRASH: the case exited without a result (status {status})",
                        pytrace=False)
        kind, message = pickle.loads(b"".join(chunks))
        if kind == "fail":
            pytest.fail(message, pytrace=False)
        if kind == "skip":
            pytest.skip(message)

    return wrapper


# =============================================================================================
# Checking the promise
# =============================================================================================


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else "")[:300]


def assert_clear(exc: BaseException, where: str) -> None:
    """``exc`` must be a PolypipeError with a message and no traceback."""
    if isinstance(exc, InternalError):
        pytest.fail(f"INTERNAL at {where}: {first_line(exc)}", pytrace=False)
    if not isinstance(exc, PolypipeError):
        pytest.fail(f"RAW {type(exc).__module__}.{type(exc).__name__} at {where}: "
                    f"{first_line(exc)}", pytrace=False)
    message = str(exc)
    if not message.strip() or "Traceback" in message:
        pytest.fail(f"UNCLEAR {type(exc).__name__} at {where}: {message[:300]!r}",
                    pytrace=False)


def _tolerance(dtype: np.dtype) -> float:
    return 1e-4 if dtype.kind in "fc" and dtype.itemsize <= (4 if dtype.kind == "f" else 8) \
        else 1e-9


def same_values(got, want) -> bool:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return False
    if want.dtype.kind in "fc":
        tol = _tolerance(want.dtype)
        with np.errstate(all="ignore"):
            return bool(np.allclose(got, want, rtol=tol, atol=tol * 1e-3, equal_nan=True))
    if want.dtype.kind == "O":
        return all(a == b or (a != a and b != b) for a, b in zip(got.ravel(), want.ravel()))
    return bool(np.array_equal(got, want))


def _arrays_in(args, kwargs) -> list:
    return [a for a in list(args) + list(kwargs.values()) if isinstance(a, np.ndarray)]


def run_python(func, args, kwargs):
    """(return value, exception) of the plain Python function."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return func(*args, **kwargs), None
        except Exception as exc:  # noqa: BLE001 - the reference may raise anything
            return None, exc


def check_against_python(run_kernel, python, make, *, must_match=False, observe=None,
                         where="call"):
    """Run ``python`` and ``run_kernel`` on equal fresh inputs from ``make()``.

    ``make()`` returns ``args`` or ``(args, kwargs)``; ``observe(args, kwargs)`` picks the
    arrays to compare (default: every array argument). Returns True when the kernel ran.
    """
    def fresh():
        made = make()
        if isinstance(made, tuple) and len(made) == 2 and isinstance(made[1], dict) \
                and isinstance(made[0], (tuple, list)):
            return tuple(made[0]), dict(made[1])
        return tuple(made), {}

    ref_args, ref_kwargs = fresh()
    ref_value, py_exc = run_python(python, ref_args, ref_kwargs)
    got_args, got_kwargs = fresh()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = run_kernel(*got_args, **got_kwargs)
    except Exception as exc:  # noqa: BLE001
        assert_clear(exc, where)
        if must_match and py_exc is None:
            pytest.fail(f"REFUSED a supported {where}: {type(exc).__name__}: {first_line(exc)}",
                        pytrace=False)
        if py_exc is not None and isinstance(exc, _python_raises()):
            if not isinstance(py_exc, exc.python_type):
                pytest.fail(f"PARTIAL: polypipe says Python raises {exc.python_type.__name__}, "
                            f"Python raised {type(py_exc).__name__}: {first_line(py_exc)}",
                            pytrace=False)
            pick = observe or _arrays_in
            for index, (g, w) in enumerate(zip(pick(got_args, got_kwargs),
                                               pick(ref_args, ref_kwargs))):
                if not same_values(g, w):
                    pytest.fail(f"PARTIAL: after {type(exc).__name__} array #{index} differs "
                                f"from Python's state at its {type(py_exc).__name__}",
                                pytrace=False)
        return False
    if py_exc is not None:
        pytest.fail(f"NO-ERROR: Python raises {type(py_exc).__name__}: {first_line(py_exc)}; "
                    "polypipe ran without an error", pytrace=False)
    if ref_value is not None and value is None:
        pytest.fail(f"RETURN: the Python function returns {ref_value!r:.80}, the kernel None",
                    pytrace=False)
    pick = observe or _arrays_in
    for index, (g, w) in enumerate(zip(pick(got_args, got_kwargs), pick(ref_args, ref_kwargs))):
        if not same_values(g, w):
            gv, wv = np.asarray(g).ravel()[:6], np.asarray(w).ravel()[:6]
            pytest.fail(f"MISMATCH: array #{index} differs from Python: got {gv!r}, "
                        f"want {wv!r}", pytrace=False)
    return True


def _python_raises():
    from polypipe.errors import PythonRaisesError

    return PythonRaisesError


def expect_clear_error(call, where="call"):
    """``call()`` must raise a clear PolypipeError."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001
        assert_clear(exc, where)
        return exc
    pytest.fail(f"NO-ERROR: {where} returned normally", pytrace=False)


def clear_or_ok(call, where="call"):
    """``call()`` may succeed; if it raises, the error must be clear. Returns (value, exc)."""
    try:
        return call(), None
    except Exception as exc:  # noqa: BLE001
        assert_clear(exc, where)
        return None, exc


# =============================================================================================
# Kernels from real files
# =============================================================================================

HEADER = "import math\nimport numpy as np\n"


def load_module(directory: Path, source: str):
    directory.mkdir(parents=True, exist_ok=True)
    name = f"hostile_{uuid.uuid4().hex}"
    path = directory / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_function(directory: Path, source: str, prelude: str = "", name: str = "f"):
    text = HEADER + textwrap.dedent(prelude) + "\n\n" + textwrap.dedent(source)
    return getattr(load_module(directory, text), name)


def check_kernel_source(directory, source, make, prelude="", must_match=False, observe=None):
    func = load_function(directory, source, prelude)
    try:
        k = pp.kernel(func)
    except Exception as exc:  # noqa: BLE001
        assert_clear(exc, "decoration")
        if must_match:
            pytest.fail(f"REFUSED at decoration: {type(exc).__name__}: {first_line(exc)}",
                        pytrace=False)
        return
    if make is None:
        return
    check_against_python(k, func, make, must_match=must_match, observe=observe)


# ---- argument makers ------------------------------------------------------------------------


def F8():
    return (np.linspace(-1.0, 2.5, 8),)


def FPOS():
    return (np.linspace(0.5, 4.0, 8),)


def FNAN():
    return (np.array([1.0, np.nan, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]),)


def FINF():
    return (np.array([1.0, np.inf, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]),)


def I8():
    return (np.arange(-3, 5, dtype=np.int64),)


def I32BIG():
    return (np.array([2 ** 30 + 1, 7, -2 ** 31, 5, 2 ** 31 - 1, 0, 1, 2], dtype=np.int32),)


def F8F8():
    return (np.linspace(-1.0, 2.5, 8), np.zeros(8))


def F8N():
    return (np.linspace(-1.0, 2.5, 8), 5)


def F8S():
    return (np.linspace(-1.0, 2.5, 8), 1.5)


def M34():
    return (np.arange(12.0).reshape(3, 4),)


def IDX():
    return (np.linspace(0.0, 7.0, 8), np.array([3, 1, 4, 1, 5, 2, 6, 0], dtype=np.int64))


def F8STEP0():
    return (np.zeros(8), 0)


def F8STEP2():
    return (np.zeros(8), 2)


# =============================================================================================
# 1. Front end: constructs outside the subset, odd constructs inside it
# =============================================================================================


def fe(id, source, make=F8, prelude="", must=False):
    return pytest.param(source, make, prelude, must, id=id)


LOOP = "def f(A):\n    N = A.shape[0]\n    for i in range(N):\n        {}\n"


def body(stmt, make=F8, id=None, must=False, prelude=""):
    return fe(id, LOOP.format(stmt), make, prelude, must)


FRONTEND_CASES = [
    # --- statements outside the subset ---
    fe("while", """
        def f(A):
            N = A.shape[0]
            i = 0
            while i < N:
                A[i] = 0.0
                i += 1
        """),
    fe("try-except", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                try:
                    A[i] = 1.0
                except IndexError:
                    pass
        """),
    fe("try-finally", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                try:
                    A[i] = 1.0
                finally:
                    A[0] = 2.0
        """),
    fe("with", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                with np.errstate(all="ignore"):
                    A[i] = 1.0 / A[i]
        """),
    body("A[i] = (lambda v: v + 1.0)(A[i])", id="lambda-call"),
    fe("lambda-assigned", """
        def f(A):
            N = A.shape[0]
            g = lambda v: v * 2.0
            for i in range(N):
                A[i] = g(A[i])
        """),
    fe("listcomp-value", """
        def f(A):
            N = A.shape[0]
            A[0] = sum([A[i] for i in range(N)])
        """),
    fe("listcomp-iterable", """
        def f(A):
            N = A.shape[0]
            for i in [j for j in range(N)]:
                A[i] = 1.0
        """),
    fe("genexp", """
        def f(A):
            N = A.shape[0]
            A[0] = max(A[i] for i in range(N))
        """),
    fe("setcomp", """
        def f(A):
            N = A.shape[0]
            s = {i for i in range(N)}
            A[0] = 1.0
        """),
    fe("dictcomp", """
        def f(A):
            N = A.shape[0]
            d = {i: i for i in range(N)}
            A[0] = 1.0
        """),
    fe("nested-def", """
        def f(A):
            N = A.shape[0]
            def g(v):
                return v + 1.0
            for i in range(N):
                A[i] = g(A[i])
        """),
    fe("nested-class", """
        def f(A):
            class C:
                pass
            A[0] = 1.0
        """),
    fe("global-decl", """
        def f(A):
            global G
            G = 1.0
            A[0] = G
        """, prelude="G = 0.0"),
    body("A[i] = A[i] * SCALE", id="global-float-read", prelude="SCALE = 3.0"),
    fe("global-int-bound", """
        def f(A):
            for i in range(LIMIT):
                A[i] = 1.0
        """, prelude="LIMIT = 4"),
    body("A[i] = B[i] + 1.0", id="global-array-read", prelude="B = np.arange(8.0) * 10"),
    body("A[i] = G[i]", id="global-array-missing"),
    fe("import-inside", """
        def f(A):
            import math as m
            N = A.shape[0]
            for i in range(N):
                A[i] = m.sqrt(abs(A[i]))
        """),
    body("del A", id="del"),
    body("assert A[i] > 100.0", id="assert"),
    body("raise ValueError('no')", id="raise"),
    body("A.x = 1.0", id="attribute-assign"),
    body("A.real[i] = 5.0", id="attribute-subscript-store"),
    body("A[i] = A.T[i]", id="attribute-T-read"),
    body("A[i] = A.size", id="attribute-size-value"),
    body("A[i] = A.ndim", id="attribute-ndim-value"),
    body("A[1:3] = 0.0", id="slice-store"),
    body("A[:] = 1.0", id="slice-full-store"),
    body("A[i] = A[::-1][i]", id="slice-read"),
    fe("slice-2d-row", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                A[i, :] = 0.0
        """, make=M34),
    body("A[...] = 0.0", id="ellipsis-store"),
    body("A[None] = 1.0", id="none-index"),
    body("A[0] = max(*A)", id="starred-call"),
    fe("starred-assign", """
        def f(A):
            a, *b = A.shape
            for i in range(a):
                A[i] = 1.0
        """),
    body("A[*(i,)] = 1.0", id="starred-subscript"),
    body("s = f'{i}'", id="fstring"),
    body("A[i] = 'x'", id="string-value"),
    body("A[i] = b'1'", id="bytes-value"),
    body("A[(j := i)] = 1.0", id="walrus-subscript"),
    body("A[i] = (t := A[i] * 2.0) + t", id="walrus-value"),
    fe("walrus-range", """
        def f(A):
            N = A.shape[0]
            for i in range((n := N - 1)):
                A[i] = n
        """),
    fe("match", """
        def f(A):
            N = A.shape[0]
            match N:
                case 3:
                    A[0] = 1.0
                case _:
                    A[0] = 2.0
        """),
    fe("augassign-scalar-arg", """
        def f(A, alpha):
            N = A.shape[0]
            alpha += 1.0
            for i in range(N):
                A[i] *= alpha
        """, make=F8S),
    fe("augassign-size-arg", """
        def f(A, n):
            n += 1
            for i in range(n):
                A[i] = 1.0
        """, make=F8N),
    fe("augassign-shape-param", """
        def f(A):
            N = A.shape[0]
            N -= 2
            for i in range(N):
                A[i] = 1.0
        """),
    fe("augassign-array-arg-whole", """
        def f(A):
            A += 1.0
        """),
    fe("assign-scalar-arg", """
        def f(A, alpha):
            N = A.shape[0]
            alpha = 2.0
            for i in range(N):
                A[i] *= alpha
        """, make=F8S),
    fe("assign-size-arg", """
        def f(A, n):
            n = 2
            for i in range(n):
                A[i] = 1.0
        """, make=F8N),
    fe("rebind-array-arg", """
        def f(A):
            N = A.shape[0]
            A = np.zeros(3)
            for i in range(3):
                A[i] = 1.0
        """),
    fe("array-alias-local", """
        def f(A):
            N = A.shape[0]
            B = A
            for i in range(N):
                B[i] = 1.0
        """),
    fe("return-value", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                A[i] = 1.0
            return A[0]
        """),
    fe("return-array", """
        def f(A):
            return A
        """),
    fe("return-none", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                A[i] = 1.0
            return None
        """),
    fe("return-bare-end", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                A[i] = 1.0
            return
        """),
    fe("return-early-in-loop", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                A[i] = 1.0
                if i == 2:
                    return
        """),
    fe("yield", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                A[i] = 1.0
                yield i
        """),
    fe("async-def", """
        async def f(A):
            A[0] = 1.0
        """),
    fe("decorated-inner", """
        def f(A):
            A[0] = 1.0
        f.attr = 1
        """),
    # --- calls ---
    body("A[i] = foo(A[i])", id="call-unknown-module-function",
         prelude="def foo(v):\n    return v * 2.0"),
    body("print(i)", id="call-print-statement"),
    body("A[i] = len(A)", id="call-len-value"),
    body("A[i] = sum(A)", id="call-sum"),
    body("A[i] = np.dot(A, A)", id="call-np-dot"),
    body("A[i] = math.factorial(3)", id="call-math-factorial"),
    body("A[i] = A.sum()", id="call-method"),
    body("A[i] = float('nan')", id="call-float-string"),
    body("A[i] = round(A[i])", id="call-round"),
    body("A[i] = math.gcd(i, 4)", id="call-math-gcd"),
    body("A[i] = divmod(i, 2)[0]", id="call-divmod"),
    body("A[i] = min(A[i])", id="min-one-arg"),
    body("A[i] = max()", id="max-no-arg"),
    body("A[i] = min(A[i], 1.0, key=abs)", id="min-key-kwarg"),
    body("A[i] = abs(A[i], 1)", id="abs-two-args"),
    body("A[i] = math.sqrt(A[i], 2)", id="sqrt-two-args"),
    body("A[i] = math.sqrt()", id="sqrt-no-args"),
    body("A[i] = np.sqrt(x=A[i])", id="np-sqrt-kwarg"),
    body("A[i] = float(A[i], 2)", id="float-two-args"),
    body("A[i] = int(A[i], 2)", id="int-two-args"),
    body("A[i] = pow(i, 2, 3)", id="pow-three-args", make=I8),
    body("A[i] = math.pow(A[i])", id="math-pow-one-arg"),
    body("A[i] = math.log(A[i], 2)", id="math-log-base", make=FPOS),
    body("A[i] = math.log(A[i], 2.0, 3.0)", id="math-log-three-args", make=FPOS),
    body("A[i] = np.log(A[i], 2)", id="np-log-out-positional", make=FPOS),
    body("A[i] = math.atan2(A[i])", id="atan2-one-arg"),
    body("A[i] = math.copysign(1.0, -0.0)", id="copysign-negative-zero"),
    body("A[i] = np.float32(A[i]) * 3.1", id="np-float32-cast"),
    body("A[i] = np.int64(A[i])", id="np-int64-cast"),
    body("A[i] = np.int32(10 ** 10)", id="np-int32-overflow-const"),
    body("A[i] = np.float16(A[i])", id="np-float16-cast"),
    body("A[i] = A[i] @ A[i]", id="matmul-operator"),
    # --- values at which Python raises ---
    body("A[i] = int(A[i])", id="int-of-nan", make=FNAN),
    body("A[i] = int(A[i])", id="int-of-inf", make=FINF),
    body("A[i] = math.sqrt(A[i])", id="math-sqrt-negative"),
    body("A[i] = math.log(A[i] - A[i])", id="math-log-zero"),
    body("A[i] = math.exp(1000.0 + A[i])", id="math-exp-overflow"),
    body("A[i] = math.pow(10.0, 400.0 + A[i])", id="math-pow-overflow"),
    body("A[i] = math.acos(2.0 + A[i] * 0.0)", id="math-acos-domain"),
    body("A[i] = math.fmod(A[i], 0.0)", id="math-fmod-zero"),
    body("A[i] = np.sqrt(A[i])", id="np-sqrt-negative-nan"),
    body("A[i] = 1.0 / (i - i)", id="float-div-int-zero"),
    body("A[i] = float(A[i]) / 0.0", id="python-float-div-zero"),
    body("A[i] = A[i] / 0.0", id="numpy-scalar-div-zero-inf"),
    body("A[i] = i // (i - i)", id="int-floordiv-zero"),
    body("A[i] = i % (i - i)", id="int-mod-zero"),
    body("A[i] = 2.0 ** (2000 + i)", id="float-pow-overflow"),
    body("A[i] = A[i] ** 2000", id="numpy-pow-overflow-inf"),
    body("A[i] = 10 ** (400 + i)", id="bigint-to-float-overflow"),
    body("A[i] = float(i - 4) ** 0.5", id="negative-float-pow-half-is-complex"),
    body("A[i] = (i - 4) ** -1", id="int-pow-negative-exponent-zero-base"),
    body("A[i] = math.floor(A[i])", id="math-floor-nan", make=FNAN),
    body("A[i] = A[i] // (i - i)", id="numpy-int-floordiv-zero", make=I8),
    body("A[i] = A[i] % (i - i)", id="numpy-int-mod-zero", make=I8),
    body("A[i] = A[i] * 2 ** 62", id="numpy-int64-overflow-wraps", make=I8),
    body("A[i] = A[i] * 2 ** 64", id="numpy-int64-times-too-big-python-int", make=I8),
    body("A[i] = A[i] + 10 ** 30", id="float-plus-huge-int"),
    body("A[i] = i + 10 ** 30", id="int-expr-huge-to-float"),
    body("A[i] = (i + 2 ** 62 + 2 ** 62) // 2 ** 62", id="int-intermediate-2-63", make=I8),
    body("A[i] = i * 10 ** 30 // 10 ** 30", id="int-intermediate-10-30", make=I8),
    body("A[i] = (i - 3) // 2 + (i - 3) % 2 * 10", id="int-floor-semantics", make=I8,
         must=True),
    body("A[i] = (i - 3) // -2 + (i - 3) % -2 * 10", id="int-floor-negative-divisor", make=I8,
         must=True),
    body("A[i] = A[i] * 2", id="int32-overflow-wraps", make=I32BIG),
    body("A[i] = A[i] + 2 ** 31", id="int32-plus-out-of-range-python-int", make=I32BIG),
    body("A[i] = 2 ** 40", id="int32-store-too-big", make=I32BIG),
    body("A[i] = i << 70", id="int-shift-70", make=I8),
    body("A[i] = A[i] << 70", id="numpy-int-shift-70", make=I8),
    body("A[i] = (i & 3) + (i | 8) + (i ^ 5) + ~i + (i >> 1)", id="int-bitwise", make=I8),
    body("A[i] = float(10 ** 400)", id="float-of-huge-int"),
    body("A[i] = 2.7 - 5.4 * (i % 2)", id="float-to-int-store-truncates", make=I8),
    body("A[i] = float('nan')", id="nan-to-int-store", make=I8),
    body("A[i] = 1e30", id="1e30-to-int-store", make=I8),
    body("A[i] /= 2", id="int-array-true-div-inplace", make=I8),
    body("A[i] /= 0", id="float-array-div-zero-inplace"),
    body("A[i] //= 0.0", id="float-array-floordiv-zero-inplace"),
    body("A[i] **= 2", id="pow-inplace"),
    body("A[i] %= 0.7", id="mod-inplace"),
    body("A[i] <<= 1", id="shift-inplace-float"),
    body("A[i] |= 1", id="or-inplace-int", make=I8),
    body("A[i] @= 2.0", id="matmul-inplace"),
    # --- odd values ---
    body("A[i] = None", id="store-none"),
    body("A[i] = ...", id="store-ellipsis"),
    body("A[i] = 1j", id="store-complex"),
    body("A[i] = A[i] + 0j", id="complex-arith"),
    body("A[i] = True", id="store-true"),
    body("A[i] = not A[i]", id="not-value"),
    body("A[i] = A[i] > 0", id="comparison-value"),
    body("A[i] = 0 < A[i] < 1", id="chained-comparison-value"),
    body("A[i] = A[i] and 2.0", id="and-value-short-circuit"),
    body("A[i] = A[i] or 5.0", id="or-value-short-circuit"),
    body("A[i] = 1 if i > 2 else 2.5", id="ternary-mixed-types"),
    body("A[i] = -0.0", id="negative-zero"),
    body("A[i] = math.inf - math.inf", id="inf-minus-inf"),
    body("A[i] = math.tau", id="math-tau"),
    body("A[i] = np.nan", id="np-nan"),
    body("A[i] = np.euler_gamma", id="np-euler-gamma"),
    body("A[i] = math.e + np.e + math.pi", id="constants-e-pi", must=True),
    # --- loops ---
    fe("for-over-array", """
        def f(A):
            for v in A:
                A[0] = v
        """),
    fe("for-over-list", """
        def f(A):
            for i in [0, 1]:
                A[i] = 1.0
        """),
    fe("for-over-tuple", """
        def f(A):
            for i in (0, 1):
                A[i] = 1.0
        """),
    fe("for-enumerate", """
        def f(A):
            for i, v in enumerate(A):
                A[i] = v * 2.0
        """),
    fe("for-reversed-range", """
        def f(A):
            N = A.shape[0]
            for i in reversed(range(N)):
                A[i] = float(i)
        """),
    fe("for-np-arange", """
        def f(A):
            N = A.shape[0]
            for i in np.arange(N):
                A[i] = 1.0
        """),
    fe("for-range-sliced", """
        def f(A):
            N = A.shape[0]
            for i in range(N)[::-2]:
                A[i] = 1.0
        """),
    fe("for-target-subscript", """
        def f(A):
            N = A.shape[0]
            for A[0] in range(N):
                A[1] += 1.0
        """),
    fe("for-tuple-target-zip", """
        def f(A):
            N = A.shape[0]
            for i, j in zip(range(N), range(N)):
                A[i] = float(j)
        """),
    fe("for-range-star-args", """
        def f(A):
            for i in range(*A.shape):
                A[i] = 1.0
        """),
    fe("range-keyword", """
        def f(A):
            N = A.shape[0]
            for i in range(stop=N):
                A[i] = 1.0
        """),
    fe("range-no-args", """
        def f(A):
            for i in range():
                A[0] = 1.0
        """),
    fe("range-four-args", """
        def f(A):
            N = A.shape[0]
            for i in range(0, N, 1, 1):
                A[i] = 1.0
        """),
    fe("range-float-step", """
        def f(A):
            N = A.shape[0]
            for i in range(0, N, 1.0):
                A[i] = 1.0
        """),
    fe("range-true-division-bound", """
        def f(A):
            N = A.shape[0]
            for i in range(N / 2):
                A[i] = 1.0
        """),
    fe("range-float-mul-bound", """
        def f(A):
            N = A.shape[0]
            for i in range(N * 1.0):
                A[i] = 1.0
        """),
    fe("range-int-of-division", """
        def f(A):
            N = A.shape[0]
            for i in range(int(N / 3)):
                A[i] = 1.0
        """),
    fe("range-round-bound", """
        def f(A):
            N = A.shape[0]
            for i in range(round(N / 3)):
                A[i] = 1.0
        """),
    fe("range-bool-start", """
        def f(A):
            N = A.shape[0]
            for i in range(True, N):
                A[i] = 1.0
        """),
    fe("range-bool-step", """
        def f(A):
            N = A.shape[0]
            for i in range(0, N, True):
                A[i] = 1.0
        """),
    fe("range-len-call", """
        def f(A):
            for i in range(len(A)):
                A[i] = 1.0
        """),
    fe("range-shape-direct", """
        def f(A):
            for i in range(A.shape[0]):
                A[i] = 1.0
        """),
    fe("range-size-attr", """
        def f(A):
            for i in range(A.size):
                A[i] = 1.0
        """),
    fe("range-shape-negative-index", """
        def f(A):
            N = A.shape[-1]
            for i in range(N):
                A[i] = 1.0
        """),
    fe("shape-index-beyond-rank", """
        def f(A):
            N = A.shape[3]
            for i in range(N):
                A[i] = 1.0
        """),
    fe("shape-unpack-wrong-rank", """
        def f(A):
            N, M = A.shape
            for i in range(N):
                for j in range(M):
                    A[i, j] = 1.0
        """),
    fe("size-is-shape-plus-one", """
        def f(A):
            N = A.shape[0] - 1
            for i in range(N):
                A[i + 1] = A[i]
        """),
    fe("size-product-non-affine", """
        def f(A):
            N = A.shape[0]
            for i in range(N * N):
                A[i % N] += 1.0
        """),
    fe("size-from-array-value", """
        def f(A):
            for i in range(int(A[0])):
                A[i] = 1.0
        """, make=lambda: (np.array([3.0, 0, 0, 0, 0, 0, 0, 0]),)),
    fe("size-changed-in-loop", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                N = 2
                A[i] = float(N)
        """),
    fe("size-read-before-binding", """
        def f(A):
            for i in range(N):
                A[i] = 1.0
            N = A.shape[0]
        """),
    fe("nonconstant-step-arg", """
        def f(A, s):
            N = A.shape[0]
            for i in range(0, N, s):
                A[i] = 1.0
        """, make=F8STEP2),
    fe("nonconstant-step-size", """
        def f(A):
            N = A.shape[0]
            for i in range(0, N, N):
                A[i] = 1.0
        """),
    fe("nonconstant-step-outer-var", """
        def f(A):
            N = A.shape[0]
            for i in range(1, 3):
                for j in range(0, N, i):
                    A[j] += 1.0
        """),
    fe("step-local-constant", """
        def f(A):
            N = A.shape[0]
            s = 2
            for i in range(0, N, s):
                A[i] = 1.0
        """),
    fe("step-constant-expression", """
        def f(A):
            N = A.shape[0]
            for i in range(0, N, 4 // 2 + 2 ** 1 - 2 * 1):
                A[i] = 1.0
        """),
    fe("step-zero", """
        def f(A):
            N = A.shape[0]
            for i in range(0, N, 0):
                A[i] = 1.0
        """),
    fe("step-zero-expression", """
        def f(A):
            N = A.shape[0]
            for i in range(0, N, 1 - 1):
                A[i] = 1.0
        """),
    fe("step-zero-size-expression", """
        def f(A):
            N = A.shape[0]
            for i in range(0, N, N - N):
                A[i] = 1.0
        """),
    fe("step-zero-at-call", """
        def f(A, s):
            N = A.shape[0]
            for i in range(0, N, s):
                A[i] = 1.0
        """, make=F8STEP0),
    fe("step-huge", """
        def f(A):
            N = A.shape[0]
            for i in range(0, N, 10 ** 30):
                A[i] = 1.0
        """),
    fe("step-huge-negative", """
        def f(A):
            N = A.shape[0]
            for i in range(N - 1, -1, -10 ** 30):
                A[i] = 1.0
        """),
    fe("step-2-62", """
        def f(A):
            N = A.shape[0]
            for i in range(0, N, 2 ** 62):
                A[i] = 1.0
        """),
    fe("negative-step-control", """
        def f(A):
            N = A.shape[0]
            for i in range(N - 1, 0, -2):
                A[i] = A[i - 1] + 1.0
        """, must=True),
    fe("empty-negative-step", """
        def f(A):
            N = A.shape[0]
            for i in range(0, N, -1):
                A[i] = 1.0
        """),
    fe("loop-var-assigned", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                i = 0
                A[i] += 1.0
        """),
    fe("loop-var-augassigned", """
        def f(A):
            N = A.shape[0]
            for i in range(N - 1):
                i += 1
                A[i] = 1.0
        """),
    fe("loop-var-shadowed-nested", """
        def f(A):
            for i in range(3):
                for i in range(4):
                    A[i] += 1.0
        """),
    fe("loop-var-read-after-loop", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                A[i] = 0.0
            A[0] = float(i)
        """),
    fe("loop-var-after-zero-trip-loop", """
        def f(A):
            for i in range(0):
                A[0] = 1.0
            A[0] = float(i)
        """),
    fe("for-else", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                A[i] = 0.0
            else:
                A[0] = 1.0
        """),
    fe("break", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if i == 3:
                    break
                A[i] = 1.0
        """),
    fe("continue", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if i == 3:
                    continue
                A[i] = 1.0
        """),
    fe("nest-19-deep", "def f(A):\n" + "".join(
        "    " * (d + 1) + f"for i{d} in range(1):\n" for d in range(19))
        + "    " * 20 + "A[i0 + i18] += 1.0\n"),
    fe("expression-400-terms", "def f(A):\n    A[0] = " + " + ".join(
        f"A[{t % 8}]" for t in range(400)) + "\n"),
    fe("statements-300", "def f(A):\n" + "".join(
        f"    A[{t % 8}] = A[{(t + 3) % 8}] * 0.5 + {t}.0\n" for t in range(300))),
    fe("empty-body-pass", """
        def f(A):
            pass
        """),
    fe("docstring-only", '''
        def f(A):
            """Nothing."""
        '''),
    fe("ellipsis-body", """
        def f(A):
            ...
        """),
    fe("expression-statement", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                A[i]
        """),
    fe("no-loops", """
        def f(A):
            A[0] = 1.0
            A[7] = A[0] + 2.0
        """, must=True),
    # --- subscripts ---
    fe("subscript-i-times-j", """
        def f(A):
            for i in range(3):
                for j in range(3):
                    A[i * j] += 1.0
        """),
    fe("subscript-indirect-self", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                A[A[i]] = 1.0
        """, make=lambda: (np.array([3, 1, 4, 1, 5, 2, 6, 0], dtype=np.int64),)),
    fe("subscript-indirect-float", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                A[A[i]] = 1.0
        """),
    fe("subscript-indirect-other", """
        def f(A, P):
            N = A.shape[0]
            for i in range(N):
                A[P[i]] += 1.0
        """, make=IDX),
    fe("subscript-int-of-value", """
        def f(A, P):
            N = A.shape[0]
            for i in range(N):
                A[int(A[i]) % 8] += 1.0
        """, make=IDX),
    body("A[i * i % 8] = 1.0", id="subscript-i-squared-mod"),
    body("A[i ** 2 // 8] = 1.0", id="subscript-pow"),
    body("A[2 ** i // 32] = 1.0", id="subscript-exponential"),
    body("A[N * i // N] = 1.0", id="subscript-param-times-var"),
    body("A[abs(i - 4)] = float(i)", id="subscript-abs"),
    body("A[min(i, 3)] += 1.0", id="subscript-min"),
    body("A[max(i - 2, 0)] += 1.0", id="subscript-max"),
    body("A[i // -2 + 4] += float(i)", id="subscript-floordiv-negative-const", must=True),
    body("A[i % -3 + 2] += float(i)", id="subscript-mod-negative-const", must=True),
    body("A[(i - 5) // 2 + 3] += float(i)", id="subscript-floordiv-negative-operand",
         must=True),
    body("A[(i - 5) % 3] += float(i)", id="subscript-mod-negative-operand", must=True),
    body("A[i // 0] = 1.0", id="subscript-floordiv-zero"),
    body("A[i % 0] = 1.0", id="subscript-mod-zero"),
    body("A[0.5] = 1.0", id="subscript-float-const"),
    body("A[1.0] = 1.0", id="subscript-float-integral-const"),
    body("A[i / 1] = 1.0", id="subscript-true-division"),
    body("A[i * 1.0] = 1.0", id="subscript-float-product"),
    body("A[float(i)] = 1.0", id="subscript-float-cast"),
    body("A[int(i / 2)] += 1.0", id="subscript-int-of-division"),
    body("A[int(-i / 2) + 4] += float(i)", id="subscript-int-truncates-toward-zero"),
    body("A[round(i / 2)] += 1.0", id="subscript-round-bankers"),
    body("A[True] = 5.0", id="subscript-true"),
    body("A[False] = 5.0", id="subscript-false"),
    body("A[i > 3] = float(i)", id="subscript-comparison"),
    body("A[bool(i)] = float(i)", id="subscript-bool-call"),
    body("A[not i] = float(i)", id="subscript-not"),
    body("A[int(True)] = 5.0", id="subscript-int-of-true"),
    body("A[-1] = 7.0", id="subscript-negative-const"),
    body("A[i - 1] = float(i)", id="subscript-wraps-at-zero"),
    body("A[-i - 1] = float(i)", id="subscript-negative-reversal"),
    body("A[i - N] = float(i)", id="subscript-minus-size"),
    body("A[N] = 1.0", id="subscript-size-out-of-range"),
    body("A[-N - 1] = 1.0", id="subscript-negative-out-of-range"),
    body("A[i + 10 ** 30 - 10 ** 30] = 1.0", id="subscript-huge-constants-cancel"),
    body("A[i + 2 ** 63 - 2 ** 63] = 1.0", id="subscript-2-63-cancel"),
    body("A[i + 2 ** 64 - 2 ** 64] = 1.0", id="subscript-2-64-cancel"),
    body("A[i * 10 ** 30 // 10 ** 30] = 1.0", id="subscript-huge-mul-div"),
    body("A[i + 10 ** 30] = 1.0", id="subscript-huge-out-of-range"),
    body("A[i][0] = 1.0", id="subscript-chained-on-1d"),
    body("A[i, 0] = 1.0", id="subscript-2d-on-1d"),
    body("A[(i,)] = 1.0", id="subscript-tuple-explicit"),
    body("A[i,] = 1.0", id="subscript-trailing-comma"),
    body("A[[i]] = 1.0", id="subscript-list-fancy"),
    body("A[[i, i]] += 1.0", id="subscript-list-fancy-repeated"),
    body("A[len(A) - 1 - i] = float(i)", id="subscript-len"),
    body("A[A.shape[0] - 1 - i] = float(i)", id="subscript-shape"),
    fe("subscript-local-affine", """
        def f(A):
            N = A.shape[0]
            for i in range(N - 1):
                j = i + 1
                A[j] = float(i)
        """),
    fe("subscript-local-induction", """
        def f(A):
            N = A.shape[0]
            j = 0
            for i in range(N):
                A[j] = float(i)
                j += 1
        """),
    fe("subscript-float-scalar-arg", """
        def f(A, alpha):
            N = A.shape[0]
            for i in range(N):
                A[alpha] = 1.0
        """, make=F8S),
    fe("subscript-2d-chained", """
        def f(A):
            N, M = A.shape
            for i in range(N):
                for j in range(M):
                    A[i][j] = A[i, j] + float(i * 10 + j)
        """, make=M34, must=True),
    fe("range-negative-start", """
        def f(A):
            for i in range(-3, 3):
                A[i] = float(i)
        """),
    # --- huge constants in bounds ---
    fe("bound-min-10-30", """
        def f(A):
            N = A.shape[0]
            for i in range(min(N, 10 ** 30)):
                A[i] = 1.0
        """),
    fe("bound-plus-minus-10-30", """
        def f(A):
            N = A.shape[0]
            for i in range(N + 10 ** 30 - 10 ** 30):
                A[i] = 1.0
        """),
    fe("bound-if-10-30", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if i < 10 ** 30 and i > -10 ** 30:
                    A[i] = 1.0
        """),
    fe("bound-offset-10-30", """
        def f(A):
            N = A.shape[0]
            for i in range(10 ** 30, 10 ** 30 + N):
                A[i - 10 ** 30] = float(i - 10 ** 30)
        """),
    fe("bound-offset-2-63", """
        def f(A):
            N = A.shape[0]
            for i in range(2 ** 63, 2 ** 63 + N):
                A[i - 2 ** 63] = float(i - 2 ** 63)
        """),
    fe("bound-offset-minus-2-63", """
        def f(A):
            N = A.shape[0]
            for i in range(-2 ** 63 - 1, -2 ** 63 - 1 + N):
                A[i + 2 ** 63 + 1] = float(i + 2 ** 63)
        """),
    fe("bound-offset-2-62-control", """
        def f(A):
            N = A.shape[0]
            for i in range(2 ** 62, 2 ** 62 + N):
                A[i - 2 ** 62] = float(i - 2 ** 62)
        """),
    fe("bound-huge-trip-count", """
        def f(A):
            for i in range(10 ** 30):
                A[i] = 1.0
        """),
    fe("loop-value-2-40-int", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                A[i] = i * 2 ** 40
        """, make=I8, must=True),
    # --- conditions ---
    fe("if-data-dependent", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if A[i] > 0:
                    A[i] = 0.0
        """),
    body("A[i] = 1.0 if i in (1, 3) else 2.0", id="if-in-tuple"),
    fe("if-in-tuple-statement", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if i in (1, 3):
                    A[i] = 1.0
        """),
    fe("if-size-truthiness", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if N:
                    A[i] = 1.0
        """),
    fe("if-var-truthiness", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if i:
                    A[i] = 1.0
        """),
    fe("if-not-var", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if not i:
                    A[i] = 1.0
        """),
    fe("if-mod-zero", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if i % 0 == 0:
                    A[i] = 1.0
        """),
    fe("if-non-affine", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if i == i * i:
                    A[i] = 1.0
        """),
    fe("if-float-bound", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if i < 2.5:
                    A[i] = 1.0
        """),
    fe("if-true-division", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if i < N / 3:
                    A[i] = 1.0
        """),
    fe("if-float-rounding", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if i * 0.1 == 0.3:
                    A[i] = 1.0
        """),
    fe("if-constant-true", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if True:
                    A[i] = 1.0
        """),
    fe("if-constant-none", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if None:
                    A[i] = 1.0
        """),
    fe("if-constant-string", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if "x":
                    A[i] = 1.0
        """),
    fe("if-is", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if i is not None:
                    A[i] = 1.0
        """),
    fe("if-chained-huge", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if 0 < i < N - 1 < 10 ** 30:
                    A[i] = 1.0
        """),
    fe("if-elif-else-control", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if i % 3 == 0:
                    A[i] = 1.0
                elif i < 4:
                    A[i] = 2.0
                else:
                    A[i] = 3.0
        """, must=True),
    # --- locals ---
    fe("local-read-before-assign", """
        def f(A):
            A[0] = t
            t = 1.0
        """),
    fe("local-conditionally-unset", """
        def f(A):
            N = A.shape[0]
            if N > 100:
                t = 1.0
            A[0] = t
        """),
    fe("local-read-first-iteration", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                A[i] = t
                t = A[i] + 1.0
        """),
    fe("local-defined-on-one-iteration", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if i == 3:
                    s = 1.0
                A[i] = s
        """),
    fe("local-defined-later-iteration-ok", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                for j in range(i):
                    A[i] += s
                s = 1.0
        """),
    fe("local-guarded-read-ok", """
        def f(A):
            N = A.shape[0]
            for i in range(N):
                if i > 0:
                    A[i] = t
                t = A[i] * 2.0
        """),
    fe("name-undefined", """
        def f(A):
            A[0] = undefined_name
        """),
    fe("local-int-then-float", """
        def f(A):
            N = A.shape[0]
            t = 1
            for i in range(N):
                t = t * 3
                A[i] = t / 7
        """),
    fe("local-int-grows-beyond-int64", """
        def f(A):
            N = A.shape[0]
            t = 1
            for i in range(N):
                t = t * 1000000000
                A[i] = t / 10 ** 60
        """),
    fe("multiple-targets", """
        def f(A, B):
            N = A.shape[0]
            for i in range(N):
                A[i] = B[i] = float(i)
        """, make=F8F8),
    fe("chained-local-targets", """
        def f(A):
            N = A.shape[0]
            s = t = 0.5
            for i in range(N):
                A[i] = s + t
        """),
    fe("tuple-swap", """
        def f(A):
            N = A.shape[0]
            for i in range(N - 1):
                A[i], A[i + 1] = A[i + 1], A[i]
        """),
    fe("tuple-unpack-locals", """
        def f(A):
            N = A.shape[0]
            s, t = 1.0, 2.0
            for i in range(N):
                A[i] = s * t
        """),
    fe("annotated-assign", """
        def f(A):
            N = A.shape[0]
            t: float = 1.5
            for i in range(N):
                A[i] = t
        """),
    fe("annotated-no-value", """
        def f(A):
            N = A.shape[0]
            t: float
            for i in range(N):
                A[i] = 1.0
        """),
    # --- signatures ---
    fe("default-arg-omitted", """
        def f(A, n=3):
            for i in range(n):
                A[i] = 1.0
        """),
    fe("varargs", """
        def f(*args):
            A = args[0]
            A[0] = 1.0
        """),
    fe("kwargs", """
        def f(A, **kw):
            A[0] = 1.0
        """),
    fe("keyword-only", """
        def f(A, *, n):
            for i in range(n):
                A[i] = 1.0
        """, make=F8N),
    fe("positional-only", """
        def f(A, /):
            N = A.shape[0]
            for i in range(N):
                A[i] = 1.0
        """),
    fe("annotations", """
        def f(A: "np.ndarray", n: int) -> None:
            for i in range(n):
                A[i] = 1.0
        """, make=F8N, must=True),
    fe("duplicate-like-unicode-args-nfkc", """
        def f(A, ﬁ):
            for i in range(fi):
                A[i] = 1.0
        """, make=F8N),
    # --- shadowing ---
    body("A[i] = 1.0", id="shadow-range-module",
         prelude="def range(*a):\n    return [0]"),
    body("A[i] = min(A[i], 0.0)", id="shadow-min-module",
         prelude="def min(a, b):\n    return a + b"),
    fe("shadow-min-bound", """
        def f(A):
            N = A.shape[0]
            for i in range(min(N, 3)):
                A[i] = 1.0
        """, prelude="def min(a, b):\n    return a + b - 6"),
    body("A[i] = max(A[i], 0.0)", id="shadow-max-is-min", prelude="max = min"),
    body("A[i] = abs(A[i])", id="shadow-abs", prelude="abs = lambda v: -v"),
    body("A[i] = float(A[i])", id="shadow-float-is-int", prelude="float = int"),
    body("A[i] = int(A[i])", id="shadow-int-is-float", prelude="int = float"),
    fe("shadow-len", """
        def f(A):
            N = len(A)
            for i in range(N):
                A[i] = 1.0
        """, prelude="def len(a):\n    return 2"),
    body("A[i] = pow(A[i], 2)", id="shadow-pow",
         prelude="def pow(a, b):\n    return a - b"),
    body("A[i] = math.sqrt(A[i])", id="shadow-math-is-numpy", prelude="import numpy as math"),
    body("A[i] = math.sqrt(abs(A[i]) + 3.0)", id="shadow-math-is-cmath",
         prelude="import cmath as math"),
    body("A[i] = np.sqrt(A[i])", id="shadow-np-is-math", prelude="import math as np"),
    body("A[i] = np.sqrt(abs(A[i]))", id="shadow-np-is-none", prelude="np = None"),
    body("A[i] = math.sqrt(abs(A[i]))", id="shadow-math-fake-object",
         prelude="class _M:\n    @staticmethod\n    def sqrt(v):\n        return v * 10.0\n"
                 "math = _M()"),
    body("A[i] = math.pi", id="shadow-math-pi-patched", prelude="math.pi = 3.0"),
    body("A[i] = np.pi", id="shadow-np-pi-patched", prelude="np.pi = 3.0"),
    body("A[i] = math.sqrt(abs(A[i]))", id="shadow-math-sqrt-patched",
         prelude="math.sqrt = lambda v: -1.0"),
    body("A[i] = sqrt(abs(A[i]))", id="shadow-from-numpy-import-sqrt",
         prelude="from numpy import sqrt"),
    body("A[i] = exp(abs(A[i]))", id="shadow-sqrt-imported-as-exp",
         prelude="from math import sqrt as exp"),
    fe("shadow-min-local", """
        def f(A):
            N = A.shape[0]
            min = max
            for i in range(N):
                A[i] = min(A[i], 0.0)
        """),
    fe("shadow-float-local", """
        def f(A):
            N = A.shape[0]
            float = int
            for i in range(N):
                A[i] = float(A[i])
        """),
    fe("shadow-np-local", """
        def f(A):
            N = A.shape[0]
            np = math
            for i in range(N):
                A[i] = np.sqrt(A[i])
        """),
    fe("shadow-range-local", """
        def f(A):
            N = A.shape[0]
            range = 5
            for i in range(N):
                A[i] = 1.0
        """),
    fe("shadow-math-param", """
        def f(A, math):
            N = A.shape[0]
            for i in range(N):
                A[i] = math * A[i]
        """, make=F8S),
    fe("shadow-range-param", """
        def f(A, range):
            for i in range(range):
                A[i] = 1.0
        """, make=F8N),
    fe("shadow-min-param-value", """
        def f(A, min):
            N = A.shape[0]
            for i in range(N):
                A[i] = min(A[i], 0.0)
        """, make=lambda: (np.linspace(-1.0, 2.5, 8), max)),
    # --- names that collide with C generated names ---
    fe("c-name-extent-collision", """
        def f(A, A_d0):
            N = len(A)
            for i in range(N):
                A_d0[i] = A[i] + 1.0
        """, make=F8F8, must=True),
    fe("c-name-iterator-param-collision", """
        def f(A, pp_c0):
            for i in range(pp_c0):
                for j in range(2):
                    A[i * 2 + j] = float(i * 10 + j)
        """, make=lambda: (np.zeros(8), 3), must=True),
    fe("c-name-iterator-param-collision-2", """
        def f(A, pp_c1):
            N = A.shape[0]
            for i in range(N):
                for j in range(pp_c1):
                    A[i] += float(j + 1)
        """, make=lambda: (np.zeros(8), 3), must=True),
    fe("c-name-pp-arrays", """
        def f(pp_arrays, pp_ints):
            N = len(pp_arrays)
            for i in range(N):
                pp_ints[i] = pp_arrays[i] * 2.0
        """, make=F8F8, must=True),
    fe("name-statement-label", """
        def f(S0, S1):
            N = len(S0)
            for S2 in range(N):
                S1[S2] = S0[S2] + 1.0
        """, make=F8F8, must=True),
]


@pytest.mark.parametrize("source, make, prelude, must", FRONTEND_CASES)
@isolated
def test_frontend(tmp_path, source, make, prelude, must):
    check_kernel_source(tmp_path, source, make, prelude=prelude, must_match=must)


# ---- names colliding with isl keywords / functions, C keywords, non-ASCII identifiers ---------

NAMES = [
    # isl keywords and functions
    "mod", "floor", "ceil", "min", "max", "exists", "infty", "NaN", "true", "false", "rat",
    "e", "floord", "cond", "select", "domain", "params", "OR",
    # C keywords, types and library names
    "int", "double", "char", "void", "main", "restrict", "inline", "static", "register",
    "auto", "sizeof", "unsigned", "NULL", "INFINITY", "NAN", "sqrt", "abs", "fmod", "printf",
    # Python names that polypipe may treat specially
    "np", "math", "len", "pp", "_", "__", "self",
    # non-ASCII identifiers
    "ï", "Ä", "Ñ", "ß", "π", "变量", "αβγ", "ﬁ",
]

ROLE_TEMPLATES = {
    "loop": ("def f(A):\n    N = A.shape[0]\n    for {X} in range(N):\n"
             "        A[{X}] = A[{X}] * 2.0 + {X}\n", F8),
    "size": ("def f(A, {X}):\n    for i in range({X}):\n        A[i] = A[i] + {X}\n", F8N),
    "array": ("def f({X}, B):\n    N = B.shape[0]\n    for i in range(N):\n"
              "        B[i] = {X}[i] + 1.0\n", F8F8),
    "local": ("def f(A):\n    N = A.shape[0]\n    {X} = 0.0\n    for i in range(N):\n"
              "        {X} = {X} + A[i]\n        A[i] = {X}\n", F8),
    "scalar": ("def f(A, {X}):\n    N = A.shape[0]\n    for i in range(N):\n"
               "        A[i] = A[i] * {X}\n", F8S),
}

NAME_CASES = [pytest.param(role, name, id=f"{role}-{name}")
              for role in ROLE_TEMPLATES for name in NAMES]


@pytest.mark.parametrize("role, name", NAME_CASES)
@isolated
def test_names(tmp_path, role, name):
    template, make = ROLE_TEMPLATES[role]
    # Inside the subset whatever the name: the kernel must run and agree with Python.
    check_kernel_source(tmp_path, template.format(X=name), make, must_match=True)


def test_python_keywords_cannot_be_names():
    # `and`, `or`, `not` are isl keywords too, but Python itself refuses them as identifiers.
    for word in ("and", "or", "not"):
        with pytest.raises(SyntaxError):
            compile(f"{word} = 1", "<x>", "exec")


# =============================================================================================
# 2. Call arguments
# =============================================================================================

BASE_KERNELS = '''
import numpy as np
import polypipe as pp


@pp.kernel
def axpy(alpha, x, y):
    N = len(x)
    for i in range(N):
        y[i] += alpha * x[i]


@pp.kernel
def scaled(alpha, n, x):
    for i in range(n):
        x[i] *= alpha


@pp.kernel
def shift(x, y):
    N = len(y)
    for i in range(N):
        y[i] = x[i + 1]


@pp.kernel
def prefix(x, y):
    N = len(x)
    for i in range(1, N):
        y[i] = y[i - 1] + x[i]


@pp.kernel
def rev(x, y):
    N = len(x)
    for i in range(N):
        y[i] = x[N - 1 - i]


@pp.kernel
def stencil(a, b):
    N = len(a)
    for i in range(1, N - 1):
        b[i] = a[i - 1] + a[i] + a[i + 1]


@pp.kernel
def copy2d(A, B):
    N, M = A.shape
    for i in range(N):
        for j in range(M):
            B[i, j] = A[i, j] * 2.0 + 1.0


@pp.kernel
def inc(x, k):
    N = len(x)
    for i in range(N):
        x[i] = x[i] + k


@pp.kernel
def with_backend(x, backend):
    N = len(x)
    for i in range(N):
        x[i] = x[i] * backend


@pp.kernel
def grid(x, n, m):
    for i in range(n):
        for j in range(m):
            x[i, j] += 1.0


@pp.kernel
def gemm(alpha, beta, C, A, B):
    NI, NJ = C.shape
    NK = A.shape[1]
    for i in range(NI):
        for j in range(NJ):
            C[i, j] *= beta
        for k in range(NK):
            for j in range(NJ):
                C[i, j] += alpha * A[i, k] * B[k, j]


@pp.kernel
def matmul(C, A, B):
    M, N = C.shape
    K = A.shape[1]
    for i in range(M):
        for j in range(N):
            acc = 0.0
            for k in range(K):
                acc += A[i, k] * B[k, j]
            C[i, j] = acc


@pp.kernel
def ewise(C, A):
    M, N = C.shape
    for i in range(M):
        for j in range(N):
            C[i, j] = A[i, j] * 2.0


@pp.kernel
def dot(s, x, y):
    N = len(x)
    acc = 0.0
    for i in range(N):
        acc += x[i] * y[i]
    s[0] = acc


@pp.kernel
def matvec(y, A, x):
    M, N = A.shape
    for i in range(M):
        acc = 0.0
        for j in range(N):
            acc += A[i, j] * x[j]
        y[i] = acc


@pp.kernel
def empty(x):
    pass


@pp.kernel
def two_nests(C, A, B, D):
    M, N = C.shape
    K = A.shape[1]
    for i in range(M):
        for j in range(N):
            for k in range(K):
                C[i, j] += A[i, k] * B[k, j]
    for i in range(M):
        for j in range(N):
            D[i, j] = C[i, j] + 1.0


@pp.kernel
def trmm(C, A, B):
    M, N = C.shape
    for i in range(M):
        for j in range(N):
            for k in range(i + 1):
                C[i, j] += A[i, k] * B[k, j]
'''


@pytest.fixture(scope="session")
def base(tmp_path_factory):
    return load_module(tmp_path_factory.mktemp("base_kernels"), BASE_KERNELS)


@pytest.fixture(scope="session")
def examples():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import batched_matmul, cholesky, conv2d_nhwc, deriche, gemm as gemm_mod, jacobi_2d
    finally:
        sys.path.pop(0)
    return {"gemm": gemm_mod.gemm, "jacobi_2d": jacobi_2d.jacobi_2d,
            "cholesky": cholesky.cholesky, "deriche": deriche.edge_filter,
            "conv2d_nhwc": conv2d_nhwc.conv2d_nhwc,
            "batched_matmul": batched_matmul.batched_matmul}


class Sub(np.ndarray):
    """A plain ndarray subclass."""


class DoublingSub(np.ndarray):
    """A subclass whose element reads give twice the stored value."""

    def __getitem__(self, index):
        value = super().__getitem__(index)
        return value * 2 if np.isscalar(value) or getattr(value, "ndim", 1) == 0 else value


class MyInt(int):
    pass


class IndexOnly:
    def __index__(self):
        return 3


def v(n=5, start=1.0, dtype=np.float64):
    return (np.arange(n, dtype=np.float64) + start).astype(dtype)


def unaligned(n=5, value=1.0):
    buffer = bytearray(8 * n + 1)
    array = np.frombuffer(buffer, dtype=np.float64, offset=1, count=n)
    array[:] = np.arange(n) + value
    return array


def memmap(path, n=5, mode="w+", dtype=np.float64):
    array = np.memmap(path, dtype=dtype, mode="w+", shape=(n,))
    array[:] = np.arange(n) + 1.0
    array.flush()
    if mode != "w+":
        del array
        array = np.memmap(path, dtype=dtype, mode=mode, shape=(n,))
    return array


def as_sub(array, cls=Sub):
    return np.ascontiguousarray(array).view(cls)


def big_endian(array, code):
    return array.astype(code)


def call(name, make, must=False, observe=None, id=None):
    return pytest.param(name, [(make, must)], observe, id=id)


def seq(name, steps, observe=None, id=None):
    return pytest.param(name, steps, observe, id=id)


def _guarded_scaled(n, n_view=5):
    """scaled(2.0, n, x) with x the first 5 elements of a 20-element buffer (observed whole:
    a write past x's end shows up in the buffer)."""
    def make():
        buffer = np.full(20, 7.0)
        return (2.0, n, buffer[:n_view])
    return make


def _readonly(array):
    array.flags.writeable = False
    return array


def _same(build, n=5):
    a = np.arange(n, dtype=np.float64) + 1.0
    return build(a)


def _same2d(build, shape=(3, 3)):
    a = np.arange(float(np.prod(shape))).reshape(shape) * 0.25 + 1.0
    return build(a)


def _gemm_alias(kind):
    C = np.arange(16.0).reshape(4, 4) * 0.25 + 1.0
    other = np.arange(16.0).reshape(4, 4)[::-1].copy() * 0.5
    return (1.5, 0.5, C, C, other) if kind == "CA" else (1.5, 0.5, C, other, C)


def _views(build, n=10):
    base = np.arange(n, dtype=np.float64) * 0.5 + 1.0
    return build(base)


def _bases(args, kwargs):
    found = []
    for a in args:
        if isinstance(a, np.ndarray):
            root = a
            while root.base is not None and isinstance(root.base, np.ndarray):
                root = root.base
            if not any(root is f for f in found):
                found.append(root)
    return found


DTYPES = ["float16", "uint8", "int8", "int16", "uint16", "uint32", "uint64", "bool",
          "complex64", "complex128", "object", ">f8", ">i4", ">f4", ">i8", "<f8", "longdouble",
          "U3", "S3", "M8[s]", "m8[s]", "f8,f8"]


def _dtype_array(code, n=5):
    dtype = np.dtype(code)
    base = np.arange(n) % 3 + 1
    if dtype.kind in "US":
        return base.astype(dtype)
    if dtype.kind in "Mm":
        return base.astype(dtype)
    if dtype.names:
        out = np.zeros(n, dtype=dtype)
        out["f0"] = base
        return out
    return base.astype(dtype)


CALL_CASES = [
    # --- counts and keywords ---
    call("axpy", lambda: (), id="count-0"),
    call("axpy", lambda: (2.0, v()), id="count-2"),
    call("axpy", lambda: (2.0, v(), v(), v()), id="count-4"),
    call("axpy", lambda: ((), dict(alpha=2.0, x=v(), y=v())), must=True, id="keywords-all"),
    call("axpy", lambda: ((2.0, v()), dict(y=v())), must=True, id="keywords-some"),
    call("axpy", lambda: ((2.0, v()), dict(x=v())), id="keywords-duplicate"),
    call("axpy", lambda: ((2.0, v(), v()), dict(z=1)), id="keywords-unknown"),
    call("scaled", lambda: ((), dict(alpha=2.0, n=3, x=v())), must=True,
         id="keywords-size-arg"),
    call("with_backend", lambda: ((v(),), dict(backend=3.0)), must=True,
         id="keywords-argument-named-backend"),
    call("with_backend", lambda: (v(), 3.0), must=True, id="argument-named-backend-positional"),
    # --- array arguments of the wrong kind ---
    call("axpy", lambda: (2.0, [1.0, 2.0, 3.0], v(3)), id="x-list"),
    call("axpy", lambda: (2.0, (1.0, 2.0, 3.0), v(3)), id="x-tuple"),
    call("axpy", lambda: (2.0, None, v(3)), id="x-none"),
    call("axpy", lambda: (2.0, "abc", v(3)), id="x-string"),
    call("axpy", lambda: (2.0, 1 + 2j, v(3)), id="x-complex"),
    call("axpy", lambda: (2.0, fractions.Fraction(1, 3), v(3)), id="x-fraction"),
    call("axpy", lambda: (2.0, decimal.Decimal("1.5"), v(3)), id="x-decimal"),
    call("axpy", lambda: (2.0, np.array(2.0), v(3)), id="x-0d-array"),
    call("axpy", lambda: (2.0, 3.0, v(3)), id="x-float"),
    call("axpy", lambda: (2.0, {}, v(3)), id="x-dict"),
    call("axpy", lambda: (2.0, np.ones((5, 1)), v()), id="x-rank-2"),
    call("axpy", lambda: (2.0, v(), [0.0] * 5), id="y-list"),
    call("axpy", lambda: (2.0, v(), np.array(0.0)), id="y-0d-array"),
    call("axpy", lambda: (2.0, v(5), v(3)), id="y-shorter"),
    call("axpy", lambda: (2.0, v(3), v(5)), must=True, id="y-longer"),
    call("axpy", lambda: (2.0, np.zeros(0), np.zeros(0)), must=True, id="empty-arrays"),
    call("copy2d", lambda: (np.empty((0, 2 ** 40)), np.empty((0, 2 ** 40))),
         id="zero-rows-huge-columns"),
    call("copy2d", lambda: (np.ones((3, 0)), np.ones((3, 0))), must=True, id="zero-columns"),
    # --- scalar (value) arguments ---
    call("axpy", lambda: ([2.0], v(), v()), id="alpha-list"),
    call("axpy", lambda: (None, v(), v()), id="alpha-none"),
    call("axpy", lambda: ("2", v(), v()), id="alpha-string"),
    call("axpy", lambda: (2 + 1j, v(), v()), id="alpha-complex"),
    call("axpy", lambda: (fractions.Fraction(1, 3), v(), v()), id="alpha-fraction"),
    call("axpy", lambda: (decimal.Decimal("1.5"), v(), v()), id="alpha-decimal"),
    call("axpy", lambda: (np.array(2.0), v(), v()), id="alpha-0d-array"),
    call("axpy", lambda: (np.float16(2.0), v(), v()), id="alpha-float16"),
    call("axpy", lambda: (np.float32(0.1), v(), v()), must=True, id="alpha-float32"),
    call("axpy", lambda: (np.longdouble(2.0), v(), v()), id="alpha-longdouble"),
    call("axpy", lambda: (True, v(), v()), id="alpha-true"),
    call("axpy", lambda: (np.bool_(True), v(), v()), id="alpha-np-bool"),
    call("axpy", lambda: (3, v(), v()), must=True, id="alpha-int"),
    call("axpy", lambda: (np.int64(3), v(), v()), must=True, id="alpha-np-int64"),
    call("axpy", lambda: (np.uint64(3), v(), v()), id="alpha-np-uint64"),
    call("axpy", lambda: (2 ** 63, v(), v()), id="alpha-2-63"),
    call("axpy", lambda: (2 ** 64, v(), v()), id="alpha-2-64"),
    call("axpy", lambda: (-2 ** 63 - 1, v(), v()), id="alpha-below-int64"),
    call("axpy", lambda: (10 ** 30, v(), v()), id="alpha-10-30"),
    call("axpy", lambda: (10 ** 400, v(), v()), id="alpha-10-400"),
    call("axpy", lambda: (float("nan"), v(), v()), must=True, id="alpha-nan"),
    call("axpy", lambda: (float("inf"), v(), v()), must=True, id="alpha-inf"),
    call("inc", lambda: (np.arange(5), 2 ** 62), id="int-scalar-2-62"),
    call("inc", lambda: (np.arange(5), 2 ** 63), id="int-scalar-2-63"),
    call("inc", lambda: (np.arange(5), 2 ** 64), id="int-scalar-2-64"),
    call("inc", lambda: (np.arange(5), 10 ** 30), id="int-scalar-10-30"),
    call("inc", lambda: (np.arange(5), -2 ** 63 - 1), id="int-scalar-below-int64"),
    call("inc", lambda: (np.arange(5, dtype=np.int32), 2 ** 31), id="int32-array-plus-2-31"),
    call("inc", lambda: (np.arange(5), True), id="int-scalar-true"),
    call("inc", lambda: (np.arange(5), 2.5), id="int-array-plus-float"),
    call("inc", lambda: (np.arange(5), np.uint64(2 ** 64 - 1)), id="int-array-plus-uint64-max"),
    # --- sizes ---
    call("scaled", lambda: (2.0, 3, v()), must=True, id="size-int"),
    call("scaled", lambda: (2.0, np.int64(3), v()), must=True, id="size-np-int64"),
    call("scaled", lambda: (2.0, np.int32(3), v()), must=True, id="size-np-int32"),
    call("scaled", lambda: (2.0, np.uint64(3), v()), id="size-np-uint64"),
    call("scaled", lambda: (2.0, np.uint8(3), v()), id="size-np-uint8"),
    call("scaled", lambda: (2.0, np.int8(-1), v()), id="size-np-int8-negative"),
    call("scaled", lambda: (2.0, True, v()), id="size-true"),
    call("scaled", lambda: (2.0, False, v()), id="size-false"),
    call("scaled", lambda: (2.0, np.bool_(True), v()), id="size-np-bool"),
    call("scaled", lambda: (2.0, 3.0, v()), id="size-float"),
    call("scaled", lambda: (2.0, 2 ** 63, v()), id="size-2-63"),
    call("scaled", lambda: (2.0, 2 ** 64, v()), id="size-2-64"),
    call("scaled", lambda: (2.0, 2 ** 63 - 1, v()), id="size-int64-max"),
    call("scaled", lambda: (2.0, 10 ** 30, v()), id="size-10-30"),
    call("scaled", lambda: (2.0, -1, v()), id="size-minus-1"),
    call("scaled", lambda: (2.0, -2 ** 63, v()), id="size-int64-min"),
    call("scaled", lambda: (2.0, -2 ** 63 - 1, v()), id="size-below-int64"),
    call("scaled", lambda: (2.0, -10 ** 30, v()), id="size-minus-10-30"),
    call("scaled", lambda: (2.0, np.int64(-1), v()), id="size-np-int64-negative"),
    call("scaled", lambda: (2.0, np.uint64(2 ** 64 - 1), v()), id="size-np-uint64-max"),
    call("scaled", lambda: (2.0, fractions.Fraction(3), v()), id="size-fraction"),
    call("scaled", lambda: (2.0, decimal.Decimal(3), v()), id="size-decimal"),
    call("scaled", lambda: (2.0, np.array(3), v()), id="size-0d-array"),
    call("scaled", lambda: (2.0, MyInt(3), v()), id="size-int-subclass"),
    call("scaled", lambda: (2.0, IndexOnly(), v()), id="size-index-only-object"),
    call("scaled", lambda: (2.0, 6, v()), id="size-too-large"),
    call("scaled", _guarded_scaled(6), observe=_bases, id="size-too-large-guarded"),
    call("grid", lambda: (np.zeros((3, 4)), 3, 2 ** 62), id="size-2d-2-62"),
    call("grid", lambda: (np.zeros((3, 4)), 2 ** 32, 2 ** 32), id="size-2d-product-overflow"),
    # --- dtypes ---
    *[call("axpy", (lambda c: lambda: (2.0, _dtype_array(c), v()))(code), id=f"x-dtype-{code}")
      for code in DTYPES],
    *[call("axpy", (lambda c: lambda: (2.0, v(), _dtype_array(c)))(code), id=f"y-dtype-{code}")
      for code in DTYPES],
    call("axpy", lambda: (2.0, v(dtype=np.float32), v()), must=True, id="x-float32-y-float64"),
    call("axpy", lambda: (2.0, v(), v(dtype=np.float32)), must=True, id="x-float64-y-float32"),
    call("axpy", lambda: (0.1, v(dtype=np.int64), v(dtype=np.int64)), id="int-arrays-float-alpha"),
    call("axpy", lambda: (2.0, big_endian(v(), ">f8"), big_endian(v(), ">f8")),
         id="both-big-endian-f8"),
    call("inc", lambda: (big_endian(np.arange(5), ">i4"), 3), id="inc-big-endian-i4"),
    call("inc", lambda: (big_endian(np.arange(5), ">i8"), 3), id="inc-big-endian-i8"),
    call("copy2d", lambda: (big_endian(np.arange(12.0).reshape(3, 4), ">f8"),
                            np.zeros((3, 4))), id="copy2d-big-endian-in"),
    # --- subclasses ---
    call("copy2d", lambda: (np.matrix(np.arange(12.0).reshape(3, 4)), np.zeros((3, 4))),
         id="matrix-in"),
    call("copy2d", lambda: (np.arange(12.0).reshape(3, 4), np.matrix(np.zeros((3, 4)))),
         id="matrix-out"),
    call("axpy", lambda: (2.0, as_sub(v()), as_sub(v())), must=True, id="plain-subclass"),
    call("axpy", lambda: (2.0, as_sub(v(), DoublingSub), v()), id="overriding-subclass"),
    call("axpy", lambda: (2.0, np.ma.masked_array(v(), mask=[0, 1, 0, 0, 0]), v()),
         id="masked-array-in"),
    call("axpy", lambda: (2.0, v(), np.ma.masked_array(v(), mask=[0, 1, 0, 0, 0])),
         id="masked-array-out"),
    call("axpy", lambda: (2.0, v().view(np.recarray), v()), id="recarray-in"),
    # --- layout ---
    call("axpy", lambda: (2.0, v(10)[::2], v()), id="x-strided"),
    call("axpy", lambda: (2.0, v(), v(10)[::2]), id="y-strided"),
    call("axpy", lambda: (2.0, v()[::-1], v()), id="x-negative-stride"),
    call("axpy", lambda: (2.0, v(), v()[::-1]), id="y-negative-stride"),
    call("copy2d", lambda: (np.arange(12.0).reshape(4, 3).T, np.zeros((3, 4))),
         id="A-transposed"),
    call("copy2d", lambda: (np.arange(12.0).reshape(3, 4), np.zeros((4, 3)).T),
         id="B-transposed"),
    call("copy2d", lambda: (np.asfortranarray(np.arange(12.0).reshape(3, 4)), np.zeros((3, 4))),
         id="A-fortran-order"),
    call("copy2d", lambda: (np.arange(24.0).reshape(3, 8)[:, ::2], np.zeros((3, 4))),
         id="A-column-strided"),
    call("copy2d", lambda: (np.arange(12.0).reshape(3, 4)[::-1], np.zeros((3, 4))),
         id="A-rows-reversed"),
    call("copy2d", lambda: (np.arange(4.0).reshape(1, 4).repeat(3, 0), np.zeros((3, 4))),
         must=True, id="A-repeated-rows-contiguous"),
    call("copy2d", lambda: (np.broadcast_to(np.arange(4.0), (3, 4)), np.zeros((3, 4))),
         id="A-broadcast-zero-stride"),
    call("axpy", lambda: (2.0, np.lib.stride_tricks.as_strided(v(1), (5,), (0,)), v()),
         id="x-as-strided-zero-stride"),
    call("copy2d", lambda: (np.arange(12.0).reshape(3, 4), np.zeros((3, 1, 4))[:, 0, :]),
         id="B-squeezed-view-contiguous"),
    call("axpy", lambda: (2.0, v(8)[2:7], v()), must=True, id="x-contiguous-offset-view"),
    # --- read-only and unaligned ---
    call("axpy", lambda: (2.0, v(), _readonly(v())), id="y-read-only"),
    call("axpy", lambda: (2.0, _readonly(v()), v()), must=True, id="x-read-only"),
    call("axpy", lambda: (2.0, np.frombuffer(bytes(v().tobytes())), v()), must=True,
         id="x-frombuffer-bytes"),
    call("axpy", lambda: (2.0, unaligned(), v()), id="x-unaligned"),
    call("axpy", lambda: (2.0, v(), unaligned()), id="y-unaligned"),
    call("axpy", lambda: (2.0, unaligned(), unaligned()), id="both-unaligned"),
    # --- aliasing: the CPU backend must do what Python does ---
    call("axpy", lambda: _same(lambda a: (2.0, a, a)), must=True, id="alias-axpy-x-is-y"),
    call("prefix", lambda: _same(lambda a: (a, a)), must=True, id="alias-prefix-x-is-y"),
    call("rev", lambda: _same(lambda a: (a, a)), must=True, id="alias-rev-x-is-y"),
    call("stencil", lambda: _same(lambda a: (a, a), n=8), must=True, id="alias-stencil-in-place"),
    call("copy2d", lambda: _same2d(lambda a: (a, a)), must=True, id="alias-copy2d-A-is-B"),
    call("gemm", lambda: _same2d(lambda a: (1.5, 0.5, a, a, a), shape=(4, 4)), must=True,
         id="alias-gemm-C-is-A-is-B"),
    call("gemm", lambda: _gemm_alias("CA"), must=True, id="alias-gemm-C-is-A"),
    call("gemm", lambda: _gemm_alias("CB"), must=True, id="alias-gemm-C-is-B"),
    call("matmul", lambda: _same2d(lambda a: (a, a, a), shape=(4, 4)), must=True,
         id="alias-matmul-all-same"),
    call("dot", lambda: _same(lambda a: (a, a, a)), must=True, id="alias-dot-s-is-x-is-y"),
    call("shift", lambda: _views(lambda b: (b, b[:-1])), must=True, observe=_bases,
         id="overlap-shift-left"),
    call("shift", lambda: _views(lambda b: (b[:-1], b[1:-1])), must=True, observe=_bases,
         id="overlap-shift-right"),
    call("axpy", lambda: _views(lambda b: (2.0, b[0:6], b[2:8])), must=True, observe=_bases,
         id="overlap-axpy-forward"),
    call("axpy", lambda: _views(lambda b: (2.0, b[2:8], b[0:6])), must=True, observe=_bases,
         id="overlap-axpy-backward"),
    call("rev", lambda: _views(lambda b: (b[0:6], b[2:8])), must=True, observe=_bases,
         id="overlap-rev"),
    call("stencil", lambda: _views(lambda b: (b[0:8], b[1:9])), must=True, observe=_bases,
         id="overlap-stencil"),
    call("copy2d", lambda: _views(lambda b: (b[0:12].reshape(3, 4), b[4:16].reshape(3, 4)),
                                  n=16), must=True, observe=_bases, id="overlap-copy2d-rows"),
    call("copy2d", lambda: _views(lambda b: (b[0:12].reshape(3, 4), b[0:12].reshape(3, 4)),
                                  n=16), must=True, observe=_bases, id="overlap-copy2d-same-memory"),
    call("axpy", lambda: _views(lambda b: (2.0, b, b.view(np.int64)), n=5), observe=_bases,
         id="overlap-float-as-int-view"),
    # --- backend keyword ---
    call("axpy", lambda: ((2.0, v(), v()), dict(backend="bogus")), id="backend-bogus"),
    call("axpy", lambda: ((2.0, v(), v()), dict(backend=None)), id="backend-none"),
    call("axpy", lambda: ((2.0, v(), v()), dict(backend="python")), must=True,
         id="backend-python"),
    call("axpy", lambda: ((2.0, v(), v()), dict(backend="cuda")), id="backend-cuda"),
    call("empty", lambda: (None,), id="empty-kernel-none-arg"),
    call("empty", lambda: (v(),), must=True, id="empty-kernel"),
]


SEQUENCE_CASES = [
    seq("scaled", [(lambda: (2.0, np.int64(3), v()), True),
                   (lambda: (2.0, np.int64(10), v()), False)], id="grow-np-int64-size"),
    seq("scaled", [(lambda: (2.0, np.int32(3), v()), True),
                   (lambda: (2.0, np.int32(10), v()), False)], id="grow-np-int32-size"),
    seq("scaled", [(lambda: (2.0, np.uint64(3), v()), False),
                   (lambda: (2.0, np.uint64(10), v()), False)], id="grow-np-uint64-size"),
    seq("scaled", [(lambda: (2.0, 3, v()), True), (lambda: (2.0, 10, v()), False)],
        id="grow-int-size"),
    seq("scaled", [(lambda: (2.0, MyInt(3), v()), False), (lambda: (2.0, MyInt(10), v()), False)],
        id="grow-int-subclass-size"),
    seq("scaled", [(_guarded_scaled(np.int64(3)), True), (_guarded_scaled(np.int64(12)), False)],
        observe=_bases, id="grow-np-int64-size-guarded"),
    seq("scaled", [(lambda: (2.0, np.int64(3), v()), True),
                   (lambda: (2.0, np.int64(2 ** 40), v()), False)], id="grow-np-int64-size-huge"),
    seq("grid", [(lambda: (np.zeros((3, 4)), np.int64(3), np.int64(4)), True),
                 (lambda: (np.zeros((3, 4)), np.int64(30), np.int64(40)), False)],
        id="grow-2d-np-int64-sizes"),
    seq("shift", [(lambda: (as_sub(v(6)), as_sub(v(5))), True),
                  (lambda: (as_sub(v(3)), as_sub(v(5))), False)], id="subclass-shrinking-input"),
    seq("axpy", [(lambda: (2.0, as_sub(v(5)), as_sub(v(5))), True),
                 (lambda: (2.0, as_sub(v(50)), as_sub(v(5))), False)],
        id="subclass-growing-loop-extent"),
    seq("axpy", [(lambda: (2.0, as_sub(v()), as_sub(v())), True),
                 (lambda: (2.0, as_sub(v(dtype=np.float32)), as_sub(v(dtype=np.float32))), True)],
        id="subclass-dtype-change"),
    seq("axpy", [(lambda: (2.0, as_sub(v()), as_sub(v())), True),
                 (lambda: (2.0, as_sub(v(10))[::2], as_sub(v())), False)],
        id="subclass-then-strided"),
    seq("axpy", [(lambda: (2.0, as_sub(v()), as_sub(v())), True),
                 (lambda: (2.0, as_sub(v()), as_sub(v(dtype=np.float16))), False)],
        id="subclass-then-float16"),
    seq("axpy", [(lambda: (2.0, as_sub(v()), as_sub(v())), True),
                 (lambda: (2.0, as_sub(v()), _readonly(as_sub(v()))), False)],
        id="subclass-then-read-only"),
    seq("axpy", [(lambda: (2.0, v(), v()), True),
                 (lambda: (2.0, v(), big_endian(v(), ">f8")), False)],
        id="native-then-big-endian"),
    seq("axpy", [(lambda: (2.0, v(), v()), True),
                 (lambda: (2.0, v(), v()[::-1]), False)], id="contiguous-then-reversed"),
    seq("axpy", [(lambda: (2.0, v(), v()), True), (lambda: (2.0, v(), v(3)), False)],
        id="then-shorter-y"),
    seq("axpy", [(lambda: (2.0, v(), v()), True), (lambda: (2.0, [1.0] * 5, v()), False)],
        id="then-list"),
    seq("inc", [(lambda: (np.arange(5), 3), True), (lambda: (np.arange(5), 2 ** 64), False)],
        id="int-scalar-then-2-64"),
    seq("inc", [(lambda: (np.arange(5), np.int64(3)), True),
                (lambda: (np.arange(5), 2.5), False)], id="int-scalar-then-float"),
]


@pytest.mark.parametrize("name, steps, observe", CALL_CASES + SEQUENCE_CASES)
@isolated
def test_call_arguments(base, name, steps, observe):
    k = getattr(base, name)
    python = k.python
    if "backend" not in [a.name for a in k.program.arguments]:
        def python(*args, **kwargs):  # `backend=` is polypipe's own keyword, not the function's
            kwargs.pop("backend", None)
            return k.python(*args, **kwargs)
    for index, (make, must) in enumerate(steps):
        check_against_python(k, python, make, must_match=must, observe=observe,
                             where=f"call #{index + 1}")


def _memmap_steps(tmp_path, modes):
    # a fresh file for every make(): Python's and polypipe's inputs must not share memory
    return [(lambda m=m: (2.0, 3, _mm(tmp_path / f"{uuid.uuid4().hex}.dat", m)), m)
            for m in modes]


def _mm(path, mode):
    array = memmap(path, mode="w+")
    if mode == "w+":
        return array
    del array
    return np.memmap(path, dtype=np.float64, mode=mode, shape=(5,))


@pytest.mark.parametrize("modes", [("r+",), ("c",), ("r",), ("r+", "r"), ("w+", "r")],
                         ids=lambda m: "memmap-" + "-then-".join(m))
@isolated
def test_memmap_arguments(base, tmp_path, modes):
    k = base.scaled
    for index, (make, mode) in enumerate(_memmap_steps(tmp_path, modes)):
        check_against_python(k, k.python, make, must_match=mode in ("r+", "c", "w+"),
                             where=f"call #{index + 1} ({mode})")


# ---- optimize(...).run(..., backend="emulate") on aliased and odd arguments ----------------

SMALL = dict(block=(8, 8), threads=(2, 2), reduction=4, shared_stages=2, register_stages=2)


@pytest.fixture(scope="session")
def gemm_opt(base):
    return pp.optimize(base.gemm, GpuConfig(**SMALL))


def _gemm_args(n=8, m=8, kk=8):
    rng = np.random.default_rng(1)
    return (1.5, 0.5, rng.random((n, m)), rng.random((n, kk)), rng.random((kk, m)))


def _gemm_alias_full(kind, n=8):
    rng = np.random.default_rng(2)
    C = rng.random((n, n))
    other = rng.random((n, n))
    return {"CA": (1.5, 0.5, C, C, other), "CB": (1.5, 0.5, C, other, C),
            "AB": (1.5, 0.5, other, C, C), "ALL": (1.5, 0.5, C, C, C)}[kind]


def _gemm_overlap(n=8):
    buffer = np.random.default_rng(3).random(2 * n * n)
    C = buffer[0:n * n].reshape(n, n)
    A = buffer[n:n + n * n].reshape(n, n)
    return (1.5, 0.5, C, A, buffer[n * n:2 * n * n].reshape(n, n).copy())


EMULATE_CASES = [
    pytest.param(lambda: _gemm_args(), {}, True, None, id="control"),
    pytest.param(lambda: _gemm_args(13, 11, 9), {}, True, None, id="sizes-not-multiples"),
    pytest.param(lambda: _gemm_args(0, 8, 8), {}, False, None, id="zero-rows"),
    pytest.param(lambda: _gemm_args(8, 8, 0), {}, False, None, id="zero-reduction"),
    pytest.param(lambda: _gemm_alias_full("CA"), {}, False, None, id="alias-C-is-A"),
    pytest.param(lambda: _gemm_alias_full("CB"), {}, False, None, id="alias-C-is-B"),
    pytest.param(lambda: _gemm_alias_full("AB"), {}, True, None, id="alias-A-is-B-read-only"),
    pytest.param(lambda: _gemm_alias_full("ALL"), {}, False, None, id="alias-all-three"),
    pytest.param(_gemm_overlap, {}, False, _bases, id="overlap-C-A-views"),
    pytest.param(lambda: _gemm_args()[:4], {}, False, None, id="too-few-args"),
    pytest.param(lambda: (1.5, 0.5, [[0.0]], np.ones((8, 8)), np.ones((8, 8))), {}, False, None,
                 id="C-list"),
    pytest.param(lambda: tuple(a.astype(np.float16) if isinstance(a, np.ndarray) else a
                               for a in _gemm_args()), {}, False, None, id="float16"),
    pytest.param(lambda: tuple(big_endian(a, ">f8") if isinstance(a, np.ndarray) else a
                               for a in _gemm_args()), {}, False, None, id="big-endian"),
    pytest.param(lambda: tuple(a.T if isinstance(a, np.ndarray) else a
                               for a in _gemm_args()), {}, False, None, id="transposed"),
    pytest.param(lambda: tuple(as_sub(a) if isinstance(a, np.ndarray) else a
                               for a in _gemm_args()), {}, True, None, id="subclass"),
    pytest.param(lambda: (1.5, 0.5, np.ones((8, 8)), np.ones((8, 9)), np.ones((8, 8))), {},
                 False, None, id="inconsistent-shapes"),
    pytest.param(lambda: (None, 0.5) + _gemm_args()[2:], {}, False, None, id="alpha-none"),
    pytest.param(lambda: (2 ** 64, 0.5) + _gemm_args()[2:], {}, False, None, id="alpha-2-64"),
    pytest.param(lambda: _gemm_args(), {"backend": "bogus"}, False, None, id="backend-bogus"),
    pytest.param(lambda: _gemm_args(), {"backend": "c"}, False, None, id="backend-c"),
    pytest.param(lambda: _gemm_args(), {"backend": None}, False, None, id="backend-none"),
    pytest.param(lambda: _gemm_args(), {"backend": "cuda"}, False, None, id="backend-cuda-no-gpu"),
    pytest.param(lambda: _gemm_args(), {"thread_order": "bogus"}, False, None,
                 id="thread-order-bogus"),
    pytest.param(lambda: _gemm_args(), {"thread_order": None}, False, None,
                 id="thread-order-none"),
    pytest.param(lambda: _gemm_args(), {"thread_order": 5}, False, None, id="thread-order-int"),
    pytest.param(lambda: _gemm_args(), {"thread_order": "reverse"}, True, None,
                 id="thread-order-reverse"),
    pytest.param(lambda: _gemm_args(), {"seed": -1}, False, None, id="seed-minus-1"),
    pytest.param(lambda: _gemm_args(), {"seed": "x"}, False, None, id="seed-string"),
    pytest.param(lambda: _gemm_args(), {"seed": 2 ** 64}, False, None, id="seed-2-64"),
    pytest.param(lambda: _gemm_args(), {"seed": None}, False, None, id="seed-none"),
    pytest.param(lambda: _gemm_args(), {"seed": 1.5}, False, None, id="seed-float"),
    pytest.param(lambda: _gemm_args(), {"seed": True}, False, None, id="seed-true"),
    pytest.param(lambda: _gemm_args(), {"seed": 12345}, True, None, id="seed-other"),
]


@pytest.mark.parametrize("make, options, must, observe", EMULATE_CASES)
@isolated
def test_emulate_run(base, gemm_opt, make, options, must, observe):
    check_against_python(lambda *a: gemm_opt.run(*a, **options), base.gemm.python, make,
                         must_match=must, observe=observe, where="opt.run")


@isolated
def test_emulate_growing_sizes(base, gemm_opt):
    for index, n in enumerate((8, 16, 24)):
        check_against_python(gemm_opt.run, base.gemm.python, lambda n=n: _gemm_args(n, n, n),
                             must_match=True, where=f"opt.run #{index + 1}")


# =============================================================================================
# 3. Configurations and the optimized program's other entry points
# =============================================================================================

CONFIGS = [
    ("block-bools", lambda: GpuConfig(block=(True, True))),
    ("threads-bools", lambda: GpuConfig(**{**SMALL, "threads": (True, True)})),
    ("block-and-threads-bools", lambda: GpuConfig(**{**SMALL, "block": (True, True),
                                                     "threads": (True, True)})),
    ("reduction-true", lambda: GpuConfig(**{**SMALL, "reduction": True, "register_stages": 1})),
    ("shared-stages-true", lambda: GpuConfig(**{**SMALL, "shared_stages": True})),
    ("register-stages-true", lambda: GpuConfig(**{**SMALL, "register_stages": True})),
    ("blocks-per-sm-true", lambda: GpuConfig(**{**SMALL, "blocks_per_sm": True})),
    ("fragment-vector-true", lambda: GpuConfig(**{**SMALL, "fragment_vector": True})),
    ("block-floats", lambda: GpuConfig(**{**SMALL, "block": (8.0, 8.0)})),
    ("block-fractional", lambda: GpuConfig(**{**SMALL, "block": (8.5, 8)})),
    ("reduction-float", lambda: GpuConfig(**{**SMALL, "reduction": 4.0})),
    ("shared-stages-float", lambda: GpuConfig(**{**SMALL, "shared_stages": 2.5})),
    ("register-stages-float", lambda: GpuConfig(**{**SMALL, "register_stages": 1.0})),
    ("block-negative", lambda: GpuConfig(**{**SMALL, "block": (-8, 8)})),
    ("threads-negative", lambda: GpuConfig(**{**SMALL, "threads": (-2, -2)})),
    ("threads-zero", lambda: GpuConfig(**{**SMALL, "threads": (0, 0)})),
    ("reduction-negative", lambda: GpuConfig(**{**SMALL, "reduction": -4})),
    ("reduction-zero", lambda: GpuConfig(**{**SMALL, "reduction": 0})),
    ("shared-stages-zero", lambda: GpuConfig(**{**SMALL, "shared_stages": 0})),
    ("shared-stages-negative", lambda: GpuConfig(**{**SMALL, "shared_stages": -1})),
    ("register-stages-zero", lambda: GpuConfig(**{**SMALL, "register_stages": 0})),
    ("blocks-per-sm-negative", lambda: GpuConfig(**{**SMALL, "blocks_per_sm": -1})),
    ("blocks-per-sm-float", lambda: GpuConfig(**{**SMALL, "blocks_per_sm": 2.0})),
    ("fragment-vector-zero", lambda: GpuConfig(**{**SMALL, "fragment_vector": 0})),
    ("fragment-vector-negative", lambda: GpuConfig(**{**SMALL, "fragment_vector": -4})),
    ("fragment-vector-3", lambda: GpuConfig(**{**SMALL, "fragment_vector": 3})),
    ("fragment-vector-huge", lambda: GpuConfig(**{**SMALL, "fragment_vector": 2 ** 40})),
    ("fragment-vector-pair", lambda: GpuConfig(**{**SMALL, "fragment_vector": (1, 2)})),
    ("fragment-vector-pair-zero", lambda: GpuConfig(**{**SMALL, "fragment_vector": (0, 2)})),
    ("fragment-vector-list", lambda: GpuConfig(**{**SMALL, "fragment_vector": [2, 2]})),
    ("fragment-vector-triple", lambda: GpuConfig(**{**SMALL, "fragment_vector": (2, 2, 2)})),
    ("block-string", lambda: GpuConfig(**{**SMALL, "block": "8x8"})),
    ("block-string-pair", lambda: GpuConfig(**{**SMALL, "block": ("8", "8")})),
    ("threads-string", lambda: GpuConfig(**{**SMALL, "threads": "22"})),
    ("reduction-string", lambda: GpuConfig(**{**SMALL, "reduction": "4"})),
    ("shared-stages-string", lambda: GpuConfig(**{**SMALL, "shared_stages": "2"})),
    ("block-one-element", lambda: GpuConfig(**{**SMALL, "block": (8,)})),
    ("block-three-elements", lambda: GpuConfig(**{**SMALL, "block": (8, 8, 8)})),
    ("threads-three-elements", lambda: GpuConfig(**{**SMALL, "threads": (2, 2, 2)})),
    ("block-empty", lambda: GpuConfig(**{**SMALL, "block": ()})),
    ("block-int", lambda: GpuConfig(**{**SMALL, "block": 8})),
    ("block-none", lambda: GpuConfig(**{**SMALL, "block": None})),
    ("threads-none", lambda: GpuConfig(**{**SMALL, "threads": None})),
    ("reduction-none", lambda: GpuConfig(**{**SMALL, "reduction": None})),
    ("block-list", lambda: GpuConfig(**{**SMALL, "block": [8, 8]})),
    ("block-numpy-ints", lambda: GpuConfig(**{**SMALL, "block": (np.int64(8), np.int64(8))})),
    ("reduction-numpy-int", lambda: GpuConfig(**{**SMALL, "reduction": np.int32(4)})),
    ("block-huge", lambda: GpuConfig(**{**SMALL, "block": (2 ** 40, 2 ** 40)})),
    ("block-2-63", lambda: GpuConfig(**{**SMALL, "block": (2 ** 63, 2 ** 63),
                                        "threads": (2 ** 31, 2 ** 32)})),
    ("threads-too-many", lambda: GpuConfig(**{**SMALL, "block": (1024, 1024),
                                              "threads": (1024, 1024)})),
    ("reduction-huge", lambda: GpuConfig(**{**SMALL, "reduction": 2 ** 40})),
    ("shared-stages-huge", lambda: GpuConfig(**{**SMALL, "shared_stages": 10 ** 6})),
    ("register-stages-huge", lambda: GpuConfig(**{**SMALL, "register_stages": 10 ** 6})),
    ("target-string", lambda: GpuConfig(**{**SMALL, "target": "sm_80"})),
    ("target-none", lambda: GpuConfig(**{**SMALL, "target": None})),
    ("target-zero-threads", lambda: GpuConfig(**{**SMALL, "target": GpuTarget(max_threads=0)})),
    ("target-negative-shared", lambda: GpuConfig(**{**SMALL,
                                                    "target": GpuTarget(shared_bytes=-1)})),
    ("target-zero-shared", lambda: GpuConfig(**{**SMALL, "target": GpuTarget(shared_bytes=0)})),
    ("target-name-int", lambda: GpuConfig(**{**SMALL, "target": GpuTarget(name=5)})),
    ("target-zero-registers", lambda: GpuConfig(**{**SMALL,
                                                   "target": GpuTarget(registers_per_thread=0)})),
    ("not-a-config-dict", lambda: {"block": (8, 8)}),
    ("not-a-config-string", lambda: "block=8x8,threads=2x2"),
    ("not-a-config-int", lambda: 5),
    ("not-a-config-true", lambda: True),
    ("not-a-config-list", lambda: [8, 8]),
    ("not-a-config-target", lambda: GpuTarget()),
    ("not-a-config-class", lambda: GpuConfig),
    ("config-none-default", lambda: None),
    ("config-small-control", lambda: GpuConfig(**SMALL)),
]


@pytest.mark.parametrize("factory", [pytest.param(f, id=i) for i, f in CONFIGS])
@isolated
def test_configurations(base, factory):
    config, exc = clear_or_ok(factory, "building the config")
    if exc is not None:
        return
    opt, exc = clear_or_ok(lambda: pp.optimize(base.gemm, config), "optimize")
    if exc is not None:
        return
    # Accepted: the kernels must compute what Python computes.
    check_against_python(opt.run, base.gemm.python, lambda: _gemm_args(8, 8, 8),
                         where="opt.run with an accepted config")


def _ewise_args():
    return (np.zeros((8, 8)), np.arange(64.0).reshape(8, 8))


OPTIMIZE_PROGRAMS = [
    ("jacobi_2d", "ex", lambda: (2, np.random.default_rng(0).random((8, 8)),
                                 np.random.default_rng(1).random((8, 8)))),
    ("cholesky", "ex", lambda: (np.eye(6) * 4.0 + 1.0,)),
    ("deriche", "ex", lambda: (0.5, np.random.default_rng(0).random((6, 5)), np.zeros((6, 5)),
                               np.zeros((6, 5)), np.zeros((6, 5)))),
    ("conv2d_nhwc", "ex", lambda: (np.zeros((1, 4, 4, 8)), np.random.default_rng(0).random(
        (1, 8, 8, 8)), np.random.default_rng(1).random((3, 3, 8, 8)))),
    ("batched_matmul", "ex", lambda: (np.zeros((2, 8, 8)), np.random.default_rng(0).random(
        (2, 8, 8)), np.random.default_rng(1).random((2, 8, 8)))),
    ("stencil", "base", lambda: (v(8), np.zeros(8))),
    ("prefix", "base", lambda: (v(8), np.zeros(8))),
    ("rev", "base", lambda: (v(8), np.zeros(8))),
    ("axpy", "base", lambda: (2.0, v(8), v(8))),
    ("scaled", "base", lambda: (2.0, 4, v(8))),
    ("empty", "base", lambda: (v(8),)),
    ("ewise", "base", _ewise_args),
    ("dot", "base", lambda: (np.zeros(1), v(8), v(8))),
    ("matvec", "base", lambda: (np.zeros(8), np.arange(64.0).reshape(8, 8), v(8))),
    ("two_nests", "base", lambda: (np.zeros((8, 8)), np.ones((8, 8)), np.ones((8, 8)),
                                   np.zeros((8, 8)))),
    ("trmm", "base", lambda: (np.zeros((8, 8)), np.arange(64.0).reshape(8, 8),
                              np.ones((8, 8)))),
    ("matmul", "base", lambda: (np.zeros((8, 8)), np.arange(64.0).reshape(8, 8),
                                np.ones((8, 8)))),
    ("grid", "base", lambda: (np.zeros((8, 8)), 8, 8)),
]


@pytest.mark.parametrize("name, where, make", [pytest.param(n, w, m, id=f"optimize-{n}")
                                               for n, w, m in OPTIMIZE_PROGRAMS])
@isolated
def test_optimize_programs(base, examples, name, where, make):
    k = examples[name] if where == "ex" else getattr(base, name)
    opt, exc = clear_or_ok(lambda: pp.optimize(k, GpuConfig(**SMALL)), "optimize")
    if exc is not None:
        return
    check_against_python(opt.run, k.python, make, where="opt.run")


OPTIMIZE_TARGETS = [
    ("string", lambda b: "gemm"),
    ("none", lambda b: None),
    ("int", lambda b: 42),
    ("plain-function", lambda b: b.gemm.python),
    ("program-ok", lambda b: b.gemm.program),
    ("config-instead-of-program", lambda b: GpuConfig()),
]


@pytest.mark.parametrize("target", [pytest.param(t, id=f"optimize-arg-{i}")
                                    for i, t in OPTIMIZE_TARGETS])
@isolated
def test_optimize_targets(base, target):
    clear_or_ok(lambda: pp.optimize(target(base), GpuConfig(**SMALL)), "optimize")


SOURCE_CALLS = [
    ("cuda-dtype-float16", lambda o, a: o.cuda_source(dtype="float16")),
    ("cuda-dtype-bogus", lambda o, a: o.cuda_source(dtype="bogus")),
    ("cuda-dtype-none", lambda o, a: o.cuda_source(dtype=None)),
    ("cuda-dtype-type-object", lambda o, a: o.cuda_source(dtype=np.float32)),
    ("cuda-dtype-empty", lambda o, a: o.cuda_source(dtype="")),
    ("cuda-dtype-bool", lambda o, a: o.cuda_source(dtype="bool")),
    ("cuda-dtype-complex64", lambda o, a: o.cuda_source(dtype="complex64")),
    ("cuda-dtype-int64", lambda o, a: o.cuda_source(dtype="int64")),
    ("cuda-dtype-float64", lambda o, a: o.cuda_source(dtype="float64")),
    ("cuda-dtype-float32", lambda o, a: o.cuda_source(dtype="float32")),
    ("cuda-args-wrong-count", lambda o, a: o.cuda_source(a[0], a[1])),
    ("cuda-args-list", lambda o, a: o.cuda_source(1.5, 0.5, [[1.0]], a[3], a[4])),
    ("cuda-args-float16", lambda o, a: o.cuda_source(*[x.astype(np.float16) if isinstance(
        x, np.ndarray) else x for x in a])),
    ("cuda-args-big-endian", lambda o, a: o.cuda_source(*[x.astype(">f4") if isinstance(
        x, np.ndarray) else x for x in a])),
    ("cuda-args-and-dtype", lambda o, a: o.cuda_source(*a, dtype="bogus")),
    ("cuda-args-huge-sizes", lambda o, a: o.cuda_source(1.5, 0.5, np.empty((2 ** 20, 0)),
                                                        np.empty((2 ** 20, 0)),
                                                        np.empty((0, 0)))),
    ("cuda-args-ok", lambda o, a: o.cuda_source(*a)),
    ("run-no-args", lambda o, a: o.run()),
    ("run-wrong-count", lambda o, a: o.run(a[0])),
    ("run-thread-order-bogus", lambda o, a: o.run(*a, thread_order="bogus")),
    ("run-thread-order-none", lambda o, a: o.run(*a, thread_order=None)),
    ("run-seed-string", lambda o, a: o.run(*a, seed="x")),
    ("run-seed-negative", lambda o, a: o.run(*a, seed=-1)),
    ("run-seed-2-64", lambda o, a: o.run(*a, seed=2 ** 64)),
    ("run-seed-float", lambda o, a: o.run(*a, seed=0.5)),
    ("run-args-list", lambda o, a: o.run(1.5, 0.5, [[1.0]], a[3], a[4])),
    ("run-ok", lambda o, a: o.run(*a)),
    ("describe", lambda o, a: o.describe()),
    ("time-cuda-no-gpu", lambda o, a: o.time_cuda(*a)),
    ("time-cuda-repeat-zero", lambda o, a: o.time_cuda(*a, repeat=0)),
    ("time-cuda-repeat-string", lambda o, a: o.time_cuda(*a, repeat="x")),
    ("time-cuda-bad-args", lambda o, a: o.time_cuda([1.0])),
    ("run-cuda-no-gpu", lambda o, a: o.run(*a, backend="cuda")),
]


@pytest.mark.parametrize("action", [pytest.param(f, id=i) for i, f in SOURCE_CALLS])
@isolated
def test_optimized_entry_points(gemm_opt, action):
    value, exc = clear_or_ok(lambda: action(gemm_opt, _gemm_args()), "entry point")
    if exc is None:
        assert isinstance(value, (str, float, type(None))), type(value)


@pytest.mark.parametrize("call", [
    pytest.param(lambda o, a: o.time_cuda(*a), id="time_cuda"),
    pytest.param(lambda o, a: o.run(*a, backend="cuda"), id="run-cuda"),
])
@isolated
def test_cuda_without_gpu_says_what_is_missing(gemm_opt, call):
    from polypipe.codegen.cuda_runtime import cuda_unavailable_reason

    if cuda_unavailable_reason() is None:
        pytest.skip("a GPU and PyCUDA are available here")
    exc = expect_clear_error(lambda: call(gemm_opt, _gemm_args()), "cuda without a GPU")
    text = str(exc).lower()
    assert any(word in text for word in ("pycuda", "gpu", "driver", "cuda")), str(exc)


# =============================================================================================
# 4. Other API: dependences, check_schedule, transformations
# =============================================================================================

ODD_PROGRAMS = [
    ("empty-body", "def f(A):\n    pass\n"),
    ("no-loops", "def f(A):\n    A[0] = 1.0\n    A[1] = A[0]\n"),
    ("self-dependence", "def f(A):\n    N = A.shape[0]\n    for i in range(N):\n"
                        "        A[0] += A[0]\n"),
    ("zero-trip", "def f(A):\n    for i in range(0):\n        A[i] = 1.0\n"),
    ("negative-step", "def f(A):\n    N = A.shape[0]\n    for i in range(N - 1, 0, -1):\n"
                      "        A[i] = A[i - 1]\n"),
    ("huge-bounds", "def f(A):\n    N = A.shape[0]\n    for i in range(10 ** 30, 10 ** 30 + N):\n"
                    "        A[i - 10 ** 30] = 1.0\n"),
    ("bounds-2-63", "def f(A):\n    N = A.shape[0]\n    for i in range(2 ** 63, 2 ** 63 + N):\n"
                    "        A[i - 2 ** 63] = A[i - 2 ** 63] + 1.0\n"),
    ("deep-nest", "def f(A):\n" + "".join("    " * (d + 1) + f"for i{d} in range(2):\n"
                                          for d in range(12))
     + "    " * 13 + "A[i0] += A[i11]\n"),
    ("mod-div-subscripts", "def f(A):\n    N = A.shape[0]\n    for i in range(N):\n"
                           "        A[i % 2] += A[i // 2]\n"),
    ("reversal", "def f(A):\n    N = A.shape[0]\n    for i in range(N):\n"
                 "        A[i] = A[N - 1 - i]\n"),
    ("local-only", "def f(A):\n    s = 0.0\n    for i in range(3):\n        s = s + 1.0\n"
                   "    A[0] = s\n"),
    ("int-params", "def f(A, n, m):\n    for i in range(n):\n        for j in range(m):\n"
                   "            A[i] += A[j]\n"),
    ("conditions", "def f(A):\n    N = A.shape[0]\n    for i in range(N):\n"
                   "        if i % 3 == 1 and i < N - 2:\n            A[i] = A[i + 2]\n"),
    ("unused-args", "def f(A, B, c, n):\n    A[0] = 1.0\n"),
    ("isl-keyword-names", "def f(mod, floor):\n    infty = mod.shape[0]\n"
                          "    for exists in range(infty):\n        for rat in range(exists):\n"
                          "            floor[exists] += mod[rat]\n"),
    ("non-ascii-names", "def f(Ä, ß):\n    Ñ = Ä.shape[0]\n    for ï in range(Ñ):\n"
                        "        ß[ï] = Ä[Ñ - 1 - ï]\n"),
]


@pytest.mark.parametrize("source", [pytest.param(s, id=i) for i, s in ODD_PROGRAMS])
@isolated
def test_analysis_on_odd_programs(tmp_path, monkeypatch, source):
    # None of these small nests needs long in isl's scheduler; the 12-deep nest never
    # finishes, so a shorter limit tests the same fallback 50 s sooner.
    from polypipe.analysis import scheduling

    monkeypatch.setattr(scheduling, "SCHEDULER_SECONDS", 8.0)
    func = load_function(tmp_path, source)
    k, exc = clear_or_ok(lambda: pp.kernel(func), "decoration")
    if exc is not None:
        return
    program = k.program
    clear_or_ok(lambda: str(program), "str(program)")
    deps, exc = clear_or_ok(lambda: pp.dependences(program), "dependences")
    if deps is not None:
        clear_or_ok(lambda: deps.to_text(), "to_text")
        try:
            pp.check_schedule(program, program.schedule)
        except Exception as e:  # noqa: BLE001
            assert_clear(e, "check_schedule(own schedule)")
            pytest.fail(f"REFUSED: the program's own schedule is refused: {first_line(e)}",
                        pytrace=False)
    clear_or_ok(lambda: pp.pipelinable_reads(program), "pipelinable_reads")
    clear_or_ok(lambda: pp.optimize(program, GpuConfig(**SMALL)), "optimize")
    from polypipe.analysis.render import export_dependences

    if deps is not None:
        clear_or_ok(lambda: export_dependences(deps, "dot"), "export dot")


DEPENDENCE_TARGETS = [
    ("none", lambda b: None),
    ("string", lambda b: "{ S0[i] -> A[i] }"),
    ("int", lambda b: 42),
    ("kernel-object", lambda b: b.gemm),
    ("plain-function", lambda b: b.gemm.python),
]


@pytest.mark.parametrize("target", [pytest.param(t, id=f"dependences-of-{i}")
                                    for i, t in DEPENDENCE_TARGETS])
@isolated
def test_dependences_bad_targets(base, target):
    clear_or_ok(lambda: pp.dependences(target(base)), "dependences")


SCHEDULES = [
    ("garbage-text", "garbage", ()),
    ("empty-text", "", ()),
    ("empty-map", "{ }", ()),
    ("missing-statement", "[NI, NJ, NK] -> { S0[i, j] -> [i, 0, j, 0] }", ()),
    ("unknown-statement", "{ S9[i] -> [i] }", ()),
    ("wrong-arity", "[NI, NJ, NK] -> { S0[i] -> [i]; S1[i, k, j] -> [i, 1, k, j] }", ()),
    ("all-same-time", "[NI, NJ, NK] -> { S0[i, j] -> [0]; S1[i, k, j] -> [0] }", ()),
    ("reversed", "[NI, NJ, NK] -> { S0[i, j] -> [-i, 0, -j, 0]; S1[i, k, j] -> [-i, 1, -k, -j] }",
     ()),
    ("unknown-parameter", "[Q] -> { S0[i, j] -> [Q, i, j, 0]; S1[i, k, j] -> [Q, i, k, j] }", ()),
    ("non-affine", "[NI, NJ, NK] -> { S0[i, j] -> [i * j]; S1[i, k, j] -> [i * k] }", ()),
    ("huge-coefficient", "[NI, NJ, NK] -> { S0[i, j] -> [100000000000000000000000000000 * i, 0, "
                         "j, 0]; S1[i, k, j] -> [100000000000000000000000000000 * i, 1, k, j] }",
     ()),
    ("own-text-ok", None, ()),
    ("parallel-99", None, (99,)),
    ("parallel-negative", None, (-1,)),
    ("parallel-unknown-name", None, ("zz",)),
    ("parallel-string-not-list", None, "i"),
    ("parallel-float", None, (1.5,)),
    ("parallel-none-entry", None, (None,)),
    ("parallel-true", None, (True,)),
    ("parallel-none", None, None),
    ("parallel-huge", None, (2 ** 70,)),
    ("schedule-none", "NONE", ()),
    ("schedule-int", "INT", ()),
    ("schedule-isl-set", "SET", ()),
]


@pytest.mark.parametrize("text, parallel", [pytest.param(t, p, id=i) for i, t, p in SCHEDULES])
@isolated
def test_check_schedule_bad_input(base, text, parallel):
    import islpy as isl

    program = base.gemm.program
    if text is None:
        schedule = program.schedule
    elif text == "NONE":
        schedule = None
    elif text == "INT":
        schedule = 5
    elif text == "SET":
        schedule = isl.Set("{ [i] : 0 <= i < 3 }")
    else:
        schedule = text
    clear_or_ok(lambda: pp.check_schedule(program, schedule, parallel=parallel),
                "check_schedule")


@isolated
def test_check_schedule_deps_garbage(base):
    program = base.gemm.program
    clear_or_ok(lambda: pp.check_schedule(program, program.schedule, deps="x"), "check_schedule")


TRANSFORMS = [
    ("tile-size-zero", lambda p: pp.tile(p, "i", 0)),
    ("tile-size-negative", lambda p: pp.tile(p, "i", -1)),
    ("tile-size-huge", lambda p: pp.tile(p, "i", 2 ** 70)),
    ("tile-size-float", lambda p: pp.tile(p, "i", 1.5)),
    ("tile-size-string", lambda p: pp.tile(p, "i", "32")),
    ("tile-size-true", lambda p: pp.tile(p, "i", True)),
    ("tile-size-none", lambda p: pp.tile(p, "i", None)),
    ("tile-size-numpy", lambda p: pp.tile(p, "i", np.int64(4))),
    ("tile-sizes-too-many", lambda p: pp.tile(p, "i", [32, 32])),
    ("tile-sizes-too-few", lambda p: pp.tile(p, ("i", "k"), (32,))),
    ("tile-sizes-empty", lambda p: pp.tile(p, "i", [])),
    ("tile-unknown-loop", lambda p: pp.tile(p, "zz", 32)),
    ("tile-unknown-statement", lambda p: pp.tile(p, "i", 32, statement="S99")),
    ("tile-statement-int", lambda p: pp.tile(p, "i", 32, statement=5)),
    ("tile-repeated-loop", lambda p: pp.tile(p, ["i", "i"], [2, 2])),
    ("tile-no-loops", lambda p: pp.tile(p, [], [])),
    ("tile-empty-name", lambda p: pp.tile(p, "", 4)),
    ("tile-loops-none", lambda p: pp.tile(p, None, 4)),
    ("tile-loops-int", lambda p: pp.tile(p, 5, 4)),
    ("tile-ambiguous-j", lambda p: pp.tile(p, "j", 4)),
    ("tile-names-collide", lambda p: pp.tile(p, ("i", "k"), (4, 4), tile_names=["j", "x"])),
    ("tile-names-with-space", lambda p: pp.tile(p, ("i", "k"), (4, 4),
                                                tile_names=["bad name", "x"])),
    ("tile-names-keyword", lambda p: pp.tile(p, ("i", "k"), (4, 4), tile_names=["for", "x"])),
    ("tile-names-statement", lambda p: pp.tile(p, ("i", "k"), (4, 4), tile_names=["S0", "x"])),
    ("tile-names-non-ascii", lambda p: pp.tile(p, ("i", "k"), (4, 4), tile_names=["ï", "ß"])),
    ("tile-names-ints", lambda p: pp.tile(p, ("i", "k"), (4, 4), tile_names=[1, 2])),
    ("tile-names-too-few", lambda p: pp.tile(p, ("i", "k"), (4, 4), tile_names=["a"])),
    ("tile-names-string", lambda p: pp.tile(p, ("i", "k"), (4, 4), tile_names="ab")),
    ("tile-names-duplicate", lambda p: pp.tile(p, ("i", "k"), (4, 4), tile_names=["a", "a"])),
    ("tile-ok", lambda p: pp.tile(p, "i", 4)),
    ("interchange-same", lambda p: pp.interchange(p, "i", "i")),
    ("interchange-unknown-inner", lambda p: pp.interchange(p, "i", "zz")),
    ("interchange-unknown-outer", lambda p: pp.interchange(p, "zz", "i")),
    ("interchange-none", lambda p: pp.interchange(p, None, "i")),
    ("interchange-ambiguous", lambda p: pp.interchange(p, "i", "j")),
    ("interchange-wrong-statement", lambda p: pp.interchange(p, "i", "k", statement="S0")),
    ("interchange-unknown-statement", lambda p: pp.interchange(p, "i", "k", statement="S99")),
    ("interchange-ok", lambda p: pp.interchange(p, "k", "j", statement="S1")),
    ("skew-factor-zero", lambda p: pp.skew(p, "k", "i", factor=0)),
    ("skew-factor-negative", lambda p: pp.skew(p, "k", "i", factor=-1)),
    ("skew-factor-float", lambda p: pp.skew(p, "k", "i", factor=1.5)),
    ("skew-factor-true", lambda p: pp.skew(p, "k", "i", factor=True)),
    ("skew-factor-huge", lambda p: pp.skew(p, "k", "i", factor=2 ** 70)),
    ("skew-factor-string", lambda p: pp.skew(p, "k", "i", factor="2")),
    ("skew-by-itself", lambda p: pp.skew(p, "i", "i")),
    ("skew-unknown", lambda p: pp.skew(p, "zz", "i")),
    ("skew-by-unknown", lambda p: pp.skew(p, "i", "zz")),
    ("skew-by-inner", lambda p: pp.skew(p, "i", "k")),
    ("split-unknown", lambda p: pp.split_band(p, "zz")),
    ("split-unknown-statement", lambda p: pp.split_band(p, "i", statement="nope")),
    ("split-none", lambda p: pp.split_band(p, None)),
    ("fuse-bands-unknown", lambda p: pp.fuse_bands(p, "zz")),
    ("fuse-bands-empty", lambda p: pp.fuse_bands(p, [])),
    ("fuse-bands-one", lambda p: pp.fuse_bands(p, ["i"])),
    ("fuse-loops-same", lambda p: pp.fuse_loops(p, "S0", "S0")),
    ("fuse-loops-unknown-second", lambda p: pp.fuse_loops(p, "S0", "S99")),
    ("fuse-loops-unknown-first", lambda p: pp.fuse_loops(p, "S99", "S0")),
    ("fuse-loops-none", lambda p: pp.fuse_loops(p, None, None)),
    ("fuse-loops-reversed", lambda p: pp.fuse_loops(p, "S1", "S0")),
    ("mark-carrying-loop", lambda p: pp.mark_band(p, "k", "block")),
    ("mark-kind-warp", lambda p: pp.mark_band(p, "i", "warp")),
    ("mark-kind-none", lambda p: pp.mark_band(p, "i", None)),
    ("mark-kind-int", lambda p: pp.mark_band(p, "i", 5)),
    ("mark-kind-empty", lambda p: pp.mark_band(p, "i", "")),
    ("mark-repeated-loop", lambda p: pp.mark_band(p, ["i", "i"], "block")),
    ("mark-twice", lambda p: pp.mark_band(pp.mark_band(p, "i", "block"), "i", "block")),
    ("mark-block-inside-thread", lambda p: pp.mark_band(pp.mark_band(p, "i", "thread"), "j",
                                                        "block", statement="S0")),
    ("mark-ok", lambda p: pp.mark_band(p, "i", "block")),
    ("replay-garbage", lambda p: pp.replay_transforms(p, ["garbage"])),
    ("replay-double-star", lambda p: pp.replay_transforms(p, ["tile(**{})"])),
    ("replay-unknown-keyword", lambda p: pp.replay_transforms(
        p, ["tile(loops='i', sizes=32, bogus=1)"])),
    ("replay-missing-keyword", lambda p: pp.replay_transforms(p, ["tile(sizes=32)"])),
    ("replay-size-zero", lambda p: pp.replay_transforms(p, ["tile(loops='i', sizes=(0,))"])),
    ("replay-os-system", lambda p: pp.replay_transforms(p, ["os.system('true')"])),
    ("replay-import", lambda p: pp.replay_transforms(p, ["__import__('os')"])),
    ("replay-nested-lists", lambda p: pp.replay_transforms(
        p, ["tile(loops='i', sizes=" + "[" * 200 + "]" * 200 + ")"])),
    ("replay-huge-literal", lambda p: pp.replay_transforms(
        p, ["tile(loops='i', sizes=1" + "0" * 5000 + ")"])),
    ("replay-none", lambda p: pp.replay_transforms(p, None)),
    ("replay-string-not-list", lambda p: pp.replay_transforms(p, "tile(loops='i', sizes=4)")),
    ("replay-non-string-entry", lambda p: pp.replay_transforms(p, [5])),
    ("replay-ok", lambda p: pp.replay_transforms(p, ["tile(loops='i', sizes=4)"])),
    ("tile-on-kernel-object", "KERNEL"),
    ("tile-on-none", lambda p: pp.tile(None, "i", 4)),
    ("tile-on-string", lambda p: pp.tile("gemm", "i", 4)),
    ("statement-loops-unknown", lambda p: __import__("polypipe.transform").transform
     .statement_loops(p, "S99")),
]


@pytest.mark.parametrize("transform", [pytest.param(t, id=i) for i, t in TRANSFORMS])
@isolated
def test_transformations(base, transform):
    program = base.gemm.program
    if transform == "KERNEL":
        transform = lambda p: pp.tile(base.gemm, "i", 4)  # noqa: E731
    result, exc = clear_or_ok(lambda: transform(program), "transformation")
    if exc is None and isinstance(result, pp.Program):
        # An accepted transformation must keep the program's meaning on the C backend.
        import copy

        k = copy.copy(base.gemm)
        for attr, value in list(vars(k).items()):
            if isinstance(value, (dict, set)) and not attr.startswith("__"):
                setattr(k, attr, type(value)())
        k.program = result
        check_against_python(k, base.gemm.python, lambda: _gemm_args(6, 5, 7),
                             where="the transformed program")


# =============================================================================================
# 5. Command line
# =============================================================================================

FILES = {
    "gemm.py": (EXAMPLES / "gemm.py").read_text(),
    "two.py": ("import polypipe as pp\n\n@pp.kernel\ndef a(x):\n    N = len(x)\n"
               "    for i in range(N):\n        x[i] = 1.0\n\n@pp.kernel\ndef b(x):\n"
               "    N = len(x)\n    for i in range(N):\n        x[i] = 2.0\n"),
    "same_twice.py": ("import polypipe as pp\n\n@pp.kernel\ndef a(x):\n    N = len(x)\n"
                      "    for i in range(N):\n        x[i] = 1.0\n\nb = a\n"),
    "syntax.py": "def f(:\n    pass\n",
    "raises.py": "raise ValueError('boom on import')\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "recursion.py": "def r():\n    return r()\nr()\n",
    "missing_import.py": "import no_such_module_polypipe_test\n",
    "nokernels.py": "x = 1\ndef plain(a):\n    return a\n",
    "empty.py": "",
    "comment.py": "# just a comment\n",
    "frontend_error.py": ("import polypipe as pp\n\n@pp.kernel\ndef bad(A):\n    i = 0\n"
                          "    while i < 3:\n        i += 1\n"),
    "names.py": ("import math\nfrom math import sqrt\nimport polypipe as pp\nvalue = 3\n"
                 "lam = lambda x: x\nclass Klass:\n    pass\n\ndef outside(A):\n"
                 "    while True:\n        pass\n\n@pp.kernel\ndef k(x):\n    N = len(x)\n"
                 "    for i in range(N):\n        x[i] = 1.0\n"),
    "exec_kernel.py": ("import polypipe as pp\nns = {}\nexec('def g(x):\\n    x[0] = 1.0\\n', ns)\n"
                       "g = pp.kernel(ns['g'])\n"),
    "int_param.py": ("import polypipe as pp\n\n@pp.kernel\ndef scaled(alpha, n, x):\n"
                     "    for i in range(n):\n        x[i] *= alpha\n"),
    "zerodiv.py": ("import polypipe as pp\n\n@pp.kernel\ndef zd(x):\n    N = len(x)\n"
                   "    for i in range(N):\n        x[i] = 1 // (i - i)\n"),
    "noparams.py": ("import polypipe as pp\n\n@pp.kernel\ndef fixed(x):\n"
                    "    for i in range(4):\n        x[i] = x[i] + 1.0\n"),
}
FILES["crlf.py"] = ("import polypipe as pp\r\n\r\n@pp.kernel\r\ndef c(x):\r\n    N = len(x)\r\n"
                    "    for i in range(N):\r\n        x[i] = x[i] * 2.0\r\n")
FILES["tabs.py"] = ("import polypipe as pp\n\n@pp.kernel\ndef t(x):\n\tN = len(x)\n"
                    "\tfor i in range(N):\n\t\tx[i] = x[i] * 2.0\n")
FILES["bom.py"] = ("\ufeffimport polypipe as pp\n\n@pp.kernel\ndef b(x):\n    N = len(x)\n"
                   "    for i in range(N):\n        x[i] = x[i] * 2.0\n")
FILES["unicode_names.py"] = ("import polypipe as pp\n\n@pp.kernel\ndef ünï(Ä, ß):\n"
                             "    Ñ = len(Ä)\n    for ï in range(Ñ):\n"
                             "        ß[ï] = Ä[Ñ - 1 - ï] * 2.0\n")
BINARY_FILES = {
    "latin1.py": ("# -*- coding: latin-1 -*-\nimport polypipe as pp\n\n@pp.kernel\n"
                  "def l(Ä):\n    N = len(Ä)\n    for i in range(N):\n"
                  "        Ä[i] = Ä[i] + 1.0  # café\n").encode("latin-1"),
    "nulls.py": b"x = 1\x00\x00\n",
    "random.py": bytes(range(256)) * 4,
    "notes.txt": b"hello, this is not python\n",
    "bad_utf8.py": b"x = '\xff\xfe'\n",
}


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli files")
    for name, text in FILES.items():
        (directory / name).write_text(text, encoding="utf-8", newline="")
    for name, data in BINARY_FILES.items():
        (directory / name).write_bytes(data)
    (directory / "a:b.py").write_text(FILES["gemm.py"])
    (directory / "dïr ü").mkdir()
    (directory / "dïr ü" / "gémm file.py").write_text(FILES["gemm.py"])
    (directory / "subdir").mkdir()
    (directory / "loop.py").symlink_to(directory / "loop.py")
    (directory / "dangling.py").symlink_to(directory / "nowhere.py")
    return directory


def G(d):
    return str(d / "gemm.py")


OK, ERR, ANY = "ok", "error", "any"

GEMM_SIZES = "NI=5,NJ=4,NK=3"

CLI_CASES = [
    # --- argparse ---
    (ERR, lambda d: []),
    (ERR, lambda d: ["bogus"]),
    (ERR, lambda d: ["show"]),
    (ERR, lambda d: ["run", G(d), "--seed", "x"]),
    (ERR, lambda d: ["run", G(d), "--dtype", "float16"]),
    (ERR, lambda d: ["deps", G(d), "--format", "pdf"]),
    (ERR, lambda d: ["demo", "--size", "x"]),
    # --- files ---
    *[(ERR, (lambda c: lambda d: [c, str(d / "missing.py")])(cmd))
      for cmd in ("show", "deps", "pipeline", "run")],
    *[(ERR, (lambda c: lambda d: [c, str(d / "subdir")])(cmd))
      for cmd in ("show", "deps", "pipeline", "run")],
    *[(ERR, (lambda c, f: lambda d: [c, str(d / f)])(cmd, name))
      for cmd in ("show", "run")
      for name in ("notes.txt", "syntax.py", "raises.py", "exits.py", "recursion.py",
                   "missing_import.py", "nokernels.py", "empty.py", "comment.py",
                   "frontend_error.py", "nulls.py", "random.py", "bad_utf8.py", "loop.py",
                   "dangling.py", "exec_kernel.py")],
    (ERR, lambda d: ["deps", str(d / "syntax.py")]),
    (ERR, lambda d: ["pipeline", str(d / "raises.py")]),
    (ERR, lambda d: ["show", "/dev/null"]),
    (ERR, lambda d: ["show", ""]),
    (ERR, lambda d: ["show", ":"]),
    (ERR, lambda d: ["show", G(d) + ":missing"]),
    (ANY, lambda d: ["show", G(d) + ":"]),
    (ERR, lambda d: ["show", G(d) + ":gemm:extra"]),
    (ERR, lambda d: ["show", str(d / "missing.py") + ":gemm"]),
    (ERR, lambda d: ["show", str(d / "names.py") + ":value"]),
    (ERR, lambda d: ["show", str(d / "names.py") + ":math"]),
    (ERR, lambda d: ["show", str(d / "names.py") + ":sqrt"]),
    (ERR, lambda d: ["show", str(d / "names.py") + ":Klass"]),
    (ERR, lambda d: ["show", str(d / "names.py") + ":lam"]),
    (ERR, lambda d: ["show", str(d / "names.py") + ":outside"]),
    (ERR, lambda d: ["show", str(d / "names.py") + ":__name__"]),
    (ERR, lambda d: ["show", str(d / "names.py") + ":__builtins__"]),
    (ERR, lambda d: ["run", str(d / "two.py"), "--size", "N=3"]),
    (ANY, lambda d: ["run", str(d / "same_twice.py"), "--size", "N=3"]),
    (OK, lambda d: ["show", str(d / "names.py") + ":k"]),
    (OK, lambda d: ["show", str(d / "two.py")]),
    (OK, lambda d: ["show", str(d / "a:b.py")]),
    (OK, lambda d: ["show", str(d / "a:b.py") + ":gemm"]),
    (OK, lambda d: ["run", str(d / "dïr ü" / "gémm file.py"), "--size", GEMM_SIZES, "--check"]),
    (OK, lambda d: ["run", str(d / "crlf.py"), "--size", "N=6", "--check"]),
    (OK, lambda d: ["run", str(d / "tabs.py"), "--size", "N=6", "--check"]),
    (OK, lambda d: ["run", str(d / "bom.py"), "--size", "N=6", "--check"]),
    (OK, lambda d: ["run", str(d / "latin1.py"), "--size", "N=6", "--check"]),
    (OK, lambda d: ["run", str(d / "unicode_names.py"), "--size", "Ñ=6", "--check"]),
    (OK, lambda d: ["run", str(d / "noparams.py"), "--check"]),
    (ANY, lambda d: ["run", str(d / "zerodiv.py"), "--size", "N=4", "--check"]),
    # --- --size ---
    *[(ERR, (lambda s: lambda d: ["run", G(d), "--size", s])(size))
      for size in ("N", "NI=x", "NI=-1,NJ=4,NK=3", "NI=10**9,NJ=4,NK=3", "NI=1e3,NJ=4,NK=3",
                   "NI=0x10,NJ=4,NK=3", "NI=5", "NI=5,NJ=4", "NI=5,NJ=4,NK=3,ZZ=1", "=5",
                   "NI=5,NJ=4,NK=3,N I=2", "NI=99999999999999999999,NJ=4,NK=3",
                   "NI=2147483648,NJ=2147483648,NK=1",
                   "NI=1000000000,NJ=1000000000,NK=1000000000",
                   "NI=100000,NJ=100000,NK=100000", "NI=4,NJ=4,NK=9223372036854775807",
                   "NI=-9223372036854775809,NJ=1,NK=1", "NI=5.0,NJ=4,NK=3")],
    (ANY, lambda d: ["run", G(d), "--size", "NI=5,NJ=4,NK=3,NI=6", "--check"]),
    (OK, lambda d: ["run", G(d), "--size", " NI = 5 , NJ=4,,NK=3 ", "--check"]),
    (OK, lambda d: ["run", G(d), "--size", "NI=1_0,NJ=4,NK=3", "--check"]),
    (OK, lambda d: ["run", G(d), "--size", "NI=0,NJ=0,NK=0", "--check"]),
    (OK, lambda d: ["run", G(d), "--size", "NI=٣,NJ=4,NK=3", "--check"]),
    (ERR, lambda d: ["run", str(d / "int_param.py"), "--size", "n=100000000000"]),
    (ANY, lambda d: ["run", str(d / "int_param.py"), "--size", "n=-1", "--check"]),
    (ERR, lambda d: ["run", str(EXAMPLES / "cholesky.py"), "--size", "N=100000"]),
    (ERR, lambda d: ["run", str(EXAMPLES / "jacobi_2d.py"), "--size", "N=3000000,TSTEPS=1"]),
    (ANY, lambda d: ["run", str(EXAMPLES / "jacobi_2d.py"), "--size", "N=5,TSTEPS=-3",
                     "--check"]),
    (ERR, lambda d: ["run", str(EXAMPLES / "conv2d_nhwc.py"), "--size",
                     "N=1000,OH=1000,OW=1000,CO=1000,KH=3,KW=3,CI=8,H=16,W=16"]),
    # --- other run options ---
    (ERR, lambda d: ["run", G(d), "--size", GEMM_SIZES, "--seed", "-1"]),
    (ANY, lambda d: ["run", G(d), "--size", GEMM_SIZES, "--seed", str(2 ** 70), "--check"]),
    (ANY, lambda d: ["run", G(d), "--size", GEMM_SIZES, "--repeat", "0", "--check"]),
    (ANY, lambda d: ["run", G(d), "--size", GEMM_SIZES, "--repeat", "-5", "--check"]),
    (OK, lambda d: ["run", G(d), "--size", GEMM_SIZES, "--dtype", "int32", "--check"]),
    (OK, lambda d: ["run", str(EXAMPLES / "deriche.py"), "--size", "W=5,H=4", "--dtype",
                    "int64", "--check"]),
    (ERR, lambda d: ["run", G(d), "--size", GEMM_SIZES, "--config", "block=8x8"]),
    # a time stencil maps from isl's schedule: a host loop over t launching two kernels
    (OK, lambda d: ["run", str(EXAMPLES / "jacobi_2d.py"), "--size", "N=8,TSTEPS=2",
                    "--backend", "emulate", "--check"]),
    *[(ERR, (lambda c: lambda d: ["run", G(d), "--size", "NI=8,NJ=8,NK=8", "--backend",
                                  "emulate", "--config", c])(conf))
      for conf in ("block=64", "block=axb", "block=8x8x8", "zzz=1", "target=sm_70",
                   "threads=0x0", "reduction=-1", "=", "block=", "block", "shared_stages=2.5",
                   "block=8x8,threads=3x3", "block=99999999999999999999x8",
                   "register_stages=100", "blocks_per_sm=-1", "fragment_vector=0",
                   "block=-8x-8,threads=-2x-2")],
    (OK, lambda d: ["run", G(d), "--size", "NI=8,NJ=8,NK=8", "--backend", "emulate",
                    "--config", "block=8x8,threads=2x2,reduction=4,shared_stages=2", "--check"]),
    # --- deps ---
    (ERR, lambda d: ["deps", G(d), "--format", "png"]),
    (ERR, lambda d: ["deps", G(d), "--format", "dot", "-o", str(d / "nodir" / "x.dot")]),
    (ERR, lambda d: ["deps", G(d), "--format", "text", "-o", str(d / "nodir" / "x.txt")]),
    (ERR, lambda d: ["deps", G(d), "--format", "svg", "-o", str(d / "nodir" / "x.svg")]),
    (ERR, lambda d: ["deps", G(d), "--format", "png", "-o", str(d / "nodir" / "x.png")]),
    (ERR, lambda d: ["deps", G(d), "-o", str(d / "subdir")]),
    (ERR, lambda d: ["deps", G(d), "-o", "/proc/polypipe-test.dot"]),
    (ANY, lambda d: ["deps", G(d), "--format", "svg", "-o", str(d / "out.png")]),
    (ANY, lambda d: ["deps", G(d), "-o", str(d / "out.bogus")]),
    (ANY, lambda d: ["deps", G(d), "--format", "svg"]),
    (ANY, lambda d: ["deps", G(d), "--format", "png", "-o", str(d / "out2.png")]),
    (OK, lambda d: ["deps", G(d), "--format", "dot", "-o", str(d / "out.dot")]),
    (OK, lambda d: ["deps", G(d)]),
    (ERR, lambda d: ["deps", str(d / "two.py")]),
    (OK, lambda d: ["deps", str(d / "noparams.py")]),
    # --- pipeline ---
    (OK, lambda d: ["pipeline", G(d)]),
    *[(ERR, (lambda c: lambda d: ["pipeline", G(d), "--config", c])(conf))
      for conf in ("garbage", "block=64", "zzz=1", "threads=0x0", "target=sm_70",
                   "shared_stages=0", "block=64x64,threads=48x48")],
    *[(ERR, (lambda s: lambda d: ["pipeline", G(d), "--config", "block=64x64", "--size", s])(size))
      for size in ("N", "NI=x", "NI=5", "NI=5,NJ=5,NK=5,ZZ=3", "NI=-5,NJ=5,NK=5")],
    (ANY, lambda d: ["pipeline", G(d), "--config", "block=64x64", "--size",
                     "NI=1000000000,NJ=1000000000,NK=1000000000"]),
    (ANY, lambda d: ["pipeline", G(d), "--config", "block=64x64", "--size",
                     "NI=0,NJ=0,NK=0"]),
    (ANY, lambda d: ["pipeline", G(d), "--config", "block=64x64", "--size",
                     "NI=99999999999999999999,NJ=1,NK=1"]),
    (ERR, lambda d: ["pipeline", G(d), "--timeline", str(d / "nodir" / "t.svg")]),
    (ERR, lambda d: ["pipeline", G(d), "--timeline", str(d / "t.txt")]),
    (ERR, lambda d: ["pipeline", G(d), "--timeline", str(d / "t")]),
    (ERR, lambda d: ["pipeline", G(d), "--timeline", str(d / "subdir")]),
    (ANY, lambda d: ["pipeline", G(d), "--timeline", ""]),
    (ANY, lambda d: ["pipeline", G(d), "--timeline", str(d / "t.png")]),
    (OK, lambda d: ["pipeline", G(d), "--timeline", str(d / "t.svg"), "--size",
                    "NI=128,NJ=128,NK=128"]),
    (OK, lambda d: ["pipeline", str(EXAMPLES / "jacobi_2d.py"), "--config", "block=64x64"]),
    (OK, lambda d: ["pipeline", str(EXAMPLES / "jacobi_2d.py")]),
    (OK, lambda d: ["pipeline", str(d / "noparams.py")]),
    # --- demo ---
    (ERR, lambda d: ["demo", "--size", "-5"]),
    (ANY, lambda d: ["demo", "--size", "0"]),
    (ANY, lambda d: ["demo", "--size", "1"]),
    (ANY, lambda d: ["demo", "--size", "2"]),
    (ERR, lambda d: ["demo", "--size", "10000000"]),
    (ERR, lambda d: ["demo", "--size", str(2 ** 64)]),
]


def _cli_id(index, case):
    expect, build = case
    argv = build(Path("D"))
    text = "-".join(a.replace(str(EXAMPLES) + "/", "ex:").replace("D/", "").replace("/", "_")
                    for a in argv) or "no-args"
    return f"{index:03d}-{expect}-{text}"[:90]


@pytest.mark.parametrize("expect, build", [pytest.param(e, b, id=_cli_id(i, (e, b)))
                                           for i, (e, b) in enumerate(CLI_CASES)])
@isolated
def test_cli(files, capsys, expect, build, monkeypatch):
    from polypipe.cli import main

    monkeypatch.chdir(files)
    argv = build(files)
    try:
        code = main(argv)
    except SystemExit as exc:
        out, err = capsys.readouterr()
        if exc.code == 2 and expect != OK and "error:" in err:
            return  # an argparse usage error
        pytest.fail(f"CLI SystemExit({exc.code!r}) escaped main: {err.strip()[-200:]}",
                    pytrace=False)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"RAW {type(exc).__name__} escaped main: {first_line(exc)}", pytrace=False)
    out, err = capsys.readouterr()
    if "internal error" in err.lower():
        pytest.fail(f"INTERNAL via CLI (rc {code}): {err.strip()[-300:]}", pytrace=False)
    if "Traceback" in out + err:
        pytest.fail(f"CLI printed a traceback (rc {code}): {(out + err)[-300:]}", pytrace=False)
    if expect == OK and code != 0:
        pytest.fail(f"CLI rc {code} for valid input: {(err or out).strip()[-300:]}",
                    pytrace=False)
    if expect == ERR and code != 2:
        pytest.fail(f"CLI rc {code} instead of 2 for bad input; stderr: {err.strip()[-200:]!r}",
                    pytrace=False)
    if expect == ANY and code not in (0, 2):
        pytest.fail(f"CLI rc {code}; stdout tail: {out.strip()[-200:]!r}; "
                    f"stderr: {err.strip()[-200:]!r}", pytrace=False)
    if code == 2:
        if "polypipe: error:" not in err:
            pytest.fail(f"CLI rc 2 without 'polypipe: error:' on stderr: {err[-200:]!r}",
                        pytrace=False)
        message = err.split("polypipe: error:", 1)[1].strip()
        if not message:
            pytest.fail("CLI empty error message", pytrace=False)
        if "internal error" in message.lower():
            pytest.fail(f"INTERNAL via CLI: {message[:200]}", pytrace=False)
