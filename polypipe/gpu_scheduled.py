"""Lowering of a nest that is not a contraction: isl's schedule -> kernels and host launches.

This is the general GPU mapping (docs/design.md, "GPU mapping of computed schedules"), as PPCG
does it, in four steps over the tree :func:`~polypipe.analysis.scheduling.compute_schedule`
returns (its validity and parallel members already proved):

1. **kernel roots**: walking down from the root, a band whose first member is parallel is a
   kernel; the sequential members before it, and every band without a parallel member that
   has a parallel band below, are *host loops*; a subtree with no parallel band at all is a
   one-thread kernel. The children of a sequence are separate launches in order (the
   scheduler's fission of the nest), except that consecutive children without a parallel
   loop are one one-thread kernel;
2. **launch keys**: each kernel's instances get the values of their host loops and the
   positions of the sequences above them, one tuple (:attr:`ScheduledKernel.launch_of`);
   launches run in the lexicographic order of those tuples, which is the tree's order;
3. **blocks and threads**: the leading parallel members of the kernel's band (at most two)
   are tiled by the configuration's thread shape: tile loops to ``blockIdx``, point loops to
   ``threadIdx`` (one instance per thread and tile), everything below runs in the thread, in
   the tree's order;
4. **the kernel program**: the nest's statements, unchanged, restricted to one launch by
   parameters ``pp_h<d>`` (the host values, kernel arguments) with the tiled, marked tree.

Nothing here is trusted: :func:`polypipe.analysis.scheduled_proof.prove_scheduled` proves
the launches, blocks and threads against the nest's dependences.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import islpy as isl

from . import ir, marks
from .errors import InternalError
from .gpu_config import GpuConfig

_NODE = isl.schedule_node_type
HOST_PREFIX = "pp_h"       # the kernel parameter holding host value d is pp_h<d>
MAX_MAPPED = 2             # parallel members mapped to blocks and threads (y, x)


@dataclass(frozen=True, eq=False)
class ScheduledKernel:
    """One kernel of a computed schedule: launched once per value of its host loops."""

    program: ir.Program          # the nest's statements; its schedule's domain pinned by pp_h<d>
    config: GpuConfig
    nest: int                    # which top-level nest of the program it belongs to
    threads: tuple[int, ...]     # the thread block shape (outer to inner)
    block_depth: int             # schedule depth of the block band (its host loops)
    block_rank: int              # block (and thread) dimensions; 1 with one thread
    host_params: tuple[str, ...]
    launch_of: isl.UnionMap      # instance -> launch key (host values, sequence positions)
    key_width: int               # dimensions of a launch key (one width per nest)
    host_positions: tuple[int, ...]   # where in the key the host values are
    block_of: isl.UnionMap       # instance -> block coordinates
    thread_of: isl.UnionMap      # instance -> thread coordinates
    launch_domain: isl.UnionSet  # the kernel's instances over all its launches
    tree: isl.Schedule           # the tiled, marked tree over launch_domain (not pinned)
    mapped: tuple[str, ...]      # what the blocks and threads iterate, for describe()
    host_loops: tuple[str, ...]  # what the host loops iterate (one per host parameter)
    one_thread_reason: str = ""  # why the kernel runs in one thread (empty: it does not)
    point_of: isl.UnionMap | None = None   # instance -> its point of the mapped band members
    log: tuple[str, ...] = ()
    note: str = ""               # why the nest is not lowered as a contraction
    private: tuple[str, ...] = ()  # locals each thread keeps its own copy of (proved)
    operands: tuple = field(default=())      # nothing is promoted (no pipelined reads yet)
    unpromoted: tuple = field(default=())

    @property
    def name(self) -> str:
        return self.program.name

    def host_ranges(self, params: dict[str, int]) -> dict[str, tuple[int, int]]:
        """The interval of each host parameter over the launches at these sizes."""
        from polypipe.analysis.bounds import fix_parameters

        keys = self.launch_of.intersect_domain(self.launch_domain).range()
        keys = keys.intersect_params(fix_parameters(keys.params(), params))
        ranges: dict[str, tuple[int, int]] = {}

        def widen(piece: isl.Set) -> None:
            for name, position in zip(self.host_params, self.host_positions):
                low = piece.dim_min_val(position).to_python()
                high = piece.dim_max_val(position).to_python()
                old = ranges.get(name, (low, high))
                ranges[name] = (min(old[0], low), max(old[1], high))

        keys.foreach_set(widen)
        return ranges

    def describe(self) -> str:
        host = (f"launched per value of the host loops ({', '.join(self.host_loops)}) as "
                f"({', '.join(self.host_params)})" if self.host_params else "launched once")
        own = f"; private per thread: {', '.join(self.private)}" if self.private else ""
        if self.one_thread_reason:
            return f"{self.name}: one thread ({self.one_thread_reason}), {host}{own}"
        return (f"{self.name}: blocks x threads {self.threads} over {', '.join(self.mapped)}"
                f", {host}{own}")


@dataclass(frozen=True)
class _Root:
    """Where a kernel starts: the path of child positions from the root, the band members of
    the node at the path that are host loops (``offset``), and the launch key above it."""

    path: tuple[int, ...]
    offset: int
    key: tuple             # ("band", UnionPwAff) | ("position", int), outermost first
    parallel: bool
    parts: int = 1         # consecutive children of a sequence from the path's last one


def lower_scheduled(nest: ir.Program, schedule: isl.Schedule, config: GpuConfig,
                    first_name: str, nest_index: int) -> tuple[ScheduledKernel, ...]:
    """The kernels of ``nest`` (a program of one top-level nest, number ``nest_index``)
    under its computed ``schedule``, named ``first_name``, ``first_name`` + ``_1``, ... in
    the tree's order."""
    roots: list[_Root] = []
    _walk(schedule.get_root(), (), (), roots)
    width = max(len(r.key) for r in roots)
    kernels = []
    for index, root in enumerate(roots):
        name = first_name if index == 0 else f"{first_name}_{index}"
        kernels.append(_kernel(nest, schedule, root, width, config, name, nest_index))
    return tuple(kernels)


