"""GPU program -> CUDA: the C printer with blocks, threads, shared memory and cp.async.

It prints the same isl AST as the CPU emulation (:mod:`codegen.emulate`) and overrides only
what differs (docs/design.md, sections 7 "Code generation" and 8 "Runtimes"):

* loops under a ``block`` mark become ``blockIdx`` coordinates with the loop's bounds as a guard
  (x: column tiles, y: row tiles, z: the outer output dimensions, flattened);
* loops under a ``thread:<depth>`` mark become ``threadIdx`` coordinates (y, x) with guards;
* shared buffers are ``__shared__`` arrays (dynamic shared memory beyond 48 KiB), register
  buffers per-thread arrays (their leading thread dimensions dropped);
* asynchronous copies are ``cp.async`` of the element size, ``commit``/``wait`` statements
  ``cp.async.commit_group``/``cp.async.wait_group``, barriers ``__syncthreads()``;
* a ``vector:<V>`` mark around a lane loop becomes one or two 16-byte accesses when the loop
  covers the whole group and :mod:`polypipe.analysis.alignment` proved the group contiguous
  and aligned (``vector_groups``): ``cp.async`` for a copy into shared memory, a 16-byte
  vector access (``float4``, ``double2``) for a fragment load into registers and for the
  accumulator's copy between global memory and registers; otherwise the lanes stay scalar.

With ``sizes`` (concrete parameter values and array extents) the kernel is specialised: sizes
print as constants, isl generates the AST for those values (no ``min`` bounds where tiles divide
the sizes) and indices use 32-bit integers when every array offset fits.

Every block-level condition the AST puts around a barrier depends only on block coordinates and
pipeline iterations, so all threads of a block reach the same barriers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import islpy as isl

from polypipe import ir

from .ast_build import ITERATOR_PREFIX, StatementInstance
from .c_printer import CPrinter, c_name
from .semantics_c import semantics_runtime

STATIC_SHARED_LIMIT = 48 * 1024

CUDA_PRELUDE = r"""#include <stdint.h>

template <typename N, typename D>
static __device__ __forceinline__ auto pp_floord(N n, D d) -> decltype(n / d) {
  auto q = n / d;
  return (n % d != 0 && ((n < 0) != (d < 0))) ? q - 1 : q;
}
#define pp_min(a, b) ((b) < (a) ? (b) : (a))
#define pp_max(a, b) ((b) > (a) ? (b) : (a))
""" + semantics_runtime("static __device__ __forceinline__") + r"""
/* The first fault of any thread wins the record; see codegen.value_printer for its layout. */
static __device__ __forceinline__ bool pp_claim_fault(int64_t *fault, int64_t code) {
  return atomicCAS((unsigned long long *)fault, 0ULL, (unsigned long long)code) == 0ULL;
}

