"""Prove that every access stays inside its array for concrete sizes, or show one that does not.

The check is exact (isl): for each access relation, restricted to the statement's domain and
the concrete parameter values, the set of touched elements must lie in the box
``0 <= d_k < extent_k``. A violation is reported with one statement instance and the element it
would touch, both computed by isl.
"""

from __future__ import annotations

import weakref
from typing import Mapping, Sequence

import islpy as isl

from polypipe import ir
from polypipe.errors import ArgumentError


def fix_parameters(space_object, values: Mapping[str, int]) -> isl.Set:
    """The parameter set ``{ : N = 5 and M = 3 }`` in the object's parameter space."""
    context = isl.Set.universe(space_object.get_space().params())
    ctx = context.get_ctx()
    for pos in range(context.dim(isl.dim_type.param)):
        name = context.get_dim_name(isl.dim_type.param, pos)
        # from text: exact for integers beyond a C long, which int_from_si refuses
        context = context.fix_val(isl.dim_type.param, pos,
                                  isl.Val(str(int(values[name])), context=ctx))
    return context


def point_values(point: isl.Point, dim_type=isl.dim_type.set) -> list[int]:
    space = point.get_space()
    return [point.get_coordinate_val(dim_type, i).to_python() for i in range(space.dim(dim_type))]


def describe_instance(stmt: ir.Statement, values: Sequence[int]) -> str:
    inside = ", ".join(f"{name}={value}" for name, value in zip(stmt.iterators, values))
    return f"{stmt.name}[{inside}]"


def check_access_bounds(program: ir.Program, params: Mapping[str, int],
                        extents: Mapping[str, Sequence[int]]) -> None:
    """Raise :class:`ArgumentError` if any access falls outside its array for these sizes."""
    for stmt in program.statements:
        for access in stmt.accesses:
            array = program.array(access.array)
            if array.is_local:
                continue
            _check_one(stmt, access, fix_parameters(access.relation, params),
                       tuple(extents[access.array]))


def _check_one(stmt: ir.Statement, access: ir.Access, param_values: isl.Set,
               shape: tuple[int, ...]) -> None:
    relation = access.relation.intersect_params(param_values)
    touched = relation.range()
    box_text = " and ".join(f"0 <= d{k} < {extent}" for k, extent in enumerate(shape))
    dims = ", ".join(f"d{k}" for k in range(len(shape)))
    box = isl.Set(f"{{ {access.array}[{dims}] : {box_text or 'true'} }}")
    box = box.align_params(touched.get_space()).intersect_params(param_values)
    outside = touched.subtract(box)
    if outside.is_empty():
        return
    element = outside.sample_point()
    element_set = isl.Set.from_point(element)
    instance = relation.intersect_range(element_set).domain().sample_point()
    index = point_values(element)
    where = f" (line {stmt.location.line}: {stmt.source})" if stmt.location else ""
    verb = "writes" if access.is_write else "reads"
    raise ArgumentError(
        f"{describe_instance(stmt, point_values(instance))}{where} {verb} "
        f"{access.array}[{', '.join(map(str, index))}], outside {access.array}'s shape "
        f"{tuple(shape)}; the arrays are too small for these sizes",
        stmt.location)


_LOCAL_FLOW: "weakref.WeakKeyDictionary[ir.Program, tuple]" = weakref.WeakKeyDictionary()


def array_accesses(program: ir.Program, statements, wanted) -> tuple[isl.UnionMap,
                                                                     isl.UnionMap]:
    """(reads, writes) of ``statements`` to the arrays whose names ``wanted`` accepts, as
    union maps instance -> element: the sinks and sources of a dataflow question."""
    space = program.context.get_space()
    reads, writes = isl.UnionMap.empty(space), isl.UnionMap.empty(space)
    for stmt in statements:
        for access in stmt.reads:
            if wanted(access.array):
                reads = reads.union(isl.UnionMap.from_map(access.relation))
        if wanted(stmt.target.array):
            writes = writes.union(isl.UnionMap.from_map(stmt.target.relation))
    return reads, writes


def _local_flow(program: ir.Program) -> tuple[list, dict[str, set[str]]]:
    """The dataflow of local scalars (isl, exact): (statement, parametric set of its instances
    that read a local before any assignment) pairs, and for each reading statement the
    statements whose assignments its reads can see."""
    cached = _LOCAL_FLOW.get(program)
    if cached is not None:
        return cached
    sinks, sources = array_accesses(program, program.statements,
                                    lambda name: program.array(name).is_local)
    unassigned: list = []
    writers: dict[str, set[str]] = {}
    if not sinks.is_empty():
        unread, dependences = scalar_flow(program, sinks, sources)
        for stmt in program.statements:
            part = unread.extract_set(stmt.domain.get_space())
            if not part.is_empty():
                unassigned.append((stmt, part))
            seen = dependences.intersect_range(isl.UnionSet.from_set(stmt.domain)).domain()
            writers[stmt.name] = {w.name for w in program.statements
                                  if not seen.extract_set(w.domain.get_space()).is_empty()}
    _LOCAL_FLOW[program] = (unassigned, writers)
    return unassigned, writers


# isl operations the exact dataflow of locals may take before the direct computation is used
# instead (fuzz seed 31457: 34 s in compute_flow for one accumulator of a guarded 3-deep nest).
FLOW_OPERATIONS = 5_000_000


def scalar_flow(program: ir.Program, sinks: isl.UnionMap, sources: isl.UnionMap
                 ) -> tuple[isl.UnionSet, isl.UnionMap]:
    """(reads with no earlier assignment, read -> assignments it may see) of local scalars.

    isl's dataflow gives the exact last assignment; on some nests with modulo guards it fails
    ("affine expression involves some of the domain dimensions", fuzz seed 30787) or takes
    very long (past ``FLOW_OPERATIONS``, seed 31457). Locals are
    scalars, so "no earlier assignment" is then computed directly from the schedule order, and
    the assignments a read may see are all earlier ones (a superset of the last one, which
    only makes the typing of locals more conservative)."""
    schedule = program.schedule_map.intersect_domain(program.domain)
    ctx = sinks.get_ctx()
    ctx.set_max_operations(FLOW_OPERATIONS)
    ctx.reset_operations()
    try:
        flow = isl.UnionAccessInfo.from_sink(sinks).set_must_source(sources).set_schedule_map(
            schedule).compute_flow()
        return flow.get_may_no_source().domain(), flow.get_must_dependence()
    except isl.Error:
        pass
    finally:
        ctx.set_max_operations(0)   # no limit, isl's default
        ctx.reset_operations()
    earlier = schedule.lex_gt_union_map(schedule)   # read -> instances scheduled before
    seen = earlier.intersect(sinks.apply_range(sources.reverse()))
    return sinks.domain().subtract(seen.domain()), seen


def unassigned_local_reads(program: ir.Program) -> list[tuple[ir.Statement, isl.Set]]:
    """(statement, parametric set of its instances) that read a local scalar no earlier
    instance has assigned: Python raises UnboundLocalError there."""
    return _local_flow(program)[0]


def local_writers_seen(program: ir.Program) -> dict[str, set[str]]:
    """Reading statement -> the statements whose local assignments its reads can see (a
    statement reads each local it uses before its own assignment, so one set per statement)."""
    return _local_flow(program)[1]
