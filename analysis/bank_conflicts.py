"""Shared-memory bank conflicts of 16-byte accesses, proved with isl (issue 17, "Shared-memory
layout").

Shared memory has 32 banks of 4 bytes: 128 bytes per row of banks, so a 16-byte chunk at byte
address ``a`` occupies bank group ``(a div 16) mod 8``. A warp's 16-byte accesses (``cp.async``
with 16 bytes, ``ldmatrix``'s row addresses, ``ld.shared.v4``) are served in phases of 8 lanes;
a phase is conflict-free when its 8 chunks fall in 8 distinct bank groups, and its conflict
degree is the most chunks that share one group (the wavefronts the phase takes).

An operand tile is ``rows`` rows of ``row_chunks`` 16-byte chunks, row-major; a layout maps the
logical chunk ``(row, chunk)`` to the physical chunk index. Swizzles are the usual XOR of a
chunk's low bits with higher bits of its linear index (CUTLASS's ``Swizzle<B, M=4, S>`` on byte
addresses is :func:`swizzle` with ``bits=B, shift=S``), written in Presburger arithmetic:
``x xor y`` of ``bits``-bit values is the sum over bits ``i`` of ``2^i ((x_i + y_i) mod 2)``,
``x_i = floor(x / 2^i) mod 2``. A proof is then the emptiness of the set of lane pairs of one
phase that hit the same bank group: exact for every phase of the tile, not a sample.

Every access is ``{ A[phase, lane] -> T[row, chunk] }`` with ``0 <= lane < 8``.
"""

from __future__ import annotations

from dataclasses import dataclass

import islpy as isl

from .bounds import point_values

BANK_GROUPS = 8        # 128 bytes of banks / 16 bytes per access
PHASE = 8              # lanes served together by a 16-byte access


@dataclass(frozen=True)
class Layout:
    """Physical chunk index of each logical chunk of a ``rows x row_chunks`` tile."""

    name: str
    rows: int
    row_chunks: int
    relation: isl.Map          # { T[row, chunk] -> P[index] }
    bits: int = 0              # swizzle: the low `bits` of the linear chunk index are
    shift: int = 0             # XORed with its bits shift .. shift + bits - 1
    pad_chunks: int = 0        # unused chunks after each row

    @property
    def within_rows(self) -> bool:
        """Whether the layout only permutes (or pads) each row's chunks: what a tile stored
        as rows of elements can hold (a swizzle of more bits than the row's chunks
        crosses rows)."""
        return self.row_chunks % 2 ** self.bits == 0

    def c_index(self, row: str, chunk: str) -> str:
        """The physical chunk index as C (or Python) text of integer expressions ``row`` and
        ``chunk``: the printer's spelling of :attr:`relation` (``x ^ ((x >> s) & m)`` is the
        Presburger XOR above when the XOR only touches the low bits), checked equal to it
        point by point in the tests."""
        linear = f"(({row}) * {self.row_chunks} + ({chunk}))"
        if not self.bits:
            return linear
        return f"({linear} ^ (({linear} >> {self.shift}) & {2 ** self.bits - 1}))"


def xor(x: str, y: str, bits: int) -> str:
    """Presburger text of ``x xor y`` for ``bits``-bit non-negative ``x`` and ``y``."""
    terms = [f"{2 ** i}*((floor(({x})/{2 ** i}) + floor(({y})/{2 ** i})) mod 2)"
             for i in range(bits)]
    return " + ".join(terms)


def row_major(rows: int, row_chunks: int) -> Layout:
    return Layout("row-major", rows, row_chunks, isl.Map(
        f"{{ T[row, chunk] -> P[row * {row_chunks} + chunk] : 0 <= row < {rows} and "
        f"0 <= chunk < {row_chunks} }}"))


def padded(rows: int, row_chunks: int, pad_chunks: int = 1) -> Layout:
    """Row-major with ``pad_chunks`` unused chunks after each row."""
    return Layout(f"padded(+{pad_chunks} chunk)", rows, row_chunks, isl.Map(
        f"{{ T[row, chunk] -> P[row * {row_chunks + pad_chunks} + chunk] : 0 <= row < {rows} "
        f"and 0 <= chunk < {row_chunks} }}"), pad_chunks=pad_chunks)


