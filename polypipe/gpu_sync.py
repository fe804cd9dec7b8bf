"""Synchronisation of the pipeline (a pass of :mod:`polypipe.lower`).

One group of copies is committed per pipeline iteration ``T`` (in prologue iterations too), so
every wait counts the same groups. With ``S >= 2`` shared stages, at the start of ``T`` each
thread waits for its copies of tile ``T`` (``wait(S - 2)``), then a barrier makes every thread's
copies visible and proves that tile ``T - 1``'s slot, about to be refilled, is no longer read.
With one stage the copies of tile ``T`` are issued and awaited inside ``T``, between two
barriers. Nothing here is trusted: :mod:`polypipe.analysis.gpu_proof` proves the result.
"""

from __future__ import annotations

import islpy as isl

from . import ir
from .gpu_ir import Draft, LoopPlacement, Phase, Slot
from .gpu_mapping import TileMapping, name_dims


def synchronise(tx: TileMapping, draft: Draft) -> frozenset[str]:
    """Add the commits, waits and barriers; returns the waits that follow a commit in the same
    iteration (the single-stage wait)."""
    prefix = tx.block_dims + tx.r_outer
    o_u = tx.update_element()
    tiles = tx.update.domain.apply(tx.map_(
        f"{tx.update_instance()} -> "
        f"[{', '.join(tx.block_of(o_u) + tx.r_outer + [f'floor({tx.rk}/{tx.bk})'])}]"))
    steady = _iterations(tx, tiles, prefix, 0)
    issuing = _iterations(tx, tiles, prefix, tx.S - 1)
    # The barrier before the copies also runs in prologue iterations: when an outer reduction
    # loop starts a new pipeline, its first copies refill slots the previous pipeline's last
    # tiles were read from.
    plan = [("commit", issuing, Phase.COPY, 0)]
    if tx.S >= 2:
        plan += [("wait", steady, Phase.WAIT, tx.S - 2),
                 ("barrier", issuing, Phase.BARRIER_BEFORE, 0)]
    else:
        plan += [("barrier", issuing, Phase.BARRIER_BEFORE, 0),
                 ("wait", steady, Phase.COPY, 0),
                 ("barrier", steady, Phase.BARRIER_AFTER, 0)]
    after_commit = set()
    for kind, base, phase, pending in plan:
        sync = _sync(tx, draft, kind, base, pending)
        per_thread = kind != "barrier"
        dims = prefix + ["pp_T"] + (["pp_ty", "pp_tx"] if per_thread else [])
        draft.syncs.append(sync)
        draft.placements[sync.name] = LoopPlacement(
            f"{sync.name}[{', '.join(dims)}]", tuple(tx.block_dims), tuple(tx.r_outer),
            "pp_T", phase, ("pp_ty", "pp_tx") if per_thread else None,
            (Slot.COMMIT if kind == "commit" else Slot.SYNC, 0))
        if kind == "wait" and phase == Phase.COPY:
            after_commit.add(sync.name)
    draft.log.append(f"synchronise: {', '.join(s.name for s in draft.syncs)} "
                     f"({tx.S} shared stages)")
    return frozenset(after_commit)


def _iterations(tx: TileMapping, tiles: isl.Set, prefix: list[str], early: int) -> isl.Set:
    """The pipeline iterations ``T`` from ``early`` before the first tile to the last tile."""
    names = prefix + ["pp_t"]
    target = f"[{', '.join(prefix + ['pp_T'])}]"
    low = tx.map_(f"[{', '.join(names)}] -> {target} : pp_T >= pp_t - {early}")
    high = tx.map_(f"[{', '.join(names)}] -> {target} : pp_T <= pp_t")
    interval = tiles.apply(low).intersect(tiles.apply(high)).coalesce()
    # The same set as the union of each tile's window, when a block's tiles are contiguous
    # (always, for a reduction over a range): written that way it quantifies the block's
    # "has a tile" condition once instead of twice, and every proof over the sync statements
    # gets cheaper (a fifth of the stride-2 convolution's). Gaps would make the forms differ;
    # the wait counts need the contiguous one then.
    window = tx.map_(f"[{', '.join(names)}] -> {target} : pp_t - {early} <= pp_T <= pp_t")
    windows = tiles.apply(window).coalesce()
    return windows if windows.is_equal(interval) else interval


def _sync(tx: TileMapping, draft: Draft, kind: str, base: isl.Set, pending: int) -> ir.Sync:
    """A commit or wait per thread, or a barrier per block, at every iteration of ``base``."""
    name = draft.fresh(kind)
    per_thread = kind != "barrier"
    dims = tx.block_dims + tx.r_outer + ["pp_T"] + (["pp_ty", "pp_tx"] if per_thread else [])
    domain = base
    if per_thread:
        domain = domain.add_dims(isl.dim_type.set, 2)
    domain = name_dims(domain.set_tuple_name(name), dims)
    if per_thread:
        threads = tx.set_(f"{name}[{', '.join(dims)}] : 0 <= pp_ty < {tx.tm} and "
                          f"0 <= pp_tx < {tx.tn}")
        domain = domain.intersect(threads.align_params(domain.get_space()))
    return ir.Sync(name, name_dims(domain, dims), kind, pending)
