"""The accumulator in registers (passes of :mod:`polypipe.lower`): its buffer, the statements
of the nest rewritten onto it, and the copies between it and the global array.

Each thread accumulates its ``BM/TM x BN/TN`` outputs in ``<C>_r``; the update runs ``R - 1``
reduction steps after the register loads it reads. Statements of the nest other than the update
(initialisation, final scaling) run once per element before or after the main loop, and
``copyin_<C>`` / ``copyout_<C>`` move the elements when the accumulator is a global array.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import islpy as isl

from . import ir
from .gpu_ir import Draft, ElementPlacement, LoopPlacement, Part, Phase, Slot
from .errors import InternalError
from .gpu_mapping import TileMapping, name_dims
from .gpu_pad import element_of_update


@dataclass(frozen=True)
class Accumulator:
    """The register accumulator and how an element of the nest's accumulator maps onto it."""

    buffer: str
    of_element: isl.Map     # { C[o] -> C_r[thread, fragment] }

    def access(self, tx: TileMapping, stmt: ir.Statement, access: ir.Access) -> ir.Access:
        """``access`` of the nest's accumulator by ``stmt``, onto the registers, over the
        instances the kernel runs (with tensor cores the update's whole tiles,
        polypipe.gpu_pad; the nest's own relation covers only its domain)."""
        if stmt.name == tx.c.update and tx.pads_tiles:
            element_of = element_of_update(tx).intersect_domain(tx.run_domain)
        else:
            element_of = tx.c.element_of[stmt.name]
        return replace(access, array=self.buffer, indices=(),
                       relation=element_of.apply_range(self.of_element))


def place_accumulator(tx: TileMapping, draft: Draft) -> Accumulator:
    buffer = draft.fresh(f"{tx.c.accumulator}_r")
    draft.arrays.append(ir.Array(buffer, 4, (None,) * 4, memory="register",
                                 extents=(tx.tm, tx.tn, tx.rm, tx.rn), thread_dims=2))
    elem = tx.element_vars()
    of_element = isl.Map(f"{tx.prefix}{{ {tx.element_space()} -> {buffer}"
                         f"[{', '.join(tx.thread_of(elem) + tx.fragment_of(elem))}] }}")
    draft.log.append(f"place_accumulator: {tx.c.accumulator} in registers {buffer} "
                     f"({tx.rm}x{tx.rn} per thread)")
    return Accumulator(buffer, of_element)


def rewrite_update(tx: TileMapping, draft: Draft, acc: Accumulator,
                   register_reads: dict[int, ir.Access]) -> None:
    """The update reads its operands' fragments and accumulates into registers, ``R - 1``
    reduction steps after the loads."""
    update = tx.update
    reads = []
    for index, access in enumerate(update.reads):
        if index in register_reads:
            reads.append(register_reads[index])
        elif access.array == tx.c.accumulator:
            reads.append(acc.access(tx, update, access))
        elif tx.pads_tiles:   # whole tiles (polypipe.gpu_pad) would read past the nest
            raise InternalError(f"{update.name} reads {access} on tensor cores, which run "
                                "only the two operands and the accumulator")
        else:
            reads.append(access)
    mapping = {id(old): new for old, new in zip(update.reads, reads)}
    stmt = replace(update, domain=tx.run_domain, target=acc.access(tx, update, update.target),
                   reads=tuple(reads), value=ir.replace_reads(update.value, mapping))
    o_u = tx.update_element()
    # ``R - 1`` register slots (of ``kg`` steps each) after the loads; with tensor cores a
    # k-step's updates are one group (a warp mark: CUDA prints the warp's mma.sync), its
    # steps outermost so that each element still sums its products in the source's order.
    late = f"({tx.rk} + {(tx.R - 1) * tx.kg})"
    within = (f"({late}) mod {tx.kg}",) if tx.kg > 1 else ()
    draft.add(stmt, LoopPlacement(
        tx.update_instance(), tuple(tx.block_of(o_u)), tuple(tx.r_outer),
        f"floor({late}/{tx.bk})", Phase.COMPUTE, tuple(tx.thread_of(o_u)), (Slot.UPDATE, 0),
        step=f"floor((({late}) mod {tx.bk})/{tx.kg})",
        inner=within + tuple(tx.fragment_loops(o_u)), warp=tx.kg > 1))


