"""Proofs that a group of copies may be one wide access.

Copies into shared memory, fragment loads into registers and the accumulator's copies between
global memory and registers are built with a lane loop where a thread moves consecutive
elements (see ``GpuKernel.vector_groups`` in :mod:`polypipe.lower` and :mod:`polypipe.gpu_ir`). CUDA may print a
whole group as 16-byte accesses (``cp.async``, ``float4`` loads and stores) only when, at the
concrete sizes:

* consecutive lanes read consecutive elements of the source and write consecutive elements of
  the target (the innermost subscript grows by one, no other changes);
* every group starts at a row-major offset that is a multiple of ``V`` in both arrays, so with
  16-byte aligned base addresses each 16-byte piece is aligned. A register buffer is per
  thread: its thread subscripts do not count.

Both are checked with isl over every instance of the statement; the base addresses of global
arrays are the caller's to check (device allocations are 256-byte aligned; views may not be);
shared and register buffers are declared 16-byte aligned.
"""

from __future__ import annotations

from typing import Mapping

import islpy as isl

from .bounds import fix_parameters

VECTOR_BYTES = 16


def vector_groups(kernel, params: Mapping[str, int], extents: Mapping[str, tuple[int, ...]],
                  itemsize: Mapping[str, int]) -> frozenset[str]:
    """The statements of ``kernel`` whose lane groups are proved contiguous and aligned.

    ``extents`` gives the global arrays' shapes, ``itemsize`` the element size of every array
    the groups touch.
    """
    proved = set()
    program = kernel.program
    for name, lane_iterator, lanes in kernel.vector_groups:
        stmt = program.statement(name)
        source, target = stmt.reads[0], stmt.target
        group_bytes = lanes * itemsize[source.array]
        # 16-byte accesses; a cp.async also moves 4 or 8 (four 16-bit elements of a tile
        # laid out for float32's four-element groups).
        if group_bytes % VECTOR_BYTES and not (
                getattr(stmt, "kind", None) == "async_copy" and group_bytes in (4, 8)):
            continue
        domain = stmt.domain.intersect_params(fix_parameters(stmt.domain, params))
        lane = stmt.iterators.index(lane_iterator)
        if all(_consecutive(domain, lane, lanes, access.relation)
               and _starts_aligned(domain, lane, lanes, access.relation,
                                   _strides(program, access.array, extents))
               for access in (source, target)):
            proved.add(name)
    return frozenset(proved)


def _strides(program, array: str, extents: Mapping[str, tuple[int, ...]]):
    """Row-major element strides of ``array`` as one thread addresses it (None: unknown)."""
    info = program.array(array)
    if info.memory == "register":
        own = list((info.extents or ())[info.thread_dims:])
        return [0] * info.thread_dims + _row_major(own)
    shape = info.extents if info.memory == "shared" else extents.get(array)
    if shape is None or any(e is None for e in shape):
        return None
    return _row_major(list(shape))


def _row_major(shape: list[int]) -> list[int]:
    strides, stride = [], 1
    for extent in reversed(shape):
        strides.insert(0, stride)
        stride *= int(extent)
    return strides


def _params(obj) -> str:
    names = [obj.get_dim_name(isl.dim_type.param, p) for p in range(obj.dim(isl.dim_type.param))]
    return f"[{', '.join(names)}] -> " if names else ""


def _lane_step(domain: isl.Set, lane: int, lanes: int) -> isl.Map:
    """``{ x -> x' }``: x' is the next lane of x's group (same everything but lane + 1)."""
    name = domain.get_tuple_name()
    xs = [f"x{d}" for d in range(domain.dim(isl.dim_type.set))]
    ys = [f"x{d} + 1" if d == lane else f"x{d}" for d in range(len(xs))]
    # Groups start at multiples of ``lanes``: the last lane has no successor in its group.
    step = isl.Map(f"{_params(domain)}{{ {name}[{', '.join(xs)}] -> {name}[{', '.join(ys)}] : "
                   f"x{lane} mod {lanes} != {lanes - 1} }}").align_params(domain.get_space())
    return step.intersect_domain(domain).intersect_range(domain)


def _lane_is(domain: isl.Set, lane: int, lanes: int, value: int) -> isl.Set:
    name = domain.get_tuple_name()
    xs = [f"x{d}" for d in range(domain.dim(isl.dim_type.set))]
    text = f"{_params(domain)}{{ {name}[{', '.join(xs)}] : x{lane} mod {lanes} = {value} }}"
    return domain.intersect(isl.Set(text).align_params(domain.get_space()))


def _consecutive(domain: isl.Set, lane: int, lanes: int, relation: isl.Map) -> bool:
    """Whether the next lane's element is this lane's with the last subscript plus one."""
    pairs = _lane_step(domain, lane, lanes).apply_domain(relation).apply_range(relation)
    if pairs.is_empty():
        return True
    rank = pairs.dim(isl.dim_type.in_)
    if rank == 0:
        return False
    name = pairs.get_tuple_name(isl.dim_type.in_) or ""
    es = [f"e{d}" for d in range(rank)]
    shifted = es[:-1] + [f"e{rank - 1} + 1"]
    shift = isl.Map(f"{_params(pairs)}{{ {name}[{', '.join(es)}] -> {name}[{', '.join(shifted)}] }}")
    return pairs.is_subset(shift.align_params(pairs.get_space()))


def _starts_aligned(domain: isl.Set, lane: int, lanes: int, relation: isl.Map,
                    strides) -> bool:
    """Whether every group's first element sits at an offset divisible by ``lanes``."""
    if strides is None:
        return False
    starts = _lane_is(domain, lane, lanes, 0).apply(relation)
    rank = starts.dim(isl.dim_type.set)
    # Offsets modulo ``lanes`` only depend on the subscripts times their strides mod lanes.
    terms = " + ".join(f"{s % lanes} * e{d}" for d, s in enumerate(strides) if s % lanes)
    if not terms:
        return True
    subscripts = ", ".join(f"e{d}" for d in range(rank))
    misaligned = isl.Set(f"{_params(starts)}{{ {starts.get_tuple_name() or ''}"
                         f"[{subscripts}] : ({terms}) mod {lanes} != 0 }}")
    return starts.intersect(misaligned.align_params(starts.get_space())).is_empty()


__all__ = ["vector_groups", "VECTOR_BYTES"]