template <int BYTES>
static __device__ __forceinline__ void pp_cp_async(void *shared, const void *global) {
  unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  if constexpr (BYTES == 16)  // whole 16-byte vectors may bypass L1
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(address), "l"(global));
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" :: "r"(address),
                 "l"(global), "n"(BYTES));
}
static __device__ __forceinline__ void pp_cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int PENDING>
static __device__ __forceinline__ void pp_cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" :: "n"(PENDING));
}
"""

_SIZE = {"float": 4, "double": 8, "int32_t": 4, "int64_t": 8}
# 16 bytes of each element type as one CUDA vector type: loading a register array through a
# vector of its own element type lets nvcc keep it in registers (a double array read as
# float4 was moved to the stack).
_VECTOR16 = {"float": "float4", "double": "double2", "int32_t": "int4", "int64_t": "longlong2"}


# isl prints sizes multiplied by tile sizes (``4 * p_NI >= 256 * pp_c0 + ...``) and array
# offsets (``row * extent + column``): 32-bit indices need that much headroom below 2**31.
INT32_SIZE_LIMIT = 2**31 // 512      # a size times any tile factor
INT32_ELEMENT_LIMIT = 2**31 // 4     # an offset plus a tile's reach


def index_type_for(sizes: "dict[str, int]", extents: "dict[str, tuple[int, ...]]") -> str:
    """``int`` when every size and array offset fits 32 bits with headroom, else ``int64_t``."""
    values = [abs(v) for v in sizes.values()] + [e for ext in extents.values() for e in ext]
    if any(v >= INT32_SIZE_LIMIT for v in values):
        return "int64_t"
    if any(_product(ext) >= INT32_ELEMENT_LIMIT for ext in extents.values()):
        return "int64_t"
    return "int"


@dataclass
class CudaPrinter(CPrinter):
    """Prints one GPU kernel (a GPU program specialised to dtypes) as a CUDA ``__global__``."""

    block_dims: int = 2
    sizes: "dict[str, int] | None" = None          # parameter values, for specialisation
    extents: "dict[str, tuple[int, ...]] | None" = None
    vector_groups: frozenset = frozenset()        # statements whose lane groups are proved
    blocks_per_sm: int = 0                        # __launch_bounds__'s minimum (0: none)
    _block_names: dict = field(default_factory=dict)
    _thread_axes: dict = field(default_factory=dict)   # thread iterator -> (axis, extent)
    _open_threads: set = field(default_factory=set)    # thread loops around the printed node
    _guarded: bool = False                             # inside a dropped-thread-loop guard

    # -- the translation unit ---------------------------------------------------------------
    def translation_unit(self, ast: isl.AstNode) -> str:
        return CUDA_PRELUDE + "\n" + self.kernel_function(ast)

    def kernel_function(self, ast: isl.AstNode) -> str:
        launch = self.program.launch
        assert launch is not None, "CUDA needs a GPU program"
        self._threads = launch.threads
        self._lines = []
        params = self.parameters()
        bounds = str(launch.thread_count) + (f", {self.blocks_per_sm}" if self.blocks_per_sm
                                              else "")
        self._emit(0, f'extern "C" __global__ void __launch_bounds__({bounds})')
        self._emit(0, f"{self.function_name}({', '.join(params)}) {{")
        for line in (self.prologue() + self.fault_prologue() + self._buffers()
                     + self._block_coordinates()):
            self._emit(1, line)
        self.node(ast, 1)
        self._emit(1, "if (pp_warn) atomicOr((unsigned long long *)&pp_fault[2], "
                      "(unsigned long long)pp_warn);")
        self._emit(0, "}")
        return "\n".join(self._lines) + "\n"

    def fault_action(self, instance: StatementInstance) -> str:
        """A thread that meets a fault records it (the first one wins) and does not store;
        it runs on to the kernel's end, so every barrier is still reached by all threads."""
        return (f"if (pp_claim_fault(pp_fault, pp_err)) {{ "
                f"{' '.join(self.fault_record(instance))} }}")

    def parameters(self) -> list[str]:
        """Kernel parameters: arrays, the integers of the ABI, floats, block-grid offsets."""
        params = []
        for name in self.abi.arrays:
            ctype = self.types.storage_type(name).c_name
            params.append(f"{ctype} *__restrict__ {c_name('array', name)}")
        count = len(self.abi.extents) + len(self.abi.params) + len(self.abi.int_scalars)
        params += [f"int64_t pp_i{k}" for k in range(count)]
        params += [f"double pp_f{k}" for k in range(len(self.abi.float_scalars))]
        params += [f"int64_t pp_block_low{d}" for d in range(self.block_dims)]
        params += [f"int64_t pp_block_count{d}" for d in range(self.block_dims)]
        params.append("int64_t *pp_fault")   # codegen.value_printer: the fault record
        return params

    def prologue(self) -> list[str]:
        """Arrays are kernel parameters; sizes and scalars come from named parameters."""
        lines = self.value_lines()
        sizes = [self.extent(n, d) for n, d in self.abi.extents]
        sizes += [c_name("param", n) for n in self.abi.params]
        if sizes:  # not every kernel uses every size
            lines.append(" ".join(f"(void){n};" for n in sizes))
        return lines

    def int_slot(self, slot: int) -> str:
        return f"pp_i{slot}"

    def size_value(self, slot: int, name: str, dim: int | None = None) -> str:
        if dim is not None and self.extents is not None:
            return str(self.extents[name][dim])
        if dim is None and self.sizes is not None:
            return str(self.sizes[name])
        return self.int_slot(slot)

    def float_slot(self, index: int) -> str:
        return f"pp_f{index}"

    def shared_bytes(self) -> int:
        total = 0
        for array in self.program.arrays:
            if array.memory == "shared":
                total += _product(array.extents) * _SIZE[self.types.storage_type(
                    array.name).c_name]
        return total

    def _buffers(self) -> list[str]:
        lines = []
        shared = [a for a in self.program.arrays if a.memory == "shared"]
        dynamic = self.shared_bytes() > STATIC_SHARED_LIMIT
        if dynamic:
            lines.append("extern __shared__ __align__(16) unsigned char pp_shared[];")
        offset = 0
        for array in shared:
            ctype = self.types.storage_type(array.name).c_name
            size = _product(array.extents)
            if dynamic:
                lines.append(f"{ctype} *{c_name('array', array.name)} = "
                             f"({ctype} *)(pp_shared + {offset});")
                offset += -(-size * _SIZE[ctype] // 16) * 16
            else:
                lines.append(f"__shared__ __align__(16) {ctype} {c_name('array', array.name)}"
                             f"[{size}];")
        for array in self.program.arrays:
            if array.memory == "register":
                ctype = self.types.storage_type(array.name).c_name
                size = _product((array.extents or ())[array.thread_dims:])
                lines.append(f"{ctype} __align__(16) {c_name('array', array.name)}[{size}];")
        return lines

    def _block_coordinates(self) -> list[str]:
        """Block coordinates from blockIdx: x the last, y the one before, z the rest."""
        dims = self.block_dims
        lines = []
        names = [f"pp_block{d}" for d in range(dims)]
        index = self.index_type
        lines.append(f"const {index} {names[dims - 1]} = ({index})pp_block_low{dims - 1} + "
                     f"({index})blockIdx.x;")
        if dims >= 2:
            lines.append(f"const {index} {names[dims - 2]} = ({index})pp_block_low{dims - 2} "
                         f"+ ({index})blockIdx.y;")
        if dims >= 3:
            lines.append(f"{index} pp_z = blockIdx.z;")
            for d in range(dims - 3, -1, -1):
                lines.append(f"const {index} {names[d]} = ({index})pp_block_low{d} + pp_z % "
                             f"({index})pp_block_count{d}; pp_z /= ({index})pp_block_count{d};")
        self._block_names = {f"{ITERATOR_PREFIX}{d}": names[d] for d in range(dims)}
        return lines

    # -- marks -------------------------------------------------------------------------------
    def mark_node(self, node: isl.AstNode, depth: int) -> None:
        name = node.mark_get_id().get_name()
        if name == "block":
            self._mapped = dict(self._block_names)
        elif name.startswith("thread:"):
            first = int(name.split(":")[1])
            axes = ["threadIdx.y", "threadIdx.x"][-len(self._threads):]
            iterators = [f"{ITERATOR_PREFIX}{first + d}" for d in range(len(axes))]
            self._mapped = {it: f"({self.index_type}){axis}" for it, axis in zip(iterators, axes)}
            self._thread_axes = {it: (axis, extent)
                                 for it, axis, extent in zip(iterators, axes, self._threads)}
            self._open_threads, self._guarded = set(), False
            self._in_thread = True
            self.node(node.mark_get_node(), depth)
            self._in_thread = False
            return
        if name.startswith("vector:") and self._vector_group(node.mark_get_node(), depth,
                                                            int(name.split(":")[1])):
            return
        self.node(node.mark_get_node(), depth)

    def node(self, node: isl.AstNode, depth: int) -> None:
        """Restrict statements and inner loops to thread coordinate 0 where isl printed no
        loop for that thread dimension.

        isl prints no loop for a schedule dimension that is constant over what it scans. For
        a thread dimension that happens only for copies whose one group (a tile no larger
        than a group) goes to thread 0, so the coordinate is 0; without the guard every thread
        would run them. The emulation applies the same rule (``_thread_loops``).
        """
        kind = node.get_type()
        leaf = kind == isl.ast_node_type.user or (
            kind == isl.ast_node_type.for_
            and self.expr(node.for_get_iterator()) not in self._thread_axes)
        if not (getattr(self, "_in_thread", False) and leaf and not self._guarded):
            super().node(node, depth)
            return
        dropped = [axis for it, (axis, extent) in self._thread_axes.items()
                   if it not in self._open_threads and extent > 1]
        if not dropped:
            super().node(node, depth)
            return
        self._emit(depth, f"if ({' && '.join(f'{axis} == 0' for axis in dropped)}) {{")
        self._guarded = True
        super().node(node, depth + 1)
        self._guarded = False
        self._emit(depth, "}")

    def _vector_group(self, loop: isl.AstNode, depth: int, lanes: int) -> bool:
        """Print a whole group as 16-byte accesses; False when it cannot be one.

        The loop must run exactly lanes 0..lanes-1 with the copy (into shared memory), the
        fragment load or the accumulator copy as its only statement, which must be among the
        proved ``vector_groups``; the group is then the addresses of lane 0 onwards, printed by
        binding the lane iterator to 0.
        """
        if loop.get_type() != isl.ast_node_type.for_ or loop.for_is_degenerate():
            return False
        body = loop.for_get_body()
        if body.get_type() != isl.ast_node_type.user:
            return False
        instance: StatementInstance = body.get_annotation().user
        stmt = instance.statement
        if (getattr(stmt, "kind", None) not in ("async_copy", "copy")
                or stmt.name not in self.vector_groups):
            return False
        iterator = self.expr(loop.for_get_iterator())
        if (self.expr(loop.for_get_init()) != "0" or self.expr(loop.for_get_inc()) != "1"
                or self.expr(loop.for_get_cond()) != f"({iterator} <= {lanes - 1})"):
            return False
        size = _SIZE[self.types.storage_type(stmt.target.array).c_name]
        target = self.expr(instance.access_exprs[id(stmt.target)])
        source = self.expr(instance.access_exprs[id(stmt.reads[0])])
        self._emit(depth, "{")
        self._emit(depth + 1, f"const {self.index_type} {iterator} = 0;")
        for offset in range(0, lanes * size, 16):
            if stmt.kind == "async_copy":
                self._emit(depth + 1, f"pp_cp_async<16>((char *)&{target} + {offset}, "
                                      f"(const char *)&{source} + {offset});")
            else:
                vector = _VECTOR16[self.types.storage_type(stmt.target.array).c_name]
                self._emit(depth + 1, f"*({vector} *)((char *)&{target} + {offset}) = "
                                      f"*(const {vector} *)((const char *)&{source} + {offset});")
        self._emit(depth, "}")
        return True

    def for_node(self, node: isl.AstNode, depth: int) -> None:
        mapped = getattr(self, "_mapped", {})
        iterator = self.expr(node.for_get_iterator())
        if iterator not in mapped:
            if getattr(self, "_in_thread", False):
                # Per-thread loops over fragments and tile rows: small, unrolled so that
                # register buffers are indexed by constants and stay in registers.
                self._emit(depth, "#pragma unroll")
            super().for_node(node, depth)
            return
        value = mapped.pop(iterator)
        init = self.expr(node.for_get_init())
        if node.for_is_degenerate():
            guard = f"{iterator} == {init}"
        else:
            guard = f"{iterator} >= {init} && {self.expr(node.for_get_cond())}"
            inc = self.expr(node.for_get_inc())
            if inc != "1":
                guard += f" && ({iterator} - {init}) % {inc} == 0"
        self._emit(depth, "{")
        self._emit(depth + 1, f"const {self.index_type} {iterator} = {value};")
        self._emit(depth + 1, f"if ({guard}) {{")
        self._open_threads.add(iterator)
        self.node(node.for_get_body(), depth + 2)
        self._open_threads.discard(iterator)
        self._emit(depth + 1, "}")
        self._emit(depth, "}")

    # -- statements ----------------------------------------------------------------------------
    def user_node(self, node: isl.AstNode, depth: int) -> None:
        instance: StatementInstance = node.get_annotation().user
        stmt = instance.statement
        if isinstance(stmt, ir.Sync):
            text = {"barrier": "__syncthreads();", "commit": "pp_cp_async_commit();"}.get(
                stmt.kind, f"pp_cp_async_wait<{stmt.pending}>();")
            self._emit(depth, text)
            return
        if stmt.kind == "async_copy":
            target = self.expr(instance.access_exprs[id(stmt.target)])
            source = self.expr(instance.access_exprs[id(stmt.reads[0])])
            size = _SIZE[self.types.storage_type(stmt.target.array).c_name]
            self._emit(depth, f"pp_cp_async<{size}>(&{target}, &{source});")
            return
        self._emit(depth, self.statement(instance) + ";")

    def linear_index(self, info: ir.Array, indices: list[str]) -> str:
        """Register buffers drop their thread dimensions: each thread has its own."""
        if info.memory == "register":
            trimmed = ir.Array(info.name, info.rank - info.thread_dims, info.shape,
                               extents=(info.extents or ())[info.thread_dims:])
            return super().linear_index(trimmed, indices[info.thread_dims:])
        return super().linear_index(info, indices)


def _product(values) -> int:
    result = 1
    for value in values or ():
        result *= value
    return result

