"""Contraction nest -> GPU program: tiling, mapping, promotion and multi-level pipelining.

The GPU program keeps the nest's statements (same names, same instances) and adds:

* ``<X>_s`` shared buffers with a leading stage dimension, filled by asynchronous copy
  statements ``copy_<X>`` (one element of the block's operand tile each). The tile is stored
  in the array's own order (:class:`TileLayout`), and consecutive threads take consecutive
  groups of 4 elements, so a warp reads one stretch of the row and CUDA can print a group as
  one 16-byte ``cp.async`` (see :mod:`polypipe.analysis.alignment`);
* ``<X>_r`` register fragments (per thread, ``register_stages`` slots), filled by
  ``load_<X>`` from the shared buffer. With grouped ownership (``GpuConfig.fragment_vector``)
  a thread owns groups of consecutive rows and columns, tiles are stored with the fragment
  dimension innermost, and a group of a fragment is one 16-byte load;
* a register accumulator ``<C>_r`` (per thread, its BM/TM x BN/TN outputs) with
  ``copyin_<C>`` / ``copyout_<C>`` when the accumulator is a global array;
* ``commit``, ``wait`` and ``barrier`` synchronisation statements.

The schedule tree, from the outside in: a block band (marked ``block``), the init phase, the
sequential reduction loops, the pipelined tile loop ``T`` and the epilogue phase. Inside ``T``
every barrier-free phase has its own thread band (marked ``thread``): the CPU emulation runs
each phase for all threads before the next; CUDA maps the band to ``threadIdx``.

Time inside one (block, outer reduction iteration): the copy of shared tile ``t`` is issued at
``T = t - (S - 1)`` (``S`` = shared stages); the register load of reduction step ``kk`` runs at
``(T, j) = (kk div BK, kk mod BK)`` and the update of step ``kk`` at ``kk + R - 1`` (``R`` =
register stages), so register loads run ``R - 1`` steps ahead and cross into the next shared
tile. At the start of ``T`` each thread waits for its copies of tile ``T`` (``wait(S-2)``: one
group is committed per ``T``), then a barrier makes every thread's copies visible and proves
that tile ``T-1``'s slot, about to be refilled, is no longer read. Nothing here is trusted:
:mod:`polypipe.analysis.gpu_proof` proves the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import islpy as isl

from . import ir
from .errors import InternalError, ScheduleError
from .ir import fresh_name
from .gpu_config import GpuConfig
from polypipe.analysis.contraction import Contraction, affine_function

# Position of each part of a pipeline iteration (a sequence inside the T band).
PHASE_WAIT, PHASE_BARRIER0, PHASE_COPY, PHASE_BARRIER1, PHASE_COMPUTE = range(5)


@dataclass(frozen=True)
class Operand:
    """A read of the update promoted through shared memory and registers."""

    read_index: int          # position in the update's reads
    array: str
    shared: str              # shared buffer name
    register: str            # register fragment name
    uses_m: bool
    uses_n: bool


@dataclass(frozen=True, eq=False)
class GpuKernel:
    """One contraction nest mapped to the GPU: its program and how it was built."""

    program: ir.Program
    contraction: Contraction
    config: GpuConfig
    operands: tuple[Operand, ...]
    accumulator_buffer: str
    copy_in: bool
    copy_out: bool
    unpromoted: tuple[tuple[str, str], ...] = field(default=())  # (read, reason)
    # Instance -> coordinates, for the proofs: block, thread, and (outer reduction, pipeline
    # iteration T) of the main-loop statements.
    block_of: isl.UnionMap | None = None
    thread_of: isl.UnionMap | None = None
    iteration_of: isl.UnionMap | None = None
    phase_of: isl.UnionMap | None = None
    waits_after_commit: frozenset = frozenset()
    copy_layouts: tuple = ()   # (copy statement, TileLayout of the shared buffer it fills)
    # (statement, lane iterator, lanes): copies and fragment loads whose consecutive lanes may
    # be one vector access; :mod:`polypipe.analysis.alignment` decides at concrete sizes.
    vector_groups: tuple = ()

    @property
    def name(self) -> str:
        return self.program.name

    def shared_bytes(self, itemsize: int) -> int:
        total = 0
        for array in self.program.arrays:
            if array.memory == "shared":
                count = 1
                for extent in array.extents or ():
                    count *= extent
                total += count * itemsize
        return total

    def registers_per_thread(self, itemsize: int) -> int:
        """Registers of the per-thread buffers (32-bit registers), without addressing."""
        words = 0
        for array in self.program.arrays:
            if array.memory == "register":
                count = 1
                for extent in (array.extents or ())[array.thread_dims:]:
                    count *= extent
                words += count * max(itemsize // 4, 1)
        return words


@dataclass(frozen=True)
class _LocalDim:
    """One dimension of an operand tile: rows (m), columns (n) or the reduction step (k)."""

    name: str       # pp_lm, pp_ln or pp_lk: the copy statement's iterator
    expr: str       # its value on an update instance
    extent: int
    iterator: str   # the update iterator it follows


@dataclass(frozen=True)
class TileLayout:
    """How an operand tile is stored in shared memory and split among the copying threads."""

    canonical: tuple[_LocalDim, ...]   # the copy statement's dimensions: (m | n, k)
    copy_order: tuple[_LocalDim, ...]  # the array's own order: its innermost subscript last
    order: tuple[_LocalDim, ...]       # stored order
    padding: int                       # elements added to each stored row (bank conflicts)
    vector: int                        # consecutive elements (in copy order) one thread copies

    @property
    def stored_extents(self) -> tuple[int, ...]:
        extents = [d.extent for d in self.order]
        extents[-1] += self.padding
        return tuple(extents)

    def linear(self) -> str:
        """Row-major position of a tile element in the array's own order: copies are
        distributed over it, so consecutive threads read consecutive global addresses."""
        terms, stride = [], 1
        for dim in reversed(self.copy_order):
            terms.append(f"{stride} * {dim.name}")
            stride *= dim.extent
        return " + ".join(reversed(terms))

    def word(self, coords: dict[str, int]) -> int:
        """Offset (in elements) of a tile element inside its stage slot."""
        offset = 0
        for dim, extent in zip(self.order, self.stored_extents):
            offset = offset * extent + coords[dim.name]
        return offset

    def copy_coords(self, linear: int) -> dict[str, int]:
        coords = {}
        for dim in reversed(self.copy_order):
            linear, coords[dim.name] = divmod(linear, dim.extent)
        return coords


VECTOR_ELEMENTS = 4   # one 16-byte cp.async of float32 (two of float64)
ROW_PADDINGS = (0, VECTOR_ELEMENTS)   # padding keeps rows 16-byte aligned
WARP = 32


def _tile_layout(op: "Operand", source: ir.Access, update: ir.Statement, tx: "_Text",
                 m_iter: str, n_iter: str) -> TileLayout:
    """Choose how the tile is copied (in the array's own order) and stored.

    Copies follow the array's own order: the local dimension that drives the array's last
    subscript goes innermost, so a warp's copies read consecutive addresses. The tile is stored
    in the same order, except when threads own groups of consecutive rows or columns
    (``GpuConfig.fragment_vector``): then the fragment dimension is stored innermost, so one
    group of a thread's fragment is one 16-byte shared load (the copies of an operand whose
    array runs the other way become 4-byte ones). The row padding is the one with the fewest
    shared-memory wavefronts per tile, fragment loads and copies counted.
    """
    o = tx.update_element()
    frag = None
    dims = []
    if op.uses_m:
        dims.append(_LocalDim("pp_lm", tx.local_m(o), tx.bm, m_iter))
        frag = (dims[-1], tx.vm, tx.rm)
    if op.uses_n:
        dims.append(_LocalDim("pp_ln", tx.local_n(o), tx.bn, n_iter))
        frag = (dims[-1], tx.vn, tx.rn)
    dims.append(_LocalDim("pp_lk", f"(({tx.rk}) mod {tx.bk})", tx.bk, tx.rk))
    rank = source.relation.dim(isl.dim_type.out)
    driving = [d for d in dims if _uses(source.relation, update, d.iterator,
                                        range(rank - 1, rank))] if rank else []
    copy_order = list(dims)
    if len(driving) == 1:
        copy_order.remove(driving[0])
        copy_order.append(driving[0])
    order = copy_order
    if frag is not None and frag[1] > 1:
        order = [d for d in dims if d is not frag[0]] + [frag[0]]
    vector = VECTOR_ELEMENTS if copy_order[-1].extent % VECTOR_ELEMENTS == 0 else 1
    candidates = [TileLayout(tuple(dims), tuple(copy_order), tuple(order), pad, vector)
                  for pad in ROW_PADDINGS]
    return min(candidates, key=lambda layout: (_wavefronts_per_tile(layout, tx, frag),
                                               layout.padding))


def _wavefronts_per_tile(layout: TileLayout, tx: "_Text", frag) -> int:
    """Shared-memory wavefronts of one warp over one tile: its fragment loads and copies."""
    threads = tx.tm * tx.tn
    warp = range(min(WARP, threads))
    read_width = frag[1] if frag is not None and layout.order[-1] is frag[0] else 1
    starts = [layout.word({"pp_lm": tx.vm * (t // tx.tn), "pp_ln": tx.vn * (t % tx.tn),
                           "pp_lk": 0}) for t in warp]
    loads_per_tile = tx.bk * (frag[2] if frag is not None else 1) // read_width
    total = _wavefronts(starts, read_width) * loads_per_tile
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
        total += _wavefronts(starts, len(group)) * rounds if starts else 0
    return total


def _wavefronts(starts: list[int], width: int) -> int:
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


class _Text:
    """isl text for the mapping of one contraction under one configuration."""

    def __init__(self, c: Contraction, config: GpuConfig):
        self.c = c
        self.cfg = config
        self.params = c.program.parameter_names
        self.prefix = f"[{', '.join(self.params)}] -> " if self.params else ""
        self.update = c.program.statement(c.update) if c.update is not None else None
        self.p = c.rank
        self.bm, self.bn = config.block
        self.tm, self.tn = config.threads
        self.rm, self.rn = config.thread_tile
        self.vm, self.vn = config.fragment_vectors
        self.bk = config.reduction
        self.S = config.shared_stages
        self.R = config.register_stages
        self.rk = c.reduction_iterators[-1] if c.reduction_iterators else None
        self.r_outer = list(c.reduction_iterators[:-1])
        self.block_dims = [f"pp_b{d}" for d in range(self.p - 2)] + ["pp_bm", "pp_bn"]

    # -- output element coordinates -> mapping ------------------------------------------------
    def update_element(self) -> list[str]:
        return [f"({it} + {off})" if off else it
                for it, off in zip(self.c.output_iterators, self.c.output_offsets)]

    def block_of(self, o: list[str]) -> list[str]:
        return o[:-2] + [f"floor(({o[-2]})/{self.bm})", f"floor(({o[-1]})/{self.bn})"]

    def local_m(self, o: list[str]) -> str:
        return f"(({o[-2]}) mod {self.bm})"

    def local_n(self, o: list[str]) -> str:
        return f"(({o[-1]}) mod {self.bn})"

    # A thread owns groups of ``v`` consecutive rows (columns), ``v * T`` apart: local row
    # ``l`` belongs to thread ``floor(l / v) mod T`` as its fragment row
    # ``v * floor(l / (v T)) + l mod v``; ``local_of`` is the inverse.
    def _axes(self, o: list[str]) -> list[tuple[str, int, int]]:
        """(local coordinate, group, threads) of the row and of the column axis."""
        return [(self.local_m(o), self.vm, self.tm), (self.local_n(o), self.vn, self.tn)]

    def thread_of(self, o: list[str]) -> list[str]:
        return [_owner(*axis) for axis in self._axes(o)]

    def fragment_of(self, o: list[str]) -> list[str]:
        return [_fragment(*axis) for axis in self._axes(o)]

    def fragment_loops(self, o: list[str]) -> list[str]:
        """Schedule dimensions enumerating a thread's fragment: the group and the position in
        it as two loops, so that isl's AST has constant bounds (one loop over ``v * g + l``
        made isl emit thread-dependent bounds and guards, which leave register indices
        non-constant and the fragments in local memory)."""
        loops = []
        for local, vector, threads in self._axes(o):
            loops += ([_fragment(local, vector, threads)] if vector == 1 else
                      [f"floor({local}/{vector * threads})", f"({local}) mod {vector}"])
        return loops

    def local_of(self, thread: str, fragment: str, axis: int) -> str:
        v, t = (self.vm, self.tm) if axis == 0 else (self.vn, self.tn)
        if v == 1:
            return f"{thread} + {t} * {fragment}"
        return f"{v * t} * floor({fragment}/{v}) + {v} * {thread} + ({fragment}) mod {v}"

    def element_space(self) -> str:
        return f"{self.c.accumulator}[{', '.join(f'pp_o{d}' for d in range(self.p))}]"

    def element_vars(self) -> list[str]:
        return [f"pp_o{d}" for d in range(self.p)]

    def element_map(self, outputs: list[str]) -> isl.Map:
        """``{ C[o] -> [outputs(o)] }`` over the accumulator's element space."""
        return isl.Map(f"{self.prefix}{{ {self.element_space()} -> [{', '.join(outputs)}] }}")

    # -- helpers --------------------------------------------------------------------------
    def map_(self, text: str) -> isl.Map:
        try:
            return isl.Map(f"{self.prefix}{{ {text} }}")
        except isl.Error as exc:  # an internal bug: the text is generated here
            raise InternalError(f"bad isl text {text}: {exc}") from None

    def set_(self, text: str) -> isl.Set:
        return isl.Set(f"{self.prefix}{{ {text} }}")

    def update_instance(self) -> str:
        return f"{self.c.update}[{', '.join(self.update.iterators)}]"


