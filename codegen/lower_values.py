"""Statement values rewritten so that printing them is Python's semantics, type by type.

:func:`lower_value` runs before a statement is printed:

1. constant sub-expressions of Python numbers are folded by Python itself (``-1``, ``2 ** -1``,
   ``10 ** 20``), so literal exponents are seen as such and big integers keep their value;
2. builtin ``min``/``max`` of operands of different types become selects
   (``min(a, b)`` is ``b if b < a else a``, Python's own order, which also decides NaN);
3. an operation applied to a select whose branches have different types is distributed into
   the branches (``(x32 if c else 0.1) * y`` becomes ``x32 * y if c else 0.1 * y``): each
   branch then computes with the types Python would use when that branch is taken, and a
   select that reaches the statement's store converts each branch on its own.

:func:`decide_variants` finds the local scalars that cannot live in one C variable of the join
of their assigned types without changing a result; those get a variable per type.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

from polypipe import ir
from polypipe.errors import InternalError
from .value_types import VType, constant_fits, lossless, statement_value

_FOLD = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
         "//": operator.floordiv, "%": operator.mod, "**": operator.pow}


def constant_of(expr: ir.Expr):
    """The Python value of a constant expression (``-1`` included), else None."""
    if isinstance(expr, ir.Const):
        return expr.value
    if isinstance(expr, ir.Unary) and expr.op in ("-", "+"):
        value = constant_of(expr.operand)
        if isinstance(value, (int, float)):
            return -value if expr.op == "-" else +value
    return None


def children(expr: ir.Expr) -> tuple[ir.Expr, ...]:
    if isinstance(expr, ir.Unary):
        return (expr.operand,)
    if isinstance(expr, (ir.Binary, ir.Compare)):
        return (expr.left, expr.right)
    if isinstance(expr, ir.BoolOp):
        return expr.operands
    if isinstance(expr, ir.Select):
        return (expr.cond, expr.then, expr.otherwise)
    if isinstance(expr, ir.Call):
        return expr.args
    return ()


def with_children(expr: ir.Expr, new: tuple[ir.Expr, ...]) -> ir.Expr:
    if isinstance(expr, ir.Unary):
        return ir.Unary(expr.op, new[0])
    if isinstance(expr, ir.Binary):
        return ir.Binary(expr.op, new[0], new[1])
    if isinstance(expr, ir.Compare):
        return ir.Compare(expr.op, new[0], new[1])
    if isinstance(expr, ir.BoolOp):
        return ir.BoolOp(expr.op, tuple(new))
    if isinstance(expr, ir.Select):
        return ir.Select(new[0], new[1], new[2])
    if isinstance(expr, ir.Call):
        return ir.Call(expr.func, tuple(new), expr.origin)
    return expr


@dataclass(frozen=True)
class VariantRead:
    """The value of a local's variable for one of its types (``l_s__v1``)."""

    name: str
    index: int


@dataclass(frozen=True)
class VariantIs:
    """Whether a local's value is currently held by variable ``index`` (its tag)."""

    name: str
    index: int


def variant_select(name: str, count: int) -> ir.Expr:
    """A read of a local with ``count`` typed variables: a select on its tag."""
    result: ir.Expr = VariantRead(name, count - 1)
    for index in range(count - 2, -1, -1):
        result = ir.Select(VariantIs(name, index), VariantRead(name, index), result)
    return result


def lower_value(expr: ir.Expr, env) -> ir.Expr:
    """``expr`` folded, with mixed-type min/max as selects and selects lifted (module doc)."""
    if isinstance(expr, ir.Read) and expr.access.array in env.variants:
        return variant_select(expr.access.array, len(env.variants[expr.access.array]))
    new = tuple(lower_value(child, env) for child in children(expr))
    if new:
        expr = with_children(expr, new)
    folded = _fold(expr)
    if folded is not None:
        return folded
    if isinstance(expr, ir.Call) and expr.origin == "builtin" and expr.func in ("min", "max") \
            and len(env.branch_types(expr)) > 1:
        return _select_chain(expr, env)
    return _distribute(expr, env)


def _fold(expr: ir.Expr) -> ir.Const | None:
    """The constant an operation on Python number constants evaluates to, where Python
    evaluates it without raising (a raise stays for run time: it only happens if executed)."""
    if isinstance(expr, ir.Unary) and expr.op in ("-", "+"):
        value = constant_of(expr)
        return ir.Const(value) if value is not None and not isinstance(value, bool) else None
    if not isinstance(expr, ir.Binary):
        return None
    left, right = constant_of(expr.left), constant_of(expr.right)
    if left is None or right is None:
        return None
    if expr.op == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 \
            and abs(left) > 1 and right * math.log2(abs(left)) > 4096:
        return None                      # leave astronomically large powers alone
    try:
        value = _FOLD[expr.op](left, right)
    except (ArithmeticError, ValueError, TypeError):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None                      # a complex result: refused when it runs
    return ir.Const(value)


