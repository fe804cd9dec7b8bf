"""A schedule computed by isl from the exact dependences, with its parallel loops proved.

This is the first pass of the general GPU mapping (issue 16): for a nest that is not a
contraction, where the source order has no parallel loop to map or has it in the wrong place,
isl's scheduler (Pluto's algorithm as isl implements it) chooses the loops.

Constraints, as PPCG sets them:

* **validity** on every flow, anti and output dependence (memory-based anti and output, since
  the arrays are not expanded): the schedule must run each sink after its source;
* **coincidence** on the same dependences: a band member isl marks coincident has distance 0
  on all of them within the band's outer iteration, so its iterations may run concurrently;
* **proximity** on flow: producers close to consumers;
* ``schedule_outer_coincidence``: isl looks for coincident members in the outermost band
  first, which is what a mapping to blocks and threads wants.

``schedule_outer_coincidence`` also exposes wavefronts: for an in-place sweep
``A[i, j] = A[i - 1, j] + A[i, j - 1]``, whose loops both carry dependences, isl returns a
sequential outer member ``i + j`` and a parallel inner one (the tests check that skew).

Nothing here is trusted: the result is proved with isl before it is returned, validity by
:func:`polypipe.analysis.legality.check_schedule` and every member called parallel by
:func:`prove_coincident`. A member isl called parallel that is not is an
internal error naming the two instances and the element, not a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

import islpy as isl

from polypipe import ir
from polypipe.errors import InternalError, ScheduleError

from .bounded import ChildFailed, Overrun, run_bounded
from .dependences import Dependences, as_program, dependences, statement_order
from .legality import check_schedule, concrete_pair, describe_dependence_pair

_NODE = isl.schedule_node_type

# isl's scheduler is exponential in the depth on some nests (see .bounded); past this many
# seconds the source order is used, as when the scheduler gives up. The slowest PolyBench
# kernel, heat-3d, takes about 10 s on a 2-core machine; the others under a second.
SCHEDULER_SECONDS = 60.0


@dataclass(frozen=True)
class Band:
    """One band of the computed schedule tree: the statements under it, how many loops are
    outside it on their path (``depth``), and which of its members are parallel."""

    statements: frozenset[str]
    depth: int
    coincident: tuple[bool, ...]
    permutable: bool

    @property
    def members(self) -> int:
        return len(self.coincident)

    @property
    def parallel(self) -> bool:
        return any(self.coincident)

    def __str__(self) -> str:
        kinds = ", ".join("parallel" if c else "sequential" for c in self.coincident)
        return (f"depth {self.depth}: {self.members}-member "
                f"{'permutable ' if self.permutable else ''}band ({kinds}) over "
                f"{', '.join(sorted(self.statements, key=statement_order))}")


@dataclass(frozen=True, eq=False)
class ComputedSchedule:
    """An isl schedule tree for ``program`` whose validity and parallel members are proved."""

    program: ir.Program
    schedule: isl.Schedule
    bands: tuple[Band, ...]          # in the tree's pre-order
    fallback: str = ""               # why the source order is used instead of isl's schedule

    def bands_of(self, statement: str) -> tuple[Band, ...]:
        """The bands on ``statement``'s path from the root, outermost first."""
        return tuple(b for b in self.bands if statement in b.statements)

    def parallel_band(self, statement: str) -> Band | None:
        """The outermost band on the statement's path with a parallel member: the loops a
        GPU mapping gives to blocks and threads (None: no parallelism at all)."""
        return next((b for b in self.bands_of(statement) if b.parallel), None)

    def sequential_outer(self, statement: str) -> int:
        """Loops outside the statement's parallel band (all of them if it has none): what
        runs as a host-side sequence of launches, or inside one thread."""
        band = self.parallel_band(statement)
        if band is not None:
            return band.depth + band.coincident.index(True)
        return sum(b.members for b in self.bands_of(statement))

    def describe(self) -> str:
        lines = [f"schedule of {self.program.name} computed by isl (validity and parallel "
                 "loops proved):" if not self.fallback else
                 f"schedule of {self.program.name}: the source order ({self.fallback})"]
        lines += [f"  {band}" for band in self.bands]
        for stmt in self.program.statements:
            band = self.parallel_band(stmt.name)
            where = ("no parallel loop" if band is None else
                     f"{self.sequential_outer(stmt.name)} sequential loop(s) outside its "
                     "parallel band")
            lines.append(f"  {stmt.name}: {where}")
        return "\n".join(lines)


def compute_schedule(program, deps: Dependences | None = None,
                     live_ranges: tuple[isl.UnionMap, isl.UnionMap] | None = None
                     ) -> ComputedSchedule:
    """isl's schedule of ``program`` (a ``@polypipe.kernel`` function or its program) from its
    dependences, proved (see the module docstring).

    ``live_ranges`` = (flow, anti and output) of locals left out of ``deps`` because each
    thread will have its own copy: isl's conditional validity keeps those anti and output
    dependences only where they separate two live ranges (the flows) that would otherwise
    interleave, as PPCG's live-range reordering does."""
    program = as_program(program, "compute_schedule")
    deps = deps if deps is not None else dependences(program)
    validity = _ordering(deps).coalesce()
    if not program.statements:
        raise ScheduleError(f"{program.name} has no statement to schedule")
    domain = program.domain
    constraints = (isl.ScheduleConstraints.on_domain(domain).set_context(program.context)
                   .set_validity(validity).set_coincidence(validity)
                   .set_proximity(deps.flow.coalesce()))
    if live_ranges is not None:
        constraints = constraints.set_conditional_validity(*live_ranges)
    fallback = ""
    try:
        schedule = _bounded_schedule(constraints)
    except (isl.Error, ChildFailed) as exc:
        # isl's scheduler gives up on some nests ("unable to carry dependences", fuzz seed
        # 33861); the source order is always valid, with no loop called parallel.
        fallback = f"isl's scheduler failed ({str(exc).split(':')[-1].strip()})"
    except Overrun:
        fallback = f"isl's scheduler did not finish within {SCHEDULER_SECONDS:g} s"
    if fallback:
        schedule = _sequential(program.schedule)
    if schedule is None:
        raise InternalError(f"isl found no schedule for {program.name}, although its source "
                            "order is one")
    check_schedule(program, schedule, deps=deps)      # DependenceViolation: an isl bug
    bands = _bands(program, schedule, deps)
    return ComputedSchedule(program, schedule, bands, fallback)


