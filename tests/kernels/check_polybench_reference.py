#!/usr/bin/env python3
"""Standalone verification of the kernel corpus in polybench.py.

For every kernel and for dtype float64 and float32 it

1. lints the kernel source against the polypipe input subset (a conservative AST check);
2. runs the plain kernel on ``make_args(np.random.default_rng(0), dtype)`` and times it;
3. runs it again on the same inputs with every array wrapped in an index-checking proxy
   (any index that is not an int in ``0 <= idx < dim`` raises, as do partial-index writes and
   non-finite stored values) and requires bit-identical results;
4. checks that no output is NaN/inf;
5. compares the result with an independent NumPy formulation where one exists.

Usage:  python tests/kernels/check_polybench_reference.py [kernel ...]
Exit status is non-zero if any kernel fails.
"""

from __future__ import annotations

import ast
import inspect
import math
import os
import sys
import textwrap
import time
from functools import lru_cache

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import polybench  # noqa: E402

PLAIN_TIME_LIMIT_S = 0.3

# =============================================================================================
# 1. AST lint for the input subset
# =============================================================================================

_VALUE_CALLS = {"min", "max", "abs", "float", "int"}
_MODULES = {"math", "np"}
# elementwise functions accepted as math.<f> / np.<f> (anything else, e.g. np.zeros, is rejected)
_MATH_FUNCS = {
    "sqrt", "exp", "expm1", "log", "log2", "log10", "log1p", "pow", "power", "tanh", "sinh", "cosh",
    "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "arcsin", "arccos", "arctan", "arctan2",
    "floor", "ceil", "fabs", "absolute", "abs", "hypot", "erf", "fmin", "fmax", "minimum", "maximum",
}
_AUG_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div)
_VALUE_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)


class LintError(Exception):
    pass


