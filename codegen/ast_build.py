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
from polypipe.gpu_pad import fills_with_zeros, whole_tiles

ITERATOR_PREFIX = "pp_c"


@dataclass(frozen=True, eq=False)
class StatementInstance:
    """What a printer needs at one AST leaf: the statement and isl AST expressions for it.

    ``access_exprs`` maps ``id(access)`` to an ``isl.AstExpr`` of op type ``access``;
    ``iterator_exprs`` maps a statement iterator name to its value as an ``isl.AstExpr``;
    ``schedule_exprs[d]`` is the value of schedule dimension ``d`` (loop ``pp_c<d>``) at the
    instance, which names the loop where isl printed one and is the dimension's value (a
    constant, say) where isl printed none because it is fixed there.
    """

    statement: "ir.Statement | ir.Sync"
    access_exprs: dict[int, isl.AstExpr]
    iterator_exprs: dict[str, isl.AstExpr]
    schedule_exprs: tuple[isl.AstExpr, ...] = ()
    unbound: isl.AstExpr | None = None   # true at instances reading an unassigned local
    # Locals (name, value) printed before the statement, in order: the original statement's
    # iterators that subscripts written over them use (see ir.OriginSubscript).
    bindings: tuple[tuple[str, isl.AstExpr], ...] = ()
    # A copy that zero-fills a partial tile (polypipe.gpu_pad.fills_with_zeros): True where
    # every instance here reads its source, False where none does, else the test that it
    # does (None: not such a copy).
    reads_where: "isl.AstExpr | bool | None" = None
    # The same for the copy's instances whose whole tile reads (gpu_pad.whole_tiles): a test
    # of the tile alone, printed first.
    whole_tile: "isl.AstExpr | bool | None" = None


def build_ast(program: ir.Program, schedule: isl.Schedule | None = None,
              context: isl.Set | None = None, schedule_values: bool = False,
              unbound: dict[str, isl.Set] | None = None) -> isl.AstNode:
    """Generate the isl AST of ``program``'s schedule (or of ``schedule`` if given).

    Each user node carries an annotation whose ``user`` object is a :class:`StatementInstance`;
    its ``schedule_exprs`` are filled only with ``schedule_values`` (the CUDA printer's guards
    need them; they cost a third of the AST's time). ``unbound`` gives, per statement, the
    instances that read a local no earlier instance assigned
    (:func:`~polypipe.analysis.bounds.unassigned_local_reads`): their ``unbound`` expression
    tests for them, so that the kernel raises where Python does.
    """
    schedule = schedule if schedule is not None else program.schedule
    context = context if context is not None else program.context
    by_name = {s.name: s for s in (*program.statements, *program.syncs)}
    # Zero-filling copies: (instances that read, those whose whole tile reads), once each
    # rather than at every leaf.
    zero_filled = {s.name: (fills_with_zeros(s), whole_tiles(s)) for s in program.statements
                   if fills_with_zeros(s) is not None}
    ctx = context.get_ctx()

    def at_each_domain(node: isl.AstNode, build: isl.AstBuild) -> isl.AstNode:
        call = node.user_get_expr()
        stmt = by_name[call.get_op_arg(0).get_id().get_name()]
        to_domain = isl.PwMultiAff.from_map(
            isl.Map.from_union_map(build.get_schedule()).reverse())
        accesses, bindings = {}, {}
        for access in getattr(stmt, "accesses", ()):
            if access.origin is not None:
                accesses[id(access)] = origins.subscript(stmt, access)
                for pos, name in origins.used(access):
                    bindings[name] = build.expr_from_pw_aff(
                        access.origin.instance.get_pw_aff(pos).pullback_pw_multi_aff(to_domain))
                continue
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
        dims = tuple(build.expr_from_pw_aff(member.pullback_pw_multi_aff(to_domain))
                     for member in levels.get(stmt.name, ()))
        instance = StatementInstance(stmt, accesses, iterators, dims,
                                     _membership(build, (unbound or {}).get(stmt.name)),
                                     tuple(bindings.items()),
                                     *(_reads_where(build, part, context)
                                       for part in zero_filled.get(stmt.name, (None, None))))
        return node.set_annotation(isl.Id(f"pp_{stmt.name}", user=instance, context=ctx))

    def guarded(node: isl.AstNode, build: isl.AstBuild) -> isl.AstNode:
        # An exception must not cross isl's C frames (islpy ignores it and isl then crashes):
        # keep the first one and raise it once isl has returned.
        if failures:
            return node
        try:
            return at_each_domain(node, build)
        except Exception as exc:  # noqa: BLE001 - re-raised below, unchanged
            failures.append(exc)
            return node

    levels = _loop_levels(schedule, {name: s.domain.get_space() for name, s in by_name.items()}
                          ) if schedule_values else {}
    failures: list[Exception] = []
    origins = _Origins(context)
    build = isl.AstBuild.from_context(context)
    build, _handle = build.set_at_each_domain(guarded)
    depth = _schedule_depth(schedule)
    names = isl.IdList.alloc(ctx, depth)
    for level in range(depth):
        names = names.add(isl.Id(f"{ITERATOR_PREFIX}{level}", context=ctx))
    build = build.set_iterators(names)
    ast = build.node_from_schedule(schedule)
    del _handle  # the callback has run; isl no longer holds it
    if failures:
        raise failures[0]
    return ast


