"""The warp groups of a tensor-core kernel proved to compute what its per-thread form computes
(issue 17; the printing is :mod:`polypipe.codegen.cuda_mma`).

:func:`polypipe.analysis.gpu_proof.prove_kernel` proves the kernel as the CUDA-core kernel
it is (dataflow, barriers, waits, private registers). What CUDA prints differs in each k-step's
fragment loads and updates, which the warp executes as ldmatrix and mma.sync. They compute
the same sums when:

1. **accumulators**: mma's accumulator layout (``gpu_warp.WarpPlan.accumulator_map``) is the
   threads' ownership of the kernel's register accumulator: lane ``4 ty + tx`` holds element
   ``(2 tm + h, 2 tn + e)`` of thread ``(ty, tx)``'s fragment as accumulator ``2 h + e`` of
   tile ``(tm, tn)`` (an isl equality over the block tile);
2. **fragments**: for every load of a k-step, lane and register, the element ldmatrix hands
   the lane (the PTX ISA's ldmatrix layout, ``gpu_mma.ldmatrix_map``, applied to the rows
   whose addresses the lanes give) is the element mma's fragment layout expects there
   (``gpu_mma.fragment_map`` of A, or of the two B tiles of a pair). The addresses are the
   printed ones: the C texts of :func:`~polypipe.codegen.cuda_mma.lane_row` evaluated for
   every lane, then the kernel's own ownership (``TileMapping.local_of``) gives the element
   each address points at. Checked at every point of the finite lane space.

Then each mma adds, to each lane's accumulators, the products of the k-step that the
thread's updates add (in another order: the tolerance the tests use). The shared elements
read are the k-step's tiles, which the per-thread loads read between the same barriers.
A failure is an internal error: the printer and the proofs disagree, not the user.
"""

from __future__ import annotations

import functools

import islpy as isl

from polypipe.errors import InternalError
from polypipe.gpu_mma import points


def prove_warp_groups(kernel) -> str:
    """Check facts 1 and 2 for ``kernel``; a one-line summary, InternalError on a failure."""
    from polypipe.codegen.cuda_mma import warp_operands
    from polypipe.gpu_mapping import TileMapping
    from polypipe.gpu_warp import warp_plan

    tx = TileMapping(kernel.contraction, kernel.config)
    plan = warp_plan(kernel.config)
    _prove_accumulators(kernel, tx, plan)
    swizzles = _prove_swizzles(kernel)
    operands = warp_operands(kernel)
    for op in operands:
        _prove_fragments(kernel, tx, op)
    return (f"{kernel.name}: mma's accumulator layout is the threads' ownership, and every "
            f"lane's ldmatrix of {' and '.join(op.role.upper() for op in operands)} delivers "
            "its mma fragments" + (f"; the swizzles of {', '.join(swizzles)} permute each "
                                   "row's 16-byte chunks" if swizzles else ""))


def _prove_swizzles(kernel) -> list[str]:
    """Each swizzle is the chunk layout whose bank conflicts ``gpu_warp.operand_tile``
    counted (``analysis.bank_conflicts.Layout.relation``), as printed: at every element of
    the tile, the printed column (``TileLayout.swizzle_c``) is in the same row, at the same
    place in its 16-byte chunk, in the chunk the layout maps the element's chunk to; and the
    layout permutes each row's chunks. So the proofs in logical order hold for the printed
    kernel, and proved 16-byte groups stay 16-byte groups. (Checked on the tile's chunks:
    isl on the element-level map, with the XOR in Presburger arithmetic, took minutes on a
    256-column tile.)"""
    from polypipe.codegen.cuda_mma import swizzled_tiles

    tiles = swizzled_tiles(kernel)
    for buffer, layout in tiles.items():
        chunks = layout.chunks
        placed = dict(points(chunks.relation))          # (row, chunk) -> (index,)
        width = chunks.row_chunks
        for row in range(chunks.rows):
            targets = [placed[row, chunk][0] - row * width for chunk in range(width)]
            if sorted(targets) != list(range(width)):
                raise InternalError(f"{kernel.name}: the swizzle of {buffer} does not permute "
                                    f"the chunks of row {row}: {targets}")
        column = _compiled(layout.swizzle_c("pp_row", "pp_col"))
        for (row, chunk), (index,) in placed.items():
            for offset in range(8):
                printed = column(pp_row=row, pp_col=8 * chunk + offset)
                stored = 8 * (index - row * width) + offset
                if printed != stored:
                    raise InternalError(f"{kernel.name}: the printed swizzle of {buffer} puts "
                                        f"({row}, {8 * chunk + offset}) at column {printed}, "
                                        f"its layout at {stored}")
    return sorted(tiles)


