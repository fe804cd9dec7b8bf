"""isl AST -> C source: a small visitor over isl AST node and expression types.

The generated function has one fixed signature so that one ctypes prototype serves every
kernel::

    void pp_kernel(void **pp_arrays, const int64_t *pp_ints, const double *pp_floats)

``pp_arrays`` holds the array data pointers in argument order; ``pp_ints`` the extents of every
array dimension (array by array) followed by the size parameters and the integer value scalars;
``pp_floats`` the float value scalars. :class:`KernelABI` records that layout for the runner.

User names are mangled (arrays ``a_``, parameters ``p_``, scalars ``s_``, locals ``l_``) so no
Python name can collide with a C keyword, a libm function or a generated iterator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import islpy as isl

from polypipe import ir

from .ast_build import StatementInstance
from .value_types import TypeEnv, VType, statement_value

_OP = isl.ast_expr_op_type
_INFIX = {_OP.add: "+", _OP.sub: "-", _OP.mul: "*", _OP.div: "/", _OP.pdiv_q: "/",
          _OP.pdiv_r: "%", _OP.zdiv_r: "%", _OP.eq: "==", _OP.le: "<=", _OP.lt: "<",
          _OP.ge: ">=", _OP.gt: ">", _OP.and_: "&&", _OP.and_then: "&&", _OP.or_: "||",
          _OP.or_else: "||"}

C_PRELUDE = r"""#include <stdint.h>
#include <tgmath.h>

