"""isl AST -> C source: a small visitor over isl AST node and expression types.

The generated function has one fixed signature so that one ctypes prototype serves every
kernel::

    void pp_kernel(void **pp_arrays, const int64_t *pp_ints, const double *pp_floats,
                   int64_t *pp_fault)

``pp_arrays`` holds the array data pointers in argument order; ``pp_ints`` the extents of every
array dimension (array by array) followed by the size parameters and the integer value scalars;
``pp_floats`` the float value scalars. :class:`KernelABI` records that layout for the runner.
``pp_fault`` receives the instance at which the kernel stopped because Python raises there, and
NumPy's warning flags (layout in :mod:`codegen.value_printer`).

User names are mangled (arrays ``a_``, parameters ``p_``, scalars ``s_``, locals ``l_``) so no
Python name can collide with a C keyword, a libm function or a generated iterator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import islpy as isl

from polypipe import ir

from .ast_build import StatementInstance
from .semantics_c import semantics_runtime
from .value_printer import ValuePrinter, c_name
from .value_types import TypeEnv, VType

_OP = isl.ast_expr_op_type
_INFIX = {_OP.add: "+", _OP.sub: "-", _OP.mul: "*", _OP.div: "/", _OP.pdiv_q: "/",
          _OP.pdiv_r: "%", _OP.zdiv_r: "%", _OP.eq: "==", _OP.le: "<=", _OP.lt: "<",
          _OP.ge: ">=", _OP.gt: ">", _OP.and_: "&&", _OP.and_then: "&&", _OP.or_: "||",
          _OP.or_else: "||"}

# Index arithmetic of the isl AST (floord of loop bounds) and the semantics helpers of
# values (codegen.semantics_c), with the headers both need.
C_PRELUDE = (r"""#include <stdint.h>
#include <tgmath.h>

static inline int64_t pp_floord(int64_t n, int64_t d) {
  int64_t q = n / d;
  return (n % d != 0 && ((n < 0) != (d < 0))) ? q - 1 : q;
}
#define pp_min(a, b) ((b) < (a) ? (b) : (a))
#define pp_max(a, b) ((b) > (a) ? (b) : (a))
""" + semantics_runtime("static inline"))


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
class CPrinter(ValuePrinter):
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
                      "const double *pp_floats, int64_t *pp_fault) {")
        for line in self.prologue() + self.fault_prologue():
            self._emit(1, line)
        self.node(ast, 1)
        self._emit(0, "pp_done:")
        self._emit(1, "pp_fault[2] = pp_warn;")
        self._emit(0, "}")
        return C_PRELUDE + "\n" + "\n".join(self._lines) + "\n"

    @staticmethod
    def fault_prologue() -> list[str]:
        """The fault and warning flags the semantics helpers write (see value_printer)."""
        return ["int64_t pp_err = 0, pp_warn = 0; (void)pp_err; (void)pp_warn;"]

    def prologue(self) -> list[str]:
        lines = []
        for slot, name in enumerate(self.abi.arrays):
            ctype = self.types.storage_type(name).storage_c_name
            lines.append(f"{ctype} *{c_name('array', name)} = ({ctype} *)pp_arrays[{slot}];")
        lines += self.value_lines()
        for array in self.program.arrays:
            if array.is_local:
                lines += self.local_declarations(array.name)
        # Silence unused-variable warnings for values only some statements use.
        names = [c_name("array", n) for n in self.abi.arrays]
        names += [self.extent(n, d) for n, d in self.abi.extents]
        names += [c_name("param", n) for n in self.abi.params]
        names += [c_name("scalar", n) for n in self.abi.int_scalars + self.abi.float_scalars]
        names += [n for a in self.program.arrays if a.is_local for n in self.local_names(a.name)]
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
        # ``n_`` is no prefix of a user name (see c_name), and the last ``_`` separates the
        # dimension: array ``A_0``'s dimension 0 is ``n_A_0_0``, array ``A``'s is ``n_A_0``.
        return f"n_{array}_{dim}"

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
        self.emit_bound(instance, depth, [self.statement(instance) + ";"])

    def emit_bound(self, instance: StatementInstance, depth: int, lines: list[str]) -> None:
        """``lines`` after the instance's bound locals, in a scope of their own."""
        if not instance.bindings:
            for line in lines:
                self._emit(depth, line)
            return
        self._emit(depth, "{")
        for name, value in instance.bindings:
            self._emit(depth + 1, f"const {self.index_type} {name} = {self.expr(value)};")
        for line in lines:
            self._emit(depth + 1, line)
        self._emit(depth, "}")

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
