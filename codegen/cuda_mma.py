"""Tensor-core groups in CUDA: a k-step's fragment loads as ``ldmatrix``, its updates as
``mma.sync`` (issue 17; the lowering's settings are :func:`polypipe.gpu_warp.lane_config`).

A tensor-core kernel is the CUDA-core kernel of threads (8 WM, 4 WN) with fragments of one
k-step (``TileMapping.kg`` = 16) and warp-blocked ownership: thread ``(8 wm + g, 4 wn + t)``
is lane ``4 g + t`` of warp ``(wm, wn)`` and owns exactly the accumulators mma's layout gives
that lane. Its per-thread loads of a k-step (every k of the thread's rows or columns) and its
updates sit under ``warp`` marks (:mod:`polypipe.marks`); this module prints each such group
as what the warp executes instead:

* the loads of operand X: per instruction tile (A) or pair of tiles (B) one
  ``ldmatrix.x4`` (``.trans`` where the stored rows do not run along k), each lane giving the
  address of one row of one 8x8 matrix. The address is the kernel's own proved access: the
  group's statement instance whose element begins that row is found (the inverse of the
  thread ownership, :func:`lane_row`) and its shared-memory access expression printed in a
  scope that binds the AST iterators to that instance, so the layout (stage slot, padding,
  swizzle) is the one the proofs saw;
* the updates: per (tm, tn) one ``mma.sync.m16n8k16`` on the lane's four accumulators
  (fragment slots ``(2 tm + h, 2 tn + e)``, accumulator ``2 h + e``).

The registers a lane receives are not the per-thread kernel's (it held whole rows of the
k-step): the fragment buffers are declared in mma's register layout, ``R`` slots of ``4`` (A)
or ``2`` (B) 32-bit registers per instruction tile. That the printed addresses make ldmatrix
hand each lane mma's fragments, and that mma's accumulator layout is the ownership, is
:func:`polypipe.analysis.warp_proof.prove_warp_groups`; the CPU runtime executes both
instructions per lane from the PTX ISA's layouts, so a wrong address or register gives a
wrong result there.
"""

from __future__ import annotations

from dataclasses import dataclass

import islpy as isl

from polypipe.errors import InternalError

from .ast_build import ITERATOR_PREFIX, StatementInstance

@dataclass(frozen=True)
class WarpOperand:
    """One operand's fragment: its twin load statement and how its tile is laid out."""

    load: str                 # the twin's load statement (its group prints as ldmatrix)
    register: str             # the fragment buffer
    role: str                 # "a" (rows x k) or "b" (k x columns)
    tiles: int                # instruction tiles per warp along the operand's output axis
    along_rows: bool          # a lane's address runs along the tile's first axis (see rows)
    trans: bool               # ldmatrix .trans: the stored rows do not run along k

    @property
    def registers(self) -> int:
        """32-bit registers per instruction tile and register slot."""
        return 4 if self.role == "a" else 2


@dataclass(frozen=True)
class MmaKernel:
    """What the CUDA printer needs to print one tensor-core kernel's warp groups."""

    operands: tuple[WarpOperand, ...]
    swizzles: dict            # shared buffer -> its swizzled TileLayout
    update: str
    accumulator: str          # the register accumulator (row length ``row_length``)
    row_length: int
    tiles: tuple[int, int]    # MI, NI
    slots: int                # register stages R
    steps: int                # k-steps per reduction tile
    k: int                    # the instruction's k (16)
    ownership: tuple[int, int, int, int]   # threads (8, 4) and fragment vectors (1, 2)
    rk: str                   # the update's streamed reduction iterator
    format: str               # "f16" or "bf16"

    def operand(self, statement: str) -> WarpOperand | None:
        return next((op for op in self.operands if op.load == statement), None)

    def register_declaration(self, name: str, c_name: str) -> str | None:
        for op in self.operands:
            if op.register == name:
                size = self.slots * op.tiles * op.registers
                return f"uint32_t __align__(16) {c_name}[{size}];"
        return None


