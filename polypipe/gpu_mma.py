"""Tensor-core fragments as isl maps: which lane and register of a warp holds which element.

``mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32`` multiplies a 16x16 tile
of A by a 16x8 tile of B into a 16x8 tile of float32 C, the tiles spread over the registers
of the 32 lanes of a warp as the PTX ISA defines ("Matrix Fragments for mma.m16n8k16 with
floating point type"). With ``g = lane div 4`` (the group) and ``t = lane mod 4`` (the thread
in the group), element ``i`` of a lane's fragment is:

* A (8 halves, 4 registers): row ``g + 8 ((i div 2) mod 2)``, column ``2 t + i mod 2 + 8 (i div 4)``;
* B (4 halves, 2 registers): row (k) ``2 t + i mod 2 + 8 (i div 2)``, column (n) ``g``;
* C and D (4 floats): row ``g + 8 (i div 2)``, column ``2 t + i mod 2``.

``ldmatrix.sync.aligned.m8n8.x{1,2,4}.shared.b16`` loads one to four 8x8 matrices of 16-bit
elements, lane ``8 j + r`` giving the address of row ``r`` of matrix ``j``; element ``h`` of
register ``j`` of a lane is row ``lane div 4``, column ``2 (lane mod 4) + h`` of matrix ``j``
(with ``.trans``, row and column swapped). Which 8x8 piece of a fragment's tile each matrix
is (:data:`A_PIECES`, :data:`B_PIECES`) makes ``ldmatrix`` deliver exactly the fragment
``mma`` reads; :func:`ldmatrix_fragment` composes the two and the tests prove the equality
with isl rather than by example.

Every map here is ``{ F[lane, i] -> T[row, col] }`` with ``i`` the element of the lane's
fragment in register order (two 16-bit elements per 32-bit register, the lower first).
"""

from __future__ import annotations

from dataclasses import dataclass

import islpy as isl

from .errors import InternalError

WARP = 32


@dataclass(frozen=True)
class MmaShape:
    """One tensor-core instruction shape: D[m, n] = A[m, k] B[k, n] + C[m, n] per warp."""

    name: str
    m: int
    n: int
    k: int
    a_elements: int          # per lane
    b_elements: int
    c_elements: int


M16N8K16 = MmaShape("m16n8k16", 16, 8, 16, a_elements=8, b_elements=4, c_elements=4)
SHAPES = {M16N8K16.name: M16N8K16}

_GROUP, _IN_GROUP = "floor(lane/4)", "(lane mod 4)"

# The PTX ISA's fragment layouts of m16n8k16 (floating point types), element i of a lane.
_FRAGMENTS = {
    "a": (f"{_GROUP} + 8*(floor(i/2) mod 2)", f"2*{_IN_GROUP} + (i mod 2) + 8*floor(i/4)"),
    "b": (f"2*{_IN_GROUP} + (i mod 2) + 8*floor(i/2)", _GROUP),
    "c": (f"{_GROUP} + 8*floor(i/2)", f"2*{_IN_GROUP} + (i mod 2)"),
}


def fragment_terms(operand: str) -> tuple[str, str]:
    """The (row, column) of element ``i`` of ``lane``'s fragment of operand ``"a"``, ``"b"``
    or ``"c"`` of m16n8k16, as isl expressions in ``lane`` and ``i``."""
    if operand not in _FRAGMENTS:
        raise InternalError(f"no fragment layout for operand {operand!r}")
    return _FRAGMENTS[operand]


def fragment_map(operand: str, shape: MmaShape = M16N8K16) -> isl.Map:
    """``{ F[lane, i] -> T[row, col] }``: the element of operand ``"a"``, ``"b"`` or ``"c"``
    (C and D share a layout) that element ``i`` of ``lane``'s fragment holds."""
    if shape is not M16N8K16 or operand not in _FRAGMENTS:
        raise InternalError(f"no fragment layout for operand {operand!r} of {shape.name}")
    elements = {"a": shape.a_elements, "b": shape.b_elements, "c": shape.c_elements}[operand]
    row, col = _FRAGMENTS[operand]
    return isl.Map(f"{{ F[lane, i] -> T[row, col] : 0 <= lane < {WARP} and 0 <= i < "
                   f"{elements} and row = {row} and col = {col} }}")


def tile_shape(operand: str, shape: MmaShape = M16N8K16) -> tuple[int, int]:
    """Rows and columns of the operand's tile (B is k x n)."""
    return {"a": (shape.m, shape.k), "b": (shape.k, shape.n), "c": (shape.m, shape.n)}[operand]