def _owner(local: str, vector: int, threads: int) -> str:
    """The thread (row or column) owning local coordinate ``local`` of the block tile."""
    if vector == 1:
        return f"({local} mod {threads})"
    return f"(floor({local}/{vector}) mod {threads})"


def _fragment(local: str, vector: int, threads: int) -> str:
    """The owning thread's fragment index of local coordinate ``local``."""
    if vector == 1:
        return f"floor({local}/{threads})"
    return f"({vector} * floor({local}/{vector * threads}) + ({local}) mod {vector})"


def _uses(relation: isl.Map, stmt: ir.Statement, iterator: str,
          dims: range | None = None) -> bool:
    """Whether the accessed element (or its subscripts ``dims``) changes with ``iterator``."""
    pma = isl.PwMultiAff.from_map(relation)
    position = stmt.iterators.index(iterator)
    for dim in dims if dims is not None else range(pma.dim(isl.dim_type.out)):
        for _, aff in pma.get_pw_aff(dim).get_pieces():
            if not aff.get_coefficient_val(isl.dim_type.in_, position).is_zero():
                return True
            for div in range(aff.dim(isl.dim_type.div)):
                inner = aff.get_div(div)
                if not inner.get_coefficient_val(isl.dim_type.in_, position).is_zero():
                    return True
    return False


