"""Seeded random loop nests for differential fuzzing of polypipe, and the oracle that judges them.

``generate(seed)`` returns a :class:`FuzzNest`: the source of a small module (``import math``,
``import numpy as np`` and one function written in polypipe's subset), the function's name,
fresh arguments (``make_args()``), the constructs it uses (``features``) and whether it uses
transcendental functions or ``**`` (which loosens the float comparison). The nest is a pure
function of the seed: only ``random.Random(seed)`` and ``numpy.random.default_rng(seed)`` are
used, so a seed reproduces a failure exactly.

How indices stay in bounds: the sizes are drawn first, so the generator knows every concrete
iteration point. Loops and affine ``if``s are expanded into the set of points that reach each
statement (vectorised over NumPy arrays), and a subscript is only used if it evaluates inside
its array at every point where Python evaluates it. Inside the branches of a select whose
condition is affine the set shrinks to the points where that branch is taken; that is how
guarded accesses (``A[i - 1] if i > 0 else 0.0``) are built, with the guard derived from the
subscripts' failing sides. As a safety net the oracle runs the Python function on arrays that
raise on any negative or out-of-range subscript (``generator_error`` when that happens).

``check_nest(nest, backends)`` is the oracle: the plain Python function against the compiled C
kernel (backend ``"c"``) and, where ``polypipe.optimize`` maps the nest, the emulated GPU
kernels (``"emulate"``). ``run_campaign`` runs many seeds in worker subprocesses so a
segfault, a SIGFPE or a hang is recorded against its seed (``benchmarks/fuzz.py`` is the
command-line runner; ``tests/test_fuzz.py`` the fast tier).

``python tests/fuzzgen.py SEED [SEED ...]`` prints the generated sources.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["FuzzNest", "Outcome", "check_nest", "generate", "run_campaign"]

DTYPES = ("float32", "float64", "int32", "int64")
DTYPE_WEIGHTS = (3, 4, 2, 2)
SCALAR_KINDS = ("int", "float", "bool", "np.float32", "np.float64", "np.int32", "np.int64")
PARAM_NAMES = ("N", "M", "P")
ARRAY_NAMES = ("A", "B", "C", "D", "E")
VECTOR_NAMES = ("x", "y", "z", "w")
SCALAR_NAMES = ("alpha", "beta", "gamma", "delta")
LOCAL_NAMES = ("s", "t", "u", "acc")
LOOP_VARS = ("i", "j", "k")

# math / numpy functions by argument count; the last group needs a non-negative (or > 0) arg.
MATH_UNARY = ("tanh", "sin", "cos", "atan", "floor", "ceil", "fabs", "erf", "exp", "expm1")
MATH_DOMAIN = ("sqrt", "log", "log2", "log10", "log1p", "asin", "acos")
MATH_BINARY = ("atan2", "hypot", "copysign", "fmod", "pow")
NP_UNARY = ("tanh", "sin", "cos", "arctan", "floor", "ceil", "fabs", "exp", "expm1", "square",
            "abs", "absolute", "sinh", "cosh")
NP_DOMAIN = ("sqrt", "log", "log2", "log10", "log1p", "arcsin", "arccos")
NP_BINARY = ("hypot", "copysign", "arctan2", "power", "fmax", "fmin", "maximum", "minimum")
EXACT_FUNCTIONS = {"floor", "ceil", "fabs", "abs", "absolute", "copysign", "fmax", "fmin",
                   "maximum", "minimum", "square", "fmod"}

_VEVAL_GLOBALS = {"__builtins__": {}, "min": np.minimum, "max": np.maximum}


# =============================================================================================
# the generated nest
# =============================================================================================


@dataclass
class FuzzNest:
    """One generated nest: module source, function name and its arguments."""

    seed: int
    source: str
    func_name: str
    arg_names: tuple
    arg_values: tuple            # pristine values; make_args() copies them
    features: frozenset
    transcendental: bool         # uses transcendental functions or `**` (looser float compare)
    sizes: dict = field(default_factory=dict)

    def make_args(self) -> tuple:
        """Fresh arguments in the function's argument order (arrays copied, scalars as drawn)."""
        return tuple(v.copy() if isinstance(v, np.ndarray) else v for v in self.arg_values)

    def load(self, directory):
        """Write the module to a uniquely named file in ``directory``, import it, return the
        function (registered in ``sys.modules`` so ``inspect.getsource`` works)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        mod_name = f"fuzz_nest_{self.seed}_{uuid.uuid4().hex[:12]}".replace("-", "m")
        path = directory / f"{mod_name}.py"
        path.write_text(self.source)
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[mod_name]
            raise
        return getattr(module, self.func_name)

    def describe_args(self) -> str:
        parts = []
        for name, value in zip(self.arg_names, self.arg_values):
            if isinstance(value, np.ndarray):
                with np.printoptions(precision=6, threshold=200, linewidth=100):
                    parts.append(f"{name}: {value.dtype}{list(value.shape)} = "
                                 f"{np.array2string(value, separator=', ')}")
            else:
                parts.append(f"{name} = {value!r} ({type(value).__name__})")
        return "\n".join(parts)

    def __repr__(self) -> str:
        return f"FuzzNest(seed={self.seed}, source=\n{self.source})"


# =============================================================================================
# internal generator structures
# =============================================================================================


@dataclass
class _Array:
    name: str
    dtype: str
    dims: list            # [(param, pad)]
    extents: tuple = ()


@dataclass
class _Scalar:
    name: str
    kind: str
    value: object


@dataclass
class _E:
    """A generated value expression: text (always safe to embed) and a rough kind i/f/b."""

    text: str
    kind: str


@dataclass
class _Cond:
    text: str
    vec: np.ndarray       # truth value at every point of the current environment


@dataclass
class _Env:
    """Iteration points reaching a place: one int64 array per loop variable in scope."""

    vars: list            # [(var, natural param)] outermost first
    values: dict          # var -> np.ndarray
    n: int

    def namespace(self, params: dict) -> dict:
        ns = dict(params)
        ns.update(self.values)
        return ns

    def select(self, keep: np.ndarray) -> "_Env":
        return _Env(self.vars, {v: a[keep] for v, a in self.values.items()}, int(keep.sum()))


@dataclass
class _Place:
    """A statement to be filled in, with the points that execute it and its block path."""

    env: _Env
    path: tuple           # ((block id, position), ...)
    depth: int
    before_loop: bool = False    # the next item of its block is a loop
    after_loop: bool = False     # some earlier item of its block is a loop
    text: str = ""


@dataclass
class _Loop:
    var: str
    header: str
    body: list


@dataclass
class _If:
    branches: list        # [(condition text or None for else, body)]


class _Ctx:
    """What an expression of one statement may read."""

    def __init__(self, place: _Place, locals_: list, local_reads: int, fixed_reads=None):
        self.place = place
        self.env = place.env
        self.locals = locals_          # names readable here
        self.local_reads = local_reads  # how many more local reads are allowed
        self.fixed_reads = fixed_reads  # contraction mode: [(array, subscript text)]
        self.target = None              # (array, subscripts) of an array-writing statement
        self.no_power = False           # no `**` (a local's Python int must not explode)


class _Generator:
    def __init__(self, seed: int):
        self.seed = seed
        self.r = random.Random(seed)
        self.nr = np.random.default_rng(seed & (2**64 - 1))   # default_rng wants seed >= 0
        self.features: set[str] = set()
        self.transcendental = False
        self.params: dict[str, int] = {}
        self.param_source: dict[str, str] = {}
        self.arrays: list[_Array] = []
        self.scalars: list[_Scalar] = []
        self.places: list[_Place] = []
        self.block_ids = 0
        self.defs: dict[str, list[_Place]] = {}       # local -> plain-assignment places
        self.any_def: dict[str, list[_Place]] = {}    # local -> every writing place
        self.array_written: set[str] = set()
        self.max_statements = 5
        self.guard_rate = 0.0       # per read: a subscript that is only valid under a guard

    # -- small helpers -----------------------------------------------------------------------
    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pick(self, items, weights=None):
        items = list(items)
        if weights is None:
            return self.r.choice(items)
        return self.r.choices(items, weights=weights, k=1)[0]

    def feat(self, *names: str) -> None:
        self.features.update(names)

    def veval(self, text: str, env: _Env) -> np.ndarray:
        value = eval(text, _VEVAL_GLOBALS, env.namespace(self.params))  # noqa: S307 (own text)
        return np.broadcast_to(np.asarray(value, dtype=np.int64), (env.n,))

    def ext_text(self, param: str, pad: int) -> str:
        return param if pad == 0 else f"{param} + {pad}"

    # -- sizes, arrays, scalars --------------------------------------------------------------
    def setup(self, contraction: bool) -> None:
        r = self.r
        nparams = 3 if contraction else self.pick((1, 2, 3), (3, 4, 2))
        names = list(PARAM_NAMES[:nparams])
        for name in names:
            roll = r.random()
            if roll < 0.06:
                value = r.choice((0, 1))
            elif roll < 0.85:
                value = r.randint(2, 8)
            else:
                value = r.randint(9, 12)
            self.params[name] = value
        if contraction:
            return
        narrays = self.pick((1, 2, 3, 4), (2, 4, 3, 2))
        used_names = set()
        for _ in range(narrays):
            rank = self.pick((1, 2, 3), (6, 5, 1))
            pool = VECTOR_NAMES if rank == 1 else ARRAY_NAMES
            name = self.pick([n for n in pool if n not in used_names])
            used_names.add(name)
            dims = []
            for _ in range(rank):
                param = self.pick(names)
                pad = self.pick((0, 1, 2), (6, 3, 1))
                dims.append((param, pad))
            dtype = self.pick(DTYPES, DTYPE_WEIGHTS)
            self.arrays.append(_Array(name, dtype, dims))
        nscalars = self.pick((0, 1, 2, 3), (3, 4, 3, 1))
        for name in SCALAR_NAMES[:nscalars]:
            self.scalars.append(self.make_scalar(name))
        self.plan_params()

    def make_scalar(self, name: str, kind: str | None = None) -> _Scalar:
        r = self.r
        kind = kind or self.pick(SCALAR_KINDS, (3, 4, 1, 2, 2, 2, 2))
        self.feat(f"scalar:{kind}")
        if kind == "bool":
            return _Scalar(name, kind, r.random() < 0.5)
        if kind in ("int", "np.int32", "np.int64"):
            roll = r.random()
            if roll < 0.12:
                value = 0
            elif roll < 0.94:
                value = r.randint(-4, 5)
            else:
                value = r.choice((2**31 - 1, -2**31, 2**40, 10**6))
                if kind == "np.int32":
                    value = r.choice((2**31 - 1, -2**31, 65536))
                self.feat("scalar:big")
            if kind == "int":
                return _Scalar(name, kind, int(value))
            return _Scalar(name, kind, np.int32(value) if kind == "np.int32" else np.int64(value))
        roll = r.random()
        if roll < 0.07:
            value = 0.0
        elif roll < 0.1:
            value = r.choice((math.nan, math.inf, -math.inf, 1e30))
            self.feat("scalar:special")
        else:
            value = round(r.uniform(-2.0, 2.0), r.choice((1, 3, 7)))
        if kind == "float":
            return _Scalar(name, kind, float(value))
        return _Scalar(name, kind, np.float32(value) if kind == "np.float32" else np.float64(value))

    def plan_params(self) -> None:
        """Decide where each size comes from: an int argument or an array's shape."""
        for param in self.params:
            holders = [a for a in self.arrays if any(p == param and pad == 0 for p, pad in a.dims)]
            users = [a for a in self.arrays if any(p == param for p, _ in a.dims)]
            if not holders and users and self.chance(0.6):
                array = self.pick(users)
                d = self.pick([d for d, (p, _) in enumerate(array.dims) if p == param])
                array.dims[d] = (param, 0)
                holders = [array]
            if holders and self.chance(0.7):
                self.param_source[param] = "shape"
            else:
                self.param_source[param] = "arg"
        for array in self.arrays:
            array.extents = tuple(self.params[p] + pad for p, pad in array.dims)

    def bindings(self) -> list[str]:
        """Shape-binding lines for every shape-sourced size."""
        lines = []
        bound: set[str] = set()
        wanted = [p for p, s in self.param_source.items() if s == "shape"]
        for param in wanted:
            if param in bound:
                continue
            holders = [a for a in self.arrays if any(p == param and pad == 0 for p, pad in a.dims)]
            array = self.pick(holders)
            dims = [d for d, (p, pad) in enumerate(array.dims) if p == param and pad == 0]
            dim = self.pick(dims)
            rank = len(array.dims)
            style = self.r.random()
            if rank >= 2 and style < 0.45:
                targets = []
                for p, pad in array.dims:
                    if pad == 0 and p in wanted and p not in bound and p not in targets:
                        targets.append(p)
                    else:
                        targets.append("_")
                bound.update(t for t in targets if t != "_")
                lines.append(f"{', '.join(targets)} = {array.name}.shape")
                self.feat("param:shape_unpack")
            elif dim == 0 and style < 0.8:
                lines.append(f"{param} = len({array.name})")
                bound.add(param)
                self.feat("param:len")
            elif dim == 1 and style < 0.6 and array.extents[0] > 0:
                lines.append(f"{param} = len({array.name}[0])")
                bound.add(param)
                self.feat("param:len")
            elif rank == 1 and style < 0.9:
                lines.append(f"{param}, = {array.name}.shape")
                bound.add(param)
                self.feat("param:shape_unpack")
            else:
                lines.append(f"{param} = {array.name}.shape[{dim}]")
                bound.add(param)
                self.feat("param:shape_index")
        if len(lines) >= 2 and self.chance(0.2):
            # `N, M = len(x), A.shape[1]`: one tuple binding
            singles = [ln for ln in lines if ln.count("=") == 1 and "," not in ln.split("=")[0]]
            if len(singles) >= 2:
                a, b = singles[:2]
                lines = [ln for ln in lines if ln not in (a, b)]
                (ta, va), (tb, vb) = (s.split(" = ") for s in (a, b))
                lines.insert(0, f"{ta}, {tb} = {va}, {vb}")
                self.feat("param:tuple_binding")
        return lines

    # -- affine pieces -----------------------------------------------------------------------
    def affine_term(self, env: _Env, allow_const=True) -> str:
        """A small affine integer term over the loop variables and sizes in scope."""
        r = self.r
        vars_ = [v for v, _ in env.vars]
        params = list(self.params)
        if not vars_ or (allow_const and self.chance(0.1)):
            p = self.pick(params)
            return self.pick((p, f"{p} - 1", f"{p} // 2", str(r.randint(0, 4))))
        v = self.pick(vars_)
        roll = r.random()
        if roll < 0.45:
            return v
        if roll < 0.6:
            return f"{v} + {r.randint(1, 2)}" if self.chance(0.5) else f"{v} - {r.randint(1, 2)}"
        if roll < 0.72 and len(vars_) >= 2:
            w = self.pick([x for x in vars_ if x != v])
            return self.pick((f"{v} + {w}", f"{v} - {w}"))
        if roll < 0.82:
            return f"2 * {v}"
        if roll < 0.92:
            return f"{v} // 2"
        return f"{self.pick(params)} - 1 - {v}"

    def affine_atom(self, env: _Env) -> _Cond:
        r = self.r
        vars_ = [v for v, _ in env.vars]
        roll = r.random()
        if vars_ and roll < 0.2:
            term = self.pick(vars_) if len(vars_) == 1 or self.chance(0.4) else \
                " + ".join(r.sample(vars_, 2))
            m = self.pick((2, 3))
            rem = r.randrange(m)
            op = self.pick(("==", "!="))
            text = f"({term}) % {m} {op} {rem}" if "+" in term else f"{term} % {m} {op} {rem}"
            self.feat("if:mod")
            vals = self.veval(f"({term}) % {m}", env)
            return _Cond(text, (vals == rem) if op == "==" else (vals != rem))
        if vars_ and roll < 0.3:
            v = self.pick(vars_)
            p = self.pick(list(self.params))
            text = f"0 < {v} < {p} - 1"
            vals = self.veval(v, env)
            self.feat("cond:chained")
            return _Cond(text, (vals > 0) & (vals < self.params[p] - 1))
        left = self.affine_term(env, allow_const=False)
        op = self.pick(("<", "<=", ">", ">=", "==", "!="))
        if vars_ and len(vars_) >= 2 and self.chance(0.35):
            right = self.pick([v for v, _ in env.vars if v != left] or ["0"])
        else:
            p = self.pick(list(self.params))
            right = self.pick((p, f"{p} // 2", f"{p} - 1", str(r.randint(0, 3)), "1"))
        a, b = self.veval(left, env), self.veval(right, env)
        vec = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b,
               "!=": a != b}[op]
        return _Cond(f"{left} {op} {right}", vec)

    def affine_cond(self, env: _Env, depth: int = 0) -> _Cond:
        roll = self.r.random()
        if depth >= 1 or roll < 0.6:
            return self.affine_atom(env)
        if roll < 0.75:
            inner = self.affine_cond(env, depth + 1)
            self.feat("cond:not")
            return _Cond(f"not ({inner.text})", ~inner.vec)
        a, b = self.affine_cond(env, depth + 1), self.affine_cond(env, depth + 1)
        if self.chance(0.5):
            self.feat("cond:and")
            return _Cond(f"({a.text}) and ({b.text})", a.vec & b.vec)
        self.feat("cond:or")
        return _Cond(f"({a.text}) or ({b.text})", a.vec | b.vec)

    # -- loop headers ------------------------------------------------------------------------
    def loop_header(self, var: str, env: _Env) -> tuple[str, str, str, int, str]:
        """(range text, lower, upper, step, natural param) for a loop over ``var``."""
        r = self.r
        p = self.pick(list(self.params))
        outer = [v for v, _ in env.vars]
        o = self.pick(outer) if outer else None
        forms = [("plain", 8), ("offset", 3), ("step", 2), ("reverse", 3), ("minmax", 2)]
        if o is not None:
            forms += [("triangular", 5), ("window", 2)]
        form = self.pick([f for f, _ in forms], [w for _, w in forms])
        if form == "plain":
            self.feat("loop:range1")
            return f"range({p})", "0", p, 1, p
        if form == "offset":
            self.feat("loop:range2")
            lo, hi = self.pick((("1", p), ("0", f"{p} - 1"), ("1", f"{p} - 1"), ("2", p)))
            return f"range({lo}, {hi})", lo, hi, 1, p
        if form == "step":
            s = self.pick((2, 3))
            lo = self.pick(("0", "1"))
            self.feat("loop:step+")
            return f"range({lo}, {p}, {s})", lo, p, s, p
        if form == "reverse":
            self.feat("loop:step-")
            s = self.pick((1, 1, 2, 3))
            lo, hi = self.pick(((f"{p} - 1", "-1"), (f"{p} - 1", "0"), (p, "0"),
                                (f"{p} - 2", "-1")))
            return f"range({lo}, {hi}, {-s})", lo, hi, -s, p
        if form == "minmax":
            q = self.pick(list(self.params))
            self.feat("loop:minmax")
            choice = r.randrange(3)
            if choice == 0:
                return f"range(min({p}, {q}))", "0", f"min({p}, {q})", 1, p
            if choice == 1:
                self.feat("loop:floordiv")
                return f"range({p} // 2)", "0", f"{p} // 2", 1, p
            return f"range(max(1, {p} - 3), {p})", f"max(1, {p} - 3)", p, 1, p
        if form == "triangular":
            self.feat("loop:triangular")
            choice = r.randrange(6)
            if choice == 0:
                return f"range({o})", "0", o, 1, p
            if choice == 1:
                return f"range({o} + 1, {p})", f"{o} + 1", p, 1, p
            if choice == 2:
                return f"range({o}, {p})", o, p, 1, p
            if choice == 3:
                return f"range({o} + 1)", "0", f"{o} + 1", 1, p
            if choice == 4:
                self.feat("loop:step-")
                return f"range({o}, -1, -1)", o, "-1", -1, p
            self.feat("loop:step-")
            return f"range({p} - 1, {o}, -1)", f"{p} - 1", o, -1, p
        self.feat("loop:minmax")
        choice = r.randrange(3)
        if choice == 0:
            return (f"range(max(0, {o} - 2), min({p}, {o} + 3))", f"max(0, {o} - 2)",
                    f"min({p}, {o} + 3)", 1, p)
        if choice == 1:
            self.feat("loop:floordiv")
            return f"range({o} // 2, {p})", f"{o} // 2", p, 1, p
        return f"range(min({o} + 2, {p}))", "0", f"min({o} + 2, {p})", 1, p

    def expand(self, env: _Env, var: str, param: str, lo: str, hi: str, step: int) -> _Env:
        los, his = self.veval(lo, env), self.veval(hi, env)
        counts, pieces = [], []
        for a, b in zip(los, his):
            values = np.arange(int(a), int(b), step, dtype=np.int64)
            counts.append(len(values))
            pieces.append(values)
        counts = np.array(counts, dtype=np.int64)
        values = {v: np.repeat(arr, counts) for v, arr in env.values.items()}
        values[var] = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
        return _Env(env.vars + [(var, param)], values, int(counts.sum()))

    # -- skeleton ----------------------------------------------------------------------------
    def new_block(self) -> int:
        self.block_ids += 1
        return self.block_ids

    def place(self, env: _Env, path: tuple, depth: int) -> _Place:
        ph = _Place(env, path, depth)
        self.places.append(ph)
        return ph

    def skeleton(self) -> list:
        top_env = _Env([], {}, 1)
        block = self.new_block()
        items: list = []
        plan = []
        if self.chance(0.3):
            plan.append("stmt")
        plan.append("loop")
        if self.chance(0.25):
            plan.append("loop")
        if self.chance(0.15):
            plan.append("stmt")
        for pos, what in enumerate(plan):
            if pos > 0 and self.budget_left() <= 0:
                break
            path = ((block, pos),)
            if what == "stmt":
                items.append(self.place(top_env, path, 0))
            else:
                items.append(self.loop(top_env, path, 1))
        self.mark_neighbours(items)
        return items

    def mark_neighbours(self, items: list) -> None:
        seen_loop = False
        for index, item in enumerate(items):
            if isinstance(item, _Place):
                item.after_loop = seen_loop
                item.before_loop = index + 1 < len(items) and isinstance(items[index + 1], _Loop)
            else:
                seen_loop = True

    def loop(self, env: _Env, path: tuple, depth: int) -> _Loop:
        var = LOOP_VARS[depth - 1]
        header, lo, hi, step, param = self.loop_header(var, env)
        inner = self.expand(env, var, param, lo, hi, step)
        return _Loop(var, header, self.body(inner, path, depth))

    def budget_left(self) -> int:
        return self.max_statements - len(self.places)

    def body(self, env: _Env, path: tuple, depth: int) -> list:
        block = self.new_block()
        items: list = []
        count = self.pick((1, 2, 3), (4, 4, 2))
        kinds = []
        if depth < 3 and self.budget_left() >= 3 and self.chance(0.3):
            count = 0
            kinds = ["stmt", "loop", "stmt"]     # s = ...; for ...: s += ...; y[i] = s
        for _ in range(count):
            options = [("stmt", 5)]
            if depth < 3:
                options.append(("loop", 4 if depth == 1 else 2))
            options.append(("if", 2))
            kinds.append(self.pick([o for o, _ in options], [w for _, w in options]))
        if "stmt" not in kinds and "loop" not in kinds and depth == 3:
            kinds.append("stmt")
        for pos, kind in enumerate(kinds):
            if self.budget_left() <= 0 or (kind == "if" and self.budget_left() < 2):
                break
            sub = path + ((block, pos),)
            if kind == "stmt":
                items.append(self.place(env, sub, depth))
            elif kind == "loop":
                items.append(self.loop(env, sub, depth + 1))
            else:
                items.append(self.if_block(env, sub, depth))
        if not items and self.budget_left() > 0:
            items.append(self.place(env, path + ((block, 0),), depth))
        if not items:
            items.append(_Pass())
        self.mark_neighbours(items)
        return items

    def if_block(self, env: _Env, path: tuple, depth: int) -> _If:
        self.feat("if")
        nbranch = self.pick((1, 2, 3), (4, 4, 2))
        remaining = np.ones(env.n, dtype=bool)
        branches = []
        for index in range(nbranch):
            if index > 0 and self.budget_left() <= 0:
                break
            is_else = index == nbranch - 1 and index > 0 and self.chance(0.7)
            if is_else:
                cond_text, holds = None, remaining
                self.feat("else")
            else:
                cond = self.affine_cond(env)
                cond_text, holds = cond.text, remaining & cond.vec
                if index > 0:
                    self.feat("elif")
            remaining = remaining & ~holds
            block = self.new_block()
            sub_env = env.select(holds)
            body = []
            nitems = self.pick((1, 2), (3, 1))
            for pos in range(nitems):
                if self.budget_left() <= 0:
                    break
                sub = path + ((block, pos),)
                if depth < 3 and self.chance(0.25):
                    body.append(self.loop(sub_env, sub, depth + 1))
                else:
                    body.append(self.place(sub_env, sub, depth))
            if not body:
                body.append(_Pass())
            self.mark_neighbours(body)
            branches.append((cond_text, body))
        return _If(branches)

    # -- dominance ---------------------------------------------------------------------------
    @staticmethod
    def dominates(d: _Place, r: _Place) -> bool:
        """Does the statement at ``d`` run before ``r`` whenever ``r`` runs?"""
        *dprefix, (dblock, dpos) = d.path
        if len(r.path) < len(d.path) or tuple(r.path[:len(dprefix)]) != tuple(dprefix):
            return False
        rblock, rpos = r.path[len(dprefix)]
        return rblock == dblock and rpos > dpos

    def readable_locals(self, place: _Place) -> list[str]:
        names = [n for n, defs in self.defs.items() if any(self.dominates(d, place) for d in defs)]
        if self.chance(0.05):
            # a local written before in source order but not on every path: Python raises
            # UnboundLocalError when no write ran before this read
            extra = [n for n in self.any_def if n not in names]
            if extra:
                names.append(self.pick(extra))
                self.feat("local:maybe_unbound")
        return names

    # -- subscripts --------------------------------------------------------------------------
    def sub_candidates(self, env: _Env, param: str, pad: int) -> list[str]:
        r = self.r
        weighted: list[tuple[str, float]] = []
        for v, natural in env.vars:
            base = 10.0 if natural == param else 4.0
            weighted += [(v, base), (f"{v} + 1", 2), (f"{v} - 1", 2.5), (f"{v} + 2", 0.7),
                         (f"{v} - 2", 0.7), (f"{param} - 1 - {v}", 1.2), (f"{v} // 2", 0.8),
                         (f"2 * {v}", 0.6), (f"{v} % 2", 0.3), (f"min({v}, {param} - 1)", 0.5),
                         (f"max({v} - 1, 0)", 0.4)]
            for w, _ in env.vars:
                if w != v:
                    weighted += [(f"{v} + {w}", 0.4), (f"{v} - {w}", 0.4)]
        weighted += [("0", 0.6), ("1", 0.3), (f"{param} - 1", 0.4), (f"{param} // 2", 0.3)]
        keyed = [(r.random() ** (1.0 / w), text) for text, w in weighted]
        keyed.sort(reverse=True)
        return [text for _, text in keyed]

    def subscripts(self, array: _Array, env: _Env, mask: np.ndarray, guard: bool):
        """([subscript texts], guard or None) valid wherever ``mask`` holds.

        With ``guard``, one subscript may be invalid at some points of ``mask``; the guard is
        then ``(pieces, ok)``: for that subscript which sides fail, and where it is valid.
        """
        rank = len(array.dims)
        guard_dim = self.r.randrange(rank) if guard else None
        texts = []
        found = None
        for d, (param, pad) in enumerate(array.dims):
            extent = array.extents[d]
            chosen = None
            cands = self.sub_candidates(env, param, pad)
            if d == guard_dim and mask.any():
                for text in cands:
                    vals = self.veval(text, env)
                    low, high = vals < 0, vals >= extent
                    ok = ~low & ~high
                    if ok[mask].any() and not ok[mask].all():
                        chosen = text
                        found = (dict(sub=text, low=bool(low[mask].any()),
                                      high=bool(high[mask].any()),
                                      ext=self.ext_text(param, pad)), ok)
                        break
            if chosen is None:
                for text in cands:
                    vals = self.veval(text, env)[mask]
                    if np.all((vals >= 0) & (vals < extent)):
                        chosen = text
                        break
            if chosen is None:
                return None, None
            texts.append(chosen)
        return texts, found

    def access_text(self, array: _Array, subs: list[str]) -> str:
        if len(subs) >= 2 and self.chance(0.1):
            self.feat("subscript:chained")
            return array.name + "".join(f"[{s}]" for s in subs)
        return f"{array.name}[{', '.join(subs)}]"

    # -- value expressions -------------------------------------------------------------------
    def const(self, kind: str | None = None) -> _E:
        kind = kind or self.pick(("i", "f", "b"), (4, 6, 0.3))
        if kind == "i":
            value = self.pick((0, 1, 2, 3, 5, -1, -2, -3, 7, 10), (1, 4, 4, 3, 1, 2, 1, 1, 1, 1))
            return _E(f"({value})" if value < 0 else str(value), "i")
        if kind == "b":
            return _E(self.pick(("True", "False")), "b")
        if self.chance(0.04):
            self.feat("const:module")
            return _E(self.pick(("math.pi", "np.pi", "math.e", "math.inf")), "f")
        value = self.pick((0.5, 1.0, 2.0, 0.25, 1.5, -0.5, -1.0, 3.0, 0.1, 1e-3, 0.0, 1e10))
        text = repr(value)
        return _E(f"({text})" if value < 0 else text, "f")

    def leaf(self, mask: np.ndarray, ctx: _Ctx) -> _E:
        env = ctx.env
        options = [("array", 45), ("const", 18), ("iter", 7 if env.vars else 0),
                   ("param", 4), ("scalar", 12 if self.scalars else 0),
                   ("local", 14 if ctx.locals and ctx.local_reads > 0 else 0),
                   ("affine", 3 if env.vars else 0)]
        kind = self.pick([o for o, _ in options], [w for _, w in options])
        if kind == "array":
            read = self.array_read(mask, ctx)
            if read is not None:
                return read
            kind = "const"
        if kind == "const":
            return self.const()
        if kind == "iter":
            return _E(self.pick([v for v, _ in env.vars]), "i")
        if kind == "param":
            self.feat("value:param")
            return _E(self.pick(list(self.params)), "i")
        if kind == "scalar":
            s = self.pick(self.scalars)
            return _E(s.name, "b" if s.kind == "bool" else "i" if "int" in s.kind else "f")
        if kind == "local":
            ctx.local_reads -= 1
            self.feat("local:read")
            return _E(self.pick(ctx.locals), "f")
        self.feat("value:affine")
        return _E(f"({self.affine_term(env)})", "i")

    def array_read(self, mask: np.ndarray, ctx: _Ctx) -> _E | None:
        if ctx.fixed_reads is not None:
            name, subs = self.pick(ctx.fixed_reads)
            array = next(a for a in self.arrays if a.name == name)
            return _E(f"{name}[{subs}]", "f" if "float" in array.dtype else "i")
        array = self.pick(self.arrays)
        subs, guard = self.subscripts(array, ctx.env, mask, self.chance(self.guard_rate))
        if subs is None:
            return None
        kind = "f" if "float" in array.dtype else "i"
        text = self.access_text(array, subs)
        if ctx.target is not None and ctx.target[0] == array.name and ctx.target[1] != subs:
            self.feat("inplace_neighbour")
        if guard is None:
            return _E(text, kind)
        piece, ok = guard
        self.feat("select:guarded")
        form = self.r.randrange(4)
        # the default runs where the guard fails (and, in form 3, where the data test fails)
        default = self.pick(("0.0", "0", "(-1.0)", "1")) if self.chance(0.8) else \
            self.leaf(mask if form == 3 else mask & ~ok, ctx).text
        sub, ext = piece["sub"], piece["ext"]
        oks, fails = [], []
        if piece["low"]:
            oks.append(f"{sub} >= 0")
            fails.append(f"{sub} < 0")
        if piece["high"]:
            oks.append(f"{sub} < {ext}")
            fails.append(f"{sub} >= {ext}")
        ok_text = " and ".join(oks)
        if self.chance(0.3):
            ok_text = f"0 <= {sub} < {ext}"
            self.feat("cond:chained")
        if form == 0:
            return _E(f"({text} if {ok_text} else {default})", kind)
        if form == 1:
            self.feat("select:not")
            return _E(f"({default} if not ({ok_text}) else {text})", kind)
        if form == 2:
            if len(fails) > 1:
                self.feat("select:boolop")
            return _E(f"({default} if {' or '.join(fails)} else {text})", kind)
        self.feat("select:boolop")
        data = self.data_cond(mask & ok, ctx, depth=1)
        return _E(f"({text} if {ok_text} and {data} else {default})", kind)

    def data_cond(self, mask: np.ndarray, ctx: _Ctx, depth: int = 0) -> str:
        """A data-dependent condition (text only: it does not restrict where reads happen)."""
        roll = self.r.random()
        if depth < 1 and roll < 0.2:
            a, b = self.data_cond(mask, ctx, 1), self.data_cond(mask, ctx, 1)
            op = self.pick(("and", "or"))
            self.feat("select:boolop")
            return f"({a} {op} {b})"
        if depth < 1 and roll < 0.28:
            self.feat("select:not")
            return f"not ({self.data_cond(mask, ctx, 1)})"
        if depth < 1 and roll < 0.33 and ctx.env.vars:
            self.feat("select:boolop")
            return f"({self.affine_atom(ctx.env).text} and {self.data_cond(mask, ctx, 1)})"
        left = self.data_leaf(mask, ctx)
        if roll > 0.95:
            self.feat("select:truthy")
            return left.text
        op = self.pick(("<", "<=", ">", ">=", "==", "!="), (3, 2, 3, 2, 1, 1))
        if self.chance(0.6):
            right = self.pick(("0.5", "0", "0.0", "(-0.5)", "1", "leaf"))
            if right == "leaf":
                right = self.leaf(mask, ctx).text
        else:
            right = self.leaf(mask, ctx).text
        return f"{left.text} {op} {right}"

    def data_leaf(self, mask: np.ndarray, ctx: _Ctx) -> _E:
        """A leaf that depends on the data: an array element, a local or a scalar argument."""
        for _ in range(6):
            roll = self.r.random()
            if roll < 0.2 and ctx.locals and ctx.local_reads > 0:
                ctx.local_reads -= 1
                self.feat("local:read")
                return _E(self.pick(ctx.locals), "f")
            if roll < 0.35 and self.scalars:
                s = self.pick(self.scalars)
                return _E(s.name, "b" if s.kind == "bool" else "i" if "int" in s.kind else "f")
            read = self.array_read(mask, ctx)
            if read is not None:
                return read
        return self.leaf(mask, ctx)

    def divisor(self, mask: np.ndarray, ctx: _Ctx, depth: int) -> _E:
        if self.chance(0.35):
            self.feat("div:risky")
            if ctx.env.vars and self.chance(0.35):
                # a Python int that is zero at some iterations: `x // (i - 2)`; between Python
                # ints (or a Python float and int) Python raises ZeroDivisionError
                self.feat("div:pyint")
                return _E(f"({self.affine_term(ctx.env, allow_const=False)})", "i")
            return self.expr(depth - 1, mask, ctx)
        roll = self.r.random()
        if roll < 0.4:
            return _E(self.pick(("2", "3", "(-2)", "0.5", "4.0", "(-3)", "7")), "i")
        if roll < 0.6 and ctx.env.vars:
            return _E(f"({self.pick([v for v, _ in ctx.env.vars])} + 1)", "i")
        inner = self.expr(depth - 1, mask, ctx)
        return _E(f"(abs({inner.text}) + 1)", inner.kind)

    def power(self, mask: np.ndarray, ctx: _Ctx, depth: int) -> _E:
        self.transcendental = True
        self.feat("expr:**")
        r = self.r
        roll = r.random()
        base = self.expr(depth - 1, mask, ctx)
        use_pow = self.pick(("**", "**", "**", "pow", "math.pow", "np.power"))
        if roll < 0.5:
            exp = self.pick(("2", "3", "(-1)", "(-2)", "0", "1"), (4, 2, 3, 1, 1, 1))
            if "-" in exp:
                self.feat("expr:**neg")
                if self.chance(0.3):
                    base = _E(self.pick(("2", "3", "10")), "i")
                    self.feat("expr:int**neg")
            kind = base.kind
        elif roll < 0.7:
            exp = self.pick(("0.5", "(-0.5)", "1.5", "2.0", "(-1.0)"))
            if exp.startswith("(-"):
                self.feat("expr:**neg")
            base = _E(f"abs({base.text})", base.kind)
            kind = "f"
        else:
            self.feat("expr:**var")
            if ctx.env.vars and self.chance(0.5):
                exp = self.pick([v for v, _ in ctx.env.vars])
                if self.chance(0.3):
                    exp = f"({exp} - 2)"
                    self.feat("expr:**neg")
            else:
                inner = self.leaf(mask, ctx)
                exp = inner.text
                if inner.kind == "i" and self.chance(0.5):
                    exp = f"abs({exp})"
                base = _E(f"(abs({base.text}) + 0.5)", "f")
            kind = "f" if base.kind == "f" else base.kind
        if use_pow == "**":
            return _E(f"({base.text} ** {exp})", kind)
        self.feat(f"call:{use_pow}")
        return _E(f"{use_pow}({base.text}, {exp})", "f" if use_pow == "math.pow" else kind)

    def call(self, mask: np.ndarray, ctx: _Ctx, depth: int) -> _E:
        r = self.r
        sub = lambda: self.expr(depth - 1, mask, ctx)  # noqa: E731
        family = self.pick(("minmax", "abs", "npminmax", "cast", "math", "np"), (4, 2, 3, 4, 5, 4))
        if family == "minmax":
            name = self.pick(("min", "max"))
            args = [sub() for _ in range(self.pick((2, 3), (4, 1)))]
            self.feat(f"call:{name}")
            return _E(f"{name}({', '.join(a.text for a in args)})",
                      "f" if any(a.kind == "f" for a in args) else "i")
        if family == "abs":
            a = sub()
            self.feat("call:abs")
            return _E(f"abs({a.text})", a.kind)
        if family == "npminmax":
            name = self.pick(("minimum", "maximum", "fmin", "fmax", "abs"))
            self.feat(f"call:np.{name}")
            if name == "abs":
                a = sub()
                return _E(f"np.abs({a.text})", a.kind)
            a, b = sub(), sub()
            return _E(f"np.{name}({a.text}, {b.text})", "f" if "f" in a.kind + b.kind else "i")
        if family == "cast":
            name = self.pick(("float", "int", "np.float32", "np.int32", "np.float64", "np.int64"))
            self.feat(f"cast:{name}")
            a = sub()
            return _E(f"{name}({a.text})", "f" if "float" in name else "i")
        if family == "math":
            self.feat("call:math")
            roll = r.random()
            if roll < 0.45:
                name = self.pick(MATH_UNARY)
                a = sub()
                text = f"math.{name}({a.text})"
            elif roll < 0.8:
                name = self.pick(MATH_DOMAIN)
                a = sub()
                if self.chance(0.7):
                    arg = f"abs({a.text}) + 1.0" if name in ("log", "log2", "log10") else \
                        f"abs({a.text})"
                    if name in ("asin", "acos"):
                        arg = f"math.tanh({a.text})"
                else:
                    arg = a.text
                    self.feat("domain:risky")
                text = f"math.{name}({arg})"
            else:
                name = self.pick(MATH_BINARY)
                a, b = sub(), sub()
                text = f"math.{name}({a.text}, {b.text})"
            self.feat(f"math:{name}")
            if name not in EXACT_FUNCTIONS:
                self.transcendental = True
            return _E(text, "i" if name in ("floor", "ceil") else "f")
        self.feat("call:np")
        roll = r.random()
        if roll < 0.45:
            name = self.pick(NP_UNARY)
            a = sub()
            text = f"np.{name}({a.text})"
        elif roll < 0.8:
            name = self.pick(NP_DOMAIN)
            a = sub()
            if self.chance(0.6):
                arg = f"np.abs({a.text}) + 1.0" if name.startswith("log") else \
                    f"np.abs({a.text})"
                if name in ("arcsin", "arccos"):
                    arg = f"np.tanh({a.text})"
            else:
                arg = a.text
                self.feat("domain:risky")
            text = f"np.{name}({arg})"
        else:
            name = self.pick(NP_BINARY)
            a, b = sub(), sub()
            if name == "power":
                self.transcendental = True
                b = _E(self.pick(("2", "3", "0.5")), "i")
                a = _E(f"np.abs({a.text})", a.kind)
            text = f"np.{name}({a.text}, {b.text})"
        self.feat(f"np:{name}")
        if name not in EXACT_FUNCTIONS:
            self.transcendental = True
        return _E(text, "f")

    def expr(self, depth: int, mask: np.ndarray, ctx: _Ctx) -> _E:
        if depth <= 0 or self.chance(0.25):
            return self.leaf(mask, ctx)
        options = [("binop", 40), ("unary", 4), ("select_data", 7), ("select_affine", 6),
                   ("compare", 2), ("call", 16), ("power", 4)]
        kind = self.pick([o for o, _ in options], [w for _, w in options])
        if kind == "binop":
            op = self.pick(("+", "-", "*", "/", "//", "%"), (25, 20, 25, 10, 7, 7))
            left = self.expr(depth - 1, mask, ctx)
            if op in ("/", "//", "%"):
                self.feat(f"expr:{op}")
                right = self.divisor(mask, ctx, depth)
            else:
                right = self.expr(depth - 1, mask, ctx)
            kind_ = "f" if op == "/" or "f" in left.kind + right.kind else "i"
            return _E(f"({left.text} {op} {right.text})", kind_)
        if kind == "unary":
            a = self.expr(depth - 1, mask, ctx)
            self.feat("expr:neg")
            return _E(f"(-{a.text})", a.kind)
        if kind == "select_data":
            self.feat("select:data")
            cond = self.data_cond(mask, ctx)
            a, b = self.expr(depth - 1, mask, ctx), self.expr(depth - 1, mask, ctx)
            return _E(f"({a.text} if {cond} else {b.text})", a.kind if a.kind == b.kind else "f")
        if kind == "select_affine" and ctx.env.vars:
            self.feat("select:affine")
            cond = self.affine_cond(ctx.env)
            a = self.expr(depth - 1, mask & cond.vec, ctx)
            b = self.expr(depth - 1, mask & ~cond.vec, ctx)
            kind_ = a.kind if a.kind == b.kind else "f"
            return _E(f"({a.text} if {cond.text} else {b.text})", kind_)
        if kind == "compare":
            self.feat("expr:compare")
            a, b = self.expr(depth - 1, mask, ctx), self.expr(depth - 1, mask, ctx)
            return _E(f"({a.text} {self.pick(('<', '>', '==', '>='))} {b.text})", "b")
        if kind == "power" and not ctx.no_power:
            return self.power(mask, ctx, depth)
        if kind == "power":
            return self.leaf(mask, ctx)
        return self.call(mask, ctx, depth)

    # -- statements --------------------------------------------------------------------------
    def fill(self, place: _Place, force_array: bool, locals_ok: bool) -> None:
        env = place.env
        everywhere = np.ones(env.n, dtype=bool)
        readable = self.readable_locals(place)
        target = None
        op = "="
        # prefer `s = 0.0` before a loop, `s += ...` inside it and `y[i] = s` after it
        accumulators = [n for n in readable if any(
            d.before_loop and d.depth < place.depth and self.dominates(d, place)
            for d in self.defs.get(n, ()))]
        want_local = locals_ok and not force_array and (
            self.chance(0.75) if place.before_loop else self.chance(0.25))
        self_update = None
        if locals_ok and not force_array and accumulators and self.chance(0.55):
            name = self.pick(accumulators)
            op = self.pick(("+=", "-=", "*=", "/=", "//=", "%=", "="), (6, 1, 1, 0.6, 0.4, 0.4, 3))
            if op == "=":
                self_update = self.pick((f"max({name}, {{}})", f"min({{}}, {name})",
                                         f"{name} * 0.5 + {{}}", f"{name} - {{}}",
                                         f"({{}} if {{}} > {name} else {name})"))
            target = ("local", name, None)
            self.feat("local:accumulate")
        elif want_local:
            local_targets = [n for n in LOCAL_NAMES[:3]]
            name = self.pick(readable) if readable and self.chance(0.55) else \
                self.pick(local_targets)
            if name in readable:
                op = self.pick(("=", "+=", "-=", "*=", "/=", "//=", "%="), (3, 6, 2, 2, 1, 1, 1))
            target = ("local", name, None)
        if target is None:
            arrays = self.arrays[:]
            self.r.shuffle(arrays)
            for array in arrays:
                subs, _ = self.subscripts(array, env, everywhere, False)
                if subs is not None:
                    target = ("array", array.name, subs)
                    break
            if target is None:
                name = self.pick(readable) if readable else self.pick(LOCAL_NAMES[:3])
                target = ("local", name, None)
            else:
                op = self.pick(("=", "+=", "-=", "*=", "/=", "//=", "%=", "**="),
                               (10, 6, 2, 2, 1.2, 0.8, 0.8, 0.3))
        kind, name, subs = target
        if op != "=":
            self.feat(f"op:{op}", f"op:{op}:{kind}")
        depth = self.pick((1, 2, 3), (3, 4, 2))
        local_reads = 2
        if kind == "local":
            # Python ints grow without bound: never square a local's value, so that a local's
            # digits grow at most linearly in the trip count
            local_reads = 0 if op in ("*=", "/=", "//=", "%=") else 1
        ctx = _Ctx(place, readable, local_reads)
        if kind == "array":
            ctx.target = (name, subs)
        else:
            ctx.no_power = True
        if place.after_loop and readable and kind == "array" and self.chance(0.6):
            # store an accumulated local
            value = _E(self.pick(readable), "f")
            if self.chance(0.5):
                value = _E(f"({value.text} {self.pick(('+', '*', '-'))} "
                           f"{self.expr(depth - 1, everywhere, ctx).text})", "f")
            self.feat("local:read")
        elif op == "**=":
            value = _E(self.pick(("2", "(-1)", "0.5", "3")), "i")
            self.transcendental = True
            self.feat("expr:**")
        elif self_update is not None:
            ctx.local_reads = 0
            parts = [self.expr(depth - 1, everywhere, ctx).text
                     for _ in range(self_update.count("{}"))]
            value = _E(self_update.format(*parts), "f")
        else:
            value = self.expr(depth, everywhere, ctx)
        rhs = value.text
        if rhs.startswith("(") and _balanced(rhs[1:-1]) and self.chance(0.7):
            rhs = rhs[1:-1]
        if kind == "local":
            self.feat("local")
            if self.chance(0.05) and op == "=":
                place.text = f"{name}: float = {rhs}"
                self.feat("stmt:annotated")
            else:
                place.text = f"{name} {op} {rhs}"
            self.any_def.setdefault(name, []).append(place)
            if op == "=":
                self.defs.setdefault(name, []).append(place)
        else:
            array = next(a for a in self.arrays if a.name == name)
            self.array_written.add(name)
            place.text = f"{self.access_text(array, subs)} {op} {rhs}"

    # -- assembling --------------------------------------------------------------------------
    def render(self, items: list, indent: int, out: list[str]) -> None:
        pad = "    " * indent
        for item in items:
            if isinstance(item, _Place):
                out.append(pad + item.text)
            elif isinstance(item, _Pass):
                out.append(pad + "pass")
            elif isinstance(item, _Loop):
                out.append(f"{pad}for {item.var} in {item.header}:")
                self.render(item.body, indent + 1, out)
            else:
                for index, (cond, body) in enumerate(item.branches):
                    if cond is None:
                        out.append(f"{pad}else:")
                    else:
                        out.append(f"{pad}{'if' if index == 0 else 'elif'} {cond}:")
                    self.render(body, indent + 1, out)

    def make_array_value(self, array: _Array, specials: bool, big: bool) -> np.ndarray:
        shape = array.extents
        nr = self.nr
        if "float" in array.dtype:
            values = nr.uniform(-2.0, 2.0, size=shape)
            if self.chance(0.3):
                values = np.round(values, 1)
            if specials and values.size:
                count = max(1, values.size // 6)
                flat = values.reshape(-1)
                where = nr.integers(0, values.size, size=count)
                flat[where] = nr.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, 1e-40],
                                        size=count)
                self.feat("input:special")
            if self.chance(0.15):
                values[np.abs(values) < 0.3] = 0.0
            return np.ascontiguousarray(values.astype(array.dtype))
        values = nr.integers(-6, 7, size=shape)
        if big and values.size:
            count = max(1, values.size // 5)
            flat = values.reshape(-1)
            where = nr.integers(0, values.size, size=count)
            limits = [2**31 - 1, -2**31, 2**30 + 7] if array.dtype == "int32" else \
                [2**62, -2**63, 2**31 - 1, 2**40 + 3, 2**63 - 1]
            flat[where] = nr.choice(limits, size=count)
            self.feat("input:bigint")
        return np.ascontiguousarray(values.astype(array.dtype))

    def finish(self, body_lines: list[str], bindings: list[str], extra_args=()) -> FuzzNest:
        specials = self.chance(0.15)
        big = self.chance(0.1)
        args: list[tuple[str, object]] = []
        for array in self.arrays:
            args.append((array.name, self.make_array_value(array, specials, big)))
            self.feat(f"dtype:{array.dtype}")
        for param, source in self.param_source.items():
            self.feat(f"param:{source}")
            if source == "arg":
                value = self.params[param]
                if self.chance(0.05):
                    value = np.int64(value)
                    self.feat("param:np.int64")
                args.append((param, value))
        for scalar in self.scalars:
            args.append((scalar.name, scalar.value))
        args.extend(extra_args)
        order = list(range(len(args)))
        self.r.shuffle(order)
        args = [args[i] for i in order]
        name = f"nest_{self.seed}".replace("-", "m")
        lines = ["import math", "", "import numpy as np", "", "",
                 f"def {name}({', '.join(n for n, _ in args)}):"]
        lines += ["    " + b for b in bindings]
        lines += body_lines
        source = "\n".join(lines) + "\n"
        sizes = dict(self.params)
        return FuzzNest(self.seed, source, name, tuple(n for n, _ in args),
                        tuple(v for _, v in args), frozenset(self.features),
                        self.transcendental, sizes)

    def generate(self) -> FuzzNest:
        if self.chance(0.25):
            return self.generate_contraction()
        self.setup(contraction=False)
        self.guard_rate = 0.3 if self.chance(0.2) else 0.0
        self.max_statements = self.pick((1, 2, 3, 4, 5), (1, 3, 4, 3, 2))
        items = self.skeleton()
        locals_ok = self.chance(0.6)
        # the last statement writes an array unless one already does
        for index, place in enumerate(self.places):
            last = index == len(self.places) - 1
            self.fill(place, force_array=last and not self.array_written, locals_ok=locals_ok)
        bindings = self.bindings()
        out: list[str] = []
        self.render(items, 1, out)
        return self.finish(out, bindings)

    # -- contraction-shaped nests (so that polypipe.optimize maps some) -------------------
    def generate_contraction(self) -> FuzzNest:
        self.feat("contraction")
        self.setup(contraction=True)
        r = self.r
        ni, nj, nk = PARAM_NAMES
        if self.chance(0.8):
            self.params[nk] = r.randint(5, 12)   # enough reduction tiles for the pipeline
        dt = lambda: self.pick(DTYPES, DTYPE_WEIGHTS)  # noqa: E731
        cdt = dt()
        C = _Array("C", cdt, [(ni, 0), (nj, 0)])
        A = _Array("A", self.pick((cdt, dt())), [(ni, 0), (nk, 0)])
        B = _Array("B", self.pick((cdt, dt())), [(nk, 0), (nj, 0)])
        elementwise = self.chance(0.3)
        self.arrays = [C, A, B] if not elementwise else [C, A]
        if elementwise:
            A.dims = [(ni, 0), (nj, 0)]
            self.feat("contraction:elementwise")
        for array in self.arrays:
            array.extents = tuple(self.params[p] + pad for p, pad in array.dims)
        self.scalars = [self.make_scalar(n) for n in SCALAR_NAMES[:self.pick((0, 1, 2), (1, 2, 2))]]
        self.param_source = {ni: "shape", nj: "shape",
                             nk: "arg" if elementwise or self.chance(0.3) else "shape"}
        bindings = [f"{ni}, {nj} = C.shape"]
        if self.param_source[nk] == "shape":
            bindings.append(self.pick((f"_, {nk} = A.shape", f"{nk} = A.shape[1]",
                                       f"{nk} = len(B)")))
        if elementwise:
            self.param_source.pop(nk)
            self.params.pop(nk)
        top = _Env([], {}, 1)
        env_i = self.expand(top, "i", ni, "0", ni, 1)
        env_ij = self.expand(env_i, "j", nj, "0", nj, 1)
        place_ij = _Place(env_ij, ((1, 0), (2, 0), (3, 0)), 2)
        full = np.ones(env_ij.n, dtype=bool)
        lines = [f"    for i in range({ni}):", f"        for j in range({nj}):"]
        if elementwise:
            ctx = _Ctx(place_ij, [], 0, fixed_reads=[("A", "i, j"), ("C", "i, j")])
            value = self.expr(self.pick((1, 2, 3)), full, ctx)
            op = self.pick(("=", "+=", "*="))
            lines.append(f"            C[i, j] {op} {value.text}")
            return self.finish(lines, bindings)
        use_local = self.chance(0.35)
        env_k = self.expand(env_ij, "k", nk, "0", nk, 1)
        place_k = _Place(env_k, ((1, 0), (2, 0), (3, 1), (4, 0)), 3)
        ctx = _Ctx(place_k, [], 0, fixed_reads=[("A", "i, k"), ("B", "k, j")])
        fk = np.ones(env_k.n, dtype=bool)
        product = "A[i, k] * B[k, j]"
        if self.chance(0.6):
            extra = self.expr(self.pick((1, 2)), fk, ctx)
            product = self.pick((f"{extra.text} * {product}", f"{product} + {extra.text}",
                                 f"({extra.text} if A[i, k] > B[k, j] else {product})"))
        else:
            product = self.expr(self.pick((2, 3)), fk, ctx).text
        init_ctx = _Ctx(place_ij, [], 0, fixed_reads=[("C", "i, j")])
        if use_local:
            self.feat("contraction:local")
            lines.append(f"            acc = {self.pick(('0.0', '0', 'C[i, j]'))}")
            lines.append(f"            for k in range({nk}):")
            lines.append(f"                acc += {product}")
            epilogue = self.pick(("acc", "C[i, j] + acc"))
            if self.scalars and self.chance(0.5):
                epilogue = f"{self.scalars[0].name} * ({epilogue})"
            lines.append(f"            C[i, j] = {epilogue}")
        else:
            if self.chance(0.6):
                init = self.expr(1, full, init_ctx) if self.chance(0.5) else \
                    _E(self.pick(("0.0", "0")), "f")
                op = self.pick(("=", "*="))
                lines.append(f"            C[i, j] {op} {init.text}")
            lines.append(f"            for k in range({nk}):")
            lines.append(f"                C[i, j] {self.pick(('+=', '+=', '-='))} {product}")
        return self.finish(lines, bindings)


class _Pass:
    pass


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def generate(seed: int) -> FuzzNest:
    """The nest of ``seed`` (deterministic)."""
    return _Generator(seed).generate()


# =============================================================================================
# the oracle
# =============================================================================================

GPU_CONFIG = dict(block=(8, 8), threads=(2, 2), reduction=4, shared_stages=2, register_stages=2)
# libm: the arrays differ from the Python function's, but equal those of the Python function
# with NumPy's transcendental functions computed by the C library (NumPy's own SIMD versions of
# np.exp, np.power, ... differ from libm in the last bits, and a nest can amplify that).
CLASSES = ("match", "libm", "both_raise", "refusal", "mismatch", "crash")
_RANK = {"match": 0, "unmapped": 0, "libm": 0, "both_raise": 1, "refusal": 2, "mismatch": 3,
         "crash": 4}
PYTHON_TIME_LIMIT = 10.0


class GeneratorIndexError(Exception):
    """An executed subscript left its array: a bug of the generator, not of polypipe."""


class _PythonTimeout(Exception):
    pass


class _CheckedArray(np.ndarray):
    """An ndarray that raises on any subscript outside ``0 .. extent - 1`` (no wrap-around)."""

    def _check(self, index):
        if not isinstance(index, tuple):
            index = (index,)
        if len(index) > self.ndim:
            raise GeneratorIndexError(f"{len(index)} subscripts for shape {self.shape}")
        for dim, value in enumerate(index):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise GeneratorIndexError(f"subscript {value!r} is not an int")
            if not 0 <= value < self.shape[dim]:
                raise GeneratorIndexError(f"subscript {index!r} outside shape {self.shape}")

    def __getitem__(self, index):
        self._check(index)
        return np.ndarray.__getitem__(self.view(np.ndarray), index)

    def __setitem__(self, index, value):
        self._check(index)
        np.ndarray.__setitem__(self.view(np.ndarray), index, value)


@dataclass
class Outcome:
    """The verdict on one nest: per backend a class and a detail, and the nest-level facts."""

    seed: int
    source: str = ""
    features: list = field(default_factory=list)
    transcendental: bool = False
    status: str = "ok"     # ok | frontend_refusal | generator_error | python_timeout | crash
    message: str = ""      # frontend refusal / generator error / crash text
    python: str = ""       # the exception Python raised, "" when it returned
    backends: dict = field(default_factory=dict)   # backend -> {class, detail, agree}
    seconds: float = 0.0
    args: str = ""

    @property
    def worst(self) -> str:
        if self.status == "crash":
            return "crash"
        if self.status != "ok":
            return self.status
        classes = [b["class"] for b in self.backends.values()]
        return max(classes, key=lambda c: _RANK.get(c, 0)) if classes else "match"

    def to_json(self) -> dict:
        return dict(seed=self.seed, source=self.source, features=self.features,
                    transcendental=self.transcendental, status=self.status,
                    message=self.message, python=self.python, backends=self.backends,
                    seconds=self.seconds, args=self.args)

    @classmethod
    def from_json(cls, data: dict) -> "Outcome":
        return cls(**data)

    def report(self) -> str:
        lines = [f"seed {self.seed}: {self.worst}"]
        if self.message:
            lines.append("  " + self.message.strip().replace("\n", "\n  "))
        if self.python:
            lines.append(f"  python raised {self.python}")
        for backend, result in self.backends.items():
            if result["class"] in ("match", "unmapped"):
                continue
            extra = "" if result.get("agree") is None else f" (classes agree: {result['agree']})"
            lines.append(f"  [{backend}] {result['class']}{extra}: "
                         + str(result.get("detail", "")).strip().replace("\n", "\n    "))
        lines.append("  source:")
        lines += ["    " + ln for ln in self.source.rstrip().splitlines()]
        return "\n".join(lines)


def _exc_text(exc: BaseException, limit: int = 600) -> str:
    text = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
    return text if len(text) <= limit else text[:limit] + " ..."


def _tolerance(dtype) -> float:
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-12


def compare_arrays(names, want_args, got_args, tolerant: bool) -> list[str]:
    """Differences between the reference arrays and polypipe's (empty when equal)."""
    problems = []
    for name, want, got in zip(names, want_args, got_args):
        if not isinstance(want, np.ndarray):
            continue
        if want.dtype.kind in "iu":
            bad = want != got
        else:
            wnan, gnan = np.isnan(want), np.isnan(got)
            if tolerant:
                tol = _tolerance(want.dtype)
                w64, g64 = want.astype(np.float64), got.astype(np.float64)
                with np.errstate(all="ignore"):
                    close = (w64 == g64) | (np.abs(w64 - g64) <= tol * np.maximum(
                        1.0, np.maximum(np.abs(w64), np.abs(g64))))
                bad = (wnan != gnan) | (~wnan & ~gnan & ~close)
            else:
                bits = {4: np.uint32, 8: np.uint64}[want.dtype.itemsize]
                bad = (wnan != gnan) | (~wnan & ~gnan & (want.view(bits) != got.view(bits)))
        if np.any(bad):
            where = np.argwhere(bad)
            first = tuple(int(v) for v in where[0])
            problems.append(f"{name}{list(first)}: python {want[first]!r}, polypipe "
                            f"{got[first]!r} ({len(where)} of {want.size} elements differ)")
    return problems


def _run_python(func, args) -> BaseException | None:
    checked = tuple(a.view(_CheckedArray) if isinstance(a, np.ndarray) else a for a in args)

    def on_alarm(signum, frame):
        raise _PythonTimeout()

    use_alarm = hasattr(signal, "setitimer") and \
        threading.current_thread() is threading.main_thread()
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, PYTHON_TIME_LIMIT)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            func(*checked)
        return None
    except (GeneratorIndexError, _PythonTimeout):
        raise
    except Exception as exc:  # noqa: BLE001 - the reference may raise anything
        return exc
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _python_raises_error():
    import polypipe.errors

    # polypipe.errors.PythonRaisesError: the kernel stopped where Python raises
    return getattr(polypipe.errors, "PythonRaisesError", ())


