"""The front end's first pass: the function's source, and what every name in it is.

:func:`read_source` parses the function (``inspect`` + ``ast``); :func:`safe_names` renames
the names the function binds whose spelling isl cannot read (non-ASCII letters, isl keywords
such as ``mod`` or ``floor``) or that polypipe reserves (``S0``, ``pp_...``); then
:class:`_NameClassifier` decides, from the whole body, what each name is: array, size
parameter, value scalar, local scalar or loop variable.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import math
import re
import textwrap
from dataclasses import dataclass, field
from typing import Callable

import numpy

from .errors import FrontendError, SourceLocation


@dataclass
class _Source:
    """The function's source text and how to map AST positions back to the file."""

    filename: str
    lines: list[str]
    first_line: int
    indent: int

    def location(self, node: ast.AST) -> SourceLocation:
        line = getattr(node, "lineno", 1)
        column = getattr(node, "col_offset", 0) + self.indent
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return SourceLocation(self.filename, line + self.first_line - 1, column, text)

    def segment(self, node: ast.AST) -> str:
        line = getattr(node, "lineno", 0)
        return self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""


def read_source(func: Callable) -> tuple[ast.FunctionDef, _Source]:
    """Parse ``func``'s source; the AST's positions map back through the returned ``_Source``."""
    try:
        lines, first_line = inspect.getsourcelines(func)
        filename = inspect.getsourcefile(func) or "<unknown>"
    except (OSError, TypeError) as exc:
        raise FrontendError(
            f"cannot read the source of {getattr(func, '__name__', func)!r} ({exc}); "
            "polypipe kernels must be defined in a file, not typed at an interactive prompt "
            "or built with exec()") from None
    raw = "".join(lines)
    dedented = textwrap.dedent(raw)
    indent = _first_indent(raw) - _first_indent(dedented)
    tree = ast.parse(dedented)
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if not funcs:
        raise FrontendError(f"{func!r} is not a plain function defined with `def`")
    # AST columns count from the dedented text; `indent` maps them back to the file's lines.
    return funcs[0], _Source(filename, raw.splitlines(), first_line or 1, indent)


def _first_indent(text: str) -> int:
    for line in text.splitlines():
        if line.strip():
            return len(line) - len(line.lstrip())
    return 0


# --------------------------------------------------------------------------------------------
# Pass 1: what is every name?
# --------------------------------------------------------------------------------------------


@dataclass
class _Names:
    arguments: list[str]
    arrays: dict[str, int] = field(default_factory=dict)        # name -> rank
    array_order: list[str] = field(default_factory=list)
    shape_params: dict[str, tuple] = field(default_factory=dict)  # param -> ("shape", A, dim)
    int_params: list[str] = field(default_factory=list)
    scalars: list[str] = field(default_factory=list)             # value arguments
    unused: list[str] = field(default_factory=list)              # never referenced
    shape_only: set[str] = field(default_factory=set)            # arrays never subscripted
    locals: list[str] = field(default_factory=list)              # local scalar names
    loop_vars: set[str] = field(default_factory=set)
    constants: dict[str, object] = field(default_factory=dict)   # module-level numbers

    @property
    def parameters(self) -> list[str]:
        return self.int_params + list(self.shape_params)


