"""Random affine loop nests for property-based tests of polypipe.

``loop_nests(**options)`` is a hypothesis strategy producing :class:`GeneratedNest` objects:
the source of a small Python module (``import math``, ``import numpy as np`` and one function)
written strictly in the polypipe input subset, plus what is needed to run it::

    from loopgen import loop_nests

    @settings(max_examples=200, deadline=None)
    @given(loop_nests())
    def test_roundtrip(tmp_path_factory, nest):
        func = nest.load(tmp_path_factory.mktemp("nests"))
        ref = nest.make_args(seed=0)
        out = nest.make_args(seed=0)
        func(*ref)                                  # plain Python
        polypipe_version_of(func)(*out)             # optimized
        for a, b in zip(ref, out): ...              # compare arrays

Guarantees, for *every* value >= 0 of the size parameters (not only the drawn ones):

* every executed subscript is in ``0 .. dim - 1``.  Each loop variable carries affine lower and
  upper bounds (in the parameters and the outer loop variables) derived from its ``range`` and
  from enclosing affine ``if`` conditions; a subscript is only emitted when a small
  Fourier-Motzkin style substitution proves ``0 <= sub <= extent - 1``.
* values stay bounded.  Written arrays and local scalars get a *level*; a statement writing a
  location of level L may read read-only arrays (values in [-1, 1]) and locations of lower
  level freely, but locations of level L only with total coefficient <= 1 (e.g.
  ``A[i] = 0.5 * A[i - 1] + 0.5 * A[i + 1] + B[i]``, ``s += B[i, j]``,
  ``A[i] += 0.5 * (A[i - 1] - A[i])``, ``s = max(s, ...)``, ``x[i] *= alpha``), so magnitudes
  grow at most polynomially in the trip counts and never overflow float32.
* loop variables are never assigned, never read after their loop and never shadowed (sibling
  loops reuse names); local scalars are only read where their definition dominates the read.

Subset used: shape bindings (``N, M = A.shape``, ``N = A.shape[0]``, ``n = len(x)``) or int
arguments as parameters; ``for v in range(...)`` with 1-3 arguments, constant non-zero steps
(also negative), bounds with ``+ - *const // min max`` and outer loop variables; affine
``if/elif/else`` (comparisons, chained comparisons, ``and``, ``or``, ``not``, ``% m == r``);
assignments and ``+= -= *=`` to array elements (``A[i, j]`` or ``A[i][j]``) and local scalars;
right-hand sides with ``+ - *``, float constants, affine subscripts, ``float(i)``, ``i * 0.5``,
float scalar arguments, ``min``, ``max``, ``abs``, ``math.sqrt(abs(...))`` and selects
``(a if X[i] > 0.0 else b)``.

Also exported: :class:`CheckedArray` / :func:`checked_args` (an ndarray subclass that raises on
any negative, out-of-range, non-int or sliced subscript), handy to run a nest as plain Python
with exact bound checking.  ``python tests/loopgen.py [count]`` prints sample programs.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import uuid
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
from hypothesis import strategies as st

__all__ = [
    "ArgSpec",
    "CheckedArray",
    "GeneratedNest",
    "checked_args",
    "loop_nests",
]

LOOP_VARS = ("i", "j", "k", "l")
PARAM_NAMES = ("N", "M", "P")  # lowercase variants (n, m, p) for ``len()`` bindings
ARRAY_NAMES_1D = ("x", "y", "z", "w")
ARRAY_NAMES_ND = ("A", "B", "C", "D")
FLOAT_NAMES = ("alpha", "beta")
LOCAL_NAMES = ("s", "t", "acc", "tmp", "s2", "t2", "acc2", "tmp2", "s3", "t3")

DEFAULT_OPTIONS = dict(
    max_depth=3,
    max_statements=5,
    allow_reverse=True,
    allow_conditions=True,
    allow_locals=True,
    allow_steps=True,
    max_param=12,
    max_params=3,
    max_arrays=4,
)


# =============================================================================================
# public data
# =============================================================================================


@dataclass(frozen=True)
class ArgSpec:
    """One argument of the generated function.

    kind: ``"array"`` (dims: ((param, pad), ...), shape = params[param] + pad per dim),
    ``"float"`` (a value in [-1, 1]) or ``"int"`` (the size parameter of the same name).
    """

    kind: str
    name: str
    dims: tuple = ()
    output: bool = False


@dataclass(frozen=True, repr=False)
class GeneratedNest:
    source: str
    func_name: str
    params: dict
    arg_specs: tuple = ()
    features: frozenset = field(default_factory=frozenset)

    # -- arguments ----------------------------------------------------------------------------
    def shapes(self) -> dict:
        """Array name -> shape for the current ``params``."""
        return {
            a.name: tuple(self.params[p] + pad for p, pad in a.dims)
            for a in self.arg_specs
            if a.kind == "array"
        }

    def make_args(self, seed: int, dtype=np.float64) -> tuple:
        """Fresh arguments in the function's argument order (deterministic in ``seed``).

        Arrays hold uniform values in [-1, 1); float scalars are Python floats in [-1, 1);
        int arguments are the parameter values.
        """
        rng = np.random.default_rng(seed)
        out = []
        for spec in self.arg_specs:
            if spec.kind == "array":
                shape = tuple(self.params[p] + pad for p, pad in spec.dims)
                out.append(np.ascontiguousarray(rng.uniform(-1.0, 1.0, size=shape).astype(dtype)))
            elif spec.kind == "float":
                out.append(float(rng.uniform(-1.0, 1.0)))
            else:
                out.append(int(self.params[spec.name]))
        return tuple(out)

    def with_params(self, **values) -> "GeneratedNest":
        """Same program, other parameter values (bounds are proved for all values >= 0)."""
        unknown = set(values) - set(self.params)
        if unknown:
            raise KeyError(f"unknown parameters {sorted(unknown)}; have {sorted(self.params)}")
        if any(int(v) < 0 for v in values.values()):
            raise ValueError("parameters must be >= 0")
        new = dict(self.params)
        new.update({k: int(v) for k, v in values.items()})
        return replace(self, params=new)

    # -- loading ------------------------------------------------------------------------------
    def load(self, directory) -> Callable:
        """Write the source to a uniquely named module in ``directory`` and import it.

        The module is registered in ``sys.modules`` so ``inspect.getsource`` works on the
        returned function.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        mod_name = f"loopgen_nest_{uuid.uuid4().hex}"
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

    def __repr__(self) -> str:
        return (
            f"GeneratedNest(func_name={self.func_name!r}, params={self.params!r}, source=\n"
            f"{self.source})"
        )


# =============================================================================================
# index-checking arrays
# =============================================================================================