def _classes_agree(python_exc: BaseException, polypipe_exc: BaseException) -> bool:
    if not isinstance(polypipe_exc, _python_raises_error()):
        return False
    expected = getattr(polypipe_exc, "python_type", Exception)
    return expected is not Exception and isinstance(python_exc, expected)


def _judge(backend: str, names, reference, python_exc, run, tolerant: bool,
           compare_at_raise: bool) -> dict:
    """Run one backend (``run(args)``) on fresh arguments and classify it."""
    import polypipe

    PythonRaisesError = _python_raises_error()
    args = run.args
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run(args)
    except polypipe.PolypipeError as exc:
        if python_exc is None and isinstance(exc, PythonRaisesError):
            return {"class": "mismatch",
                    "detail": f"polypipe raised {_exc_text(exc, 600)} but Python returned "
                              "normally"}
        if python_exc is None:
            return {"class": "refusal", "detail": _exc_text(exc, 1500)}
        agree = _classes_agree(python_exc, exc)
        detail = f"python {_exc_text(python_exc, 300)}; polypipe {_exc_text(exc, 600)}"
        if compare_at_raise and isinstance(exc, PythonRaisesError):
            problems = compare_arrays(names, reference, args, tolerant)
            if problems:
                return {"class": "mismatch", "agree": agree,
                        "detail": "both raised but the arrays differ at the raise: "
                                  + "; ".join(problems) + "\n" + detail}
        return {"class": "both_raise", "agree": agree, "detail": detail}
    except Exception as exc:  # noqa: BLE001 - anything else is a crash
        return {"class": "crash", "detail": _exc_text(exc, 800) + "\n"
                + "".join(traceback.format_exception(exc)[-6:])[-2500:]}
    if python_exc is not None:
        return {"class": "mismatch",
                "detail": f"python raised {_exc_text(python_exc, 400)}; polypipe returned "
                          "normally" + _diff_suffix(names, reference, args, tolerant)}
    problems = compare_arrays(names, reference, args, tolerant)
    if problems:
        return {"class": "mismatch", "detail": "; ".join(problems)}
    return {"class": "match", "detail": ""}


