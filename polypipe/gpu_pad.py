"""Partial tiles on tensor cores (used by the passes of :mod:`polypipe.lower`): the update runs
over whole tiles, the padding reads zeros.

Every lane of a warp takes part in each ldmatrix and mma.sync, so a tensor-core kernel cannot
leave out the instances of a block or reduction tile that lie outside the nest (where sizes do
not divide the tiles) the way the CUDA-core kernels do, by guarding threads. Instead:

* the update runs over :func:`padded_domain`: every instance of each (block tile, outer
  reduction value, reduction tile) that holds an instance of the nest;
* the copies into shared memory fill whole operand tiles, an element no instance of the nest
  reads being zero (:func:`zero_filled`; CUDA prints a zero-filling ``cp.async``);
* the accumulator's copies and the nest's other statements stay on the nest's elements.

An instance of the padding adds ``0 * 0`` to an accumulator the nest owns (on a rectangular
domain both of its operand elements are padding: no instance of the nest reads them), which
leaves the value as it is, or it adds to the accumulator of an element outside the nest,
which nothing stores. ``analysis.pad_proof`` proves the first fact on the kernel; the kernel's
other proofs run on the nest's own instances (``proof_view``).
"""

from __future__ import annotations

from dataclasses import replace

import islpy as isl

from . import ir
from .errors import ScheduleError


def padded_domain(tx) -> isl.Set:
    """The update instances a tensor-core kernel runs (see the module docstring);
    ScheduleError where the nest's domain is not rectangular (a padded instance of a
    triangle could meet a real operand element, say an infinity, and give 0 * inf)."""
    update = tx.update
    domain = update.domain
    if not _is_box(domain):
        raise ScheduleError(
            f"tensor cores run whole tiles, padding partial ones with zeros, which needs a "
            f"rectangular iteration domain: {update.name} runs over {domain}; leave mma out")
    o_u = tx.update_element()
    tiles = tx.block_of(o_u) + tx.r_outer + [f"floor({tx.rk}/{tx.bk})"]
    tile = tx.map_(f"{tx.update_instance()} -> pp_tile[{', '.join(tiles)}]")
    padded = tile.intersect_range(domain.apply(tile)).domain().coalesce()
    for pos, name in enumerate(update.iterators):
        padded = padded.set_dim_name(isl.dim_type.set, pos, name)
    return padded


def _is_box(domain: isl.Set) -> bool:
    """Whether ``domain`` is the product of its projections on each dimension (for every value
    of the parameters)."""
    n = domain.dim(isl.dim_type.set)
    flat = domain.reset_tuple_id()
    product = isl.Set.universe(flat.get_space())
    for pos in range(n):
        axis = flat.project_out(isl.dim_type.set, pos + 1, n - pos - 1).project_out(
            isl.dim_type.set, 0, pos)
        product = product.intersect(axis.insert_dims(isl.dim_type.set, 0, pos).add_dims(
            isl.dim_type.set, n - pos - 1))
    return product.is_equal(flat)


def element_of_update(tx) -> isl.Map:
    """Update instance -> accumulator element, over every update instance (the padding's
    elements included): the nest's own relation is limited to its domain."""
    return tx.map_(f"{tx.update_instance()} -> {tx.c.accumulator}"
                   f"[{', '.join(tx.update_element())}]")


def zero_filled(read: ir.Access, real: isl.Set) -> ir.Expr:
    """The value of a copy that reads ``read`` at the instances ``real`` and writes zero at the
    others."""
    return ir.Select(ir.Member(real), ir.Read(read), ir.Const(0))


def fills_with_zeros(stmt) -> isl.Set | None:
    """The instances at which copy ``stmt`` reads its source, when it writes zeros at others."""
    value = getattr(stmt, "value", None)
    if isinstance(value, ir.Select) and isinstance(value.cond, ir.Member):
        return value.cond.instances
    return None


def whole_tiles(stmt) -> isl.Set | None:
    """The instances of zero-filling copy ``stmt`` whose whole tile (the dimensions up to
    ``pp_t``: block, outer reduction value, reduction tile) reads its source: a test of the
    tile alone, which CUDA prints before the per-element one so that interior tiles copy
    without it. None for other statements."""
    reading = fills_with_zeros(stmt)
    if reading is None:
        return None
    dims = list(stmt.iterators)
    tile = dims[:dims.index("pp_t") + 1]
    to_tile = isl.Map(f"{_params(reading)}{{ {stmt.name}[{', '.join(dims)}] -> "
                      f"pp_tile[{', '.join(tile)}] }}")
    partial = stmt.domain.subtract(reading).apply(to_tile)
    return stmt.domain.subtract(to_tile.intersect_range(partial).domain())


def prefix_gaps(stmt, lane: str, vector: int, linear: str) -> isl.Map:
    """``{ instance -> the one before it in its group }`` where the first reads its source
    and the second does not, for zero-filling copy ``stmt`` whose groups of ``vector``
    consecutive values of ``linear`` run along its index ``lane``: empty when each group's
    reading elements are a prefix of it, which a 16-byte zero-filling cp.async (it reads the
    first bytes it is told to) needs. The lowering copies a copy with gaps element by
    element; ``analysis.pad_proof`` checks every 16-byte group against this."""
    reading = fills_with_zeros(stmt)
    dims = list(stmt.iterators)
    earlier = [f"{d} - 1" if d == lane else d for d in dims]
    previous = isl.Map(f"{_params(reading)}{{ {stmt.name}[{', '.join(dims)}] -> "
                       f"{stmt.name}[{', '.join(earlier)}] : ({linear}) mod {vector} > 0 }}")
    return previous.intersect_domain(reading).subtract_range(reading)


def _params(s: isl.Set) -> str:
    """``[N, M] -> `` of ``s``'s parameters, to write maps over its space as text."""
    names = [s.get_dim_name(isl.dim_type.param, p) for p in range(s.dim(isl.dim_type.param))]
    return f"[{', '.join(names)}] -> " if names else ""


def proof_view(kernel):
    """``kernel`` with its update restricted to the nest's instances: what the dataflow,
    barrier and wait proofs check (the padding's instances are proved apart)."""
    c = kernel.contraction
    if c.update is None or kernel.config.mma is None:
        return kernel
    real = c.program.statement(c.update).domain
    program = kernel.program
    stmt = program.statement(c.update)
    if stmt.domain.is_equal(real):
        return kernel
    mapping = {}
    for access in stmt.reads:
        mapping[id(access)] = replace(access, relation=access.relation.intersect_domain(real))
    reads = tuple(mapping[id(a)] for a in stmt.reads)
    target = replace(stmt.target, relation=stmt.target.relation.intersect_domain(real))
    restricted = replace(stmt, domain=real, reads=reads, target=target,
                         value=ir.replace_reads(stmt.value, mapping))
    statements = tuple(restricted if s.name == stmt.name else s for s in program.statements)
    return replace(kernel, program=replace(program, statements=statements))
