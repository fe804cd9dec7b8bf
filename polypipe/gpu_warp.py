"""The warp-level plan of a tensor-core configuration (issue 17): which warp, lane and register
holds which element, the shared-memory layouts, and what one main-loop iteration issues.

``GpuConfig(block=(BM, BN), warps=(WM, WN), reduction=BK, mma="m16n8k16")`` splits the block
tile over a WM x WN grid of warps (warp ``(wm, wn)`` owns rows ``wm * BM/WM ..`` and columns
``wn * BN/WN ..``), each warp tile into ``MI x NI`` instruction tiles of 16 x 8, and the
reduction tile into ``BK / 16`` steps. Every ownership is an isl map built from the PTX ISA's
fragment layouts (:mod:`polypipe.gpu_mma`), so "every output element is accumulated by exactly
one lane register" and "the A fragments of a step are exactly the A tile's 16 columns" are
isl proofs (tests/test_gpu_warp.py), not examples.

Operand tiles are stored in shared memory in the orientation of their global arrays (A as
BM rows of BK halves, B as BK rows of BN halves), each row in 16-byte chunks, with the XOR
swizzle of :func:`polypipe.analysis.bank_conflicts.conflict_free_swizzle`; the plan proves
with isl that the 16-byte ``cp.async`` writes and the ``ldmatrix`` reads of every phase fall in
8 distinct bank groups and records the conflict degree of each (the row-major degree too, for
comparison). A is read by ``ldmatrix.x4`` (16 x 16 per load), B by ``ldmatrix.x4.trans`` (16 k
x two 8-column tiles per load, so a warp tile has an even number of 8-column tiles).

:func:`warp_plan` refuses what cannot be honoured, naming the numbers: tiles that do not split
into whole instruction tiles, a reduction tile that is not whole k-steps, more threads than
the target has, more accumulator and fragment registers than a thread can hold, more shared
memory than a block can have.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import islpy as isl

from .errors import ScheduleError
from .gpu_mma import SHAPES, WARP, MmaShape, fragment_terms

ELEMENT_BYTES = 2                 # float16 and bfloat16 operands
CHUNK_BYTES = 16                  # one cp.async / one ldmatrix row
# Addresses, loop counters and predicates beside the tiles. Measured (nvcc 13, sm_90, 16-bit
# GEMM at 2048^3): tiles of 192 registers a lane compile in 232 to 235 without spills; tiles
# of 208 (a 128x32 or 32x128 warp tile) took 255 and spilled 8 and 56 bytes. 48 refuses
# exactly those.
RESERVED_REGISTERS = 48
DEFAULT_THREADS = (16, 16)        # GpuConfig's default `threads`, implied by warps with mma


@dataclass(frozen=True)
class OperandTile:
    """An operand's tile in shared memory: its shape, layout and proved conflict degrees."""

    name: str                     # "A" or "B"
    rows: int
    columns: int                  # halves per row
    layout: object                # analysis.bank_conflicts.Layout
    copy_degree: int              # of the 16-byte cp.async writes (1: conflict-free)
    read_degree: int              # of the ldmatrix reads
    row_major_degrees: tuple[int, int]

    @property
    def chunks(self) -> int:
        return self.rows * self.columns * ELEMENT_BYTES // CHUNK_BYTES


