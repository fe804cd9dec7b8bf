"""Self-checks of the random loop-nest generator (tests/loopgen.py), not of polypipe.

* every generated program stays in the input subset (checked on its AST, independently of the
  generator's own bookkeeping);
* it runs as plain Python with exact index checking (no negative / out-of-range subscript),
  for the drawn parameter values and for other ones (0, 1, mixed), with finite, bounded values
  in float64 and float32;
* generation, argument construction and execution are deterministic;
* the listed features actually occur (counted on the AST over 200 derandomized examples);
* the options switch features off.
"""

from __future__ import annotations

import ast
import atexit
import inspect
import os
import shutil
import sys
import tempfile
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

if __package__:  # tests/ is a package: tests.test_loopgen_selfcheck
    from . import loopgen
else:  # rootdir-less import (pytest "prepend" mode without tests/__init__.py)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import loopgen  # noqa: E402

GeneratedNest = loopgen.GeneratedNest
checked_args = loopgen.checked_args
loop_nests = loopgen.loop_nests

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_TMP = tempfile.mkdtemp(prefix="loopgen_selfcheck_")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
MAX_ABS = 1e12  # values must stay far from float32 overflow


# =============================================================================================
# AST checker for the subset + feature extraction
# =============================================================================================


class SubsetError(AssertionError):
    pass


def _fail(node, msg):
    raise SubsetError(f"line {getattr(node, 'lineno', '?')}: {msg}")


def _int_const(node):
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) is int
    ):
        return -node.operand.value
    return None