class _Origins:
    """Subscripts written over an original statement's iterators (ir.OriginSubscript): the
    same expression at every AST leaf of the statement, so built once per access."""

    def __init__(self, context: isl.Set):
        self.context = context
        self.exprs: dict[int, isl.AstExpr] = {}

    def subscript(self, stmt: "ir.Statement", access: "ir.Access") -> isl.AstExpr:
        if id(access) not in self.exprs:
            origin = access.origin
            relation = isl.Map.from_pw_multi_aff(origin.instance)
            composed = relation.apply_range(isl.Map.from_pw_multi_aff(origin.index))
            if not composed.intersect_domain(access.relation.domain()).is_equal(
                    access.relation):
                raise InternalError(f"{stmt.name}: the subscript of {access.array} over the "
                                    "original iterators is not the access it prints")
            # The original instances this statement stands for: their bounds let isl print
            # divisions of nonnegative values as C's / and %.
            reached = stmt.domain.apply(relation).intersect_params(self.context)
            build = isl.AstBuild.from_context(reached)
            self.exprs[id(access)] = build.access_from_pw_multi_aff(
                origin.index.intersect_domain(reached))
        return self.exprs[id(access)]

    @staticmethod
    def used(access: "ir.Access") -> list[tuple[int, str]]:
        """(position, name) of the original iterators the subscript reads."""
        index = access.origin.index
        return [(pos, index.get_dim_id(isl.dim_type.in_, pos).get_name())
                for pos in range(index.dim(isl.dim_type.in_))
                if index.involves_dims(isl.dim_type.in_, pos, 1)]


def _schedule_depth(schedule: isl.Schedule) -> int:
    """An upper bound on the number of loop levels the AST can have."""
    pieces = schedule.get_map().get_map_list()
    deepest = max((pieces.get_at(i).dim(isl.dim_type.out) for i in range(pieces.n_map())),
                  default=0)
    return deepest + 1


def _membership(build: isl.AstBuild, instances: isl.Set | None) -> isl.AstExpr | None:
    """An AST test that the current instance is one of ``instances`` (None if none is here)."""
    if instances is None:
        return None
    here = isl.UnionSet.from_set(instances).apply(build.get_schedule())
    if here.is_empty():
        return None
    return build.expr_from_set(isl.Set.from_union_set(here))


def _reads_where(build: isl.AstBuild, reading: isl.Set | None, context: isl.Set):
    """StatementInstance.reads_where at this leaf, for the instances ``reading`` that read."""
    if reading is None:
        return None
    here = build.get_schedule().domain().intersect_params(context)
    inside = isl.UnionSet.from_set(reading)
    if here.is_subset(inside):
        return True
    if here.intersect(inside).is_empty():
        return False
    return build.expr_from_set(isl.Set.from_union_set(inside.apply(build.get_schedule())))


def _loop_levels(schedule: isl.Schedule, spaces: dict[str, isl.Space]
                 ) -> dict[str, list[isl.PwAff]]:
    """For each statement, the band members on its path from the root, as functions of its
    instance: isl numbers the AST iterators (``pp_c<level>``) by band member along that path,
    so member ``level`` is the value of loop ``pp_c<level>`` (sequences add no level)."""
    result: dict[str, list[isl.PwAff]] = {}
    kinds = isl.schedule_node_type

    def walk(node: isl.ScheduleNode, path: list[isl.UnionPwAff]) -> None:
        kind = node.get_type()
        if kind == kinds.leaf:
            names: list[str] = []
            node.get_domain().foreach_set(lambda s: names.append(s.get_tuple_name()))
            for name in names:
                space = spaces[name].from_domain().add_dims(isl.dim_type.out, 1)
                result[name] = [member.extract_pw_aff(space) for member in path]
            return
        if kind == kinds.band:
            mupa = node.band_get_partial_schedule()
            path = path + [mupa.get_union_pw_aff(i) for i in range(node.band_n_member())]
        for position in range(node.n_children()):
            walk(node.child(position), path)

    walk(schedule.get_root(), [])
    return result
