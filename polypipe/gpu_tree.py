"""The GPU schedule tree, built from the statements' placements with isl's schedule-tree API
(the last pass of :mod:`polypipe.lower`), and the coordinate maps the proofs check.

From the outside in::

    mark block
      band: block coordinates                       (every statement)
        sequence
          filter init:      mark thread:<d>; band: threads (atomic); sequence of
                            filter S: band: per-thread loops [; mark vector:<V>; band: lane]
          filter main loop: [band: outer reduction]; band: T (separate); sequence of phases,
                            each a filter: a barrier, or mark thread:<d>; band: threads; ...
                            (COMPUTE: band: reduction step; sequence of loads and updates)
          filter epilogue:  like init

Inside ``T`` every barrier-free phase has its own thread band: CUDA maps it to ``threadIdx``.
Thread marks carry the schedule depth of their band (:mod:`polypipe.marks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import islpy as isl

from . import marks
from .errors import InternalError, ScheduleError
from .gpu_ir import ElementPlacement, LoopPlacement, Part, Phase, Placement
from .gpu_mapping import TileMapping
from polypipe.analysis.contraction import affine_function


@dataclass(frozen=True)
class Where:
    """A statement's coordinates, element placements resolved to expressions."""

    instance: str
    block: tuple[str, ...]
    thread: tuple[str, ...] | None
    inner: tuple[str, ...]
    lane: str | None
    vector: int
    warp: bool = False


def resolve(tx: TileMapping, placement: Placement) -> Where:
    """Block, thread and per-thread loops of a placement as expressions of its instance."""
    if isinstance(placement, LoopPlacement):
        return Where(placement.instance, placement.block, placement.thread, placement.inner,
                     placement.lane, placement.vector, placement.warp)
    elements = tx.element_vars()
    inner = _via(placement, tx.fragment_loops(elements), tx)
    lane = None
    if placement.lane_last:   # the column position in its group: the lane loop
        inner, lane = inner[:-1], inner[-1]
    return Where(placement.instance, _via(placement, tx.block_of(elements), tx),
                 _via(placement, tx.thread_of(elements), tx), inner, lane, placement.vector)


def schedule_tree(domain: isl.UnionSet, tx: TileMapping, placements: dict[str, Placement],
                  where: dict[str, Where]) -> isl.Schedule:
    """The tree (module docstring); ``where`` is :func:`resolve` of every placement."""
    parts: list[tuple] = []
    for part in (Part.INIT, None, Part.EPILOGUE):
        if part is None:
            loop = [n for n, p in placements.items() if isinstance(p, LoopPlacement)]
            if loop:
                parts.append((loop, _main_loop(tx, placements, where, loop)))
            continue
        names = sorted((n for n, p in placements.items()
                        if isinstance(p, ElementPlacement) and p.part == part),
                       key=lambda n: placements[n].rank)
        if names:
            parts.append((names, _element_phase(tx, where, names)))
    everything = list(placements)
    tree = ("mark", marks.mark_name(marks.BLOCK),
            ("band", _mupa(tx, [(where[n].instance, where[n].block) for n in everything]), None,
             ("sequence", [(_filter(tx, [where[n].instance for n in names]), child)
                           for names, child in parts])))
    try:
        schedule = isl.Schedule.from_domain(domain)
        return _build(schedule.get_root().child(0), tree).get_schedule()
    except isl.Error as exc:
        raise InternalError(f"bad GPU schedule tree ({exc})") from None


def _element_phase(tx: TileMapping, where: dict[str, Where], names: list[str]) -> tuple:
    children = [(_filter(tx, [where[n].instance]), _inner(tx, where[n])) for n in names]
    band = ("band", _mupa(tx, [(where[n].instance, where[n].thread) for n in names]),
            "{ atomic[0]; atomic[1] }", ("sequence", children))
    return ("mark", marks.mark_name(marks.THREAD, len(tx.block_dims)), band)


def _main_loop(tx: TileMapping, placements: dict[str, Placement], where: dict[str, Where],
               names: list[str]) -> tuple:
    depth = len(tx.block_dims) + len(tx.r_outer) + 1
    by_phase: dict[Phase, list[str]] = {}
    for name in names:
        by_phase.setdefault(placements[name].phase, []).append(name)
    phases = []
    for phase in sorted(by_phase):
        members = sorted(by_phase[phase], key=lambda n: placements[n].order)
        instances = [where[n].instance for n in members]
        if placements[members[0]].thread is None:   # a barrier: block-level, no thread band
            phases.append((_filter(tx, instances), None))
            continue
        inner = ("sequence", [(_filter(tx, [where[n].instance]), _inner(tx, where[n]))
                              for n in members])
        if phase == Phase.COMPUTE:
            inner = ("band", _mupa(tx, [(where[n].instance, (placements[n].step,))
                                        for n in members]), None, inner)
        band = ("band", _mupa(tx, [(where[n].instance, where[n].thread) for n in members]),
                "{ atomic[0]; atomic[1] }", inner)
        phases.append((_filter(tx, instances),
                       ("mark", marks.mark_name(marks.THREAD, depth), band)))
    loop = ("band", _mupa(tx, [(where[n].instance, (placements[n].tile,)) for n in names]),
            "{ separate[0] }", ("sequence", phases))
    if tx.r_outer:
        loop = ("band", _mupa(tx, [(where[n].instance, placements[n].outer) for n in names]),
                None, loop)
    return loop