def _mupa(pieces: list[str], prefix: str, width: int) -> str:
    """Multi-union-pw-aff text ``[{ S[..] -> [(e0)]; ... }, { ... }]`` from per-statement
    ``S[..] -> [e0, e1, ...]`` strings (each given as (instance, [exprs]))."""
    columns = []
    for index in range(width):
        parts = [f"{inst} -> [({exprs[index]})]" for inst, exprs in pieces]  # type: ignore
        columns.append("{ " + "; ".join(parts) + " }")
    return prefix + "[" + ", ".join(columns) + "]"


def build_gpu_kernel(c: Contraction, config: GpuConfig, kernel_name: str) -> GpuKernel:
    """Build the GPU program of one contraction nest (see the module docstring)."""
    config.validate()
    tx = _Text(c, config)
    if c.update is None:
        return _build_elementwise(c, config, kernel_name, tx)
    program = c.program
    update = tx.update
    taken = {a.name for a in program.arrays} | {s.name for s in program.statements}
    nest = [program.statement(n) for n in c.statements]

    # -- which reads of the update go through shared memory ----------------------------------
    written_in_nest = {s.target.array for s in nest}
    m_iter, n_iter = c.output_iterators[-2], c.output_iterators[-1]
    operands: list[Operand] = []
    unpromoted: list[tuple[str, str]] = []
    for index, access in enumerate(update.reads):
        if access.array == c.accumulator:
            continue
        array = program.array(access.array)
        if array.is_local or array.memory == "local":
            continue
        label = str(access)
        if access.array in written_in_nest:
            unpromoted.append((label, f"{access.array} is written inside the loop nest"))
            continue
        if not _uses(access.relation, update, tx.rk):
            unpromoted.append((label, f"does not change with the reduction loop {tx.rk}; "
                                      "read once per use from global memory"))
            continue
        uses_m = _uses(access.relation, update, m_iter)
        uses_n = _uses(access.relation, update, n_iter)
        if uses_m and uses_n:
            unpromoted.append((label, "no reuse inside a block (it changes with rows, columns "
                                      "and the reduction)"))
            continue
        base = access.array
        operands.append(Operand(index, access.array, fresh_name(f"{base}_s", taken),
                                fresh_name(f"{base}_r", taken), uses_m, uses_n))

    o_u = tx.update_element()
    block_u = tx.block_of(o_u)
    thread_u = tx.thread_of(o_u)
    frag_u = tx.fragment_of(o_u)
    tile_u = f"floor({tx.rk}/{tx.bk})"
    u_inst = tx.update_instance()
    u_domain = update.domain

    arrays = list(program.arrays)
    statements: dict[str, ir.Statement] = {}
    syncs: list[ir.Sync] = []
    schedule_pieces: dict[str, dict] = {}   # statement -> {"block": [...], "thread": [...], ...}

    # -- register accumulator ----------------------------------------------------------------
    acc_buffer = fresh_name(f"{c.accumulator}_r", taken)
    arrays.append(ir.Array(acc_buffer, 4, (None,) * 4, memory="register",
                           extents=(tx.tm, tx.tn, tx.rm, tx.rn), thread_dims=2))
    elem = tx.element_vars()
    acc_of_element = isl.Map(
        f"{tx.prefix}{{ {tx.element_space()} -> {acc_buffer}"
        f"[{', '.join(tx.thread_of(elem) + tx.fragment_of(elem))}] }}")

    def to_register(stmt: ir.Statement, access: ir.Access) -> ir.Access:
        relation = c.element_of[stmt.name].apply_range(acc_of_element)
        return replace(access, array=acc_buffer, indices=(), relation=relation)

    # -- operand buffers and their copies -----------------------------------------------------
    register_read: dict[int, ir.Access] = {}
    copy_layouts: list[tuple[str, TileLayout]] = []
    vector_groups: list[tuple[str, str, int]] = []
    for op in operands:
        source = update.reads[op.read_index]
        layout = _tile_layout(op, source, update, tx, m_iter, n_iter)
        local = [d.expr for d in layout.canonical]
        local_names = [d.name for d in layout.canonical]
        arrays.append(ir.Array(op.shared, 1 + len(layout.order), (None,) * (1 + len(layout.order)),
                               memory="shared", extents=(tx.S, *layout.stored_extents)))
        copy_name = fresh_name(f"copy_{op.array}", taken)
        copy_dims = tx.block_dims + tx.r_outer + ["pp_t"] + local_names
        to_copy = tx.map_(f"{u_inst} -> {copy_name}[{', '.join(block_u + tx.r_outer + [tile_u] + local)}]")
        to_copy = to_copy.intersect_domain(u_domain)
        copy_domain = u_domain.apply(to_copy)
        copy_domain = _name_dims(copy_domain, copy_dims)
        read_rel = to_copy.reverse().apply_range(source.relation).intersect_domain(copy_domain)
        if not read_rel.is_single_valued():
            raise ScheduleError(f"{source} in {update.name}: one element of the operand tile "
                                "maps to several array elements; cannot stage it")
        slot = "(pp_t) mod " + str(tx.S)
        stored = ", ".join(d.name for d in layout.order)
        write_rel = tx.map_(f"{copy_name}[{', '.join(copy_dims)}] -> "
                            f"{op.shared}[{slot}, {stored}]").intersect_domain(copy_domain)
        write = ir.Access(op.shared, (), write_rel, True)
        read = ir.Access(op.array, source.indices, read_rel, False, source.location)
        statements[copy_name] = ir.Statement(copy_name, tuple(copy_dims), copy_domain, write,
                                             None, ir.Read(read), (read,), kind="async_copy",
                                             source=f"{op.shared} <- {op.array}")
        copy_layouts.append((copy_name, layout))
        if layout.vector > 1:
            vector_groups.append((copy_name, layout.copy_order[-1].name, layout.vector))
        # Consecutive threads take consecutive groups of ``vector`` elements in the array's
        # own layout order: coalesced global reads, and one group is one 16-byte cp.async.
        linear = layout.linear()
        group = f"floor(({linear})/{layout.vector})"
        tid = f"(({group}) mod {config.thread_count})"
        schedule_pieces[copy_name] = {
            "block": tx.block_dims, "outer": tx.r_outer,
            "T": [f"pp_t - {tx.S - 1}"], "phase": PHASE_COPY,
            "thread": [f"floor({tid}/{tx.tn})", f"({tid} mod {tx.tn})"],
            "inner": [f"floor(({group})/{config.thread_count})"],
            "lane": [f"({linear}) mod {layout.vector}"] if layout.vector > 1 else None,
            "vector": layout.vector,
            "instance": f"{copy_name}[{', '.join(copy_dims)}]",
        }

        # Register fragment: per thread, R slots, the thread's rows (A-like) or columns.
        frag_extents = ([tx.rm] if op.uses_m else []) + ([tx.rn] if op.uses_n else [])
        arrays.append(ir.Array(op.register, 3 + len(frag_extents),
                               (None,) * (3 + len(frag_extents)), memory="register",
                               extents=(tx.tm, tx.tn, tx.R, *frag_extents), thread_dims=2))
        load_name = fresh_name(f"load_{op.array}", taken)
        frag_names = (["pp_m"] if op.uses_m else []) + (["pp_n"] if op.uses_n else [])
        frag_exprs = ([frag_u[0]] if op.uses_m else []) + ([frag_u[1]] if op.uses_n else [])
        load_dims = tx.block_dims + tx.r_outer + ["pp_kk", "pp_ty", "pp_tx"] + frag_names
        to_load = tx.map_(f"{u_inst} -> {load_name}"
                          f"[{', '.join(block_u + tx.r_outer + [tx.rk] + thread_u + frag_exprs)}]")
        load_domain = _name_dims(u_domain.apply(to_load.intersect_domain(u_domain)), load_dims)
        at = {"pp_lm": tx.local_of("pp_ty", "pp_m", 0), "pp_ln": tx.local_of("pp_tx", "pp_n", 1),
              "pp_lk": f"(pp_kk) mod {tx.bk}"}
        shared_index = [at[d.name] for d in layout.order]
        load_read = ir.Access(op.shared, (), tx.map_(
            f"{load_name}[{', '.join(load_dims)}] -> {op.shared}"
            f"[(floor(pp_kk/{tx.bk})) mod {tx.S}, {', '.join(shared_index)}]").intersect_domain(
            load_domain), False)
        load_write = ir.Access(op.register, (), tx.map_(
            f"{load_name}[{', '.join(load_dims)}] -> {op.register}"
            f"[pp_ty, pp_tx, (pp_kk) mod {tx.R}{''.join(', ' + f for f in frag_names)}]"
        ).intersect_domain(load_domain), True)
        statements[load_name] = ir.Statement(load_name, tuple(load_dims), load_domain,
                                             load_write, None, ir.Read(load_read), (load_read,),
                                             kind="copy", source=f"{op.register} <- {op.shared}")
        schedule_pieces[load_name] = {
            "block": tx.block_dims, "outer": tx.r_outer,
            "T": [f"floor(pp_kk/{tx.bk})"], "phase": PHASE_COMPUTE,
            "thread": ["pp_ty", "pp_tx"], "j": [f"(pp_kk) mod {tx.bk}"],
            "order": len(schedule_pieces), "inner": frag_names or ["0"],
            "instance": f"{load_name}[{', '.join(load_dims)}]",
        }
        # A group of a thread's fragment that is stored consecutively becomes a lane loop:
        # CUDA loads it as one 16-byte vector where alignment is proved.
        lanes = {"pp_lm": tx.vm, "pp_ln": tx.vn}.get(layout.order[-1].name, 1)
        if len(frag_names) == 1 and lanes > 1:
            schedule_pieces[load_name].update(
                inner=[f"floor({frag_names[0]}/{lanes})"], lane=[f"({frag_names[0]}) mod {lanes}"],
                vector=lanes)
            vector_groups.append((load_name, frag_names[0], lanes))
        register_read[op.read_index] = ir.Access(op.register, (), tx.map_(
            f"{u_inst} -> {op.register}[{', '.join(thread_u)}, ({tx.rk}) mod {tx.R}"
            f"{''.join(', ' + f for f in frag_exprs)}]").intersect_domain(u_domain), False,
            update.reads[op.read_index].location)

    # -- the update, reading registers --------------------------------------------------------
    new_reads = []
    for index, access in enumerate(update.reads):
        if index in register_read:
            new_reads.append(register_read[index])
        elif access.array == c.accumulator:
            new_reads.append(to_register(update, access))
        else:
            new_reads.append(access)
    mapping = {id(old): new for old, new in zip(update.reads, new_reads)}
    statements[update.name] = replace(update, target=to_register(update, update.target),
                                      reads=tuple(new_reads),
                                      value=ir.replace_reads(update.value, mapping))
    schedule_pieces[update.name] = {
        "block": block_u, "outer": tx.r_outer,
        "T": [f"floor(({tx.rk} + {tx.R - 1})/{tx.bk})"], "phase": PHASE_COMPUTE,
        "thread": thread_u, "j": [f"(({tx.rk} + {tx.R - 1})) mod {tx.bk}"],
        "order": 10_000, "inner": tx.fragment_loops(o_u), "instance": u_inst,
    }

    # -- init and epilogue statements on the register accumulator -----------------------------
    def element_pieces(stmt: ir.Statement) -> dict:
        rel = c.element_of[stmt.name]
        return {"via": rel, "instance": f"{stmt.name}[{', '.join(stmt.iterators)}]"}

    for stmt in nest:
        if stmt.name == update.name:
            continue
        reads = tuple(to_register(stmt, a) if a.array == c.accumulator else a
                      for a in stmt.reads)
        mapping = {id(old): new for old, new in zip(stmt.reads, reads)}
        target = stmt.target
        if target.array == c.accumulator:
            target = to_register(stmt, target)
        statements[stmt.name] = replace(stmt, target=target, reads=reads,
                                        value=ir.replace_reads(stmt.value, mapping))
        schedule_pieces[stmt.name] = element_pieces(stmt)

    accumulator = program.array(c.accumulator)
    elements = isl.UnionSet.empty(u_domain.get_space().params())
    for stmt in nest:
        elements = elements.union(isl.UnionSet.from_set(c.element_of[stmt.name].range()))
    element_set = isl.Set.from_union_set(elements).coalesce()
    copy_in = not accumulator.is_local and accumulator.memory == "global" and _has_live_in(
        program, nest, c.accumulator)
    copy_out = not accumulator.is_local and accumulator.memory == "global"
    element_names = tx.element_vars()
    if copy_in:
        name = fresh_name(f"copyin_{c.accumulator}", taken)
        domain = _name_dims(element_set.set_tuple_name(name), element_names)
        ident = tx.map_(f"{name}[{', '.join(element_names)}] -> "
                        f"{tx.element_space()}").intersect_domain(domain)
        read = ir.Access(c.accumulator, (), ident, False)
        write = ir.Access(acc_buffer, (), ident.apply_range(acc_of_element), True)
        statements[name] = ir.Statement(name, tuple(element_names), domain, write, None,
                                        ir.Read(read), (read,), kind="copy",
                                        source=f"{acc_buffer} <- {c.accumulator}")
        schedule_pieces[name] = {"via": ident, "instance": f"{name}[{', '.join(element_names)}]",
                                 "first": True}
        _vector_columns(schedule_pieces[name], name, element_names, tx, vector_groups)
    if copy_out:
        name = fresh_name(f"copyout_{c.accumulator}", taken)
        written = isl.UnionSet.empty(u_domain.get_space().params())
        for stmt in nest:
            if stmt.target.array == c.accumulator:
                written = written.union(isl.UnionSet.from_set(stmt.target.relation.range()))
        domain = _name_dims(isl.Set.from_union_set(written).coalesce().set_tuple_name(name),
                            element_names)
        ident = tx.map_(f"{name}[{', '.join(element_names)}] -> "
                        f"{tx.element_space()}").intersect_domain(domain)
        read = ir.Access(acc_buffer, (), ident.apply_range(acc_of_element), False)
        write = ir.Access(c.accumulator, (), ident, True)
        statements[name] = ir.Statement(name, tuple(element_names), domain, write, None,
                                        ir.Read(read), (read,), kind="copy",
                                        source=f"{c.accumulator} <- {acc_buffer}")
        schedule_pieces[name] = {"via": ident, "instance": f"{name}[{', '.join(element_names)}]",
                                 "last": True}
        _vector_columns(schedule_pieces[name], name, element_names, tx, vector_groups)

    # -- pipeline iteration ranges and synchronisation ----------------------------------------
    prefix_dims = tx.block_dims + tx.r_outer
    tiles = u_domain.apply(tx.map_(f"{u_inst} -> [{', '.join(block_u + tx.r_outer + [tile_u])}]"))
    names = prefix_dims + ["pp_t"]
    ge = tx.map_(f"[{', '.join(names)}] -> [{', '.join(prefix_dims + ['pp_T'])}] : "
                 f"pp_T >= pp_t")
    ge_early = tx.map_(f"[{', '.join(names)}] -> [{', '.join(prefix_dims + ['pp_T'])}] : "
                       f"pp_T >= pp_t - {tx.S - 1}")
    le = tx.map_(f"[{', '.join(names)}] -> [{', '.join(prefix_dims + ['pp_T'])}] : "
                 f"pp_T <= pp_t")
    steady = tiles.apply(ge).intersect(tiles.apply(le)).coalesce()
    issuing = tiles.apply(ge_early).intersect(tiles.apply(le)).coalesce()
    threads = f"0 <= pp_ty < {tx.tm} and 0 <= pp_tx < {tx.tn}"
    sync_dims = prefix_dims + ["pp_T"]

    def make_sync(kind: str, base: isl.Set, phase: int, pending: int = 0) -> ir.Sync:
        name = fresh_name(kind, taken)
        per_thread = kind != "barrier"
        dims = sync_dims + (["pp_ty", "pp_tx"] if per_thread else [])
        domain = base
        if per_thread:
            domain = domain.add_dims(isl.dim_type.set, 2)
        domain = _name_dims(domain.set_tuple_name(name), dims)
        if per_thread:
            extra = tx.set_(f"{name}[{', '.join(dims)}] : {threads}")
            domain = domain.intersect(extra.align_params(domain.get_space()))
        sync_phases[name] = phase
        return ir.Sync(name, _name_dims(domain, dims), kind, pending)

    sync_phases: dict[str, int] = {}
    syncs.append(make_sync("commit", issuing, PHASE_COPY))
    # The barrier before the copies also runs in prologue iterations: when an outer reduction
    # loop starts a new pipeline, its first copies refill slots the previous pipeline's last
    # tiles were read from.
    if tx.S >= 2:
        syncs.append(make_sync("wait", steady, PHASE_WAIT, tx.S - 2))
        syncs.append(make_sync("barrier", issuing, PHASE_BARRIER0))
    else:
        syncs.append(make_sync("barrier", issuing, PHASE_BARRIER0))
        syncs.append(make_sync("wait", steady, PHASE_COPY, 0))
        syncs.append(make_sync("barrier", steady, PHASE_BARRIER1))
    for sync in syncs:
        per_thread = sync.kind != "barrier"
        dims = sync_dims + (["pp_ty", "pp_tx"] if per_thread else [])
        schedule_pieces[sync.name] = {
            "block": tx.block_dims, "outer": tx.r_outer, "T": ["pp_T"],
            "phase": sync_phases[sync.name],
            "thread": ["pp_ty", "pp_tx"] if per_thread else None,
            "order": 20_000 if sync.kind == "commit" else 30_000,
            "inner": [], "instance": f"{sync.name}[{', '.join(dims)}]",
        }

    gpu_program = replace(
        program, name=kernel_name, statements=tuple(statements.values()), syncs=tuple(syncs),
        arrays=tuple(a for a in arrays if a.name != c.expanded_array),
        launch=ir.Launch((tx.tm, tx.tn)),
        transforms=program.transforms + (f"gpu_map({config.describe()})",))
    schedule = _schedule_tree(gpu_program, tx, schedule_pieces, c)
    gpu_program = replace(gpu_program, schedule=schedule)
    waits_after_commit = frozenset(
        sync.name for sync in syncs if sync.kind == "wait" and sync_phases[sync.name] == PHASE_COPY)
    return GpuKernel(gpu_program, c, config, tuple(operands), acc_buffer, copy_in, copy_out,
                     tuple(unpromoted),
                     block_of=_coordinates(schedule_pieces, tx.prefix, lambda p: p["block"]),
                     thread_of=_coordinates(schedule_pieces, tx.prefix, lambda p: p["thread"]),
                     iteration_of=_coordinates(
                         schedule_pieces, tx.prefix,
                         lambda p: (p["outer"] + p["T"]) if "T" in p else None),
                     phase_of=_coordinates(
                         schedule_pieces, tx.prefix,
                         lambda p: [str(p["phase"])] if "phase" in p else None),
                     waits_after_commit=waits_after_commit, copy_layouts=tuple(copy_layouts),
                     vector_groups=tuple(vector_groups))


