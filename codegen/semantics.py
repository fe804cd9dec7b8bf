"""Python and NumPy semantics of every value operation: one decision per operation, in one place.

For an operation and the types of its operands, :class:`Semantics` says how the generated code
computes it (:class:`Op`): which C helper or operator, the types the operands are converted to
first, the result type, and whether the helper can *fault* (the Python function raises an
exception at that instance, or computes something polypipe refuses to approximate) or set
NumPy's *warning* flag. The C, CUDA and emulation printers only print what these rules decide;
the helpers themselves are :mod:`codegen.semantics_c`.

The rules, checked against CPython 3 and NumPy 2 (NEP 50):

* Python ints (loop variables, sizes, int literals and arguments, ``int()``) are computed in
  int64 with overflow checks: where Python would continue with a big int, the kernel stops and
  says so (never wraps). ``//`` and ``%`` by zero raise ZeroDivisionError, as in Python.
* NumPy integers (array elements) wrap on overflow like NumPy; ``//`` and ``%`` by zero give 0
  and NumPy's "divide by zero" RuntimeWarning; ``INT_MIN // -1`` gives ``INT_MIN``; a negative
  integer power raises ValueError, as NumPy does.
* Floats follow IEEE arithmetic; ``//`` and ``%`` use CPython's (and NumPy's) divmod algorithm,
  so ``1.0 // 0.1`` is 9.0; on Python floats division by zero raises ZeroDivisionError, on NumPy
  floats it gives inf/nan. ``**`` on Python floats raises where Python does (``0.0 ** -1``,
  overflow) and refuses a negative base to a fractional power (a complex number in Python).
* ``math`` functions raise ValueError/OverflowError where CPython's math module does;
  ``np.minimum``/``np.maximum`` propagate NaN; builtin ``min``/``max`` compare like Python and
  return one operand unchanged.
* Converting to an integer (``int()``, ``math.floor``, storing into an integer array) raises
  ValueError for NaN and OverflowError for infinity or a value out of range, as Python does;
  ``np.int32(x)`` of a NumPy float casts as NumPy does on x86 (NaN and out of range give the
  minimum integer).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import product

from polypipe import ir
from polypipe.errors import (CodegenError, OverflowErrorRaised, PythonRaisesError,
                             TypeErrorRaised, UnboundLocalRaised, ValueErrorRaised,
                             ZeroDivisionRaised)

from .value_types import (BOOL, F32, F64, I32, I64, WEAK_BOOL, WEAK_FLOAT, WEAK_INT, VType,
                          promote, true_divide)

# --------------------------------------------------------------------------------------------
# Faults: what the kernel reports when it stops at an instance
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One reason a kernel stops: the error it raises and the text after the instance."""

    code: int
    name: str                    # the C macro is PP_E_<name>
    error: type                  # a PythonRaisesError subclass, or KernelRuntimeError
    text: str