def _sequential(schedule: isl.Schedule) -> isl.Schedule:
    """``schedule`` with every band member marked not coincident."""
    def clear(node: isl.ScheduleNode) -> isl.ScheduleNode:
        if node.get_type() == _NODE.band:
            for member in range(node.band_n_member()):
                node = node.band_member_set_coincident(member, 0)
        return node

    return schedule.get_root().map_descendant_bottom_up(clear).get_schedule()


def _bounded_schedule(constraints: isl.ScheduleConstraints) -> isl.Schedule | None:
    """isl's schedule for ``constraints``, computed within :data:`SCHEDULER_SECONDS` (see
    :mod:`.bounded`; the tree travels back as isl's text, coincidence flags included)."""
    ctx = constraints.get_ctx()

    def compute() -> str:
        schedule = _with_outer_coincidence(ctx, constraints.compute_schedule)
        return "" if schedule is None else str(schedule)

    text = run_bounded(compute, SCHEDULER_SECONDS)
    return isl.Schedule.read_from_str(ctx, text) if text else None


def _with_outer_coincidence(ctx: isl.Context, compute):
    """Run isl's scheduler with ``schedule_outer_coincidence`` on (a context-wide option,
    restored after)."""
    before = ctx.get_schedule_outer_coincidence()
    ctx.set_schedule_outer_coincidence(1)
    try:
        return compute()
    finally:
        ctx.set_schedule_outer_coincidence(before)


def _walk_bands(node: isl.ScheduleNode, depth: int, visit) -> None:
    """Call ``visit(band_node, depth)`` on every band in pre-order (``depth``: the band members
    above it)."""
    if node.get_type() == _NODE.band:
        visit(node, depth)
        depth += node.band_n_member()
    for position in range(node.n_children()):
        _walk_bands(node.child(position), depth, visit)


def _violation(node: isl.ScheduleNode, member: int, validity: isl.UnionMap
               ) -> isl.UnionMap | None:
    """The dependences that member ``member`` of a band node would run concurrently: pairs in
    the same iteration of every outer loop and of the band's earlier members, at different
    values of this one (None when there is none: the member is parallel)."""
    outer = node.get_prefix_schedule_union_map()
    partial = node.band_get_partial_schedule()
    for earlier in range(member):
        outer = outer.flat_range_product(
            isl.UnionMap.from_union_pw_aff(partial.get_union_pw_aff(earlier)))
    here = isl.UnionMap.from_union_pw_aff(partial.get_union_pw_aff(member))
    same_outer = outer.apply_range(outer.reverse())
    same_here = here.apply_range(here.reverse())
    concurrent = validity.intersect(same_outer).subtract(same_here)
    return None if concurrent.is_empty() else concurrent


def prove_coincident(program: ir.Program, node: isl.ScheduleNode, member: int,
                     deps: Dependences) -> None:
    """Raise InternalError, naming a dependence pair and its element, unless band member
    ``member`` of ``node`` carries no dependence of ``program``."""
    concurrent = _violation(node, member, _ordering(deps))
    if concurrent is None:
        return
    # The record a concurrent pair belongs to names its kind and array.
    for dep in deps.records:
        found = concurrent.intersect(isl.UnionMap.from_map(dep.relation))
        if found.is_empty():
            continue
        pair = concrete_pair(found.get_map_list().get_at(0), program.context)
        _, _, _, text = describe_dependence_pair(program, dep.kind, dep.array, pair)
        raise InternalError(f"band member {member} of the schedule of {program.name} is "
                            f"marked parallel but carries {dep.kind} dependence on "
                            f"{dep.array}:\n{text}")
    raise InternalError(f"band member {member} of the schedule of {program.name} runs "
                        "dependent instances concurrently that no dependence record holds")


def _ordering(deps: Dependences) -> isl.UnionMap:
    """Every pair of instances whose order matters: flow, anti and output."""
    return deps.flow.union(deps.anti).union(deps.output)


def _bands(program: ir.Program, schedule: isl.Schedule, deps: Dependences
           ) -> tuple[Band, ...]:
    bands: list[Band] = []

    def visit(node: isl.ScheduleNode, depth: int):
        flags = tuple(bool(node.band_member_get_coincident(i))
                      for i in range(node.band_n_member()))
        for member, flag in enumerate(flags):
            if flag:
                prove_coincident(program, node, member, deps)
        names: list[str] = []
        node.get_domain().foreach_set(lambda s: names.append(s.get_tuple_name()))
        bands.append(Band(frozenset(names), depth, flags, bool(node.band_get_permutable())))

    _walk_bands(schedule.get_root(), 0, visit)
    return tuple(bands)