def _walk(node: isl.ScheduleNode, path: tuple, key: tuple, roots: list) -> None:
    kind = node.get_type()
    if kind == _NODE.band:
        flags = [bool(node.band_member_get_coincident(i)) for i in range(node.band_n_member())]
        if True in flags or not _parallel_below(node.child(0)):
            offset = flags.index(True) if True in flags else 0
            roots.append(_Root(path, offset, key + _members(node, range(offset)), True in flags))
            return
        _walk(node.child(0), path + (0,), key + _members(node, range(len(flags))), roots)
    elif kind in (_NODE.sequence, _NODE.set):
        position = 0
        while position < node.n_children():
            # Consecutive children without a parallel loop are one one-thread kernel: one
            # launch where there would be one per child (durbin: four per k instead of seven).
            parts = 0
            while (position + parts < node.n_children()
                   and not _parallel_below(node.child(position + parts))):
                parts += 1
            where, key_here = path + (position,), key + (("position", position),)
            if parts > 1:
                roots.append(_Root(where, 0, key_here, False, parts))
            else:
                _walk(node.child(position), where, key_here, roots)
            position += max(parts, 1)
    elif kind == _NODE.leaf:
        roots.append(_Root(path, 0, key, False))
    else:   # domain, filter, mark, context: no loop
        _walk(node.child(0), path + (0,), key, roots)


def _members(band: isl.ScheduleNode, members) -> tuple:
    partial = band.band_get_partial_schedule()
    return tuple(("band", partial.get_union_pw_aff(m)) for m in members)


def _parallel_below(node: isl.ScheduleNode) -> bool:
    if node.get_type() == _NODE.band and any(
            node.band_member_get_coincident(i) for i in range(node.band_n_member())):
        return True
    return any(_parallel_below(node.child(i)) for i in range(node.n_children()))


def _has_band(node: isl.ScheduleNode, parts: int) -> bool:
    """Whether the subtree at ``node`` (and its ``parts - 1`` next siblings) has a loop."""
    def below(n: isl.ScheduleNode) -> bool:
        return n.get_type() == _NODE.band or any(below(n.child(i))
                                                 for i in range(n.n_children()))

    if parts == 1:
        return below(node)
    parent, first = node.parent(), node.get_child_position()
    return any(below(parent.child(first + i)) for i in range(parts))


def _at(schedule: isl.Schedule, path: tuple) -> isl.ScheduleNode:
    node = schedule.get_root()
    for position in path:
        node = node.child(position)
    return node