def _vector_columns(piece: dict, name: str, element_names: list[str], tx: "_Text",
                    vector_groups: list) -> None:
    """With grouped column ownership a thread's accumulator columns come in runs of ``vn``
    consecutive elements of the array's last dimension: the copy between the accumulator and
    its registers gets that run as a lane loop, printed as 16-byte accesses where proved.

    The run is ``o mod vn`` of the column coordinate ``o`` (the block width is a multiple of
    ``vn``), which is the lane numbering :mod:`polypipe.analysis.alignment` proves against.
    """
    if tx.vn == 1:
        return
    piece.update(lane_last=True, vector=tx.vn)
    vector_groups.append((name, element_names[-1], tx.vn))


def _build_elementwise(c: Contraction, config: GpuConfig, kernel_name: str, tx: _Text
                       ) -> GpuKernel:
    """An element-wise nest: blocks and threads over its output elements, no pipeline."""
    program = c.program
    pieces = {}
    for name in c.statements:
        stmt = program.statement(name)
        pieces[name] = {"via": c.element_of[name],
                        "instance": f"{name}[{', '.join(stmt.iterators)}]"}
    gpu_program = replace(program, name=kernel_name,
                          statements=tuple(program.statement(n) for n in c.statements),
                          syncs=(), launch=ir.Launch((tx.tm, tx.tn)),
                          transforms=program.transforms + (f"gpu_map({config.describe()})",))
    schedule = _schedule_tree(gpu_program, tx, pieces, c)
    return GpuKernel(replace(gpu_program, schedule=schedule), c, config, (), "", False, False,
                     block_of=_coordinates(pieces, tx.prefix, lambda p: p["block"]),
                     thread_of=_coordinates(pieces, tx.prefix, lambda p: p["thread"]),
                     iteration_of=_coordinates(pieces, tx.prefix, lambda p: None),
                     phase_of=_coordinates(pieces, tx.prefix, lambda p: None))


