"""Static value types of statement expressions, following NumPy's promotion rules (NEP 50).

The generated C must compute what the Python function computes on NumPy arrays, so every
expression gets the type NumPy would give it: array elements are "strong" (their dtype wins),
Python ints, floats and bools are "weak" (they adapt to a strong operand: ``float32_array * 0.5``
stays float32). Which operation runs on which types is :mod:`codegen.semantics`; this module
holds the types themselves and the per-program :class:`TypeEnv`.

A ``select`` (``x if c else y``), builtin ``min`` and ``max`` return one of their operands
unchanged, so their type is the taken branch's: an expression can have several possible types,
one per combination of branches (:meth:`TypeEnv.branch_types`). Before printing, the consumer
of such an expression is distributed into the branches (:mod:`codegen.lower_values`) until
every branch has a single type or reaches the store, which converts each branch on its own.

Local scalars hold whatever Python object was last assigned to them. polypipe stores a local in
one C variable of the join of its assigned types where that changes nothing, else in one
variable per type with a tag saying which holds the value (:meth:`TypeEnv.decide_locals`).
"""

from __future__ import annotations

from dataclasses import dataclass

from polypipe import ir

_C_NAMES = {("b", 8): "int", ("i", 32): "int32_t", ("i", 64): "int64_t", ("f", 32): "float",
            ("f", 64): "double"}
# A 16-bit float is computed on as a float holding a value of its format (codegen.half_c):
# typedefs of float with names of their own, so that code comparing C types never takes a
# float16 value for a float32 one (their operations round differently).
_HALF_C_NAMES = {"": "pp_f16", "bf16": "pp_bf16"}
_KIND_ORDER = {"b": 0, "i": 1, "f": 2}


@dataclass(frozen=True)
class VType:
    """A value type: kind ``b``/``i``/``f``, width in bits, whether it is a weak scalar, and
    for 16-bit floats the format (``""``: IEEE float16, ``"bf16"``: bfloat16)."""

    kind: str
    bits: int
    weak: bool = False
    format: str = ""

    @property
    def c_name(self) -> str:
        """The C type of a value of this type in a computation."""
        if self.is_half:
            return _HALF_C_NAMES[self.format]
        return _C_NAMES[(self.kind, self.bits)]

    @property
    def storage_c_name(self) -> str:
        """The C type of an array element: a 16-bit float is stored as its bits."""
        return "uint16_t" if self.is_half else self.c_name

    @property
    def is_half(self) -> bool:
        """float16 or bfloat16."""
        return self.kind == "f" and self.bits == 16

    @property
    def is_float(self) -> bool:
        return self.kind == "f"

    @property
    def is_int(self) -> bool:
        return self.kind == "i"

    @property
    def is_bool(self) -> bool:
        return self.kind == "b"

    def strong(self) -> "VType":
        return VType(self.kind, self.bits, False, self.format)

    def __str__(self) -> str:
        if self.weak:
            return {"b": "Python bool", "i": "Python int", "f": "Python float"}[self.kind]
        if self.format == "bf16":
            return "bfloat16"
        return {"b": "numpy.bool", "i": f"int{self.bits}", "f": f"float{self.bits}"}[self.kind]


BOOL = VType("b", 8)
WEAK_BOOL = VType("b", 8, True)
WEAK_INT = VType("i", 64, True)
WEAK_FLOAT = VType("f", 64, True)
F32 = VType("f", 32)
F64 = VType("f", 64)
I32 = VType("i", 32)
I64 = VType("i", 64)

# 16-bit floats: stored as their bits, computed on as float and rounded after every operation
# (codegen.semantics, codegen.half_c), as NumPy (float16) and ml_dtypes (bfloat16) compute.
F16 = VType("f", 16)
BF16 = VType("f", 16, False, "bf16")
HALF_DTYPES = {"float16": F16, "bfloat16": BF16}

_DTYPES = {"float32": F32, "float64": F64, "int32": I32, "int64": I64, **HALF_DTYPES}
SUPPORTED_DTYPES = tuple(_DTYPES)


def numpy_dtype(name: str):
    """``np.dtype(name)`` for a supported dtype name; bfloat16 needs ml_dtypes, imported only
    then (it takes over a second to import)."""
    import numpy as np

    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def from_dtype(name: str) -> VType:
    return _DTYPES[name]


def dtype_name(vtype: VType) -> str:
    """The NumPy dtype an element of this type is stored as (booleans as int32)."""
    if vtype.kind == "b":
        return "int32"
    if vtype.format == "bf16":
        return "bfloat16"
    return {"f": "float", "i": "int"}[vtype.kind] + str(vtype.bits)


def promote(a: VType | None, b: VType | None) -> VType | None:
    """The type of ``a op b`` under NEP 50 (``None`` is "not known yet" and yields the other)."""
    if a is None:
        return b
    if b is None:
        return a
    if a.weak and b.weak:
        return a if _KIND_ORDER[a.kind] >= _KIND_ORDER[b.kind] else b
    if a.weak or b.weak:
        weak, strong = (a, b) if a.weak else (b, a)
        if _KIND_ORDER[weak.kind] <= _KIND_ORDER[strong.kind]:
            return strong
        # A Python float meets an integer or boolean array, a Python int a boolean one.
        return F64 if weak.kind == "f" else I64
    if a.kind == b.kind:
        if a.bits == b.bits and a.format != b.format:
            return F32     # float16 with bfloat16: neither holds the other (ml_dtypes: float32)
        return a if a.bits >= b.bits else b
    if a.kind == "b" or b.kind == "b":
        return b if a.kind == "b" else a
    return F64  # mixing integers and floats: NumPy goes to float64


