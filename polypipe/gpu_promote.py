"""Operand promotion (passes of :mod:`polypipe.lower`): which reads of the update are streamed,
their shared-memory tiles and copy statements, and their register fragments.

Time inside one (block, outer reduction iteration): the copy of shared tile ``t`` is issued at
``T = t - (S - 1)`` (``S`` = shared stages); the register load of reduction step ``kk`` runs at
``(T, j) = (kk div BK, kk mod BK)``, ``R - 1`` steps ahead of the update that reads it (``R`` =
register stages), crossing into the next shared tile where it must.
"""

from __future__ import annotations

import islpy as isl

from polypipe.analysis.dependences import dependences
from polypipe.analysis.pipelinable import PipelineCandidate, Reason, pipeline_candidate

from . import ir
from .errors import ScheduleError
from .gpu_ir import Draft, LoopPlacement, Operand, Phase, Slot, TileLayout
from .gpu_layout import tile_layout
from .gpu_mapping import TileMapping, name_dims, uses
from .gpu_pad import prefix_gaps, zero_filled


def select_operands(tx: TileMapping, draft: Draft) -> None:
    """Choose the reads of the update that go through shared memory and registers.

    :func:`~polypipe.analysis.pipelinable.pipeline_candidate` (the verdict
    :func:`~polypipe.analysis.pipelinable.pipelinable_reads` reports) decides whether a read may be
    streamed along the innermost reduction loop at all (and says why not); of those, a read
    is promoted when a block reuses it: it must not change with both the output rows and
    columns, and its array must not be written inside the nest (other blocks' threads would
    copy it)."""
    c, update = tx.c, tx.update
    verdicts = _verdicts(tx)
    written_in_nest = {tx.c.program.statement(n).target.array for n in c.statements}
    m_iter, n_iter = c.output_iterators[-2], c.output_iterators[-1]
    for index, access in enumerate(update.reads):
        array = c.program.array(access.array)
        if access.array == c.accumulator or array.is_local or array.memory == "local":
            continue
        label = str(access)
        verdict = verdicts.get(index)
        if verdict is not None and not verdict.pipelinable:
            draft.unpromoted.append((label, _unpromoted_reason(verdict, tx.rk)))
            continue
        if access.array in written_in_nest:
            draft.unpromoted.append((label, f"{access.array} is written inside the loop nest"))
            continue
        uses_m = uses(access.relation, update, m_iter)
        uses_n = uses(access.relation, update, n_iter)
        if uses_m and uses_n:
            draft.unpromoted.append((label, "no reuse inside a block (it changes with rows, "
                                            "columns and the reduction)"))
            continue
        draft.operands.append(Operand(index, access.array, draft.fresh(f"{access.array}_s"),
                                      draft.fresh(f"{access.array}_r"), uses_m, uses_n))
    draft.log.append("select_operands: " + (", ".join(
        f"{update.reads[op.read_index]} -> {op.shared}, {op.register}"
        for op in draft.operands) or "none"))


def _verdicts(tx: TileMapping) -> dict[int, PipelineCandidate]:
    """The pipelinability verdicts of the update's array reads along the innermost reduction
    loop, by read position (the update's statement in the nest's own program)."""
    program = tx.c.program
    deps = dependences(program)
    return {index: pipeline_candidate(program, tx.update.name, index, tx.rk, deps=deps)
            for index, access in enumerate(tx.update.reads)
            if not program.array(access.array).is_local}


def _unpromoted_reason(verdict: PipelineCandidate, loop: str) -> str:
    if verdict.reason == Reason.LOOP_INVARIANT:
        return (f"does not change with the reduction loop {loop}; read once per use from "
                "global memory")
    return f"not pipelinable along {loop}: {verdict.explanation}"


