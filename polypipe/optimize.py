"""``polypipe.optimize``: a program -> GPU kernels with proved multi-level pipelining.

Before::

    for i in range(NI):                      # gemm, source order
        for j in range(NJ):  C[i, j] *= beta
        for k in range(NK):
            for j in range(NJ):  C[i, j] += alpha * A[i, k] * B[k, j]

After ``optimize(gemm.program, GpuConfig(block=(64, 64), threads=(16, 16), reduction=16,
shared_stages=3, register_stages=2))``: one kernel whose blocks own 64x64 tiles of C, whose
256 threads each accumulate a 4x4 sub-tile in registers, with tiles of A and B streamed through
3 shared-memory buffers by asynchronous copies and through 2 register fragments, every
transformation proved (see :mod:`polypipe.analysis.gpu_proof`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import ir
from .codegen.value_types import numpy_dtype
from .binding import positional, refuse_aliasing
from .errors import (ArgumentError, KernelRuntimeError, LegalityError, ScheduleError,
                     deep_nesting, public)
from .gpu_config import GpuConfig, as_config
from .gpu_scheduled import ScheduledKernel
from .kernel import ArgumentPacker, Binding, Kernel, bind_arguments

OPTIMIZED_BACKENDS = ("emulate", "cuda")
THREAD_ORDERS = ("scrambled", "forward", "reverse")


def _buffer_dtypes(kernel, typed_original: ir.Program, binding: Binding) -> dict[str, str]:
    """dtype of every buffer: its source array's (or the local accumulator's inferred type)."""
    from polypipe.codegen.value_types import TypeEnv, dtype_name

    dtypes = dict(binding.dtypes)
    if isinstance(kernel, ScheduledKernel):
        return dtypes
    for op in kernel.operands:
        dtypes[op.shared] = dtypes[op.array]
        dtypes[op.register] = dtypes[op.array]
    contraction = kernel.contraction
    if contraction.update is None:
        return dtypes
    if contraction.expanded_local:
        local = contraction.expanded_local
        env = TypeEnv(typed_original, dict(binding.scalar_types))
        env.decide_locals()
        if local in env.variants or env.local_type(local).weak:
            # The accumulator becomes an array of one NumPy dtype on the GPU.
            held = "values of several types" if local in env.variants else "a Python number"
            raise ScheduleError(f"the accumulator `{local}` holds {held} for these arguments "
                                "(polypipe.optimize needs one NumPy type for it); initialise "
                                f"it with the arrays' type, e.g. `{local} = np.float32(0)` for "
                                "float32 arrays")
        dtypes[kernel.accumulator_buffer] = dtype_name(env.storage_type(local))
    else:
        dtypes[kernel.accumulator_buffer] = dtypes[contraction.accumulator]
    return dtypes


@dataclass(eq=False)
class OptimizedProgram:
    """The GPU kernels of a program, one per top-level loop nest, in order."""

    original: ir.Program
    config: GpuConfig
    kernels: tuple
    proofs: tuple = field(default=())
    fusions: tuple = field(default=())     # gpu_fusion.FusionDecision per producer/consumer pair
    fit_sizes: bool = False     # no configuration was given: fit the default to each run's sizes
    fit_notes: tuple = field(default=())   # what the fit to one run's sizes changed, and why
    prove: bool = True
    _compiled: dict = field(default_factory=dict)
    _checked: set = field(default_factory=set)
    _fitted: dict = field(default_factory=dict)   # by sizes, and by (kernel, configuration)

    def for_sizes(self, binding: Binding) -> "OptimizedProgram":
        """The program a run at these sizes launches: this one, or, when optimize() was
        given no configuration, the one whose contraction kernels have the default fitted
        to the sizes (polypipe.gpu_fit), lowered and proved like any other."""
        if not self.fit_sizes or not (binding.params or binding.extents):
            return self
        sizes = (tuple(binding.params.items()), tuple(binding.extents.items()))
        fitted = self._fitted.get(sizes)
        if fitted is None:
            fitted = self._fitted[sizes] = _fitted_program(self, binding)
        return fitted

    @public
    def describe(self, *args, target: str = "H200") -> str:
        """What was built and proved; with the arguments of a run (arrays, or anything with
        ``shape`` and ``__cuda_array_interface__``), also the static performance estimate of
        every launch on ``target`` ("H100" or "H200"), read from the compiled machine code."""
        from polypipe.codegen.estimate import TARGETS

        if not isinstance(target, str) or target not in TARGETS:
            raise ArgumentError(f"target {target!r} is not known; known are "
                                f"{', '.join(TARGETS)}")
        if not args:
            return self._describe(None, target)
        binding = bind_arguments(self.original, args, device_arrays=True)
        return self.for_sizes(binding)._describe(binding, target)

    def _describe(self, binding: Binding | None, target: str) -> str:
        """describe() of these kernels; with ``binding``, at its sizes."""
        which = ("the default configuration, fitted to each run's sizes: " if self.fit_sizes
                 else "fitted from the default: " if self.fit_notes else "")
        lines = [f"{self.original.name}: {len(self.kernels)} GPU kernel(s), {which}"
                 f"{self.config.describe()}"]
        lines += [f"  {note}" for note in self.fit_notes]
        if any(isinstance(k, ScheduledKernel) for k in self.kernels):
            lines.append(_SCHEDULED_CONFIG.format(threads=self.config.threads))
        for kernel in self.kernels:
            if isinstance(kernel, ScheduledKernel):
                lines += _scheduled_lines(kernel)
                continue
            c = kernel.contraction
            if c.update is None:
                lines.append(f"  {kernel.name}: element-wise over {c.accumulator}'s elements "
                             f"({', '.join(c.output_iterators)}), no reduction to pipeline")
                continue
            lines.append(f"  {kernel.name}: accumulator {c.accumulator} over "
                         f"({', '.join(c.output_iterators)}), reduction "
                         f"({', '.join(c.reduction_iterators)}); registers hold "
                         f"{kernel.accumulator_buffer}")
            layouts = {kernel.program.statement(name).target.array: layout
                       for name, layout in kernel.copy_layouts}
            for op in kernel.operands:
                lines.append(f"    {op.array}: shared {op.shared} x{kernel.config.shared_stages}"
                             f" stages{_layout_text(layouts.get(op.shared))}, registers "
                             f"{op.register} x{kernel.config.register_stages}")
            for read, reason in kernel.unpromoted:
                lines.append(f"    {read}: stays in global memory ({reason})")
            if kernel.config.mma is not None:   # the warp groups CUDA prints
                from .gpu_warp import warp_plan

                lines += [f"    {line.strip()}" for line in warp_plan(kernel.config).describe()
                          if "per lane" in line or "per main-loop" in line]
                lines.append("    partial tiles: each tile runs whole, its copies zero-filling "
                             "the operand elements outside the nest (polypipe.gpu_pad)")
        for decision in self.fusions:
            lines.append(f"  {decision}")
        for proof in self.proofs:
            lines.append(f"  proof: {proof}")
        if binding is not None:
            from polypipe.performance import estimate_lines, size_fit_lines

            self._check_once(binding)
            if not (self.fit_sizes or self.fit_notes):   # a fitted kernel's note says it
                lines += size_fit_lines(self, binding, target)
            lines += estimate_lines(self, binding, target)
        return "\n".join(lines)

    @public
    def run(self, *args, backend: str = "emulate", thread_order: str = "scrambled",
            seed: int = 0, source: str | None = None, **kwargs) -> None:
        """Run every kernel in order on ``args`` (in place, like the Python function).

        ``backend="emulate"`` runs the GPU kernels on the CPU with GPU semantics (threads of a
        phase in ``thread_order``: ``"scrambled"`` by ``seed``, ``"forward"`` or
        ``"reverse"``); ``"cuda"`` runs them on the GPU. Both run the translation unit
        ``cuda_source(*args)``, or ``source`` when given (one edited by hand, say), with this
        program's launches (grid, block, dynamic shared memory, parameters).
        """
        if backend not in OPTIMIZED_BACKENDS:
            raise ArgumentError(f"unknown backend {backend!r} for an optimized program; "
                                f"available: {', '.join(OPTIMIZED_BACKENDS)}")
        check_thread_order(thread_order, seed)
        args = positional(self.original, args, kwargs)
        if backend == "cuda":
            _require_cuda()
        binding = bind_arguments(self.original, args, device_arrays=backend == "cuda")
        refuse_aliasing(self.original, args, backend)
        fitted = self.for_sizes(binding)
        fitted._check_once(binding)
        if source is not None and not isinstance(source, str):
            raise ArgumentError(f"source must be the text of a CUDA translation unit, not "
                                f"{type(source).__name__}")
        executable = fitted._executable(binding, backend, source)
        if backend == "cuda":
            self.last_gpu_milliseconds = executable.run(args)
            return
        executable.run(args, thread_order=thread_order, seed=seed)

    @public
    def time_cuda(self, *args, repeat: int = 20) -> float:
        """Milliseconds of one run on the GPU, averaged over ``repeat`` back-to-back runs.

        Pass device arrays (CuPy, PyTorch, PyCUDA) so no copies are timed or made. Without
        PyCUDA or a GPU it raises KernelRuntimeError saying which is missing.
        """
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise ArgumentError(f"repeat must be a positive int, not {repeat!r}")
        _require_cuda()
        binding = bind_arguments(self.original, args, device_arrays=True)
        refuse_aliasing(self.original, args, "cuda")
        fitted = self.for_sizes(binding)
        fitted._check_once(binding)
        return fitted._executable(binding, "cuda").run(args, repeat=repeat)

    def _executable(self, binding: Binding, backend: str, source: str | None = None):
        """The launches of every kernel at these sizes, on the GPU or the CPU runtime; both
        run the translation unit ``cuda_source_for(binding)`` prints, or ``source``."""
        from polypipe.codegen.cuda_runtime import CudaExecutable, EmulatedExecutable

        key = (backend, binding.signature, tuple(binding.params.items()),
               tuple(binding.extents.items()), source)
        executable = self._compiled.get(key)
        if executable is None:
            cls = CudaExecutable if backend == "cuda" else EmulatedExecutable
            with deep_nesting(self.original.name):
                executable = cls(self, binding, source)
            self._compiled[key] = executable
        return executable

    @public
    def cuda_source(self, *args, dtype: str = "float32") -> str:
        """The complete CUDA translation unit: one ``__global__`` function per kernel.

        With ``args`` it is the text ``run(*args)`` runs on either backend: element types
        and sizes are theirs (specialised), and copies from or to an array whose data is not
        16-byte aligned stay scalar. Without, every array has ``dtype`` and sizes are
        run-time values.
        """
        from polypipe.codegen.cuda_runtime import array_address, unaligned_arrays
        from polypipe.codegen.value_types import SUPPORTED_DTYPES, WEAK_FLOAT

        if args:
            binding = bind_arguments(self.original, args, device_arrays=True)
            unaligned = unaligned_arrays(self.original, [array_address(a) for a in args])
            return self.for_sizes(binding).cuda_source_for(binding, unaligned=unaligned)
        elif dtype not in SUPPORTED_DTYPES:
            raise ArgumentError(f"dtype {dtype!r} is not supported; supported are "
                                f"{', '.join(SUPPORTED_DTYPES)}")
        else:
            binding = Binding({}, {}, tuple((a.name, dtype) for a in self.original.arrays
                                            if not a.is_local and a.accessed),
                              tuple((a.name, WEAK_FLOAT) for a in self.original.arguments
                                    if a.kind == "scalar"))
        return self.cuda_source_for(binding)

    def _typed_kernels(self, binding: Binding):
        """(kernel, typed GPU program, type environment, ABI) for these dtypes."""
        from polypipe.codegen.c_printer import kernel_abi
        from polypipe.codegen.value_types import TypeEnv

        typed_original = self.original.with_dtypes(dict(binding.dtypes))
        scalar_types = dict(binding.scalar_types)
        whole = None
        for kernel in self.kernels:
            typed = kernel.program.with_dtypes(_buffer_dtypes(kernel, typed_original, binding))
            if isinstance(kernel, ScheduledKernel):
                # The statements are the source's: the types of locals are the whole
                # program's, which every kernel reading or writing a local shares.
                if whole is None:
                    whole = TypeEnv(typed_original, scalar_types)
                    whole.decide_locals()
                types = whole
            else:
                types = TypeEnv(typed, scalar_types)
            yield kernel, typed, types, kernel_abi(typed, scalar_types)

    def cuda_packers(self, binding: Binding) -> list:
        return [ArgumentPacker(typed, abi) for _, typed, _, abi in self._typed_kernels(binding)]

    def dynamic_shared_bytes(self, kernel, binding: Binding) -> int:
        """Bytes of dynamic shared memory a launch needs (0 when the buffers are static)."""
        from polypipe.codegen.cuda_printer import STATIC_SHARED_LIMIT, CudaPrinter

        for candidate, typed, types, abi in self._typed_kernels(binding):
            if candidate is kernel:
                size = CudaPrinter(typed, types, abi).shared_bytes()
                return size if size > STATIC_SHARED_LIMIT else 0
        raise KeyError(kernel.name)

    @public
    def cuda_source_for(self, binding: Binding, specialise: bool = True,
                        unaligned: frozenset = frozenset()) -> str:
        """CUDA for these dtypes; with ``specialise`` and concrete sizes in ``binding``, for
        exactly those sizes (see :class:`~polypipe.codegen.cuda_printer.CudaPrinter`).

        Copies from or to arrays in ``unaligned`` (base address not 16-byte aligned) stay
        scalar.
        """
        with deep_nesting(self.original.name):
            return self._cuda_source(binding, specialise, unaligned)

    def _cuda_source(self, binding: Binding, specialise: bool, unaligned: frozenset) -> str:
        from polypipe.codegen.cuda_printer import CUDA_PRELUDE

        concrete = bool(specialise and (binding.params or binding.extents))
        functions, shared_locals = [], []
        for kernel, typed, types, abi in self._typed_kernels(binding):
            functions.append(self._kernel_source(kernel, typed, types, abi, binding, concrete,
                                                 unaligned))
            if isinstance(kernel, ScheduledKernel) and not shared_locals:
                shared_locals = _module_locals(self.original.with_dtypes(dict(binding.dtypes)),
                                               self.kernels, types, abi)
        return CUDA_PRELUDE + "\n" + "".join(shared_locals) + "\n".join(functions)

    def _kernel_source(self, kernel, typed, types, abi, binding: Binding, concrete: bool,
                       unaligned: frozenset) -> str:
        """One ``__global__`` function, specialised to the sizes when ``concrete``."""
        from polypipe.analysis.alignment import vector_groups
        from polypipe.analysis.bounds import fix_parameters
        from polypipe.codegen.ast_build import build_ast
        from polypipe.codegen.cuda_printer import CudaPrinter, index_type_for
        from polypipe.codegen.index_range import check_index_range, index_tree

        scheduled = isinstance(kernel, ScheduledKernel)
        printer = CudaPrinter(typed, types, abi, function_name=kernel.name,
                              block_dims=kernel.block_rank,
                              blocks_per_sm=kernel.config.blocks_per_sm)
        if scheduled:
            printer.block_depth, printer.host_params = kernel.block_depth, kernel.host_params
            printer.private_locals = tuple(name for name in kernel.private
                                           if name in _arrays_of(kernel.program))
            printer.unroll_thread_loops = False
        context = None
        if concrete:
            extents = {name: binding.extents[name] for name in abi.arrays}
            printer.sizes, printer.extents = dict(binding.params), extents
            printer.index_type = index_type_for(binding.params, extents)
            if not scheduled:
                sizes_of = {a.name: numpy_dtype(a.dtype).itemsize for a in typed.arrays
                            if a.dtype}
                proved = vector_groups(kernel, binding.params, extents, sizes_of)
                printer.vector_groups = frozenset(
                    name for name in proved
                    if not {typed.statement(name).reads[0].array,
                            typed.statement(name).target.array} & unaligned)
            context = typed.context.intersect_params(
                fix_parameters(typed.context, binding.params))
        if not scheduled and kernel.config.mma is not None:
            from polypipe.codegen.cuda_mma import mma_kernel

            printer.mma = mma_kernel(kernel, dict(binding.dtypes),
                                     dict(binding.params) if concrete else None)
        ast = build_ast(typed, context=context, schedule_values=True)
        if concrete:   # the loops of this very text must compute in int64
            ranges = kernel.host_ranges(binding.params) if scheduled else {}
            check_index_range(index_tree(ast), binding.params, self.original.name, ranges)
        return printer.kernel_function(ast)

    def _check_once(self, binding: Binding) -> None:
        """Stage limits once per dtype signature, bounds once per set of sizes (the index
        range of the loops is checked on the very text printed for the sizes)."""
        from polypipe.analysis.bounds import check_access_bounds

        if binding.signature not in self._checked:
            self._check_sizes(binding)
            self._checked.add(binding.signature)
        sizes = (binding.signature, tuple(binding.params.items()),
                 tuple(binding.extents.items()))
        if sizes not in self._checked:
            check_access_bounds(self.original, binding.params, binding.extents)
            self._checked.add(sizes)

    def _check_sizes(self, binding: Binding) -> None:
        """Refuse what these element types make impossible (shared stages beyond the target's
        shared memory)."""
        from polypipe.analysis.pipeline_check import require_stages_fit

        dtypes = dict(binding.dtypes)
        for kernel in self.kernels:
            if isinstance(kernel, ScheduledKernel):
                continue     # no buffers
            itemsize = (max(numpy_dtype(dtypes[op.array]).itemsize for op in kernel.operands)
                        if kernel.operands else 4)
            require_stages_fit(kernel, itemsize)


def _module_locals(original: ir.Program, kernels, types, abi) -> list[str]:
    """Local scalars of the scheduled kernels, declared once at the translation unit's scope:
    a value one launch writes is read by a later launch (durbin's ``alpha``), so it lives in
    device memory for the program's run, not in a thread. The proof of those kernels
    (analysis.scheduled_proof) orders every such write and read."""
    from polypipe.codegen.cuda_printer import CudaPrinter

    used = set()
    for kernel in kernels:
        if isinstance(kernel, ScheduledKernel):
            used.update(_arrays_of(kernel.program) - set(kernel.private))
    printer = CudaPrinter(original, types, abi)
    lines = []
    for array in original.arrays:
        if array.is_local and array.name in used:
            lines += [f"static __device__ {line}\n" for line in printer.local_declarations(
                array.name)]
    return lines


def _arrays_of(program: ir.Program) -> set[str]:
    """The arrays and locals the statements of ``program`` access."""
    return {a.array for stmt in program.statements for a in stmt.accesses}


# What of a GpuConfig the kernels of isl's schedule honour (gpu_scheduled._blocks_and_threads).
_SCHEDULED_CONFIG = ("  (kernels of isl's schedule take threads={threads} from the configuration, "
                     "one point of the mapped band per thread; block, reduction and the stage "
                     "counts apply to contraction kernels)")


def _scheduled_lines(kernel: ScheduledKernel) -> list[str]:
    lines = [f"  {kernel.describe()}"]
    if kernel.note:
        lines.append(f"    ({kernel.note})")
    return lines


def check_thread_order(thread_order, seed) -> None:
    """ArgumentError unless ``thread_order`` is an emulation order and ``seed`` an int."""
    if thread_order not in THREAD_ORDERS:
        raise ArgumentError(f"thread_order must be one of {', '.join(map(repr, THREAD_ORDERS))},"
                            f" not {thread_order!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ArgumentError(f"seed must be an int, not {type(seed).__name__}")


def _require_cuda() -> None:
    """Refuse the CUDA backend up front, saying what is missing (PyCUDA, a driver, a GPU)."""
    from polypipe.codegen.cuda_runtime import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason is not None:
        raise KernelRuntimeError(reason)


@public
def optimize(program: "ir.Program | Kernel", config: GpuConfig | None = None,
             prove: bool = True) -> OptimizedProgram:
    """Map every top-level loop nest of ``program`` to GPU kernels.

    A contraction nest (see :mod:`polypipe.analysis.contraction`) becomes one pipelined
    kernel (element-wise consumers fused into it where proved); any other nest becomes the
    kernels and host launches of isl's schedule of it (:mod:`polypipe.gpu_scheduled`). A
    configuration that cannot be honoured raises ScheduleError with the reason. Without
    ``config``, every run fits the default configuration to its sizes
    (:mod:`polypipe.gpu_fit`: fewer shared stages than reduction tiles, smaller blocks where
    the grid would not fill the GPU); a given one is used as it is. With ``prove`` (the
    default) every kernel is proved equivalent to the source before it is returned
    (LegalityError with a counterexample otherwise).
    """
    with deep_nesting(getattr(program, "name", "optimize")):
        return _optimize(program, config, prove)


def _optimize(program, config, prove: bool) -> OptimizedProgram:
    from polypipe.analysis.contraction import top_level_nests
    from polypipe.analysis.dependences import as_program

    program = as_program(program, "optimize")
    fit_sizes = config is None
    config = as_config(config)
    config.validate()   # a configuration's own errors are refused, never worked around
    if config.mma is not None:
        from .gpu_warp import lane_config

        config = lane_config(config)   # the CUDA-core mapping whose ownership is mma's
    groups: list[list[ir.Statement]] = []
    built: list[tuple] = []            # (kernel or kernels, proof or None), one per group
    decisions = []
    for nest in top_level_nests(program):
        try:
            contraction = _recognised(program, nest)
            if _fuse_into_last(program, config, groups, built, decisions, nest, prove):
                continue
            entry = _built(program, config, contraction, f"{program.name}_k{len(groups)}",
                           prove)
        except _NotAContraction as refusal:
            if config.mma is not None:    # asked for tensor cores: never mapped another way
                raise ScheduleError(f"GpuConfig(mma={config.mma!r}): the nest of "
                                    f"{', '.join(s.name for s in nest)} cannot use tensor "
                                    f"cores: {refusal}") from None
            entry = _scheduled(program, config, nest, len(groups), prove, str(refusal))
        groups.append(nest)
        built.append(entry)
    kernels = tuple(k for kernel, _ in built
                    for k in (kernel if isinstance(kernel, tuple) else (kernel,)))
    proofs = tuple(proof for _, proof in built if proof is not None)
    return OptimizedProgram(program, config, kernels, proofs, tuple(decisions),
                            fit_sizes=fit_sizes, prove=prove)


def _fitted_program(optimized: OptimizedProgram, binding: Binding) -> OptimizedProgram:
    """``optimized`` with each contraction kernel rebuilt from the default fitted to these
    sizes; a kernel whose fitted configuration is refused stays as built, and says so."""
    from .gpu_fit import fit_config, kernel_sizes

    kernels, proofs, notes = [], list(optimized.proofs), []
    for kernel in optimized.kernels:
        fit = None if isinstance(kernel, ScheduledKernel) else fit_config(
            kernel.config, kernel_sizes(kernel, binding.params), kernel.config.target.sms)
        if fit is None or not fit.changed:
            kernels.append(kernel)
            continue
        built = _rebuilt(optimized, kernel, fit.config)
        if isinstance(built, str):
            notes.append(f"{kernel.name}: the default fitted to these sizes "
                         f"({fit.config.describe()}) was refused ({built}); the default runs")
            kernels.append(kernel)
            continue
        rebuilt, proof = built
        kernels.append(rebuilt)
        proofs = [proof if getattr(old, "kernel", None) == kernel.name else old
                  for old in proofs]
        notes.append(f"{kernel.name}: configuration fitted to these sizes: "
                     f"{rebuilt.config.describe()} ({'; '.join(fit.reasons)})")
    if not notes:
        return optimized
    return replace(optimized, kernels=tuple(kernels), proofs=tuple(proofs), fit_sizes=False,
                   fit_notes=tuple(notes), _compiled={}, _checked=set(), _fitted={})


def _layout_text(layout) -> str:
    """`` (stored [k][m] + 4 padding, 4-element copies)`` of a shared tile's layout, with the
    swizzle of a tensor-core tile."""
    if layout is None:
        return ""
    order = "".join(f"[{d.name.removeprefix('pp_l')}]" for d in layout.order)
    swizzled = f", {layout.chunks.name}" if layout.swizzle[0] else ""
    return (f" (stored {order} + {layout.padding} padding{swizzled}, {layout.vector}-element "
            "copies)")


def _rebuilt(optimized: OptimizedProgram, kernel, config: GpuConfig):
    """(kernel, proof) of ``kernel``'s nest under ``config``, or why it is refused; built
    once per kernel and configuration (many sizes fit to the same one)."""
    key = ("kernel", kernel.name, config)
    if key not in optimized._fitted:
        try:
            optimized._fitted[key] = _built(optimized.original, config, kernel.contraction,
                                            kernel.name, optimized.prove)
        except (_NotAContraction, ScheduleError) as refusal:
            optimized._fitted[key] = str(refusal)
    return optimized._fitted[key]


def _recognised(program: ir.Program, nest):
    from polypipe.analysis.contraction import recognise

    try:
        return recognise(program, nest)
    except ScheduleError as refusal:
        raise _NotAContraction(str(refusal).splitlines()[0]) from None


class _NotAContraction(Exception):
    """A nest the contraction mapping does not take (its shape, or its proof refused it):
    it is mapped from isl's schedule instead (the message says why, for describe())."""


def _fuse_into_last(program, config, groups, built, decisions, nest, prove: bool) -> bool:
    """Fuse ``nest`` into the previous group's contraction kernel when proved; records the
    decision. True when fused."""
    from .gpu_fusion import fusion_candidate

    if not groups or isinstance(built[-1][0], tuple):
        return False
    candidate = fusion_candidate(program, built[-1][0].contraction, groups[-1], nest)
    if candidate is None:
        return False
    decision, merged = candidate
    if merged is not None:
        fused = _fused(program, config, merged, len(groups) - 1, prove)
        if isinstance(fused, str):
            decision = replace(decision, fused=False, reason=fused)
        else:
            groups[-1] = groups[-1] + nest
            built[-1] = fused
    decisions.append(decision)
    return decision.fused


def _built(program: ir.Program, config: GpuConfig, contraction, name: str, prove: bool):
    """(kernel, proof or None) of one nest: lowered, checked to fit, proved if asked.
    _NotAContraction where the mapping does not apply or its proof refuses it; the stage
    check's refusal (the configuration cannot be honoured) is raised as it is."""
    from polypipe.analysis.pipeline_check import require_stages_fit
    from .lower import lower_contraction

    try:
        if config.mma is not None:
            from .gpu_warp import mma_structure

            mma_structure(contraction)
        kernel = lower_contraction(contraction, config, name)
    except ScheduleError as refusal:
        raise _NotAContraction(str(refusal).splitlines()[0]) from None
    # The smallest element: refuse what never fits (float32; tensor cores take 16-bit tiles)
    require_stages_fit(kernel, 2 if config.mma is not None else 4)
    if not prove:
        return kernel, None
    try:
        return _proved(program, kernel)
    except LegalityError as refusal:
        raise _NotAContraction("the proof refused the contraction mapping: "
                               f"{str(refusal).splitlines()[0]}") from None


def _scheduled(program: ir.Program, config: GpuConfig, nest: list, index: int, prove: bool,
               note: str):
    """(kernels, proof or None) of a nest that is not a contraction: isl's schedule of it,
    mapped to kernels and host launches (polypipe.gpu_scheduled), proved if asked.

    Locals no value of which enters or leaves the nest are first tried private to each
    thread (polypipe.gpu_private: symm's ``temp2`` no longer makes its nest one thread); the
    proof accepts that mapping only if every value of them flows inside one thread, else the
    nest is mapped with them shared (one variable in device memory)."""
    from polypipe.analysis.contraction import nest_program
    from polypipe.analysis.dependences import dependences
    from polypipe.analysis.scheduled_proof import NotPrivate
    from .gpu_private import private_candidates

    config.validate()
    sub = nest_program(program, nest)
    deps = dependences(sub)
    private = private_candidates(program, sub, deps) if prove else frozenset()
    if private:
        try:
            return _mapped(program, sub, config, index, deps, note, private)
        except NotPrivate:
            pass
    return _mapped(program, sub, config, index, deps, note, frozenset(), prove)


def _mapped(program, sub, config, index, deps, note, private: frozenset, prove: bool = True):
    """(kernels, proof or None) of ``sub`` under isl's schedule, the ``private`` locals one
    copy per thread (NotPrivate where the proof shows they cannot be)."""
    from polypipe.analysis.scheduled_proof import private_dependences, prove_scheduled
    from polypipe.analysis.scheduling import compute_schedule
    from .gpu_private import live_ranges
    from .gpu_scheduled import lower_scheduled

    if private:
        computed = compute_schedule(sub, private_dependences(deps, private),
                                    live_ranges(deps, private))
    else:
        computed = compute_schedule(sub, deps)
    kernels = lower_scheduled(sub, computed.schedule, config, f"{program.name}_k{index}",
                              index)
    note = (f"not a contraction: {note}; mapped from isl's schedule" if not computed.fallback
            else f"not a contraction: {note}; {computed.fallback}: the source order, in one "
                 "thread")
    kernels = tuple(replace(k, note=note if position == 0 else k.note,
                            private=tuple(sorted(private)))
                    for position, k in enumerate(kernels))
    return kernels, (prove_scheduled(sub, kernels, deps, private) if prove else None)


def _fused(program: ir.Program, config: GpuConfig, merged, index: int, prove: bool):
    """(kernel, proof) of a producer and its consumer as one kernel (``merged``, their
    contraction), or why not (a string)."""
    if not prove:
        return "fusion is applied only when proved, and prove=False"
    try:
        return _built(program, config, merged, f"{program.name}_k{index}", prove)
    except _NotAContraction as refusal:
        return f"the fused kernel is refused: {refusal}"
    except ScheduleError as refusal:
        return f"the fused kernel cannot be built: {str(refusal).splitlines()[0]}"


def _proved(program: ir.Program, kernel):
    """(kernel, proof); a kernel whose grouped fragment ownership the proof refuses is rebuilt
    with strided ownership (``fragment_vector=1``) and proved again.

    While grouped ownership was built, isl's parametric dataflow wrongly refused some kernels
    of the deep, guarded convolution nests (their emulation and proofs at fixed sizes were
    clean); the present schedule proves them, but a refusal of the grouped form must not
    make a nest that the strided form handles unoptimisable. The proof text says which
    ownership was used. A refusal of the rebuilt kernel is raised as it is.
    """
    from polypipe.analysis.gpu_proof import prove_kernel
    from .gpu_pad import proof_view
    from .lower import lower_contraction

    try:
        proof = prove_kernel(program, proof_view(kernel))
        if kernel.config.mma is not None:   # what CUDA prints as ldmatrix and mma.sync
            from polypipe.analysis.pad_proof import prove_padding
            from polypipe.analysis.warp_proof import prove_warp_groups

            summary = "; ".join(filter(None, (prove_warp_groups(kernel),
                                              prove_padding(kernel))))
            proof = replace(proof, warp_groups=summary)
        return kernel, proof
    except LegalityError as refusal:
        if kernel.config.fragment_vectors == (1, 1) or kernel.config.mma is not None:
            raise
        strided = replace(kernel.config, fragment_vector=1)
        rebuilt = lower_contraction(kernel.contraction, strided, kernel.name)
        proof = prove_kernel(program, rebuilt)
        first_line = str(refusal).split(":")[0]
        return rebuilt, replace(proof, note=f"fragment_vector={kernel.config.fragment_vector}"
                                            f" was refused ({first_line}); proved with 1")
