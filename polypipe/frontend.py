"""Python source -> :class:`~polypipe.ir.Program`.

The function's source is read with :mod:`inspect` and parsed with :mod:`ast`; nothing is traced
or executed. The accepted subset is documented in README.md, "The subset"; everything else raises
:class:`FrontendError` at the offending node.

Two passes: :class:`_NameClassifier` decides what every name is (array, size parameter, value
scalar, local scalar, loop variable) from the whole body, then :class:`_Builder` walks the body
in source order, building each statement's domain (loops and affine conditions as isl sets),
its accesses and its value expression, and the source-order schedule tree.
"""

from __future__ import annotations

import ast
import builtins
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import islpy as isl
import numpy

from . import ir
from .errors import FrontendError, deep_nesting
from .frontend_names import (_is_range_call, _is_shape_expr, _NameClassifier, _Names, _Source,
                             flatten_subscript, is_shape_binding, read_source, safe_names,
                             check_shadowing)

# Functions accepted in value expressions: source name -> canonical name.
MATH_FUNCTIONS = {name: name for name in (
    "sqrt", "exp", "log", "log2", "log10", "log1p", "expm1", "pow", "tanh", "sinh", "cosh",
    "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "fabs", "floor", "ceil", "hypot",
    "erf", "copysign", "fmod")}
NUMPY_FUNCTIONS = {
    **{name: name for name in (
        "sqrt", "exp", "log", "log2", "log10", "log1p", "expm1", "tanh", "sinh", "cosh", "sin",
        "cos", "tan", "floor", "ceil", "hypot", "fabs", "fmax", "fmin", "square", "copysign")},
    "power": "pow", "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arctan2": "atan2",
    "abs": "abs", "absolute": "abs", "maximum": "max", "minimum": "min",
    # Scalar constructors act as casts: np.float32(x) is x rounded to float32.
    "float32": "float32", "float64": "float64", "int32": "int32", "int64": "int64",
}
BUILTIN_FUNCTIONS = {"min": "min", "max": "max", "abs": "abs", "float": "float", "int": "int",
                     "pow": "pow"}
FUNCTION_ARITY = {"min": (2, None), "max": (2, None), "atan2": (2, 2), "pow": (2, 2),
                  "hypot": (2, 2), "copysign": (2, 2), "fmax": (2, 2), "fmin": (2, 2),
                  "fmod": (2, 2)}
MODULE_CONSTANTS = {"pi": math.pi, "e": math.e, "inf": math.inf}

_AUG_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
            ast.Mod: "%", ast.Pow: "**"}
_CMP_OPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
            ast.NotEq: "!="}
_STATEMENT_NAMES = {
    ast.While: "a while loop", ast.With: "a with block", ast.Try: "a try block",
    ast.FunctionDef: "a nested function", ast.ClassDef: "a class definition",
    ast.Import: "an import", ast.ImportFrom: "an import", ast.Global: "a global declaration",
    ast.Nonlocal: "a nonlocal declaration", ast.Break: "break", ast.Continue: "continue",
    ast.Delete: "del", ast.Raise: "raise", ast.Assert: "assert", ast.AsyncFor: "async for",
    ast.AsyncWith: "async with", ast.AsyncFunctionDef: "a nested function",
}
ALLOWED_SUMMARY = ("allowed are `for v in range(...)` loops, affine if/elif/else, and "
                   "assignments or augmented assignments to array elements or local scalars")


# --------------------------------------------------------------------------------------------
# Pass 2: statements, domains, accesses, schedule
# --------------------------------------------------------------------------------------------


@dataclass
class _Loop:
    var: str
    step: int
    ident: str = ""


@dataclass
class _Scope:
    """Where the builder is: enclosing loops and the set of iterator values that reach here."""

    loops: list[_Loop]
    condition: isl.Set  # over the unnamed tuple [loop vars...]

    @property
    def iterators(self) -> list[str]:
        return [loop.var for loop in self.loops]


@dataclass
class _ScheduleNode:
    """Source-order structure: a statement leaf or a loop with children."""

    statement: ir.Statement | None = None
    loop: _Loop | None = None
    children: list["_ScheduleNode"] = field(default_factory=list)

    def statements(self) -> list[ir.Statement]:
        if self.statement is not None:
            return [self.statement]
        return [s for child in self.children for s in child.statements()]


