"""The typed GPU IR the lowering passes (:mod:`polypipe.lower`) build and read.

A :class:`GpuKernel` is a contraction nest mapped to the GPU: an ``ir.Program`` (its statements,
buffers, synchronisation and schedule tree) plus what the passes decided on the way: the
promoted :class:`Operand` reads, each shared buffer's :class:`TileLayout`, and the coordinates
every instance got (block, thread, pipeline iteration, phase), which the proofs
(:mod:`polypipe.analysis.gpu_proof`) check against the program rather than trust.

While lowering, each statement has a :class:`Placement`: where it runs, as affine expressions
(isl syntax) of its own instance. The schedule tree (:mod:`polypipe.gpu_tree`) is built from
placements alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum

import islpy as isl

from . import ir
from .gpu_config import GpuConfig
from polypipe.analysis.contraction import Contraction


@dataclass(frozen=True)
class Operand:
    """A read of the update promoted through shared memory and registers."""

    read_index: int          # position in the update's reads
    array: str
    shared: str              # shared buffer name
    register: str            # register fragment name
    uses_m: bool             # it changes with the output rows (A-like) ...
    uses_n: bool             # ... or columns (B-like)


@dataclass(frozen=True)
class LocalDim:
    """One dimension of an operand tile: rows (m), columns (n) or the reduction step (k)."""

    name: str       # pp_lm, pp_ln or pp_lk: the copy statement's iterator
    expr: str       # its value on an update instance
    extent: int
    iterator: str   # the update iterator it follows


@dataclass(frozen=True)
class TileLayout:
    """How an operand tile is stored in shared memory and split among the copying threads."""

    canonical: tuple[LocalDim, ...]   # the copy statement's dimensions: (m | n, k)
    copy_order: tuple[LocalDim, ...]  # the array's own order: its innermost subscript last
    order: tuple[LocalDim, ...]       # stored order
    padding: int                      # elements added to each stored row (bank conflicts)
    vector: int                       # consecutive elements (in copy order) one thread copies
    # Tensor cores: the 16-byte chunks of each stored row XOR-swizzled (bits, shift of
    # analysis.bank_conflicts.swizzle; (0, 0): none), and that layout with its proofs.
    swizzle: tuple[int, int] = (0, 0)
    chunks: object = None             # analysis.bank_conflicts.Layout

    def swizzle_c(self, row: str, col: str) -> str:
        """C of the stored column of element ``(row, col)`` (non-negative integer
        expressions) of a swizzled tile: the chunk index XOR its linear index's bits from
        ``shift`` on (which only touch its low ``bits`` bits, within the row). The kernel is
        proved with the tile in logical order and printed through this; ``analysis.warp_proof``
        checks it at every element against the chunk layout whose bank conflicts were
        counted (``chunks``)."""
        bits, shift = self.swizzle
        chunks = self.chunks.row_chunks
        return (f"(((({col}) >> 3) ^ (((({row}) * {chunks} + (({col}) >> 3)) >> {shift}) & "
                f"{2 ** bits - 1})) << 3 | (({col}) & 7))")

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


class Phase(IntEnum):
    """The parts of one pipeline iteration ``T``, in the order they run."""

    WAIT = 0              # each thread waits for its copies of tile T
    BARRIER_BEFORE = 1    # every copy of tile T visible; tile T-1's slot free to refill
    COPY = 2              # issue the copies of tile T + S - 1
    BARRIER_AFTER = 3     # single-stage pipelines only: the copies landed for everyone
    COMPUTE = 4           # register loads and updates of the tile's reduction steps


class Slot(IntEnum):
    """Order of the statements that share a phase (and, in COMPUTE, a reduction step)."""

    ISSUE = 0      # copies and register fragment loads, in operand order
    UPDATE = 1
    COMMIT = 2
    SYNC = 3


class Part(Enum):
    """Where a statement that runs once per accumulator element goes."""

    INIT = "init"           # before the main loop (copy-in, initialisation)
    EPILOGUE = "epilogue"   # after it (final scaling, copy-out)


@dataclass(frozen=True)
class LoopPlacement:
    """A statement of the main loop: block, outer reduction iterations, pipeline iteration,
    phase, thread, reduction step, per-thread loops and lane loop, as expressions of its
    instance ``instance`` (``S[i, j, k]``)."""

    instance: str
    block: tuple[str, ...]
    outer: tuple[str, ...]
    tile: str                         # the pipeline iteration T
    phase: Phase
    thread: tuple[str, ...] | None    # None: block-level (a barrier)
    order: tuple[Slot, int]
    step: str | None = None           # COMPUTE: the reduction step within the tile
    inner: tuple[str, ...] = ()
    lane: str | None = None
    vector: int = 1
    warp: bool = False                # per-thread loops under a ``warp`` mark (tensor cores)


@dataclass(frozen=True)
class ElementPlacement:
    """A statement that touches accumulator elements outside the main loop: it runs where the
    element's block and thread are, which follow from ``element`` (instance -> element)."""

    instance: str
    element: isl.Map
    part: Part
    rank: int                   # order within its part
    lane_last: bool = False     # the last per-thread loop is a lane loop (16-byte copies)
    vector: int = 1


Placement = LoopPlacement | ElementPlacement


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
    # iteration T) and phase of the main-loop statements.
    block_of: isl.UnionMap | None = None
    thread_of: isl.UnionMap | None = None
    iteration_of: isl.UnionMap | None = None
    phase_of: isl.UnionMap | None = None
    waits_after_commit: frozenset = frozenset()
    copy_layouts: tuple[tuple[str, TileLayout], ...] = ()   # (copy statement, its buffer's)
    # (statement, lane iterator, lanes): copies and fragment loads whose consecutive lanes may
    # be one vector access; :mod:`polypipe.analysis.alignment` decides at concrete sizes.
    vector_groups: tuple[tuple[str, str, int], ...] = ()
    log: tuple[str, ...] = ()   # one line per lowering pass (polypipe.lower)

    host_params = ()     # launched once: no host loop

    @property
    def name(self) -> str:
        return self.program.name

    @property
    def block_rank(self) -> int:
        return self.contraction.rank

    @property
    def launch_domain(self) -> isl.UnionSet:
        return self.program.domain

    @property
    def threads(self) -> tuple[int, int]:
        return self.config.threads

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


@dataclass
class Draft:
    """The GPU program while the passes of :mod:`polypipe.lower` build it: each pass adds
    buffers, statements with their placements, synchronisation and what the proofs and the
    printer need to know; :func:`polypipe.lower.lower_contraction` freezes it into a
    :class:`GpuKernel`. Names are fresh against ``taken``."""

    taken: set[str]
    arrays: list[ir.Array]
    statements: dict[str, ir.Statement] = field(default_factory=dict)
    placements: dict[str, Placement] = field(default_factory=dict)
    syncs: list[ir.Sync] = field(default_factory=list)
    operands: list[Operand] = field(default_factory=list)
    unpromoted: list[tuple[str, str]] = field(default_factory=list)
    copy_layouts: list[tuple[str, TileLayout]] = field(default_factory=list)
    vector_groups: list[tuple[str, str, int]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)    # one line per pass, for describe()

    def fresh(self, base: str) -> str:
        return ir.fresh_name(base, self.taken)

    def add(self, stmt: ir.Statement, placement: Placement) -> None:
        self.statements[stmt.name] = stmt
        self.placements[stmt.name] = placement
