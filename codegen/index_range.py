"""Prove that the loop code's integer arithmetic fits int64 for concrete sizes.

The generated loops compute bounds, guards, subscripts and iterator values with isl's AST
expressions (affine in the sizes and iterators, with ``floord``, ``min``, ``max`` and
selects). For huge sizes (a size argument of 2**62, say) one of them could overflow int64 and
the kernel would index memory it must not touch. :func:`index_tree` records the AST's
expressions once per compiled kernel; :func:`check_index_range` evaluates them with interval
arithmetic at the call's sizes: every iterator is bounded by its loop's initial value and the
bounds in its condition (plus one step past the end), a local bound before a statement by
its value's interval, every intermediate value by the intervals of its operands. If some
value could leave int64, the call is refused with :class:`ArgumentError` before it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import islpy as isl

from polypipe.errors import ArgumentError, InternalError

LIMIT = 2**63 - 1
_OP = isl.ast_expr_op_type


@dataclass(frozen=True)
class Loop:
    iterator: str
    init: tuple
    cond: tuple | None
    bounds: tuple[tuple, ...]       # the sides of its condition's comparisons
    step: int
    body: tuple


@dataclass(frozen=True)
class Let:
    """Locals bound before a statement (in order) and the expressions that may use them."""

    bindings: tuple[tuple[str, tuple], ...]
    body: tuple


def _expr(expr: isl.AstExpr) -> tuple:
    kind = expr.get_type()
    if kind == isl.ast_expr_type.id:
        return ("id", expr.get_id().get_name())
    if kind == isl.ast_expr_type.int:
        return ("int", expr.get_val().to_python())
    args = tuple(_expr(expr.get_op_arg(i)) for i in range(expr.get_op_n_arg()))
    return ("op", expr.get_op_type(), args)


def index_tree(node: isl.AstNode) -> tuple:
    """The integer expressions of an isl AST, nested by loop (see the module docstring)."""
    kind = node.get_type()
    if kind == isl.ast_node_type.block:
        children = node.block_get_children()
        return tuple(part for i in range(children.n_ast_node())
                     for part in index_tree(children.get_at(i)))
    if kind == isl.ast_node_type.mark:
        return index_tree(node.mark_get_node())
    if kind == isl.ast_node_type.if_:
        parts = [_expr(node.if_get_cond()), *index_tree(node.if_get_then_node())]
        if node.if_has_else_node():
            parts.extend(index_tree(node.if_get_else_node()))
        return tuple(parts)
    if kind == isl.ast_node_type.for_:
        iterator = node.for_get_iterator().get_id().get_name()
        init = _expr(node.for_get_init())
        if node.for_is_degenerate():
            return (Loop(iterator, init, None, (), 0, index_tree(node.for_get_body())),)
        cond = _expr(node.for_get_cond())
        step = node.for_get_inc().get_val().to_python()
        return (Loop(iterator, init, cond, tuple(_bounds(cond, iterator)), abs(step),
                     index_tree(node.for_get_body())),)
    annotation = node.get_annotation()
    instance = annotation.user if annotation is not None else None
    if instance is None:
        return ()
    exprs = tuple(_expr(e) for e in (*instance.access_exprs.values(),
                                     *instance.iterator_exprs.values()))
    if not instance.bindings:
        return exprs
    return (Let(tuple((name, _expr(value)) for name, value in instance.bindings), exprs),)


def _bounds(cond: tuple, iterator: str):
    """The expressions a loop condition compares its iterator with."""
    if cond[0] != "op":
        return
    _, op, args = cond
    if op in (_OP.and_, _OP.and_then, _OP.or_, _OP.or_else):
        for arg in args:
            yield from _bounds(arg, iterator)
    elif op in (_OP.le, _OP.lt, _OP.ge, _OP.gt, _OP.eq):
        for side, other in ((args[0], args[1]), (args[1], args[0])):
            if side == ("id", iterator):
                yield other


class _Overflow(Exception):
    pass


def _interval(expr: tuple, env: Mapping[str, tuple[int, int]]) -> tuple[int, int]:
    kind = expr[0]
    if kind == "int":
        low = high = expr[1]
    elif kind == "id":
        if expr[1] not in env:
            raise InternalError(f"index check: AST identifier {expr[1]!r} is neither a size "
                                "nor an enclosing loop's iterator")
        low, high = env[expr[1]]
    elif expr[1] == _OP.access:
        for index in expr[2][1:]:             # the array's name is no integer
            _interval(index, env)
        low = high = 0
    else:
        low, high = _op_interval(expr[1], [_interval(a, env) for a in expr[2]])
    if max(abs(low), abs(high)) > LIMIT:
        raise _Overflow
    return low, high


def _op_interval(op, args: list[tuple[int, int]]) -> tuple[int, int]:
    if op == _OP.add:
        return args[0][0] + args[1][0], args[0][1] + args[1][1]
    if op == _OP.sub:
        return args[0][0] - args[1][1], args[0][1] - args[1][0]
    if op == _OP.minus:
        return -args[0][1], -args[0][0]
    if op == _OP.mul:
        products = [a * b for a in args[0] for b in args[1]]
        return min(products), max(products)
    if op in (_OP.min, _OP.max, _OP.cond, _OP.select):
        values = args if op in (_OP.min, _OP.max) else args[1:]
        return min(v[0] for v in values), max(v[1] for v in values)
    if op in (_OP.div, _OP.pdiv_q, _OP.fdiv_q):      # isl divides by constants only
        (low, high), (d_low, d_high) = args
        if d_low == d_high > 0:   # monotone: floor of the low end, ceiling of the high one
            return low // d_low, -(-high // d_low)     # (covers C's truncation too)
        reach = max(abs(low), abs(high)) + 1
        return -reach, reach
    if op in (_OP.pdiv_r, _OP.zdiv_r):
        reach = max(abs(args[1][0]), abs(args[1][1]))
        if args[0][0] >= 0:
            return 0, min(reach - 1, args[0][1]) if reach > 0 else 0
        return -reach, reach
    return 0, 1                                       # comparisons and logic: a truth value


def _walk(parts: tuple, env: dict) -> None:
    for part in parts:
        if isinstance(part, Loop):
            low, high = _interval(part.init, env)
            for bound in part.bounds:
                b_low, b_high = _interval(bound, env)
                low, high = min(low, b_low), max(high, b_high)
            high += part.step                        # the value that ends the loop
            if high > LIMIT:
                raise _Overflow
            inner = {**env, part.iterator: (low, high)}
            if part.cond is not None:
                _interval(part.cond, inner)
            _walk(part.body, inner)
        elif isinstance(part, Let):
            inner = dict(env)
            for name, value in part.bindings:
                inner[name] = _interval(value, inner)
            _walk(part.body, inner)
        else:
            _interval(part, env)


def loop_range(node: isl.AstNode, env: Mapping[str, tuple[int, int]]
               ) -> tuple[int, int] | None:
    """Bounds on the iterator of a ``for`` node: the least value of its initial expression and
    the largest of the bounds its condition compares it with, over the intervals ``env``
    gives the sizes and enclosing iterators; None where they name something else."""
    init = _known_interval(_expr(node.for_get_init()), env)
    if init is None or node.for_is_degenerate():
        return init
    iterator = node.for_get_iterator().get_id().get_name()
    high = _upper_bound(_expr(node.for_get_cond()), iterator, env)
    return None if high is None else (init[0], high)


def _upper_bound(cond: tuple, iterator: str, env) -> int | None:
    """A constant the iterator does not exceed while ``cond`` holds (None if none is seen)."""
    if cond[0] != "op":
        return None
    _, op, args = cond
    if op in (_OP.and_, _OP.and_then, _OP.or_, _OP.or_else):
        highs = [_upper_bound(arg, iterator, env) for arg in args]
        if op in (_OP.and_, _OP.and_then):      # every conjunct bounds it: the least
            known = [h for h in highs if h is not None]
            return min(known) if known else None
        return None if None in highs else max(highs)   # either disjunct may hold
    # iterator <= e, iterator < e, e >= iterator, e > iterator
    if op in (_OP.le, _OP.lt) and args[0] == ("id", iterator):
        other = args[1]
    elif op in (_OP.ge, _OP.gt) and args[1] == ("id", iterator):
        other = args[0]
    else:
        return None
    known = _known_interval(other, env)
    return None if known is None else known[1]


def _known_interval(expr: tuple, env: Mapping[str, tuple[int, int]]) -> tuple[int, int] | None:
    if not _names(expr) <= env.keys():
        return None
    try:
        return _interval(expr, env)
    except _Overflow:
        return None


def _names(expr: tuple) -> set[str]:
    if expr[0] == "id":
        return {expr[1]}
    if expr[0] == "int":
        return set()
    args = expr[2][1:] if expr[1] == _OP.access else expr[2]   # an array name is no value
    return set().union(*(_names(a) for a in args))


def check_index_range(tree: tuple, params: Mapping[str, int], program_name: str,
                      ranges: Mapping[str, tuple[int, int]] | None = None) -> None:
    """Raise ArgumentError when the loop code could compute an integer outside int64;
    ``ranges``: intervals of run-time values that are not sizes (a launch's host values)."""
    env = {name: (value, value) for name, value in params.items()}
    env.update(ranges or {})
    try:
        _walk(tree, env)
    except _Overflow:
        sizes = ", ".join(f"{name}={value}" for name, value in params.items())
        raise ArgumentError(
            f"{program_name}: the sizes {sizes} are too large for the generated loops, whose "
            "bounds and subscripts are computed in 64-bit integers; polypipe refuses them "
            "rather than let an index wrap around") from None