def _diff_suffix(names, reference, args, tolerant) -> str:
    problems = compare_arrays(names, reference, args, tolerant)
    return "" if not problems else " (arrays also differ: " + "; ".join(problems)[:400] + ")"


# NumPy's floating ufuncs that polypipe prints as C library calls: NumPy name -> C name.
_LIBM = {"sin": "sin", "cos": "cos", "tan": "tan", "arcsin": "asin", "arccos": "acos",
         "arctan": "atan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "exp": "exp",
         "expm1": "expm1", "log": "log", "log2": "log2", "log10": "log10", "log1p": "log1p",
         "power": "pow", "arctan2": "atan2", "hypot": "hypot"}


def _libm_numpy():
    """A stand-in for the numpy module whose transcendental ufuncs are the C library's, in the
    precision NumPy would compute in (float32 -> sinf, float64 -> sin)."""
    import ctypes
    import ctypes.util
    import types

    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    shim = types.ModuleType("numpy_libm")
    shim.__dict__.update(vars(np))

    def wrap(name, c_name):
        real = getattr(np, name)

        def call(*args):
            with np.errstate(all="ignore"):
                kind = np.asarray(real(*args)).dtype
            if kind.kind != "f":
                return real(*args)
            single = kind == np.float32
            ctype = ctypes.c_float if single else ctypes.c_double
            function = getattr(libm, c_name + ("f" if single else ""))
            function.restype, function.argtypes = ctype, [ctype] * len(args)
            return kind.type(function(*[float(a) for a in args]))
        return call

    for name, c_name in _LIBM.items():
        setattr(shim, name, wrap(name, c_name))
    return shim


