"""How many points a parametric isl set has at concrete sizes, quickly, exactly where possible.

islpy has no symbolic cardinality (isl's ``card`` needs barvinok), and ``count_val`` scans:
its time grows with the points of the set's projection on all but its last dimension (about a
microsecond each here), so a 3-D domain at PolyBench's LARGE sizes (2000^2 outer points per
statement) takes seconds and a launch-by-element footprint of Floyd-Warshall hours. Three
methods, tried in order:

1. **scan**: ``count_val`` at the sizes, when the bounding box of the outer dimensions has at
   most :data:`SCAN_LIMIT` points;
2. **dilation**: the sizes are ``g * q`` for the integer vector ``q`` of the sizes divided by
   their greatest common divisor ``g``; the count of a polytope dilated by ``t`` is a
   polynomial in ``t`` of degree at most the set's dimension (Ehrhart) once the dilation is in
   one chamber, and a quasi-polynomial where floors or strides enter. The count is scanned at
   small dilations, interpolated exactly (rational Lagrange) through ``dimension + 1`` of them,
   and used only if it predicts two further dilations exactly;
3. **box**: the bounding box's volume, an upper bound, marked inexact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Mapping

import islpy as isl

from .bounds import fix_parameters

SCAN_LIMIT = 300_000        # outer points count_val may scan (about 0.3 s)
VALIDATION = 2              # dilations beyond the interpolation points that must agree


@dataclass(frozen=True)
class Count:
    value: int
    method: str               # "scan", "dilation" or "box" (an upper bound)

    @property
    def exact(self) -> bool:
        return self.method != "box"


def count_points(points: isl.UnionSet | isl.Set, params: Mapping[str, int]) -> Count:
    """The number of points of ``points`` at the parameter values ``params`` (see module)."""
    if isinstance(points, isl.Set):
        points = isl.UnionSet.from_set(points)
    names = _param_names(points)
    values = {name: int(params[name]) for name in names}
    at = _fixed(points, values)
    if at.is_empty():
        return Count(0, "scan")
    if _scan_size(at) <= SCAN_LIMIT:
        return Count(_scan(at), "scan")
    fitted = _dilation(points, values)
    if fitted is not None:
        return Count(fitted, "dilation")
    return Count(_box_volume(at), "box")


def _param_names(points: isl.UnionSet) -> list[str]:
    space = points.get_space()
    return [space.get_dim_name(isl.dim_type.param, i)
            for i in range(space.dim(isl.dim_type.param))]


def _fixed(points: isl.UnionSet, values: Mapping[str, int]) -> isl.UnionSet:
    return points.intersect_params(fix_parameters(points.params(), values))


def _pieces(points: isl.UnionSet) -> list[isl.Set]:
    sets: list[isl.Set] = []
    points.foreach_set(sets.append)
    return sets


def _scan(points: isl.UnionSet) -> int:
    return sum(piece.count_val().to_python() for piece in _pieces(points))


def box_extents(piece: isl.Set) -> list[int]:
    """Extent of each dimension of a bounded set with fixed parameters (ValueError where one
    is unbounded)."""
    extents = []
    for dim in range(piece.dim(isl.dim_type.set)):
        low, high = piece.dim_min_val(dim), piece.dim_max_val(dim)
        if not (low.is_int() and high.is_int()):
            raise ValueError("unbounded")
        extents.append(high.to_python() - low.to_python() + 1)
    return extents


def statement_extents(statement, params: Mapping[str, int]) -> tuple:
    """(the statement's domain at these sizes, the extent of each iterator over it): its
    bounding box, 0 along every iterator when the domain is empty."""
    domain = statement.domain.intersect_params(fix_parameters(statement.domain, params))
    if domain.is_empty():
        return domain, {name: 0 for name in statement.iterators}
    return domain, dict(zip(statement.iterators, box_extents(domain)))


def _scan_size(points: isl.UnionSet) -> float:
    """Outer points count_val would scan (all dimensions but the last), summed over pieces;
    infinite for an unbounded piece."""
    total = 0
    for piece in _pieces(points):
        if piece.is_empty():
            continue
        try:
            total += math.prod(box_extents(piece)[:-1])
        except ValueError:
            return math.inf
    return total


def _box_volume(points: isl.UnionSet) -> int:
    return sum(math.prod(box_extents(piece)) for piece in _pieces(points) if not piece.is_empty())


def _dimension(points: isl.UnionSet) -> int:
    return max((piece.dim(isl.dim_type.set) for piece in _pieces(points)), default=0)


def _dilation(points: isl.UnionSet, values: dict[str, int]) -> int | None:
    """The count at ``values`` from a polynomial in the dilation (see module), or None."""
    scale = math.gcd(*values.values()) if values else 0
    if scale <= 1:
        return None
    base = {name: value // scale for name, value in values.items()}
    degree = _dimension(points)
    samples: dict[int, int] = {}
    # Start past tiny sizes (below the chamber where one polynomial holds) and stop if the
    # samples themselves grow beyond what a scan should take.
    start = max(2, -(-4 // max(min(base.values()), 1)))
    for t in range(start, start + degree + 1 + VALIDATION):
        if t >= scale:
            return None          # the sizes themselves are as small: no extrapolation
        at = _fixed(points, {name: q * t for name, q in base.items()})
        if _scan_size(at) > SCAN_LIMIT:
            return None
        samples[t] = _scan(at)
    fit = sorted(samples)[:degree + 1]
    for t in sorted(samples)[degree + 1:]:
        if _interpolate(samples, fit, t) != samples[t]:
            return None
    value = _interpolate(samples, fit, scale)
    return int(value) if value.denominator == 1 and value >= 0 else None


def _interpolate(samples: dict[int, int], nodes: list[int], at: int) -> Fraction:
    """The polynomial through ``(t, samples[t])`` for t in ``nodes``, evaluated at ``at``."""
    total = Fraction(0)
    for i in nodes:
        term = Fraction(samples[i])
        for j in nodes:
            if j != i:
                term *= Fraction(at - j, i - j)
        total += term
    return total