class CheckedArray(np.ndarray):
    """ndarray that only accepts full-or-partial integer subscripts within ``0 .. dim - 1``."""

    def _check(self, idx):
        if not isinstance(idx, tuple):
            idx = (idx,)
        if len(idx) > self.ndim:
            raise IndexError(f"too many subscripts {idx!r} for shape {self.shape}")
        for d, ix in enumerate(idx):
            if isinstance(ix, bool) or not isinstance(ix, (int, np.integer)):
                raise TypeError(f"non-integer subscript {ix!r} (dim {d}) in {idx!r}")
            if ix < 0 or ix >= self.shape[d]:
                raise IndexError(f"subscript {ix} out of range for dim {d} of shape {self.shape}")

    def __getitem__(self, idx):
        self._check(idx)
        return super().__getitem__(idx)

    def __setitem__(self, idx, value):
        self._check(idx)
        super().__setitem__(idx, value)


def checked_args(args) -> tuple:
    """Wrap every ndarray of ``args`` as a :class:`CheckedArray` view (writes go through)."""
    return tuple(a.view(CheckedArray) if isinstance(a, np.ndarray) else a for a in args)


# =============================================================================================
# affine expressions and the bound prover
# =============================================================================================


class Aff:
    """Affine expression sum(coef * name) + const with rational coefficients."""

    __slots__ = ("terms", "const")

    def __init__(self, terms=None, const=0):
        # coefficients are ints or Fractions (never floats)
        self.terms = {k: v for k, v in terms.items() if v} if terms else {}
        self.const = const

    @classmethod
    def of(cls, x) -> "Aff":
        if isinstance(x, Aff):
            return x
        if isinstance(x, str):
            return cls({x: 1})
        assert isinstance(x, (int, Fraction))
        return cls({}, x)

    def __add__(self, other):
        other = Aff.of(other)
        t = dict(self.terms)
        for k, v in other.terms.items():
            t[k] = t.get(k, 0) + v
        return Aff(t, self.const + other.const)

    __radd__ = __add__

    def __neg__(self):
        return Aff({k: -v for k, v in self.terms.items()}, -self.const)

    def __sub__(self, other):
        return self + (-Aff.of(other))

    def __rsub__(self, other):
        return Aff.of(other) - self

    def __mul__(self, k):
        assert isinstance(k, (int, Fraction))
        return Aff({n: v * k for n, v in self.terms.items()}, self.const * k)

    __rmul__ = __mul__

    def coef(self, name):
        return self.terms.get(name, 0)

    def subst(self, name, repl: "Aff") -> "Aff":
        c = self.coef(name)
        if not c:
            return self
        t = dict(self.terms)
        del t[name]
        return Aff(t, self.const) + repl * c

    def key(self):
        return (tuple(sorted(self.terms.items())), self.const)

    def __repr__(self):
        return f"Aff({self.terms!r}, {self.const!r})"

    def render(self, rank) -> str:
        """Python source (integer coefficients only), e.g. ``N - 1 - i``, ``i + j + 1``."""
        for v in list(self.terms.values()) + [self.const]:
            assert v.denominator == 1, f"non-integer coefficient in {self!r}"
        names = sorted(self.terms, key=lambda n: (rank.get(n, 99), n))
        pos = [n for n in names if self.terms[n] > 0]
        neg = [n for n in names if self.terms[n] < 0]
        c = int(self.const)

        def term(n):
            a = abs(int(self.terms[n]))
            return n if a == 1 else f"{a} * {n}"

        if pos:
            s = " + ".join(term(n) for n in pos)
            if c > 0:
                s += f" + {c}"
            elif c < 0:
                s += f" - {-c}"
        else:
            s = str(c) if (c != 0 or not neg) else ""
        for n in neg:
            s = f"{s} - {term(n)}" if s else f"-{term(n)}"
        return s


class LoopVar(NamedTuple):
    name: str
    home: str  # the parameter whose index space the loop mostly walks


class Ctx:
    """Loop variables in scope (outer -> inner) with proved affine bounds."""

    __slots__ = ("loops", "lows", "highs", "param_lb", "cache")

    def __init__(self, loops, lows, highs, param_lb):
        self.loops = tuple(loops)
        self.lows = lows
        self.highs = highs
        self.param_lb = param_lb
        self.cache = {}

    @classmethod
    def initial(cls, params):
        return cls((), {}, {}, {p: 0 for p in params})

    @property
    def rank(self):
        r = {lv.name: d for d, lv in enumerate(self.loops)}
        for d, p in enumerate(sorted(self.param_lb)):
            r[p] = 50 + d
        return r

    def var(self, name) -> LoopVar:
        for lv in self.loops:
            if lv.name == name:
                return lv
        raise KeyError(name)

    def with_loop(self, lv: LoopVar, lows, highs) -> "Ctx":
        lo = dict(self.lows)
        hi = dict(self.highs)
        lo[lv.name] = tuple(lows)
        hi[lv.name] = tuple(highs)
        return Ctx(self.loops + (lv,), lo, hi, self.param_lb)

    def with_facts(self, facts) -> "Ctx":
        """Add facts ``f >= 0`` (from enclosing conditions) as bounds of their innermost var."""
        if not facts:
            return self
        lo = dict(self.lows)
        hi = dict(self.highs)
        plb = dict(self.param_lb)
        for f in facts:
            for lv in reversed(self.loops):
                a = f.coef(lv.name)
                if a:
                    bound = f.subst(lv.name, Aff()) * (Fraction(-1) / a)
                    if a > 0:
                        lo[lv.name] = lo[lv.name] + (bound,)
                    else:
                        hi[lv.name] = hi[lv.name] + (bound,)
                    break
            else:
                if len(f.terms) == 1:
                    ((p, a),) = f.terms.items()
                    if a > 0 and p in plb:
                        plb[p] = max(plb[p], math.ceil(Fraction(-f.const) / a))
        return Ctx(self.loops, lo, hi, plb)

    def nonneg(self, e: Aff) -> bool:
        """Sound (incomplete) proof that ``e >= 0`` on every executed iteration, all params."""
        key = ("nonneg", e.key())
        r = self.cache.get(key)
        if r is None:
            r = self.cache[key] = self._nonneg(e)
        return r

    def _nonneg(self, e: Aff) -> bool:
        for lv in reversed(self.loops):
            c = e.coef(lv.name)
            if c:
                bounds = self.lows[lv.name] if c > 0 else self.highs[lv.name]
                return any(self.nonneg(e.subst(lv.name, b)) for b in bounds)
        total = e.const
        for n, c in e.terms.items():
            if n not in self.param_lb or c < 0:
                return False
            total += c * self.param_lb[n]
        return total >= 0

    def in_range(self, sub: Aff, extent: Aff) -> bool:
        return self.nonneg(sub) and self.nonneg(extent - 1 - sub)


# =============================================================================================
# program tree
# =============================================================================================


@dataclass
class _Stmt:
    text: str


@dataclass
class _For:
    var: str
    rng: str
    body: list


@dataclass
class _If:
    branches: list  # [(cond_src, body)]
    orelse: list | None


def _render(nodes, indent, out):
    pad = "    " * indent
    for n in nodes:
        if isinstance(n, _Stmt):
            out.append(pad + n.text)
        elif isinstance(n, _For):
            out.append(f"{pad}for {n.var} in {n.rng}:")
            _render(n.body, indent + 1, out)
        else:
            for b, (cond, body) in enumerate(n.branches):
                out.append(f"{pad}{'if' if b == 0 else 'elif'} {cond}:")
                _render(body, indent + 1, out)
            if n.orelse is not None:
                out.append(f"{pad}else:")
                _render(n.orelse, indent + 1, out)