class _Builder:
    def __init__(self, func: ast.FunctionDef, source: _Source, names: _Names, globals_: dict):
        self.func = func
        self.source = source
        self.names = names
        self.globals = globals_
        self.params = names.parameters
        self.param_prefix = f"[{', '.join(self.params)}] -> " if self.params else ""
        self.statements: list[ir.Statement] = []
        self.loop_count = 0

    def error(self, node: ast.AST, message: str) -> FrontendError:
        return FrontendError(message, self.source.location(node))

    # -- isl helpers -------------------------------------------------------------------------
    def _isl_set(self, iterators: Sequence[str], constraint: str, node: ast.AST,
                 tuple_name: str = "") -> isl.Set:
        text = f"{self.param_prefix}{{ {tuple_name}[{', '.join(iterators)}] : {constraint} }}"
        try:
            return isl.Set(text)
        except isl.Error:
            raise self.error(node, f"cannot represent this as an affine constraint: "
                                   f"{constraint}") from None

    def _universe(self, iterators: Sequence[str]) -> isl.Set:
        return isl.Set(f"{self.param_prefix}{{ [{', '.join(iterators)}] }}")

    # -- walking -----------------------------------------------------------------------------
    def build(self) -> list[_ScheduleNode]:
        top = _Scope(loops=[], condition=self._universe([]))
        return self._body(self.func.body, top, top_level=True)

    def _body(self, body: list[ast.stmt], scope: _Scope, top_level: bool = False
              ) -> list[_ScheduleNode]:
        nodes: list[_ScheduleNode] = []
        for index, stmt in enumerate(body):
            if top_level and _is_docstring(stmt, index):
                continue
            nodes.extend(self._statement(stmt, scope, top_level))
        return nodes

    def _statement(self, stmt: ast.stmt, scope: _Scope, top_level: bool) -> list[_ScheduleNode]:
        if isinstance(stmt, ast.Pass):
            return []
        if isinstance(stmt, ast.Return):
            if stmt.value is None or (isinstance(stmt.value, ast.Constant)
                                      and stmt.value.value is None):
                if top_level and stmt is self.func.body[-1]:
                    return []
                raise self.error(stmt, "`return` is only allowed as the last statement")
            raise self.error(stmt, "a kernel cannot return a value; it writes its results into "
                                   "array arguments")
        if isinstance(stmt, ast.For):
            return self._for(stmt, scope)
        if isinstance(stmt, ast.If):
            return self._if(stmt, scope)
        if isinstance(stmt, ast.Assign) and self._is_binding(stmt):
            return []
        if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            return [_ScheduleNode(statement=self._assignment(stmt, scope))]
        if isinstance(stmt, ast.Expr):
            if isinstance(stmt.value, ast.Call):
                raise self.error(stmt, "a function call as a statement is not supported; "
                                       + ALLOWED_SUMMARY)
            raise self.error(stmt, "an expression statement has no effect and is not "
                                   "supported; " + ALLOWED_SUMMARY)
        what = _STATEMENT_NAMES.get(type(stmt), f"`{type(stmt).__name__}`")
        raise self.error(stmt, f"{what} is not supported in a kernel; {ALLOWED_SUMMARY}")

    def _is_binding(self, stmt: ast.Assign) -> bool:
        return any(stmt is top for top in self.func.body) and is_shape_binding(stmt)

    # -- loops -------------------------------------------------------------------------------
    def _for(self, node: ast.For, scope: _Scope) -> list[_ScheduleNode]:
        if node.orelse:
            raise self.error(node.orelse[0], "`for ... else` is not supported")
        if not isinstance(node.target, ast.Name):
            raise self.error(node.target, "the loop variable must be a single name")
        var = node.target.id
        if var in scope.iterators:
            raise self.error(node.target, f"loop variable `{var}` is already the variable of "
                                          "an enclosing loop")
        if var in self.names.locals:
            raise self.error(node.target, f"`{var}` is both a loop variable and a local scalar")
        if not _is_range_call(node.iter) or "range" in self.globals and self.globals[
                "range"] is not builtins.range:
            raise self.error(node.iter, "loops must iterate over `range(...)`")
        call = node.iter
        if call.keywords or not 1 <= len(call.args) <= 3:
            raise self.error(call, "range() takes one to three positional arguments")
        if any(isinstance(a, ast.Starred) for a in call.args):
            raise self.error(call, "range(*...) is not supported")
        outer = scope.iterators
        if len(call.args) == 1:
            lower, upper, step = "0", self._affine(call.args[0], outer), 1
        else:
            lower = self._affine(call.args[0], outer)
            upper = self._affine(call.args[1], outer)
            step = 1
            if len(call.args) == 3:
                step = self._constant_int(call.args[2], "the step of range()")
                if step == 0:
                    raise self.error(call.args[2], "range() step must not be zero")
        inner = outer + [var]
        if step > 0:
            constraint = f"{lower} <= {var} < {upper}"
            stride = f"({var} - ({lower})) mod {step} = 0" if step != 1 else ""
        else:
            constraint = f"{upper} < {var} <= {lower}"
            stride = f"(({lower}) - {var}) mod {-step} = 0" if step != -1 else ""
        if stride:
            constraint = f"{constraint} and {stride}"
        loop_set = self._isl_set(inner, constraint, call)
        extended = scope.condition.add_dims(isl.dim_type.set, 1).set_dim_name(
            isl.dim_type.set, len(outer), var)
        loop = _Loop(var, step, f"L{self.loop_count}")
        self.loop_count += 1
        inner_scope = _Scope(loops=scope.loops + [loop],
                             condition=extended.intersect(loop_set))
        children = self._body(node.body, inner_scope)
        if not children:
            return []
        return [_ScheduleNode(loop=loop, children=children)]

    def _constant_int(self, node: ast.AST, what: str) -> int:
        value = self._constant_value(node)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(node, f"{what} must be an integer constant")
        return value

    def _constant_value(self, node: ast.AST):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self._constant_value(node.operand)
            if value is not None:
                return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Name) and node.id in self.names.constants:
            return self.names.constants[node.id]
        return None

    # -- affine expressions (bounds, subscripts, conditions) --------------------------------
    def _affine(self, node: ast.AST, iterators: Sequence[str]) -> str:
        """isl text of a quasi-affine expression, or a FrontendError saying why it is not."""
        text, _ = self._affine_term(node, iterators)
        return text

    def _affine_term(self, node: ast.AST, iterators: Sequence[str]) -> tuple[str, int | None]:
        """(isl text, constant value if the expression is an integer constant)."""
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int):
                raise self.error(node, f"{node.value!r} is not an integer; loop bounds, "
                                       "subscripts and conditions must be affine integer "
                                       "expressions")
            return str(node.value), node.value
        if isinstance(node, ast.Name):
            return self._affine_name(node, iterators)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            text, value = self._affine_term(node.operand, iterators)
            if isinstance(node.op, ast.UAdd):
                return text, value
            return f"-({text})", (-value if value is not None else None)
        if isinstance(node, ast.BinOp):
            return self._affine_binop(node, iterators)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("min", "max") and not node.keywords:
            if len(node.args) < 2:
                raise self.error(node, f"{node.func.id}() needs at least two arguments")
            terms = [self._affine_term(a, iterators) for a in node.args]
            if all(v is not None for _, v in terms):
                value = (min if node.func.id == "min" else max)(v for _, v in terms)
                return str(value), value
            text = terms[0][0]
            for other, _ in terms[1:]:
                text = f"{node.func.id}({text}, {other})"
            return text, None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "int" \
                and len(node.args) == 1:
            return self._affine_term(node.args[0], iterators)
        if isinstance(node, ast.Subscript) or _is_shape_expr(node):
            raise self.error(node, "array values and inline shapes cannot appear in loop bounds, "
                                   "subscripts or conditions; bind sizes first "
                                   "(`N, M = A.shape`) and use a select (`x if c else y`) for "
                                   "data-dependent choices")
        raise self.error(node, "not an affine expression: bounds, subscripts and conditions may "
                               "use +, -, * by a constant, // and % by a constant, min and max "
                               "of loop variables and size parameters")

    def _affine_name(self, node: ast.Name, iterators: Sequence[str]) -> tuple[str, int | None]:
        name = node.id
        if name in iterators or name in self.params:
            return name, None
        if name in self.names.constants:
            value = self.names.constants[name]
            return str(value), value
        if name in self.names.locals:
            raise self.error(node, f"local variable `{name}` cannot appear in a loop bound, "
                                   "subscript or condition; these must be affine in loop "
                                   "variables and size parameters")
        if name in self.names.loop_vars:
            raise self.error(node, f"loop variable `{name}` is used outside its loop")
        if name in self.names.arrays:
            raise self.error(node, f"array `{name}` cannot appear in a loop bound, subscript "
                                   "or condition")
        raise self.error(node, f"`{name}` is not a loop variable or a size parameter")

    def _affine_binop(self, node: ast.BinOp, iterators: Sequence[str]) -> tuple[str, int | None]:
        left, lvalue = self._affine_term(node.left, iterators)
        right, rvalue = self._affine_term(node.right, iterators)
        both = lvalue is not None and rvalue is not None
        op = node.op
        if isinstance(op, ast.Add):
            return (str(lvalue + rvalue), lvalue + rvalue) if both else (f"({left}) + ({right})", None)
        if isinstance(op, ast.Sub):
            return (str(lvalue - rvalue), lvalue - rvalue) if both else (f"({left}) - ({right})", None)
        if isinstance(op, ast.Mult):
            if both:
                return str(lvalue * rvalue), lvalue * rvalue
            if lvalue is None and rvalue is None:
                raise self.error(node, "the product of two non-constant terms is not affine; "
                                       "one factor must be an integer constant")
            factor, term = (lvalue, right) if lvalue is not None else (rvalue, left)
            return f"{factor} * ({term})", None
        if isinstance(op, (ast.FloorDiv, ast.Mod)):
            symbol = "//" if isinstance(op, ast.FloorDiv) else "%"
            if rvalue is None:
                raise self.error(node.right, f"`{symbol}` needs an integer constant on the "
                                             "right in bounds, subscripts and conditions")
            if rvalue == 0:
                raise self.error(node.right, "division by zero")
            if both:
                value = lvalue // rvalue if symbol == "//" else lvalue % rvalue
                return str(value), value
            if symbol == "//":
                if rvalue > 0:
                    return f"floor(({left})/{rvalue})", None
                return f"floor((-({left}))/{-rvalue})", None
            if rvalue > 0:
                return f"(({left}) mod {rvalue})", None
            return f"(-((-({left})) mod {-rvalue}))", None
        raise self.error(node, "not an affine operator: bounds, subscripts and conditions may "
                               "use +, -, * by a constant, // and % by a constant")

    def _condition(self, node: ast.AST, iterators: Sequence[str]) -> isl.Set:
        """The set of iterator values where an affine condition holds."""
        if isinstance(node, ast.BoolOp):
            parts = [self._condition(v, iterators) for v in node.values]
            result = parts[0]
            for part in parts[1:]:
                result = result.intersect(part) if isinstance(node.op, ast.And) else result.union(part)
            return result
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return self._condition(node.operand, iterators).complement()
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            universe = self._universe(iterators)
            return universe if node.value else universe.subtract(universe)
        if isinstance(node, ast.Compare):
            result = self._universe(iterators)
            left = node.left
            for op, right in zip(node.ops, node.comparators):
                symbol = _CMP_OPS.get(type(op))
                if symbol is None:
                    raise self.error(node, "only <, <=, >, >=, == and != are allowed in "
                                           "conditions")
                lhs = self._affine(left, iterators)
                rhs = self._affine(right, iterators)
                if symbol == "!=":
                    part = self._isl_set(iterators, f"{lhs} < {rhs}", node).union(
                        self._isl_set(iterators, f"{lhs} > {rhs}", node))
                else:
                    part = self._isl_set(iterators, f"{lhs} {'=' if symbol == '==' else symbol} "
                                                    f"{rhs}", node)
                result = result.intersect(part)
                left = right
            return result
        raise self.error(node, "an `if` condition must be an affine comparison of loop variables "
                               "and size parameters (combined with and/or/not); for a "
                               "data-dependent choice use a select: `x if cond else y`")

    def _if(self, node: ast.If, scope: _Scope) -> list[_ScheduleNode]:
        holds = self._condition(node.test, scope.iterators)
        then_scope = _Scope(scope.loops, scope.condition.intersect(holds))
        else_scope = _Scope(scope.loops, scope.condition.intersect(holds.complement()))
        return self._body(node.body, then_scope) + self._body(node.orelse, else_scope)

    # -- statements ----------------------------------------------------------------------------
    def _assignment(self, node: ast.stmt, scope: _Scope) -> ir.Statement:
        if isinstance(node, ast.Assign):
            if len(node.targets) != 1:
                raise self.error(node, "chained assignment (`a = b = ...`) is not supported; "
                                       "write one assignment per target")
            target_node, value_node, op = node.targets[0], node.value, None
        elif isinstance(node, ast.AnnAssign):
            if node.value is None:
                raise self.error(node, "an annotation without a value is not supported")
            target_node, value_node, op = node.target, node.value, None
        else:
            assert isinstance(node, ast.AugAssign)
            op = _AUG_OPS.get(type(node.op))
            if op is None:
                raise self.error(node, "only +=, -=, *=, /=, //=, %= and **= are supported")
            target_node, value_node = node.target, node.value
        name = f"S{len(self.statements)}"
        iterators = scope.iterators
        domain = scope.condition.set_tuple_name(name)
        if isinstance(target_node, ast.Tuple):
            raise self.error(target_node, "tuple assignment is not supported; assign one target "
                                          "per statement")
        reads: list[ir.Access] = []
        self._statement_domain = domain
        target = self._target_access(target_node, name, iterators, domain)
        if op is not None:
            reads.append(ir.Access(target.array, target.indices, target.relation, False,
                                   target.location))
        value = self._value(value_node, name, iterators, domain, reads, in_condition=False)
        statement = ir.Statement(name=name, iterators=tuple(iterators), domain=domain,
                                 target=target, op=op, value=value, reads=tuple(reads),
                                 location=self.source.location(node),
                                 source=self.source.segment(node),
                                 loop_ids=tuple(loop.ident for loop in scope.loops))
        self.statements.append(statement)
        return statement

    def _target_access(self, node: ast.AST, stmt: str, iterators: Sequence[str],
                       domain: isl.Set) -> ir.Access:
        if isinstance(node, ast.Subscript):
            return self._array_access(node, stmt, iterators, domain, is_write=True)
        if isinstance(node, ast.Name):
            name = node.id
            if name in self.names.locals:
                return self._access(name, [], stmt, iterators, domain, True, node)
            if name in self.names.arguments:
                raise self.error(node, f"assigning to argument `{name}` only rebinds the name; "
                                       "write to an element instead")
            raise self.error(node, f"cannot assign to `{name}`")
        if isinstance(node, ast.Attribute):
            raise self.error(node, "assigning to an attribute is not supported")
        raise self.error(node, "the target of an assignment must be an array element or a "
                               "local scalar")

    def _array_access(self, node: ast.Subscript, stmt: str, iterators: Sequence[str],
                      domain: isl.Set, is_write: bool) -> ir.Access:
        base, indices = flatten_subscript(node)
        if not isinstance(base, ast.Name) or base.id not in self.names.arrays:
            raise self.error(node, "only arrays passed as arguments can be subscripted")
        for index in indices:
            if isinstance(index, ast.Slice):
                raise self.error(index, "slices are not supported; write a loop over the "
                                        "elements")
            if isinstance(index, ast.Starred):
                raise self.error(index, "starred subscripts are not supported")
        texts = [self._affine(index, iterators) for index in indices]
        return self._access(base.id, texts, stmt, iterators, domain, is_write, node)

    def _access(self, array: str, indices: list[str], stmt: str, iterators: Sequence[str],
                domain: isl.Set, is_write: bool, node: ast.AST) -> ir.Access:
        text = (f"{self.param_prefix}{{ {stmt}[{', '.join(iterators)}] -> "
                f"{array}[{', '.join(indices)}] }}")
        try:
            function = isl.Map(text)
        except isl.Error:
            raise self.error(node, "cannot represent this subscript as an affine access") from None
        full = function.intersect_domain(self._statement_domain)
        relation = function.intersect_domain(domain)
        guarded = not relation.is_equal(full)
        return ir.Access(array, tuple(indices), relation, is_write, self.source.location(node),
                         full=full if guarded else None)

    # -- values --------------------------------------------------------------------------------
    def _value(self, node: ast.AST, stmt: str, iterators: Sequence[str], domain: isl.Set,
               reads: list[ir.Access], in_condition: bool) -> ir.Expr:
        def value(child: ast.AST, condition: bool = False) -> ir.Expr:
            return self._value(child, stmt, iterators, domain, reads, condition)

        if isinstance(node, ast.Constant):
            if isinstance(node.value, (bool, int, float)):
                return ir.Const(node.value)
            raise self.error(node, f"constant {node.value!r} is not a number")
        if isinstance(node, ast.Name):
            return self._value_name(node, stmt, iterators, domain, reads)
        if isinstance(node, ast.Subscript):
            if _is_shape_expr(node):
                raise self.error(node, "bind shapes to names at the top of the function "
                                       "(`N, M = A.shape`) and use the names")
            access = self._array_access(node, stmt, iterators, domain, is_write=False)
            reads.append(access)
            return ir.Read(access)
        if isinstance(node, ast.Attribute):
            constant = self._module_constant(node)
            if constant is not None:
                return ir.Const(constant)
            raise self.error(node, "attributes are not supported in expressions (only "
                                   "math/numpy functions and constants such as math.pi)")
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return ir.Unary("-", value(node.operand))
            if isinstance(node.op, ast.UAdd):
                return ir.Unary("+", value(node.operand))
            if isinstance(node.op, ast.Not):
                return ir.Unary("not", value(node.operand, True))
            raise self.error(node, "bitwise inversion `~` is not supported")
        if isinstance(node, ast.BinOp):
            op = _AUG_OPS.get(type(node.op))
            if op is None:
                raise self.error(node, "only + - * / // % ** are supported in expressions")
            return ir.Binary(op, value(node.left), value(node.right))
        if isinstance(node, ast.Compare):
            parts: list[ir.Expr] = []
            left = value(node.left)
            for op_node, right_node in zip(node.ops, node.comparators):
                symbol = _CMP_OPS.get(type(op_node))
                if symbol is None:
                    raise self.error(node, "only <, <=, >, >=, == and != comparisons are "
                                           "supported")
                right = value(right_node)
                parts.append(ir.Compare(symbol, left, right))
                left = right
            return parts[0] if len(parts) == 1 else ir.BoolOp("and", tuple(parts))
        if isinstance(node, ast.BoolOp):
            if not in_condition:
                raise self.error(node, "`and`/`or` are only supported inside conditions (the "
                                       "test of `x if cond else y` or `not`)")
            return self._bool_op(node, stmt, iterators, domain, reads)
        if isinstance(node, ast.IfExp):
            # Each branch is evaluated only where the test sends it: with an affine test its
            # accesses happen on that part of the domain only (`A[i - 1] if i > 0 else 0.0`).
            cond = value(node.test, True)
            then_set, else_set = self._guard_sets(node.test, iterators, stmt)
            then_domain = domain if then_set is None else domain.intersect(then_set)
            else_domain = domain if else_set is None else domain.intersect(else_set)
            return ir.Select(
                cond, self._value(node.body, stmt, iterators, then_domain, reads, False),
                self._value(node.orelse, stmt, iterators, else_domain, reads, False))
        if isinstance(node, ast.Call):
            return self._call(node, value)
        what = type(node).__name__
        raise self.error(node, f"`{what}` expressions are not supported; allowed are arithmetic, "
                               "comparisons, `x if c else y`, min/max/abs and math/numpy "
                               "functions")

    def _bool_op(self, node: ast.BoolOp, stmt: str, iterators: Sequence[str],
                 domain: isl.Set, reads: list[ir.Access]) -> ir.Expr:
        """``a and b``: ``b`` is evaluated only where ``a`` holds (``or``: where it does not),
        so an affine ``a`` restricts the domain of ``b``'s accesses."""
        op = "and" if isinstance(node.op, ast.And) else "or"
        operands = []
        for operand in node.values:
            operands.append(self._value(operand, stmt, iterators, domain, reads, True))
            then_set, else_set = self._guard_sets(operand, iterators, stmt)
            known = then_set if op == "and" else else_set
            if known is not None:
                domain = domain.intersect(known)
        return ir.BoolOp(op, tuple(operands))

    def _guard_sets(self, node: ast.AST, iterators: Sequence[str], stmt: str):
        """(where the test surely holds, where it surely fails) as sets of the statement's
        instances, each None where that is not affine: ``i > 0 and x[i] > 0`` holds only
        where ``i > 0``, and nothing is known of where it fails."""
        holds = self._try_condition(node, iterators, stmt)
        if holds is not None:
            return holds, holds.complement()
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            then_set, else_set = self._guard_sets(node.operand, iterators, stmt)
            return else_set, then_set
        if isinstance(node, ast.BoolOp):
            # `and` holds only where every operand holds; `or` fails only where every fails.
            side = 0 if isinstance(node.op, ast.And) else 1
            known = [self._guard_sets(v, iterators, stmt)[side] for v in node.values]
            known = [k for k in known if k is not None]
            if known:
                meet = known[0]
                for other in known[1:]:
                    meet = meet.intersect(other)
                return (meet, None) if side == 0 else (None, meet)
        return None, None

    def _try_condition(self, node: ast.AST, iterators: Sequence[str], stmt: str):
        """The statement instances where an affine test holds, or None for a data-dependent
        test (whose branches may then run anywhere in the domain)."""
        try:
            return self._condition(node, iterators).set_tuple_name(stmt)
        except FrontendError:
            return None

    def _value_name(self, node: ast.Name, stmt: str, iterators: Sequence[str], domain: isl.Set,
                    reads: list[ir.Access]) -> ir.Expr:
        name = node.id
        if name in iterators:
            return ir.IterRef(name)
        if name in self.params:
            return ir.ParamRef(name)
        if name in self.names.scalars:
            return ir.ScalarArg(name)
        if name in self.names.locals:
            access = self._access(name, [], stmt, iterators, domain, False, node)
            reads.append(access)
            return ir.Read(access)
        if name in self.names.arrays:
            raise self.error(node, f"array `{name}` is used as a value; index it")
        if name in self.names.loop_vars:
            raise self.error(node, f"loop variable `{name}` is used outside its loop")
        value = self.globals.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return ir.Const(value)
        raise self.error(node, f"`{name}` is not defined here (not an argument, size, loop "
                               "variable, local scalar or numeric module constant)")

    def _module_of(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            module = self.globals.get(node.id)
            if module is math:
                return "math"
            if module is numpy:
                return "numpy"
        return None

    def _module_constant(self, node: ast.Attribute):
        module = self._module_of(node.value)
        if module is not None and node.attr in MODULE_CONSTANTS:
            return MODULE_CONSTANTS[node.attr]
        return None

    def _call(self, node: ast.Call, value: Callable) -> ir.Expr:
        if node.keywords:
            raise self.error(node, "keyword arguments are not supported in calls")
        func = node.func
        if isinstance(func, ast.Name) and func.id in BUILTIN_FUNCTIONS \
                and func.id not in self.globals:
            canonical, origin = BUILTIN_FUNCTIONS[func.id], "builtin"
        elif isinstance(func, ast.Attribute) and self._module_of(func.value) == "math" \
                and func.attr in MATH_FUNCTIONS:
            canonical, origin = MATH_FUNCTIONS[func.attr], "math"
        elif isinstance(func, ast.Attribute) and self._module_of(func.value) == "numpy" \
                and func.attr in NUMPY_FUNCTIONS:
            canonical, origin = NUMPY_FUNCTIONS[func.attr], "numpy"
        else:
            shown = ast.unparse(func)
            raise self.error(node, f"call of `{shown}` is not supported; allowed are min, max, "
                                   "abs, float, int, pow and math/numpy functions such as sqrt, "
                                   "exp, log, tanh")
        low, high = FUNCTION_ARITY.get(canonical, (1, 1))
        if canonical in ("min", "max") and origin == "numpy":
            low, high = 2, 2
        count = len(node.args)
        if count < low or (high is not None and count > high):
            expected = f"{low}" if low == high else f"at least {low}"
            raise self.error(node, f"{ast.unparse(func)}() takes {expected} argument(s), "
                                   f"got {count}")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.error(node, "starred arguments are not supported")
        if canonical == "pow" and origin == "builtin":   # pow(a, b) is a ** b
            return ir.Binary("**", value(node.args[0]), value(node.args[1]))
        return ir.Call(canonical, tuple(value(a) for a in node.args), origin)


def _is_docstring(stmt: ast.stmt, index: int) -> bool:
    return (index == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str))