static inline int64_t pp_floord(int64_t n, int64_t d) {
  int64_t q = n / d;
  return (n % d != 0 && ((n < 0) != (d < 0))) ? q - 1 : q;
}
static inline int64_t pp_imod(int64_t n, int64_t d) {
  int64_t r = n % d;
  return (r != 0 && ((r < 0) != (d < 0))) ? r + d : r;
}
static inline double pp_fmod(double a, double b) {
  double r = fmod(a, b);
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
static inline float pp_fmodf(float a, float b) {
  float r = fmod(a, b);
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
static inline int64_t pp_ipow(int64_t b, int64_t e) {
  int64_t r = 1;
  while (e > 0) { if (e & 1) r *= b; b *= b; e >>= 1; }
  return r;
}
#define pp_min(a, b) ((b) < (a) ? (b) : (a))
#define pp_max(a, b) ((b) > (a) ? (b) : (a))
"""


def c_name(kind: str, name: str) -> str:
    return {"array": "a_", "param": "p_", "scalar": "s_", "local": "l_"}[kind] + name


@dataclass(frozen=True)
class KernelABI:
    """Where each runtime value goes in ``pp_ints`` / ``pp_floats`` / ``pp_arrays``."""

    arrays: tuple[str, ...]                 # argument arrays, in pp_arrays order
    extents: tuple[tuple[str, int], ...]    # (array, dim) in pp_ints order
    params: tuple[str, ...]                 # size parameters, after the extents
    int_scalars: tuple[str, ...]            # integer value scalars, after the parameters
    float_scalars: tuple[str, ...]          # float value scalars, in pp_floats order


def kernel_abi(program: ir.Program, scalar_types: dict[str, VType]) -> KernelABI:
    user_arrays = [a for a in program.arrays
                   if not a.is_local and a.memory == "global" and a.accessed]
    arrays = tuple(a.name for a in user_arrays)
    extents = tuple((a.name, d) for a in user_arrays for d in range(a.rank))
    scalars = [arg.name for arg in program.arguments if arg.kind == "scalar"]
    return KernelABI(arrays, extents, program.parameter_names,
                     tuple(s for s in scalars if not scalar_types[s].is_float),
                     tuple(s for s in scalars if scalar_types[s].is_float))


@dataclass
class CPrinter:
    """Prints one program (specialised to dtypes) as a C translation unit."""

    program: ir.Program
    types: TypeEnv
    abi: KernelABI
    indent_unit: str = "  "
    function_name: str = "pp_kernel"
    index_type: str = "int64_t"    # sizes and loop iterators
    _lines: list[str] = field(default_factory=list)

    # -- whole unit ------------------------------------------------------------------------------
    def translation_unit(self, ast: isl.AstNode) -> str:
        self._lines = []
        self._emit(0, f"void {self.function_name}(void **pp_arrays, const int64_t *pp_ints, "
                      "const double *pp_floats) {")
        for line in self.prologue():
            self._emit(1, line)
        self.node(ast, 1)
        self._emit(0, "}")
        return C_PRELUDE + "\n" + "\n".join(self._lines) + "\n"

    def prologue(self) -> list[str]:
        lines = []
        for slot, name in enumerate(self.abi.arrays):
            ctype = self.types.storage_type(name).c_name
            lines.append(f"{ctype} *{c_name('array', name)} = ({ctype} *)pp_arrays[{slot}];")
        lines += self.value_lines()
        for array in self.program.arrays:
            if array.is_local:
                ctype = self.types.storage_type(array.name).c_name
                lines.append(f"{ctype} {c_name('local', array.name)} = 0;")
        # Silence unused-variable warnings for values only some statements use.
        names = [c_name("array", n) for n in self.abi.arrays]
        names += [self.extent(n, d) for n, d in self.abi.extents]
        names += [c_name("param", n) for n in self.abi.params]
        names += [c_name("scalar", n) for n in self.abi.int_scalars + self.abi.float_scalars]
        names += [c_name("local", a.name) for a in self.program.arrays if a.is_local]
        if names:
            lines.append(" ".join(f"(void){n};" for n in names))
        return lines

    def value_lines(self) -> list[str]:
        """Extents, sizes and scalars, read from where the ABI puts them."""
        lines = []
        slot = 0
        for name, dim in self.abi.extents:
            lines.append(f"const {self.index_type} {self.extent(name, dim)} = "
                         f"{self.size_value(slot, name, dim)};")
            slot += 1
        for name in self.abi.params:
            lines.append(f"const {self.index_type} {c_name('param', name)} = "
                         f"{self.size_value(slot, name)};")
            slot += 1
        for name in self.abi.int_scalars:
            lines.append(f"const int64_t {c_name('scalar', name)} = {self.int_slot(slot)};")
            slot += 1
        for index, name in enumerate(self.abi.float_scalars):
            ctype = self.types.scalars[name].strong().c_name
            lines.append(f"const {ctype} {c_name('scalar', name)} = "
                         f"({ctype}){self.float_slot(index)};")
        return lines

    def int_slot(self, slot: int) -> str:
        return f"pp_ints[{slot}]"

    def size_value(self, slot: int, name: str, dim: int | None = None) -> str:
        """An array extent (``dim`` given) or size parameter: read from its run-time slot."""
        return self.int_slot(slot)

    def float_slot(self, index: int) -> str:
        return f"pp_floats[{index}]"

    @staticmethod
    def extent(array: str, dim: int) -> str:
        return f"a_{array}_d{dim}"

    def _emit(self, depth: int, text: str) -> None:
        self._lines.append(self.indent_unit * depth + text)

    # -- AST nodes ----------------------------------------------------------------------------
    def node(self, node: isl.AstNode, depth: int) -> None:
        kind = node.get_type()
        if kind == isl.ast_node_type.block:
            children = node.block_get_children()
            for index in range(children.n_ast_node()):
                self.node(children.get_at(index), depth)
        elif kind == isl.ast_node_type.for_:
            self.for_node(node, depth)
        elif kind == isl.ast_node_type.if_:
            self.if_node(node, depth)
        elif kind == isl.ast_node_type.user:
            self.user_node(node, depth)
        elif kind == isl.ast_node_type.mark:
            self.mark_node(node, depth)
        else:
            raise AssertionError(f"unexpected AST node type {kind}")

    def for_node(self, node: isl.AstNode, depth: int) -> None:
        iterator = self.expr(node.for_get_iterator())
        init = self.expr(node.for_get_init())
        if node.for_is_degenerate():
            self._emit(depth, "{")
            self._emit(depth + 1, f"const {self.index_type} {iterator} = {init};")
            self.node(node.for_get_body(), depth + 1)
            self._emit(depth, "}")
            return
        cond = self.expr(node.for_get_cond())
        inc = self.expr(node.for_get_inc())
        self._emit(depth, f"for ({self.index_type} {iterator} = {init}; {cond}; "
                          f"{iterator} += {inc}) {{")
        self.node(node.for_get_body(), depth + 1)
        self._emit(depth, "}")

    def if_node(self, node: isl.AstNode, depth: int) -> None:
        self._emit(depth, f"if ({self.expr(node.if_get_cond())}) {{")
        self.node(node.if_get_then_node(), depth + 1)
        if node.if_has_else_node():
            self._emit(depth, "} else {")
            self.node(node.if_get_else_node(), depth + 1)
        self._emit(depth, "}")

    def mark_node(self, node: isl.AstNode, depth: int) -> None:
        self.node(node.mark_get_node(), depth)

    def user_node(self, node: isl.AstNode, depth: int) -> None:
        instance: StatementInstance = node.get_annotation().user
        self._emit(depth, self.statement(instance) + ";")

    # -- isl AST expressions (integer index arithmetic) ----------------------------------------
    def expr(self, expr: isl.AstExpr) -> str:
        kind = expr.get_type()
        if kind == isl.ast_expr_type.id:
            return self.identifier(expr.get_id().get_name())
        if kind == isl.ast_expr_type.int:
            return str(expr.get_val().to_python())
        op = expr.get_op_type()
        args = [expr.get_op_arg(i) for i in range(expr.get_op_n_arg())]
        if op in _INFIX:
            return f"({self.expr(args[0])} {_INFIX[op]} {self.expr(args[1])})"
        if op == _OP.minus:
            return f"(-{self.expr(args[0])})"
        if op in (_OP.min, _OP.max):
            macro = "pp_min" if op == _OP.min else "pp_max"
            text = self.expr(args[0])
            for arg in args[1:]:
                text = f"{macro}({text}, {self.expr(arg)})"
            return text
        if op == _OP.fdiv_q:
            return f"pp_floord({self.expr(args[0])}, {self.expr(args[1])})"
        if op in (_OP.cond, _OP.select):
            return f"({self.expr(args[0])} ? {self.expr(args[1])} : {self.expr(args[2])})"
        if op == _OP.access:
            return self.access(args[0].get_id().get_name(), [self.expr(a) for a in args[1:]])
        raise AssertionError(f"unexpected isl AST operation {op}")

    def identifier(self, name: str) -> str:
        if name in self.program.parameter_names:
            return c_name("param", name)
        return name  # a generated iterator

    def access(self, array: str, indices: list[str]) -> str:
        """An element of a row-major array, or a local scalar."""
        info = self.program.array(array)
        if info.is_local:
            return c_name("local", array)
        return f"{c_name('array', array)}[{self.linear_index(info, indices)}]"

    def linear_index(self, info: ir.Array, indices: list[str]) -> str:
        """Row-major offset; buffers have constant extents, user arrays run-time ones."""
        if not indices:
            return "0"
        linear = indices[0]
        for dim, index in enumerate(indices[1:], start=1):
            extent = (str(info.extents[dim]) if info.extents is not None
                      else self.extent(info.name, dim))
            linear = f"({linear} * {extent} + {index})"
        return linear

    # -- statements and their values -----------------------------------------------------------
    def statement(self, instance: StatementInstance) -> str:
        stmt = instance.statement
        target = self.expr(instance.access_exprs[id(stmt.target)])
        storage = self.types.storage_type(stmt.target.array)
        value = self.value(statement_value(stmt), instance, storage)
        return f"{target} = {value}"

    def value(self, expr: ir.Expr, instance: StatementInstance, want: VType | None = None) -> str:
        """C text of a value expression, converted to ``want`` when given."""
        have = self.types.expr(expr)
        text = self._value(expr, instance, have)
        if want is not None and want.c_name != have.c_name:
            return f"(({want.c_name}){text})"
        return text

    def _value(self, expr: ir.Expr, instance: StatementInstance, have: VType) -> str:
        value = self.value
        if isinstance(expr, ir.Const):
            return _literal(expr.value, have)
        if isinstance(expr, ir.IterRef):
            return f"((int64_t){self.expr(instance.iterator_exprs[expr.name])})"
        if isinstance(expr, ir.ParamRef):
            return c_name("param", expr.name)
        if isinstance(expr, ir.ScalarArg):
            return c_name("scalar", expr.name)
        if isinstance(expr, ir.Read):
            return self.expr(instance.access_exprs[id(expr.access)])
        if isinstance(expr, ir.Unary):
            if expr.op == "not":
                return f"(!{value(expr.operand, instance)})"
            return f"({expr.op}{value(expr.operand, instance, have)})"
        if isinstance(expr, ir.Compare):
            common = self.types.expr(ir.Binary("+", expr.left, expr.right))
            return (f"({value(expr.left, instance, common)} {expr.op} "
                    f"{value(expr.right, instance, common)})")
        if isinstance(expr, ir.BoolOp):
            joiner = " && " if expr.op == "and" else " || "
            return "(" + joiner.join(value(o, instance) for o in expr.operands) + ")"
        if isinstance(expr, ir.Select):
            return (f"({value(expr.cond, instance)} ? {value(expr.then, instance, have)} : "
                    f"{value(expr.otherwise, instance, have)})")
        if isinstance(expr, ir.Binary):
            return self._binary(expr, instance, have)
        if isinstance(expr, ir.Call):
            return self._call(expr, instance, have)
        raise AssertionError(f"unknown expression {expr!r}")

    def _binary(self, expr: ir.Binary, instance: StatementInstance, have: VType) -> str:
        left = self.value(expr.left, instance, have)
        right = self.value(expr.right, instance, have)
        op = expr.op
        if op in ("+", "-", "*", "/"):
            return f"({left} {op} {right})"
        if op == "//":
            return f"pp_floord({left}, {right})" if not have.is_float else \
                f"floor({left} / {right})"
        if op == "%":
            if not have.is_float:
                return f"pp_imod({left}, {right})"
            return f"pp_fmod{'f' if have.bits == 32 else ''}({left}, {right})"
        assert op == "**"
        return f"pow({left}, {right})" if have.is_float else f"pp_ipow({left}, {right})"

    def _call(self, call: ir.Call, instance: StatementInstance, have: VType) -> str:
        func = call.func
        if func in ("min", "max"):
            text = self.value(call.args[0], instance, have)
            for arg in call.args[1:]:
                text = f"pp_{func}({text}, {self.value(arg, instance, have)})"
            return text
        if func in ("float", "int", "float32", "float64", "int32", "int64"):
            return f"(({have.c_name}){self.value(call.args[0], instance)})"
        if func == "abs":
            arg = self.value(call.args[0], instance, have)
            return f"fabs({arg})" if have.is_float else f"({arg} < 0 ? -{arg} : {arg})"
        if func == "square":
            arg = self.value(call.args[0], instance, have)
            return f"({arg} * {arg})"
        if func == "pow" and not have.is_float:
            return (f"pp_ipow({self.value(call.args[0], instance, have)}, "
                    f"{self.value(call.args[1], instance, have)})")
        if func in ("floor", "ceil") and not have.is_float:  # math.floor returns an int
            return f"((int64_t){func}((double){self.value(call.args[0], instance)}))"
        # libm through <tgmath.h>: the argument type picks the float or double variant.
        compute = have if have.is_float else VType("f", 64)
        args = ", ".join(self.value(a, instance, compute) for a in call.args)
        return f"{func}({args})"


def _literal(value, vtype: VType) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return f"INT64_C({value})" if abs(value) > 2**31 - 1 else str(value)
    text = repr(float(value))
    if text in ("inf", "-inf", "nan"):
        return {"inf": "INFINITY", "-inf": "(-INFINITY)", "nan": "NAN"}[text]
    if "e" not in text and "." not in text:
        text += ".0"
    return text