@dataclass
class _Array:
    name: str
    dims: tuple  # ((param, pad), ...)
    output: bool
    level: int  # -1 for read-only arrays


_NEG_OP = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}


def _rel(a: Aff, op: str, b: Aff):
    """Facts (list of Aff >= 0) equivalent to integer relation ``a op b``."""
    if op == "<":
        return [b - a - 1]
    if op == "<=":
        return [b - a]
    if op == ">":
        return [a - b - 1]
    if op == ">=":
        return [a - b]
    if op == "==":
        return [a - b, b - a]
    return []


def _facts(cond, positive: bool):
    kind = cond[0]
    if kind == "cmp":
        affs, ops = cond[1], cond[2]
        if positive:
            out = []
            for a, op, b in zip(affs, ops, affs[1:]):
                out += _rel(a, op, b)
            return out
        if len(ops) == 1:
            return _rel(affs[0], _NEG_OP[ops[0]], affs[1])
        return []
    if kind == "not":
        return _facts(cond[1], not positive)
    if kind == "and":
        return _facts(cond[1], True) + _facts(cond[2], True) if positive else []
    if kind == "or":
        return [] if positive else _facts(cond[1], False) + _facts(cond[2], False)
    return []  # mod


# =============================================================================================
# the generator
# =============================================================================================


def _is_float_literal(src: str) -> bool:
    try:
        float(src)
    except ValueError:
        return False
    return True


_SUB_KINDS = ("var", "offset", "rev", "scaled", "sum", "const")
_ACCESS_ORDER = ("var", "const", "offset", "rev", "scaled", "sum")  # cheapest proofs first
_READ_WEIGHTS = {"var": 6, "offset": 3, "rev": 1, "scaled": 1, "sum": 1, "const": 1}
_TARGET_WEIGHTS = {"var": 12, "offset": 1, "rev": 1, "scaled": 1, "sum": 1, "const": 1}


