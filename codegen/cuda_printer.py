"""GPU program -> CUDA: the C printer with blocks, threads, shared memory and cp.async.

The translation unit is one text for both targets: everything device-specific goes through
the interface of :mod:`codegen.cuda_device` (``PP_LD``/``PP_ST`` for global and shared
elements, ``PP_SHARED``, ``pp_cp_async``, ``pp_copy16``, ...), which has a GPU definition and
a CPU one (:mod:`codegen.cuda_cpu` runs the text with GPU semantics and checks). Of the C printer
it overrides only what differs (docs/design.md, sections 7 "Code generation" and 8
"Runtimes"):

* loops under a ``block`` mark become ``blockIdx`` coordinates with the loop's bounds as a guard
  (x: column tiles, y: row tiles, z: the outer output dimensions, flattened);
* loops under a ``thread:<depth>`` mark become ``threadIdx`` coordinates (y, x) with guards;
  a block or thread dimension isl printed no loop for becomes a guard on its value around each
  statement (see ``mark_node``);
* shared buffers are ``PP_SHARED`` arrays (``PP_SHARED_DYNAMIC`` pieces of dynamic shared
  memory beyond 48 KiB), register buffers per-thread arrays (their leading thread dimensions
  dropped);
* asynchronous copies are ``pp_cp_async`` of the element size, ``commit``/``wait`` statements
  ``cp.async.commit_group``/``cp.async.wait_group``, barriers ``__syncthreads()``;
* a ``vector:<V>`` mark around a lane loop becomes one or two 16-byte accesses when the loop
  covers the whole group and :mod:`polypipe.analysis.alignment` proved the group contiguous
  and aligned (``vector_groups``): ``pp_cp_async<16>`` for a copy into shared memory,
  ``pp_copy16`` (``float4``, ``double2``) for a fragment load into registers and for the
  accumulator's copy between global memory and registers; otherwise the lanes stay scalar.

With ``sizes`` (concrete parameter values and array extents) the kernel is specialised: sizes
print as constants, isl generates the AST for those values (no ``min`` bounds where tiles divide
the sizes) and indices use 32-bit integers when every array offset fits.

Every block-level condition the AST puts around a barrier depends only on block coordinates and
pipeline iterations, so all threads of a block reach the same barriers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import islpy as isl

from polypipe import ir, marks
from polypipe.errors import InternalError

from .ast_build import ITERATOR_PREFIX, StatementInstance
from .index_range import loop_range
from .c_printer import _OP, CPrinter, c_name
from .cuda_device import DEVICE_PRELUDE, STATIC_SHARED_LIMIT
from .semantics_c import semantics_runtime


# The device interface (codegen.cuda_device: one GPU and one CPU definition of everything
# device-specific), then the index arithmetic of the isl AST and the semantics helpers.
CUDA_PRELUDE = DEVICE_PRELUDE + r"""
template <typename N, typename D>
static __device__ __forceinline__ auto pp_floord(N n, D d) -> decltype(n / d) {
  auto q = n / d;
  return (n % d != 0 && ((n < 0) != (d < 0))) ? q - 1 : q;
}
#define pp_min(a, b) ((b) < (a) ? (b) : (a))
#define pp_max(a, b) ((b) > (a) ? (b) : (a))
""" + semantics_runtime("static __device__ __forceinline__")

# A per-thread loop with run-time bounds prints with constant ones and a guard (see
# _constant_trip_loop) when that runs at most this many iterations: it then unrolls.
MAX_GUARDED_TRIPS = 64

_SIZE = {"float": 4, "double": 8, "int32_t": 4, "int64_t": 8, "uint16_t": 2}
# 16 bytes of each element type as one CUDA vector type: loading a register array through a
# vector of its own element type lets nvcc keep it in registers (a double array read as
# float4 was moved to the stack).
_VECTOR16 = {"float": "float4", "double": "double2", "int32_t": "int4", "int64_t": "longlong2",
             "uint16_t": "int4"}


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
    block_depth: int = 0                          # schedule depth of the block band
    host_params: tuple = ()                       # per-launch values (pp_h<d>), parameters
    unroll_thread_loops: bool = True              # see for_node
    mma: object = None                            # codegen.cuda_mma.MmaKernel: warp groups
    private_locals: tuple = ()                    # locals declared in the kernel: per thread
    _block_axes: dict = field(default_factory=dict)    # block level -> _Axis
    _axes: dict = field(default_factory=dict)          # mapped levels around the node
    _open: set = field(default_factory=set)            # mapped levels with a printed loop
    _access_macro: str | None = "PP_LD"                # see access()
    _ranges: dict = field(default_factory=dict)        # iterator -> (low, high) or None

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
        self._emit(1, "if (pp_warn) pp_fault_or(&pp_fault[2], pp_warn);")
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
            ctype = self.types.storage_type(name).storage_c_name
            params.append(f"{ctype} *__restrict__ {c_name('array', name)}")
        count = len(self.abi.extents) + len(self.abi.params) + len(self.abi.int_scalars)
        params += [f"int64_t pp_i{k}" for k in range(count)]
        params += [f"double pp_f{k}" for k in range(len(self.abi.float_scalars))]
        params += [f"int64_t pp_block_low{d}" for d in range(self.block_dims)]
        params += [f"int64_t pp_block_count{d}" for d in range(self.block_dims)]
        params += [f"int64_t {name}" for name in self.host_params]
        params.append("int64_t *pp_fault")   # codegen.value_printer: the fault record
        return params

    def prologue(self) -> list[str]:
        """Arrays are kernel parameters; sizes and scalars come from named parameters."""
        lines = self.value_lines()
        sizes = [self.extent(n, d) for n, d in self.abi.extents]
        sizes += [c_name("param", n) for n in self.abi.params]
        if sizes:  # not every kernel uses every size
            lines.append(" ".join(f"(void){n};" for n in sizes))
        for name in self.private_locals:   # each thread's own copy (the proof says it may)
            lines += self.local_declarations(name)
            lines.append(" ".join(f"(void){n};" for n in self.local_names(name)))
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
                    array.name).storage_c_name]
        return total

    def _buffers(self) -> list[str]:
        lines = []
        shared = [a for a in self.program.arrays if a.memory == "shared"]
        dynamic = self.shared_bytes() > STATIC_SHARED_LIMIT
        offset = 0
        for array in shared:
            ctype = self.types.storage_type(array.name).storage_c_name
            size = _product(array.extents)
            name = c_name('array', array.name)
            if dynamic:   # 16-byte aligned pieces of the launch's dynamic shared memory
                lines.append(f"PP_SHARED_DYNAMIC({ctype}, {name}, {size}, {offset});")
                offset += -(-size * _SIZE[ctype] // 16) * 16
            else:
                lines.append(f"PP_SHARED({ctype}, {name}, {size});")
        for array in self.program.arrays:
            if array.memory == "register":
                name = c_name('array', array.name)
                fragment = self.mma and self.mma.register_declaration(array.name, name)
                if fragment:     # in mma's register layout, not the twin's
                    lines.append(fragment)
                    continue
                ctype = self.types.storage_type(array.name).storage_c_name
                size = _product((array.extents or ())[array.thread_dims:])
                # Tensor cores: the padding of a partial tile (polypipe.gpu_pad) accumulates
                # elements outside the nest that nothing initialises; never stored, but C++
                # must not read an indeterminate float on the CPU runtime: zeroed.
                zeroed = " = {}" if self.mma and array.name == self.mma.accumulator else ""
                lines.append(f"{ctype} __align__(16) {name}[{size}]{zeroed};")
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
        self._block_axes = {self.block_depth + d: _Axis(names[d], names[d], 0)
                            for d in range(dims)}
        lines.append(" ".join(f"(void){name};" for name in names))   # a one-thread kernel
        return lines

    # -- marks, block and thread coordinates ----------------------------------------------------
    # Loops over block (thread) schedule dimensions become blockIdx (threadIdx) coordinates
    # with the loop's bounds as a guard. isl prints no loop for a dimension that is fixed
    # where it is scanned (a tile of an element-wise nest whose columns all fall in block 2;
    # a copy whose one group goes to thread 0): every statement then gets the guard
    # ``coordinate == value`` from its instance's schedule (StatementInstance.schedule_exprs),
    # for each such block or thread dimension around it, or every block (thread) would run it.
    def mark_node(self, node: isl.AstNode, depth: int) -> None:
        mark = marks.mark_of(node)
        child = node.mark_get_node()
        if mark is not None and mark.kind == marks.BLOCK:
            self._axes.update(self._block_axes)
            self.node(child, depth)
            return
        if mark is not None and mark.kind == marks.THREAD:
            if mark.value is None:
                raise InternalError("a thread mark without its band's depth reached CUDA")
            names = ["threadIdx.y", "threadIdx.x"][-len(self._threads):]
            axes = {mark.value + d: _Axis(f"({self.index_type}){name}", name, extent)
                    for d, (name, extent) in enumerate(zip(names, self._threads))}
            if self.mma is not None:     # lanes of one warp are one hardware warp
                from .cuda_mma import thread_coordinates

                axes = {mark.value + d: _Axis(value, value, extent) for d, (value, extent)
                        in enumerate(zip(thread_coordinates(self._threads), self._threads))}
            self._axes.update(axes)
            self.node(child, depth)
            for level in axes:
                del self._axes[level]
            return
        if mark is not None and mark.kind == marks.VECTOR and self._vector_group(
                child, depth, mark.value):
            return
        if mark is not None and mark.kind == marks.WARP and self.mma is not None:
            from .cuda_mma import print_group

            print_group(self, node, depth, self._thread_level())
            return
        self.node(child, depth)

    def _guards(self, instance: StatementInstance) -> list[str]:
        """``coordinate == value`` for every block and thread dimension around the statement
        that has no printed loop (see above)."""
        guards = []
        for level, axis in self._axes.items():
            if level not in self._open and axis.extent != 1:
                value = self.expr(instance.schedule_exprs[level])
                guards.append(f"{axis.name} == {value}")
        return guards

    def _guarded(self, instance: StatementInstance, depth: int, lines) -> None:
        guards = self._guards(instance)
        if guards:
            self._emit(depth, f"if ({' && '.join(guards)}) {{")
        self.emit_bound(instance, depth + bool(guards), lines)
        if guards:
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
        ctype = self.types.storage_type(stmt.target.array).storage_c_name
        target, source = self._addresses(instance)
        function = ("pp_cp_async<16>" if stmt.kind == "async_copy"
                    else f"pp_copy16<{_VECTOR16[ctype]}>")
        group_bytes = lanes * _SIZE[ctype]
        if group_bytes < 16:   # a proved 4- or 8-byte cp.async group (analysis.alignment)
            function = f"pp_cp_async<{group_bytes}>"
        self._emit(depth, "{")
        lines = [f"{function}((char *){target} + {offset}, (const char *){source} + "
                 f"{offset});" for offset in range(0, group_bytes, 16)]
        if ((_is_test(instance.reads_where) or instance.reads_where is False)
                and instance.whole_tile is not True):
            zero_filled = self._zero_filled_group(instance, iterator, lanes, group_bytes,
                                                  _SIZE[ctype])
            lines = zero_filled if not _is_test(instance.whole_tile) else [
                f"if ({self.expr(instance.whole_tile)}) {{", *lines, "} else {", *zero_filled,
                "}"]
        # First: the guards and the instance's bound locals may use the lane iterator.
        self._emit(depth + 1, f"const {self.index_type} {iterator} = 0;")
        self._guarded(instance, depth + 1, lines)
        self._emit(depth, "}")
        return True

    def _zero_filled_group(self, instance: StatementInstance, iterator: str, lanes: int,
                           group_bytes: int, size: int) -> list[str]:
        """A group of a zero-filling copy (polypipe.gpu_pad): its lanes that read are a prefix
        of it (``analysis.pad_proof`` proves that), counted in ``pp_valid``; the cp.async of
        each 16 bytes reads those of its bytes, zero-filling the others, and is given the
        array's first element when it reads none (any address it is given must be one)."""
        target, source = self._addresses(instance)
        if instance.reads_where is False:
            lines = ["const unsigned pp_valid = 0;"]
        else:
            lines = ["unsigned pp_valid = 0;", "#pragma unroll",
                     f"for (int pp_e = 0; pp_e < {lanes}; pp_e += 1) {{",
                     f"  const {self.index_type} {iterator} = pp_e;",
                     f"  pp_valid += ({self.expr(instance.reads_where)}) ? 1u : 0u;", "}"]
        base = c_name("array", instance.statement.reads[0].array)
        chunk = min(group_bytes, 16)
        for offset in range(0, group_bytes, chunk):
            have = f"({size}u * pp_valid - {offset}u)"
            valid = (f"({size}u * pp_valid > {offset}u ? ({have} < {chunk}u ? {have} : "
                     f"{chunk}u) : 0u)")
            lines.append(f"pp_cp_async_zfill<{chunk}>((char *){target} + {offset}, "
                         f"{size}u * pp_valid > {offset}u ? (const char *){source} + {offset} "
                         f": (const char *){base}, {valid});")
        return lines

    def _thread_level(self) -> int:
        """The schedule level of the innermost thread band around the node being printed."""
        levels = [level for level, axis in self._axes.items() if axis.thread]
        if len(levels) < 2:
            raise InternalError("a warp group outside a two-dimensional thread band")
        return max(levels) - 1

    def shared_element(self, instance: StatementInstance, access) -> str:
        """The element ``access`` reads at ``instance``, as plain C (no PP_LD): its address is
        passed to a function that checks it on the CPU runtime (ldmatrix)."""
        self._access_macro = None
        try:
            return self.expr(instance.access_exprs[id(access)])
        finally:
            self._access_macro = "PP_LD"

    @staticmethod
    def register_name(name: str) -> str:
        return c_name("array", name)

    def _addresses(self, instance: StatementInstance) -> tuple[str, str]:
        """Addresses of a copy's target and source element, unchecked: the functions they
        are passed to (pp_cp_async, pp_copy16) check them on the CPU runtime."""
        stmt = instance.statement
        self._access_macro = None
        try:
            return tuple(f"&{self.expr(instance.access_exprs[id(access)])}"
                         for access in (stmt.target, stmt.reads[0]))
        finally:
            self._access_macro = "PP_LD"

    def for_node(self, node: isl.AstNode, depth: int) -> None:
        iterator = self.expr(node.for_get_iterator())
        level = int(iterator[len(ITERATOR_PREFIX):])
        if self.sizes is not None:   # specialised: loop bounds become intervals of constants
            env = {name: (value, value) for name, value in self.sizes.items()}
            env.update((name, r) for name, r in self._ranges.items() if r is not None)
            self._ranges[iterator] = loop_range(node, env)
        axis = self._axes.get(level)
        if axis is None or level in self._open:
            if self.unroll_thread_loops and any(a.thread for a in self._axes.values()):
                # Per-thread loops over fragments and tile rows: small, unrolled so that
                # register buffers are indexed by constants and stay in registers. (Not in
                # a kernel of a computed schedule: there they are the nest's own loops.)
                self._emit(depth, "#pragma unroll")
                if self._constant_trip_loop(node, iterator, depth):
                    return
            super().for_node(node, depth)
            return
        init = self.expr(node.for_get_init())
        if node.for_is_degenerate():
            guard = f"{iterator} == {init}"
        else:
            guard = f"{iterator} >= {init} && {self.expr(node.for_get_cond())}"
            inc = self.expr(node.for_get_inc())
            if inc != "1":
                guard += f" && ({iterator} - {init}) % {inc} == 0"
        self._emit(depth, "{")
        self._emit(depth + 1, f"const {self.index_type} {iterator} = {axis.value};")
        self._emit(depth + 1, f"if ({guard}) {{")
        self._open.add(level)
        self.node(node.for_get_body(), depth + 2)
        self._open.discard(level)
        self._emit(depth + 1, "}")
        self._emit(depth, "}")

    def _constant_trip_loop(self, node: isl.AstNode, iterator: str, depth: int) -> bool:
        """Print ``for (c = max(A, a); c <= min(K, e); c++)`` as
        ``for (c = A; c <= K; c++) if (c >= a && c <= e)``, and ``for (c = a; c <= e; c++)``
        as ``for (c = L; c <= H; c++) if (c >= a && c <= e)`` where [L, H] is the interval of
        ``c`` over the enclosing loops (index_range.loop_range).

        In a partial tile (sizes that do not divide the tile, padding) isl bounds a register
        loop by ``max``/``min`` with run-time values; ptxas cannot unroll a loop whose trip
        count is not a constant, indexes the register buffers at run time and moves them to
        local memory (the SASS of every convolution showed LDL/STL). With constant bounds the
        loop unrolls and the guard skips exactly the iterations the bounds did.
        """
        if node.for_is_degenerate() or self.expr(node.for_get_inc()) != "1":
            return False
        cond = node.for_get_cond()
        if cond.get_type() != isl.ast_expr_type.op or cond.get_op_type() not in (_OP.le, _OP.lt):
            return False
        relation = "<=" if cond.get_op_type() == _OP.le else "<"
        low, low_rest = _split_constant(node.for_get_init(), _OP.max, max)
        high, high_rest = _split_constant(cond.get_op_arg(1), _OP.min, min)
        last = f"{relation} {high}"
        if low is None or high is None:
            # Bounds that depend on enclosing per-thread loops (the trip count of a fragment
            # group in a partial tile, no constant alternative): the iterator's interval
            # over the enclosing loops' intervals is constant; the guard is the bounds.
            known = self._ranges.get(iterator)
            if known is None or known[1] - known[0] >= MAX_GUARDED_TRIPS:
                return False
            low, last = known[0], f"<= {known[1]}"
            low_rest, high_rest = [node.for_get_init()], [cond.get_op_arg(1)]
        elif not (low_rest or high_rest):
            return False
        guard = " && ".join([f"{iterator} >= {self.expr(a)}" for a in low_rest]
                            + [f"{iterator} {relation} {self.expr(a)}" for a in high_rest])
        self._emit(depth, f"for ({self.index_type} {iterator} = {low}; "
                          f"{iterator} {last}; {iterator} += 1) {{")
        self._emit(depth + 1, f"if ({guard}) {{")
        self.node(node.for_get_body(), depth + 2)
        self._emit(depth + 1, "}")
        self._emit(depth, "}")
        return True

    # -- statements ----------------------------------------------------------------------------
    def user_node(self, node: isl.AstNode, depth: int) -> None:
        instance: StatementInstance = node.get_annotation().user
        stmt = instance.statement
        if isinstance(stmt, ir.Sync):
            text = {"barrier": "__syncthreads();", "commit": "pp_cp_async_commit();"}.get(
                stmt.kind, f"pp_cp_async_wait<{stmt.pending}>();")
        elif instance.reads_where is not None:
            text = self._zero_filled(instance)
        elif stmt.kind == "async_copy" and self._element_bytes(stmt) >= 4:
            target, source = self._addresses(instance)
            text = f"pp_cp_async<{self._element_bytes(stmt)}>({target}, {source});"
        else:
            text = self.statement(instance) + ";"
        self._guarded(instance, depth, [text])

    def _zero_filled(self, instance: StatementInstance) -> str:
        """One element of a zero-filling copy (polypipe.gpu_pad): its source where it reads
        it, else zero (a synchronous store, as for any 16-bit element)."""
        stmt = instance.statement
        reading = replace(instance, statement=replace(stmt, value=stmt.value.then),
                          reads_where=None)
        zero = f"{self.target(instance)} = 0;"
        if instance.whole_tile is True:
            instance = replace(instance, reads_where=True)
        if instance.reads_where is False:
            return zero
        if stmt.kind == "async_copy" and self._element_bytes(stmt) >= 4:
            target, source = self._addresses(instance)
            copy = f"pp_cp_async<{self._element_bytes(stmt)}>({target}, {source});"
        else:
            copy = self.statement(reading) + ";"
        if instance.reads_where is True:
            return copy
        test = self.expr(instance.reads_where)
        if _is_test(instance.whole_tile):     # the tile's test first: interior tiles
            test = f"({self.expr(instance.whole_tile)}) || ({test})"
        return f"if ({test}) {{ {copy} }} else {{ {zero} }}"

    def _element_bytes(self, stmt) -> int:
        """Bytes of the copied element. cp.async moves 4, 8 or 16 bytes: a single 16-bit
        element is copied synchronously (done before any wait, which is always allowed)."""
        return _SIZE[self.types.storage_type(stmt.target.array).storage_c_name]

    # Global and shared elements go through PP_LD (a read) and PP_ST (a write): plain
    # indexing on the GPU, bounds- and race-checked accesses on the CPU runtime. Register
    # buffers and locals are the thread's own and print plainly.
    def access(self, array: str, indices: list[str]) -> str:
        info = self.program.array(array)
        if info.is_local or info.memory == "register" or self._access_macro is None:
            return super().access(array, indices)
        return (f"{self._access_macro}({c_name('array', array)}, "
                f"{self.linear_index(info, indices)})")

    def target(self, instance: StatementInstance) -> str:
        self._access_macro = "PP_ST"
        try:
            return super().target(instance)
        finally:
            self._access_macro = "PP_LD"

    def linear_index(self, info: ir.Array, indices: list[str]) -> str:
        """Register buffers drop their thread dimensions: each thread has its own. A swizzled
        tile's column goes through its swizzle (tensor cores: ``TileLayout.swizzle_c``)."""
        layout = self.mma.swizzles.get(info.name) if self.mma is not None else None
        if layout is not None:
            indices = [*indices[:-1], layout.swizzle_c(indices[-2], indices[-1])]
        if info.memory == "register":
            trimmed = ir.Array(info.name, info.rank - info.thread_dims, info.shape,
                               extents=(info.extents or ())[info.thread_dims:])
            return super().linear_index(trimmed, indices[info.thread_dims:])
        return super().linear_index(info, indices)


