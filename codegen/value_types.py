"""Static value types of statement expressions, following NumPy's promotion rules (NEP 50).

The generated C must compute what the Python function computes on NumPy arrays, so every
expression gets the type NumPy would give it: array elements are "strong" (their dtype wins),
Python ints and floats are "weak" (they adapt to a strong operand: ``float32_array * 0.5`` stays
float32). Local scalars take the join of every value assigned to them, which is the type they
hold after their first update in the Python run.
"""

from __future__ import annotations

from dataclasses import dataclass

from polypipe import ir

_C_NAMES = {("b", 8): "int", ("i", 32): "int32_t", ("i", 64): "int64_t", ("f", 32): "float",
            ("f", 64): "double"}
_KIND_ORDER = {"b": 0, "i": 1, "f": 2}


@dataclass(frozen=True)
class VType:
    """A value type: kind ``b``/``i``/``f``, width in bits, and whether it is a weak scalar."""

    kind: str
    bits: int
    weak: bool = False

    @property
    def c_name(self) -> str:
        return _C_NAMES[(self.kind, self.bits)]

    @property
    def is_float(self) -> bool:
        return self.kind == "f"

    def strong(self) -> "VType":
        return VType(self.kind, self.bits, False)


BOOL = VType("b", 8)
WEAK_INT = VType("i", 64, True)
WEAK_FLOAT = VType("f", 64, True)
F64 = VType("f", 64)
I64 = VType("i", 64)

_DTYPES = {"float32": VType("f", 32), "float64": VType("f", 64), "int32": VType("i", 32),
           "int64": VType("i", 64)}
SUPPORTED_DTYPES = tuple(_DTYPES)


def from_dtype(name: str) -> VType:
    return _DTYPES[name]


def dtype_name(vtype: VType) -> str:
    """The NumPy dtype an element of this type is stored as (booleans as int32)."""
    if vtype.kind == "b":
        return "int32"
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
        # A Python float meets an integer array (or a Python int meets a bool array).
        return F64 if weak.kind == "f" else I64
    if a.kind == b.kind:
        return a if a.bits >= b.bits else b
    if a.kind == "b" or b.kind == "b":
        return b if a.kind == "b" else a
    return F64  # mixing integers and floats of different kinds: NumPy goes to float64


def true_divide(a: VType, b: VType) -> VType:
    result = promote(a, b)
    assert result is not None
    if result.is_float:
        return result
    return WEAK_FLOAT if (a.weak and b.weak) else F64


class TypeEnv:
    """Types of every name a statement can read, for one specialisation of a program."""

    def __init__(self, program: ir.Program, scalar_types: dict[str, VType]):
        self.program = program
        self.scalars = scalar_types
        self.arrays: dict[str, VType] = {}
        for array in program.arrays:
            if not array.is_local and array.accessed:
                assert array.dtype is not None, f"array {array.name} has no dtype yet"
                self.arrays[array.name] = from_dtype(array.dtype)
        self._infer_locals()

    def _infer_locals(self) -> None:
        """Join the types of every value assigned to each local, to a fixed point."""
        self._locals: dict[str, VType | None] = {
            a.name: None for a in self.program.arrays if a.is_local}
        for _ in range(len(self._locals) + 2):
            changed = False
            for stmt in self.program.statements:
                name = stmt.target.array
                if name not in self._locals:
                    continue
                joined = promote(self._locals[name], self.expr(statement_value(stmt)))
                if joined != self._locals[name]:
                    self._locals[name] = joined
                    changed = True
            if not changed:
                break
        for name, vtype in self._locals.items():
            # A local holding only Python numbers is a Python int or float: 64-bit storage.
            self.arrays[name] = (vtype or WEAK_FLOAT).strong()

    def storage_type(self, name: str) -> VType:
        """The C type of an array element or local scalar."""
        return self.arrays[name]

    def expr(self, expr: ir.Expr) -> VType:
        if isinstance(expr, ir.Const):
            if isinstance(expr.value, bool):
                return BOOL
            return WEAK_INT if isinstance(expr.value, int) else WEAK_FLOAT
        if isinstance(expr, (ir.IterRef, ir.ParamRef)):
            return WEAK_INT
        if isinstance(expr, ir.ScalarArg):
            return self.scalars[expr.name]
        if isinstance(expr, ir.Read):
            name = expr.access.array
            if name in self._locals:
                return self._locals[name] or WEAK_FLOAT
            return self.arrays[name]
        if isinstance(expr, ir.Unary):
            return BOOL if expr.op == "not" else self.expr(expr.operand)
        if isinstance(expr, (ir.Compare, ir.BoolOp)):
            return BOOL
        if isinstance(expr, ir.Binary):
            left, right = self.expr(expr.left), self.expr(expr.right)
            if expr.op == "/":
                return true_divide(left, right)
            result = promote(left, right)
            assert result is not None
            if result.kind == "b":  # True + True is 2 in Python and NumPy
                return WEAK_INT if (left.weak and right.weak) else I64
            return result
        if isinstance(expr, ir.Select):
            result = promote(self.expr(expr.then), self.expr(expr.otherwise))
            assert result is not None
            return result
        if isinstance(expr, ir.Call):
            return self._call(expr)
        raise AssertionError(f"unknown expression {expr!r}")

    def _call(self, call: ir.Call) -> VType:
        args = [self.expr(a) for a in call.args]
        func = call.func
        if func in ("min", "max"):
            result = args[0]
            for other in args[1:]:
                result = promote(result, other)
            assert result is not None
            return result.strong() if call.origin == "numpy" else result
        if func == "abs":
            return args[0].strong() if call.origin == "numpy" else args[0]
        if func in _DTYPES and call.origin == "numpy":
            return from_dtype(func)
        if func == "float":
            return WEAK_FLOAT
        if func == "int":
            return WEAK_INT
        if call.origin == "builtin" and func == "pow":
            return self.expr(ir.Binary("**", call.args[0], call.args[1]))
        if call.origin == "math":
            return WEAK_INT if func in ("floor", "ceil") else WEAK_FLOAT
        # numpy ufuncs: float32 stays float32, everything else computes in float64.
        result = args[0]
        for other in args[1:]:
            result = promote(result, other)
        assert result is not None
        if result.kind == "f" and result.bits == 32 and not result.weak:
            return result
        if func == "square" and result.kind != "f":
            return result.strong()
        return F64


def statement_value(stmt: ir.Statement) -> ir.Expr:
    """The value a statement stores: ``target op value`` for augmented assignments."""
    if stmt.op is None:
        return stmt.value
    return ir.Binary(stmt.op, ir.Read(stmt.reads[0]), stmt.value)
