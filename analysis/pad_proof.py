"""The padding of a tensor-core kernel proved harmless (:mod:`polypipe.gpu_pad` builds it).

:func:`polypipe.analysis.gpu_proof.prove_kernel` proves the kernel on the nest's own update
instances (``gpu_pad.proof_view``). The kernel also runs the padding: the other instances of
each whole tile it runs. That changes nothing the kernel stores when

1. **zeros**: every instance of the padding whose accumulator element is one of the nest's
   reads, through its register fragments, operand elements of shared memory that the copies
   zero-filled (the copy instances outside the ones that read the array), for both operands.
   It then adds ``0 * 0`` to the accumulator: the value stays. Its other instances accumulate
   elements outside the nest, whose registers (the ownership is one register per element,
   ``warp_proof``) nothing copies out;
2. **prefixes**: in each 16-byte group of a zero-filling copy the elements that read the array
   are a prefix of the group's lanes, which is what the printed ``pp_valid`` count assumes;
   and the copy instances of the whole tiles CUDA copies without a per-element test
   (``gpu_pad.whole_tiles``) all read.

Both are exact isl computations on the kernel's program. A failure is an internal error: the
lowering broke its own invariant, not the user's program.
"""

from __future__ import annotations

import islpy as isl

from polypipe.analysis.gpu_proof import _block_located, _describe_point, _fail
from polypipe.errors import InternalError
from polypipe.gpu_pad import element_of_update, fills_with_zeros, prefix_gaps, whole_tiles


def prove_padding(kernel) -> str:
    """Check facts 1 and 2; a one-line summary ("" without padding)."""
    c = kernel.contraction
    gpu = kernel.program
    update = gpu.statement(c.update)
    real = c.program.statement(c.update).domain
    padding = update.domain.subtract(real)
    if padding.is_empty():
        return ""
    from polypipe.gpu_mapping import TileMapping

    tx = TileMapping(c, kernel.config)
    elements = c.element_of[c.update].intersect_domain(real).range()
    owned = element_of_update(tx).intersect_range(elements).domain().intersect(padding)
    schedule = gpu.schedule_map.intersect_domain(gpu.domain)
    located = _block_located(kernel)
    statements = {s.name: s for s in gpu.statements}
    for op in kernel.operands:
        read = next(a for a in update.reads if a.array == op.register)
        load = next(s for s in gpu.statements if s.target.array == op.register)
        copy = next(s for s in gpu.statements if s.target.array == op.shared)
        to_load = _last_writer(located, read, owned, load, schedule)
        to_copy = _last_writer(located, load.reads[0], load.domain, copy, schedule)
        reading = fills_with_zeros(statements[copy.name])
        if reading is None:
            raise InternalError(f"{kernel.name}: the padding reads {op.shared}, whose copy "
                                f"{copy.name} does not zero-fill")
        if not whole_tiles(copy).is_subset(reading):     # CUDA copies those without a test
            raise InternalError(f"{kernel.name}: {copy.name}'s whole tiles include elements "
                                "it zero-fills")
        seen = to_load.apply_range(to_copy)
        nonzero = seen.intersect_range(isl.UnionSet.from_set(reading))
        if not nonzero.is_empty():
            raise _fail(f"{kernel.name}: an instance of the padding adds a product of "
                        f"{op.array}'s elements to an output of the nest", nonzero,
                        _describe_point, InternalError)
    groups = _prove_prefixes(kernel)
    prefixes = f"; {groups} zero-filling copies read prefixes of their groups" if groups else ""
    return ("the padding of partial tiles reads zeros of both operands wherever it adds to "
            f"the nest's outputs{prefixes}")


def _last_writer(located, read, sinks: isl.Set, writer, schedule) -> isl.UnionMap:
    """sink instance -> the ``writer`` instance whose value its ``read`` takes, for every
    instance of ``sinks`` (InternalError if one has none)."""
    sink = located(read).intersect_domain(isl.UnionSet.from_set(sinks))
    info = isl.UnionAccessInfo.from_sink(sink).set_must_source(located(writer.target))
    flow = info.set_schedule_map(schedule).compute_flow()
    if not flow.get_may_no_source().is_empty():
        raise _fail(f"a read of {read.array} in the padding has no writer",
                    flow.get_may_no_source(), _describe_point, InternalError)
    return flow.get_must_dependence().reverse()


def _prove_prefixes(kernel) -> int:
    """Fact 2 for each vector group of a zero-filling copy; the number of such copies."""
    count = 0
    layouts = dict(kernel.copy_layouts)
    for name, lane, vector in kernel.vector_groups:
        stmt = kernel.program.statement(name)
        reading = fills_with_zeros(stmt)
        if reading is None:
            continue
        layout = layouts[name]
        if layout.copy_order[-1].name != lane:    # the lane is the innermost copied index
            raise InternalError(f"{kernel.name}: the groups of {name} do not run along its "
                                "innermost copied index")
        gaps = prefix_gaps(stmt, lane, vector, layout.linear())
        if not gaps.is_empty():
            raise _fail(f"{kernel.name}: a 16-byte group of {name} reads an element after one "
                        "it zero-fills", isl.UnionMap.from_map(gaps), _describe_point,
                        InternalError)
        count += 1
    return count