def _select_chain(call: ir.Call, env) -> ir.Expr:
    """Python's ``min(a, b, ...)``: keep the first, take a later one only if strictly
    smaller (``max``: larger); each step is a select on Python's comparison."""
    compare = "<" if call.func == "min" else ">"
    result = call.args[0]
    for arg in call.args[1:]:
        result = ir.Select(ir.Compare(compare, arg, result), arg, result)
        result = _distribute(result, env)
    return result


def _distribute(expr: ir.Expr, env) -> ir.Expr:
    """Push ``expr`` into the first child select whose branches have different types."""
    if isinstance(expr, (ir.Select, ir.BoolOp)) or (isinstance(expr, ir.Unary)
                                                    and expr.op == "not"):
        return expr                      # branches and truth values need no common type
    parts = children(expr)
    for index, child in enumerate(parts):
        if isinstance(child, ir.Select) and len(env.branch_types(child)) > 1:
            then = with_children(expr, parts[:index] + (child.then,) + parts[index + 1:])
            other = with_children(expr, parts[:index] + (child.otherwise,) + parts[index + 1:])
            return ir.Select(child.cond, _distribute(then, env), _distribute(other, env))
    return expr


# --------------------------------------------------------------------------------------------
# Local scalars: one C variable per local
# --------------------------------------------------------------------------------------------


def branch_leaves(expr: ir.Expr):
    """The expressions a value can come from: the branches of its top-level selects."""
    if isinstance(expr, ir.Select):
        yield from branch_leaves(expr.then)
        yield from branch_leaves(expr.otherwise)
    else:
        yield expr


def decide_variants(env) -> dict[str, tuple[VType, ...]]:
    """The locals that need one C variable per type they hold (name -> the types).

    One variable of the join ``J`` of a local's assigned types serves when, for every
    assignment of another type ``T``, every use it reaches (isl dataflow) gives the same result
    from the ``T`` value as from its ``J`` copy: the use converts it to ``J`` anyway
    (``s = 0.0`` before ``s += x32[i]``: a Python float meeting float32 is cast first), or the
    value is the same number in ``J`` (``T`` converts exactly, or it is a constant ``J``
    holds) and the use computes in the same type either way. Any other local keeps a
    variable per type and a tag saying which one holds its value (what Python's object would
    be), and its reads become selects on the tag: see :class:`VariantRead`.
    """
    variants: dict[str, tuple[VType, ...]] = {}
    while True:
        env.set_variants(variants)
        found = {name: _unique_types(_assigned_types(env, name))
                 for name, joined in env.joined_locals().items()
                 if joined is not None and name not in variants
                 and _disagreement(env, name, joined) is not None}
        if not found:
            break
        variants.update(found)
    # The types each variant local holds, to a fixed point: each round adds a type to some
    # local or ends, and a local holds at most the seven value types.
    for _ in range(7 * len(variants) + 1):
        env.set_variants(variants)
        grown = {name: _unique_types(types + _assigned_types(env, name))
                 for name, types in variants.items()}
        if grown == variants:
            return variants
        variants = grown
    raise InternalError(f"the types of locals {', '.join(variants)} did not reach a fixed point")


def _unique_types(types) -> tuple[VType, ...]:
    return tuple(dict.fromkeys(types))


def _assigned_types(env, name: str) -> tuple[VType, ...]:
    types: list[VType] = []
    for stmt in env.program.statements:
        if stmt.target.array == name:
            for leaf in branch_leaves(lower_value(statement_value(stmt), env)):
                types.extend(env.branch_types(leaf))
    return tuple(types)


def _disagreement(env, name: str, joined: VType):
    """(assignment, its type, a use) where one ``joined`` variable would differ, or None."""
    from polypipe.analysis.bounds import local_writers_seen

    seen = local_writers_seen(env.program)
    uses = list(_uses(env, name))
    for stmt in env.program.statements:
        if stmt.target.array != name:
            continue
        reached = [use for use in uses if stmt.name in seen.get(use[0].name, ())]
        for leaf in branch_leaves(lower_value(statement_value(stmt), env)):
            for vtype in env.branch_types(leaf):
                if vtype == joined:
                    continue
                # A constant J holds exactly is the same number in both; its type may still
                # change what a use computes (0 + x32 is float32, 0.0 as float64 + x32 is not).
                equal = lossless(vtype, joined) or _constant_fits(leaf, joined)
                bad = next((use for use in reached
                            if not _use_agrees(env, name, use, vtype, joined, equal)), None)
                if bad is not None:
                    return stmt, vtype, bad
    return None


