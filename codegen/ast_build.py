"""Schedule tree -> isl AST, with every statement's accesses expressed in AST iterators.

isl generates the loops; at each statement instance (``at_each_domain``) we ask isl for the
index expressions of every access and the value of every statement iterator in terms of the
generated loop iterators (the PPCG technique: pull the access back over the inverse schedule).
Printers therefore never re-derive subscripts: whatever the schedule does (reversal, strides,
tiling, shifting), isl keeps the accesses exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import islpy as isl

from polypipe import ir
from polypipe.errors import InternalError

ITERATOR_PREFIX = "pp_c"


@dataclass(frozen=True, eq=False)
class StatementInstance:
    """What a printer needs at one AST leaf: the statement and isl AST expressions for it.

    ``access_exprs`` maps ``id(access)`` to an ``isl.AstExpr`` of op type ``access``;
    ``iterator_exprs`` maps a statement iterator name to its value as an ``isl.AstExpr``.
    """

    statement: "ir.Statement | ir.Sync"
    access_exprs: dict[int, isl.AstExpr]
    iterator_exprs: dict[str, isl.AstExpr]


def build_ast(program: ir.Program, schedule: isl.Schedule | None = None,
              context: isl.Set | None = None) -> isl.AstNode:
    """Generate the isl AST of ``program``'s schedule (or of ``schedule`` if given).

    Each user node carries an annotation whose ``user`` object is a :class:`StatementInstance`.
    """
    schedule = schedule if schedule is not None else program.schedule
    context = context if context is not None else program.context
    by_name = {s.name: s for s in (*program.statements, *program.syncs)}
    ctx = context.get_ctx()

    def at_each_domain(node: isl.AstNode, build: isl.AstBuild) -> isl.AstNode:
        call = node.user_get_expr()
        stmt = by_name[call.get_op_arg(0).get_id().get_name()]
        to_domain = isl.PwMultiAff.from_map(
            isl.Map.from_union_map(build.get_schedule()).reverse())
        accesses = {}
        for access in getattr(stmt, "accesses", ()):
            # A guarded access prints its subscript over the whole domain: the select test
            # around it decides whether it runs (see ir.Access).
            relation = access.full if access.full is not None else access.relation
            index = isl.PwMultiAff.from_map(relation).pullback_pw_multi_aff(to_domain)
            if index.domain().is_empty():   # isl would fail (and crash) on an empty access
                raise InternalError(f"{stmt.name}'s access to {access.array} is empty where "
                                    "the AST prints the statement")
            accesses[id(access)] = build.access_from_pw_multi_aff(index)
        names = stmt.iterators if isinstance(stmt, ir.Statement) else [
            stmt.domain.get_dim_name(isl.dim_type.set, pos)
            for pos in range(stmt.domain.dim(isl.dim_type.set))]
        iterators = {name: build.expr_from_pw_aff(to_domain.get_pw_aff(pos))
                     for pos, name in enumerate(names)}
        instance = StatementInstance(stmt, accesses, iterators)
        return node.set_annotation(isl.Id(f"pp_{stmt.name}", user=instance, context=ctx))

    build = isl.AstBuild.from_context(context)
    build, _handle = build.set_at_each_domain(at_each_domain)
    depth = _schedule_depth(schedule)
    names = isl.IdList.alloc(ctx, depth)
    for level in range(depth):
        names = names.add(isl.Id(f"{ITERATOR_PREFIX}{level}", context=ctx))
    build = build.set_iterators(names)
    ast = build.node_from_schedule(schedule)
    del _handle  # the callback has run; isl no longer holds it
    return ast


def _schedule_depth(schedule: isl.Schedule) -> int:
    """An upper bound on the number of loop levels the AST can have."""
    pieces = schedule.get_map().get_map_list()
    deepest = max((pieces.get_at(i).dim(isl.dim_type.out) for i in range(pieces.n_map())),
                  default=0)
    return deepest + 1
