"""The polyhedral model of a loop nest: parameters, arrays, statements, schedule.

All nodes are frozen dataclasses; polyhedral content lives in isl objects. Transformations build
new objects instead of editing these. Dataclasses that hold isl objects compare by identity
(``eq=False``): isl equality is a question for isl (``is_equal``), not for ``==``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Iterator, Union

import islpy as isl

from .errors import SourceLocation

# --------------------------------------------------------------------------------------------
# Value expressions (the right-hand side of a statement)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Access:
    """One read or write of an array element (or of a local scalar, a rank-0 array).

    ``indices`` are isl quasi-affine expressions (text) in the statement's iterators and the
    parameters; ``relation`` is the exact access relation ``S[i, ..] -> A[..]`` restricted to the
    instances that perform the access: the statement's domain, or the part of it where an
    affine select test takes the access's branch (``A[i - 1] if i > 0 else 0.0`` reads ``A``
    only for ``i > 0``). For such a *guarded* access, ``full`` is the same subscript over the
    whole domain: what code generation prints (the branch's test keeps it from running).
    """

    array: str
    indices: tuple[str, ...]
    relation: isl.Map
    is_write: bool
    location: SourceLocation | None = None
    full: isl.Map | None = None
    origin: "OriginSubscript | None" = None

    def __str__(self) -> str:
        if not self.indices:
            return self.array
        return f"{self.array}[{', '.join(self.indices)}]"


@dataclass(frozen=True, eq=False)
class OriginSubscript:
    """An access of a derived statement written over the statement it was derived from.

    ``instance`` maps this statement's instances to the iterators of the original statement
    (output dimensions named ``pp_u_<iterator>``), ``index`` maps those iterators to the array
    element, and ``instance`` then ``index`` is the access's relation on every instance that
    performs it (code generation checks that). A shared-memory copy of a quasi-affine read
    (an implicit-GEMM convolution's ``X[p // (OH*OW), ...]``) prints its subscript this way:
    composed with the tiled schedule by isl, the divisions by constants become nested
    ``floord`` and case splits (about 2 KB of C per copy, more integer instructions than
    multiply-adds in the main loop); over the original iterators, bound once as locals, they
    stay a handful of divisions by constants.
    """

    instance: isl.PwMultiAff
    index: isl.PwMultiAff


@dataclass(frozen=True)
class Const:
    value: Union[int, float, bool]


@dataclass(frozen=True)
class ParamRef:
    """A symbolic size parameter used as a value."""

    name: str


@dataclass(frozen=True)
class IterRef:
    """A loop variable used as a value."""

    name: str


@dataclass(frozen=True)
class ScalarArg:
    """A scalar argument that is a value (not a size parameter), e.g. ``alpha``."""

    name: str


@dataclass(frozen=True, eq=False)
class Read:
    access: Access


@dataclass(frozen=True)
class Unary:
    op: str  # '-', '+', 'not'
    operand: "Expr"


@dataclass(frozen=True)
class Binary:
    op: str  # '+', '-', '*', '/', '//', '%', '**'
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class Compare:
    op: str  # '<', '<=', '>', '>=', '==', '!='
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class BoolOp:
    op: str  # 'and', 'or'
    operands: tuple["Expr", ...]


@dataclass(frozen=True)
class Select:
    """``then if cond else otherwise``: a data-dependent choice."""

    cond: "Expr"
    then: "Expr"
    otherwise: "Expr"


@dataclass(frozen=True, eq=False)
class Member:
    """Whether the statement's instance lies in ``instances`` (an affine test of its
    iterators): a GPU copy that zero-fills the padding of a partial tile
    (:mod:`polypipe.gpu_pad`) reads its source only where this holds."""

    instances: isl.Set


@dataclass(frozen=True)
class Call:
    """A pure function: ``func`` is canonical (``sqrt``, ``min``, ``float``, ...).

    ``origin`` is ``'math'``, ``'numpy'`` or ``'builtin'``; it decides the result type the way
    Python does (``math.sqrt`` returns a Python float, ``np.sqrt`` keeps float32).
    """

    func: str
    args: tuple["Expr", ...]
    origin: str


Expr = Union[Const, ParamRef, IterRef, ScalarArg, Read, Unary, Binary, Compare, BoolOp, Select,
             Call, Member]


def walk_expr(expr: Expr) -> Iterator[Expr]:
    """Every node of an expression tree, parents before children, left to right."""
    yield expr
    children: tuple = ()
    if isinstance(expr, Unary):
        children = (expr.operand,)
    elif isinstance(expr, (Binary, Compare)):
        children = (expr.left, expr.right)
    elif isinstance(expr, BoolOp):
        children = expr.operands
    elif isinstance(expr, Select):
        children = (expr.cond, expr.then, expr.otherwise)
    elif isinstance(expr, Call):
        children = expr.args
    for child in children:
        yield from walk_expr(child)


def replace_reads(expr: Expr, mapping: dict[int, Access]) -> Expr:
    """The expression with each read replaced as ``mapping`` (keyed by old access id) says."""
    if isinstance(expr, Read):
        return Read(mapping.get(id(expr.access), expr.access))
    if isinstance(expr, Unary):
        return Unary(expr.op, replace_reads(expr.operand, mapping))
    if isinstance(expr, Binary):
        return Binary(expr.op, replace_reads(expr.left, mapping),
                         replace_reads(expr.right, mapping))
    if isinstance(expr, Compare):
        return Compare(expr.op, replace_reads(expr.left, mapping),
                          replace_reads(expr.right, mapping))
    if isinstance(expr, BoolOp):
        return BoolOp(expr.op, tuple(replace_reads(o, mapping) for o in expr.operands))
    if isinstance(expr, Select):
        return Select(replace_reads(expr.cond, mapping), replace_reads(expr.then, mapping),
                         replace_reads(expr.otherwise, mapping))
    if isinstance(expr, Call):
        return Call(expr.func, tuple(replace_reads(a, mapping) for a in expr.args),
                       expr.origin)
    return expr


_PRECEDENCE = {"or": 1, "and": 2, "not": 3, "cmp": 4, "+": 5, "-": 5, "*": 6, "/": 6, "//": 6,
               "%": 6, "neg": 7, "**": 8}


def format_expr(expr: Expr, parent: int = 0) -> str:
    """Python-like text of an expression, parenthesised only where needed."""
    if isinstance(expr, Const):
        return repr(expr.value)
    if isinstance(expr, (ParamRef, IterRef, ScalarArg)):
        return expr.name
    if isinstance(expr, Read):
        return str(expr.access)
    if isinstance(expr, Member):
        return "in_footprint"
    if isinstance(expr, Call):
        prefix = {"math": "math.", "numpy": "np."}.get(expr.origin, "")
        return f"{prefix}{expr.func}({', '.join(format_expr(a) for a in expr.args)})"
    if isinstance(expr, Select):
        text = f"{format_expr(expr.then, 1)} if {format_expr(expr.cond, 1)} else {format_expr(expr.otherwise)}"
        return f"({text})" if parent else text
    if isinstance(expr, Unary):
        prec = _PRECEDENCE["not" if expr.op == "not" else "neg"]
        op = "not " if expr.op == "not" else expr.op
        text = f"{op}{format_expr(expr.operand, prec)}"
    elif isinstance(expr, BoolOp):
        prec = _PRECEDENCE[expr.op]
        text = f" {expr.op} ".join(format_expr(o, prec + 1) for o in expr.operands)
    elif isinstance(expr, Compare):
        prec = _PRECEDENCE["cmp"]
        text = f"{format_expr(expr.left, prec + 1)} {expr.op} {format_expr(expr.right, prec + 1)}"
    else:
        assert isinstance(expr, Binary)
        prec = _PRECEDENCE[expr.op]
        right_prec = prec + 1 if expr.op != "**" else prec
        left_prec = prec if expr.op != "**" else prec + 1
        text = f"{format_expr(expr.left, left_prec)} {expr.op} {format_expr(expr.right, right_prec)}"
    return f"({text})" if prec < parent else text


# --------------------------------------------------------------------------------------------
# Program structure
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    """A symbolic size. ``source`` is ``("shape", array, dim)`` or ``("argument", name)``."""

    name: str
    source: tuple
    python_name: str = ""     # the spelling in the function, where ``name`` had to differ

    @property
    def spelling(self) -> str:
        return self.python_name or self.name


@dataclass(frozen=True)
class Argument:
    """A function argument: ``kind`` is ``'array'``, ``'param'`` (int size), ``'scalar'`` (a
    value) or ``'unused'`` (never referenced by the body: accepted and ignored)."""

    name: str
    kind: str
    python_name: str = ""     # the spelling in the function, where ``name`` had to differ

    @property
    def spelling(self) -> str:
        return self.python_name or self.name


@dataclass(frozen=True)
class Array:
    """An array of the program. Local scalars are rank-0 arrays with ``is_local``.

    ``shape`` names the parameter bound to each dimension, or ``None`` where no binding exists
    (the extent is then only known from the argument at run time). ``dtype`` is a NumPy dtype
    name once the program is specialised for concrete arguments.

    Buffers created by promotion have ``memory`` ``"shared"`` (one per block) or ``"register"``
    (one per thread), constant ``extents``, and for register buffers ``thread_dims`` leading
    dimensions indexed by the thread coordinates: the CPU emulation keeps every thread's
    registers side by side, the CUDA printer drops those dimensions.

    An argument array that is never subscripted (only its shape is used) has ``accessed``
    False: any array-like with enough dimensions is accepted for it, and ``rank`` is a minimum.
    """

    name: str
    rank: int
    shape: tuple[str | None, ...]
    is_local: bool = False
    dtype: str | None = None
    memory: str = "global"
    extents: tuple[int, ...] | None = None
    thread_dims: int = 0
    accessed: bool = True

    @property
    def is_buffer(self) -> bool:
        """A staging buffer made by promotion (constant ``extents``), not a user array."""
        return self.memory in ("shared", "register")


@dataclass(frozen=True, eq=False)
class Statement:
    """One assignment: ``target op= value`` (``op`` is ``None`` for a plain assignment).

    ``domain`` is the iteration domain, tuple name = ``name``, one dimension per enclosing loop
    named after the loop variable and holding its value. ``reads`` lists every read in
    evaluation order (for an augmented assignment the target's read comes first).

    ``kind`` is ``"compute"`` for user statements, ``"copy"`` for a copy into or out of a
    buffer and ``"async_copy"`` for a global -> shared copy that completes at a later wait.
    ``loop_ids`` names the enclosing loops (unique per loop of the source), outer to inner, so
    analyses can tell whether two statements share a loop.
    """

    name: str
    iterators: tuple[str, ...]
    domain: isl.Set
    target: Access
    op: str | None
    value: Expr
    reads: tuple[Access, ...]
    location: SourceLocation | None = None
    source: str = ""
    kind: str = "compute"
    loop_ids: tuple[str, ...] = ()

    @property
    def accesses(self) -> tuple[Access, ...]:
        return self.reads + (self.target,)

    def __str__(self) -> str:
        op = f"{self.op}=" if self.op else "="
        return f"{self.name}: {self.target} {op} {format_expr(self.value)}"


@dataclass(frozen=True, eq=False)
class Sync:
    """A synchronisation statement of a GPU program: ``barrier`` (all threads of a block),
    ``commit`` (close this thread's group of asynchronous copies) or ``wait`` (block until at
    most ``pending`` of this thread's committed groups are still in flight)."""

    name: str
    domain: isl.Set
    kind: str
    pending: int = 0

    def __str__(self) -> str:
        suffix = f"({self.pending})" if self.kind == "wait" else ""
        return f"{self.name}: {self.kind}{suffix}"


@dataclass(frozen=True)
class Launch:
    """How a GPU program is launched: the thread block shape (outer to inner)."""

    threads: tuple[int, ...]

    @property
    def thread_count(self) -> int:
        count = 1
        for extent in self.threads:
            count *= extent
        return count


@dataclass(frozen=True, eq=False)
class Program:
    """A loop nest as a polyhedral program.

    ``schedule`` is an isl schedule tree over the statements' domains; ``context`` constrains
    the parameters (sizes are non-negative). ``transforms`` records the transformations applied,
    in order.
    """

    name: str
    arguments: tuple[Argument, ...]
    parameters: tuple[Parameter, ...]
    arrays: tuple[Array, ...]
    statements: tuple[Statement, ...]
    schedule: isl.Schedule
    context: isl.Set
    filename: str = "<unknown>"
    transforms: tuple[str, ...] = field(default=())
    syncs: tuple[Sync, ...] = field(default=())
    launch: Launch | None = None

    # -- lookup -------------------------------------------------------------------------------
    def array(self, name: str) -> Array:
        for array in self.arrays:
            if array.name == name:
                return array
        raise KeyError(name)

    def statement(self, name: str) -> Statement:
        for stmt in self.statements:
            if stmt.name == name:
                return stmt
        raise KeyError(name)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    # -- union views --------------------------------------------------------------------------
    def sync(self, name: str) -> Sync:
        for sync in self.syncs:
            if sync.name == name:
                return sync
        raise KeyError(name)

    # The union views are cached: a Program is immutable, and the proofs ask for them dozens
    # of times per kernel (rebuilding the schedule map alone was a tenth of a GEMM's proof).
    @cached_property
    def domain(self) -> isl.UnionSet:
        """Every statement instance (synchronisation statements included)."""
        result = isl.UnionSet.empty(self.context.get_space())
        for stmt in (*self.statements, *self.syncs):
            result = result.union(isl.UnionSet.from_set(stmt.domain))
        return result

    def _union_of(self, maps) -> isl.UnionMap:
        result = isl.UnionMap.empty(self.context.get_space())
        for relation in maps:
            result = result.union(isl.UnionMap.from_map(relation))
        return result

    @property
    def reads(self) -> isl.UnionMap:
        """Every read access relation, statement instance -> array element."""
        return self._union_of(a.relation for s in self.statements for a in s.reads)

    @property
    def writes(self) -> isl.UnionMap:
        """Every write access relation, statement instance -> array element."""
        return self._union_of(s.target.relation for s in self.statements)

    @cached_property
    def schedule_map(self) -> isl.UnionMap:
        """The schedule as a flat map from statement instances to time vectors."""
        return self.schedule.get_map()

    def with_dtypes(self, dtypes: dict[str, str]) -> "Program":
        """The same program with array dtypes fixed (local scalars keep theirs)."""
        arrays = tuple(replace(a, dtype=dtypes.get(a.name, a.dtype)) for a in self.arrays)
        return replace(self, arrays=arrays)

    # -- display ------------------------------------------------------------------------------
    def __str__(self) -> str:
        lines = [f"program {self.name}({', '.join(a.name for a in self.arguments)})"]
        params = ", ".join(_describe_parameter(p) for p in self.parameters) or "none"
        lines.append(f"  parameters: {params}")
        lines.append(f"  context: {self.context}")
        lines.append("  arrays:")
        for array in self.arrays:
            dims = ", ".join(d if d is not None else "?" for d in array.shape)
            kind = "local scalar" if array.is_local else f"[{dims}]"
            if array.is_buffer:
                kind = f"{array.memory} buffer {list(array.extents or ())}"
            dtype = f" {array.dtype}" if array.dtype else ""
            lines.append(f"    {array.name}: {kind}{dtype}")
        lines.append("  statements:")
        for stmt in self.statements:
            where = f"  (line {stmt.location.line})" if stmt.location else ""
            lines.append(f"    {stmt}{where}")
            lines.append(f"      domain: {stmt.domain}")
            for access in stmt.reads:
                lines.append(f"      read:   {access.relation}")
            lines.append(f"      write:  {stmt.target.relation}")
        for sync in self.syncs:
            lines.append(f"    {sync}")
            lines.append(f"      domain: {sync.domain}")
        lines.append(f"  schedule: {self.schedule_map}")
        if self.transforms:
            lines.append("  transforms: " + "; ".join(self.transforms))
        return "\n".join(lines)


def fresh_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name2``, ``name3``, ... whichever is not in ``taken`` (then added)."""
    candidate, count = name, 1
    while candidate in taken:
        count += 1
        candidate = f"{name}{count}"
    taken.add(candidate)
    return candidate


def _describe_parameter(param: Parameter) -> str:
    if param.source[0] == "shape":
        return f"{param.name} = {param.source[1]}.shape[{param.source[2]}]"
    return f"{param.name} (argument)"
