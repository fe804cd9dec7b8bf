"""``@polypipe.kernel``: a Python loop nest that also runs as compiled code.

The decorated function keeps its meaning: ``kernel.python(*args)`` is the original function.
Calling the kernel binds the arguments to the model (checking ranks, dtypes, layout and, with
isl, that every access stays inside its array), specialises the program to the argument dtypes,
and runs it on a backend, in place, like the Python function.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any, Callable

from . import ir
from .binding import Binding, bind_arguments, call_key, positional  # noqa: F401
from .errors import ArgumentError, deep_nesting, public
from .frontend import build_program

BACKENDS = ("c", "python")


class Kernel:
    """A loop-nest function together with its polyhedral model.

    >>> @kernel
    ... def scale(alpha, x):
    ...     N = len(x)
    ...     for i in range(N):
    ...         x[i] *= alpha
    """

    @public
    def __init__(self, func: Callable):
        self.python = func
        self.program: ir.Program = build_program(func)
        self._spellings = {a.spelling for a in self.program.arguments}
        self._executables: dict[tuple, Any] = {}
        self._checked_sizes: set[tuple] = set()
        self._seen: dict[tuple, Any] = {}
        functools.update_wrapper(self, func)

    def __repr__(self) -> str:
        return f"<polypipe.kernel {self.program.name}>"

    def __call__(self, *args, **kwargs) -> None:
        # ``backend=`` picks the backend, unless the function has an argument of that name.
        backend = "c"
        if "backend" in kwargs and "backend" not in self._spellings:
            backend = kwargs.pop("backend")
        if backend == "python":       # the user's function, with whatever it raises
            self.python(*args, **kwargs)
            return
        self._run(args, kwargs, backend)

    @public
    def _run(self, args: tuple, kwargs: dict, backend) -> None:
        if backend != "c":
            raise ArgumentError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
        if kwargs:
            args = positional(self.program, args, kwargs)
        # Fast path: arguments that look exactly like an earlier call's (everything the checks
        # depend on, integer values included) reuse its checks and executable.
        key = call_key(args)
        executable = self._seen.get(key) if key is not None else None
        if executable is None:
            executable = self._prepare(args)
            if len(self._seen) >= 256:  # varying int arguments must not grow this forever
                self._seen.clear()
            if key is not None:
                self._seen[key] = executable
        executable.run(args)

    def reference(self, *args, **kwargs) -> Any:
        """Run the original Python function (the reference semantics)."""
        return self.python(*args, **kwargs)

    def _prepare(self, args: tuple):
        binding = bind_arguments(self.program, args)
        executable = self._executables.get(binding.signature)
        if executable is None:
            executable = CpuExecutable.build(self.program, binding)
            self._executables[binding.signature] = executable
        sizes = (tuple(binding.params.items()), tuple(binding.extents.items()))
        if sizes not in self._checked_sizes:
            check_sizes(self.program, binding, executable.index_tree)
            self._checked_sizes.add(sizes)
        return executable

    @public
    def c_source(self, *args, **kwargs) -> str:
        """The C translation unit generated for these arguments' dtypes."""
        return self._prepare(positional(self.program, args, kwargs)).source


def check_sizes(program: ir.Program, binding: Binding, index_tree: tuple) -> None:
    """Everything that depends on the sizes: no access leaves its array (isl) and the loop
    code's integers fit int64 (ArgumentError). A local read before any assignment is a fault
    of the kernel at that instance (codegen.ast_build), raised in source order."""
    from polypipe.analysis.bounds import check_access_bounds
    from polypipe.codegen.index_range import check_index_range

    check_access_bounds(program, binding.params, binding.extents)
    check_index_range(index_tree, binding.params, program.name)


class ArgumentPacker:
    """Packs call arguments into the generated function's three arrays (see KernelABI)."""

    def __init__(self, program: ir.Program, abi):
        names = [a.name for a in program.arguments]
        # Which argument fills each slot: array pointers, then (argument, dimension or None)
        # for every integer, then the float scalars. The CUDA launcher reads them too.
        self.array_slots = [names.index(n) for n in abi.arrays]
        layout = [(names.index(a), d) for a, d in abi.extents]
        for name in abi.params:
            source = program.parameters[program.parameter_names.index(name)].source
            layout.append((names.index(source[1]), source[2]) if source[0] == "shape"
                          else (names.index(name), None))
        layout += [(names.index(n), None) for n in abi.int_scalars]
        self.int_getters = layout
        self.float_slots = [names.index(n) for n in abi.float_scalars]
        self._pointer_type = ctypes.c_void_p * max(len(self.array_slots), 1)
        self._int_type = ctypes.c_int64 * max(len(self.int_getters), 1)
        self._float_type = ctypes.c_double * max(len(self.float_slots), 1)

    def pack(self, args: tuple):
        pointers = self._pointer_type(
            *[args[slot].__array_interface__["data"][0] for slot in self.array_slots])
        ints = self._int_type(*[(args[slot].shape[dim] if dim is not None else int(args[slot]))
                                for slot, dim in self.int_getters])
        floats = self._float_type(*[float(args[slot]) for slot in self.float_slots])
        return pointers, ints, floats


class CpuExecutable:
    """A program compiled for one dtype signature, callable with matching arguments."""

    def __init__(self, program: ir.Program, source: str, abi, function, index_tree: tuple):
        self.program = program
        self.source = source
        self.abi = abi
        self.function = function
        self.index_tree = index_tree
        self.packer = ArgumentPacker(program, abi)

    @classmethod
    def build(cls, program: ir.Program, binding: Binding) -> "CpuExecutable":
        with deep_nesting(program.name):
            return cls._build(program, binding)

    @classmethod
    def _build(cls, program: ir.Program, binding: Binding) -> "CpuExecutable":
        from polypipe.analysis.bounds import unassigned_local_reads
        from polypipe.codegen.ast_build import build_ast
        from polypipe.codegen.c_printer import CPrinter, kernel_abi
        from polypipe.codegen.cpu import load_kernel
        from polypipe.codegen.index_range import index_tree
        from polypipe.codegen.value_types import TypeEnv

        typed = program.with_dtypes(dict(binding.dtypes))
        scalar_types = dict(binding.scalar_types)
        types = TypeEnv(typed, scalar_types)
        types.decide_locals()
        abi = kernel_abi(typed, scalar_types)
        unbound = {stmt.name: instances for stmt, instances in unassigned_local_reads(program)}
        ast = build_ast(typed, unbound=unbound)
        source = CPrinter(typed, types, abi).translation_unit(ast)
        return cls(typed, source, abi, load_kernel(source), index_tree(ast))

    def run(self, args: tuple) -> None:
        from polypipe.codegen.semantics import check_fault_record
        from polypipe.codegen.value_printer import FAULT_SLOTS

        record = (ctypes.c_int64 * FAULT_SLOTS)()
        self.function(*self.packer.pack(args), record)
        if record[0] or record[2]:
            check_fault_record(self.program, record, in_source_order=True)


def kernel(func: Callable) -> Kernel:
    """Decorator: build the polyhedral model of a loop-nest function.

    The function must stay within polypipe's subset (README.md, "The subset"); anything else raises
    :class:`~polypipe.errors.FrontendError` here, at decoration time.
    """
    return Kernel(func)