class Checker:
    """Walks the generated function; raises SubsetError; collects features in ``self.f``."""

    def __init__(self, source: str):
        self.source = source
        self.tree = ast.parse(source)
        self.f = Counter()
        self.arrays = set()
        self.floats = set()
        self.int_params = set()
        self.params = set()
        self.loop_var_names = set()
        self.stored_arrays = set()  # arrays stored to so far, in program order

    # -- entry ---------------------------------------------------------------------------------
    def run(self, nest: GeneratedNest):
        body = self.tree.body
        if not (
            len(body) == 3
            and isinstance(body[0], ast.Import)
            and [a.name for a in body[0].names] == ["math"]
            and isinstance(body[1], ast.Import)
            and [(a.name, a.asname) for a in body[1].names] == [("numpy", "np")]
            and isinstance(body[2], ast.FunctionDef)
        ):
            _fail(self.tree, "module must be `import math`, `import numpy as np`, one function")
        fn = body[2]
        if fn.name != nest.func_name:
            _fail(fn, "wrong function name")
        a = fn.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.defaults or a.posonlyargs:
            _fail(fn, "only plain positional arguments")
        names = [x.arg for x in a.args]
        specs = {s.name: s for s in nest.arg_specs}
        if names != [s.name for s in nest.arg_specs]:
            _fail(fn, "argument order differs from arg_specs")
        for n in names:
            kind = specs[n].kind
            {"array": self.arrays, "float": self.floats, "int": self.int_params}[kind].add(n)
        self.params |= self.int_params
        for n in ast.walk(fn):
            if isinstance(n, ast.For):
                self.loop_var_names.add(n.target.id)
        # prologue: shape bindings, then the body
        stmts = list(fn.body)
        while stmts and self._is_binding(stmts[0]):
            self._binding(stmts.pop(0))
        if set(self.params) != set(nest.params):
            _fail(fn, f"parameters {sorted(self.params)} != params {sorted(nest.params)}")
        if self.int_params and any(isinstance(n, ast.For) for n in ast.walk(fn)):
            ranges = [n.iter for n in ast.walk(fn) if isinstance(n, ast.For)]
            used = {x.id for r in ranges for x in ast.walk(r) if isinstance(x, ast.Name)}
            if used & self.int_params:
                self.f["int_param_in_bounds"] += 1
        self._block(stmts, active=(), scope=frozenset(), depth=0)
        return self.f

    # -- prologue --------------------------------------------------------------------------------
    def _is_binding(self, s):
        if not isinstance(s, ast.Assign) or len(s.targets) != 1:
            return False
        v = s.value
        if isinstance(v, ast.Attribute) and v.attr == "shape":
            return True
        if isinstance(v, ast.Subscript) and isinstance(v.value, ast.Attribute) and v.value.attr == "shape":
            return True
        return isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "len"

    def _binding(self, s):
        t, v = s.targets[0], s.value
        if isinstance(v, ast.Attribute):
            if not (isinstance(t, ast.Tuple) and isinstance(v.value, ast.Name) and v.value.id in self.arrays):
                _fail(s, "bad `N, M = A.shape`")
            self.params |= {e.id for e in t.elts}
            self.f["shape_tuple"] += 1
        elif isinstance(v, ast.Subscript):
            if not (isinstance(t, ast.Name) and _int_const(v.slice) is not None):
                _fail(s, "bad `N = A.shape[d]`")
            self.params.add(t.id)
            self.f["shape_index"] += 1
        else:
            if not (isinstance(t, ast.Name) and len(v.args) == 1 and v.args[0].id in self.arrays):
                _fail(s, "bad `n = len(x)`")
            self.params.add(t.id)
            self.f["len_param"] += 1
        self.f["shape_param"] += 1

    # -- statements ------------------------------------------------------------------------------
    def _block(self, stmts, active, scope, depth, in_loop_body=False):
        if not stmts:
            _fail(None, "empty block")
        scope = set(scope)
        n_loops = n_assign = 0
        for s in stmts:
            if isinstance(s, ast.For):
                n_loops += 1
                self._for(s, active, frozenset(scope), depth)
            elif isinstance(s, ast.If):
                self._if(s, active, frozenset(scope), depth)
            elif isinstance(s, (ast.Assign, ast.AugAssign)):
                n_assign += 1
                if depth == 0:
                    self.f["toplevel_stmt"] += 1
                self._assign(s, active, scope)
            else:
                _fail(s, f"statement {type(s).__name__} not in the subset")
        if n_loops >= 2:
            self.f["sibling_loops"] += 1
        if in_loop_body and n_assign >= 2:
            self.f["multi_stmt_body"] += 1
        # accumulation pattern: s = c; for ...: (... s += ...); X[...] = s
        for a, b, c in zip(stmts, stmts[1:], stmts[2:]):
            if (
                isinstance(a, ast.Assign)
                and isinstance(a.targets[0], ast.Name)
                and isinstance(b, ast.For)
                and isinstance(c, (ast.Assign, ast.AugAssign))
                and isinstance(getattr(c, "target", None) or c.targets[0], ast.Subscript)
            ):
                name = a.targets[0].id
                upd = [
                    n
                    for n in ast.walk(b)
                    if isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name) and n.target.id == name
                ]
                reads = [n for n in ast.walk(c.value) if isinstance(n, ast.Name) and n.id == name]
                if upd and reads:
                    self.f["accumulation"] += 1

    def _for(self, s, active, scope, depth):
        self.f["loop"] += 1
        self.f[f"depth{depth + 1}"] += 1
        if s.orelse or s.type_comment:
            _fail(s, "for/else")
        if not isinstance(s.target, ast.Name):
            _fail(s, "loop target must be a name")
        v = s.target.id
        if v in active:
            _fail(s, f"loop variable {v} shadows an enclosing one")
        if v in self.params or v in self.arrays or v in self.floats or v in scope:
            _fail(s, f"loop variable {v} clashes with another name")
        it = s.iter
        if not (
            isinstance(it, ast.Call)
            and isinstance(it.func, ast.Name)
            and it.func.id == "range"
            and 1 <= len(it.args) <= 3
            and not it.keywords
        ):
            _fail(s, "loops must be `for v in range(...)` with 1-3 arguments")
        bounds = it.args[:2]
        for b in bounds:
            self._affine(b, active, bound=True)
            for n in ast.walk(b):
                if isinstance(n, ast.Name) and n.id in active:
                    self.f["triangular"] += 1
                if isinstance(n, ast.Call):
                    self.f[f"{n.func.id}_bound"] += 1
                if isinstance(n, ast.BinOp) and isinstance(n.op, ast.FloorDiv):
                    self.f["floordiv_bound"] += 1
            if any(isinstance(n, ast.Name) and n.id in self.int_params for n in ast.walk(b)):
                self.f["int_param_bound"] += 1
        if len(it.args) == 3:
            step = _int_const(it.args[2])
            if not step:
                _fail(s, "step must be a non-zero integer constant")
            if step < 0:
                self.f["reverse"] += 1
            if abs(step) > 1:
                self.f[f"step{abs(step)}"] += 1
        self._block(s.body, active + (v,), scope, depth + 1, in_loop_body=True)

    def _if(self, s, active, scope, depth, is_elif=False):
        self.f["elif" if is_elif else "if"] += 1
        self._cond(s.test, active)
        self._block(s.body, active, scope, depth)
        if s.orelse:
            if len(s.orelse) == 1 and isinstance(s.orelse[0], ast.If) and self._is_elif(s):
                self._if(s.orelse[0], active, scope, depth, is_elif=True)
            else:
                self.f["else"] += 1
                self._block(s.orelse, active, scope, depth)

    def _is_elif(self, s):
        # `elif` and `else: if` parse the same; the generated source tells them apart
        line = self.source.splitlines()[s.orelse[0].lineno - 1]
        return line.lstrip().startswith("elif ")

    def _assign(self, s, active, scope):
        if isinstance(s, ast.Assign):
            if len(s.targets) != 1:
                _fail(s, "single target only")
            target = s.targets[0]
        else:
            target = s.target
            if not isinstance(s.op, (ast.Add, ast.Sub, ast.Mult)):
                _fail(s, "augmented assignment must be +=, -= or *=")
            self.f["augassign"] += 1
            if isinstance(s.op, ast.Mult):
                self.f["mul_assign"] += 1
        self._value(s.value, active, scope)
        if isinstance(target, ast.Name):
            n = target.id
            if n in self.loop_var_names:
                _fail(s, f"assignment to loop variable name {n}")
            if n in self.params or n in self.arrays or n in self.floats or n in ("math", "np"):
                _fail(s, f"assignment to argument/parameter {n}")
            if isinstance(s, ast.AugAssign) and n not in scope:
                _fail(s, f"local {n} updated before definition")
            scope.add(n)
            self.f["local_store"] += 1
        elif isinstance(target, ast.Subscript):
            arr = self._access(target, active, store=True)
            self.stored_arrays.add(arr)
        else:
            _fail(s, "bad assignment target")

    # -- expressions -----------------------------------------------------------------------------
    def _access(self, node, active, store=False):
        """``A[e1, e2]`` or ``A[e1][e2]`` with affine subscripts; returns the array name."""
        subs = []
        n = node
        chained = 0
        while isinstance(n, ast.Subscript):
            sl = n.slice
            subs[:0] = list(sl.elts) if isinstance(sl, ast.Tuple) else [sl]
            if isinstance(sl, ast.Tuple):
                self.f["tuple_subscript"] += 1
            n = n.value
            chained += 1
        if chained > 1:
            self.f["chained_subscript"] += 1
        if not (isinstance(n, ast.Name) and n.id in self.arrays):
            _fail(node, "subscripted object must be an array argument")
        for e in subs:
            if isinstance(e, ast.Slice):
                _fail(node, "no slices")
            self._affine(e, active)
        if not store and n.id in self.stored_arrays:
            self.f["dep_read"] += 1
            if any(isinstance(x, ast.BinOp) and _int_const(x.right) for e in subs for x in ast.walk(e)):
                self.f["dep_read_offset"] += 1
        return n.id

    def _affine(self, e, active, bound=False):
        if _int_const(e) is not None:
            return
        if isinstance(e, ast.Name):
            if e.id not in active and e.id not in self.params:
                _fail(e, f"{e.id} is not a parameter or active loop variable")
            return
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
            return self._affine(e.operand, active, bound)
        if isinstance(e, ast.BinOp):
            if isinstance(e.op, (ast.Add, ast.Sub)):
                self._affine(e.left, active, bound)
                return self._affine(e.right, active, bound)
            if isinstance(e.op, ast.Mult):
                if _int_const(e.left) is not None:
                    return self._affine(e.right, active, bound)
                if _int_const(e.right) is not None:
                    return self._affine(e.left, active, bound)
                _fail(e, "multiplication by a non-constant")
            if bound and isinstance(e.op, ast.FloorDiv) and (_int_const(e.right) or 0) > 0:
                return self._affine(e.left, active, bound)
        if bound and isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in ("min", "max"):
            for a in e.args:
                self._affine(a, active, bound)
            return
        _fail(e, f"not affine: {ast.unparse(e)}")

    def _cond(self, e, active):
        if isinstance(e, ast.BoolOp):
            self.f["cond_" + type(e.op).__name__.lower()] += 1
            for v in e.values:
                self._cond(v, active)
        elif isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.Not):
            self.f["cond_not"] += 1
            self._cond(e.operand, active)
        elif isinstance(e, ast.Compare):
            if len(e.ops) > 1:
                self.f["cond_chain"] += 1
            for x in [e.left] + e.comparators:
                if isinstance(x, ast.BinOp) and isinstance(x.op, ast.Mod) and (_int_const(x.right) or 0) > 0:
                    self.f["cond_mod"] += 1
                    self._affine(x.left, active)
                else:
                    self._affine(x, active)
        else:
            _fail(e, f"condition not affine: {ast.unparse(e)}")

    def _value(self, e, active, scope):
        if isinstance(e, ast.Constant):
            if type(e.value) is not float:
                _fail(e, "value constants must be floats")
            if abs(e.value) > 1.5:
                _fail(e, "constant too large")
        elif isinstance(e, ast.Name):
            if e.id in active:
                self.f["loopvar_value"] += 1
            elif e.id in scope:
                self.f["local_read"] += 1
            elif e.id not in self.floats:
                _fail(e, f"name {e.id} not readable here (loop var after its loop / undefined local?)")
        elif isinstance(e, ast.Subscript):
            self._access(e, active)
        elif isinstance(e, ast.BinOp) and isinstance(e.op, (ast.Add, ast.Sub, ast.Mult)):
            self._value(e.left, active, scope)
            self._value(e.right, active, scope)
        elif isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
            self._value(e.operand, active, scope)
        elif isinstance(e, ast.IfExp):
            self.f["select"] += 1
            t = e.test
            c = t.comparators[0] if isinstance(t, ast.Compare) and len(t.ops) == 1 else None
            if isinstance(c, ast.UnaryOp) and isinstance(c.op, ast.USub):
                c = c.operand
            if not (isinstance(c, ast.Constant) and type(c.value) is float):
                _fail(e, "select condition must compare a value with a constant")
            self._value(t.left, active, scope)
            self._value(e.body, active, scope)
            self._value(e.orelse, active, scope)
        elif isinstance(e, ast.Call) and not e.keywords:
            f = e.func
            if isinstance(f, ast.Name) and f.id in ("min", "max") and len(e.args) == 2:
                self.f[f"{f.id}_value"] += 1
            elif isinstance(f, ast.Name) and f.id == "abs" and len(e.args) == 1:
                self.f["abs"] += 1
            elif isinstance(f, ast.Name) and f.id == "float" and len(e.args) == 1:
                if not (isinstance(e.args[0], ast.Name) and e.args[0].id in active):
                    _fail(e, "float() only of a loop variable")
                self.f["loopvar_value"] += 1
                return
            elif (
                isinstance(f, ast.Attribute)
                and isinstance(f.value, ast.Name)
                and f.value.id == "math"
                and f.attr == "sqrt"
                and len(e.args) == 1
            ):
                a = e.args[0]
                if not (isinstance(a, ast.Call) and isinstance(a.func, ast.Name) and a.func.id == "abs"):
                    _fail(e, "sqrt must take abs(...)")
                self.f["sqrt"] += 1
            else:
                _fail(e, f"call not allowed: {ast.unparse(e)}")
            for a in e.args:
                self._value(a, active, scope)
        else:
            _fail(e, f"value expression not allowed: {ast.unparse(e)}")


