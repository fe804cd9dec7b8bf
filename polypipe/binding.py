"""Call arguments matched against a program: every check a kernel call depends on.

:func:`bind_arguments` refuses, with :class:`ArgumentError`, anything the generated code could
not read correctly or safely: arrays of an unsupported dtype, byte order or alignment, arrays
that are not C-contiguous, read-only arrays the kernel writes, sizes that are not integers or
do not fit int64, scalars of types polypipe does not model. What it accepts is described by a
:class:`Binding` (sizes, extents, dtypes, scalar types), from which the bounds proof, the
index-range check and code generation work.

:func:`call_key` is the fast path's key: everything the checks depend on (types, dtypes with
their byte order, shapes, flags, and the value of every integer), so a call whose key was seen
before may reuse that call's checks and compiled code.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import ir
from .errors import ArgumentError

INT64_MIN, INT64_MAX = -2**63, 2**63 - 1


@dataclass(frozen=True)
class Binding:
    """Concrete arguments matched against a program."""

    params: dict[str, int]
    extents: dict[str, tuple[int, ...]]
    dtypes: tuple[tuple[str, str], ...]          # (array, dtype)
    scalar_types: tuple[tuple[str, Any], ...]    # (scalar or size argument, VType)

    @property
    def signature(self) -> tuple:
        return (self.dtypes, self.scalar_types)


def positional(program: ir.Program, args: tuple, kwargs: dict) -> tuple:
    """``args`` and ``kwargs`` as one positional tuple, bound the way Python binds them."""
    names = [a.spelling for a in program.arguments]
    if len(args) > len(names):
        raise ArgumentError(f"{program.name}() takes {len(names)} arguments "
                            f"({', '.join(names)}), got {len(args)}")
    if not kwargs:
        if len(args) < len(names):
            raise ArgumentError(f"{program.name}() takes {len(names)} arguments "
                                f"({', '.join(names)}), got {len(args)}")
        return args
    for name in kwargs:
        if name not in names:
            raise ArgumentError(f"{program.name}() got an unexpected keyword argument "
                                f"{name!r} (its arguments: {', '.join(names)})")
        if names.index(name) < len(args):
            raise ArgumentError(f"{program.name}() got multiple values for argument {name!r}")
    missing = [n for n in names[len(args):] if n not in kwargs]
    if missing:
        raise ArgumentError(f"{program.name}() is missing argument(s) {', '.join(missing)}")
    return tuple(args) + tuple(kwargs[n] for n in names[len(args):])


def call_key(args: tuple):
    """The fast path's key for these arguments (None when one of them cannot be keyed)."""
    parts = []
    for arg in args:
        if isinstance(arg, np.ndarray):
            parts.append((type(arg), arg.dtype, arg.shape, arg.flags.num))
        elif isinstance(arg, (int, np.integer)):      # bools included: their value counts
            parts.append((type(arg), int(arg)))
        elif isinstance(arg, (float, np.floating)):
            parts.append((type(arg),))
        else:
            shape = getattr(arg, "shape", None)
            parts.append((type(arg), shape if isinstance(shape, tuple) else None))
    key = tuple(parts)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def scalar_vtype(name: str, value: Any):
    """The value type of a scalar argument (ArgumentError for types polypipe does not model)."""
    from polypipe.codegen.value_types import WEAK_BOOL, WEAK_FLOAT, WEAK_INT, from_dtype

    if isinstance(value, np.bool_):
        raise ArgumentError(f"scalar argument `{name}` is a NumPy bool, whose arithmetic "
                            "differs from Python's (True + True is True); pass bool(value)")
    if isinstance(value, bool):
        return WEAK_BOOL
    if isinstance(value, np.generic):
        dtype = value.dtype.name
        if dtype in ("float32", "float64", "int32", "int64"):
            return from_dtype(dtype)
        raise ArgumentError(f"scalar argument `{name}` has NumPy type {dtype}; supported are "
                            "float32, float64, int32 and int64 scalars and Python numbers")
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ArgumentError(f"scalar argument `{name}` = {value} does not fit in int64, "
                                "the integers polypipe computes with")
        return WEAK_INT
    if isinstance(value, float):
        return WEAK_FLOAT
    kind = "a number of another type" if isinstance(value, numbers.Number) else "not a number"
    raise ArgumentError(f"argument `{name}` must be a Python int, float or bool or a NumPy "
                        f"scalar; got {type(value).__name__} ({kind})")