class _Builder:
    def __init__(self, draw, opts):
        self.draw = draw
        self.o = opts
        self.features = set()
        self.remaining = opts["max_statements"]
        self.loops_left = max(opts["max_depth"], 2) + 2
        self.written = []  # output arrays in order of their first write
        self.local_idx = 0

    # -- drawing helpers -----------------------------------------------------------------------
    def choose(self, options):
        """options: [(value, int weight)]; shrinks towards the first option."""
        expanded = [v for v, w in options for _ in range(w) if w > 0]
        return expanded[self.draw(st.integers(0, len(expanded) - 1))]

    def pick(self, seq):
        seq = list(seq)
        return seq[self.draw(st.integers(0, len(seq) - 1))]

    def chance(self, num, den) -> bool:
        """True with probability num/den; shrinks towards False."""
        return self.draw(st.integers(0, den - 1)) >= den - num

    # -- setup ---------------------------------------------------------------------------------
    def setup(self):
        o = self.o
        n_params = self.draw(st.integers(1, o["max_params"]))
        n_arrays = self.draw(st.integers(1, o["max_arrays"]))
        raw = []
        for _ in range(n_arrays):
            output = self.chance(1, 2)
            # written arrays get at most max_depth dims so that loops can reach all of them
            top = o["max_depth"] if output else 3
            ndim_opts = [(1, 3), (2, 4 if top >= 2 else 0), (3, 1 if top >= 3 else 0)]
            ndim = self.choose(ndim_opts)
            dims = [
                [self.draw(st.integers(0, n_params - 1)), self.choose([(0, 4), (1, 2), (2, 1)])]
                for _ in range(ndim)
            ]
            level = self.draw(st.integers(0, 2)) if output else -1
            raw.append([dims, output, level])
        if not any(r[1] for r in raw):
            raw[0][1] = True
            raw[0][2] = self.draw(st.integers(0, 2))

        # parameter bindings: shape of an array (pad 0 in that dim) or int argument
        binding = {}  # param index -> ("int",) | ("shape", array index, dim)
        anchors = [a for a, r in enumerate(raw) if len(r[0]) >= 2 and len({q for q, _ in r[0]}) == len(r[0])]
        if anchors and self.chance(1, 3):
            # ``N, M = A.shape``: all dims of one array bind distinct parameters
            a = self.pick(anchors)
            for d, dd in enumerate(raw[a][0]):
                dd[1] = 0
                binding[dd[0]] = ("shape", a, d)
        for p in range(n_params):
            if p in binding:
                continue
            sources = [(a, d) for a, r in enumerate(raw) for d, (q, _) in enumerate(r[0]) if q == p]
            if sources and self.choose([("shape", 2), ("int", 1)]) == "shape":
                # prefer an array that already binds another parameter: ``N, M = A.shape``
                used = {b[1] for b in binding.values() if b[0] == "shape"}
                pref = [s for s in sources if s[0] in used]
                a, d = self.pick(pref if pref and self.chance(2, 3) else sources)
                raw[a][0][d][1] = 0
                binding[p] = ("shape", a, d)
            else:
                binding[p] = ("int",)

        if not o["allow_locals"]:
            # statements need a target everywhere: one output whose constant subscripts are
            # always valid (all pads >= 1, no dimension bound to a shape parameter)
            src_arrays = {b[1] for b in binding.values() if b[0] == "shape"}
            cand = [a for a, r in enumerate(raw) if r[1] and a not in src_arrays]
            if cand:
                for dd in raw[cand[0]][0]:
                    dd[1] = max(dd[1], 1)
            else:
                raw.append([[[0, 1]], True, self.draw(st.integers(0, 2))])

        # names
        names = []
        n1 = nn = 0
        for dims, _, _ in raw:
            if len(dims) == 1:
                names.append(ARRAY_NAMES_1D[n1] if n1 < len(ARRAY_NAMES_1D) else f"v{n1}")
                n1 += 1
            else:
                names.append(ARRAY_NAMES_ND[nn] if nn < len(ARRAY_NAMES_ND) else f"E{nn}")
                nn += 1
        use_len = {}
        for p, b in binding.items():
            if b[0] == "shape" and b[2] == 0 and len(raw[b[1]][0]) == 1:
                use_len[p] = not self.chance(1, 3)
        pnames = [PARAM_NAMES[p].lower() if use_len.get(p) else PARAM_NAMES[p] for p in range(n_params)]
        self.params = pnames
        self.arrays = [
            _Array(names[a], tuple((pnames[q], pad) for q, pad in r[0]), r[1], r[2])
            for a, r in enumerate(raw)
        ]
        self.outputs = [a for a in self.arrays if a.output]
        self.ro_arrays = [a for a in self.arrays if not a.output]
        self.int_params = [pnames[p] for p, b in binding.items() if b[0] == "int"]
        self.floats = list(FLOAT_NAMES[: self.draw(st.integers(0, len(FLOAT_NAMES)))])

        # prologue
        prologue = []
        by_array = {}
        for p, b in binding.items():
            if b[0] == "shape":
                by_array.setdefault(b[1], {})[b[2]] = pnames[p]
        for a in sorted(by_array):
            arr = self.arrays[a]
            dmap = by_array[a]
            if len(arr.dims) >= 2 and len(dmap) == len(arr.dims) and self.chance(3, 4):
                prologue.append(f"{', '.join(dmap[d] for d in range(len(arr.dims)))} = {arr.name}.shape")
                self.features.add("shape_tuple")
            else:
                for d in sorted(dmap):
                    if d == 0 and len(arr.dims) == 1 and dmap[d].islower():
                        prologue.append(f"{dmap[d]} = len({arr.name})")
                        self.features.add("len_param")
                    else:
                        prologue.append(f"{dmap[d]} = {arr.name}.shape[{d}]")
                        self.features.add("shape_index")
            self.features.add("shape_param")
        if self.int_params:
            self.features.add("int_param")
        self.prologue = prologue
        self.param_values = {p: self.param_value() for p in pnames}

    def param_value(self) -> int:
        """0 or 1 (empty / single-trip loops) about one time in five, else 2..max_param."""
        top = self.o["max_param"]
        if top < 2:
            return self.draw(st.integers(0, top))
        kind = self.choose([("big", 8), (0, 1), (1, 1)])
        return self.draw(st.integers(2, top)) if kind == "big" else kind

    # -- subscripts ----------------------------------------------------------------------------
    def kind_cands(self, ctx: Ctx, param: str, pad: int, kind: str):
        """Subscripts of one kind proved in range for a dimension of extent ``param + pad``."""
        key = (param, pad, kind)
        if key in ctx.cache:
            return ctx.cache[key]
        raw = []
        loops = ctx.loops
        if kind == "var":
            raw = [Aff.of(lv.name) for lv in loops]
        elif kind == "offset":
            raw = [Aff.of(lv.name) + c for lv in reversed(loops) for c in (1, -1, 2, -2)]
        elif kind == "rev":
            for lv in reversed(loops):
                raw += [Aff.of(param) - 1 - Aff.of(lv.name), Aff.of(param) - Aff.of(lv.name)]
        elif kind == "scaled":
            for lv in reversed(loops):
                raw += [Aff.of(lv.name) * 2, Aff.of(lv.name) * 2 + 1]
        elif kind == "sum":
            for x in range(len(loops)):
                for y in range(x + 1, len(loops)):
                    u, v = Aff.of(loops[x].name), Aff.of(loops[y].name)
                    raw += [u + v, u - v, v - u, u + v + 1]
        else:
            for c in range(max(pad, 1)):
                raw += [Aff.of(c), Aff.of(param) + c]
            raw.append(Aff.of(param) - 1)
        ext = Aff.of(param) + pad
        out, seen = [], set()
        for a in raw:
            k = a.key()
            if k not in seen:
                seen.add(k)
                if ctx.in_range(a, ext):
                    out.append(a)
        ctx.cache[key] = out
        return out

    def dim_cands(self, ctx: Ctx, param: str, pad: int):
        return {k: self.kind_cands(ctx, param, pad, k) for k in _SUB_KINDS}

    def accessible(self, arr: _Array, ctx: Ctx) -> bool:
        key = ("acc", arr.name)
        if key not in ctx.cache:
            ctx.cache[key] = all(
                any(self.kind_cands(ctx, p, pad, k) for k in _ACCESS_ORDER)
                for p, pad in arr.dims
            )
        return ctx.cache[key]

    def draw_subs(self, arr: _Array, ctx: Ctx, weights):
        subs = []
        used = set()
        for p, pad in arr.dims:
            cands = self.dim_cands(ctx, p, pad)
            kind = self.choose([(k, weights[k]) for k in _SUB_KINDS if cands[k]])
            lst = cands[kind]
            if kind == "var":
                pref = [
                    a
                    for a in lst
                    if next(iter(a.terms)) not in used and ctx.var(next(iter(a.terms))).home == p
                ]
                if pref and not self.chance(1, 4):
                    lst = pref
            a = self.pick(lst)
            subs.append(a)
            used |= {n for n in a.terms if n not in ctx.param_lb}
            if kind == "offset":
                self.features.add("offset_subscript")
            elif kind != "var":
                self.features.add(f"{kind}_subscript")
        return subs

    def render_access(self, arr: _Array, subs, ctx: Ctx) -> str:
        rank = ctx.rank
        parts = [s.render(rank) for s in subs]
        if len(parts) >= 2 and self.chance(1, 4):
            self.features.add("chained_subscript")
            return arr.name + "".join(f"[{p}]" for p in parts)
        if len(parts) >= 2:
            self.features.add("tuple_subscript")
        return f"{arr.name}[{', '.join(parts)}]"

    # -- expressions ---------------------------------------------------------------------------
    def readable(self, ctx: Ctx, scope, level, budget) -> bool:
        return (
            any(lv < level or (lv == level and budget >= 1) for lv in scope.values())
            or any(self.accessible(a, ctx) for a in self.ro_arrays)
            or any(
                (a.level < level or (a.level == level and budget >= 1)) and self.accessible(a, ctx)
                for a in self.outputs
            )
        )

    def read(self, ctx: Ctx, scope, level, budget, target=None, any_level=False):
        """An array/local read allowed for a write of ``level``; returns (src, weight) or None."""
        ro = [a for a in self.ro_arrays if self.accessible(a, ctx)]
        wr = [
            a
            for a in self.outputs
            if (any_level or a.level < level or (a.level == level and budget >= 1))
            and self.accessible(a, ctx)
        ]
        lc = [n for n, lv in scope.items() if any_level or lv < level or (lv == level and budget >= 1)]
        opts = []
        if ro:
            opts.append(("ro", 3))
        if wr:
            opts.append(("wr", 6 if any(a in self.written for a in wr) else 3))
        if lc:
            opts.append(("local", 4))
        if not opts:
            return None
        kind = self.choose(opts)
        if kind == "local":
            name = self.pick(lc)
            self.features.add("local_read")
            return name, (1 if scope[name] == level and not any_level else 0)
        if kind == "ro":
            arr = self.pick(ro)
        else:
            pref = [a for a in wr if a in self.written]
            arr = self.pick(pref if pref and self.chance(3, 4) else wr)
        subs = None
        if target is not None and target[0] is arr and self.chance(1, 2):
            tsubs = target[1]
            d = self.draw(st.integers(0, len(tsubs) - 1))
            off = self.choose([(-1, 2), (1, 2), (-2, 1), (2, 1), (0, 1)])
            cand = list(tsubs)
            cand[d] = cand[d] + off
            p, pad = arr.dims[d]
            if ctx.in_range(cand[d], Aff.of(p) + pad):
                subs = cand
                self.features.add("self_read_offset" if off else "self_read")
        if subs is None:
            subs = self.draw_subs(arr, ctx, _READ_WEIGHTS)
        if arr.output and arr in self.written and not any_level:
            self.features.add("dep_read")
            if any(s.const != 0 and any(n not in ctx.param_lb for n in s.terms) for s in subs):
                self.features.add("dep_read_offset")
        w = 1 if (arr.output and arr.level == level and not any_level) else 0
        return self.render_access(arr, subs, ctx), w

    def factor(self, ctx: Ctx, scope):
        """A factor with |value| <= 1 that does not depend on written data."""
        opts = [("const", 3)]
        ro = [a for a in self.ro_arrays if self.accessible(a, ctx)]
        if ro:
            opts.append(("ro", 3))
        if self.floats:
            opts.append(("float", 2))
        kind = self.choose(opts)
        if kind == "const":
            return self.pick(["0.5", "-0.5", "0.75", "0.25"])
        if kind == "float":
            self.features.add("float_arg")
            return self.pick(self.floats)
        arr = self.pick(ro)
        src = self.render_access(arr, self.draw_subs(arr, ctx, _READ_WEIGHTS), ctx)
        return f"abs({src})" if self.chance(1, 4) else src

    def term(self, ctx: Ctx, scope, level, budget, target, depth):
        """(src, weight): weight <= budget is the coefficient mass on level-``level`` data."""
        readable = self.readable(ctx, scope, level, budget)
        opts = [("const", 1 if depth == 0 or not readable else 0)]
        if readable:
            opts += [("read", 6), ("product", 2)]
        if ctx.loops:
            opts.append(("loopvar", 1))
        if self.floats:
            opts.append(("float", 1))
        if depth == 0 and readable:
            opts += [("func", 2), ("select", 1)]
        kind = self.choose(opts)
        if kind in ("read", "product"):
            r = self.read(ctx, scope, level, budget, target)
            if r is None:
                kind = "const"
            elif kind == "read":
                return r
            else:
                self.features.add("product")
                return f"{r[0]} * {self.factor(ctx, scope)}", r[1]
        if kind == "const":
            return self.pick(["1.0", "0.5", "1.5", "0.25"]), 0
        if kind == "loopvar":
            v = self.pick([lv.name for lv in ctx.loops])
            self.features.add("loopvar_value")
            return self.pick([f"float({v})", f"{v} * 0.5", f"0.25 * {v}"]), 0
        if kind == "float":
            self.features.add("float_arg")
            return self.pick(self.floats), 0
        if kind == "func":
            fn = self.choose([("abs", 1), ("sqrt", 2), ("min", 1), ("max", 1)])
            a, wa = self.term(ctx, scope, level, budget, target, depth + 1)
            self.features.add(fn)
            if fn == "abs":
                return f"abs({a})", wa
            if fn == "sqrt":
                return f"math.sqrt(abs({a}))", wa
            b, wb = self.term(ctx, scope, level, budget, target, depth + 1)
            return f"{fn}({a}, {b})", max(wa, wb)
        # select
        cond = self.read(ctx, scope, level, budget, None, any_level=True)
        if cond is None:
            return self.pick(["1.0", "0.5"]), 0
        a, wa = self.term(ctx, scope, level, budget, target, depth + 1)
        b, wb = self.term(ctx, scope, level, budget, target, depth + 1)
        test = self.pick(["> 0.0", "< 0.0", ">= 0.5", "<= -0.25"])
        self.features.add("select")
        return f"({a} if {cond[0]} {test} else {b})", max(wa, wb)

    def rhs(self, ctx: Ctx, scope, level, budget, target=None, max_terms=3):
        n = self.draw(st.integers(1, max_terms))
        budget = Fraction(budget)
        used = Fraction(0)
        text = ""
        had_literal = False
        for idx in range(n):
            c = self.choose([("1", 6), ("0.5", 3), ("1.5", 1), ("0.25", 1)])
            neg = self.chance(1, 4)
            src, w = self.term(ctx, scope, level, (budget - used) / Fraction(c), target, 0)
            if _is_float_literal(src):
                if had_literal:
                    continue  # at most one literal term (no ``1.0 + 0.5 + 1.5``)
                had_literal = True
                c = "1"  # no ``0.5 * 1.5``
            used += Fraction(c) * w
            t = src if c == "1" else f"{c} * {src}"
            if not text:
                text = f"-{t}" if neg else t
            else:
                text += f" - {t}" if neg else f" + {t}"
        assert used <= budget
        return text

    # -- statements ----------------------------------------------------------------------------
    def new_local(self):
        name = LOCAL_NAMES[self.local_idx % len(LOCAL_NAMES)]
        if self.local_idx >= len(LOCAL_NAMES):
            name += f"_{self.local_idx}"
        self.local_idx += 1
        self.features.add("local")
        return name

    def stmt(self, ctx: Ctx, scope, depth):
        self.remaining -= 1
        if depth == 0:
            self.features.add("toplevel_stmt")
        outs = [a for a in self.outputs if self.accessible(a, ctx)]
        opts = []
        if outs:
            opts.append(("array", 8))
        if scope:
            opts.append(("local", 1 if outs else 2))
        if self.o["allow_locals"]:
            opts.append(("new", 1 if outs else 2))
        kind = self.choose(opts)
        if kind == "new":
            name = self.new_local()
            use = self.pick(outs) if outs and self.remaining >= 1 and self.chance(7, 8) else None
            level = self.draw(st.integers(0, use.level if use else 2))
            first = _Stmt(f"{name} = {self.rhs(ctx, scope, level, 1)}")
            scope[name] = level
            if use is None:
                return [first]
            # a temporary feeding an array write: ``t = ...; A[i] = t * B[i] + ...``
            self.remaining -= 1
            subs = self.draw_subs(use, ctx, _TARGET_WEIGHTS)
            tsrc = self.render_access(use, subs, ctx)
            if use not in self.written:
                self.written.append(use)
            self.features.add("temp_local")
            if level < use.level and self.chance(1, 2):
                self.features.add("augassign")
                return [first, _Stmt(f"{tsrc} += {name}")]
            rest = self.rhs(ctx, scope, use.level, 0, (use, subs), max_terms=2)
            rest = f"- {rest[1:]}" if rest.startswith("-") else f"+ {rest}"
            head = f"{name} * {self.factor(ctx, scope)}" if self.chance(1, 2) else name
            return [first, _Stmt(f"{tsrc} = {head} {rest}")]
        if kind == "local":
            name = self.pick(sorted(scope))
            level = scope[name]
            tsrc, target = name, None
            self.features.add("local_update")
        else:
            arr = self.pick(outs)
            subs = self.draw_subs(arr, ctx, _TARGET_WEIGHTS)
            tsrc = self.render_access(arr, subs, ctx)
            level = arr.level
            target = (arr, subs)
            if arr not in self.written:
                self.written.append(arr)
        op = self.choose([("=", 5), ("+=", 3), ("-=", 1), ("*=", 1), ("convex", 1), ("minmax", 1)])
        if op == "=":
            return [_Stmt(f"{tsrc} = {self.rhs(ctx, scope, level, 1, target)}")]
        self.features.add("augassign")
        if op in ("+=", "-="):
            return [_Stmt(f"{tsrc} {op} {self.rhs(ctx, scope, level, 0, target)}")]
        if op == "*=":
            self.features.add("mul_assign")
            return [_Stmt(f"{tsrc} *= {self.factor(ctx, scope)}")]
        if op == "convex":
            c = self.pick(["0.5", "0.25"])
            y, _ = self.term(ctx, scope, level, 1, target, 0)
            if y == tsrc:
                self.features.add("mul_assign")
                return [_Stmt(f"{tsrc} *= {1 - float(c)}")]
            if self.chance(1, 2):
                return [_Stmt(f"{tsrc} += {c} * ({y} - {tsrc})")]
            return [_Stmt(f"{tsrc} -= {c} * ({tsrc} - {y})")]
        fn = self.pick(["max", "min"])
        y, _ = self.term(ctx, scope, level, 1, target, 0)
        self.features.add(fn)
        return [_Stmt(f"{tsrc} = {fn}({tsrc}, {y})")]

    # -- loops ---------------------------------------------------------------------------------
    def choose_param(self, ctx: Ctx):
        # prefer parameters of output dimensions no enclosing loop walks yet, so that the
        # innermost body can subscript the outputs with loop variables
        covered = {lv.home for lv in ctx.loops}
        uncovered = [p for a in self.outputs for p, _ in a.dims if p not in covered]
        others = [p for a in self.arrays for p, _ in a.dims]
        opts = [(p, 1 + 6 * uncovered.count(p) + others.count(p)) for p in self.params]
        return self.choose(opts)

    def max_pad(self, param) -> int:
        return max([pad for a in self.outputs for p, pad in a.dims if p == param], default=0)

    def step(self):
        if not self.o["allow_steps"]:
            return 1
        return self.choose([(1, 6), (2, 2), (3, 1)])

    def header(self, ctx: Ctx):
        """Return (range source, lows, highs, home param)."""
        o = self.o
        rank = ctx.rank
        kinds = [("rect", 5)]
        if o["allow_reverse"]:
            kinds.append(("rev", 2))
        if ctx.loops:
            kinds.append(("tri", 4))
        kinds += [("minmax", 2), ("div", 1)]
        kind = self.choose(kinds)
        P = self.choose_param(ctx)
        p = Aff.of(P)
        R = lambda a: Aff.of(a).render(rank)  # noqa: E731
        if ctx.loops:
            # outer variable for triangular shapes: mostly the innermost one
            u = ctx.loops[-1] if self.chance(3, 4) else self.pick(ctx.loops)
            ua = Aff.of(u.name)
        feats = self.features

        if kind == "rect":
            mp = self.max_pad(P)
            a = self.choose([(0, 4), (1, 2), (2, 1)])
            b = self.choose([(0, 4), (-1, 2), (1, 1 if mp >= 1 else 0), (-2, 1), (2, 1 if mp >= 2 else 0)])
            s = self.step()
            stop = p + b
            if s != 1:
                feats.add(f"step{s}")
                src = f"range({a}, {R(stop)}, {s})"
            elif a == 0 and not self.chance(1, 4):
                src = f"range({R(stop)})"
            else:
                src = f"range({a}, {R(stop)})"
            return src, [Aff.of(a)], [stop - 1], P

        if kind == "rev":
            b = self.choose([(0, 4), (-1, 2), (1, 1 if self.max_pad(P) >= 1 else 0)])
            a = self.choose([(0, 4), (1, 2), (2, 1)])
            s = self.step()
            start = p + b - 1
            feats.add("reverse")
            if s != 1:
                feats.add(f"step{s}")
            return f"range({R(start)}, {a - 1}, {-s})", [Aff.of(a)], [start], P

        if kind == "tri":
            P = u.home if self.chance(3, 4) else P
            p = Aff.of(P)
            feats.add("triangular")
            forms = [("lt", 3), ("le", 1), ("gt", 3), ("ge", 1), ("anti", 1)]
            if o["allow_reverse"]:
                forms += [("rev_lt", 1), ("rev_gt", 1)]
            f = self.choose(forms)
            if f == "lt":
                return f"range({u.name})", [Aff.of(0)], [ua - 1], P
            if f == "le":
                return f"range({u.name} + 1)", [Aff.of(0)], [ua], P
            if f in ("gt", "ge"):
                lo = ua + 1 if f == "gt" else ua
                s = self.step()
                if s != 1:
                    feats.add(f"step{s}")
                    return f"range({R(lo)}, {P}, {s})", [lo], [p - 1], P
                return f"range({R(lo)}, {P})", [lo], [p - 1], P
            if f == "anti":
                return f"range({R(p - ua)})", [Aff.of(0)], [p - 1 - ua], P
            feats.add("reverse")
            if f == "rev_lt":
                return f"range({R(ua - 1)}, -1, -1)", [Aff.of(0)], [ua - 1], P
            s = self.step()
            if s != 1:
                feats.add(f"step{s}")
            return f"range({R(p - 1)}, {u.name}, {-s})", [ua + 1], [p - 1], P

        if kind == "minmax":
            others = [q for q in self.params if q != P]
            forms = [("tail", 1)]
            if others:
                forms.append(("min2", 3))
                if o["allow_reverse"]:
                    forms.append(("rev_min2", 1))
            if ctx.loops:
                forms += [("band", 3), ("maxlo", 1), ("minhi", 1)]
            f = self.choose(forms)
            if f == "tail":
                feats.add("max_bound")
                return f"range(max({R(p - 3)}, 0), {P})", [Aff.of(0), p - 3], [p - 1], P
            if f in ("min2", "rev_min2"):
                Q = self.pick(others)
                q = Aff.of(Q)
                feats.add("min_bound")
                if f == "min2":
                    return f"range(min({P}, {Q}))", [Aff.of(0)], [p - 1, q - 1], P
                feats.add("reverse")
                return f"range(min({P}, {Q}) - 1, -1, -1)", [Aff.of(0)], [p - 1, q - 1], P
            P = u.home if self.chance(3, 4) else P
            p = Aff.of(P)
            feats.add("triangular")
            if f == "band":
                a = self.pick([1, 2])
                b = self.pick([2, 3])
                feats.update({"min_bound", "max_bound"})
                return (
                    f"range(max(0, {R(ua - a)}), min({P}, {R(ua + b)}))",
                    [Aff.of(0), ua - a],
                    [p - 1, ua + b - 1],
                    P,
                )
            if f == "maxlo":
                feats.add("max_bound")
                return f"range(max(1, {u.name}), {P})", [Aff.of(1), ua], [p - 1], P
            feats.add("min_bound")
            return f"range(min({R(ua + 2)}, {P}))", [Aff.of(0)], [ua + 1, p - 1], P

        # div
        feats.add("floordiv_bound")
        forms = [("half", 2), ("halfup", 1), ("upper", 2), ("third", 1)]
        if ctx.loops:
            forms.append(("u_half", 1))
        if o["allow_reverse"]:
            forms.append(("rev_half", 1))
        f = self.choose(forms)
        half = Fraction(1, 2)
        if f == "half":
            return f"range({P} // 2)", [Aff.of(0)], [p * half - 1], P
        if f == "halfup":
            return f"range(({P} + 1) // 2)", [Aff.of(0)], [p * half - half], P
        if f == "upper":
            return f"range({P} // 2, {P})", [Aff.of(0), p * half - half], [p - 1], P
        if f == "third":
            third = Fraction(1, 3)
            return (
                f"range({P} // 3, 2 * {P} // 3)",
                [Aff.of(0), p * third - 2 * third],
                [p * (2 * third) - 1],
                P,
            )
        if f == "u_half":
            feats.add("triangular")
            return f"range({u.name} // 2 + 1)", [Aff.of(0)], [ua * half], u.home
        feats.add("reverse")
        return f"range({P} // 2 - 1, -1, -1)", [Aff.of(0)], [p * half - 1], P

    def loop(self, ctx: Ctx, scope, depth, inject=None):
        """A loop; ``inject(ctx, scope, depth)`` -> nodes placed somewhere in its body."""
        self.loops_left -= 1
        self.features.add("loop")
        if depth >= 1:
            self.features.add("nested_loop")
        name = LOOP_VARS[len(ctx.loops)]
        feats_before = set(self.features)
        for attempt in range(3):
            src, lows, highs, home = self.header(ctx)
            ictx = ctx.with_loop(LoopVar(name, home), lows, highs)
            if (
                attempt == 2
                or depth + 1 < self.o["max_depth"]
                or any(self.accessible(a, ictx) for a in self.outputs)
            ):
                break
            # innermost level and no output reachable: try another header
            self.features = set(feats_before)
        bscope = dict(scope)
        if inject is None:
            body = self.block(ictx, bscope, depth + 1)
        else:
            extra = inject(ictx, bscope, depth + 1)
            body = self.block(ictx, bscope, depth + 1, min_items=0)
            pos = self.draw(st.integers(0, len(body)))
            body[pos:pos] = extra
        return _For(name, src, body)

    def accumulation(self, ctx: Ctx, scope, depth):
        """``s = 0.0; for ...: s += ...; T[...] = s`` (3 statements)."""
        self.features.update({"local", "accumulation"})
        outs = [a for a in self.outputs if self.accessible(a, ctx)]
        arr = self.pick(outs)
        tsubs = self.draw_subs(arr, ctx, _TARGET_WEIGHTS)
        name = self.new_local()
        slevel = self.draw(st.integers(0, arr.level))
        self.remaining -= 3
        init = self.choose([("0.0", 4), ("init_rhs", 1)])
        if init == "init_rhs":
            init = self.rhs(ctx, scope, slevel, 1, None, max_terms=1)
        init_stmt = _Stmt(f"{name} = {init}")
        inner_scope_levels = dict(scope)
        inner_scope_levels[name] = slevel

        def update(ictx, iscope, idepth):
            iscope[name] = slevel
            form = self.choose([("+=", 6), ("-=", 1), ("max", 1)])
            if form in ("+=", "-="):
                return [_Stmt(f"{name} {form} {self.rhs(ictx, iscope, slevel, 0)}")]
            fn = self.pick(["max", "min"])
            self.features.add(fn)
            y, _ = self.term(ictx, iscope, slevel, 1, None, 0)
            return [_Stmt(f"{name} = {fn}({name}, {y})")]

        nest = 1
        if depth + 2 <= self.o["max_depth"] and self.loops_left >= 2 and self.chance(1, 3):
            nest = 2
        if nest == 2:
            inj = lambda c, s, d: [self.loop(c, s, d, inject=update)]  # noqa: E731
        else:
            inj = update
        loop = self.loop(ctx, inner_scope_levels, depth, inject=inj)

        tsrc = self.render_access(arr, tsubs, ctx)
        if arr not in self.written:
            self.written.append(arr)
        forms = [("=", 4)]
        if slevel < arr.level:
            forms.append(("+=", 3))
        if self.floats:
            forms.append(("scaled", 1))
        forms.append(("mix", 1))
        f = self.choose(forms)
        if f == "=":
            store = f"{tsrc} = {name}"
        elif f == "+=":
            store = f"{tsrc} += {name}"
            self.features.add("augassign")
        elif f == "scaled":
            store = f"{tsrc} = {self.pick(self.floats)} * {name}"
        else:
            rest = self.rhs(ctx, scope, arr.level, Fraction(1, 2), (arr, tsubs), max_terms=1)
            rest = f"- {rest[1:]}" if rest.startswith("-") else f"+ {rest}"
            store = f"{tsrc} = 0.5 * {name} {rest}"
        scope[name] = slevel  # readable by the following statements of this block
        return [init_stmt, loop, _Stmt(store)]

    # -- conditions ----------------------------------------------------------------------------
    def simple_cond(self, ctx: Ctx):
        rank = ctx.rank
        R = lambda a: a.render(rank)  # noqa: E731
        if not ctx.loops:
            P = self.pick(self.params)
            p = Aff.of(P)
            others = [q for q in self.params if q != P]
            forms = [("gt", 3), ("mod", 1), ("eq", 1)]
            if others:
                forms.append(("cmp2", 2))
            f = self.choose(forms)
            if f == "gt":
                c = self.draw(st.integers(0, 3))
                op = self.pick([">", ">="])
                return f"{P} {op} {c}", ("cmp", [p, Aff.of(c)], [op])
            if f == "eq":
                c = self.draw(st.integers(0, 2))
                op = self.pick(["==", "!="])
                return f"{P} {op} {c}", ("cmp", [p, Aff.of(c)], [op])
            if f == "cmp2":
                Q = self.pick(others)
                op = self.pick(["<", "<=", ">", ">="])
                return f"{P} {op} {Q}", ("cmp", [p, Aff.of(Q)], [op])
            return f"{P} % 2 == 0", ("mod", p, 2, "==", 0)
        v = ctx.loops[-1] if self.chance(2, 3) else self.pick(ctx.loops)
        va = Aff.of(v.name)
        p = Aff.of(v.home)
        others = [lv for lv in ctx.loops if lv.name != v.name]
        forms = [("lo", 3), ("hi", 3), ("eq", 1), ("chain", 2), ("mod", 2), ("twice", 1)]
        if others:
            forms += [("vv", 3), ("sum", 1), ("modsum", 1)]
        f = self.choose(forms)
        if f == "lo":
            c = self.draw(st.integers(0, 2))
            op = self.pick([">", ">="])
            return f"{v.name} {op} {c}", ("cmp", [va, Aff.of(c)], [op])
        if f == "hi":
            rhs = p - self.draw(st.integers(1, 3))
            op = self.pick(["<", "<="])
            return f"{v.name} {op} {R(rhs)}", ("cmp", [va, rhs], [op])
        if f == "eq":
            rhs = self.pick([Aff.of(0), Aff.of(1), p - 1])
            op = self.pick(["==", "!="])
            return f"{v.name} {op} {R(rhs)}", ("cmp", [va, rhs], [op])
        if f == "chain":
            lo = Aff.of(self.draw(st.integers(0, 1)))
            hi = p - self.draw(st.integers(1, 2))
            op1 = self.pick(["<", "<="])
            return f"{R(lo)} {op1} {v.name} < {R(hi)}", ("cmp", [lo, va, hi], [op1, "<"])
        if f == "mod":
            m = self.pick([2, 3])
            r = self.draw(st.integers(0, m - 1))
            op = self.pick(["==", "!="])
            return f"{v.name} % {m} {op} {r}", ("mod", va, m, op, r)
        if f == "twice":
            return f"2 * {v.name} < {v.home}", ("cmp", [va * 2, p], ["<"])
        u = self.pick(others)
        ua = Aff.of(u.name)
        if f == "vv":
            c = self.draw(st.integers(-1, 1))
            op = self.pick(["<", "<=", ">", ">=", "!="])
            return f"{v.name} {op} {R(ua + c)}", ("cmp", [va, ua + c], [op])
        if f == "sum":
            return f"{R(va + ua)} < {v.home}", ("cmp", [va + ua, p], ["<"])
        r = self.draw(st.integers(0, 1))
        return f"({R(va + ua)}) % 2 == {r}", ("mod", va + ua, 2, "==", r)

    def cond(self, ctx: Ctx):
        f = self.choose([("simple", 6), ("and", 2), ("or", 2), ("not", 1)])
        a_src, a = self.simple_cond(ctx)
        if f == "simple":
            return a_src, a
        if f == "not":
            self.features.add("cond_not")
            return f"not ({a_src})", ("not", a)
        b_src, b = self.simple_cond(ctx)
        self.features.add(f"cond_{f}")
        return f"{a_src} {f} {b_src}", (f, a, b)

    def if_stmt(self, ctx: Ctx, scope, depth):
        self.features.add("if")
        n_branches = 1
        if self.remaining >= 2 and self.chance(1, 3):
            n_branches = 2
        has_else = self.remaining >= n_branches + 1 and self.chance(1, 2)
        total = n_branches + (1 if has_else else 0)
        conds = [self.cond(ctx) for _ in range(n_branches)]
        branches = []
        negs = []
        for b, (src, c) in enumerate(conds):
            facts = _facts(c, True) + negs
            negs = negs + _facts(c, False)
            reserve = total - b - 1
            self.remaining -= reserve
            body = self.block(ctx.with_facts(facts), dict(scope), depth)
            self.remaining += reserve
            branches.append((src, body))
        if n_branches > 1:
            self.features.add("elif")
        orelse = None
        if has_else:
            self.features.add("else")
            orelse = self.block(ctx.with_facts(negs), dict(scope), depth)
        return _If(branches, orelse)

    # -- blocks --------------------------------------------------------------------------------
    def block(self, ctx: Ctx, scope, depth, min_items=1, force_loop=False):
        items = []
        n_items = self.draw(st.integers(max(min_items, 1) if min_items else 0, 3))
        loop_pos = self.draw(st.integers(0, n_items - 1)) if force_loop and n_items else -1
        for idx in range(n_items):
            # keep one statement for the forced loop when it comes later in the block
            reserve = 1 if idx < loop_pos else 0
            if self.remaining <= 0:
                break
            if self.remaining - reserve <= 0:
                continue
            self.remaining -= reserve
            can_loop = depth < self.o["max_depth"] and self.loops_left > 0
            has_target = any(self.accessible(a, ctx) for a in self.outputs)
            # no array reachable here: go deeper rather than write dead locals
            kinds = [("stmt", 4 if has_target or not can_loop else 1)]
            if can_loop:
                kinds.append(("loop", (4 if depth == 0 else 3) * (1 if has_target else 3)))
                if self.o["allow_locals"] and self.remaining >= 3 and has_target:
                    kinds.append(("accum", 2))
            if self.o["allow_conditions"]:
                kinds.append(("if", 2 if ctx.loops else 1))
            if idx == loop_pos and can_loop:
                kinds = [k for k in kinds if k[0] in ("loop", "accum")]
            kind = self.choose(kinds)
            if kind == "stmt":
                items += self.stmt(ctx, scope, depth)
            elif kind == "loop":
                items.append(self.loop(ctx, scope, depth))
            elif kind == "accum":
                items += self.accumulation(ctx, scope, depth)
            else:
                items.append(self.if_stmt(ctx, scope, depth))
            self.remaining += reserve
        if sum(isinstance(n, _For) for n in items) >= 2:
            self.features.add("sibling_loops")
        if depth >= 1 and sum(isinstance(n, _Stmt) for n in items) >= 2:
            self.features.add("multi_stmt_body")
        return items

    # -- top level -----------------------------------------------------------------------------
    def build(self) -> GeneratedNest:
        self.setup()
        ctx = Ctx.initial(self.params)
        body = self.block(ctx, {}, 0, force_loop=True)
        args = [a.name for a in self.arrays] + self.floats + self.int_params
        lines = ["import math", "import numpy as np", "", "", f"def kern({', '.join(args)}):"]
        lines += ["    " + ln for ln in self.prologue]
        _render(body, 1, lines)
        source = "\n".join(lines) + "\n"
        specs = [ArgSpec("array", a.name, a.dims, a.output) for a in self.arrays]
        specs += [ArgSpec("float", f) for f in self.floats]
        specs += [ArgSpec("int", p) for p in self.int_params]
        return GeneratedNest(
            source=source,
            func_name="kern",
            params=dict(self.param_values),
            arg_specs=tuple(specs),
            features=frozenset(self.features),
        )