class _NameClassifier:
    def __init__(self, func: ast.FunctionDef, source: _Source, globals_: dict):
        self.func = func
        self.source = source
        self.globals = globals_
        self.names = _Names(arguments=[a.arg for a in func.args.args])

    def error(self, node: ast.AST, message: str) -> FrontendError:
        return FrontendError(message, self.source.location(node))

    def classify(self) -> _Names:
        args = self.func.args
        for bad, what in ((args.vararg, "*args"), (args.kwarg, "**kwargs")):
            if bad is not None:
                raise self.error(bad, f"{what} is not supported: list every argument by name")
        if args.kwonlyargs or args.posonlyargs:
            node = (args.kwonlyargs or args.posonlyargs)[0]
            raise self.error(node, "keyword-only and positional-only arguments are not supported")
        if args.defaults:
            raise self.error(args.defaults[0], "default argument values are not supported")
        subscripted: dict[str, tuple[int, ast.AST]] = {}
        in_affine: set[str] = set()
        assigned: dict[str, ast.AST] = {}
        self._collect_shape_bindings()
        # In `A[i][j]` the inner `A[i]` is part of one access, not an access of its own; and
        # `len(A[0])` in a shape binding is no access at all.
        inner = {id(n.value) for n in ast.walk(self.func) if isinstance(n, ast.Subscript)}
        for binding in self.func.body:
            if is_shape_binding(binding):
                inner.update(id(n) for n in ast.walk(binding) if isinstance(n, ast.Subscript))
        for node in ast.walk(self.func):
            if isinstance(node, ast.For) and isinstance(node.target, ast.Name):
                self.names.loop_vars.add(node.target.id)
            if isinstance(node, ast.Subscript) and id(node) not in inner \
                    and not _is_shape_attribute(node.value):
                base, indices = flatten_subscript(node)
                if isinstance(base, ast.Name):
                    rank = len(indices)
                    previous = subscripted.get(base.id)
                    if previous is not None and previous[0] != rank:
                        raise self.error(node, f"array `{base.id}` is indexed with {rank} "
                                               f"subscripts here but {previous[0]} at line "
                                               f"{self.source.location(previous[1]).line}")
                    subscripted.setdefault(base.id, (rank, node))
                    for index in indices:
                        in_affine.update(_names_in(index))
            if isinstance(node, ast.For) and _is_range_call(node.iter):
                for arg in node.iter.args:
                    in_affine.update(_names_in(arg))
            if isinstance(node, (ast.If,)):
                in_affine.update(_names_in(node.test))
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and not is_shape_binding(node):
                        assigned.setdefault(target.id, target)
        for name, node in assigned.items():
            if name in subscripted and name not in self.names.arguments:
                raise self.error(node, f"`{name}` is created inside the kernel and subscripted; "
                                       "local arrays are not supported: create work arrays "
                                       "outside and pass them in as arguments")
        self._classify_arrays(subscripted)
        used = {n.id for n in ast.walk(self.func) if isinstance(n, ast.Name)}
        for name in self.names.arguments:
            if name in self.names.arrays:
                continue
            if name not in used:
                self.names.unused.append(name)
                continue
            if name in assigned:
                raise self.error(assigned[name], f"argument `{name}` is reassigned; a kernel may "
                                 "only write array elements and local scalars")
            if name in in_affine:
                self.names.int_params.append(name)
            else:
                self.names.scalars.append(name)
        for name, node in assigned.items():
            if name in self.names.arguments:
                continue
            if name in self.names.loop_vars:
                raise self.error(node, f"loop variable `{name}` is assigned; loop variables are "
                                       "read-only")
            if name in self.names.shape_params:
                raise self.error(node, f"size parameter `{name}` is assigned again")
            self.names.locals.append(name)
        for name in self.names.loop_vars:
            if name in self.names.arguments or name in self.names.shape_params:
                raise self.error(self.func, f"`{name}` is used both as a loop variable and as "
                                            "an argument or size")
        for name in in_affine:
            value = self.globals.get(name)
            if (name not in self.names.arguments and name not in self.names.shape_params
                    and name not in self.names.loop_vars and name not in self.names.locals
                    and isinstance(value, int) and not isinstance(value, bool)):
                self.names.constants[name] = value
        return self.names

    def _classify_arrays(self, subscripted: dict[str, tuple[int, ast.AST]]) -> None:
        for name, (rank, node) in subscripted.items():
            if name not in self.names.arguments:
                if name in self.names.shape_params or name in self.names.loop_vars:
                    raise self.error(node, f"`{name}` is subscripted but it is an integer, "
                                           "not an array")
                raise self.error(node, f"`{name}` is subscripted but is not an argument; kernels "
                                       "only index arrays passed as arguments (create work "
                                       "arrays outside and pass them in)")
            self.names.arrays[name] = rank
        # Arrays only used for their shape: the rank is what the bindings show (exact when
        # `.shape` is unpacked, a lower bound otherwise).
        for param, (_, array, dim) in self.names.shape_params.items():
            if array in subscripted:
                continue
            if array not in self.names.arguments:
                raise self.error(self.func, f"`{param}` takes its value from the shape of "
                                            f"`{array}`, which is not an argument")
            self.names.shape_only.add(array)
            self.names.arrays[array] = max(self.names.arrays.get(array, 0),
                                           self._binding_ranks.get(array, dim + 1))
        for param, (_, array, dim) in self.names.shape_params.items():
            rank = self.names.arrays[array]
            declared = self._binding_ranks.get(array)
            if declared is not None and declared != rank:
                raise self.error(self._binding_nodes[array],
                                 f"`{array}.shape` is unpacked into {declared} names but "
                                 f"`{array}` is indexed with {rank} subscripts")
            if dim >= rank:
                raise self.error(self._binding_nodes[array], f"`{array}` has rank {rank}; it has "
                                                             f"no dimension {dim}")
        order = [n for n in self.names.arguments if n in self.names.arrays]
        self.names.array_order = order

    # -- shape bindings ----------------------------------------------------------------------
    def _collect_shape_bindings(self) -> None:
        self._binding_ranks: dict[str, int] = {}
        self._binding_nodes: dict[str, ast.AST] = {}
        self._binding_statements: set[int] = set()
        for node in ast.walk(self.func):
            if not is_shape_binding(node):
                continue
            if not any(node is top for top in self.func.body):
                raise self.error(node, "shape bindings (`N = A.shape[0]`) must be at the top "
                                       "level of the function, outside loops and ifs")
            self._binding_statements.add(id(node))
            target = node.targets[0]
            value = node.value
            if isinstance(target, ast.Tuple) and _is_shape_attribute(value):
                array = value.value.id
                self._binding_ranks[array] = len(target.elts)
                self._binding_nodes[array] = node
                pairs = [(elt, (array, dim)) for dim, elt in enumerate(target.elts)]
            elif isinstance(target, ast.Tuple):
                pairs = [(elt, self._shape_ref(v)) for elt, v in zip(target.elts, value.elts)]
            else:
                pairs = [(target, self._shape_ref(value))]
            for elt, (array, dim) in pairs:
                if isinstance(elt, ast.Name) and elt.id == "_":
                    continue
                if not isinstance(elt, ast.Name):
                    raise self.error(elt, "a shape binding must bind plain names")
                if elt.id in self.names.shape_params:
                    raise self.error(elt, f"size `{elt.id}` is bound twice")
                if elt.id in self.names.arguments:
                    raise self.error(elt, f"size `{elt.id}` has the name of an argument")
                self.names.shape_params[elt.id] = ("shape", array, dim)
                self._binding_nodes.setdefault(array, node)
        self._require_bound_before_use()

    def _require_bound_before_use(self) -> None:
        """A size is read only after its binding runs (else Python: UnboundLocalError)."""
        for position, top in enumerate(self.func.body):
            if id(top) not in self._binding_statements:
                continue
            bound = {n.id for n in ast.walk(top) if isinstance(n, ast.Name)
                     and isinstance(n.ctx, ast.Store)}
            for earlier in self.func.body[:position]:
                for use in ast.walk(earlier):
                    if isinstance(use, ast.Name) and use.id in bound \
                            and isinstance(use.ctx, ast.Load):
                        raise self.error(use, f"size `{use.id}` is used before the binding at "
                                              f"line {self.source.location(top).line} gives it "
                                              "a value (Python raises UnboundLocalError)")

    def _shape_ref(self, node: ast.AST) -> tuple[str, int]:
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "len" and len(node.args) == 1):
            # len(A) is A.shape[0]; len(A[0]) is A.shape[1], and so on.
            base, indices = (flatten_subscript(node.args[0])
                             if isinstance(node.args[0], ast.Subscript) else (node.args[0], []))
            if isinstance(base, ast.Name) and all(
                    isinstance(i, ast.Constant) and isinstance(i.value, int) for i in indices):
                return base.id, len(indices)
        if (isinstance(node, ast.Subscript) and _is_shape_attribute(node.value)
                and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int)):
            if node.slice.value < 0:
                raise self.error(node, "use a non-negative dimension in `A.shape[d]`")
            return node.value.value.id, node.slice.value
        raise self.error(node, "expected `A.shape`, `A.shape[d]`, `len(A)` or `len(A[0])`")