def _coordinates(pieces: dict[str, dict], prefix: str, pick) -> isl.UnionMap:
    """``{ instance -> [coordinates] }`` over every statement ``pick`` gives coordinates for."""
    parts = [f"{piece['instance']} -> [{', '.join(pick(piece))}]"
             for piece in pieces.values() if pick(piece)]
    return isl.UnionMap(prefix + "{ " + "; ".join(parts) + " }")


def _name_dims(s: isl.Set, names: list[str]) -> isl.Set:
    for pos, dim_name in enumerate(names):
        s = s.set_dim_name(isl.dim_type.set, pos, dim_name)
    return s


def _has_live_in(program: ir.Program, nest: list[ir.Statement], array: str) -> bool:
    """Whether some read of ``array`` in the nest sees a value from before the nest."""
    reads = isl.UnionMap.empty(program.context.get_space())
    writes = isl.UnionMap.empty(program.context.get_space())
    schedule = isl.UnionMap.empty(program.context.get_space())
    full = program.schedule_map
    for stmt in nest:
        for access in stmt.reads:
            if access.array == array:
                reads = reads.union(isl.UnionMap.from_map(access.relation))
        if stmt.target.array == array:
            writes = writes.union(isl.UnionMap.from_map(stmt.target.relation))
        schedule = schedule.union(full.intersect_domain(isl.UnionSet.from_set(stmt.domain)))
    if reads.is_empty():
        return False
    info = isl.UnionAccessInfo.from_sink(reads).set_must_source(writes)
    flow = info.set_schedule_map(schedule).compute_flow()
    return not flow.get_may_no_source().is_empty()