def features_of(nest: GeneratedNest) -> Counter:
    return Checker(nest.source).run(nest)


# =============================================================================================
# running
# =============================================================================================


def run_checked(func, nest: GeneratedNest, seed: int, dtype=np.float64):
    """Run ``func`` on index-checked arguments; return the arrays (plain ndarrays)."""
    args = nest.make_args(seed, dtype)
    func(*checked_args(args))
    return [a for a in args if isinstance(a, np.ndarray)]


def assert_bounded(arrays, what):
    for a in arrays:
        if a.size:
            assert np.all(np.isfinite(a)), f"non-finite values ({what})"
            assert float(np.max(np.abs(a))) < MAX_ABS, f"values too large ({what})"


# =============================================================================================
# tests
# =============================================================================================


@SETTINGS
@given(
    nest=loop_nests(),
    seed=st.integers(0, 2**16),
    other=st.lists(st.integers(0, 12), min_size=3, max_size=3),
)
def test_generated_programs_are_in_subset_and_in_bounds(nest, seed, other):
    features_of(nest)  # raises SubsetError when outside the subset
    func = nest.load(_TMP)
    assert_bounded(run_checked(func, nest, seed), "float64")
    assert_bounded(run_checked(func, nest, seed, np.float32), "float32")
    # bounds are proved for every parameter value, not only the drawn ones
    names = sorted(nest.params)
    for values in ([0] * len(names), [1] * len(names), other[: len(names)]):
        variant = nest.with_params(**dict(zip(names, values)))
        assert_bounded(run_checked(func, variant, seed), f"params {variant.params}")