def thread_coordinates(threads: tuple[int, int]) -> tuple[str, str]:
    """C of the kernel's thread coordinates (ty, tx) on the hardware: thread ``(8 wm + g,
    4 wn + t)`` is lane ``4 g + t`` of hardware warp ``wm * WN + wn`` (``threads`` =
    ``(8 WM, 4 WN)``), so that each warp's 32 lanes, whose collectives the proofs treat
    as one, are one hardware warp. With one warp per row of warps (``WN = 1``) that is
    ``threadIdx.y`` and ``threadIdx.x`` themselves."""
    wn = threads[1] // 4
    if wn == 1:      # threadIdx is already (8 wm + g, t) in hardware warp wm
        return "(int)threadIdx.y", "(int)threadIdx.x"
    tid = f"((int)threadIdx.y * {threads[1]} + (int)threadIdx.x)"
    return (f"(8 * ({tid} / {32 * wn}) + ({tid} % 32) / 4)",
            f"(4 * (({tid} / 32) % {wn}) + {tid} % 4)")


def print_group(printer, mark: isl.AstNode, depth: int, thread_level: int) -> None:
    """Print the group under a ``warp`` mark (see the module docstring)."""
    mma: MmaKernel = printer.mma
    instance, loops = _group(mark.mark_get_node())
    inner_level = thread_level + 3     # threads (2 levels), the k-step, then the group's loops
    for name in loops:
        if not inner_level <= int(name[len(ITERATOR_PREFIX):]) < inner_level + 4:
            raise InternalError(f"warp group of {instance.statement.name}: loop {name} is not "
                                "one of its per-thread loops")
    names = [f"{ITERATOR_PREFIX}{inner_level + d}" for d in range(4)]
    threads = [f"{ITERATOR_PREFIX}{thread_level}", f"{ITERATOR_PREFIX}{thread_level + 1}"]
    stmt = instance.statement
    lines = [f"const int pp_lane = ((int)threadIdx.y * {printer._threads[1]} + "
             "(int)threadIdx.x) % 32;", "(void)pp_lane;"]
    operand = mma.operand(stmt.name)
    if operand is not None:
        lines += _ldmatrix(printer, mma, operand, instance, threads, names)
    elif stmt.name == mma.update:
        lines += _mma(printer, mma, instance, names)
    else:
        raise InternalError(f"warp mark around {stmt.name}, which is no warp group")
    printer._emit(depth, "{")
    for line in lines:
        printer._emit(depth + 1, line)
    printer._emit(depth, "}")


def _group(node: isl.AstNode) -> tuple[StatementInstance, list[str]]:
    """The statement under a warp mark and the iterators of the loops around it. Anything but
    loops (a guard) would split the warp: refused (sizes must divide the tiles)."""
    loops = []
    while node.get_type() == isl.ast_node_type.for_:
        loops.append(node.for_get_iterator().get_id().get_name())
        node = node.for_get_body()
    if node.get_type() == isl.ast_node_type.block and node.block_get_children().n_ast_node() == 1:
        node = node.block_get_children().get_at(0)
    if node.get_type() != isl.ast_node_type.user:
        raise InternalError("a warp group is split by a condition: its lanes would not all "
                            "reach the collective (tensor-core kernels need sizes that "
                            "divide the tiles)")
    return node.get_annotation().user, loops


def _bind(names: list[str], values: list[str]) -> str:
    return " ".join(f"const int {n} = {v}; (void){n};" for n, v in zip(names, values))


@dataclass(frozen=True)
class LaneRow:
    """C expressions (of ``pp_lane`` and the load ``pp_w``, non-negative integers) of the twin
    load instance whose element begins the row a lane's ldmatrix address points at: its
    owning thread coordinate inside the lane's warp (``ty`` for A, ``tx`` for B; the other
    does not matter), its fragment index and its k within the step. ``analysis.warp_proof`` evaluates these very
    texts for every lane and load."""

    thread: str
    fragment: str
    kin: str


def lane_row(op: WarpOperand, ownership: tuple[int, int, int, int]) -> LaneRow:
    """Lane ``8 j + i`` addresses row ``i`` of matrix ``j``, the 8x8 piece at ``(8 (j mod 2),
    8 (j div 2))`` of the load's 16 x 16 tile (``gpu_mma.A_PIECES``; for B the two k halves of
    one 8-column tile, then of the next): the element at the piece's first column, row ``i``
    when the stored rows run along the tile's first axis, else the first row, column ``i``."""
    tm, tn, vm, vn = ownership
    j, i = "(pp_lane / 8)", "(pp_lane % 8)"
    row_off, col_off = f"(8 * ({j} % 2))", f"(8 * ({j} / 2))"
    rows, cols = (f"{row_off} + {i}", col_off) if op.along_rows else (row_off, f"{col_off} + {i}")
    if op.role == "a":      # tile: rows m (16 per load), columns k of the step
        local = f"16 * pp_w + {rows}"
        return LaneRow(f"(({local}) / {vm}) % {tm}", _fragment_index(local, vm, tm), cols)
    local = f"16 * pp_w + {cols}"     # rows k of the step, columns n (two 8-column tiles)
    return LaneRow(f"(({local}) / {vn}) % {tn}", _fragment_index(local, vn, tn), rows)


