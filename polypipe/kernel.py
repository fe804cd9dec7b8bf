"""``@polypipe.kernel``: a Python loop nest that also runs as compiled code.

The decorated function keeps its meaning: ``kernel.python(*args)`` is the original function.
Calling the kernel binds the arguments to the model (checking ranks, dtypes, layout and, with
isl, that every access stays inside its array), specialises the program to the argument dtypes,
and runs it on a backend, in place, like the Python function.
"""

from __future__ import annotations

import ctypes
import functools
import numbers
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import ir
from .errors import ArgumentError, PolypipeError
from .frontend import build_program

BACKENDS = ("c", "python")


@dataclass(frozen=True)
class Binding:
    """Concrete arguments matched against a program."""

    params: dict[str, int]
    extents: dict[str, tuple[int, ...]]
    dtypes: tuple[tuple[str, str], ...]          # (array, dtype)
    scalar_types: tuple[tuple[str, Any], ...]    # (scalar, VType)

    @property
    def signature(self) -> tuple:
        return (self.dtypes, self.scalar_types)


def scalar_vtype(name: str, value: Any):
    from polypipe.codegen.value_types import WEAK_FLOAT, WEAK_INT, from_dtype

    if isinstance(value, (bool, np.bool_)):
        return WEAK_INT
    if isinstance(value, np.generic):
        dtype = value.dtype.name
        if dtype in ("float32", "float64", "int32", "int64"):
            return from_dtype(dtype)
        raise ArgumentError(f"scalar argument `{name}` has NumPy type {dtype}; supported are "
                            "float32, float64, int32 and int64 scalars and Python numbers")
    if isinstance(value, numbers.Integral):
        return WEAK_INT
    if isinstance(value, numbers.Real):
        return WEAK_FLOAT
    raise ArgumentError(f"argument `{name}` must be a number, got {type(value).__name__}")


def _device_array(value):
    """(dtype name, shape, C-contiguous) of a GPU array (``__cuda_array_interface__``)."""
    interface = getattr(value, "__cuda_array_interface__", None)
    if interface is None:
        return None
    dtype = np.dtype(interface["typestr"])
    shape = tuple(interface["shape"])
    strides = interface.get("strides")
    contiguous = strides is None or not all(shape) or tuple(strides) == _c_strides(
        shape, dtype.itemsize)
    return dtype.name, shape, contiguous


def _c_strides(shape: tuple, itemsize: int) -> tuple:
    """Byte strides of a C-contiguous array of this shape."""
    strides, step = [], itemsize
    for extent in reversed(shape):
        strides.insert(0, step)
        step *= extent
    return tuple(strides)


def bind_arguments(program: ir.Program, args: tuple, device_arrays: bool = False) -> Binding:
    """Check ``args`` against ``program`` and extract sizes and types (raises ArgumentError).

    With ``device_arrays``, GPU arrays (``__cuda_array_interface__``) are accepted too.
    """
    from polypipe.codegen.value_types import SUPPORTED_DTYPES

    expected = [a.name for a in program.arguments]
    if len(args) != len(expected):
        raise ArgumentError(f"{program.name}() takes {len(expected)} arguments "
                            f"({', '.join(expected)}), got {len(args)}")
    by_name = dict(zip(expected, args))
    written = {s.target.array for s in program.statements}
    extents: dict[str, tuple[int, ...]] = {}
    dtypes = []
    for array in program.arrays:
        if array.is_local:
            continue
        value = by_name[array.name]
        if not array.accessed:
            shape = getattr(value, "shape", None)
            if shape is None or len(shape) < array.rank:
                raise ArgumentError(f"argument `{array.name}` must be an array with at least "
                                    f"{array.rank} dimension(s) (its shape gives sizes)")
            extents[array.name] = tuple(shape)
            continue
        device = _device_array(value) if device_arrays else None
        if device is not None:
            dtype, shape, contiguous = device
            if len(shape) != array.rank or dtype not in SUPPORTED_DTYPES or not contiguous:
                raise ArgumentError(f"GPU argument `{array.name}` must be a C-contiguous "
                                    f"{array.rank}-D array of {', '.join(SUPPORTED_DTYPES)}; "
                                    f"got {dtype} of shape {shape}")
            extents[array.name] = shape
            dtypes.append((array.name, dtype))
            continue
        if not isinstance(value, np.ndarray):
            raise ArgumentError(f"argument `{array.name}` must be a NumPy array (it is "
                                f"subscripted in {program.name}), got {type(value).__name__}")
        if value.ndim != array.rank:
            raise ArgumentError(f"argument `{array.name}` must have {array.rank} dimension(s), "
                                f"got an array of shape {value.shape}")
        if value.dtype.name not in SUPPORTED_DTYPES:
            raise ArgumentError(f"argument `{array.name}` has dtype {value.dtype}; supported "
                                f"are {', '.join(SUPPORTED_DTYPES)}")
        if not value.flags.c_contiguous:
            raise ArgumentError(f"argument `{array.name}` is not C-contiguous (a transposed "
                                "view or a strided slice?); pass np.ascontiguousarray(...) and "
                                "copy the result back")
        if array.name in written and not value.flags.writeable:
            raise ArgumentError(f"argument `{array.name}` is written by {program.name} but is "
                                "read-only")
        extents[array.name] = tuple(value.shape)
        dtypes.append((array.name, value.dtype.name))
    params: dict[str, int] = {}
    for param in program.parameters:
        if param.source[0] == "shape":
            params[param.name] = extents[param.source[1]][param.source[2]]
        else:
            value = by_name[param.name]
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
                raise ArgumentError(f"argument `{param.name}` is a size (used in a loop bound, "
                                    f"subscript or condition) and must be an int, got "
                                    f"{type(value).__name__}")
            params[param.name] = int(value)
    scalars = tuple((arg.name, scalar_vtype(arg.name, by_name[arg.name]))
                    for arg in program.arguments if arg.kind == "scalar")
    return Binding(params, extents, tuple(dtypes), scalars)