def _const_int(node):
    """Value of an integer constant expression (literal, optionally negated), else None."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _const_int(node.operand)
        if v is not None:
            return -v if isinstance(node.op, ast.USub) else v
    return None


def _has_names(node):
    return any(isinstance(n, ast.Name) for n in ast.walk(node))


class _Linter:
    def __init__(self, func, args):
        self.func = func
        src = textwrap.dedent(inspect.getsource(func))
        self.fn = ast.parse(src).body[0]
        names = [a.arg for a in self.fn.args.args]
        if len(names) != len(args):
            raise LintError(f"signature has {len(names)} args, make_args gives {len(args)}")
        self.arrays, self.params, self.floats = {}, set(), set()
        for n, v in zip(names, args):
            if isinstance(v, np.ndarray):
                self.arrays[n] = v.ndim
            elif isinstance(v, (bool, np.bool_)):
                raise LintError(f"argument {n} is a bool")
            elif isinstance(v, int):
                self.params.add(n)
            elif isinstance(v, float):
                self.floats.add(n)
            else:
                raise LintError(f"argument {n} has unsupported type {type(v).__name__}")
        self.locals: set[str] = set()
        self.dead_loop_vars: set[str] = set()

    def err(self, node, msg):
        raise LintError(f"line {getattr(node, 'lineno', '?')}: {msg}")

    # -- entry ----------------------------------------------------------------------------
    def run(self):
        fn = self.fn
        if fn.decorator_list:
            self.err(fn, "decorators are not allowed")
        a = fn.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.defaults or a.posonlyargs:
            self.err(fn, "only plain positional arguments are allowed")
        body = list(fn.body)
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # docstring
        while body and self._is_shape_binding(body[0]):
            self._bind_shape(body.pop(0))
        self.block(body, [])

    # -- shape bindings ---------------------------------------------------------------------
    def _is_shape_binding(self, st):
        if not (isinstance(st, ast.Assign) and len(st.targets) == 1):
            return False
        v = st.value
        if isinstance(v, ast.Attribute) and v.attr == "shape":
            return isinstance(st.targets[0], ast.Tuple)
        if isinstance(v, ast.Subscript) and isinstance(v.value, ast.Attribute) and v.value.attr == "shape":
            return isinstance(st.targets[0], ast.Name)
        if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "len":
            return isinstance(st.targets[0], ast.Name)
        return False

    def _bind_shape(self, st):
        v, t = st.value, st.targets[0]
        if isinstance(v, ast.Call):
            if len(v.args) != 1 or not isinstance(v.args[0], ast.Name) or v.args[0].id not in self.arrays:
                self.err(st, "len() of something that is not an array argument")
            targets = [t]
        elif isinstance(v, ast.Attribute):
            if not isinstance(v.value, ast.Name) or v.value.id not in self.arrays:
                self.err(st, ".shape of something that is not an array argument")
            if len(t.elts) != self.arrays[v.value.id]:
                self.err(st, "shape tuple unpacking with the wrong arity")
            targets = list(t.elts)
        else:
            base = v.value.value
            if not isinstance(base, ast.Name) or base.id not in self.arrays:
                self.err(st, ".shape of something that is not an array argument")
            k = _const_int(v.slice)
            if k is None or not 0 <= k < self.arrays[base.id]:
                self.err(st, "shape index must be a constant within ndim")
            targets = [t]
        for n in targets:
            if not isinstance(n, ast.Name):
                self.err(st, "shape binding target must be a name")
            if n.id in self.params or n.id in self.arrays or n.id in self.floats:
                self.err(st, f"shape binding rebinds {n.id}")
            self.params.add(n.id)

    # -- statements -------------------------------------------------------------------------
    def block(self, stmts, loops):
        for st in stmts:
            self.stmt(st, loops)

    def stmt(self, st, loops):
        if isinstance(st, ast.For):
            self.for_(st, loops)
        elif isinstance(st, ast.If):
            self.cond(st.test, loops)
            self.block(st.body, loops)
            self.block(st.orelse, loops)
        elif isinstance(st, ast.Assign):
            if len(st.targets) != 1:
                self.err(st, "chained assignment")
            self.expr(st.value, loops)
            self.target(st.targets[0], loops, aug=False)
        elif isinstance(st, ast.AugAssign):
            if not isinstance(st.op, _AUG_OPS):
                self.err(st, f"augmented operator {type(st.op).__name__} not allowed")
            self.expr(st.value, loops)
            self.target(st.target, loops, aug=True)
        elif isinstance(st, ast.Return):
            if st.value is not None:
                self.err(st, "return with a value")
        else:
            self.err(st, f"statement {type(st).__name__} not allowed")

    def for_(self, st, loops):
        if st.orelse:
            self.err(st, "else on a loop")
        if not isinstance(st.target, ast.Name):
            self.err(st, "loop target must be a name")
        v = st.target.id
        if v in loops or v in self.params or v in self.arrays or v in self.floats or v in self.locals:
            self.err(st, f"loop variable {v} shadows another name")
        it = st.iter
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"):
            self.err(st, "loop must iterate over range(...)")
        if it.keywords or not 1 <= len(it.args) <= 3:
            self.err(st, "range takes 1..3 positional arguments")
        bounds = it.args[:2]
        for b in bounds:
            self.affine(b, loops)
        if len(it.args) == 3:
            step = _const_int(it.args[2])
            if step is None or step == 0:
                self.err(st, "range step must be a non-zero integer constant")
        self.dead_loop_vars.discard(v)
        self.block(st.body, loops + [v])
        self.dead_loop_vars.add(v)

    def target(self, t, loops, aug):
        if isinstance(t, ast.Name):
            n = t.id
            if n in loops or n in self.dead_loop_vars:
                self.err(t, f"assignment to loop variable {n}")
            if n in self.params or n in self.arrays or n in self.floats:
                self.err(t, f"assignment to argument/parameter {n}")
            if n in _VALUE_CALLS or n in _MODULES or n == "range":
                self.err(t, f"assignment to reserved name {n}")
            if aug and n not in self.locals:
                self.err(t, f"augmented assignment to unassigned local {n}")
            self.locals.add(n)
        elif isinstance(t, ast.Subscript):
            self.subscript(t, loops)
        else:
            self.err(t, "assignment target must be an array element or a local scalar")

    # -- affine expressions -----------------------------------------------------------------
    def affine(self, e, loops):
        if isinstance(e, ast.Constant):
            if type(e.value) is not int:
                self.err(e, f"non-integer constant {e.value!r} in affine expression")
        elif isinstance(e, ast.Name):
            if e.id not in loops and e.id not in self.params:
                self.err(e, f"{e.id} is not a loop variable or parameter (affine context)")
        elif isinstance(e, ast.UnaryOp) and isinstance(e.op, (ast.USub, ast.UAdd)):
            self.affine(e.operand, loops)
        elif isinstance(e, ast.BinOp):
            if isinstance(e.op, (ast.Add, ast.Sub)):
                self.affine(e.left, loops)
                self.affine(e.right, loops)
            elif isinstance(e.op, ast.Mult):
                self.affine(e.left, loops)
                self.affine(e.right, loops)
                if _has_names(e.left) and _has_names(e.right):
                    self.err(e, "non-affine product")
            elif isinstance(e.op, (ast.FloorDiv, ast.Mod)):
                self.affine(e.left, loops)
                c = _const_int(e.right)
                if c is None or c <= 0:
                    self.err(e, "// and % need a positive integer constant divisor")
            else:
                self.err(e, f"operator {type(e.op).__name__} in affine expression")
        elif isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in ("min", "max"):
            if e.keywords or len(e.args) < 2:
                self.err(e, "min/max need >= 2 positional arguments")
            for a in e.args:
                self.affine(a, loops)
        else:
            self.err(e, f"{type(e).__name__} in affine expression")

    def cond(self, e, loops):
        if isinstance(e, ast.BoolOp):
            for v in e.values:
                self.cond(v, loops)
        elif isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.Not):
            self.cond(e.operand, loops)
        elif isinstance(e, ast.Compare):
            for x in [e.left] + e.comparators:
                self.affine(x, loops)
        elif isinstance(e, ast.Constant) and isinstance(e.value, bool):
            pass
        else:
            self.err(e, f"{type(e).__name__} as an if condition (must be affine)")

    # -- subscripts and values --------------------------------------------------------------
    def subscript(self, e, loops):
        chain = []
        node = e
        while isinstance(node, ast.Subscript):
            chain.append(node.slice)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in self.arrays:
            self.err(e, "subscripted object is not an array argument")
        idx = []
        for s in reversed(chain):
            idx.extend(s.elts if isinstance(s, ast.Tuple) else [s])
        if len(idx) != self.arrays[node.id]:
            self.err(e, f"{node.id} has {self.arrays[node.id]} dims, subscripted with {len(idx)}")
        for i in idx:
            if isinstance(i, ast.Slice):
                self.err(i, "slices are not allowed")
            self.affine(i, loops)

    def expr(self, e, loops):
        if isinstance(e, ast.Constant):
            if not isinstance(e.value, (int, float)):
                self.err(e, f"constant {e.value!r} not allowed")
        elif isinstance(e, ast.Name):
            n = e.id
            if n in loops or n in self.params or n in self.floats or n in self.locals:
                return
            if n in self.dead_loop_vars:
                self.err(e, f"loop variable {n} read after its loop")
            if n in self.arrays:
                self.err(e, f"whole array {n} used as a value")
            self.err(e, f"unknown name {n}")
        elif isinstance(e, ast.BinOp):
            if not isinstance(e.op, _VALUE_BINOPS):
                self.err(e, f"operator {type(e.op).__name__} not allowed")
            self.expr(e.left, loops)
            self.expr(e.right, loops)
        elif isinstance(e, ast.UnaryOp):
            if not isinstance(e.op, (ast.USub, ast.UAdd, ast.Not)):
                self.err(e, f"unary {type(e.op).__name__} not allowed")
            self.expr(e.operand, loops)
        elif isinstance(e, ast.Compare):
            for x in [e.left] + e.comparators:
                self.expr(x, loops)
        elif isinstance(e, ast.BoolOp):
            for x in e.values:
                self.expr(x, loops)
        elif isinstance(e, ast.IfExp):
            self.expr(e.test, loops)
            self.expr(e.body, loops)
            self.expr(e.orelse, loops)
        elif isinstance(e, ast.Subscript):
            self.subscript(e, loops)
        elif isinstance(e, ast.Call):
            f = e.func
            ok = (isinstance(f, ast.Name) and f.id in _VALUE_CALLS) or (
                isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in _MODULES
                and f.attr in _MATH_FUNCS
            )
            if not ok or e.keywords:
                self.err(e, f"call {ast.unparse(f)} not allowed")
            for a in e.args:
                self.expr(a, loops)
        else:
            self.err(e, f"expression {type(e).__name__} not allowed")


def lint(func, args):
    _Linter(func, args).run()


# =============================================================================================
# 2. index-checking array proxy
# =============================================================================================


class CheckedArray:
    """Wraps an ndarray; every index must be an int with 0 <= idx < dim."""

    __slots__ = ("_a", "_name")

    def __init__(self, a, name):
        self._a = a
        self._name = name

    @property
    def shape(self):
        return self._a.shape

    def __len__(self):
        return self._a.shape[0]

    def __iter__(self):
        raise TypeError(f"{self._name}: iterating over an array is not allowed")

    def _check(self, idx):
        if not isinstance(idx, tuple):
            idx = (idx,)
        if len(idx) > self._a.ndim:
            raise IndexError(f"{self._name}: {len(idx)} indices for {self._a.ndim}-d array")
        for d, v in enumerate(idx):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{self._name}: index {v!r} in dim {d} is not an int")
            if not 0 <= v < self._a.shape[d]:
                raise IndexError(f"{self._name}: index {int(v)} out of range 0..{self._a.shape[d] - 1} in dim {d}")
        return idx

    def __getitem__(self, idx):
        idx = self._check(idx)
        if len(idx) == self._a.ndim:
            return self._a[idx]
        return CheckedArray(self._a[idx], f"{self._name}{list(idx)}")  # view for A[i][j]

    def __setitem__(self, idx, val):
        idx = self._check(idx)
        if len(idx) != self._a.ndim:
            raise IndexError(f"{self._name}: partial-index assignment")
        if isinstance(val, (CheckedArray, np.ndarray)):
            raise TypeError(f"{self._name}: storing a non-scalar")
        if not math.isfinite(val):
            raise FloatingPointError(f"{self._name}{list(idx)}: storing non-finite value {val}")
        self._a[idx] = val


# =============================================================================================
# 3. independent NumPy references:  ref(before_f64_args, after_args) -> [(label, got, expected)]
# =============================================================================================

REFS = {}


def ref(name):
    def deco(f):
        REFS[name] = f
        return f

    return deco


@ref("correlation")
def _(b, a):
    float_n, data = b[0], b[1]
    mean = data.mean(0)
    std = np.sqrt(((data - mean) ** 2).mean(0))
    std = np.where(std <= 0.1, 1.0, std)
    z = (data - mean) / (np.sqrt(float_n) * std)
    corr = z.T @ z
    np.fill_diagonal(corr, 1.0)
    return [("data", a[1], z), ("corr", a[2], corr), ("mean", a[3], mean), ("stddev", a[4], std)]


@ref("covariance")
def _(b, a):
    float_n, data = b[0], b[1]
    mean = data.mean(0)
    dc = data - mean
    return [("data", a[1], dc), ("cov", a[2], dc.T @ dc / (float_n - 1.0)), ("mean", a[3], mean)]


@ref("gemm")
def _(b, a):
    alpha, beta, C, A, B = b
    return [("C", a[2], alpha * A @ B + beta * C)]


@ref("gemver")
def _(b, a):
    alpha, beta, A, u1, v1, u2, v2, w, x, y, z = b
    A2 = A + np.outer(u1, v1) + np.outer(u2, v2)
    x2 = x + beta * A2.T @ y + z
    w2 = w + alpha * A2 @ x2
    return [("A", a[2], A2), ("x", a[8], x2), ("w", a[7], w2)]


@ref("gesummv")
def _(b, a):
    alpha, beta, A, B, tmp, x, y = b
    return [("tmp", a[4], A @ x), ("y", a[6], alpha * A @ x + beta * B @ x)]


@ref("symm")
def _(b, a):
    alpha, beta, C, A, B = b
    S = np.tril(A) + np.tril(A, -1).T
    return [("C", a[2], beta * C + alpha * S @ B)]


@ref("syr2k")
def _(b, a):
    alpha, beta, C, A, B = b
    full = beta * C + alpha * (A @ B.T + B @ A.T)
    lower = np.tril(np.ones_like(C, dtype=bool))
    return [("C", a[2], np.where(lower, full, C))]


@ref("syrk")
def _(b, a):
    alpha, beta, C, A = b
    full = beta * C + alpha * A @ A.T
    lower = np.tril(np.ones_like(C, dtype=bool))
    return [("C", a[2], np.where(lower, full, C))]


@ref("trmm")
def _(b, a):
    alpha, A, B = b
    T = np.eye(A.shape[0]) + np.tril(A, -1)
    return [("B", a[2], alpha * T.T @ B)]


@ref("2mm")
def _(b, a):
    alpha, beta, tmp, A, B, C, D = b
    t = alpha * A @ B
    return [("tmp", a[2], t), ("D", a[6], beta * D + t @ C)]


@ref("3mm")
def _(b, a):
    E, A, B, F, C, D, G = b
    return [("E", a[0], A @ B), ("F", a[3], C @ D), ("G", a[6], (A @ B) @ (C @ D))]


@ref("atax")
def _(b, a):
    A, x, y, tmp = b
    return [("tmp", a[3], A @ x), ("y", a[2], A.T @ (A @ x))]


@ref("bicg")
def _(b, a):
    A, s, q, p, r = b
    return [("s", a[1], A.T @ r), ("q", a[2], A @ p)]


@ref("doitgen")
def _(b, a):
    A, C4, s = b
    out = np.einsum("rqs,sp->rqp", A, C4)
    return [("A", a[0], out), ("sum", a[2], out[-1, -1])]


@ref("mvt")
def _(b, a):
    x1, x2, y1, y2, A = b
    return [("x1", a[0], x1 + A @ y1), ("x2", a[1], x2 + A.T @ y2)]


@ref("cholesky")
def _(b, a):
    A = b[0]
    L = np.linalg.cholesky(A)
    return [("A", a[0], np.tril(L) + np.triu(A, 1))]


@ref("durbin")
def _(b, a):
    r = b[0]
    n = len(r)
    ii, jj = np.indices((n, n))
    T = np.where(ii == jj, 1.0, r[np.abs(ii - jj) - 1])
    return [("y", a[1], np.linalg.solve(T, -r))]


@ref("gramschmidt")
def _(b, a):
    A = b[0]
    Qn, Rn = np.linalg.qr(A)
    s = np.sign(np.diag(Rn))
    Q, R = Qn * s, s[:, None] * Rn
    return [("Q", a[2], Q), ("R", a[1], R), ("A", a[0], Q * np.diag(R))]


@ref("lu")
def _(b, a):
    A0, LU = b[0], a[0].astype(np.float64)
    L = np.tril(LU, -1) + np.eye(A0.shape[0])
    return [("L@U", L @ np.triu(LU), A0)]


@ref("ludcmp")
def _(b, a):
    A0, bb = b[0], b[1]
    LU = a[0].astype(np.float64)
    L = np.tril(LU, -1) + np.eye(A0.shape[0])
    return [("L@U", L @ np.triu(LU), A0), ("x", a[2], np.linalg.solve(A0, bb)), ("y", a[3], np.linalg.solve(L, bb))]


@ref("trisolv")
def _(b, a):
    L, x, bb = b
    return [("x", a[1], np.linalg.solve(np.tril(L), bb))]


@ref("deriche")
def _(b, a):
    alpha, img = b[0], b[1]
    ex = np.exp
    k = (1 - ex(-alpha)) ** 2 / (1 + 2 * alpha * ex(-alpha) - ex(2 * alpha))
    c0, c1 = k, k * ex(-alpha) * (alpha - 1)
    d0, d1 = k * ex(-alpha) * (alpha + 1), -k * ex(-2 * alpha)
    b1, b2 = 2.0 ** (-alpha), -ex(-2 * alpha)

    def causal(x):  # along axis 1, vectorized over rows
        y = np.zeros_like(x)
        xm1 = ym1 = ym2 = np.zeros(x.shape[0])
        for j in range(x.shape[1]):
            y[:, j] = c0 * x[:, j] + c1 * xm1 + b1 * ym1 + b2 * ym2
            xm1, ym2, ym1 = x[:, j], ym1, y[:, j]
        return y

    def anticausal(x):
        y = np.zeros_like(x)
        xp1 = xp2 = yp1 = yp2 = np.zeros(x.shape[0])
        for j in reversed(range(x.shape[1])):
            y[:, j] = d0 * xp1 + d1 * xp2 + b1 * yp1 + b2 * yp2
            xp2, xp1, yp2, yp1 = xp1, x[:, j], yp1, y[:, j]
        return y

    mid = causal(img) + anticausal(img)
    y1, y2 = causal(mid.T).T, anticausal(mid.T).T
    return [("imgOut", a[2], y1 + y2), ("y1", a[3], y1), ("y2", a[4], y2)]


@ref("floyd_warshall")
def _(b, a):
    P = b[0].copy()
    for k in range(P.shape[0]):
        P = np.minimum(P, P[:, k : k + 1] + P[k : k + 1, :])
    return [("path", a[0], P)]


@ref("nussinov")
def _(b, a):
    seq = b[0].astype(np.int64)
    n = len(seq)
    T = np.zeros((n, n), np.int64)
    for d in range(1, n):  # by increasing interval length (different order from the kernel)
        for i in range(n - d):
            j = i + d
            m = 1 if seq[i] + seq[j] == 3 else 0
            best = max(0, T[i, j - 1], T[i + 1, j], T[i + 1, j - 1] + (m if d > 1 else 0))
            if d > 1:
                best = max(best, int(np.max(T[i, i + 1 : j] + T[i + 2 : j + 1, j])))
            T[i, j] = best
    return [("table", a[1], T)]


@ref("adi")
def _(b, a):
    tsteps = b[0]
    u, v, p, q = (x.copy() for x in b[1:])
    n = u.shape[0]
    DX = DY = 1.0 / n
    DT = 1.0 / tsteps
    mul1, mul2 = 2.0 * DT / (DX * DX), 1.0 * DT / (DY * DY)
    A_, B_, C_ = -mul1 / 2, 1 + mul1, -mul1 / 2
    D_, E_, F_ = -mul2 / 2, 1 + mul2, -mul2 / 2
    I = slice(1, n - 1)
    for _t in range(tsteps):  # vectorized over i
        v[0, I] = 1.0
        p[I, 0] = 0.0
        q[I, 0] = 1.0
        for j in range(1, n - 1):
            den = A_ * p[I, j - 1] + B_
            p[I, j] = -C_ / den
            q[I, j] = (-D_ * u[j, : n - 2] + (1 + 2 * D_) * u[j, I] - F_ * u[j, 2:] - A_ * q[I, j - 1]) / den
        v[n - 1, I] = 1.0
        for j in range(n - 2, 0, -1):
            v[j, I] = p[I, j] * v[j + 1, I] + q[I, j]
        u[I, 0] = 1.0
        p[I, 0] = 0.0
        q[I, 0] = 1.0
        for j in range(1, n - 1):
            den = D_ * p[I, j - 1] + E_
            p[I, j] = -F_ / den
            q[I, j] = (-A_ * v[: n - 2, j] + (1 + 2 * A_) * v[I, j] - C_ * v[2:, j] - D_ * q[I, j - 1]) / den
        u[I, n - 1] = 1.0
        for j in range(n - 2, 0, -1):
            u[I, j] = p[I, j] * u[I, j + 1] + q[I, j]
    return [("u", a[1], u), ("v", a[2], v), ("p", a[3], p), ("q", a[4], q)]


@ref("fdtd_2d")
def _(b, a):
    tmax = b[0]
    ex, ey, hz, fict = (x.copy() for x in b[1:])
    for t in range(tmax):
        ey[0, :] = fict[t]
        ey[1:, :] -= 0.5 * (hz[1:, :] - hz[:-1, :])
        ex[:, 1:] -= 0.5 * (hz[:, 1:] - hz[:, :-1])
        hz[:-1, :-1] -= 0.7 * (ex[:-1, 1:] - ex[:-1, :-1] + ey[1:, :-1] - ey[:-1, :-1])
    return [("ex", a[1], ex), ("ey", a[2], ey), ("hz", a[3], hz)]


@ref("heat_3d")
def _(b, a):
    tsteps = b[0]
    A, B = b[1].copy(), b[2].copy()
    c = (slice(1, -1),) * 3

    def step(S):
        m = S[c]
        return (
            0.125 * (S[2:, 1:-1, 1:-1] - 2 * m + S[:-2, 1:-1, 1:-1])
            + 0.125 * (S[1:-1, 2:, 1:-1] - 2 * m + S[1:-1, :-2, 1:-1])
            + 0.125 * (S[1:-1, 1:-1, 2:] - 2 * m + S[1:-1, 1:-1, :-2])
            + m
        )

    for _t in range(tsteps):
        B[c] = step(A)
        A[c] = step(B)
    return [("A", a[1], A), ("B", a[2], B)]


@ref("jacobi_1d")
def _(b, a):
    tsteps, A, B = b[0], b[1].copy(), b[2].copy()
    for _t in range(tsteps):
        B[1:-1] = 0.33333 * (A[:-2] + A[1:-1] + A[2:])
        A[1:-1] = 0.33333 * (B[:-2] + B[1:-1] + B[2:])
    return [("A", a[1], A), ("B", a[2], B)]


@ref("jacobi_2d")
def _(b, a):
    tsteps, A, B = b[0], b[1].copy(), b[2].copy()

    def step(S):
        return 0.2 * (S[1:-1, 1:-1] + S[1:-1, :-2] + S[1:-1, 2:] + S[2:, 1:-1] + S[:-2, 1:-1])

    for _t in range(tsteps):
        B[1:-1, 1:-1] = step(A)
        A[1:-1, 1:-1] = step(B)
    return [("A", a[1], A), ("B", a[2], B)]


@ref("seidel_2d")
def _(b, a):
    # Gauss-Seidel is legal to run by wavefronts 2*i + j = const (all points on one front are
    # independent), which gives a vectorized reference in a different execution order.
    tsteps, A = b[0], b[1].copy()
    n = A.shape[0]
    for _t in range(tsteps):
        for w in range(3, 3 * (n - 2) + 1):
            i = np.arange(1, n - 1)
            j = w - 2 * i
            keep = (j >= 1) & (j <= n - 2)
            i, j = i[keep], j[keep]
            A[i, j] = (
                A[i - 1, j - 1] + A[i - 1, j] + A[i - 1, j + 1]
                + A[i, j - 1] + A[i, j] + A[i, j + 1]
                + A[i + 1, j - 1] + A[i + 1, j] + A[i + 1, j + 1]
            ) / 9.0
    return [("A", a[1], A)]


@ref("box_blur")
def _(b, a):
    img = b[0]
    H, W = img.shape
    s = np.zeros((H + 2, W + 2))
    c = np.zeros((H + 2, W + 2))
    pad = np.pad(img, 1)
    ones = np.pad(np.ones_like(img), 1)
    for di in (0, 1, 2):
        for dj in (0, 1, 2):
            s[1:-1, 1:-1] += pad[di : di + H, dj : dj + W]
            c[1:-1, 1:-1] += ones[di : di + H, dj : dj + W]
    return [("out", a[1], s[1:-1, 1:-1] / c[1:-1, 1:-1])]


@ref("sobel")
def _(b, a):
    x = b[0]
    gx = (x[:-2, 2:] + 2 * x[1:-1, 2:] + x[2:, 2:]) - (x[:-2, :-2] + 2 * x[1:-1, :-2] + x[2:, :-2])
    gy = (x[2:, :-2] + 2 * x[2:, 1:-1] + x[2:, 2:]) - (x[:-2, :-2] + 2 * x[:-2, 1:-1] + x[:-2, 2:])
    out = b[1].copy()
    out[1:-1, 1:-1] = np.sqrt(gx * gx + gy * gy)
    return [("out", a[1], out)]


@ref("prefix_suffix_scan")
def _(b, a):
    x, pre, suf, d, B = b
    return [
        ("pre", a[1], np.cumsum(x)),
        ("suf", a[2], np.cumsum(x[::-1])[::-1]),
        ("d", a[3], np.concatenate([d[:1], np.diff(d)])),
        ("B", a[4], np.cumsum(B[:, ::-1], axis=1)[:, ::-1]),
    ]


@ref("strided_loops")
def _(b, a):
    A, y = b[0].copy(), b[1].copy()
    N, M = A.shape
    i = np.arange(1, N, 2)
    A[i] = A[i] + 0.5 * A[i - 1]
    i = np.arange(N - 1, 0, -3)
    y[i] = y[i] - 0.25 * y[i - 1]
    ii, jj = np.arange(0, N - 2, 3), np.arange(M - 1, 0, -2)
    A[np.ix_(ii, jj)] = 0.5 * A[np.ix_(ii, jj)] + A[np.ix_(ii + 2, jj - 1)]
    return [("A", a[0], A), ("y", a[1], y)]


@ref("minmax_bounds")
def _(b, a):
    A, x, y, z, w, v = (t.copy() for t in b)
    N = len(x)
    ii, jj = np.indices((N, N))
    y = y + np.where(np.abs(ii - jj) <= 2, A, 0.0) @ x
    z = x[0 : 2 * (N // 2) : 2] + x[1 : 2 * (N // 2) : 2]
    np.add.at(w, np.arange(N) // 2, 0.5 * x)
    # v[i] += sum_{j <= min(i, N-1-i)} A[j, i]
    v = v + np.where(jj <= np.minimum(ii, N - 1 - ii), A.T, 0.0).sum(1)
    v[N // 3 : N - N // 4] *= 2.0
    return [("y", a[2], y), ("z", a[3], z), ("w", a[4], w), ("v", a[5], v)]


@ref("lcs")
def _(b, a):
    s, t = [int(v) for v in b[0]], [int(v) for v in b[1]]

    @lru_cache(maxsize=None)
    def L(i, j):  # memoized recursion: LCS of s[:i], t[:j]
        if i == 0 or j == 0:
            return 0
        if s[i - 1] == t[j - 1]:
            return L(i - 1, j - 1) + 1
        return max(L(i - 1, j), L(i, j - 1))

    T = np.array([[L(i, j) for j in range(len(t) + 1)] for i in range(len(s) + 1)])
    return [("T", a[2], T)]


@ref("batched_matmul")
def _(b, a):
    return [("C", a[2], b[0] @ b[1])]


@ref("conv2d_nhwc_s2")
def _(b, a):
    X, Wt, Y = b
    KH, KW = Wt.shape[:2]
    OH, OW = Y.shape[1:3]
    out = np.zeros_like(Y)
    for kh in range(KH):
        for kw in range(KW):
            win = X[:, kh : kh + 2 * OH - 1 : 2, kw : kw + 2 * OW - 1 : 2, :]
            out += np.einsum("nhwc,co->nhwo", win, Wt[kh, kw])
    return [("Y", a[2], out)]


@ref("straight_line_sum")
def _(b, a):
    x = b[0]
    s = x.sum()
    m = s / len(x)
    return [("x", a[0], x - m), ("out", a[1], np.array([s, m, 2 * s - m]))]


# =============================================================================================
# 4. driver
# =============================================================================================


def _copy(args):
    return tuple(x.copy() if isinstance(x, np.ndarray) else x for x in args)


def _f64(args):
    return tuple(x.astype(np.float64) if isinstance(x, np.ndarray) and x.dtype.kind == "f" else
                 (x.copy() if isinstance(x, np.ndarray) else x) for x in args)


def check_kernel(case, dtype):
    """Returns (ok, message, plain_seconds, checked_seconds)."""
    args = case.make_args(np.random.default_rng(0), dtype)
    for i, x in enumerate(args):
        if isinstance(x, np.ndarray):
            if x.dtype.kind == "f" and x.dtype != np.dtype(dtype):
                return False, f"arg {i} has dtype {x.dtype}, expected {np.dtype(dtype)}", 0, 0
            if x.dtype.kind not in "fi":
                return False, f"arg {i} has dtype {x.dtype}", 0, 0
        elif not isinstance(x, (int, float)) or isinstance(x, bool):
            return False, f"arg {i} has type {type(x).__name__}", 0, 0
    if len({id(x) for x in args if isinstance(x, np.ndarray)}) != sum(isinstance(x, np.ndarray) for x in args):
        return False, "the same array is passed twice", 0, 0
    try:
        lint(case.func, args)
    except LintError as e:
        return False, f"subset lint: {e}", 0, 0

    before = _f64(args)
    plain = _copy(args)
    with np.errstate(all="raise"):
        t0 = time.perf_counter()
        rv = case.func(*plain)
        t_plain = time.perf_counter() - t0
    if rv is not None:
        return False, "kernel returned a value", t_plain, 0

    checked_raw = _copy(args)
    wrapped = tuple(CheckedArray(x, f"arg{i}") if isinstance(x, np.ndarray) else x for i, x in enumerate(checked_raw))
    try:
        with np.errstate(all="raise"):
            t0 = time.perf_counter()
            case.func(*wrapped)
            t_checked = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001
        return False, f"checked run: {type(e).__name__}: {e}", t_plain, 0

    for i, (p, c) in enumerate(zip(plain, checked_raw)):
        if isinstance(p, np.ndarray):
            if p.dtype != args[i].dtype:
                return False, f"arg {i} changed dtype", t_plain, t_checked
            if not np.array_equal(p, c):
                return False, f"arg {i}: checked run differs from plain run", t_plain, t_checked
            if p.dtype.kind == "f" and not np.all(np.isfinite(p)):
                return False, f"arg {i} contains NaN/inf", t_plain, t_checked

    notes = []
    if t_plain > PLAIN_TIME_LIMIT_S:
        return False, f"plain run took {t_plain:.3f}s > {PLAIN_TIME_LIMIT_S}s", t_plain, t_checked
    refc = REFS.get(case.name)
    if refc is None:
        notes.append("no numpy reference")
    else:
        tol = 1e-9 if np.dtype(dtype) == np.float64 else 1e-4
        worst = 0.0
        for label, got, exp in refc(before, plain):
            got = np.asarray(got, dtype=np.float64)
            exp = np.asarray(exp, dtype=np.float64)
            if got.shape != exp.shape:
                return False, f"{label}: shape {got.shape} vs reference {exp.shape}", t_plain, t_checked
            err = float(np.max(np.abs(got - exp))) / max(1.0, float(np.max(np.abs(exp))))
            worst = max(worst, err)
            if not err <= tol:
                return False, f"{label}: relative error {err:.3e} > {tol:.0e}", t_plain, t_checked
        notes.append(f"ref ok (max rel err {worst:.1e})")
    return True, ", ".join(notes), t_plain, t_checked


def main(argv):
    names = argv or list(polybench.KERNELS)
    unknown = [n for n in names if n not in polybench.KERNELS]
    if unknown:
        print("unknown kernels:", ", ".join(unknown))
        return 2
    failures = 0
    for dtype in (np.float64, np.float32):
        print(f"=== dtype {np.dtype(dtype).name} ===")
        for name in names:
            case = polybench.KERNELS[name]
            ok, msg, tp, tc = check_kernel(case, dtype)
            failures += not ok
            print(f"{'PASS' if ok else 'FAIL'} {name:<20} {case.family:<20} plain {tp * 1e3:7.1f} ms  "
                  f"checked {tc * 1e3:7.1f} ms  {msg}")
    total = 2 * len(names)
    print(f"{total - failures}/{total} passed ({len(names)} kernels x 2 dtypes)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