def promote_to_shared(tx: TileMapping, draft: Draft, op: Operand, position: int) -> TileLayout:
    """The shared buffer ``<X>_s`` (``S`` stage slots) and its asynchronous copy statement:
    one instance per element of the block's operand tile, consecutive threads taking
    consecutive groups of ``vector`` elements in the array's own order (coalesced global
    reads; a group is one 16-byte ``cp.async`` where proved)."""
    update, config = tx.update, tx.cfg
    source = update.reads[op.read_index]
    layout = tile_layout(op, source, tx)
    local = [d.expr for d in layout.canonical]
    local_names = [d.name for d in layout.canonical]
    draft.arrays.append(ir.Array(op.shared, 1 + len(layout.order),
                                 (None,) * (1 + len(layout.order)), memory="shared",
                                 extents=(tx.S, *layout.stored_extents)))
    name = draft.fresh(f"copy_{op.array}")
    dims = tx.block_dims + tx.r_outer + ["pp_t"] + local_names
    block_u = tx.block_of(tx.update_element())
    to_tile = tx.map_(f"{tx.update_instance()} -> {name}"
                      f"[{', '.join(block_u + tx.r_outer + [f'floor({tx.rk}/{tx.bk})'] + local)}]")
    to_copy = to_tile.intersect_domain(update.domain)
    real = name_dims(update.domain.apply(to_copy), dims)
    read_rel = to_copy.reverse().apply_range(source.relation).intersect_domain(real)
    # Tensor cores run whole tiles (polypipe.gpu_pad): the copy fills the whole operand tile,
    # reading the array where an instance of the nest reads it and writing zero elsewhere.
    padded = tx.pads_tiles
    run = to_tile.intersect_domain(tx.run_domain) if padded else to_copy
    domain = name_dims(tx.run_domain.apply(run), dims) if padded else real
    full = (run.reverse().apply_range(tx.map_(
        f"{tx.update_instance()} -> {source.array}[{', '.join(source.indices)}]"))
            .intersect_domain(domain) if padded else None)
    if not all(r.is_single_valued() for r in (read_rel, full) if r is not None):
        raise ScheduleError(f"{source} in {update.name}: one element of the operand tile "
                            "maps to several array elements; cannot stage it")
    stored = ", ".join(d.name for d in layout.order)
    write_rel = tx.map_(f"{name}[{', '.join(dims)}] -> "
                        f"{op.shared}[(pp_t) mod {tx.S}, {stored}]").intersect_domain(domain)
    read = ir.Access(op.array, source.indices, read_rel, False, source.location, full=full,
                     origin=_origin_subscript(tx, source, run, domain))
    stmt = ir.Statement(name, tuple(dims), domain, ir.Access(op.shared, (), write_rel, True),
                        None, zero_filled(read, real) if padded else ir.Read(read), (read,),
                        kind="async_copy", source=f"{op.shared} <- {op.array}")
    linear = layout.linear()
    group = f"floor(({linear})/{layout.vector})"
    tid = f"(({group}) mod {config.thread_count})"
    draft.add(stmt, LoopPlacement(
        f"{name}[{', '.join(dims)}]", tuple(tx.block_dims), tuple(tx.r_outer),
        f"pp_t - {tx.S - 1}", Phase.COPY, (f"floor({tid}/{tx.tn})", f"({tid} mod {tx.tn})"),
        (Slot.ISSUE, position), inner=(f"floor(({group})/{config.thread_count})",),
        lane=f"({linear}) mod {layout.vector}" if layout.vector > 1 else None,
        vector=layout.vector))
    draft.copy_layouts.append((name, layout))
    lane = layout.copy_order[-1].name
    # A zero-filling 16-byte copy reads a prefix of its group: a tile whose reading elements
    # are not (the nest starts inside a group) is copied element by element.
    gaps = (layout.vector > 1 and padded
            and not prefix_gaps(stmt, lane, layout.vector, linear).is_empty())
    if layout.vector > 1 and not gaps:
        draft.vector_groups.append((name, lane, layout.vector))
    draft.log.append(f"promote_to_shared: {op.array} -> {op.shared} x{tx.S} stages, stored "
                     f"({', '.join(d.name for d in layout.order)}) + {layout.padding} padding, "
                     f"{layout.vector}-element copies by {name}"
                     + (" (element by element: the nest starts inside a group)" if gaps else ""))
    return layout


def _origin_subscript(tx: TileMapping, source: ir.Access, to_copy: isl.Map,
                      domain: isl.Set) -> ir.OriginSubscript | None:
    """The copy's read written over the update's iterators (see ir.OriginSubscript), when
    its subscript divides: an affine subscript composes with the schedule into an affine
    one, which needs no locals."""
    ctx, update = domain.get_ctx(), tx.update
    relation = source.full if source.full is not None else source.relation
    if not _divides(isl.PwMultiAff.from_map(relation)):
        return None
    # From the subscript's text, not from the relation: isl keeps the divisions as written
    # there, where the relation's constraints come back as case splits.
    index = isl.PwMultiAff(f"{tx.prefix}{{ {update.name}[{', '.join(update.iterators)}] -> "
                           f"{source.array}[{', '.join(source.indices)}] }}", context=ctx)
    # Any update instance that reads the copied element will do: the read is single-valued
    # over the copy (checked above), so all of them give the same element.
    instance = to_copy.reverse().intersect_domain(domain).lexmin_pw_multi_aff()
    for pos, name in enumerate(update.iterators):
        local = isl.Id(f"pp_u_{name}", context=ctx)
        instance = instance.set_dim_id(isl.dim_type.out, pos, local)
        index = index.set_dim_id(isl.dim_type.in_, pos, local)
    return ir.OriginSubscript(instance, index)


def _divides(index: isl.PwMultiAff) -> bool:
    """Whether some piece of a subscript has an integer division."""
    found = []
    index.foreach_piece(lambda _set, piece: found.append(any(
        piece.get_aff(i).dim(isl.dim_type.div) > 0 for i in range(piece.dim(isl.dim_type.out)))))
    return any(found) or index.n_piece() > 1