def loads_per_step(op: WarpOperand) -> int:
    """ldmatrix.x4 per k-step: one per A tile, one per pair of B tiles."""
    return op.tiles if op.role == "a" else op.tiles // 2


def _ldmatrix(printer, mma: MmaKernel, op: WarpOperand, instance: StatementInstance,
              threads: list[str], names: list[str]) -> list[str]:
    """One ldmatrix.x4 per instruction tile of A or pair of tiles of B."""
    row = lane_row(op, mma.ownership)
    thread = threads[0] if op.role == "a" else threads[1]
    in_warp = mma.ownership[0] if op.role == "a" else mma.ownership[1]
    read = printer.shared_element(instance, instance.statement.reads[0])
    slot = _slot(printer, mma, instance, instance.statement.target, 0)
    loads = loads_per_step(op)
    name = f"pp_ldmatrix_x4{'_trans' if op.trans else ''}"
    target = printer.register_name(op.register)
    # The register slot from the group's first instance (k within the step 0), then the
    # iterators bound to the instance of this lane's row (a scope of their own).
    return [
        f"{_bind(names[:2], ['0', '0'])}",
        f"const int pp_slot = {slot};",
        f"const int pp_warp = {thread} / {in_warp};",     # this lane's warp along the axis
        "#pragma unroll",
        f"for (int pp_w = 0; pp_w < {loads}; pp_w += 1) {{",
        f"  {_bind([thread], [f'{in_warp} * pp_warp + {row.thread}'])} "
        f"{_bind(names[:2], [row.kin, row.fragment])}",
        f"  {name}(*reinterpret_cast<uint32_t (*)[4]>(&{target}[(pp_slot * {loads} + pp_w) * "
        f"4]), &{read});",     # an x4 load fills 4 registers
        "}"]


def _slot(printer, mma: MmaKernel, instance: StatementInstance, access, lag: int) -> str:
    """The register stage a group's instance touches. When the register stages divide a
    tile's k-steps it is the k-step within the tile (``step``, the loop isl unrolls) less the
    group's ``lag`` in steps, mod ``R``: a constant in each unrolled iteration, which keeps the
    fragments in registers (the twin's index, ``(4 T + s) - 2 ((64 T + 16 s) / 32)``, was not
    folded by nvcc and moved them to local memory). Otherwise that index itself: dimension 2 of
    the fragment access, after the two thread dimensions."""
    if mma.steps % mma.slots == 0:
        step = printer.expr(instance.schedule_exprs[printer._thread_level() + 2])
        return f"(({step}) + {mma.slots * mma.steps - lag}) % {mma.slots}"
    return printer.expr(instance.access_exprs[id(access)].get_op_arg(1 + 2))


def _fragment_index(local: str, vector: int, threads: int) -> str:
    """C of :func:`polypipe.gpu_mapping.fragment_index` (``local`` is non-negative)."""
    if vector == 1:
        return f"(({local}) / {threads})"
    return f"({vector} * (({local}) / {vector * threads}) + ({local}) % {vector})"