def _inner(tx: TileMapping, where: Where) -> tuple | None:
    """A statement's per-thread loops and, for a group of consecutive elements, its lane loop
    marked ``vector:<lanes>`` (CUDA prints it as one wide access where proved)."""
    lane = None
    if where.lane is not None:
        lane = ("mark", marks.mark_name(marks.VECTOR, where.vector),
                ("band", _mupa(tx, [(where.instance, (where.lane,))]), None, None))
    if not where.inner:
        return lane
    band = ("band", _mupa(tx, [(where.instance, where.inner)]), None, lane)
    return ("mark", marks.mark_name(marks.WARP), band) if where.warp else band


def _build(node: isl.ScheduleNode, tree: tuple | None) -> isl.ScheduleNode:
    """Insert ``tree`` at the leaf ``node``; returns the node now at that position."""
    if tree is None:
        return node
    kind = tree[0]
    if kind == "mark":
        inserted = node.insert_mark(isl.Id(tree[1]))
        return _build(inserted.child(0), tree[2]).parent()
    if kind == "band":
        _, mupa, options, child = tree
        inserted = node.insert_partial_schedule(mupa)
        if options:
            inserted = inserted.band_set_ast_build_options(isl.UnionSet(options))
        return _build(inserted.child(0), child).parent()
    filters = isl.UnionSetList.alloc(node.get_ctx(), len(tree[1]))
    for filter_, _ in tree[1]:
        filters = filters.add(filter_)
    sequence = node.insert_sequence(filters)
    for position, (_, child) in enumerate(tree[1]):
        sequence = _build(sequence.child(position).child(0), child).parent().parent()
    return sequence


def _mupa(tx: TileMapping, pieces: list[tuple[str, tuple[str, ...]]]
          ) -> isl.MultiUnionPwAff:
    """``[{ S[..] -> [(e0)]; ... }, { ... }]`` from per-statement expression lists."""
    columns = []
    for index in range(len(pieces[0][1])):
        columns.append("{ " + "; ".join(f"{inst} -> [({exprs[index]})]"
                                         for inst, exprs in pieces) + " }")
    return isl.MultiUnionPwAff(tx.prefix + "[" + ", ".join(columns) + "]")


def _filter(tx: TileMapping, instances: list[str]) -> isl.UnionSet:
    return isl.UnionSet(tx.prefix + "{ " + "; ".join(instances) + " }")


def coordinates(tx: TileMapping, placements: dict[str, Placement], where: dict[str, Where],
                pick) -> isl.UnionMap:
    """``{ instance -> [coordinates] }`` over every statement ``pick`` gives coordinates for
    (``pick(placement, where)``)."""
    parts = []
    for name, placement in placements.items():
        values = pick(placement, where[name])
        if values:
            parts.append(f"{placement.instance} -> [{', '.join(values)}]")
    return isl.UnionMap(tx.prefix + "{ " + "; ".join(parts) + " }")


def _via(placement: ElementPlacement, outputs: list[str], tx: TileMapping) -> tuple[str, ...]:
    """Express ``outputs`` (functions of the accumulator element) on a statement's instance.

    The element is taken as one affine function of the instance (``_element_function``) and
    ``outputs`` are pulled back over it without the statement's domain: over a domain that is
    a union of pieces (``if not (0 < j < M - 1)``), isl would otherwise simplify
    ``floor((j - 1)/8)`` differently on each piece (``-1`` where ``j = 0``), which is one
    function written several ways, not a piecewise mapping.
    """
    element = _element_function(placement.element, placement.instance)
    outputs_map = isl.PwMultiAff.from_map(tx.element_map(outputs))
    if outputs_map.n_piece() != 1:
        raise InternalError(f"the mapping of {tx.c.accumulator}'s elements is piecewise: "
                            f"{outputs_map}")
    pieces = []
    outputs_map.foreach_piece(lambda _, ma: pieces.append(ma))
    mapped = pieces[0].pullback_multi_aff(element)
    return tuple(_aff_expression(mapped.get_aff(dim))
                 for dim in range(mapped.dim(isl.dim_type.out)))


def _element_function(relation: isl.Map, instance: str) -> isl.MultiAff:
    """The accumulator element of each instance as one affine function on the domain.

    isl may write the function differently on different pieces of the domain
    (:func:`~polypipe.analysis.contraction.affine_function` finds one expression). A statement
    whose element really is piecewise (``C[i, i if i < N // 2 else N - 1 - i]``, ...) gets a
    ScheduleError: its instances cannot be given one block and thread by one formula.
    """
    function = affine_function(relation)
    if function is not None:
        return function
    raise ScheduleError(
        f"{instance}: the {relation.get_tuple_name(isl.dim_type.out)} element it touches is "
        f"not one affine function of its loop variables over its domain ({relation}); the GPU "
        "mapping gives each element's block and thread by one formula: split the statement "
        "so that each part touches its elements by one subscript expression")


def _aff_expression(aff: isl.Aff) -> str:
    """The body of an isl affine expression ``{ S[i, j] -> [(expr)] }`` as text."""
    text = str(aff)
    return text[text.index("-> [") + 4:text.rindex("]")]