@st.composite
def _nests(draw, opts):
    return _Builder(draw, opts).build()


def loop_nests(**options) -> st.SearchStrategy[GeneratedNest]:
    """Strategy of random affine loop nests.

    Options (defaults): max_depth=3 (1..4), max_statements=5 (assignments, counting the
    ``s = 0.0`` / ``A[i] = s`` of an accumulation), allow_reverse=True,
    allow_conditions=True, allow_locals=True, allow_steps=True, max_param=12 (parameter values
    are drawn from 0..max_param), max_params=3 (1..3), max_arrays=4 (1..4).
    """
    unknown = set(options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise TypeError(f"unknown loop_nests options: {sorted(unknown)}")
    opts = dict(DEFAULT_OPTIONS)
    opts.update(options)
    if not 1 <= opts["max_depth"] <= len(LOOP_VARS):
        raise ValueError(f"max_depth must be in 1..{len(LOOP_VARS)}")
    if opts["max_statements"] < 1:
        raise ValueError("max_statements must be >= 1")
    if not 1 <= opts["max_params"] <= len(PARAM_NAMES):
        raise ValueError(f"max_params must be in 1..{len(PARAM_NAMES)}")
    if not 1 <= opts["max_arrays"] <= len(ARRAY_NAMES_1D):
        raise ValueError(f"max_arrays must be in 1..{len(ARRAY_NAMES_1D)}")
    if opts["max_param"] < 0:
        raise ValueError("max_param must be >= 0")
    return _nests(opts)


if __name__ == "__main__":  # pragma: no cover - manual inspection
    import warnings

    from hypothesis.errors import NonInteractiveExampleWarning

    warnings.simplefilter("ignore", NonInteractiveExampleWarning)
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        nest = loop_nests().example()
        print(f"# params={nest.params}")
        print(nest.source)