def _faults() -> dict[str, Fault]:
    from polypipe.errors import KernelRuntimeError

    table = [
        ("INT_ZERODIV", ZeroDivisionRaised, "divides a Python int by zero: Python raises "
                                            "ZeroDivisionError('integer division or modulo by zero')"),
        ("FLOAT_DIV_ZERO", ZeroDivisionRaised, "divides a Python float by zero: Python raises "
                                               "ZeroDivisionError('float division by zero')"),
        ("FLOAT_FLOORDIV_ZERO", ZeroDivisionRaised, "floor-divides a Python float by zero: "
                                                    "Python raises ZeroDivisionError"),
        ("FLOAT_MOD_ZERO", ZeroDivisionRaised, "takes a Python float modulo zero: Python raises "
                                               "ZeroDivisionError('float modulo')"),
        ("ZERO_NEG_POW", ZeroDivisionRaised, "raises 0 to a negative power: Python raises "
                                             "ZeroDivisionError"),
        ("POW_OVERFLOW", OverflowErrorRaised, "overflows in a Python float power: Python raises "
                                              "OverflowError('Numerical result out of range')"),
        ("NP_NEG_POW", ValueErrorRaised, "raises a NumPy integer to a negative integer power: "
                                         "NumPy raises ValueError('Integers to negative integer "
                                         "powers are not allowed.')"),
        ("INT_NAN", ValueErrorRaised, "converts NaN to an integer: Python raises "
                                      "ValueError('cannot convert float NaN to integer')"),
        ("INT_INF", OverflowErrorRaised, "converts an infinity to an integer: Python raises "
                                         "OverflowError('cannot convert float infinity to "
                                         "integer')"),
        ("INT32_RANGE", OverflowErrorRaised, "converts a value outside int32's range to int32: "
                                             "NumPy raises OverflowError('Python integer out of "
                                             "bounds for int32')"),
        ("INT64_RANGE", OverflowErrorRaised, "converts a value outside int64's range to int64: "
                                             "Python raises OverflowError('Python int too large "
                                             "to convert to C long')"),
        ("MATH_DOMAIN", ValueErrorRaised, "calls a math function outside its domain: Python "
                                          "raises ValueError('math domain error')"),
        ("MATH_RANGE", OverflowErrorRaised, "overflows in a math function: Python raises "
                                            "OverflowError('math range error')"),
        ("BOOL_NEGATIVE", TypeErrorRaised, "negates or subtracts NumPy booleans: NumPy raises "
                                           "TypeError"),
        ("INT_TO_FLOAT", OverflowErrorRaised, "converts an integer too large for a float: "
                                              "Python raises OverflowError('int too large to "
                                              "convert to float')"),
        ("UNBOUND_LOCAL", UnboundLocalRaised, "reads a local scalar that no earlier instance "
                                              "has assigned: Python raises UnboundLocalError"),
        # Refusals: Python would go on, polypipe cannot follow exactly.
        ("PYINT_OVERFLOW", KernelRuntimeError,
         "computes a Python int outside int64's range; Python would go on with a big integer, "
         "which polypipe does not model (it computes Python ints in int64 and never wraps)"),
        ("DYNAMIC_POW", KernelRuntimeError,
         "raises a Python int to a negative power, which makes it a float in Python; polypipe "
         "typed this power as int because its exponent is not a constant: write "
         "`float(base) ** exponent` or use a constant exponent"),
        ("COMPLEX_POW", KernelRuntimeError,
         "raises a negative Python float to a fractional power, which is a complex number in "
         "Python; polypipe has no complex numbers"),
    ]
    return {name: Fault(code, name, error, text)
            for code, (name, error, text) in enumerate(table, start=1)}


FAULTS = _faults()
FAULTS_BY_CODE = {fault.code: fault for fault in FAULTS.values()}
WARN_DIVIDE = 1      # NumPy's "divide by zero encountered" (integer // or % by zero)


def is_python_raise(fault: Fault) -> bool:
    return issubclass(fault.error, PythonRaisesError)