def register_fragment(tx: TileMapping, draft: Draft, op: Operand, layout: TileLayout,
                      position: int) -> ir.Access:
    """The register fragment ``<X>_r`` (per thread, ``R`` slots of the thread's rows or
    columns over ``kg`` reduction steps), the statement loading it from the shared buffer, and
    the update's new read of it (returned).

    With tensor cores (``kg`` = the instruction's k) one slot holds a k-step and the loads of
    a k-step are one group under a ``warp`` mark: CUDA prints it as the warp's ldmatrix."""
    update, kg = tx.update, tx.kg
    frag_u = tx.fragment_of(tx.update_element())
    thread_u = tx.thread_of(tx.update_element())
    extents = ([tx.rm] if op.uses_m else []) + ([tx.rn] if op.uses_n else [])
    extents += [kg] if kg > 1 else []
    draft.arrays.append(ir.Array(op.register, 3 + len(extents), (None,) * (3 + len(extents)),
                                 memory="register", extents=(tx.tm, tx.tn, tx.R, *extents),
                                 thread_dims=2))
    name = draft.fresh(f"load_{op.array}")
    frag_names = (["pp_m"] if op.uses_m else []) + (["pp_n"] if op.uses_n else [])
    frag_exprs = ([frag_u[0]] if op.uses_m else []) + ([frag_u[1]] if op.uses_n else [])
    dims = tx.block_dims + tx.r_outer + ["pp_kk", "pp_ty", "pp_tx"] + frag_names
    block_u = tx.block_of(tx.update_element())
    to_load = tx.map_(f"{tx.update_instance()} -> {name}"
                      f"[{', '.join(block_u + tx.r_outer + [tx.rk] + thread_u + frag_exprs)}]")
    domain = name_dims(tx.run_domain.apply(to_load.intersect_domain(tx.run_domain)), dims)
    at = {"pp_lm": tx.local_of("pp_ty", "pp_m", 0), "pp_ln": tx.local_of("pp_tx", "pp_n", 1),
          "pp_lk": f"(pp_kk) mod {tx.bk}"}
    instance = f"{name}[{', '.join(dims)}]"
    read = ir.Access(op.shared, (), tx.map_(
        f"{instance} -> {op.shared}[(floor(pp_kk/{tx.bk})) mod {tx.S}, "
        f"{', '.join(at[d.name] for d in layout.order)}]").intersect_domain(domain), False)
    write = ir.Access(op.register, (), tx.map_(
        f"{instance} -> {op.register}[pp_ty, pp_tx, {_slot('pp_kk', tx)}"
        f"{''.join(', ' + f for f in frag_names + _within('pp_kk', tx))}]"
    ).intersect_domain(domain), True)
    stmt = ir.Statement(name, tuple(dims), domain, write, None, ir.Read(read), (read,),
                        kind="copy", source=f"{op.register} <- {op.shared}")
    # A group of a thread's fragment that is stored consecutively becomes a lane loop: CUDA
    # loads it as one 16-byte vector where alignment is proved.
    lanes = {"pp_lm": tx.vm, "pp_ln": tx.vn}.get(layout.order[-1].name, 1)
    vector = len(frag_names) == 1 and lanes > 1 and kg == 1
    inner = ((f"floor({frag_names[0]}/{lanes})",) if vector else tuple(frag_names or ["0"]))
    draft.add(stmt, LoopPlacement(
        instance, tuple(tx.block_dims), tuple(tx.r_outer), f"floor(pp_kk/{tx.bk})",
        Phase.COMPUTE, ("pp_ty", "pp_tx"), (Slot.ISSUE, position),
        step=f"floor(((pp_kk) mod {tx.bk})/{kg})", inner=tuple(_within("pp_kk", tx)) + inner,
        lane=f"({frag_names[0]}) mod {lanes}" if vector else None,
        vector=lanes if vector else 1, warp=kg > 1))
    if vector:
        draft.vector_groups.append((name, frag_names[0], lanes))
    draft.log.append(f"register_fragment: {op.shared} -> {op.register} x{tx.R} by {name}"
                     + (f", {lanes}-element loads" if vector else "")
                     + (f", {kg} reduction steps a slot (one warp load)" if kg > 1 else ""))
    return ir.Access(op.register, (), tx.map_(
        f"{tx.update_instance()} -> {op.register}[{', '.join(thread_u)}, {_slot(tx.rk, tx)}"
        f"{''.join(', ' + f for f in frag_exprs + _within(tx.rk, tx))}]"
    ).intersect_domain(tx.run_domain), False, update.reads[op.read_index].location)


def _slot(k: str, tx: TileMapping) -> str:
    """The register stage holding reduction step ``k``: ``R`` slots of ``kg`` steps each."""
    return f"({k}) mod {tx.R}" if tx.kg == 1 else f"(floor(({k})/{tx.kg})) mod {tx.R}"


def _within(k: str, tx: TileMapping) -> list[str]:
    """Step ``k``'s position in its slot: no index for one step a slot."""
    return [f"({k}) mod {tx.kg}"] if tx.kg > 1 else []