def _libm_recheck(nest: FuzzNest, func, names, outcome, runners) -> None:
    """Reclassify a backend's mismatch as ``libm`` where the arrays equal those of the Python
    function run with the C library's transcendental functions (see CLASSES)."""
    import types

    if not any(outcome.backends.get(b, {}).get("class") == "mismatch" for b in runners):
        return
    globals_ = dict(func.__globals__)
    globals_.update({n: _libm_numpy() for n, v in func.__globals__.items() if v is np})
    libm_func = types.FunctionType(func.__code__, globals_, func.__name__)
    reference = nest.make_args()
    python_exc = _run_python(libm_func, reference)
    for backend, (runner, tolerant) in runners.items():
        verdict = outcome.backends.get(backend, {})
        if verdict.get("class") != "mismatch":
            continue
        again = _judge(backend, names, reference, python_exc, runner(), tolerant,
                       compare_at_raise=backend == "c")
        if again["class"] in ("match", "both_raise"):
            outcome.backends[backend] = {"class": "libm", "detail": verdict["detail"]}


class _Runner:
    def __init__(self, args, call):
        self.args = args
        self.call = call

    def __call__(self, args):
        self.call(*args)


def check_nest(nest: FuzzNest, backends=("c", "emulate"), directory=None) -> Outcome:
    """Judge ``nest``: Python against each backend (see the module docstring)."""
    import polypipe

    started = time.perf_counter()
    outcome = Outcome(nest.seed, nest.source, sorted(nest.features), nest.transcendental)
    outcome.args = nest.describe_args()
    directory = directory or tempfile.mkdtemp(prefix="fuzz_nests_")
    func = nest.load(directory)
    try:
        k = polypipe.kernel(func)
    except polypipe.PolypipeError as exc:
        outcome.status, outcome.message = "frontend_refusal", _exc_text(exc, 1500)
        return outcome
    except Exception as exc:  # noqa: BLE001
        outcome.status = "crash"
        outcome.message = "polypipe.kernel raised " + _exc_text(exc, 800) + "\n" + \
            "".join(traceback.format_exception(exc)[-6:])[-2500:]
        return outcome
    reference = nest.make_args()
    try:
        python_exc = _run_python(func, reference)
    except GeneratorIndexError as exc:
        outcome.status, outcome.message = "generator_error", str(exc)
        return outcome
    except _PythonTimeout:
        outcome.status, outcome.message = "python_timeout", "the Python function ran too long"
        return outcome
    outcome.python = "" if python_exc is None else _exc_text(python_exc, 400)
    names = nest.arg_names
    runners: dict = {}     # backend -> (fresh runner, tolerant), for the libm re-check
    for backend in backends:
        if backend == "c":
            runners["c"] = (lambda: _Runner(nest.make_args(), k), nest.transcendental)
            outcome.backends["c"] = _judge("c", names, reference, python_exc, runners["c"][0](),
                                           nest.transcendental, compare_at_raise=True)
        elif backend == "emulate":
            try:
                opt = polypipe.optimize(k, polypipe.GpuConfig(**GPU_CONFIG))
            except polypipe.ScheduleError as exc:
                outcome.backends["emulate"] = {"class": "unmapped",
                                               "detail": _exc_text(exc, 200)}
                continue
            except polypipe.PolypipeError as exc:
                outcome.backends["emulate"] = {"class": "refusal",
                                               "detail": "optimize: " + _exc_text(exc, 1500)}
                continue
            except Exception as exc:  # noqa: BLE001
                outcome.backends["emulate"] = {
                    "class": "crash", "detail": "optimize raised " + _exc_text(exc, 800) + "\n"
                    + "".join(traceback.format_exception(exc)[-6:])[-2500:]}
                continue
            emulate = lambda opt=opt: _Runner(nest.make_args(),  # noqa: E731
                                              lambda *a: opt.run(*a, backend="emulate"))
            runners["emulate"] = (emulate, True)
            outcome.backends["emulate"] = _judge("emulate", names, reference, python_exc,
                                                 emulate(), True, compare_at_raise=False)
        else:
            raise ValueError(f"unknown backend {backend!r} (known: c, emulate)")
    _libm_recheck(nest, func, names, outcome, runners)
    outcome.seconds = round(time.perf_counter() - started, 3)
    return outcome