def _constant_fits(expr: ir.Expr, joined: VType) -> bool:
    value = constant_of(expr)
    return value is not None and constant_fits(value, joined)


def _uses(env, name: str):
    """(statement, parent chain) of every read of local ``name``: the chain lists the
    ancestors of the read, innermost first, each with the child position the read came from."""
    for stmt in env.program.statements:
        value = lower_value(statement_value(stmt), env)
        yield from ((stmt, chain) for chain in _chains(value, name, ()))


def _chains(expr: ir.Expr, name: str, ancestors: tuple):
    if isinstance(expr, ir.Read) and expr.access.array == name:
        yield ancestors
        return
    for index, child in enumerate(children(expr)):
        yield from _chains(child, name, ((expr, index),) + ancestors)


def _use_agrees(env, name: str, use, have: VType, joined: VType, equal: bool) -> bool:
    """Whether this use computes the same from a ``have`` value as from its ``joined`` copy.

    Walking up from the read: while the two values are numerically equal (``have`` converts
    to ``joined`` exactly), every operation must compute in the same C type, and the walk
    goes on as long as the results differ only in weakness (a Python float and a float64
    compute alike but promote differently later). A lossy copy must be converted to
    ``joined`` by its consumer anyway (``s * x32[i]`` casts a Python float to float32).
    An operation that reads the local in another operand too (``t + t``) sees a ``have``
    there as well, which the one-variable types cannot say: it never agrees.
    """
    stmt, chain = use
    for node, index in chain:
        if any(_reads(child, name) for position, child in enumerate(children(node))
               if position != index):
            return False
        if (isinstance(node, ir.Select) and index > 0) or (
                isinstance(node, ir.Call) and node.origin == "builtin"
                and node.func in ("min", "max")):
            continue                                  # passed through unchanged
        if isinstance(node, (ir.Select, ir.BoolOp)) or (isinstance(node, ir.Unary)
                                                        and node.op == "not"):
            return equal                              # a truth value
        step = _operand_step(env, node, index, have, joined, equal)
        if step is None:
            return False
        if step[0] == step[1]:
            return True
        have, joined, equal = step[0], step[1], True
    target = env.program.array(stmt.target.array)
    if target.is_local:
        # Stored unchanged into a local (``t = max(t, x)`` keeps t's object): that local then
        # holds a ``have`` in Python, which one variable of another type cannot follow.
        return False
    storage = env.storage_type(target.name)          # the value is stored as it is
    return equal or storage.c_name == joined.c_name


def _reads(expr: ir.Expr, name: str) -> bool:
    return any(isinstance(node, ir.Read) and node.access.array == name
               for node in _nodes(expr))


def _nodes(expr: ir.Expr):
    yield expr
    for child in children(expr):
        yield from _nodes(child)


def _operand_step(env, node: ir.Expr, index: int, have: VType, joined: VType, equal: bool):
    """(result from ``have``, result from ``joined``) of one operation, or None when the two
    can compute different values. With several types for the other operands, every
    combination must agree; the results are then the same for each."""
    rules = env.rules
    others = [env.branch_types(child) for child in children(node)]
    results = None
    for combo in _combinations(others, index):
        with_have = _op(rules, node, combo[:index] + [have] + combo[index + 1:])
        with_joined = _op(rules, node, combo[:index] + [joined] + combo[index + 1:])
        position = min(index, len(with_have.operands) - 1)
        converted = (with_have.operands[position].c_name,
                     with_joined.operands[position].c_name)
        if converted[0] != converted[1] or (not equal and converted[0] != joined.c_name):
            return None
        if with_have.result.c_name != with_joined.result.c_name:
            return None
        pair = (with_have.result, with_joined.result)
        if results is not None and pair != results:
            return None
        results = pair
    return results


def _combinations(options: list, skip: int):
    combos = [[]]
    for position, types in enumerate(options):
        choices = types if position != skip else (None,)
        combos = [c + [t] for c in combos for t in choices]
    return combos


def _op(rules, node: ir.Expr, types: list):
    if isinstance(node, ir.Binary):
        return rules.binary(node.op, types[0], types[1], node.right)
    if isinstance(node, ir.Compare):
        return rules.compare(node.op, types[0], types[1])
    if isinstance(node, ir.Unary):
        return rules.unary(node.op, types[0])
    assert isinstance(node, ir.Call), node
    return rules.call(node, types)