@settings(SETTINGS, max_examples=60)
@given(nest=loop_nests(), seed=st.integers(0, 2**16))
def test_execution_and_arguments_are_deterministic(nest, seed):
    a1 = nest.make_args(seed)
    a2 = nest.make_args(seed)
    for x, y in zip(a1, a2):
        if isinstance(x, np.ndarray):
            assert x.dtype == np.float64 and np.array_equal(x, y)
        else:
            assert type(x) is type(y) and x == y
    assert [type(x) for x in a1] == [
        np.ndarray if s.kind == "array" else (float if s.kind == "float" else int) for s in nest.arg_specs
    ]
    f1 = nest.load(_TMP)
    f2 = nest.load(_TMP)
    assert f1 is not f2 and f1.__module__ != f2.__module__
    fn_src = nest.source[nest.source.index("def ") :]
    assert inspect.getsource(f1) == fn_src
    r1 = run_checked(f1, nest, seed)
    r2 = run_checked(f2, nest, seed)
    for x, y in zip(r1, r2):
        assert np.array_equal(x, y)
    for spec, arr in zip([s for s in nest.arg_specs if s.kind == "array"], r1):
        assert arr.shape == nest.shapes()[spec.name]


def _collect_sources(n, **options):
    out = []

    @settings(SETTINGS, max_examples=n, derandomize=True)
    @given(loop_nests(**options))
    def collect(nest):
        out.append(nest)

    collect()
    return out