# =============================================================================================
# worker subprocesses
# =============================================================================================


def _worker_main() -> None:
    """Read ``{"seed": s, "backends": [...]}`` lines on stdin, answer JSON lines."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)      # stray prints (and C stdout) must not corrupt the protocol
    directory = tempfile.mkdtemp(prefix="fuzz_nests_", dir=os.environ.get("POLYPIPE_FUZZ_SCRATCH"))
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        seed = request["seed"]
        try:
            nest = generate(seed)
        except Exception as exc:  # noqa: BLE001
            outcome = Outcome(seed, status="generator_error",
                              message="generate() raised " + _exc_text(exc) + "\n"
                              + traceback.format_exc()[-1500:])
        else:
            try:
                outcome = check_nest(nest, tuple(request["backends"]), directory)
            except Exception as exc:  # noqa: BLE001
                outcome = Outcome(seed, nest.source, sorted(nest.features), status="crash",
                                  message="the oracle raised " + _exc_text(exc) + "\n"
                                  + traceback.format_exc()[-2500:])
        protocol.write(json.dumps(outcome.to_json(), default=str) + "\n")
        protocol.flush()


class _Worker:
    def __init__(self, env: dict, log_dir: str, index: int):
        self.log_path = os.path.join(log_dir, f"worker{index}_{uuid.uuid4().hex[:6]}.log")
        self.log = open(self.log_path, "w+b")
        code = ("import sys; sys.path.insert(0, %r); from tests.fuzzgen import _worker_main; "
                "_worker_main()" % str(ROOT))
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=str(ROOT), env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log)
        self.buffer = b""
        self.seed = None
        self.started = 0.0

    def send(self, seed: int, backends) -> None:
        self.seed = seed
        self.started = time.monotonic()
        self.proc.stdin.write((json.dumps({"seed": seed, "backends": list(backends)})
                               + "\n").encode())
        self.proc.stdin.flush()

    def log_tail(self, limit: int = 1500) -> str:
        try:
            self.log.flush()
            self.log.seek(0, os.SEEK_END)
            size = self.log.tell()
            self.log.seek(max(0, size - limit))
            return self.log.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()


def _crash_outcome(seed: int, message: str) -> Outcome:
    try:
        nest = generate(seed)
        return Outcome(seed, nest.source, sorted(nest.features), nest.transcendental,
                       status="crash", message=message, args=nest.describe_args())
    except Exception:  # noqa: BLE001
        return Outcome(seed, status="crash", message=message)


def run_campaign(seeds, backends=("c", "emulate"), workers: int = 2, timeout: float = 60.0,
                 on_result=None, cache_dir: str | None = None) -> list[Outcome]:
    """Judge every seed in worker subprocesses; a dead or hung worker is a crash of its seed
    (the worker is replaced). ``on_result(outcome)`` is called as results arrive."""
    seeds = list(seeds)
    pending = list(reversed(seeds))
    results: dict[int, Outcome] = {}
    scratch = tempfile.mkdtemp(prefix="polypipe_fuzz_")
    env = dict(os.environ)
    env["POLYPIPE_CACHE_DIR"] = cache_dir or os.path.join(scratch, "cache")
    env["POLYPIPE_FUZZ_SCRATCH"] = scratch
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("PYTHONHASHSEED", "0")
    pool: list[_Worker] = []
    selector = selectors.DefaultSelector()

    def start(index: int) -> _Worker:
        worker = _Worker(env, scratch, index)
        selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)
        return worker

    def finish(worker: _Worker, outcome: Outcome) -> None:
        results[worker.seed] = outcome
        worker.seed = None
        if on_result is not None:
            on_result(outcome)

    def replace(worker: _Worker) -> _Worker:
        selector.unregister(worker.proc.stdout)
        worker.stop()
        fresh = start(pool.index(worker))
        pool[pool.index(worker)] = fresh
        return fresh

    try:
        for index in range(max(1, min(workers, len(seeds)))):
            pool.append(start(index))
        while len(results) < len(seeds):
            for worker in pool:
                if worker.seed is None and pending:
                    worker.send(pending.pop(), backends)
            busy = [w for w in pool if w.seed is not None]
            if not busy:
                break
            now = time.monotonic()
            wait = max(0.05, min(w.started + timeout - now for w in busy))
            events = selector.select(timeout=wait)
            for key, _ in events:
                worker = key.data
                chunk = os.read(worker.proc.stdout.fileno(), 1 << 20)
                if not chunk:   # the worker died
                    code = worker.proc.wait()
                    if code < 0:
                        try:
                            how = f"killed by {signal.Signals(-code).name}"
                        except ValueError:
                            how = f"killed by signal {-code}"
                    else:
                        how = f"exited with status {code}"
                    seed = worker.seed
                    tail = worker.log_tail()
                    if seed is not None:
                        finish(worker, _crash_outcome(
                            seed, f"the worker process {how} while running this nest\n"
                                  f"--- worker stderr (tail) ---\n{tail}"))
                    replace(worker)
                    continue
                worker.buffer += chunk
                while b"\n" in worker.buffer and worker.seed is not None:
                    line, worker.buffer = worker.buffer.split(b"\n", 1)
                    finish(worker, Outcome.from_json(json.loads(line)))
            now = time.monotonic()
            for worker in list(pool):
                if worker.seed is not None and now - worker.started > timeout:
                    seed = worker.seed
                    finish(worker, _crash_outcome(
                        seed, f"hung: no result after {timeout:.0f} s (worker killed)"))
                    replace(worker)
    finally:
        for worker in pool:
            try:
                selector.unregister(worker.proc.stdout)
            except (KeyError, ValueError):
                pass
            worker.stop()
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return [results[s] for s in seeds if s in results]


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["0"]:
        nest = generate(int(arg))
        print(f"# seed {arg}  features: {' '.join(sorted(nest.features))}")
        print(nest.source)
