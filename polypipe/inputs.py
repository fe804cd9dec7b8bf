"""Arguments for a program at given sizes: array extents from isl, seeded random data.

Array dimensions bound to a size parameter take its value; the others get the smallest extent
that holds every element the program touches (``1 + max index`` over all accesses, from isl).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from . import ir
from .errors import ArgumentError


def parse_sizes(text: str) -> dict[str, int]:
    """``"N=64,M=48"`` -> ``{"N": 64, "M": 48}``."""
    sizes: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise ArgumentError(f"size {part!r} must look like NAME=VALUE")
        try:
            sizes[name.strip()] = int(value)
        except ValueError:
            raise ArgumentError(f"size {part!r}: {value!r} is not an integer") from None
    return sizes


def parameter_values(program: ir.Program, sizes: Mapping[str, int]) -> dict[str, int]:
    """Check that ``sizes`` gives every parameter (and nothing else) and return them in order."""
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


def random_arguments(program: ir.Program, sizes: Mapping[str, int], dtype="float64",
                     seed: int = 0, scalars: Mapping[str, float] | None = None) -> list:
    """Seeded random arguments in the function's argument order.

    Float arrays are uniform in [0, 1); integer arrays in [0, 10). Value scalars not given in
    ``scalars`` are drawn uniform in [0.5, 1.5).
    """
    params = parameter_values(program, sizes)
    extents = array_extents(program, params)
    rng = np.random.default_rng(seed)
    scalars = dict(scalars or {})
    args = []
    for arg in program.arguments:
        if arg.kind == "array":
            shape = extents[arg.name]
            if np.dtype(dtype).kind == "f":
                args.append(rng.random(shape).astype(dtype))
            else:
                args.append(rng.integers(0, 10, size=shape).astype(dtype))
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

