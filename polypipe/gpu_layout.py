"""Shared-memory tile layouts: copy order, stored order and the padding with fewest bank
conflicts (a pass of :mod:`polypipe.lower`).

Copies follow the array's own order: the local dimension that drives the array's last
subscript goes innermost, so a warp's copies read consecutive addresses. The tile is stored in
the same order, except when threads own groups of consecutive rows or columns
(``GpuConfig.fragment_vector``): then the fragment dimension is stored innermost, so one group
of a thread's fragment is one 16-byte shared load (the copies of an operand whose array runs
the other way become 4-byte ones). The row padding is the one with the fewest shared-memory
wavefronts per tile, fragment loads and copies counted.
"""

from __future__ import annotations

import islpy as isl

from . import ir
from .errors import InternalError
from .gpu_ir import LocalDim, Operand, TileLayout
from .gpu_mapping import TileMapping, uses

VECTOR_ELEMENTS = 4   # one 16-byte cp.async of float32 (two of float64)
ROW_PADDINGS = (0, VECTOR_ELEMENTS)   # padding keeps rows 16-byte aligned
HALF_VECTOR = 8       # one 16-byte cp.async (and one ldmatrix row) of 16-bit elements
WARP = 32


def tile_layout(op: Operand, source: ir.Access, tx: TileMapping) -> TileLayout:
    """The layout of operand ``op``'s tile (see the module docstring)."""
    update = tx.update
    m_iter, n_iter = tx.c.output_iterators[-2], tx.c.output_iterators[-1]
    o = tx.update_element()
    frag = None
    dims = []
    if op.uses_m:
        dims.append(LocalDim("pp_lm", tx.local_m(o), tx.bm, m_iter))
        frag = (dims[-1], tx.vm, tx.rm)
    if op.uses_n:
        dims.append(LocalDim("pp_ln", tx.local_n(o), tx.bn, n_iter))
        frag = (dims[-1], tx.vn, tx.rn)
    dims.append(LocalDim("pp_lk", f"(({tx.rk}) mod {tx.bk})", tx.bk, tx.rk))
    rank = source.relation.dim(isl.dim_type.out)
    driving = [d for d in dims if uses(source.relation, update, d.iterator,
                                       range(rank - 1, rank))] if rank else []
    copy_order = list(dims)
    if len(driving) == 1:
        copy_order.remove(driving[0])
        copy_order.append(driving[0])
    if tx.kg > 1:
        return _warp_tile_layout(tuple(dims), tuple(copy_order))
    order = copy_order
    if frag is not None and frag[1] > 1:
        order = [d for d in dims if d is not frag[0]] + [frag[0]]
    vector = VECTOR_ELEMENTS if copy_order[-1].extent % VECTOR_ELEMENTS == 0 else 1
    candidates = [TileLayout(tuple(dims), tuple(copy_order), tuple(order), pad, vector)
                  for pad in ROW_PADDINGS]
    return min(candidates, key=lambda layout: (_wavefronts_per_tile(layout, tx, frag),
                                               layout.padding))


def _warp_tile_layout(dims: tuple[LocalDim, ...], copy_order: tuple[LocalDim, ...]
                      ) -> TileLayout:
    """A tensor-core operand tile: stored in its array's order (16-byte copies of 8 halves,
    ldmatrix rows along the stored rows, ``.trans`` where they do not run along k), with the
    swizzle or padding :func:`polypipe.gpu_warp.operand_tile` proves best for the copies and
    the ldmatrix reads together (:mod:`polypipe.analysis.bank_conflicts`)."""
    from .gpu_warp import operand_tile

    rows, width = copy_order[0].extent, copy_order[-1].extent
    if rows % 16 or width % 16:    # warp_plan admits whole instruction tiles only
        raise InternalError(f"a tensor-core operand tile of {rows} x {width} elements: "
                            "ldmatrix reads 16 x 16 pieces with 16-byte rows")
    chosen = operand_tile("tile", rows, width).layout
    return TileLayout(dims, copy_order, copy_order, HALF_VECTOR * chosen.pad_chunks,
                      HALF_VECTOR, swizzle=(chosen.bits, chosen.shift), chunks=chosen)


def _wavefronts_per_tile(layout: TileLayout, tx: TileMapping, frag) -> int:
    """Shared-memory wavefronts of one warp over one tile: its fragment loads and copies."""
    threads = tx.tm * tx.tn
    warp = range(min(WARP, threads))
    read_width = frag[1] if frag is not None and layout.order[-1] is frag[0] else 1
    starts = [layout.word({"pp_lm": tx.vm * (t // tx.tn), "pp_ln": tx.vn * (t % tx.tn),
                           "pp_lk": 0}) for t in warp]
    loads_per_tile = tx.bk * (frag[2] if frag is not None else 1) // read_width
    total = wavefronts(starts, read_width) * loads_per_tile
    elements = 1
    for dim in layout.copy_order:
        elements *= dim.extent
    rounds = -(-elements // (threads * layout.vector))
    wide = layout.order[-1] is layout.copy_order[-1]
    lanes = [range(layout.vector)] if wide else [range(lane, lane + 1)
                                                 for lane in range(layout.vector)]
    for group in lanes:
        starts = [layout.word(layout.copy_coords(t * layout.vector + group[0])) for t in warp
                  if (t + 1) * layout.vector <= elements]
        total += wavefronts(starts, len(group)) * rounds if starts else 0
    return total


def wavefronts(starts: list[int], width: int) -> int:
    """Shared-memory wavefronts of one warp instruction in which thread ``t`` accesses the
    ``width`` consecutive 4-byte words from ``starts[t]``: the warp is served in phases of
    ``32 / width`` threads, each taking as many wavefronts as the most distinct words that
    fall in one bank (equal words are broadcast)."""
    per_phase = WARP // width
    total = 0
    for first in range(0, len(starts), per_phase):
        banks: dict[int, set] = {}
        for start in starts[first:first + per_phase]:
            for word in range(start, start + width):
                banks.setdefault(word % WARP, set()).add(word)
        total += max(len(words) for words in banks.values())
    return total