def swizzle(rows: int, row_chunks: int, bits: int, shift: int) -> Layout:
    """Row-major, then the low ``bits`` of each linear chunk index XORed with its bits
    ``shift .. shift + bits - 1`` (a permutation within each block of ``2^bits`` chunks)."""
    linear = f"(row * {row_chunks} + chunk)"
    low = f"({linear} mod {2 ** bits})"
    high = f"(floor({linear}/{2 ** shift}) mod {2 ** bits})"
    return Layout(f"swizzle(bits={bits}, shift={shift})", rows, row_chunks, isl.Map(
        f"{{ T[row, chunk] -> P[{linear} - {low} + {xor(low, high, bits)}] : "
        f"0 <= row < {rows} and 0 <= chunk < {row_chunks} }}"), bits, shift)


def conflicting_pairs(access: isl.Map, layout: Layout) -> isl.Set:
    """``{ [phase, lane, other] }``: two lanes of one phase whose chunks share a bank group
    (empty: the access is conflict-free)."""
    banks = access.apply_range(layout.relation).apply_range(isl.Map(
        f"{{ P[index] -> B[index mod {BANK_GROUPS}] }}"))
    pairs = banks.apply_range(banks.reverse())      # { A[p, l] -> A[p', l'] } same group
    same_phase = isl.Map("{ A[p, l] -> A[p, m] : m != l }")
    return pairs.intersect(same_phase).wrap()


def conflict_degree(access: isl.Map, layout: Layout) -> int:
    """The most chunks of one phase in one bank group (1: conflict-free), over every phase.
    Counted by enumerating the access's points (a tile has at most a few thousand)."""
    banks = access.apply_range(layout.relation)
    counts: dict[tuple[int, int], int] = {}

    def add(point: isl.Point) -> None:
        phase, _, index = point_values(point)
        key = (phase, index % BANK_GROUPS)
        counts[key] = counts.get(key, 0) + 1

    banks.wrap().foreach_point(add)
    return max(counts.values(), default=1)


def ldmatrix_x4(rows: int, row_chunks: int, fragment_rows: int = 16) -> isl.Map:
    """Every ``ldmatrix.x4`` a warp issues over an A-like tile (16 x 16 halves per load, as
    polypipe.gpu_mma.A_PIECES: matrices (0, 0), (8, 0), (0, 8), (8, 8)): phase = (load,
    matrix), lane ``l`` of the phase gives the row ``l`` of its matrix. Loads cover the tile
    in steps of 16 rows and 2 chunks."""
    return isl.Map(
        f"{{ A[phase, lane] -> T[row, chunk] : exists (load, j, m, k : "
        f"phase = 4 * load + j and 0 <= j < 4 and 0 <= lane < {PHASE} and "
        f"load = m * {row_chunks // 2} + k and 0 <= k < {row_chunks // 2} and "
        f"0 <= m < {rows // fragment_rows} and "
        f"row = {fragment_rows} * m + 8 * (j mod 2) + lane and chunk = 2 * k + floor(j/2)) }}")


def cp_async_rows(rows: int, row_chunks: int) -> isl.Map:
    """A block's 16-byte copies into the tile: thread ``t`` copies linear chunks ``t``,
    ``t + threads``, ...; phases are 8 consecutive linear chunks (whatever the thread
    count, 8 consecutive threads copy 8 consecutive chunks)."""
    return isl.Map(
        f"{{ A[phase, lane] -> T[row, chunk] : 0 <= lane < {PHASE} and "
        f"0 <= chunk < {row_chunks} and 0 <= row < {rows} and "
        f"{PHASE} * phase + lane = row * {row_chunks} + chunk }}")


def conflict_free_swizzle(rows: int, row_chunks: int) -> Layout:
    """The XOR swizzle that makes both the copies and the ldmatrix reads of a tile with
    ``row_chunks`` chunks per row conflict-free: the chunk's low bits XOR the row bits that
    a phase of 8 rows changes (32-byte rows: 1 bit, shift 3; 64-byte rows: 2 bits, shift 3;
    128-byte and wider: 3 bits, shift ``log2(row_chunks)``); row-major for one chunk per
    row (8 rows are then 8 consecutive chunks). Made for powers of two; for other widths
    the result is a candidate that :func:`conflicting_pairs` proves or refutes."""
    if row_chunks == 1:
        return row_major(rows, row_chunks)
    bits = min(3, row_chunks.bit_length() - 1)
    shift = max(3, row_chunks.bit_length() - 1)
    return swizzle(rows, row_chunks, bits, shift)