def _prove_accumulators(kernel, tx, plan) -> None:
    """Thread (ty, tx) is lane ``4 (ty mod 8) + tx mod 4`` of warp ``(ty div 8, tx div 4)``."""
    mma = plan.accumulator_map().reverse()
    (ty, tx_), (frow, fcol) = tx.thread_of(["row", "col"]), tx.fragment_of(["row", "col"])
    bm, bn = kernel.config.block
    owned = isl.Map(
        f"{{ C[row, col] -> W[floor(({ty})/8), floor(({tx_})/4), 4 * (({ty}) mod 8) + "
        f"(({tx_}) mod 4), floor(({frow})/2), floor(({fcol})/2), 2 * (({frow}) mod 2) + "
        f"(({fcol}) mod 2)] : 0 <= row < {bm} and 0 <= col < {bn} }}")
    if not mma.is_equal(owned):
        differ = mma.subtract(owned).union(owned.subtract(mma)).wrap().sample_point()
        raise InternalError(f"{kernel.name}: mma's accumulator layout is not the threads' "
                            f"ownership; they differ at {differ}")


def _prove_fragments(kernel, tx, op) -> None:
    from polypipe.codegen.cuda_mma import lane_row, loads_per_step
    from polypipe.gpu_mma import fragment_map, ldmatrix_map
    from polypipe.gpu_warp import LANE_THREADS, LANE_VECTORS

    axis = 0 if op.role == "a" else 1
    local = isl.PwAff(f"{{ [t, f] -> [({tx.local_of('t', 'f', axis)})] }}")
    extent = tx.rm if axis == 0 else tx.rn
    row = lane_row(op, LANE_THREADS + LANE_VECTORS)
    delivered = points(ldmatrix_map(4, trans=op.trans))      # (lane, i) -> (j, row, col)
    fragment = dict(points(fragment_map(op.role)))            # (lane, i) -> (row, col)
    warps = kernel.config.warps[axis]
    in_warp = LANE_THREADS[axis]
    part = kernel.config.block[axis] // warps
    for warp, w in ((warp, w) for warp in range(warps) for w in range(loads_per_step(op))):
        starts = {}
        for lane in range(32):
            t, f, kin = (_evaluate(text, pp_lane=lane, pp_w=w)
                         for text in (row.thread, row.fragment, row.kin))
            if not 0 <= f < extent:
                raise InternalError(f"{kernel.name}: lane {lane}'s ldmatrix row of "
                                    f"{op.load} is fragment {f}, outside the {extent} a "
                                    "thread holds")
            # the printed thread is the lane's warp's: in_warp * warp + the in-warp one
            along = _value_at(local, in_warp * warp + t, f) - part * warp
            starts[lane] = (along, kin) if op.role == "a" else (kin, along)
        got = {}
        for (lane, i), (j, mrow, mcol) in delivered:
            first, second = starts[8 * j + mrow]
            got[lane, i] = (first, second + mcol) if op.along_rows else (first + mcol, second)
        want = {}
        for lane in range(32):
            for i in range(8):                     # register i div 2, half i mod 2
                if op.role == "a":
                    first, second = fragment[lane, i]
                    want[lane, i] = (16 * w + first, second)
                else:    # register j of a B pair: element 2 (j mod 2) + half of tile 2 w + j div 2
                    j = i // 2
                    first, second = fragment[lane, 2 * (j % 2) + i % 2]
                    want[lane, i] = (first, 8 * (2 * w + j // 2) + second)
        if got != want:
            bad = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))[0]
            raise InternalError(f"{kernel.name}: warp {warp}, load {w} of {op.load}: ldmatrix "
                                f"hands lane "
                                f"{bad[0]} element {got.get(bad)} as fragment element "
                                f"{bad[1]}, mma expects {want.get(bad)}")


def _evaluate(text: str, **values: int) -> int:
    """A printed C index expression of non-negative integers at the given values of its
    names (``/`` and ``%`` are Python's ``//`` and ``%`` there; ``>> ^ & |`` are the same)."""
    return _compiled(text)(**values)


@functools.lru_cache(maxsize=None)
def _compiled(text: str):
    code = compile(text.replace("/", "//"), "<printed C>", "eval")
    return lambda **values: eval(code, {"__builtins__": {}}, values)


def _value_at(function: isl.PwAff, *values: int) -> int:
    point = isl.Point.zero(function.get_domain_space())
    for pos, value in enumerate(values):
        point = point.set_coordinate_val(isl.dim_type.set, pos, value)
    return function.eval(point).to_python()