# --------------------------------------------------------------------------------------------
# Schedule tree (source order)
# --------------------------------------------------------------------------------------------


def _schedule(nodes: list[_ScheduleNode], domain: isl.UnionSet, prefix: str) -> isl.Schedule:
    if not nodes:
        return isl.Schedule.from_domain(domain)
    parts = [_schedule_node(n, prefix) for n in nodes]
    result = parts[0]
    for part in parts[1:]:
        result = result.sequence(part)
    return result


def _schedule_node(node: _ScheduleNode, prefix: str) -> isl.Schedule:
    if node.statement is not None:
        return isl.Schedule.from_domain(isl.UnionSet.from_set(node.statement.domain))
    inner = [_schedule_node(child, prefix) for child in node.children]
    schedule = inner[0]
    for part in inner[1:]:
        schedule = schedule.sequence(part)
    loop = node.loop
    assert loop is not None
    sign = "" if loop.step > 0 else "-"
    pieces = [f"{s.name}[{', '.join(s.iterators)}] -> [({sign}{loop.var})]"
              for s in node.statements()]
    band = isl.MultiUnionPwAff(f"{prefix}[{{ {'; '.join(pieces)} }}]")
    return schedule.insert_partial_schedule(band)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def build_program(func: Callable) -> ir.Program:
    """Build the polyhedral model of a Python loop-nest function.

    Raises :class:`FrontendError` with the file, line and column of the first construct outside
    the supported subset.
    """
    with deep_nesting(f"the kernel {getattr(func, '__name__', func)}"):
        return _build_program(func)


