"""Arguments for a program at given sizes: array extents from isl, seeded random data.

Array dimensions bound to a size parameter take its value; the others get the smallest extent
that holds every element the program touches (``1 + max index`` over all accesses, from isl).
Before anything is allocated, the bytes the arrays need are compared with the machine's
physical memory (:func:`check_memory`), so a size that cannot fit is refused with the figure
instead of failing with a MemoryError or swapping.
"""

from __future__ import annotations

import math
import os
from typing import Mapping

import numpy as np

from . import ir
from .codegen.value_types import numpy_dtype
from .errors import ArgumentError


def parse_sizes(text: str) -> dict[str, int]:
    """``"N=64,M=48"`` -> ``{"N": 64, "M": 48}``."""
    sizes: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise ArgumentError(f"size {part!r} must look like NAME=VALUE")
        try:
            number = int(value)
        except ValueError:
            raise ArgumentError(f"size {part!r}: {value!r} is not an integer") from None
        if not -2**63 <= number < 2**63:
            raise ArgumentError(f"size {part!r} does not fit in int64")
        sizes[name.strip()] = number
    return sizes


def parameter_values(program: ir.Program, sizes: Mapping[str, int]) -> dict[str, int]:
    """Check that ``sizes`` gives every parameter (and nothing else) and return them in order.

    Sizes may be named as in the Python function or as in the model (where a name isl cannot
    read was renamed, see frontend_names.safe_names)."""
    spelled = {p.spelling: p.name for p in program.parameters}
    sizes = {spelled.get(name, name): value for name, value in sizes.items()}
    names = program.parameter_names
    missing = [n for n in names if n not in sizes]
    unknown = [n for n in sizes if n not in names]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown {', '.join(unknown)}")
        raise ArgumentError(f"sizes for {program.name}: {'; '.join(parts)} (its parameters are "
                            f"{', '.join(names) or 'none'})")
    for name in names:
        if sizes[name] < 0 and any(p.name == name and p.source[0] == "shape"
                                   for p in program.parameters):
            raise ArgumentError(f"size {name}={sizes[name]} is negative")
    return {name: sizes[name] for name in names}


def array_extents(program: ir.Program, params: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """The extent of every argument array at these parameter values."""
    from polypipe.analysis.bounds import fix_parameters

    extents: dict[str, tuple[int, ...]] = {}
    for array in program.arrays:
        if array.is_local:
            continue
        needed = [0] * array.rank
        for stmt in program.statements:
            for access in stmt.accesses:
                if access.array != array.name:
                    continue
                touched = access.relation.intersect_params(
                    fix_parameters(access.relation, params)).range()
                if touched.is_empty():
                    continue
                for dim in range(array.rank):
                    top = touched.dim_max_val(dim).to_python()
                    needed[dim] = max(needed[dim], top + 1)
        # An array used only for its shape holds no data the kernel reads: extent 1 will do.
        shape = tuple(params[bound] if bound is not None else
                      needed[dim] if array.accessed else 1
                      for dim, bound in enumerate(array.shape))
        extents[array.name] = shape
    return extents


def dtype_of(dtype, name: str) -> str:
    """The element type of array ``name`` under ``dtype``: one name for every array, or a
    mapping of array names with ``"*"`` for the others (``{"*": "float16", "C": "float32"}``:
    16-bit inputs of a float32 result)."""
    if isinstance(dtype, str):
        return dtype
    return dtype.get(name, dtype["*"])


def dtype_text(dtype) -> str:
    """``float16`` or ``float16, C=float32`` (see :func:`dtype_of`)."""
    if isinstance(dtype, str):
        return dtype
    return ", ".join([dtype["*"]] + [f"{n}={d}" for n, d in dtype.items() if n != "*"])


def array_bytes(program: ir.Program, params: Mapping[str, int], dtype="float64"
                ) -> dict[str, int]:
    """Bytes of every argument array at these parameter values, with elements of ``dtype``
    (see :func:`dtype_of`)."""
    return {name: math.prod(max(extent, 0) for extent in shape)
            * numpy_dtype(dtype_of(dtype, name)).itemsize
            for name, shape in array_extents(program, params).items()}


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (None where the OS does not say)."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def _bytes_text(count: int) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count:,} bytes ({count / scale:.1f} {unit})"
    return f"{count:,} bytes"


def check_memory(program: ir.Program, sizes: Mapping[str, int], dtype="float64",
                 copies: int = 1, limit: int | None = None) -> int:
    """Refuse sizes whose arrays (``copies`` sets of them) exceed physical memory.

    Returns the bytes of one set of arrays. ``limit`` defaults to :func:`physical_memory`;
    raises :class:`ArgumentError` naming the bytes needed, array by array.
    """
    params = parameter_values(program, sizes)
    per_array = array_bytes(program, params, dtype)
    total = sum(per_array.values())
    limit = physical_memory() if limit is None else limit
    if limit is not None and total * copies > limit:
        shown = ", ".join(f"{name} {_bytes_text(count)}" for name, count in per_array.items())
        held = (f"; {copies} copies of them are held, {_bytes_text(total * copies)}"
                if copies > 1 else "")
        at = ", ".join(f"{name}={value}" for name, value in params.items())
        raise ArgumentError(f"the arrays of {program.name} at {at} ({dtype_text(dtype)}) need "
                            f"{_bytes_text(total)} ({shown}){held}: more than the "
                            f"{_bytes_text(limit)} of physical memory on this machine; "
                            "choose smaller sizes")
    return total


def random_arguments(program: ir.Program, sizes: Mapping[str, int], dtype="float64",
                     seed: int = 0, scalars: Mapping[str, float] | None = None) -> list:
    """Seeded random arguments in the function's argument order.

    ``dtype`` is one element type or one per array (:func:`dtype_of`). Float arrays are
    uniform in [0, 1); integer arrays in [0, 10). Value scalars not given in
    ``scalars`` are drawn uniform in [0.5, 1.5). Sizes whose arrays cannot fit in physical
    memory are refused before anything is allocated (:func:`check_memory`).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ArgumentError(f"seed {seed!r} must be an integer >= 0")
    params = parameter_values(program, sizes)
    check_memory(program, params, dtype)
    extents = array_extents(program, params)
    rng = np.random.default_rng(seed)
    scalars = dict(scalars or {})
    args = []
    for arg in program.arguments:
        if arg.kind == "array":
            shape = extents[arg.name]
            element = numpy_dtype(dtype_of(dtype, arg.name))
            if element.kind == "i":
                args.append(rng.integers(0, 10, size=shape).astype(element))
            else:   # the floats, bfloat16 (NumPy kind "V") among them
                args.append(rng.random(shape).astype(element))
        elif arg.kind == "param":
            args.append(params[arg.name])
        elif arg.kind == "unused":
            args.append(None)
        else:
            args.append(float(scalars.get(arg.name, rng.uniform(0.5, 1.5))))
    return args


def written_arrays(program: ir.Program) -> list[str]:
    """Argument arrays the program writes, in argument order."""
    written = {s.target.array for s in program.statements}
    return [a.name for a in program.arguments if a.kind == "array" and a.name in written]