@dataclass(frozen=True)
class WarpPlan:
    config: object                # GpuConfig
    shape: MmaShape
    warp_tile: tuple[int, int]    # rows, columns of one warp's outputs
    tiles: tuple[int, int]        # MI, NI instruction tiles per warp
    k_steps: int                  # instruction k-steps per reduction tile

    @property
    def warps(self) -> tuple[int, int]:
        return self.config.warps

    @property
    def threads(self) -> int:
        return WARP * self.warps[0] * self.warps[1]

    @property
    def accumulator_registers(self) -> int:
        """float32 accumulators per lane."""
        return self.tiles[0] * self.tiles[1] * self.shape.c_elements

    @property
    def fragment_registers(self) -> int:
        """32-bit fragment registers per lane over all register stages."""
        mi, ni = self.tiles
        per_step = mi * self.shape.a_elements // 2 + ni * self.shape.b_elements // 2
        return self.config.register_stages * per_step

    @property
    def shared_bytes(self) -> int:
        (bm, bn), bk = self.config.block, self.config.reduction
        return self.config.shared_stages * (bm * bk + bk * bn) * ELEMENT_BYTES

    @property
    def operands(self) -> tuple[OperandTile, OperandTile]:
        """A's and B's tiles with their proved layouts (seconds for large tiles: cached)."""
        (bm, bn), bk = self.config.block, self.config.reduction
        return (operand_tile("A", bm, bk), operand_tile("B", bk, bn))

    # -- ownership as isl maps ------------------------------------------------------------------
    def accumulator_map(self) -> isl.Map:
        """``{ W[wm, wn, lane, tm, tn, i] -> C[row, col] }``: the block-tile element that
        accumulator ``i`` of instruction tile ``(tm, tn)`` of ``lane`` in warp ``(wm, wn)``
        holds."""
        row, col = fragment_terms("c")
        (wr, wc), (mi, ni) = self.warp_tile, self.tiles
        return isl.Map(
            f"{{ W[wm, wn, lane, tm, tn, i] -> C[{wr}*wm + 16*tm + {row}, "
            f"{wc}*wn + 8*tn + {col}] : 0 <= wm < {self.warps[0]} and 0 <= wn < "
            f"{self.warps[1]} and 0 <= lane < {WARP} and 0 <= tm < {mi} and 0 <= tn < {ni} "
            f"and 0 <= i < {self.shape.c_elements} }}")

    def a_fragment_map(self) -> isl.Map:
        """``{ W[wm, lane, tm, step, i] -> A[row, k] }``: the A-tile element (block-tile row,
        reduction-tile column) of element ``i`` of a lane's A fragment of instruction row
        ``tm`` at k-step ``step`` (every warp of a warp row reads the same)."""
        row, col = fragment_terms("a")
        return self._fragment_map("A", ("wm", "tm"), 0, f"{self.warp_tile[0]}*wm + 16*tm + "
                                  f"{row}", f"16*step + {col}", self.shape.a_elements)

    def b_fragment_map(self) -> isl.Map:
        """``{ W[wn, lane, tn, step, i] -> B[k, col] }``, as :meth:`a_fragment_map` for B."""
        row, col = fragment_terms("b")
        return self._fragment_map("B", ("wn", "tn"), 1, f"16*step + {row}",
                                  f"{self.warp_tile[1]}*wn + 8*tn + {col}",
                                  self.shape.b_elements)

    def _fragment_map(self, tile: str, names: tuple[str, str], axis: int, row: str, col: str,
                      elements: int) -> isl.Map:
        warp, instruction = names
        return isl.Map(
            f"{{ W[{warp}, lane, {instruction}, step, i] -> {tile}[{row}, {col}] : "
            f"0 <= {warp} < {self.warps[axis]} and 0 <= lane < {WARP} and "
            f"0 <= {instruction} < {self.tiles[axis]} and 0 <= step < {self.k_steps} and "
            f"0 <= i < {elements} }}")

    # -- what one main-loop iteration (one reduction tile) issues --------------------------------
    def instruction_counts(self) -> dict[str, int]:
        """Per warp: ``mma`` (HMMA), ``ldmatrix_a`` (x4), ``ldmatrix_b`` (x4.trans); per thread: ``cp_async_16`` (LDGSTS.128, the tile's chunks
        spread over the block, rounded up)."""
        mi, ni = self.tiles
        (bm, bn), bk = self.config.block, self.config.reduction
        chunks = (bm * bk + bk * bn) * ELEMENT_BYTES // CHUNK_BYTES
        return {"mma": mi * ni * self.k_steps, "ldmatrix_a": mi * self.k_steps,
                "ldmatrix_b": ni // 2 * self.k_steps,
                "cp_async_16": -(-chunks // self.threads)}

    def describe(self) -> list[str]:
        mi, ni = self.tiles
        counts = self.instruction_counts()
        lines = [f"tensor cores: {self.shape.name}, warps {self.warps[0]}x{self.warps[1]} "
                 f"({self.threads} threads), warp tile {self.warp_tile[0]}x"
                 f"{self.warp_tile[1]} = {mi}x{ni} instruction tiles, {self.k_steps} k-steps "
                 "per reduction tile",
                 f"  per lane: {self.accumulator_registers} float32 accumulators, "
                 f"{self.fragment_registers} fragment registers "
                 f"({self.config.register_stages} register stages)",
                 f"  per main-loop iteration: {counts['mma']} mma.sync, "
                 f"{counts['ldmatrix_a']} ldmatrix.x4 (A), {counts['ldmatrix_b']} "
                 f"ldmatrix.x4.trans (B) per warp; {counts['cp_async_16']} 16-byte cp.async per "
                 "thread"]
        for tile in self.operands:
            lines.append(f"  {tile.name} tile {tile.rows}x{tile.columns} halves, "
                         f"{tile.layout.name}: cp.async {tile.copy_degree}-way, ldmatrix "
                         f"{tile.read_degree}-way (row-major would be "
                         f"{tile.row_major_degrees[0]}-way and {tile.row_major_degrees[1]}-way)")
        lines.append(f"  shared memory {self.shared_bytes} bytes "
                     f"({self.config.shared_stages} stages)")
        return lines


def warp_plan(config) -> WarpPlan:
    """The plan of a tensor-core ``config`` (see the module docstring); ScheduleError for one
    that cannot be honoured."""
    shape = SHAPES.get(config.mma) if isinstance(config.mma, str) else None
    if shape is None:
        raise ScheduleError(f"invalid GpuConfig: mma={config.mma!r} is not a tensor-core shape "
                            f"polypipe generates; known: {', '.join(sorted(SHAPES))}")
    _refuse_geometry(config, shape)
    warp_tile = (config.block[0] // config.warps[0], config.block[1] // config.warps[1])
    tiles = (warp_tile[0] // shape.m, warp_tile[1] // shape.n)
    plan = WarpPlan(config, shape, warp_tile, tiles, config.reduction // shape.k)
    _refuse_resources(plan)
    return plan


# The threads and fragment vectors of the CUDA-core mapping whose ownership is one warp's
# mma.sync accumulator layout (lane 4 g + t is thread (g, t); tests/test_gpu_warp.py).
LANE_THREADS, LANE_VECTORS = (8, 4), (1, 2)


def lane_config(config):
    """The configuration the tensor-core lowering builds: the kernel is the CUDA-core mapping
    of :data:`LANE_THREADS` and :data:`LANE_VECTORS` with fragments of one k-step, whose
    loads and updates CUDA prints as the warp's ldmatrix and mma.sync
    (:mod:`polypipe.codegen.cuda_mma`); with several warps each owns a contiguous part of
    the block tile (``TileMapping``'s warp-blocked ownership)."""
    from dataclasses import replace

    warp_plan(config)
    return replace(config, threads=lane_threads(config.warps), fragment_vector=LANE_VECTORS)


def lane_threads(warps: tuple[int, int]) -> tuple[int, int]:
    """The thread grid of the lowering: each warp (wm, wn) is the threads
    ``(8 wm + g, 4 wn + t)`` of lane ``4 g + t`` (CUDA binds them to its hardware warp)."""
    return LANE_THREADS[0] * warps[0], LANE_THREADS[1] * warps[1]


def mma_structure(contraction) -> MmaOperands:
    """:func:`mma_operands` of ``contraction`` with float16 factors and a float32
    accumulator: whether its update has the shape tensor cores compute, before any dtype is
    known (each call's dtypes are checked when its CUDA is printed)."""
    program = contraction.program
    dtypes = {a.name: "float16" for a in program.arrays}
    dtypes[contraction.accumulator] = "float32"
    return mma_operands(contraction, dtypes)


def _refuse(text: str) -> None:
    raise ScheduleError(f"invalid GpuConfig: {text}")


def _refuse_geometry(config, shape: MmaShape) -> None:
    (bm, bn), (wm, wn) = config.block, config.warps
    if config.threads not in (DEFAULT_THREADS, (wm, WARP * wn), lane_threads(config.warps)):
        _refuse(f"threads={config.threads} with mma: a tensor-core block is its warps "
                f"(warps={config.warps}: {WARP * wm * wn} threads); leave threads out")
    # B is read two 8-column instruction tiles per ldmatrix.x4.trans: warp tiles have an
    # even number of them.
    if bm % (wm * shape.m) or bn % (wn * 2 * shape.n):
        _refuse(f"block={config.block} does not split over warps={config.warps} into whole "
                f"instruction tiles: block[0]/warps[0] must be a multiple of {shape.m} and "
                f"block[1]/warps[1] of {2 * shape.n} (B is loaded two {shape.n}-column tiles "
                "per ldmatrix.x4.trans)")
    if config.reduction % shape.k:
        _refuse(f"reduction={config.reduction} is not a multiple of the instruction's "
                f"k={shape.k}")
    threads = WARP * wm * wn
    if threads > config.target.max_threads:
        _refuse(f"warps={config.warps} are {threads} threads, more than the "
                f"{config.target.max_threads} a block of {config.target.name} has")
    if config.register_stages > config.reduction // shape.k:
        _refuse(f"register_stages={config.register_stages} exceeds the "
                f"{config.reduction // shape.k} k-step(s) of a reduction tile (reduction="
                f"{config.reduction})")


def _refuse_resources(plan: WarpPlan) -> None:
    config = plan.config
    budget = config.target.registers_per_thread - RESERVED_REGISTERS
    used = plan.accumulator_registers + plan.fragment_registers
    if used > budget:
        _refuse(f"a {plan.warp_tile[0]}x{plan.warp_tile[1]} warp tile needs "
                f"{plan.accumulator_registers} accumulator and {plan.fragment_registers} "
                f"fragment registers per lane, more than the {budget} of "
                f"{config.target.registers_per_thread} left beside addressing; use more "
                "warps or a smaller block")
    if plan.shared_bytes > config.target.shared_bytes:
        _refuse(f"{config.shared_stages} shared stages of the {config.block[0]}x"
                f"{config.reduction} and {config.reduction}x{config.block[1]} half tiles "
                f"need {plan.shared_bytes} bytes, more than the {config.target.shared_bytes} "
                f"of a {config.target.name} block")


@lru_cache(maxsize=64)
def operand_tile(name: str, rows: int, columns: int) -> OperandTile:
    """The tile's layout, the one decision the plan reports and the lowering builds: of the
    swizzle of ``conflict_free_swizzle`` (when it permutes within rows), rows padded by one
    chunk, and row-major, the one with the fewest conflicts of the 16-byte copies and the
    ldmatrix reads together, as isl counts them; on a tie the one without padding (less
    shared memory), then the swizzle. Every power-of-two row width gets a conflict-free
    swizzle; the degrees of row-major are recorded for comparison."""
    from polypipe.analysis import bank_conflicts as bc

    row_chunks = columns * ELEMENT_BYTES // CHUNK_BYTES
    copies, reads = bc.cp_async_rows(rows, row_chunks), bc.ldmatrix_x4(rows, row_chunks)
    plain = bc.row_major(rows, row_chunks)
    candidates = [bc.conflict_free_swizzle(rows, row_chunks), plain,
                  bc.padded(rows, row_chunks)]
    scored = [(sum(degrees), layout.pad_chunks, position, layout, degrees)
              for position, layout in enumerate(candidates) if layout.within_rows
              for degrees in [tuple(bc.conflict_degree(a, layout) for a in (copies, reads))]]
    *_, layout, degrees = min(scored, key=lambda entry: entry[:3])
    return OperandTile(name, rows, columns, layout, degrees[0], degrees[1],
                       (bc.conflict_degree(copies, plain), bc.conflict_degree(reads, plain)))


def plan_counts(plan: WarpPlan, m: int, n: int, k: int, batch: int = 1):
    """The static estimate's counts (:class:`polypipe.codegen.estimate.KernelCounts`) of a
    planned GEMM ``C[m, n] += A[m, k] B[k, n]`` (``batch`` of them), from the plan alone: the
    main loop's mma, ldmatrix and cp.async, nothing else counted (a lower bound on issue; the
    SASS of a built kernel replaces it), registers the plan's accumulators and fragments plus
    the reserve. DRAM: the 16-bit operands once, the float32 C read and written."""
    from polypipe.codegen.estimate import KernelCounts, LoopCounts

    counts = plan.instruction_counts()
    (bm, bn), bk = plan.config.block, plan.config.reduction
    blocks = -(-m // bm) * -(-n // bn) * batch
    per_warp_ldsm = 4 * (counts["ldmatrix_a"] + counts["ldmatrix_b"])
    loop = LoopCounts(total=counts["mma"] + per_warp_ldsm // 4 + counts["cp_async_16"],
                      mma=counts["mma"], ldsm_matrices=per_warp_ldsm,
                      copy_bytes=WARP * CHUNK_BYTES * counts["cp_async_16"])
    registers = plan.accumulator_registers + plan.fragment_registers + RESERVED_REGISTERS
    dram = batch * (ELEMENT_BYTES * (m * k + k * n) + 2 * 4 * m * n)
    return KernelCounts(f"mma {plan.config.describe()}", plan.threads, blocks, -(-k // bk),
                        loop, plan.accumulator_registers, min(registers, 255),
                        plan.shared_bytes, batch * m * n * k, dram)


# -- which contractions tensor cores compute exactly --------------------------------------------
@dataclass(frozen=True)
class MmaOperand:
    """One factor of the update: its array, 16-bit format and how its tile is read."""

    array: str
    dtype: str                    # "float16" or "bfloat16"
    contiguous: str               # the iterator that drives its last subscript
    # Both fragments hold pairs of consecutive k per register: ldmatrix hands a lane pairs
    # along the stored rows, so it needs .trans where the rows do not run along k (B as
    # K x N, A as K x M).
    trans: bool


@dataclass(frozen=True)
class MmaOperands:
    a: MmaOperand                 # indexed by the rows' output iterator and k
    b: MmaOperand                 # indexed by the columns' output iterator and k
    accumulator_dtype: str


def mma_operands(contraction, dtypes: dict[str, str]) -> MmaOperands:
    """The factors of a contraction's update as tensor cores take them, or ScheduleError
    saying why ``mma.sync`` would not compute what the Python function computes: the update
    must be ``C[..] += X * Y`` with X and Y 16-bit array elements of one format, at least one
    widened to float32 (``np.float32(A[i, k]) * B[k, j]``: the product is then exact in
    float32, as the tensor core forms it; a product of two float16 values is rounded to float16
    in Python), C float32, X indexed by the rows' output iterator and the streamed reduction
    iterator, Y by the columns' and the same."""
    program = contraction.program
    if contraction.update is None:
        raise ScheduleError("tensor cores compute contractions; this nest has no reduction")
    stmt = program.statement(contraction.update)
    where = f"the update `{stmt.source}`" if stmt.source else f"update {stmt.name}"
    factors = _factors(stmt.value) if stmt.op == "+" else None
    if factors is None:
        raise ScheduleError(f"{where} is not `C[..] += X * Y` of two array elements")
    formats = {str(dtypes.get(read.access.array)) for read, _ in factors}
    if len(formats) != 1 or formats - {"float16", "bfloat16"}:
        raise ScheduleError(f"{where}: tensor cores multiply two float16 or two bfloat16 "
                            f"values; the factors are {' and '.join(sorted(formats))}")
    fmt = formats.pop()
    if not any(widened for _, widened in factors):
        raise ScheduleError(f"{where}: the product of two {fmt} values is rounded to {fmt} in "
                            "Python, but a tensor core forms it exactly; write "
                            "np.float32(X) * Y")
    accumulator = dtypes.get(contraction.accumulator)
    if accumulator != "float32":
        raise ScheduleError(f"{where}: the accumulator {contraction.accumulator} is "
                            f"{accumulator}; mma.sync with 16-bit inputs accumulates float32")
    rows, columns = contraction.output_iterators[-2:]
    k = contraction.reduction_iterators[-1]
    roles = {}
    for read, _ in factors:
        role = _operand_role(stmt, read.access, rows, columns, k)
        if role is None or role[0] in roles:
            raise ScheduleError(f"{where}: {read.access.array} must be indexed by one of the "
                                f"output iterators {rows}, {columns} and by {k}")
        name, driver = role
        roles[name] = MmaOperand(read.access.array, fmt, driver, trans=driver != k)
    return MmaOperands(roles["a"], roles["b"], accumulator)


def _factors(value):
    """((read, widened), (read, widened)) of ``X * Y`` whose factors are reads, each possibly
    inside ``np.float32(...)``; None otherwise."""
    from polypipe import ir

    if not (isinstance(value, ir.Binary) and value.op == "*"):
        return None
    found = []
    for factor in (value.left, value.right):
        widened = (isinstance(factor, ir.Call) and factor.origin == "numpy"
                   and factor.func == "float32" and len(factor.args) == 1)
        inner = factor.args[0] if widened else factor
        if not isinstance(inner, ir.Read):
            return None
        found.append((inner, widened))
    return tuple(found)


def _operand_role(stmt, access, rows: str, columns: str, k: str):
    """("a" | "b", the iterator driving the last subscript) when the access is indexed by
    exactly one of ``rows``/``columns`` and by ``k`` (outer subscripts may use the other
    output iterators: batches), else None."""
    from .gpu_mapping import uses

    rank = access.relation.dim(isl.dim_type.out)
    if rank < 2 or not uses(access.relation, stmt, k):
        return None
    by_rows, by_columns = uses(access.relation, stmt, rows), uses(access.relation, stmt, columns)
    if by_rows == by_columns:
        return None
    last = range(rank - 1, rank)
    drivers = [v for v in (rows if by_rows else columns, k)
               if uses(access.relation, stmt, v, last)]
    if len(drivers) != 1:
        return None
    return ("a" if by_rows else "b"), drivers[0]