def _kernel(nest: ir.Program, schedule: isl.Schedule, root: _Root, width: int,
            config: GpuConfig, name: str, nest_index: int) -> ScheduledKernel:
    node = _at(schedule, root.path)
    domain = node.get_domain()
    if root.parts > 1:      # the path ends at a filter: what reaches below each filter
        parent = node.parent()
        domain = parent.child(root.path[-1]).child(0).get_domain()
        for part in range(1, root.parts):
            domain = domain.union(parent.child(root.path[-1] + part).child(0).get_domain())
    if root.offset:
        node = node.band_split(root.offset).child(0)
    launch_of, host_positions = _launch_key(domain, root.key, width)
    host_params = tuple(f"{HOST_PREFIX}{d}" for d in range(len(host_positions)))
    depth = node.get_schedule_depth()
    if root.parallel:
        node, threads, block_of, thread_of, point_of, mapped = _blocks_and_threads(
            node, config, depth)
        reason, rank = "", len(threads)
    else:
        threads, rank, mapped = (1,), 1, ()
        block_of = thread_of = point_of = isl.UnionMap.from_domain_and_range(
            domain, isl.UnionSet("{ [0] }"))
        reason = ("none of its instances runs" if domain.is_empty()
                  else "no loop of it is parallel" if _has_band(node, root.parts)
                  else "it has no loop")
        if root.parts > 1:
            reason += f"; {root.parts} consecutive parts of a sequence in one launch"
    tree = node.get_schedule()
    pinned = _pinned(domain, launch_of, width, host_positions, host_params)
    program = replace(nest, name=name, statements=_restricted(nest, domain),
                      schedule=tree.intersect_domain(pinned), launch=ir.Launch(threads),
                      transforms=nest.transforms + (
                          f"gpu_map_scheduled({config.describe()})",))
    log = (f"kernel root at depth {depth}: "
           + (f"{len(threads)} parallel member(s) tiled {threads} to blocks and threads"
              if root.parallel else f"one thread ({reason})"),)
    host_loops = tuple(member_text(value) for kind, value in root.key if kind == "band")
    return ScheduledKernel(program, config, nest_index, threads, depth, rank, host_params,
                           launch_of, width, host_positions, block_of.intersect_domain(domain),
                           thread_of.intersect_domain(domain), domain,
                           tree.intersect_domain(domain), mapped, host_loops, reason,
                           point_of.intersect_domain(domain), log)


def member_text(member: isl.UnionPwAff) -> str:
    """A schedule member as its expression (``i``), per statement where they differ
    (``S3: j | S0: 1 + i``)."""
    pieces: dict[str, str] = {}

    def piece(domain: isl.Set, aff: isl.Aff) -> None:
        head, _, tail = str(aff).rpartition("->")
        text = tail.strip(" {}")
        text = text[2:-2] if text.startswith("[(") and text.endswith(")]") else text
        pieces.setdefault(domain.get_tuple_name() or head, text)

    member.foreach_pw_aff(lambda pw: pw.foreach_piece(piece))
    if len(set(pieces.values())) == 1:
        return next(iter(pieces.values()))
    return " | ".join(f"{name}: {text}" for name, text in sorted(pieces.items()))


def _restricted(nest: ir.Program, domain: isl.UnionSet) -> tuple[ir.Statement, ...]:
    """The statements with instances in ``domain``, their domains restricted to it (a
    sequence may give a statement's instances to several kernels)."""
    statements = []
    for stmt in nest.statements:
        part = domain.extract_set(stmt.domain.get_space())
        if part.is_empty():
            continue
        statements.append(stmt if part.is_equal(stmt.domain) else replace(stmt, domain=part))
    return tuple(statements)