class Kernel:
    """A loop-nest function together with its polyhedral model.

    >>> @kernel
    ... def scale(alpha, x):
    ...     N = len(x)
    ...     for i in range(N):
    ...         x[i] *= alpha
    """

    def __init__(self, func: Callable):
        self.python = func
        self.program: ir.Program = build_program(func)
        self._executables: dict[tuple, Any] = {}
        self._checked_sizes: set[tuple] = set()
        self._seen: dict[tuple, Any] = {}
        functools.update_wrapper(self, func)

    def __repr__(self) -> str:
        return f"<polypipe.kernel {self.program.name}>"

    def __call__(self, *args, backend: str = "c") -> None:
        if backend == "python":
            self.python(*args)
            return
        if backend != "c":
            raise PolypipeError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
        # Fast path: arguments that look exactly like an earlier call's (dtypes, shapes,
        # layout flags, scalar types, integer values) reuse its checks and executable.
        key = tuple([(a.dtype, a.shape, a.flags.num) if type(a) is np.ndarray
                     else (type(a), a if isinstance(a, int) else None) for a in args])
        executable = self._seen.get(key)
        if executable is None:
            executable = self._prepare(args)
            if len(self._seen) >= 256:  # varying int scalars must not grow this forever
                self._seen.clear()
            self._seen[key] = executable
        executable.run(args)

    def reference(self, *args) -> Any:
        """Run the original Python function (the reference semantics)."""
        return self.python(*args)

    def _prepare(self, args: tuple):
        binding = bind_arguments(self.program, args)
        sizes = (tuple(binding.params.items()), tuple(binding.extents.items()))
        if sizes not in self._checked_sizes:
            from polypipe.analysis.bounds import check_access_bounds

            check_access_bounds(self.program, binding.params, binding.extents)
            self._checked_sizes.add(sizes)
        executable = self._executables.get(binding.signature)
        if executable is None:
            executable = CpuExecutable.build(self.program, binding)
            self._executables[binding.signature] = executable
        return executable

    def c_source(self, *args) -> str:
        """The C translation unit generated for these arguments' dtypes."""
        return self._prepare(args).source


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

    def __init__(self, program: ir.Program, source: str, abi, function):
        self.program = program
        self.source = source
        self.abi = abi
        self.function = function
        self.packer = ArgumentPacker(program, abi)

    @classmethod
    def build(cls, program: ir.Program, binding: Binding) -> "CpuExecutable":
        from polypipe.codegen.ast_build import build_ast
        from polypipe.codegen.c_printer import CPrinter, kernel_abi
        from polypipe.codegen.cpu import load_kernel
        from polypipe.codegen.value_types import TypeEnv

        typed = program.with_dtypes(dict(binding.dtypes))
        scalar_types = dict(binding.scalar_types)
        types = TypeEnv(typed, scalar_types)
        abi = kernel_abi(typed, scalar_types)
        source = CPrinter(typed, types, abi).translation_unit(build_ast(typed))
        return cls(typed, source, abi, load_kernel(source))

    def run(self, args: tuple) -> None:
        self.function(*self.packer.pack(args))


def kernel(func: Callable) -> Kernel:
    """Decorator: build the polyhedral model of a loop-nest function.

    The function must stay within polypipe's subset (DESIGN.md 1.1); anything else raises
    :class:`~polypipe.errors.FrontendError` here, at decoration time.
    """
    return Kernel(func)
