"""Which local scalars of a nest a GPU mapping of isl's schedule may give each thread its own
copy of, and the constraints that let isl's scheduler use that freedom.

A local scalar is one variable, so its anti and output dependences order every instance that
touches it: symm's ``temp2`` (written and read once per ``(i, j)``) makes its whole nest one
thread. Two steps, both checked later by the proof
(:func:`polypipe.analysis.scheduled_proof.prove_scheduled` with ``private``):

* :func:`private_candidates`: the locals no value of which enters or leaves the nest (isl's
  dataflow of that local alone, over the whole program): a thread's copy starts with no value
  and is gone when its launch ends;
* :func:`live_ranges`: their flows and their anti and output dependences, for isl's
  *conditional validity* (PPCG's live-range reordering): the scheduler drops those anti and
  output dependences except where two live ranges would otherwise interleave.
"""

from __future__ import annotations

import islpy as isl

from . import ir


def private_candidates(program: ir.Program, nest: ir.Program) -> frozenset:
    """Locals of ``nest`` (a nest of ``program``) whose values neither come into it nor leave
    it: every read of one in ``nest`` has its writer in ``nest``, and no read elsewhere
    has."""
    mine = {s.name for s in nest.statements}
    candidates = {a.array for s in nest.statements for a in s.accesses
                  if program.array(a.array).is_local}
    return frozenset(name for name in candidates if _dead_outside(program, mine, name))


def live_ranges(deps, private: frozenset) -> tuple[isl.UnionMap, isl.UnionMap]:
    """(flow, anti and output) of the ``private`` locals: isl's conditional validity."""
    def relations(kinds):
        return (d.relation for d in deps.records if d.array in private and d.kind in kinds)

    space = deps.flow.get_space()
    return _union(relations(("flow",)), space), _union(relations(("anti", "output")), space)


def _dead_outside(program: ir.Program, mine: set, local: str) -> bool:
    """Whether no value of ``local`` flows into or out of the statements ``mine``."""
    space = program.context.get_space()
    reads = _union((a.relation for s in program.statements for a in s.reads
                    if a.array == local), space)
    writes = _union((s.target.relation for s in program.statements
                     if s.target.array == local), space)
    flow = (isl.UnionAccessInfo.from_sink(reads).set_must_source(writes)
            .set_schedule_map(program.schedule.get_map()).compute_flow())
    inside = isl.UnionSet.empty(space)
    for stmt in program.statements:
        if stmt.name in mine:
            inside = inside.union(isl.UnionSet.from_set(stmt.domain))
    crossing = flow.get_may_dependence()
    into = crossing.intersect_range(inside).subtract_domain(inside)
    out = crossing.intersect_domain(inside).subtract_range(inside)
    unset = flow.get_may_no_source().domain().intersect(inside)
    return into.is_empty() and out.is_empty() and unset.is_empty()


def _union(maps, space: isl.Space) -> isl.UnionMap:
    result = isl.UnionMap.empty(space)
    for relation in maps:
        result = result.union(isl.UnionMap.from_map(relation))
    return result