def size_value(name: str, value: Any) -> int:
    """A size argument as an int: an integer (not a bool) that fits int64."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ArgumentError(f"argument `{name}` is a size (used in a loop bound, subscript or "
                            f"condition) and must be an int, got {type(value).__name__}")
    number = int(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise ArgumentError(f"size `{name}` = {number} does not fit in int64")
    return number


def _device_array(value):
    """(dtype, shape, C-contiguous, data address) of a GPU array (``__cuda_array_interface__``)."""
    interface = getattr(value, "__cuda_array_interface__", None)
    if interface is None:
        return None
    dtype = np.dtype(interface["typestr"])
    shape = tuple(interface["shape"])
    strides = interface.get("strides")
    contiguous = strides is None or not all(shape) or tuple(strides) == _c_strides(
        shape, dtype.itemsize)
    return dtype, shape, contiguous, interface["data"][0]


def _c_strides(shape: tuple, itemsize: int) -> tuple:
    """Byte strides of a C-contiguous array of this shape."""
    strides, step = [], itemsize
    for extent in reversed(shape):
        strides.insert(0, step)
        step *= extent
    return tuple(strides)


def _check_dtype(name: str, dtype: np.dtype, where: str = "") -> None:
    from polypipe.codegen.value_types import SUPPORTED_DTYPES

    if dtype.name not in SUPPORTED_DTYPES:
        raise ArgumentError(f"{where}argument `{name}` has dtype {dtype}; supported are "
                            f"{', '.join(SUPPORTED_DTYPES)}")
    if not dtype.isnative:
        raise ArgumentError(f"{where}argument `{name}` has non-native byte order ({dtype.str}); "
                            f"pass `{name}.astype({name}.dtype.newbyteorder('='))`")


def _overrides_indexing(cls: type) -> bool:
    """An ndarray subclass whose element access is not the array's memory (a masked array,
    np.matrix, a class that checks or remaps subscripts); np.memmap reads memory as it is."""
    if issubclass(cls, np.memmap):
        return False
    return (cls.__getitem__ is not np.ndarray.__getitem__
            or cls.__setitem__ is not np.ndarray.__setitem__)


def _array_extents(program: ir.Program, array: ir.Array, value, written: set,
                   device_arrays: bool) -> tuple[tuple[int, ...], str | None]:
    """(extents, dtype name) of one array argument, after every check."""
    name = array.name
    if not array.accessed:
        shape = getattr(value, "shape", None)
        if not isinstance(shape, tuple) or len(shape) < array.rank or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
                for d in shape):
            raise ArgumentError(f"argument `{name}` must be an array with at least "
                                f"{array.rank} dimension(s) (its shape gives sizes)")
        return tuple(int(d) for d in shape), None
    device = _device_array(value) if device_arrays else None
    if device is not None:
        dtype, shape, contiguous, address = device
        _check_dtype(name, dtype, "GPU ")
        if len(shape) != array.rank or not contiguous or address % dtype.itemsize:
            raise ArgumentError(f"GPU argument `{name}` must be a C-contiguous "
                                f"{array.rank}-D array aligned to its elements; got {dtype} of "
                                f"shape {shape}")
        return shape, dtype.name
    if not isinstance(value, np.ndarray):
        raise ArgumentError(f"argument `{name}` must be a NumPy array (it is subscripted in "
                            f"{program.name}), got {type(value).__name__}")
    if _overrides_indexing(type(value)):
        raise ArgumentError(f"argument `{name}` is a {type(value).__name__}, whose indexing "
                            "differs from a plain array's, but compiled code reads the "
                            f"array's memory; pass np.asarray({name}) (or the data you mean)")
    if value.ndim != array.rank:
        raise ArgumentError(f"argument `{name}` must have {array.rank} dimension(s), got an "
                            f"array of shape {value.shape}")
    _check_dtype(name, value.dtype)
    if not value.flags.c_contiguous:
        raise ArgumentError(f"argument `{name}` is not C-contiguous (a transposed view or a "
                            "strided slice?); pass np.ascontiguousarray(...) and copy the "
                            "result back")
    if not value.flags.aligned:
        raise ArgumentError(f"argument `{name}` is not aligned to its {value.dtype.itemsize}-"
                            "byte elements (a view into a byte buffer at an odd offset?); "
                            "pass a copy")
    if name in written and not value.flags.writeable:
        raise ArgumentError(f"argument `{name}` is written by {program.name} but is read-only")
    return tuple(value.shape), value.dtype.name


def bind_arguments(program: ir.Program, args: tuple, device_arrays: bool = False) -> Binding:
    """Check ``args`` against ``program`` and extract sizes and types (raises ArgumentError).

    With ``device_arrays``, GPU arrays (``__cuda_array_interface__``) are accepted too.
    """
    args = positional(program, tuple(args), {})
    by_name = dict(zip([a.name for a in program.arguments], args))
    written = {s.target.array for s in program.statements}
    extents: dict[str, tuple[int, ...]] = {}
    dtypes = []
    for array in program.arrays:
        if array.is_local:
            continue
        shape, dtype = _array_extents(program, array, by_name[array.name], written,
                                      device_arrays)
        extents[array.name] = shape
        if dtype is not None:
            dtypes.append((array.name, dtype))
    params: dict[str, int] = {}
    for param in program.parameters:
        if param.source[0] == "shape":
            params[param.name] = extents[param.source[1]][param.source[2]]
        else:
            params[param.name] = size_value(param.name, by_name[param.name])
    scalars = tuple((arg.name, scalar_vtype(arg.name, by_name[arg.name]))
                    for arg in program.arguments if arg.kind == "scalar")
    sizes = tuple((arg.name, size_vtype(program, arg.name, by_name[arg.name]))
                  for arg in program.arguments if arg.kind == "param")
    return Binding(params, extents, tuple(dtypes), scalars + sizes)


def size_vtype(program: ir.Program, name: str, value):
    """The value type of a size argument where the body uses it as a value: a Python int is
    weak, a NumPy integer strong (``M // i`` with ``M = np.int64(2)`` is NumPy's division)."""
    from polypipe.codegen.value_types import WEAK_INT, from_dtype

    if not isinstance(value, np.integer):
        return WEAK_INT
    if value.dtype.name in ("int32", "int64"):
        return from_dtype(value.dtype.name)
    used = any(isinstance(node, ir.ParamRef) and node.name == name
               for stmt in program.statements for node in ir.walk_expr(stmt.value))
    if used:
        raise ArgumentError(f"size `{name}` is a NumPy {value.dtype.name} and the kernel "
                            "computes with it; polypipe models int32 and int64 NumPy integers: "
                            f"pass int({name}) or np.int64({name})")
    return WEAK_INT


def _memory_range(value) -> tuple[int, int] | None:
    """[start, end) of the bytes an array argument occupies (None: not an array or empty)."""
    if isinstance(value, np.ndarray):
        start = value.__array_interface__["data"][0]
        return (start, start + value.nbytes) if value.nbytes else None
    device = _device_array(value)
    if device is not None:
        dtype, shape, _, start = device
        size = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        return (start, start + size) if size else None
    return None


def refuse_aliasing(program: ir.Program, args: tuple, backend: str) -> None:
    """ArgumentError when two array arguments share memory and one of them is written.

    The GPU kernels run instances out of source order and were proved for distinct arrays, so
    an overlap could change the result; the CPU backend runs the source order and needs no
    such check. Arrays that are only read may be the same (``A @ A``).
    """
    written = {s.target.array for s in program.statements}
    arrays = [(arg.name, value) for arg, value in zip(program.arguments, args)
              if arg.kind == "array" and program.array(arg.name).accessed]
    ranges = [(name, _memory_range(value)) for name, value in arrays]
    for index, (first, first_range) in enumerate(ranges):
        for second, second_range in ranges[index + 1:]:
            if first_range is None or second_range is None:
                continue
            overlap = first_range[0] < second_range[1] and second_range[0] < first_range[1]
            if overlap and (first in written or second in written):
                raise ArgumentError(
                    f"arguments `{first}` and `{second}` share memory and {program.name} "
                    f"writes {first if first in written else second}; backend={backend!r} runs "
                    "the kernel out of source order, proved for distinct arrays: pass a copy "
                    "(the CPU backend, kernel(...), runs aliased arrays as Python does)")