def ldmatrix_map(matrices: int, trans: bool = False) -> isl.Map:
    """``{ F[lane, i] -> M[j, row, col] }`` of ``ldmatrix .x<matrices>`` (``.trans`` when
    ``trans``): element ``i`` of a lane is half ``i mod 2`` of register ``j = i div 2``."""
    if matrices not in (1, 2, 4):
        raise InternalError(f"ldmatrix loads 1, 2 or 4 matrices, not {matrices}")
    row, col = f"{_GROUP}", f"2*{_IN_GROUP} + (i mod 2)"
    if trans:
        row, col = col, row
    return isl.Map(f"{{ F[lane, i] -> M[j, row, col] : 0 <= lane < {WARP} and 0 <= i < "
                   f"{2 * matrices} and j = floor(i/2) and row = {row} and col = {col} }}")


def ldmatrix_rows(matrices: int) -> isl.Map:
    """``{ L[lane] -> M[j, row] }``: the matrix row whose address each lane gives (lanes
    beyond ``8 * matrices`` give none)."""
    return isl.Map(f"{{ L[lane] -> M[j, row] : 0 <= lane < {8 * matrices} and "
                   "j = floor(lane/8) and row = lane mod 8 }")


# Which 8x8 piece of the fragment's tile ldmatrix matrix j is: (first row, first column), and
# whether the piece is stored transposed (B's tile is read k-major from a row-major K x N
# array, so its 8x8 pieces come transposed: .trans).
A_PIECES = ((0, 0), (8, 0), (0, 8), (8, 8))    # .x4, no .trans, from a row-major M x K tile
B_PIECES = ((0, 0), (8, 0))                     # .x2.trans, from a row-major K x N tile


def pieces_map(pieces, tile: str = "T") -> isl.Map:
    """``{ M[j, row, col] -> T[row', col'] }``: matrix ``j`` is the 8x8 piece at
    ``pieces[j]`` of the tile."""
    parts = [f"(j = {j} and r = row + {r0} and c = col + {c0})"
             for j, (r0, c0) in enumerate(pieces)]
    return isl.Map(f"{{ M[j, row, col] -> {tile}[r, c] : 0 <= row < 8 and 0 <= col < 8 and "
                   f"({' or '.join(parts)}) }}")


def ldmatrix_fragment(operand: str) -> isl.Map:
    """``{ F[lane, i] -> T[row, col] }`` that ldmatrix delivers for the operand's pieces:
    for A, ``.x4`` over :data:`A_PIECES` of the row-major 16 x 16 tile; for B, ``.x2.trans``
    over :data:`B_PIECES` of the row-major 16 x 8 (K x N) tile: the rows whose addresses the
    lanes give are rows k, and ``.trans`` hands lane ``4 g + t`` the elements
    (k = 2 t + h, n = g) of each piece, which is B's fragment."""
    if operand == "a":
        return ldmatrix_map(4).apply_range(pieces_map(A_PIECES))
    if operand == "b":
        return ldmatrix_map(2, trans=True).apply_range(pieces_map(B_PIECES))
    raise InternalError(f"ldmatrix loads operands a and b, not {operand!r}")


def points(relation: isl.Map) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every (input, output) pair of a finite map, in isl's order."""
    from polypipe.analysis.bounds import point_values

    found = []
    relation.wrap().foreach_point(lambda point: found.append(point_values(point)))
    width = relation.dim(isl.dim_type.in_)
    return sorted((tuple(v[:width]), tuple(v[width:])) for v in found)


def warp_mma(a, b, c):
    """D of one ``mma.sync`` m16n8k16 from the warp's fragments, the way the hardware sees
    them: ``a[lane, i]``, ``b[lane, i]``, ``c[lane, i]`` (NumPy arrays of shape (32, 8),
    (32, 4), (32, 4)) are gathered into tiles through the fragment maps, multiplied with
    float32 accumulation (products of 16-bit floats are exact in float32) and handed back
    per lane. A caller that places elements in the wrong lanes gets a wrong D."""
    import numpy as np

    tiles = {}
    for operand, values in (("a", a), ("b", b), ("c", c)):
        tile = np.zeros(tile_shape(operand), dtype=np.float32)
        for (lane, i), (row, col) in _element_points(operand):
            tile[row, col] = values[lane, i]
        tiles[operand] = tile
    d_tile = tiles["a"].astype(np.float32) @ tiles["b"].astype(np.float32) + tiles["c"]
    d = np.zeros((WARP, M16N8K16.c_elements), dtype=np.float32)
    for (lane, i), (row, col) in _element_points("c"):
        d[lane, i] = d_tile[row, col]
    return d


_POINTS: dict[str, list] = {}


def _element_points(operand: str) -> list:
    if operand not in _POINTS:
        _POINTS[operand] = points(fragment_map(operand))
    return _POINTS[operand]