def test_generation_is_deterministic():
    a = [n.source for n in _collect_sources(40)]
    b = [n.source for n in _collect_sources(40)]
    assert a == b
    assert len(set(a)) > 20


def test_feature_coverage():
    nests = _collect_sources(200)
    assert len(nests) == 200
    counts = Counter()  # number of programs with the feature
    for nest in nests:
        counts.update(set(features_of(nest)))
    print("\nfeature counts over", len(nests), "programs:")
    for k in sorted(counts):
        print(f"  {k:22s} {counts[k]}")
    param_values = Counter(v for n in nests for v in n.params.values())
    print("  param values:", dict(sorted(param_values.items())))
    need = {
        "triangular": 20,
        "reverse": 20,
        "step2": 8,
        "step3": 5,
        "min_bound": 8,
        "max_bound": 8,
        "floordiv_bound": 8,
        "if": 20,
        "elif": 5,
        "else": 8,
        "cond_and": 5,
        "cond_or": 3,
        "cond_not": 3,
        "cond_chain": 5,
        "cond_mod": 5,
        "local_store": 20,
        "local_read": 20,
        "accumulation": 10,
        "toplevel_stmt": 10,
        "augassign": 30,
        "mul_assign": 5,
        "sibling_loops": 15,
        "multi_stmt_body": 15,
        "dep_read": 30,
        "dep_read_offset": 10,
        "tuple_subscript": 30,
        "chained_subscript": 15,
        "int_param_in_bounds": 20,
        "shape_param": 40,
        "shape_tuple": 8,
        "len_param": 8,
        "depth3": 20,
        "select": 8,
        "sqrt": 5,
        "min_value": 5,
        "max_value": 5,
        "abs": 5,
        "loopvar_value": 20,
    }
    missing = {k: (counts[k], v) for k, v in need.items() if counts[k] < v}
    assert not missing, f"features too rare (count, needed): {missing}"
    assert param_values[0] >= 5 and param_values[1] >= 5, "sizes 0 and 1 must occur"
    # generator's own bookkeeping agrees with the AST on a few features
    for nest in nests:
        ast_f = features_of(nest)
        for f in ("reverse", "step2", "step3", "floordiv_bound", "elif", "else"):
            assert (f in nest.features) == (ast_f[f] > 0), (f, nest)


