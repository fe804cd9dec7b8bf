"""Printing statement values: the operations :mod:`codegen.semantics` decides, as C text.

A mixin of the C printer (and so of the emulation and CUDA printers). A statement whose value
contains an operation that can fault is printed as::

    { const double pp_v = <value>; if (pp_err) { <stop: record the instance> } else <target> = pp_v; }

so the store of the instance at which Python raises never happens; what "stop" means is the
printer's :meth:`fault_action` (the C kernel returns, a CUDA thread records the fault).
"""

from __future__ import annotations

from polypipe import ir

from .ast_build import StatementInstance
from .lower_values import VariantIs, VariantRead, lower_value
from .semantics import Op
from .value_types import VType, statement_value

# pp_fault layout, shared with the runtimes: [0] fault code, [1] statement index,
# [2] warning flags, [3] number of iterator values, [4...] the iterator values.
FAULT_SLOTS = 20
FAULT_ITERATORS = FAULT_SLOTS - 4


def c_name(kind: str, name: str) -> str:
    """The C name of a user name (arrays ``a_``, parameters ``p_``, scalars ``s_``, locals
    ``l_``): no Python name can collide with a C keyword, a libm function or a generated one
    (extents ``n_``, variant locals ``lv``/``lt_``, generated names ``pp_``)."""
    return {"array": "a_", "param": "p_", "scalar": "s_", "local": "l_"}[kind] + name


def variant_name(local: str, index: int) -> str:
    """The variable of one type of a local held in several (``lv0_s``; cannot meet ``l_``)."""
    return f"lv{index}_{local}"