def join(types) -> VType | None:
    """The promotion of all ``types`` (None for none)."""
    result = None
    for vtype in types:
        result = promote(result, vtype)
    return result


def lossless(have: VType, want: VType) -> bool:
    """Whether every value of ``have`` converts to ``want`` exactly."""
    if have.strong() == want.strong():
        return True
    if have.kind == "b":
        return True
    if have.kind == "i":
        return want.kind == "i" and want.bits >= have.bits or (
            want.kind == "f" and want.bits == 64 and have.bits == 32)
    # A wider float holds a narrower one; float16 and bfloat16 do not hold each other.
    return want.kind == "f" and want.bits > have.bits


def constant_fits(value, want: VType) -> bool:
    """Whether the Python constant ``value`` is exactly a value of ``want``."""
    import numpy as np

    if isinstance(value, bool):
        return True
    if want.kind == "b":
        return False
    if want.kind == "i":
        return isinstance(value, int) and -2**(want.bits - 1) <= value < 2**(want.bits - 1)
    if isinstance(value, int) and abs(value) > 2**53:
        return False
    dtype = numpy_float(want)
    with np.errstate(all="ignore"):
        converted = float(dtype(value))   # compared as Python floats: NumPy would cast value
    return converted == value or (value != value and converted != converted)


def numpy_float(vtype: VType):
    """The NumPy scalar type of a float VType (bfloat16 from ml_dtypes)."""
    import numpy as np

    if vtype.format == "bf16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return {16: np.float16, 32: np.float32, 64: np.float64}[vtype.bits]


def true_divide(a: VType, b: VType) -> VType:
    result = promote(a, b)
    assert result is not None
    if result.is_float:
        return result
    return WEAK_FLOAT if (a.weak and b.weak) else F64


class TypeEnv:
    """Types of every name a statement can read, for one specialisation of a program."""

    def __init__(self, program: ir.Program, scalar_types: dict[str, VType]):
        from .semantics import Semantics

        self.program = program
        self.scalars = scalar_types
        self.arrays: dict[str, VType] = {}
        for array in program.arrays:
            if not array.is_local and array.accessed:
                assert array.dtype is not None, f"array {array.name} has no dtype yet"
                self.arrays[array.name] = from_dtype(array.dtype)
        self.rules = Semantics(self)
        self.variants: dict[str, tuple[VType, ...]] = {}   # see lower_values.decide_variants
        self._infer_locals()

    def _infer_locals(self) -> None:
        """Join the types of every value assigned to each local, to a fixed point."""
        self._locals: dict[str, VType | None] = {
            a.name: None for a in self.program.arrays if a.is_local}
        for _ in range(4 * len(self._locals) + 2):
            changed = False
            for stmt in self.program.statements:
                name = stmt.target.array
                if name not in self._locals:
                    continue
                joined = join([self._locals[name], *self.branch_types(statement_value(stmt))])
                if joined != self._locals[name]:
                    self._locals[name] = joined
                    self.rules.forget()       # types computed from the old local types
                    changed = True
            if not changed:
                break
        for name, vtype in self._locals.items():
            # A local holding only Python numbers is a Python int or float: 64-bit storage.
            self.arrays[name] = (vtype or WEAK_FLOAT).strong()

    def storage_type(self, name: str) -> VType:
        """The C type of an array element or local scalar."""
        return self.arrays[name]

    def local_type(self, name: str) -> VType:
        """The type a read of local ``name`` has (weak when it only ever holds Python numbers)."""
        return self._locals[name] or WEAK_FLOAT

    def leaf(self, expr: ir.Expr) -> VType:
        """The type of a leaf: constant, loop variable, size, scalar or read."""
        if isinstance(expr, ir.Const):
            if isinstance(expr.value, bool):
                return WEAK_BOOL
            return WEAK_INT if isinstance(expr.value, int) else WEAK_FLOAT
        if isinstance(expr, ir.ParamRef):           # a size: Python int unless passed as NumPy's
            return self.scalars.get(expr.name, WEAK_INT)
        if isinstance(expr, ir.IterRef):
            return WEAK_INT
        if isinstance(expr, ir.ScalarArg):
            return self.scalars[expr.name]
        assert isinstance(expr, ir.Read), expr
        name = expr.access.array
        if name in self._locals:
            return self.local_type(name)
        return self.arrays[name]

    def branch_types(self, expr: ir.Expr) -> tuple[VType, ...]:
        """Every type ``expr`` can have, one per combination of select/min/max branches."""
        return self.rules.branch_types(expr)

    def expr(self, expr: ir.Expr) -> VType:
        """The type of ``expr``; where branches differ, their promotion (see branch_types)."""
        types = self.branch_types(expr)
        result = types[0]
        for other in types[1:]:
            result = promote(result, other)
        return result

    def joined_locals(self) -> dict[str, VType | None]:
        return dict(self._locals)

    def set_variants(self, variants: dict[str, tuple[VType, ...]]) -> None:
        self.variants = dict(variants)
        self.rules.forget()

    def decide_locals(self) -> None:
        """Give a variable per type to every local one variable cannot serve (lower_values)."""
        from .lower_values import decide_variants

        if self._locals:
            decide_variants(self)


def statement_value(stmt: ir.Statement) -> ir.Expr:
    """The value a statement stores: ``target op value`` for augmented assignments."""
    if stmt.op is None:
        return stmt.value
    return ir.Binary(stmt.op, ir.Read(stmt.reads[0]), stmt.value)