# --------------------------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """How one operation is computed.

    ``text`` is a C helper's name (called with the converted operands, then ``extra``, then
    ``&pp_err`` when ``fault`` and ``&pp_warn`` when ``warn``), an infix operator (``infix``)
    or a prefix operator (``prefix``); ``""`` with one operand is the converted operand itself.
    ``narrow``: the float result is rounded to this 16-bit type (see :meth:`Semantics._half`).
    """

    text: str
    operands: tuple[VType, ...]
    result: VType
    infix: bool = False
    prefix: bool = False
    fault: bool = False
    warn: bool = False
    extra: tuple[str, ...] = ()
    narrow: VType | None = None


def _wide(vtype: VType) -> VType:
    """float16 and bfloat16 are computed on as float32."""
    return F32 if vtype.is_half else vtype


def _half_format(vtype: VType) -> str:
    return "bf16" if vtype.format == "bf16" else "f16"


def _width(vtype: VType) -> str:
    return f"{'f' if vtype.is_float else 'i'}{vtype.bits}"


# math functions: (C helper, faults). Unary ones follow CPython's math_1 rule: a NaN from a
# non-NaN argument is a domain error, an infinity from a finite one a range error for the
# functions that can overflow and a domain error for the others.
MATH_CAN_OVERFLOW = ("exp", "expm1", "cosh", "sinh")
MATH_NO_FAULT = ("fabs", "atan2", "hypot", "copysign")
MATH_UNARY = ("sqrt", "exp", "log", "log2", "log10", "log1p", "expm1", "tanh", "sinh", "cosh",
              "sin", "cos", "tan", "asin", "acos", "atan", "erf")
_COMPARE_CODES = {"<": 0, "<=": 1, ">": 2, ">=": 3, "==": 4, "!=": 5}


class Semantics:
    """The operation rules, with the types of one program's leaves (a TypeEnv)."""

    def __init__(self, env):
        self.env = env
        self._memo: dict[int, tuple] = {}

    def forget(self) -> None:
        """Drop remembered types (the types of locals changed)."""
        self._memo.clear()

    # -- the types an expression can have ------------------------------------------------------
    def branch_types(self, expr: ir.Expr) -> tuple[VType, ...]:
        cached = self._memo.get(id(expr))
        if cached is not None and cached[0] is expr:
            return cached[1]
        result = self._branch_types(expr)
        if len(result) > 64:
            raise CodegenError("an expression has more than 64 combinations of branch types "
                               "(selects, min and max of operands of different types); "
                               "convert the operands to one type")
        self._memo[id(expr)] = (expr, result)
        return result

    def _branch_types(self, expr: ir.Expr) -> tuple[VType, ...]:
        from .lower_values import VariantIs, VariantRead

        if isinstance(expr, ir.Read) and expr.access.array in self.env.variants:
            return self.env.variants[expr.access.array]
        if isinstance(expr, VariantRead):
            return (self.env.variants[expr.name][expr.index],)
        if isinstance(expr, VariantIs):
            return (WEAK_BOOL,)
        if isinstance(expr, (ir.Const, ir.IterRef, ir.ParamRef, ir.ScalarArg, ir.Read)):
            return (self.env.leaf(expr),)
        if isinstance(expr, ir.Select):
            return _unique(self.branch_types(expr.then) + self.branch_types(expr.otherwise))
        if isinstance(expr, ir.BoolOp):
            return (WEAK_BOOL,)
        if isinstance(expr, ir.Call) and expr.origin == "builtin" and expr.func in ("min", "max"):
            return _unique(sum((self.branch_types(a) for a in expr.args), ()))
        if isinstance(expr, ir.Unary):
            return _unique(tuple(self.unary(expr.op, t).result
                                 for t in self.branch_types(expr.operand)))
        if isinstance(expr, ir.Compare):
            return _unique(tuple(self.compare(expr.op, a, b).result for a, b in product(
                self.branch_types(expr.left), self.branch_types(expr.right))))
        if isinstance(expr, ir.Binary):
            return _unique(tuple(self.binary(expr.op, a, b, expr.right).result
                                 for a, b in product(self.branch_types(expr.left),
                                                     self.branch_types(expr.right))))
        assert isinstance(expr, ir.Call), expr
        combos = product(*(self.branch_types(a) for a in expr.args))
        return _unique(tuple(self.call(expr, list(types)).result for types in combos))

    # -- arithmetic ----------------------------------------------------------------------------
    def binary(self, op: str, left: VType, right: VType, right_expr: ir.Expr | None = None) -> Op:
        if left.is_bool and right.is_bool:
            if left.weak and right.weak:     # True + True is 2 in Python
                left, right = WEAK_INT, WEAK_INT
            else:
                return self._numpy_bools(op)
        joined = promote(left, right)
        if joined is not None and joined.is_half:
            return self._half(joined, self.binary(op, _wide(left), _wide(right), right_expr))
        if op == "/":
            result = true_divide(left, right)
            if left.weak and right.weak:
                return Op("pp_py_div_f64", (WEAK_FLOAT, WEAK_FLOAT), WEAK_FLOAT, fault=True)
            return Op("/", (result, result), result, infix=True)
        result = promote(left, right)
        assert result is not None
        if result.is_float:
            return self._float_binary(op, result)
        assert result.is_int, (op, left, right)
        if result.weak:
            return self._python_int_binary(op, right_expr)
        width = _width(result)
        helper = {"+": "add", "-": "sub", "*": "mul", "//": "floordiv", "%": "mod",
                  "**": "pow"}[op]
        return Op(f"pp_np_{helper}_{width}", (result, result), result, fault=op == "**",
                  warn=op in ("//", "%"))

    @staticmethod
    def _half(result: VType, wide: Op) -> Op:
        """A float16 or bfloat16 operation: the float32 one on the widened operands, its result
        rounded back to ``result``, as NumPy's float16 loops and ml_dtypes' bfloat16 ones
        compute (exact for + - * / and sqrt: 24 bits hold twice 11 and 2 more, so rounding
        twice cannot differ from rounding once). Operands that were Python numbers become
        ``result`` first (NEP 50), so the constant of ``x * 0.1`` is float16's 0.1."""
        def back(vtype: VType) -> VType:
            return result if vtype == F32 else vtype

        return replace(wide, operands=tuple(back(t) for t in wide.operands),
                       result=back(wide.result), narrow=result if wide.result == F32 else None)

    def _float_binary(self, op: str, result: VType) -> Op:
        if op in ("+", "-", "*"):
            return Op(op, (result, result), result, infix=True)
        if result.weak:
            helper = {"//": "pp_py_floordiv_f64", "%": "pp_py_mod_f64", "**": "pp_py_pow_f64"}[op]
            return Op(helper, (result, result), result, fault=True)
        width = _width(result)
        if op == "**":
            return Op(f"pp_np_pow_{width}", (result, result), result)
        helper = {"//": "floordiv", "%": "mod"}[op]
        return Op(f"pp_np_{helper}_{width}", (result, result), result)

    def _python_int_binary(self, op: str, right_expr: ir.Expr | None) -> Op:
        pair = (WEAK_INT, WEAK_INT)
        if op == "**":
            from .lower_values import constant_of

            exponent = constant_of(right_expr) if right_expr is not None else None
            if isinstance(exponent, int) and exponent < 0:   # 2 ** -1 is 0.5
                return Op("pp_py_pow_f64", (WEAK_FLOAT, WEAK_FLOAT), WEAK_FLOAT, fault=True)
            return Op("pp_py_pow_i64", pair, WEAK_INT, fault=True)
        helper = {"+": "add", "-": "sub", "*": "mul", "//": "floordiv", "%": "mod"}[op]
        return Op(f"pp_py_{helper}_i64", pair, WEAK_INT, fault=True)

    def _numpy_bools(self, op: str) -> Op:
        """NumPy's arithmetic between two booleans (one of them a NumPy bool)."""
        if op == "+":
            return Op("||", (BOOL, BOOL), BOOL, infix=True)
        if op == "*":
            return Op("&&", (BOOL, BOOL), BOOL, infix=True)
        if op == "/":
            return Op("/", (F64, F64), F64, infix=True)
        if op == "-":
            return Op("pp_fault2_i64", (BOOL, BOOL), BOOL, fault=True,
                      extra=("PP_E_BOOL_NEGATIVE",))
        raise CodegenError(f"`{op}` between two NumPy booleans (comparisons of array values) "
                           "gives an int8 in NumPy, which polypipe does not model; convert "
                           "one operand with int(...)")

    def unary(self, op: str, operand: VType) -> Op:
        if op == "not":
            return Op("!", (operand,), WEAK_BOOL, prefix=True)
        if operand.is_bool:
            if not operand.weak:
                return Op("pp_fault1_i64", (BOOL,), BOOL, fault=True,
                          extra=("PP_E_BOOL_NEGATIVE",))
            operand = WEAK_INT            # -True is -1, +True is 1
        if op == "+":
            return Op("", (operand,), operand)
        if operand.is_float:
            return Op("-", (operand,), operand, prefix=True)
        if operand.weak:
            return Op("pp_py_neg_i64", (WEAK_INT,), WEAK_INT, fault=True)
        return Op(f"pp_np_neg_{_width(operand)}", (operand,), operand)

    def compare(self, op: str, left: VType, right: VType) -> Op:
        result = WEAK_BOOL if left.weak and right.weak else BOOL
        if left.weak and right.weak and {left.kind, right.kind} == {"i", "f"}:
            # Python compares ints and floats exactly (2**53 + 1 > 2.0**53).
            helper = "pp_cmp_if" if left.is_int else "pp_cmp_fi"
            types = (WEAK_INT, WEAK_FLOAT) if left.is_int else (WEAK_FLOAT, WEAK_INT)
            return Op(helper, types, result, extra=(str(_COMPARE_CODES[op]),))
        if not left.is_float and not right.is_float and (left.weak or right.weak):
            # NumPy compares an integer array value with any Python int exactly.
            common = I64 if not (left.is_bool and right.is_bool) else BOOL
            return Op(op, (common, common), result, infix=True)
        common = promote(left, right)
        return Op(op, (common, common), result, infix=True)

    # -- calls ---------------------------------------------------------------------------------
    def call(self, call: ir.Call, args: list[VType]) -> Op:
        func, origin = call.func, call.origin
        if origin == "builtin":
            return self._builtin(func, args)
        if origin == "math":
            return self._math(func, args)
        if all(a.is_bool for a in args) and func not in ("float32", "float64", "int32",
                                                          "int64"):
            if func in ("min", "max", "fmin", "fmax", "abs", "floor", "ceil"):
                # Booleans stay booleans: minimum is `and`, maximum `or` (as on 0 and 1).
                helper = {"min": "pp_min", "fmin": "pp_min", "max": "pp_max",
                          "fmax": "pp_max"}.get(func, "")
                return Op(helper, tuple(BOOL for _ in args), BOOL)
            raise CodegenError(f"np.{func} of booleans gives NumPy's float16 or int8 results, "
                               "which polypipe does not model; convert the argument with "
                               "int(...) or float(...)")
        return self._numpy(func, args)

    def _builtin(self, func: str, args: list[VType]) -> Op:
        arg = args[0]
        if func in ("min", "max"):
            assert all(a == arg for a in args), "lower_values splits mixed-type min/max"
            return Op(f"pp_{func}", tuple(args), arg)
        if func == "abs":
            if arg.is_bool:
                return Op("", (arg,), arg) if not arg.weak else \
                    Op("", (WEAK_INT,), WEAK_INT)
            if arg.is_float:
                return Op("fabs", (arg,), arg)
            return (Op("pp_py_abs_i64", (WEAK_INT,), WEAK_INT, fault=True) if arg.weak
                    else Op(f"pp_np_abs_{_width(arg)}", (arg,), arg))
        if func == "float":
            return Op("", (WEAK_FLOAT,), WEAK_FLOAT)
        if func == "int":
            if arg.is_float:
                return Op("pp_py_int_f64", (WEAK_FLOAT,), WEAK_INT, fault=True)
            return Op("", (WEAK_INT,), WEAK_INT)
        raise AssertionError(f"builtin {func} is lowered before printing")

    def _math(self, func: str, args: list[VType]) -> Op:
        doubles = tuple(WEAK_FLOAT for _ in args)
        if func in ("floor", "ceil"):
            if args[0].is_float:
                return Op(f"pp_py_{func}_f64", doubles, WEAK_INT, fault=True)
            return Op("", (WEAK_INT,), WEAK_INT)
        if func in MATH_NO_FAULT:
            return Op(func, doubles, WEAK_FLOAT)
        return Op(f"pp_math_{func}", doubles, WEAK_FLOAT, fault=True)

    def _numpy(self, func: str, args: list[VType]) -> Op:
        joined = args[0]
        for other in args[1:]:
            joined = promote(joined, other)
        strong = joined.strong()
        if func in ("float32", "float64", "int32", "int64"):
            return self._numpy_cast(func, args[0])
        if strong.is_half:
            return self._half(strong, self._numpy(func, [_wide(a) for a in args]))
        if func in ("min", "max", "fmin", "fmax"):
            if strong.is_float:
                name = {"min": "minimum", "max": "maximum"}.get(func, func)
                return Op(f"pp_np_{name}_{_width(strong)}", (strong, strong), strong)
            return Op(f"pp_{func[-3:]}", (strong, strong), strong)
        if func in ("abs", "floor", "ceil", "square") and not strong.is_float:
            helper = {"abs": "abs", "square": "square"}.get(func)
            return (Op(f"pp_np_{helper}_{_width(strong)}", (strong,), strong) if helper
                    else Op("", (strong,), strong))
        if func == "pow":
            if strong.is_int:
                return Op(f"pp_np_pow_{_width(strong)}", (strong, strong), strong, fault=True)
            return Op(f"pp_np_pow_{_width(strong)}", (strong, strong), strong)
        if func == "abs":
            return Op("fabs", (strong,), strong)
        if func == "square":
            return Op(f"pp_np_square_{_width(strong)}", (strong,), strong)
        # Floating ufuncs: float32 stays float32, everything else computes in float64.
        result = F32 if strong == F32 else F64
        return Op(func, tuple(result for _ in args), result)

    def _numpy_cast(self, func: str, arg: VType) -> Op:
        target = {"float32": F32, "float64": F64, "int32": I32, "int64": I64}[func]
        if target.is_float or arg.is_bool:
            return Op("", (target,), target)
        if arg.is_float:
            if arg.weak:   # np.int32(3e9) goes through a Python int: OverflowError
                return Op(f"pp_store_{_width(target)}_f64", (WEAK_FLOAT,), target, fault=True)
            return Op(f"pp_np_cast_{_width(target)}_f64", (F64,), target)
        if arg.weak:
            if target == I32:
                return Op("pp_store_i32_i64", (WEAK_INT,), target, fault=True)
            return Op("", (I64,), target)
        if target.bits < arg.bits:        # NumPy casts between integers wrap
            return Op("pp_np_wrap_i32", (I64,), target)
        return Op("", (target,), target)

    # -- conversions -------------------------------------------------------------------------
    def convert(self, have: VType, want: VType, where: str) -> Op | None:
        """How a value of ``have`` becomes ``want``: None (same C type) or an Op.

        ``where`` is ``"operand"`` (NumPy's promotion inside an operation), ``"store"`` (into
        an array element, with Python's checks) or ``"local"`` (into a local's variable,
        of the join of what it holds, lossless or else split by type: ``lower_values``).
        """
        if want.is_half and have.strong() != want:
            return self._to_half(have, want)
        if have.c_name == want.c_name:
            return None
        if where == "store" and want.is_int:
            if have.is_float:
                return Op(f"pp_store_{_width(want)}_f64", (F64,), want, fault=True)
            if want.bits < have.bits and not have.is_bool:
                return Op("pp_store_i32_i64", (I64,), want, fault=True)
        if where == "operand" and have == WEAK_INT and want == I32:
            return Op("pp_store_i32_i64", (I64,), want, fault=True)
        return Op(f"({want.c_name})", (have,), want, prefix=True)

    @staticmethod
    def _to_half(have: VType, want: VType) -> Op:
        """Round a value to float16 or bfloat16 once, from whatever type it has (NumPy and
        ml_dtypes convert int64 and float64 directly, not through float32)."""
        name = f"pp_round_{_half_format(want)}"
        if have.is_bool:
            return Op(f"({want.c_name})", (have,), want, prefix=True)
        if have.is_int:
            return Op(f"{name}_i64", (I64,), want)
        if have.bits == 64:
            return Op(f"{name}_f64", (F64,), want)
        return Op(name, (F32,), want)