# --------------------------------------------------------------------------------------------
# Schedule tree
# --------------------------------------------------------------------------------------------


def _yaml_str(value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"'


def _band(pieces: list[tuple[str, list[str]]], prefix: str, child: str | None,
          options: str | None = None) -> str:
    width = len(pieces[0][1])
    text = "{ schedule: " + _yaml_str(_mupa(pieces, prefix, width))
    if options:
        text += ", options: " + _yaml_str(options)
    if child:
        text += ", child: " + child
    return text + " }"


def _filter(instances: list[str], prefix: str, child: str | None) -> str:
    text = "{ filter: " + _yaml_str(prefix + "{ " + "; ".join(instances) + " }")
    if child:
        text += ", child: " + child
    return text + " }"


def _sequence(children: list[str]) -> str:
    """A sequence node; even one filter child needs it to keep the filter node valid."""
    return "{ sequence: [ " + ", ".join(children) + " ] }"


def _mark(name: str, child: str) -> str:
    return "{ mark: " + _yaml_str(name) + ", child: " + child + " }"


def _lane_band(piece: dict, prefix: str) -> str | None:
    """The lane loop of a group of consecutive copies or loads, marked ``vector:<lanes>`` so
    that CUDA can print it as one wide access where contiguity and alignment are proved."""
    lane = piece.get("lane")
    if not lane:
        return None
    return _mark(f"vector:{piece['vector']}", _band([(piece["instance"], lane)], prefix, None))


def _via(piece: dict, outputs: list[str], tx: _Text) -> list[str]:
    """Express ``outputs`` (functions of the accumulator element) on a statement's instance.

    The element is taken as one affine function of the instance (``_element_function``) and
    ``outputs`` are pulled back over it without the statement's domain: over a domain that is
    a union of pieces (``if not (0 < j < M - 1)``), isl would otherwise simplify
    ``floor((j - 1)/8)`` differently on each piece (``-1`` where ``j = 0``), which is one
    function written several ways, not a piecewise mapping.
    """
    element = _element_function(piece["via"], piece["instance"])
    outputs_map = isl.PwMultiAff.from_map(tx.element_map(outputs))
    if outputs_map.n_piece() != 1:
        raise InternalError(f"the mapping of {tx.c.accumulator}'s elements is piecewise: "
                            f"{outputs_map}")
    mapped = _single_multi_aff(outputs_map).pullback_multi_aff(element)
    return [_aff_expression(mapped.get_aff(dim)) for dim in range(mapped.dim(isl.dim_type.out))]


def _single_multi_aff(pma: isl.PwMultiAff) -> isl.MultiAff:
    pieces = []
    pma.foreach_piece(lambda _, ma: pieces.append(ma))
    return pieces[0]


def _element_function(relation: isl.Map, instance: str) -> isl.MultiAff:
    """The accumulator element of each instance as one affine function on the domain.

    isl may write the function differently on different pieces of the domain
    (:func:`~polypipe.analysis.contraction.affine_function` finds one expression). A statement
    whose element really is piecewise (``C[i, i if i < N // 2 else N - 1 - i]``, ...) gets a
    ScheduleError: its instances cannot be given one block and thread by one formula.
    """
    function = affine_function(relation)
    if function is not None:
        return function
    raise ScheduleError(
        f"{instance}: the {relation.get_tuple_name(isl.dim_type.out)} element it touches is "
        f"not one affine function of its loop variables over its domain ({relation}); the GPU "
        "mapping gives each element's block and thread by one formula: split the statement "
        "so that each part touches its elements by one subscript expression")


def _aff_expression(aff: isl.Aff) -> str:
    """The body of an isl affine expression ``{ S[i, j] -> [(expr)] }`` as text."""
    text = str(aff)
    body = text[text.index("-> [") + 4:text.rindex("]")]
    return body


def _schedule_tree(program: ir.Program, tx: _Text, pieces: dict[str, dict],
                   c: Contraction) -> isl.Schedule:
    prefix = tx.prefix
    phases_init, phases_epi, main = [], [], []
    for name, piece in pieces.items():
        if "via" in piece:
            piece["block"] = _via(piece, tx.block_of(tx.element_vars()), tx)
            piece["thread"] = _via(piece, tx.thread_of(tx.element_vars()), tx)
            piece["inner"] = _via(piece, tx.fragment_loops(tx.element_vars()), tx)
            if piece.get("lane_last"):   # the column position in its group: the lane loop
                piece["inner"], piece["lane"] = piece["inner"][:-1], piece["inner"][-1:]
            if piece.get("last") or (name in c.statements and name in c.epilogues):
                phases_epi.append(name)
            else:
                phases_init.append(name)
        else:
            main.append(name)
    init_order = sorted(phases_init, key=lambda n: (0 if pieces[n].get("first") else 1,
                                                    c.statements.index(n)
                                                    if n in c.statements else -1))
    epi_order = sorted(phases_epi, key=lambda n: (1 if pieces[n].get("last") else 0,
                                                  c.statements.index(n)
                                                  if n in c.statements else 10_000))

    def phase_of_elements(order: list[str]) -> str:
        children = [_filter([pieces[n]["instance"]], prefix,
                            _band([(pieces[n]["instance"], pieces[n]["inner"])], prefix,
                                  _lane_band(pieces[n], prefix)))
                    for n in order]
        inner = _sequence(children)
        band = _band([(pieces[n]["instance"], pieces[n]["thread"]) for n in order], prefix,
                     inner, "{ atomic[0]; atomic[1] }")
        return _mark(f"thread:{len(tx.block_dims)}", band)

    # Main loop: [outer reduction band] -> T band (separate) -> sequence of phases. Thread
    # marks carry the schedule depth of their band, which is the index isl gives the loop
    # iterators (pp_c<depth>): printers find the thread loops by name, even when isl omits
    # the loop of a thread dimension of extent 1.
    main_depth = len(tx.block_dims) + len(tx.r_outer) + 1
    by_phase: dict[int, list[str]] = {}
    for name in main:
        by_phase.setdefault(pieces[name]["phase"], []).append(name)
    phase_children = []
    for phase in sorted(by_phase):
        names = sorted(by_phase[phase], key=lambda n: pieces[n].get("order", 0))
        if pieces[names[0]]["thread"] is None:  # a barrier: block-level, no thread band
            phase_children.append(_filter([pieces[n]["instance"] for n in names], prefix, None))
            continue
        if phase == PHASE_COMPUTE:
            stmt_children = [
                _filter([pieces[n]["instance"]], prefix,
                        _band([(pieces[n]["instance"], pieces[n]["inner"])], prefix,
                              _lane_band(pieces[n], prefix)))
                for n in names]
            j_band = _band([(pieces[n]["instance"], pieces[n]["j"]) for n in names], prefix,
                           _sequence(stmt_children))
            inner = j_band
        else:
            stmt_children = []
            for n in names:
                inner_exprs = pieces[n]["inner"]
                child = (_band([(pieces[n]["instance"], inner_exprs)], prefix,
                               _lane_band(pieces[n], prefix)) if inner_exprs else None)
                stmt_children.append(_filter([pieces[n]["instance"]], prefix, child))
            inner = _sequence(stmt_children)
        band = _band([(pieces[n]["instance"], pieces[n]["thread"]) for n in names], prefix,
                     inner, "{ atomic[0]; atomic[1] }")
        phase_children.append(_filter([pieces[n]["instance"] for n in names], prefix,
                                      _mark(f"thread:{main_depth}", band)))
    if main:
        loop = _band([(pieces[n]["instance"], pieces[n]["T"]) for n in main], prefix,
                     _sequence(phase_children), "{ separate[0] }")
        if tx.r_outer:
            loop = _band([(pieces[n]["instance"], pieces[n]["outer"]) for n in main], prefix,
                         loop)

    top_children = []
    if init_order:
        top_children.append(_filter([pieces[n]["instance"] for n in init_order], prefix,
                                    phase_of_elements(init_order)))
    if main:
        top_children.append(_filter([pieces[n]["instance"] for n in main], prefix, loop))
    if epi_order:
        top_children.append(_filter([pieces[n]["instance"] for n in epi_order], prefix,
                                    phase_of_elements(epi_order)))
    everything = list(pieces)
    block_band = _band([(pieces[n]["instance"], pieces[n]["block"]) for n in everything],
                       prefix, _sequence(top_children))
    domain = program.domain
    text = "{ domain: " + _yaml_str(str(domain)) + ", child: " + _mark("block", block_band) + " }"
    try:
        return isl.Schedule.read_from_str(domain.get_ctx(), text)
    except isl.Error as exc:
        raise InternalError(f"bad GPU schedule tree ({exc}):\n{text}") from None