@dataclass(frozen=True)
class _Axis:
    """A block or thread coordinate: the expression bound to its loop iterator, the name a
    guard compares, and the thread extent (0 for a block coordinate)."""

    value: str
    name: str
    extent: int

    @property
    def thread(self) -> bool:
        return self.extent > 0


def _is_test(where) -> bool:
    """Whether a StatementInstance.reads_where / whole_tile is an AST test (not None, True or
    False: compared by identity, since an AST expression does not compare with them)."""
    return where is not None and where is not True and where is not False


def _product(values) -> int:
    result = 1
    for value in values or ():
        result *= value
    return result


def _split_constant(expr: isl.AstExpr, op, pick) -> tuple[int | None, list[isl.AstExpr]]:
    """A constant bound and the run-time rest: ``K`` -> (K, []), ``op(K, e, ..)`` -> (K, [e,
    ..]) with ``pick`` (min or max) over several constants; (None, []) otherwise."""
    if expr.get_type() == isl.ast_expr_type.int:
        return expr.get_val().to_python(), []
    if expr.get_type() != isl.ast_expr_type.op or expr.get_op_type() != op:
        return None, []
    args = [expr.get_op_arg(i) for i in range(expr.get_op_n_arg())]
    constants = [a.get_val().to_python() for a in args if a.get_type() == isl.ast_expr_type.int]
    if not constants:
        return None, []
    return pick(constants), [a for a in args if a.get_type() != isl.ast_expr_type.int]
