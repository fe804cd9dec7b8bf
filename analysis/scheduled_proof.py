"""Proof of the kernels :mod:`polypipe.gpu_scheduled` builds from a computed schedule.

Those kernels run the nest's statements unchanged (same instances, accesses and values); only
the order differs. On the GPU the order is:

* launches in the order of their keys (host loop values and sequence positions), one stream;
* inside a launch, no order at all between instances of different threads (there is no
  barrier in these kernels), and between blocks;
* inside one thread, the order of the kernel's tiled tree.

So the result equals the source's exactly when every flow, anti and output dependence
``x -> y`` of the nest (the ones :func:`~polypipe.analysis.dependences.dependences` computes:
complete for ordering) goes forward in that order. One time vector expresses all of it,

    T(x) = (launch key, kernel, block, thread, the kernel tree's time),

with the kernel, block and thread dimensions *parallel* (a dependence between two instances
of one launch must not change them). :func:`~polypipe.analysis.legality.check_schedule`
checks exactly this. It also proves that every instance runs once: the kernels' instance sets
partition the nest's domain and each launch key is a function, and that each thread
coordinate is inside the thread block.

Each kernel is built from a schedule already proved, so a failure here is a broken invariant
of the lowering: an :class:`~polypipe.errors.InternalError` naming the pair and the element,
never a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

import islpy as isl

from polypipe import ir
from polypipe.errors import InternalError

from .dependences import Dependences, dependences, union_of
from .legality import DependenceViolation, check_schedule

# Block and thread coordinates are padded to this many dimensions each in the proof's time.
COORDINATES = 2


@dataclass(frozen=True)
class ScheduledProof:
    """What was proved of the kernels of one nest."""

    kernels: tuple[str, ...]
    dependences: int          # dependence records of the nest checked
    launches_ordered: bool    # some dependence crosses launches (ordered by the host loop)
    private: tuple[str, ...] = ()   # locals each thread keeps its own copy of

    def __str__(self) -> str:
        across = ("; the host sequence orders the dependences between launches"
                  if self.launches_ordered else "")
        own = (f"; each thread has its own {', '.join(self.private)} (every value of it "
               "flows inside one thread)" if self.private else "")
        return (f"{', '.join(self.kernels)}: the nest's {self.dependences} dependence "
                f"record(s) run forward, none between two threads or blocks of one "
                f"launch{across}; each instance runs once, in a thread of its block{own}")


class NotPrivate(Exception):
    """A local cannot be private to each thread under this mapping: a value of it flows
    between threads or launches, or two of its live ranges interleave in one thread. A
    refusal of the privatisation (the caller maps the nest without it), never a wrong
    mapping."""


def prove_scheduled(nest: ir.Program, kernels, deps: Dependences | None = None,
                    private: frozenset = frozenset()) -> ScheduledProof:
    """Prove ``kernels`` (the ScheduledKernels of ``nest``) equal to the nest (see the
    module docstring); InternalError otherwise.

    ``private`` names locals each thread keeps its own copy of: every flow of their values
    must stay in one thread of one launch (else :class:`NotPrivate`), and only the anti and
    output dependences on them between instances of one thread still order anything (the
    copies of different threads are different variables)."""
    deps = deps if deps is not None else dependences(nest)
    _partition(nest, kernels)
    time = None
    for position, kernel in enumerate(kernels):
        _threads_inside(kernel)
        here = _time(kernel, position)
        time = here if time is None else time.union(here)
    width = kernels[0].key_width
    parallel = list(range(width, width + 1 + 2 * COORDINATES))
    if private:
        same = _same_thread(time, parallel[-1] + 1)
        _check_private_flow(deps, private, same)
        deps = private_dependences(deps, private, same)
    try:
        # A nest none of whose instances runs has no time vector to check (and no dependence).
        if not nest.domain.is_empty():
            check_schedule(nest, time, parallel=parallel, deps=deps)
    except DependenceViolation as violation:
        if violation.array in private and violation.kind != "flow":
            raise NotPrivate(f"two live ranges of {violation.array} interleave in one "
                             f"thread: {violation}") from None
        raise InternalError(f"the GPU mapping of {nest.name}'s computed schedule is wrong "
                            f"(launch key dimensions 0..{width - 1}, then kernel, block and "
                            f"thread): {violation}") from None
    launch = kernels[0].launch_of
    for kernel in kernels[1:]:
        launch = launch.union(kernel.launch_of)
    ordering = deps.flow.union(deps.anti).union(deps.output)
    keys = ordering.apply_domain(launch).apply_range(launch)
    across = not keys.subtract(keys.domain().identity()).is_empty()
    return ScheduledProof(tuple(k.name for k in kernels), len(deps.records), across,
                          tuple(sorted(private)))


def _same_thread(time: isl.UnionMap, prefix: int) -> isl.UnionMap:
    """Pairs of instances with the same launch key, kernel, block and thread: the first
    ``prefix`` dimensions of their time vectors equal."""
    heads = []

    def head(relation: isl.Map) -> None:
        extra = relation.dim(isl.dim_type.out) - prefix
        if extra < 0:
            raise InternalError(f"a time vector of the proof has fewer than {prefix} "
                                "dimensions")
        relation = relation.project_out(isl.dim_type.out, prefix, extra)
        heads.append(isl.UnionMap.from_map(relation.reset_tuple_id(isl.dim_type.out)))

    time.foreach_map(head)
    thread = heads[0]
    for other in heads[1:]:
        thread = thread.union(other)
    return thread.apply_range(thread.reverse())


def _check_private_flow(deps: Dependences, private: frozenset, same: isl.UnionMap) -> None:
    """NotPrivate unless every flow of a ``private`` local's value stays in one thread."""
    for dep in deps.records:
        if dep.kind == "flow" and dep.array in private:
            relation = isl.UnionMap.from_map(dep.relation)
            if not relation.is_subset(same):
                raise NotPrivate(f"a value of {dep.array} flows from {dep.source} to "
                                 f"{dep.sink} in another thread or launch")