def is_shape_binding(node: ast.AST) -> bool:
    """``N, M = A.shape``, ``N = A.shape[0]``, ``n = len(x)`` or a tuple of those."""
    if not isinstance(node, ast.Assign) or len(node.targets) != 1:
        return False
    value = node.value
    if isinstance(node.targets[0], ast.Tuple) and isinstance(value, ast.Tuple):
        return all(_is_shape_expr(v) for v in value.elts) and len(value.elts) == len(
            node.targets[0].elts)
    return _is_shape_expr(value)


def _is_shape_attribute(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "shape"
            and isinstance(node.value, ast.Name))


def _is_shape_expr(node: ast.AST) -> bool:
    if _is_shape_attribute(node):
        return True
    if isinstance(node, ast.Subscript) and _is_shape_attribute(node.value):
        return True
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "len")


def _is_range_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "range")


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def flatten_subscript(node: ast.Subscript) -> tuple[ast.AST, list[ast.AST]]:
    """``A[i][j, k]`` -> (``A``, [i, j, k])."""
    indices: list[ast.AST] = []
    while isinstance(node, ast.Subscript):
        index = node.slice
        part = list(index.elts) if isinstance(index, ast.Tuple) else [index]
        indices = part + indices
        node = node.value
    return node, indices


# --------------------------------------------------------------------------------------------
# Names isl can read
# --------------------------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RESERVED = re.compile(r"S[0-9]+\Z|pp_")   # statement names; generated names


