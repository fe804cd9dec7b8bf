"""The default configuration fitted to the sizes of a run (docs/design.md, "Defaults that fit").

``pp.optimize(kernel)`` without a configuration builds every contraction kernel with the
default :class:`GpuConfig` (64x64 blocks, 3 shared stages of 16), which suits large matrices.
At the sizes of one run the default can fit badly in two ways the kernel stays correct under
but wastes the GPU: the streamed reduction has fewer tiles than shared stages (the extra
buffers are never filled), and the grid has fewer blocks than the target has SMs (most of the
GPU idles). :func:`fit_config` makes both decisions for one kernel, from its sizes alone:

* ``shared_stages`` drops to the number of reduction tiles (at least 1);
* the block is halved along an axis where half of it still covers the outputs (the grid
  stays the same and the block's threads share the work: 11 rows in a 64-row block leave
  13 of its 16 thread rows idle); then, while the grid has fewer blocks than SMs, along the
  axis whose halving adds the most blocks (on a tie the longer side, then rows). A block
  stays at least 8 along an axis; a thread keeps its share of the tile until the tile is one
  output wide along that axis, then the block has fewer threads along it (at least one warp
  in all).

An explicit configuration is never fitted: it is honoured or refused as given. The fitted
kernel is lowered and proved like any other (polypipe.optimize); where its lowering or proof
refuses it, the default's kernel is kept and describe() says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .gpu_config import GpuConfig

MIN_BLOCK = 8          # rows or columns: below, a block is mostly index arithmetic
MIN_THREADS = 32       # one warp


@dataclass(frozen=True)
class KernelSizes:
    """What the fit reads of one contraction kernel at one run's sizes."""

    outer_blocks: int             # blocks of the outer output dimensions (one per point)
    rows: int                     # extent of the second-to-last output dimension
    cols: int                     # extent of the last output dimension
    reduction: int | None         # extent of the streamed reduction (None: element-wise)
    reduction_name: str = ""


@dataclass(frozen=True)
class Fit:
    """The configuration one kernel gets at these sizes and why it differs from the default."""

    config: GpuConfig
    reasons: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.reasons)


def grid_blocks(sizes: KernelSizes, block: tuple[int, int]) -> int:
    return sizes.outer_blocks * -(-sizes.rows // block[0]) * -(-sizes.cols // block[1])


def fit_config(config: GpuConfig, sizes: KernelSizes, sms: int) -> Fit:
    """``config`` fitted to ``sizes`` on a target with ``sms`` SMs (see the module)."""
    reasons = []
    fitted = config
    if sizes.reduction is not None and sizes.reduction > 0:
        tiles = -(-sizes.reduction // config.reduction)
        if tiles < config.shared_stages:
            fitted = replace(fitted, shared_stages=tiles)
            reasons.append(f"the reduction over {sizes.reduction_name} ({sizes.reduction}) is "
                           f"{tiles} tile(s) of {config.reduction}: {tiles} shared stage(s) "
                           f"instead of {config.shared_stages}")
    before = grid_blocks(sizes, config.block)
    block, threads = _spread(config.block, config.threads, sizes, sms)
    if block != config.block:
        fitted = replace(fitted, block=block, threads=threads)
        reasons.append(f"{before} block(s) of {config.block[0]}x{config.block[1]} over "
                       f"{sizes.rows}x{sizes.cols} outputs for {sms} SMs: "
                       f"{grid_blocks(sizes, block)} of {block[0]}x{block[1]} with threads "
                       f"{threads[0]}x{threads[1]}")
    return Fit(fitted, tuple(reasons))


def _spread(block: tuple[int, int], threads: tuple[int, int], sizes: KernelSizes,
            sms: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """First halve the block along an axis where half of it still covers the outputs (the
    grid is the same, and the threads of a block share fewer idle rows); then, while the
    grid has fewer blocks than SMs, along the axis whose halving adds the most blocks."""
    extents = (sizes.rows, sizes.cols)
    for axis in (0, 1):
        while block[axis] >= 2 * max(extents[axis], 1):
            candidate = _halved(block, threads, axis)
            if candidate is None:
                break
            block, threads = candidate
    while grid_blocks(sizes, block) < sms:
        best = None
        for axis in (0, 1):
            candidate = _halved(block, threads, axis)
            if candidate is None:
                continue
            # Most blocks first, then the longer side (a squarer block reuses more of each
            # operand tile), then rows.
            rank = (grid_blocks(sizes, candidate[0]), block[axis], -axis)
            if rank[0] > grid_blocks(sizes, block) and (best is None or rank > best[0]):
                best = (rank, candidate)
        if best is None:
            break
        block, threads = best[1]
    return block, threads


def _halved(block, threads, axis: int):
    """(block, threads) with the block halved along ``axis``, or None where it cannot be."""
    if block[axis] < 2 * MIN_BLOCK or block[axis] % 2:
        return None
    new_block = list(block)
    new_block[axis] //= 2
    new_threads = list(threads)
    new_threads[axis] = min(threads[axis], new_block[axis])
    if new_block[axis] % new_threads[axis] or math.prod(new_threads) < MIN_THREADS:
        return None
    return tuple(new_block), tuple(new_threads)


def kernel_sizes(kernel, params) -> KernelSizes:
    """The output and streamed-reduction extents of a contraction kernel at these sizes (the
    bounding box of its update, or of its first statement when it is element-wise)."""
    from polypipe.analysis.counting import statement_extents

    c = kernel.contraction
    _, extents = statement_extents(c.program.statement(c.update or c.statements[0]), params)
    *outer, rows, cols = c.output_iterators
    streamed = c.reduction_iterators[-1] if c.update is not None else None
    return KernelSizes(math.prod(extents[name] for name in outer), extents[rows],
                       extents[cols], extents[streamed] if streamed else None,
                       streamed or "")