def _mma(printer, mma: MmaKernel, instance: StatementInstance, names: list[str]) -> list[str]:
    """One mma.sync per instruction tile (tm, tn) of the warp."""
    (mi, ni), row = mma.tiles, mma.row_length
    a, b = (next(op for op in mma.operands if op.role == r) for r in ("a", "b"))
    acc = printer.register_name(mma.accumulator)
    slot = _slot(printer, mma, instance, next(r for r in instance.statement.reads
                                              if r.array == a.register), mma.slots - 1)
    slots = [f"{acc}[(2 * pp_tm + {h}) * {row} + 2 * pp_tn + {e}]" for h in (0, 1) for e in (0, 1)]
    return [
        f"{_bind(names, ['0'] * 4)}",
        f"const int pp_slot = {slot};",
        "#pragma unroll",
        f"for (int pp_tm = 0; pp_tm < {mi}; pp_tm += 1) {{",
        "  #pragma unroll",
        f"  for (int pp_tn = 0; pp_tn < {ni}; pp_tn += 1) {{",
        f"    float pp_d[4] = {{{', '.join(slots)}}};",
        f"    pp_mma_m16n8k16_{mma.format}(pp_d, "
        f"*reinterpret_cast<const uint32_t (*)[4]>(&{printer.register_name(a.register)}"
        f"[(pp_slot * {mi} + pp_tm) * 4]), "
        f"*reinterpret_cast<const uint32_t (*)[2]>(&{printer.register_name(b.register)}"
        f"[(pp_slot * {ni} + pp_tn) * 2]), pp_d);",
        "    " + " ".join(f"{s} = pp_d[{n}];" for n, s in enumerate(slots)),
        "  }",
        "}"]


def mma_kernel(kernel, dtypes: dict[str, str], sizes: dict[str, int] | None) -> MmaKernel:
    """The warp groups of tensor-core ``kernel`` for a call's dtypes and sizes; ArgumentError
    where the call cannot run on tensor cores (dtypes mma does not take, or no concrete
    sizes). Sizes need not divide the tiles: the kernel runs whole tiles (polypipe.gpu_pad)."""
    from polypipe.errors import ArgumentError, ScheduleError
    from polypipe.gpu_mma import SHAPES
    from polypipe.gpu_warp import LANE_THREADS, LANE_VECTORS, mma_operands

    config, c = kernel.config, kernel.contraction
    try:
        factors = mma_operands(c, dtypes)
    except ScheduleError as refusal:
        raise ArgumentError(f"{kernel.name} runs on tensor cores: {refusal}") from None
    if sizes is None:
        raise ArgumentError(f"{kernel.name} runs on tensor cores: its CUDA is printed for "
                            "concrete sizes (pass the arrays)")
    shape = SHAPES[config.mma]
    operands = warp_operands(kernel)
    return MmaKernel(operands, swizzled_tiles(kernel), c.update, kernel.accumulator_buffer,
                     config.block[1] // config.threads[1], _tiles(config), config.register_stages,
                     config.reduction // shape.k, shape.k, LANE_THREADS + LANE_VECTORS,
                     c.reduction_iterators[-1], "f16" if factors.a.dtype == "float16" else "bf16")


def _tiles(config) -> tuple[int, int]:
    from polypipe.gpu_mma import SHAPES

    shape = SHAPES[config.mma]     # per warp
    return (config.block[0] // config.warps[0] // shape.m,
            config.block[1] // config.warps[1] // shape.n)


def warp_operands(kernel) -> tuple[WarpOperand, ...]:
    """The fragment facts of a tensor-core kernel's two operands (no dtype needed)."""
    tiles = _tiles(kernel.config)
    layouts = {kernel.program.statement(name).target.array: layout
               for name, layout in kernel.copy_layouts}
    operands = []
    for op in kernel.operands:
        role = "a" if op.uses_m else "b"
        load = next(s.name for s in kernel.program.statements
                    if s.kind == "copy" and s.target.array == op.register)
        innermost = layouts[op.shared].order[-1].name
        across = "pp_lk" if role == "a" else "pp_ln"    # the tile's second axis
        operands.append(WarpOperand(load, op.register, role, tiles[0 if role == "a" else 1],
                                    along_rows=innermost == across,
                                    trans=innermost != "pp_lk"))
    if sorted(op.role for op in operands) != ["a", "b"]:
        raise InternalError(f"{kernel.name}: a tensor-core kernel without both operands in "
                            "shared memory")
    return tuple(operands)


def swizzled_tiles(kernel) -> dict:
    """``{buffer: TileLayout}`` of the kernel's swizzled shared tiles: proved in logical
    order, printed through ``TileLayout.swizzle_c`` (``analysis.warp_proof`` checks that it
    is a permutation of each row's chunks, and equal to the chunk layout ``chunks``)."""
    return {kernel.program.statement(name).target.array: layout
            for name, layout in kernel.copy_layouts if layout.swizzle[0]}

