"""Which local scalars of a nest a GPU mapping of isl's schedule may give each thread its own
copy of, and the constraints that let isl's scheduler use that freedom.

A local scalar is one variable, so its anti and output dependences order every instance that
touches it: symm's ``temp2`` (written and read once per ``(i, j)``) makes its whole nest one
thread. Two steps, both checked later by the proof
(:func:`polypipe.analysis.scheduled_proof.prove_scheduled` with ``private``):

* :func:`private_candidates`: the locals no value of which enters or leaves the nest (the
  nest's own dataflow for what enters; for what leaves, whether a later nest reads the
  local before writing it): a thread's copy starts with no value and is gone when its
  launch ends;
* :func:`live_ranges`: their flows and their anti and output dependences, for isl's
  *conditional validity* (PPCG's live-range reordering): the scheduler drops those anti and
  output dependences except where two live ranges would otherwise interleave.
"""

from __future__ import annotations

import islpy as isl

from . import ir
from .analysis.dependences import schedule_layout, union_of


def private_candidates(program: ir.Program, nest: ir.Program, deps) -> frozenset:
    """Locals of ``nest`` (a nest of ``program``, ``deps`` its dependences) whose values
    neither come into it nor leave it: every read of one in ``nest`` has its writer in
    ``nest`` (nothing of it in ``deps.live_in``), and no read elsewhere has."""
    mine = {s.name for s in nest.statements}
    candidates = {a.array for s in nest.statements for a in s.accesses
                  if program.array(a.array).is_local}
    entering: set = set()
    deps.live_in.range().foreach_set(lambda e: entering.add(e.get_tuple_name()))
    return frozenset(name for name in candidates - entering
                     if not _leaves(program, mine, name))


def live_ranges(deps, private: frozenset) -> tuple[isl.UnionMap, isl.UnionMap]:
    """(flow, anti and output) of the ``private`` locals: isl's conditional validity."""
    def relations(kinds):
        return (d.relation for d in deps.records if d.array in private and d.kind in kinds)

    like = deps.program.context
    return (union_of(relations(("flow",)), like),
            union_of(relations(("anti", "output")), like))


# isl's dataflow of one local can take long on some nests (fuzz seed 31457: 48 s); past this
# many seconds the local is taken as leaving its nest (kept shared: slower, never wrong).
LEAVES_SECONDS = 5.0


def _leaves(program: ir.Program, mine: set, local: str) -> bool:
    """:func:`_may_leave` within :data:`LEAVES_SECONDS` (in a forked child, as isl's
    scheduler runs: :mod:`polypipe.analysis.bounded`); True when it takes longer."""
    from .analysis.bounded import ChildFailed, Overrun, run_bounded

    try:
        return run_bounded(lambda: "1" if _may_leave(program, mine, local) else "0",
                           LEAVES_SECONDS) != "0"
    except (Overrun, ChildFailed):
        return True


def _may_leave(program: ir.Program, mine: set, local: str) -> bool:
    """Whether a value of ``local`` may leave the statements ``mine`` (one top-level nest):
    whether a later nest that reads it can read a value from before that nest (isl's
    dataflow of the local inside that later nest alone; conservative where a nest between
    them writes it too). Top-level nests run one after the other, so earlier nests cannot
    read it."""
    from .analysis.contraction import top_level_nests

    nests = top_level_nests(program)
    here = next(n for n, nest in enumerate(nests) if {s.name for s in nest} & mine)
    time = schedule_layout(program.schedule).time_union()
    for later in nests[here + 1:]:
        reads = union_of((a.relation for s in later for a in s.reads if a.array == local),
                         program.context)
        if reads.is_empty():
            continue
        writes = union_of((s.target.relation for s in later if s.target.array == local),
                          program.context)
        flow = (isl.UnionAccessInfo.from_sink(reads.coalesce())
                .set_must_source(writes.coalesce()).set_schedule_map(time).compute_flow())
        if not flow.get_may_no_source().is_empty():
            return True
    return False