def _unique(types: tuple[VType, ...]) -> tuple[VType, ...]:
    return tuple(dict.fromkeys(types))


def check_fault_record(program: ir.Program, record, in_source_order: bool) -> None:
    """Raise the error a kernel's fault record describes; warn as NumPy would.

    ``record`` is the kernel's ``pp_fault`` buffer (layout in :mod:`codegen.value_printer`).
    ``in_source_order``: the kernel ran the source's order (the CPU backend), so it stopped
    where Python stops and the arrays hold what Python had written by then.
    """
    import warnings

    from polypipe.analysis.bounds import describe_instance
    from polypipe.errors import user_stacklevel

    if record[2] & WARN_DIVIDE:
        warnings.warn(f"{program.name}: divide by zero encountered in an integer // or % of "
                      "NumPy values (the result is 0, as in NumPy)", RuntimeWarning,
                      stacklevel=user_stacklevel())
    if not record[0]:
        return
    fault = FAULTS_BY_CODE.get(record[0])
    if fault is None or not 0 <= record[1] < len(program.statements):
        from polypipe.errors import InternalError

        raise InternalError(f"kernel {program.name} returned the unknown fault record "
                            f"{list(record)[:6]}")
    stmt = program.statements[record[1]]
    values = [record[4 + k] for k in range(record[3])]
    where = f" (line {stmt.location.line}: {stmt.source})" if stmt.location else ""
    if not in_source_order:
        after = ("the GPU kernels run instances out of source order, so the arrays' "
                 "contents are unspecified")
    elif is_python_raise(fault):
        after = ("the kernel stopped at this instance, as the Python function does, so the "
                 "arrays hold what Python had written when it raised")
    else:
        after = "the kernel stopped at this instance; the arrays hold every earlier instance's results"
    raise fault.error(f"{describe_instance(stmt, values)}{where} {fault.text}; {after}",
                      stmt.location)


__all__ = ["FAULTS", "Fault", "Op", "Semantics", "WARN_DIVIDE", "check_fault_record",
           "is_python_raise"]