def _blocks_and_threads(node: isl.ScheduleNode, config: GpuConfig, depth: int):
    """Tile the band's leading parallel members by the thread shape and mark the tile band
    ``block`` and the point band ``thread:<depth>``."""
    flags = [bool(node.band_member_get_coincident(i)) for i in range(node.band_n_member())]
    count = min(MAX_MAPPED, flags.index(False) if False in flags else len(flags))
    if count < len(flags):
        node = node.band_split(count)
    threads = (tuple(config.threads) if count == 2 else (config.threads[0] * config.threads[1],))
    sizes = isl.MultiVal.zero(node.band_get_space())
    for member, size in enumerate(threads):
        sizes = sizes.set_val(member, isl.Val(size))
    partial = node.band_get_partial_schedule()
    mapped = tuple(member_text(partial.get_union_pw_aff(m)) for m in range(count))
    point_of = isl.UnionMap.from_multi_union_pw_aff(partial)
    ctx = node.get_ctx()
    scale, shift = ctx.get_tile_scale_tile_loops(), ctx.get_tile_shift_point_loops()
    ctx.set_tile_scale_tile_loops(0)    # block coordinates count tiles ...
    ctx.set_tile_shift_point_loops(1)   # ... and thread coordinates start at 0 in each
    try:
        node = node.band_tile(sizes)
    finally:
        ctx.set_tile_scale_tile_loops(scale)
        ctx.set_tile_shift_point_loops(shift)
    block_of = isl.UnionMap.from_multi_union_pw_aff(node.band_get_partial_schedule())
    thread_of = isl.UnionMap.from_multi_union_pw_aff(
        node.child(0).band_get_partial_schedule())
    node = node.child(0).insert_mark(isl.Id(marks.mark_name(marks.THREAD, depth + count)))
    node = node.parent().insert_mark(isl.Id(marks.mark_name(marks.BLOCK)))
    return node, threads, block_of, thread_of, point_of, mapped


def _launch_key(domain: isl.UnionSet, key: tuple, width: int):
    """instance -> launch key padded with zeros to ``width``, and where the host values are."""
    result = isl.UnionMap.from_domain_and_range(domain, isl.UnionSet("{ [] }"))
    positions = []
    for index, (kind, value) in enumerate(key + (("position", 0),) * (width - len(key))):
        if kind == "band":
            piece = isl.UnionMap.from_union_pw_aff(value).intersect_domain(domain)
            positions.append(index)
        else:
            piece = isl.UnionMap.from_domain_and_range(domain, isl.UnionSet(f"{{ [{value}] }}"))
        result = result.flat_range_product(piece)
    if not result.is_single_valued():
        raise InternalError("a launch key of the computed schedule is not a function")
    return result, tuple(positions)


def _pinned(domain: isl.UnionSet, launch_of: isl.UnionMap, width: int, positions: tuple,
            host_params: tuple) -> isl.UnionSet:
    """The instances of one launch: host value ``d`` of the key equal to parameter
    ``pp_h<d>``."""
    if not positions:
        return domain
    names = [f"k{i}" for i in range(width)]
    equalities = " and ".join(f"{names[p]} = {h}" for p, h in zip(positions, host_params))
    launch = isl.UnionSet(f"[{', '.join(host_params)}] -> {{ [{', '.join(names)}] : "
                          f"{equalities} }}")
    return launch_of.intersect_range(launch).domain().intersect(domain)


def launch_sequence(kernels, params: dict[str, int]) -> list[tuple[int, tuple[int, ...]]]:
    """(kernel index, host values) of every launch at these sizes, in order: nest by nest,
    and within a nest's scheduled kernels by launch key (the order the proof checked)."""
    launches = []
    for index, kernel in enumerate(kernels):
        if not isinstance(kernel, ScheduledKernel):
            launches.append(((index,), (), index, ()))
            continue
        first = next(i for i, k in enumerate(kernels)
                     if isinstance(k, ScheduledKernel) and k.nest == kernel.nest)
        for point in _points(kernel.launch_of.intersect_domain(kernel.launch_domain), params):
            launches.append(((first,), point, index, tuple(point[p]
                                                           for p in kernel.host_positions)))
    return [(index, host) for _, _, index, host in sorted(launches)]


def _points(relation: isl.UnionMap, params: dict[str, int]) -> list[tuple[int, ...]]:
    """The points of ``relation``'s range at these sizes, as tuples."""
    from polypipe.analysis.bounds import fix_parameters

    values = relation.range()
    values = values.intersect_params(fix_parameters(values.params(), params))
    points: list[tuple[int, ...]] = []
    values.foreach_point(lambda p: points.append(tuple(
        p.get_coordinate_val(isl.dim_type.set, d).to_python()
        for d in range(p.get_space().dim(isl.dim_type.set)))))
    return points