class ValuePrinter:
    """Needs ``program``, ``types`` (a TypeEnv) and ``expr`` (isl AST expressions) from the
    printer it is mixed into."""

    _faulting: bool = False

    # -- statements ---------------------------------------------------------------------------
    def lowered(self, stmt: ir.Statement) -> ir.Expr:
        cache = self.__dict__.setdefault("_lowered", {})
        value = cache.get(stmt.name)
        if value is None:
            value = lower_value(statement_value(stmt), self.types)
            cache[stmt.name] = value
        return value

    def statement(self, instance: StatementInstance) -> str:
        stmt = instance.statement
        if stmt.target.array in self.types.variants:
            text = self.variant_store(instance, self.lowered(stmt))
        else:
            value, bits = self.stored_value(instance)
            text = self.store(instance, self.target(instance), value, bits=bits)
        if instance.unbound is None:
            return text
        # Python raises UnboundLocalError at this instance: so does the kernel, in order.
        return (f"{{ if ({self.expr(instance.unbound)}) {{ pp_err = PP_E_UNBOUND_LOCAL; "
                f"{self.fault_action(instance)} }} {text}; }}")

    def target(self, instance: StatementInstance) -> str:
        """The stored element as an lvalue."""
        return self.expr(instance.access_exprs[id(instance.statement.target)])

    # -- locals with a variable per type (lower_values.decide_variants) -----------------------
    def local_names(self, name: str) -> list[str]:
        """The C variables of a local: one, or one per type and a tag."""
        variants = self.types.variants.get(name)
        if variants is None:
            return [c_name("local", name)]
        return [variant_name(name, k) for k in range(len(variants))] + [f"lt_{name}"]

    def local_declarations(self, name: str) -> list[str]:
        variants = self.types.variants.get(name)
        if variants is None:
            return [f"{self.types.storage_type(name).c_name} {c_name('local', name)} = 0;"]
        return [f"{vtype.c_name} {variant_name(name, k)} = 0;"
                for k, vtype in enumerate(variants)] + [f"int lt_{name} = 0;"]

    def variant_store(self, instance: StatementInstance, value: ir.Expr,
                      guard: bool = False) -> str:
        """Assign a local with a variable per type: each branch of the value stores into the
        variable of its own type and sets the tag, as Python binds that branch's object.
        ``guard``: a select test above this branch can fault, so the store checks pp_err."""
        name = instance.statement.target.array
        variants = self.types.variants[name]
        if isinstance(value, ir.Select) and len(self.types.branch_types(value)) > 1:
            self._faulting = False
            cond = self.value(value.cond, instance)
            guard = guard or self._faulting
            return (f"if ({cond}) {{ {self.variant_store(instance, value.then, guard)}; }} "
                    f"else {{ {self.variant_store(instance, value.otherwise, guard)}; }}")
        index = variants.index(self.types.expr(value))
        self._faulting = False
        text = self.value(value, instance, variants[index], "local")
        self._faulting = self._faulting or guard
        # A faulting store leaves the kernel (fault_action) before the tag changes.
        stored = self.store(instance, variant_name(name, index), text, variants[index].c_name)
        return f"{{ {stored}; lt_{name} = {index}; }}"

    def stored_value(self, instance: StatementInstance) -> tuple[str, bool]:
        """The statement's value converted to its target's type (sets ``_faulting``), and
        whether it is a 16-bit element's bits rather than a value."""
        stmt = instance.statement
        array = self.program.array(stmt.target.array)
        self._faulting = False
        value = self.lowered(stmt)
        half = self._half_element(array.name)
        if half and isinstance(value, ir.Read) and self._half_element(value.access.array) == half:
            # A 16-bit element copied unchanged: its bits, as NumPy copies them (a round trip
            # through float would quieten a signalling NaN).
            return self.expr(instance.access_exprs[id(value.access)]), True
        return self.value(value, instance, self.types.storage_type(array.name),
                          "local" if array.is_local else "store"), False

    def store(self, instance: StatementInstance, target: str, value: str,
              ctype: str | None = None, bits: bool = False) -> str:
        """``target = value``; guarded when the value can fault (see the module docstring).
        ``ctype`` given: a local's variable; else the statement's target, where a 16-bit
        float is stored as its bits (``bits``: ``value`` already is)."""
        half = (self._half_element(instance.statement.target.array)
                if ctype is None and not bits else None)
        ctype = ctype or self.types.storage_type(instance.statement.target.array).c_name

        def encoded(text: str) -> str:
            return f"pp_f32_to_{_format(half)}({text})" if half else text

        if not self._faulting:
            return f"{target} = {encoded(value)}"
        return (f"{{ const {ctype} pp_v = {value}; if (pp_err) {{ {self.fault_action(instance)}"
                f" }} else {target} = {encoded('pp_v')}; }}")

    def _half_element(self, name: str) -> VType | None:
        """The 16-bit float type of an array stored as bits (not of a local: locals hold
        floats)."""
        if self.program.array(name).is_local:
            return None
        vtype = self.types.storage_type(name)
        return vtype if vtype.is_half else None

    def fault_record(self, instance: StatementInstance) -> list[str]:
        """C statements that record the faulting instance in ``pp_fault``."""
        stmt = instance.statement
        index = self.program.statements.index(stmt)
        names = stmt.iterators[:FAULT_ITERATORS]
        parts = [f"pp_fault[1] = {index};", f"pp_fault[3] = {len(names)};"]
        parts += [f"pp_fault[{4 + k}] = (int64_t){self.expr(instance.iterator_exprs[name])};"
                  for k, name in enumerate(names)]
        return parts

    def fault_action(self, instance: StatementInstance) -> str:
        return " ".join(["pp_fault[0] = pp_err;", *self.fault_record(instance),
                         "goto pp_done;"])

    # -- values -------------------------------------------------------------------------------
    def value(self, expr: ir.Expr, instance: StatementInstance, want: VType | None = None,
              where: str = "operand") -> str:
        """C text of a value expression, converted to ``want`` when given."""
        types = self.types.branch_types(expr)
        if isinstance(expr, ir.Select) and len(types) > 1:
            # Only a store (or a truth value) sees a select whose branches keep different
            # types: each branch is converted on its own, as Python stores the one it took.
            return (f"({self.value(expr.cond, instance)} ? "
                    f"{self.value(expr.then, instance, want, where)} : "
                    f"{self.value(expr.otherwise, instance, want, where)})")
        have = self.types.expr(expr)
        if isinstance(expr, ir.Const) and isinstance(expr.value, int) \
                and not -2**63 <= expr.value < 2**63:
            return self._big_int(expr.value, want)
        text = self._value(expr, instance, have)
        if want is None:
            return text
        conversion = self.types.rules.convert(have, want, where)
        return text if conversion is None else self.apply(conversion, [text])

    def apply(self, op: Op, args: list[str]) -> str:
        text = self._apply(op, args)
        if op.narrow is not None:    # a 16-bit float result, computed in float
            return f"pp_round_{_format(op.narrow)}({text})"
        return text

    def _apply(self, op: Op, args: list[str]) -> str:
        if op.infix:
            return f"({args[0]} {op.text} {args[1]})"
        if op.prefix:
            return f"({op.text}{args[0]})"
        if op.text == "":
            return args[0]
        if op.text in ("pp_min", "pp_max"):
            text = args[0]
            for arg in args[1:]:
                text = f"{op.text}({text}, {arg})"
            return text
        extra = list(op.extra)
        if op.fault:
            extra.append("&pp_err")
            self._faulting = True
        if op.warn:
            extra.append("&pp_warn")
        return f"{op.text}({', '.join(args + extra)})"

    def _operation(self, op: Op, operands, instance: StatementInstance) -> str:
        return self.apply(op, [self.value(child, instance, want)
                               for child, want in zip(operands, op.operands)])

    def _value(self, expr: ir.Expr, instance: StatementInstance, have: VType) -> str:
        rules = self.types.rules
        if isinstance(expr, ir.Const):
            return _literal(expr.value)
        if isinstance(expr, ir.IterRef):
            return f"((int64_t){self.expr(instance.iterator_exprs[expr.name])})"
        if isinstance(expr, (ir.ParamRef, ir.ScalarArg)):
            return c_name("param" if isinstance(expr, ir.ParamRef) else "scalar", expr.name)
        if isinstance(expr, ir.Read):
            text = self.expr(instance.access_exprs[id(expr.access)])
            half = self._half_element(expr.access.array)
            return f"pp_{_format(half)}_to_f32({text})" if half else text
        if isinstance(expr, VariantRead):
            return variant_name(expr.name, expr.index)
        if isinstance(expr, VariantIs):
            return f"(lt_{expr.name} == {expr.index})"
        if isinstance(expr, ir.BoolOp):
            joiner = " && " if expr.op == "and" else " || "
            return "(" + joiner.join(self.value(o, instance) for o in expr.operands) + ")"
        if isinstance(expr, ir.Select):
            return (f"({self.value(expr.cond, instance)} ? "
                    f"{self.value(expr.then, instance, have)} : "
                    f"{self.value(expr.otherwise, instance, have)})")
        if isinstance(expr, ir.Unary):
            if expr.op == "not":
                return f"(!{self.value(expr.operand, instance)})"
            op = rules.unary(expr.op, self.types.expr(expr.operand))
            return self._operation(op, (expr.operand,), instance)
        if isinstance(expr, (ir.Binary, ir.Compare)):
            left, right = self.types.expr(expr.left), self.types.expr(expr.right)
            op = (rules.binary(expr.op, left, right, expr.right) if isinstance(expr, ir.Binary)
                  else rules.compare(expr.op, left, right))
            return self._operation(op, (expr.left, expr.right), instance)
        assert isinstance(expr, ir.Call), expr
        op = rules.call(expr, [self.types.expr(a) for a in expr.args])
        return self._operation(op, expr.args, instance)

    def _big_int(self, value: int, want: VType | None) -> str:
        """A Python int constant beyond int64 (``10 ** 20``): exact where it becomes a float,
        else the error Python (or polypipe's refusal) gives when it runs."""
        if want is not None and want.is_float:
            try:
                if want.is_half:
                    return f"pp_round_{_format(want)}_f64({_literal(float(value))})"
                return f"(({want.c_name}){_literal(float(value))})"
            except OverflowError:
                code = "PP_E_INT_TO_FLOAT"
        elif want is not None and not want.weak:
            code = "PP_E_INT32_RANGE" if want.bits == 32 else "PP_E_INT64_RANGE"
        else:
            code = "PP_E_PYINT_OVERFLOW"
        self._faulting = True
        return f"pp_raise({code}, &pp_err)"


def _format(vtype: VType) -> str:
    """The helper-name part of a 16-bit float type (codegen.half_c)."""
    return "bf16" if vtype.format == "bf16" else "f16"


def _literal(value) -> str:
    """A C literal; negative ones parenthesised (``-(-1.0)`` must not print as ``--1.0``)."""
    text = _bare_literal(value)
    return f"({text})" if text.startswith("-") else text


def _bare_literal(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        if value == -2**63:
            return "PP_I64_MIN"
        return f"INT64_C({value})" if abs(value) > 2**31 - 1 else str(value)
    text = repr(float(value))
    if text in ("inf", "-inf", "nan"):
        return {"inf": "INFINITY", "-inf": "(-INFINITY)", "nan": "NAN"}[text]
    if "e" not in text and "." not in text:
        text += ".0"
    return text