@pytest.mark.parametrize(
    "options, forbidden",
    [
        (dict(allow_reverse=False), {"reverse"}),
        (dict(allow_steps=False), {"step2", "step3"}),
        (dict(allow_conditions=False), {"if", "elif", "else"}),
        (dict(allow_locals=False), {"local_store", "local_read", "accumulation"}),
        (dict(max_depth=1), {"depth2", "depth3"}),
        (dict(max_depth=2), {"depth3"}),
    ],
)
def test_options_switch_features_off(options, forbidden):
    for nest in _collect_sources(30, **options):
        f = features_of(nest)
        assert not (set(f) & forbidden), (options, nest)
        func = nest.load(_TMP)
        assert_bounded(run_checked(func, nest, 0), "options")


def test_max_statements_and_unknown_option():
    for nest in _collect_sources(30, max_statements=2):
        tree = ast.parse(nest.source)
        fn = tree.body[-1]
        n_stmts = sum(isinstance(n, (ast.Assign, ast.AugAssign)) for n in ast.walk(fn))
        n_prologue = sum(Checker(nest.source)._is_binding(s) for s in fn.body)
        assert 1 <= n_stmts - n_prologue <= 2, nest
    with pytest.raises(TypeError):
        loop_nests(max_dpeth=2)


def test_checked_array_rejects_bad_subscripts():
    a = checked_args((np.zeros((3, 2)),))[0]
    a[2, 1] = 1.0
    assert a[2][1] == 1.0
    for bad in [(-1, 0), (3, 0), (0, 2), (0, -1)]:
        with pytest.raises(IndexError):
            a[bad]
        with pytest.raises(IndexError):
            a[bad] = 0.0
    with pytest.raises(IndexError):
        a[-1][0]
    with pytest.raises(TypeError):
        a[0:2]
    with pytest.raises(TypeError):
        a[0.5, 0]
    assert loopgen.CheckedArray is type(a)
