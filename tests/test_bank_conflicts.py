"""Bank conflicts proved with isl (analysis.bank_conflicts): the Presburger XOR against
Python's, swizzles are permutations, row-major ldmatrix reads conflict by the degree the bank
arithmetic predicts, the chosen swizzle makes copies and ldmatrix reads conflict-free for
every tile width, and a wrong swizzle is caught."""

from __future__ import annotations

import itertools

import islpy as isl
import pytest

from polypipe.analysis.bank_conflicts import (xor, conflict_degree, conflict_free_swizzle,
                                              conflicting_pairs, cp_async_rows, ldmatrix_x4,
                                              row_major, swizzle)
from polypipe.gpu_mma import points


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_presburger_xor_is_xor(bits):
    relation = isl.Map(f"{{ [x, y] -> [z] : 0 <= x < {2 ** bits} and 0 <= y < {2 ** bits} "
                       f"and z = {xor('x', 'y', bits)} }}")
    found = points(relation)
    assert len(found) == 4 ** bits
    assert all(z == x ^ y for (x, y), (z,) in found)


@pytest.mark.parametrize("rows, row_chunks, bits, shift",
                         [(16, 4, 2, 3), (32, 8, 3, 3), (16, 2, 1, 3), (8, 16, 3, 4),
                          (24, 4, 2, 2)])
def test_a_swizzle_is_a_permutation_of_the_tile(rows, row_chunks, bits, shift):
    # Every point of the tile, enumerated (isl's is_bijective on the nested floors of a
    # 3-bit XOR took minutes): one physical chunk each, all distinct, none outside.
    layout = swizzle(rows, row_chunks, bits, shift)
    found = points(layout.relation)
    assert len(found) == rows * row_chunks
    assert sorted(index for _, (index,) in found) == list(range(rows * row_chunks))
    for (row, chunk), (index,) in found:
        linear = row * row_chunks + chunk
        low, high = linear % 2 ** bits, (linear >> shift) % 2 ** bits
        assert index == linear - low + (low ^ high)


@pytest.mark.parametrize("row_chunks, degree", [(2, 2), (4, 4), (8, 8), (16, 8)])
def test_row_major_ldmatrix_reads_conflict(row_chunks, degree):
    # 8 rows of one column of chunks: (8 * row_chunks / 8) rows share a bank group line.
    layout = row_major(32, row_chunks)
    reads = ldmatrix_x4(32, row_chunks)
    assert not conflicting_pairs(reads, layout).is_empty()
    assert conflict_degree(reads, layout) == degree


@pytest.mark.parametrize("row_chunks", [2, 4, 8, 16])
def test_row_major_copies_are_conflict_free(row_chunks):
    copies = cp_async_rows(32, row_chunks)
    assert conflicting_pairs(copies, row_major(32, row_chunks)).is_empty()


@pytest.mark.parametrize("rows, row_chunks", list(itertools.product((16, 64, 128),
                                                                   (2, 4, 8, 16))))
def test_the_chosen_swizzle_frees_copies_and_reads(rows, row_chunks):
    layout = conflict_free_swizzle(rows, row_chunks)
    for access in (ldmatrix_x4(rows, row_chunks), cp_async_rows(rows, row_chunks)):
        assert conflicting_pairs(access, layout).is_empty(), layout.name
        assert conflict_degree(access, layout) == 1


def test_a_wrong_swizzle_is_caught():
    # 64-byte rows XORed with the wrong row bits (shift 2: bits the phase's rows share in
    # pairs): two rows of each phase still meet.
    layout = swizzle(64, 4, 2, 2)
    reads = ldmatrix_x4(64, 4)
    assert not conflicting_pairs(reads, layout).is_empty()
    assert conflict_degree(reads, layout) == 2


def test_every_ldmatrix_phase_reads_eight_distinct_rows_of_one_chunk_column():
    reads = ldmatrix_x4(32, 4)
    phases: dict[int, list] = {}
    for (phase, lane), (row, chunk) in points(reads):
        phases.setdefault(phase, []).append((row, chunk))
    assert len(phases) == (32 // 16) * (4 // 2) * 4
    for cells in phases.values():
        assert len({row for row, _ in cells}) == 8 and len({c for _, c in cells}) == 1
    assert reads.range().is_equal(isl.Set("{ T[row, chunk] : 0 <= row < 32 and "
                                          "0 <= chunk < 4 }"))


@pytest.mark.parametrize("rows, row_chunks", [(128, 4), (32, 16), (64, 2), (16, 1), (32, 32),
                                              (48, 6)])
def test_the_printed_index_is_the_layout(rows, row_chunks):
    """Layout.c_index, the expression a printer writes (valid C and Python), against every
    point of the isl relation the proofs use."""
    for layout in (conflict_free_swizzle(rows, row_chunks), row_major(rows, row_chunks)):
        text = layout.c_index("row", "chunk")
        for (row, chunk), (index,) in points(layout.relation):
            assert eval(text, {}, {"row": row, "chunk": chunk}) == index, (layout.name, row)