def _build_program(func: Callable) -> ir.Program:
    tree, source = read_source(func)
    python_names = safe_names(tree)
    globals_ = getattr(func, "__globals__", {})
    check_shadowing(tree, source, globals_)
    names = _NameClassifier(tree, source, globals_).classify()
    builder = _Builder(tree, source, names, globals_)
    nodes = builder.build()
    statements = tuple(builder.statements)
    prefix = builder.param_prefix
    parameters = tuple(
        [ir.Parameter(p, ("argument", p), python_names.get(p, "")) for p in names.int_params]
        + [ir.Parameter(p, src, python_names.get(p, "")) for p, src in names.shape_params.items()])
    shape_constraints = " and ".join(f"{p} >= 0" for p in names.shape_params)
    context = isl.Set(f"{prefix}{{ : {shape_constraints} }}" if shape_constraints
                      else f"{prefix}{{ : }}")
    domain = isl.UnionSet.empty(context.get_space())
    for stmt in statements:
        domain = domain.union(isl.UnionSet.from_set(stmt.domain))
    schedule = _schedule(nodes, domain, prefix)
    arrays = []
    for name in names.array_order:
        shape = [None] * names.arrays[name]
        for param, (_, array, dim) in names.shape_params.items():
            if array == name:
                shape[dim] = param
        arrays.append(ir.Array(name, names.arrays[name], tuple(shape),
                               accessed=name not in names.shape_only))
    arrays.extend(ir.Array(name, 0, (), is_local=True) for name in names.locals)
    arguments = tuple(
        ir.Argument(n, "array" if n in names.arrays else
                    "param" if n in names.int_params else
                    "unused" if n in names.unused else "scalar",
                    python_name=python_names.get(n, ""))
        for n in names.arguments)
    program = ir.Program(name=tree.name, arguments=arguments, parameters=parameters,
                      arrays=tuple(arrays), statements=statements, schedule=schedule,
                      context=context, filename=source.filename)
    _refuse_locals_never_assigned(program)
    return program


def _refuse_locals_never_assigned(program: ir.Program) -> None:
    """FrontendError for a read of a local that no assignment precedes whenever its statement
    runs (Python always raises UnboundLocalError there); a read that is unassigned only for
    some sizes is refused by the call with those sizes (analysis.bounds)."""
    from .analysis.bounds import unassigned_local_reads

    for stmt, instances in unassigned_local_reads(program):
        if stmt.domain.params().is_subset(instances.params()):
            names = sorted({a.array for a in stmt.reads if program.array(a.array).is_local})
            raise FrontendError(f"{stmt.name} reads local {', '.join(f'`{n}`' for n in names)} "
                                "before it is assigned (Python raises UnboundLocalError)",
                                stmt.location)
