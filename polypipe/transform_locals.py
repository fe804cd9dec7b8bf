"""Scalar expansion of a local: ``expand_local(program, "acc")``, proved and logged.

Before (gemm with a local accumulator)::

    for i in range(M):
        for j in range(N):
            acc = 0.0                    # S0
            for k in range(K):
                acc += A[i, k] * B[k, j] # S1
            C[i, j] = acc                # S2

After ``expand_local(p, "acc")``: ``acc`` becomes the array ``acc_x[i, j]`` (one element per
iteration of the loops that enclose every use of it, here ``i`` and ``j``); every use indexes
it with its own iterators of those loops. The schedule is unchanged.

Legal exactly when no value of the local flows from one iteration of those loops to another
(exact value-based dataflow with isl) and every read sees an assignment: then each iteration
reads only what it wrote, which is what it reads from its own element. Refused otherwise with
a :class:`~polypipe.errors.LegalityError` naming the two instances (or the reading instance)
and the local. The GPU mapping (:func:`polypipe.analysis.contraction.recognise`) expands the
accumulator of a contraction this way.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import islpy as isl

from . import ir
from .errors import LegalityError, ScheduleError, public

if TYPE_CHECKING:
    from .kernel import Kernel


@public
def expand_local(program: ir.Program | Kernel, local: str) -> ir.Program:
    """``program`` with local scalar ``local`` expanded over its enclosing loops (module
    docstring); the new array is ``<local>_x``."""
    from polypipe.analysis.dependences import as_program

    program = as_program(program, "expand_local")
    if not isinstance(local, str) or local not in {a.name for a in program.arrays
                                                   if a.is_local}:
        names = ", ".join(sorted(a.name for a in program.arrays if a.is_local)) or "none"
        raise ScheduleError(f"expand_local(): {local!r} is not a local scalar of "
                            f"{program.name} (locals: {names})")
    users = [s for s in program.statements if any(a.array == local for a in s.accesses)]
    depth = _common_depth(users)
    if depth == 0:
        raise ScheduleError(f"the uses of local `{local}` share no loop; there is nothing to "
                            "expand it over")
    _prove(program, local, users, depth)
    expanded = f"{local}_x"
    statements = tuple(_expanded(stmt, local, expanded, depth) if stmt in users else stmt
                       for stmt in program.statements)
    arrays = tuple(a for a in program.arrays if a.name != local) + (
        ir.Array(expanded, depth, (None,) * depth, is_local=False, memory="local"),)
    return replace(program, statements=statements, arrays=arrays,
                   transforms=program.transforms + (f"expand_local(local={local!r})",))


def _common_depth(users: list[ir.Statement]) -> int:
    """How many loops enclose every statement that uses the local."""
    common = list(users[0].loop_ids) if users else []
    for stmt in users[1:]:
        prefix = 0
        while (prefix < min(len(common), len(stmt.loop_ids))
               and common[prefix] == stmt.loop_ids[prefix]):
            prefix += 1
        common = common[:prefix]
    return len(common)


def _prove(program: ir.Program, local: str, users: list[ir.Statement], depth: int) -> None:
    """Refuse unless every read of ``local`` sees an assignment of the same iteration of the
    ``depth`` common loops."""
    from polypipe.analysis.bounds import array_accesses, scalar_flow

    sinks, sources = array_accesses(program, users, lambda name: name == local)
    unread, flow = scalar_flow(program, sinks, sources)
    if not unread.is_empty():
        point = unread.sample_point()
        raise LegalityError(f"expand_local(local={local!r}): {_instance(program, point)} "
                            f"reads `{local}` before any assignment{_sizes(point)}; its "
                            "element would hold no value")
    for relation in _maps(flow):
        crossing = relation.intersect(_different_iteration(relation, depth))
        if not crossing.is_empty():
            pair = crossing.sample()
            sink, source = pair.range().sample_point(), pair.domain().sample_point()
            raise LegalityError(
                f"expand_local(local={local!r}): {_instance(program, sink)} reads the "
                f"`{local}` that {_instance(program, source)} assigned in another iteration "
                f"of the {depth} loop(s) enclosing every use{_sizes(sink)}; with one "
                f"`{local}` per iteration it would not see that value")


def _instance(program: ir.Program, point: isl.Point) -> str:
    from polypipe.analysis.bounds import describe_instance, point_values

    stmt = program.statement(point.get_space().get_tuple_name(isl.dim_type.set))
    return describe_instance(stmt, point_values(point))


def _sizes(point: isl.Point) -> str:
    space = point.get_space()
    values = [f"{space.get_dim_name(isl.dim_type.param, i)}="
              f"{point.get_coordinate_val(isl.dim_type.param, i).to_python()}"
              for i in range(space.dim(isl.dim_type.param))]
    return f" (for {', '.join(values)})" if values else ""


def _maps(union: isl.UnionMap) -> list[isl.Map]:
    result: list[isl.Map] = []
    union.foreach_map(result.append)
    return result


def _different_iteration(relation: isl.Map, depth: int) -> isl.Map:
    """Pairs of ``relation``'s space whose first ``depth`` iterators differ somewhere."""
    universe = isl.Map.universe(relation.get_space())
    same = universe
    for d in range(depth):
        same = same.equate(isl.dim_type.in_, d, isl.dim_type.out, d)
    return universe.subtract(same)


def _expanded(stmt: ir.Statement, local: str, expanded: str, depth: int) -> ir.Statement:
    iterators = stmt.iterators[:depth]

    def expand(access: ir.Access) -> ir.Access:
        if access.array != local:
            return access
        text = (f"{{ {stmt.name}[{', '.join(stmt.iterators)}] -> "
                f"{expanded}[{', '.join(iterators)}] }}")
        relation = isl.Map(text).align_params(stmt.domain.get_space()).intersect_domain(
            stmt.domain)
        return replace(access, array=expanded, indices=tuple(iterators), relation=relation)

    reads = tuple(expand(a) for a in stmt.reads)
    mapping = {id(old): new for old, new in zip(stmt.reads, reads)}
    return replace(stmt, target=expand(stmt.target), reads=reads,
                   value=ir.replace_reads(stmt.value, mapping))