def private_dependences(deps: Dependences, private: frozenset,
                        same: isl.UnionMap | None = None) -> Dependences:
    """``deps`` as they stand when each thread has its own copy of the ``private`` locals:
    their anti and output dependences order only instances of one thread (the pairs in
    ``same``), or nothing (``same`` None: for isl's scheduler, which then need not keep the
    copies' uses apart; the proof checks the mapping it gives)."""
    from dataclasses import replace

    records = []
    for dep in deps.records:
        if dep.array not in private or dep.kind == "flow":
            records.append(dep)
            continue
        if same is None:
            continue
        inside = isl.UnionMap.from_map(dep.relation).intersect(same)
        if not inside.is_empty():
            records.append(replace(dep, relation=inside.extract_map(dep.relation.get_space())))

    def union(kind: str) -> isl.UnionMap:
        return union_of((d.relation for d in records if d.kind == kind), deps.program.context)

    return replace(deps, records=tuple(records), anti=union("anti"), output=union("output"))


def _time(kernel, position: int) -> isl.UnionMap:
    """T(x) of the kernel's instances (module docstring)."""
    domain = kernel.launch_domain
    time = kernel.launch_of.flat_range_product(
        isl.UnionMap.from_domain_and_range(domain, isl.UnionSet(f"{{ [{position}] }}")))
    for coordinates, rank in ((kernel.block_of, kernel.block_rank),
                              (kernel.thread_of, len(kernel.threads))):
        time = time.flat_range_product(_padded(coordinates, rank, domain))
    return time.flat_range_product(kernel.tree.get_map().intersect_domain(domain))


def _padded(coordinates: isl.UnionMap, rank: int, domain: isl.UnionSet) -> isl.UnionMap:
    if rank > COORDINATES:
        raise InternalError(f"{rank} block or thread dimensions; the proof expects at most "
                            f"{COORDINATES}")
    zeros = ", ".join(["0"] * (COORDINATES - rank))
    if not zeros:
        return coordinates
    return coordinates.flat_range_product(
        isl.UnionMap.from_domain_and_range(domain, isl.UnionSet(f"{{ [{zeros}] }}")))


def _partition(nest: ir.Program, kernels) -> None:
    """Every instance of the nest in exactly one kernel, with one launch key."""
    covered = None
    for kernel in kernels:
        domain = kernel.launch_domain
        if covered is not None and not covered.intersect(domain).is_empty():
            raise InternalError(f"{kernel.name} runs instances another kernel of "
                                f"{nest.name} runs too")
        covered = domain if covered is None else covered.union(domain)
        for relation in (kernel.launch_of, kernel.block_of, kernel.thread_of):
            if not relation.is_single_valued() or not relation.domain().is_equal(domain):
                raise InternalError(f"{kernel.name}: a launch key, block or thread is not a "
                                    "function of the instance")
    if not covered.is_equal(nest.domain):
        raise InternalError(f"the kernels of {nest.name} do not run every instance once: "
                            f"{nest.domain.subtract(covered)} is missing")


def _threads_inside(kernel) -> None:
    names = [f"t{d}" for d in range(len(kernel.threads))]
    bounds = " and ".join(f"0 <= {n} < {extent}" for n, extent in zip(names, kernel.threads))
    block = isl.UnionSet(f"{{ [{', '.join(names)}] : {bounds} }}")
    outside = kernel.thread_of.range().subtract(block)
    if not outside.is_empty():
        raise InternalError(f"{kernel.name}: thread coordinates {outside} are outside the "
                            f"thread block {kernel.threads}")