def rewrite_element_statements(tx: TileMapping, draft: Draft, acc: Accumulator) -> None:
    """The nest's other statements touch the register accumulator instead of the array."""
    c = tx.c
    for rank, name in enumerate(c.statements):
        if name == c.update:
            continue
        stmt = c.program.statement(name)
        reads = tuple(acc.access(tx, stmt, a) if a.array == c.accumulator else a
                      for a in stmt.reads)
        mapping = {id(old): new for old, new in zip(stmt.reads, reads)}
        target = stmt.target
        if target.array == c.accumulator:
            target = acc.access(tx, stmt, target)
        part = Part.EPILOGUE if name in c.epilogues else Part.INIT
        draft.add(replace(stmt, target=target, reads=reads,
                          value=ir.replace_reads(stmt.value, mapping)),
                  ElementPlacement(f"{name}[{', '.join(stmt.iterators)}]", c.element_of[name],
                                   part, rank))


def copy_accumulator(tx: TileMapping, draft: Draft, acc: Accumulator) -> tuple[bool, bool]:
    """``copyin_<C>`` (when some read sees a value from before the nest) and ``copyout_<C>``
    between a global accumulator and its registers; (copy in, copy out)."""
    c = tx.c
    array = c.program.array(c.accumulator)
    if array.is_local or array.memory != "global":
        return False, False
    nest = [c.program.statement(n) for n in c.statements]
    copy_in = _has_live_in(c.program, nest, c.accumulator)
    if copy_in:
        elements = isl.UnionSet.empty(tx.update.domain.get_space().params())
        for stmt in nest:
            elements = elements.union(isl.UnionSet.from_set(c.element_of[stmt.name].range()))
        _element_copy(tx, draft, acc, f"copyin_{c.accumulator}",
                      isl.Set.from_union_set(elements).coalesce(), into_registers=True)
    written = isl.UnionSet.empty(tx.update.domain.get_space().params())
    for stmt in nest:
        if stmt.target.array == c.accumulator:
            written = written.union(isl.UnionSet.from_set(stmt.target.relation.range()))
    _element_copy(tx, draft, acc, f"copyout_{c.accumulator}",
                  isl.Set.from_union_set(written).coalesce(), into_registers=False)
    return copy_in, True


def _element_copy(tx: TileMapping, draft: Draft, acc: Accumulator, base: str,
                  elements: isl.Set, into_registers: bool) -> None:
    """One copy instance per accumulator element, between the array and its registers. With
    grouped column ownership a thread's columns come in runs of ``vn`` consecutive elements of
    the array's last dimension: the copy gets that run as a lane loop (``o mod vn`` of the
    column, the lane numbering :mod:`polypipe.analysis.alignment` proves against), printed as
    16-byte accesses where proved."""
    c = tx.c
    name = draft.fresh(base)
    names = tx.element_vars()
    domain = name_dims(elements.set_tuple_name(name), names)
    ident = tx.map_(f"{name}[{', '.join(names)}] -> {tx.element_space()}").intersect_domain(
        domain)
    registers = ident.apply_range(acc.of_element)
    if into_registers:
        read = ir.Access(c.accumulator, (), ident, False)
        write = ir.Access(acc.buffer, (), registers, True)
        source = f"{acc.buffer} <- {c.accumulator}"
    else:
        read = ir.Access(acc.buffer, (), registers, False)
        write = ir.Access(c.accumulator, (), ident, True)
        source = f"{c.accumulator} <- {acc.buffer}"
    stmt = ir.Statement(name, tuple(names), domain, write, None, ir.Read(read), (read,),
                        kind="copy", source=source)
    grouped = tx.vn > 1
    draft.add(stmt, ElementPlacement(
        f"{name}[{', '.join(names)}]", ident, Part.INIT if into_registers else Part.EPILOGUE,
        -1 if into_registers else len(c.statements), lane_last=grouped,
        vector=tx.vn if grouped else 1))
    if grouped:
        draft.vector_groups.append((name, names[-1], tx.vn))
    draft.log.append(f"copy_accumulator: {source} by {name}")


def _has_live_in(program: ir.Program, nest: list[ir.Statement], array: str) -> bool:
    """Whether some read of ``array`` in the nest sees a value from before the nest."""
    from polypipe.analysis.bounds import array_accesses

    reads, writes = array_accesses(program, nest, lambda name: name == array)
    schedule = isl.UnionMap.empty(program.context.get_space())
    full = program.schedule_map
    for stmt in nest:
        schedule = schedule.union(full.intersect_domain(isl.UnionSet.from_set(stmt.domain)))
    if reads.is_empty():
        return False
    info = isl.UnionAccessInfo.from_sink(reads).set_must_source(writes)
    flow = info.set_schedule_map(schedule).compute_flow()
    return not flow.get_may_no_source().is_empty()