def _isl_reads(name: str) -> bool:
    """Whether isl parses ``name`` as a plain identifier (not a keyword such as ``mod``)."""
    import islpy as isl

    try:
        isl.Set(f"[{name}] -> {{ [{name}x] : {name}x >= {name} }}")
        isl.Set(f"{{ {name}[d] : 0 <= d }}")
        isl.Set(f"{{ [{name}] : {name} >= 0 }}")
    except isl.Error:
        return False
    return True


def safe_name(name: str) -> bool:
    return bool(_IDENTIFIER.match(name)) and not _RESERVED.match(name) and _isl_reads(name)


def safe_names(func: ast.FunctionDef) -> dict[str, str]:
    """Rename (in place) the names ``func`` binds that isl or polypipe cannot use as they are;
    returns the renaming (new name -> the Python name).

    Only bound names are renamed (arguments, assignment and loop targets): they are local to
    the function, so every use of them is a use of the binding. Module-level names keep their
    spelling, since they are looked up in the function's globals.
    """
    bound = {a.arg for a in func.args.args}
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    taken = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)} | bound
    renaming: dict[str, str] = {}
    for name in sorted(bound):
        if safe_name(name):
            continue
        base = "".join(c if c.isascii() and (c.isalnum() or c == "_") else f"u{ord(c):x}"
                       for c in name).lstrip("_") or "v"
        base = "v_" + base if _RESERVED.match(base) or base[0].isdigit() else base
        candidate, count = f"{base}_", 1
        while candidate in taken or not safe_name(candidate):
            count += 1
            candidate = f"{base}_{count}"
        taken.add(candidate)
        renaming[name] = candidate
    if renaming:
        for node in ast.walk(func):
            if isinstance(node, ast.Name) and node.id in renaming:
                node.id = renaming[node.id]
            elif isinstance(node, ast.arg) and node.arg in renaming:
                node.arg = renaming[node.arg]
    return {new: old for old, new in renaming.items()}


# --------------------------------------------------------------------------------------------
# Builtins and modules the function may have shadowed
# --------------------------------------------------------------------------------------------

BUILTIN_NAMES = ("range", "len", "min", "max", "abs", "float", "int", "pow")
MODULES = {"math": math, "np": numpy, "numpy": numpy}
# The functions polypipe compiles, as they were when polypipe was imported: a module attribute
# replaced later (``math.sqrt = my_sqrt``) is no longer the function the C code computes.
ORIGINALS = {id(module): dict(vars(module)) for module in (math, numpy)}


def check_shadowing(func: ast.FunctionDef, source: _Source, globals_: dict) -> None:
    """FrontendError where a call or attribute would not mean what polypipe compiles: a
    builtin (``range``, ``min``, ...) or module (``math``, ``np``) that the function binds
    itself, a builtin the module redefines, a module function or constant replaced since."""
    bound = {a.arg for a in func.args.args}
    bound.update(n.id for n in ast.walk(func)
                 if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in BUILTIN_NAMES:
            name = node.func.id
            if name in bound:
                raise FrontendError(f"`{name}` is a variable of this function, so `{name}(...)` "
                                    f"does not call the builtin {name}; rename the variable",
                                    source.location(node))
            if name in globals_ and globals_[name] is not getattr(builtins, name):
                raise FrontendError(f"`{name}` is redefined in this module, so `{name}(...)` "
                                    f"is not the builtin polypipe compiles", source.location(node))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner = node.value.id
            module = globals_.get(owner)
            if owner in bound and owner in MODULES:
                raise FrontendError(f"`{owner}` is a variable of this function, not the module "
                                    f"`{owner}`; rename the variable", source.location(node))
            if module is math or module is numpy:
                original = ORIGINALS[id(module)].get(node.attr, _MISSING)
                if original is not _MISSING and getattr(module, node.attr, None) is not original:
                    raise FrontendError(f"`{owner}.{node.attr}` has been replaced since polypipe "
                                        "was imported; polypipe compiles the original",
                                        source.location(node))


_MISSING = object()
