"""Tensor-core fragment layouts (polypipe.gpu_mma): every map against a second transcription
of the PTX ISA's tables, bijective onto its tile; ldmatrix's pieces proved by isl to deliver
mma's fragments (and a wrong piece order refused); the warp-collective mma reference gives
A B + C, and a wrong lane placement gives a wrong D."""

from __future__ import annotations

import islpy as isl
import numpy as np
import pytest

from polypipe.errors import InternalError
from polypipe.gpu_mma import (A_PIECES, B_PIECES, M16N8K16, WARP, fragment_map,
                              ldmatrix_fragment, ldmatrix_map, ldmatrix_rows, pieces_map,
                              points, tile_shape, warp_mma)


def _isa_element(operand: str, lane: int, i: int) -> tuple[int, int]:
    """The PTX ISA's tables for m16n8k16 (floating point), transcribed per register pair:
    A's a0..a7 are (a0, a1) rows g, (a2, a3) rows g + 8, (a4, a5) rows g at columns + 8,
    (a6, a7) rows g + 8 at columns + 8; B's (b0, b1) k = 2t, 2t + 1, (b2, b3) those + 8;
    C's (c0, c1) row g, (c2, c3) row g + 8."""
    group, thread = lane >> 2, lane % 4
    pair, half = i // 2, i % 2
    if operand == "a":
        return (group + (8 if pair in (1, 3) else 0),
                thread * 2 + half + (8 if pair >= 2 else 0))
    if operand == "b":
        return thread * 2 + half + (8 if pair == 1 else 0), group
    return group + (8 if pair == 1 else 0), thread * 2 + half


@pytest.mark.parametrize("operand", ["a", "b", "c"])
def test_fragments_follow_the_isa_tables(operand):
    found = dict(points(fragment_map(operand)))
    elements = {"a": 8, "b": 4, "c": 4}[operand]
    assert len(found) == WARP * elements
    for lane in range(WARP):
        for i in range(elements):
            assert found[(lane, i)] == _isa_element(operand, lane, i), (lane, i)


@pytest.mark.parametrize("operand", ["a", "b", "c"])
def test_each_fragment_is_a_bijection_onto_its_tile(operand):
    relation = fragment_map(operand)
    rows, cols = tile_shape(operand)
    assert relation.is_bijective()
    assert relation.range().is_equal(isl.Set(
        f"{{ T[row, col] : 0 <= row < {rows} and 0 <= col < {cols} }}"))
    per_lane = {"a": M16N8K16.a_elements, "b": M16N8K16.b_elements,
                "c": M16N8K16.c_elements}[operand]
    assert per_lane * WARP == rows * cols


@pytest.mark.parametrize("operand", ["a", "b"])
def test_ldmatrix_delivers_the_mma_fragment(operand):
    assert ldmatrix_fragment(operand).is_equal(fragment_map(operand))


def test_a_wrong_piece_order_is_not_the_fragment():
    swapped = (A_PIECES[0], A_PIECES[2], A_PIECES[1], A_PIECES[3])
    wrong = ldmatrix_map(4).apply_range(pieces_map(swapped))
    assert not wrong.is_equal(fragment_map("a"))
    # B without .trans hands each lane (k = g, n = 2t + h): not B's fragment either.
    untransposed = ldmatrix_map(2).apply_range(pieces_map(B_PIECES))
    assert not untransposed.is_equal(fragment_map("b"))


@pytest.mark.parametrize("matrices", [1, 2, 4])
def test_ldmatrix_lanes_give_every_row_once(matrices):
    rows = ldmatrix_rows(matrices)
    assert rows.is_bijective()
    assert rows.range().is_equal(isl.Set(
        f"{{ M[j, row] : 0 <= j < {matrices} and 0 <= row < 8 }}"))
    loads = ldmatrix_map(matrices)
    assert loads.is_bijective() and len(points(loads)) == 64 * matrices


def test_layouts_that_do_not_exist_are_internal_errors():
    with pytest.raises(InternalError):
        fragment_map("d2")
    with pytest.raises(InternalError):
        ldmatrix_map(3)
    with pytest.raises(InternalError):
        ldmatrix_fragment("c")


def _distribute(operand, tile):
    elements = {"a": 8, "b": 4, "c": 4}[operand]
    regs = np.zeros((WARP, elements), dtype=np.float32)
    for lane in range(WARP):
        for i in range(elements):
            regs[lane, i] = tile[_isa_element(operand, lane, i)]
    return regs


@pytest.mark.parametrize("dtype", [np.float16, "bfloat16"])
def test_warp_mma_computes_a_b_plus_c(dtype):
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        dtype = ml_dtypes.bfloat16
    rng = np.random.default_rng(7)
    A = (rng.random((16, 16)) - 0.5).astype(dtype)
    B = (rng.random((16, 8)) - 0.5).astype(dtype)
    C = (rng.random((16, 8)) - 0.5).astype(np.float32)
    d = warp_mma(_distribute("a", A.astype(np.float32)), _distribute("b", B.astype(np.float32)),
                 _distribute("c", C))
    D = np.zeros((16, 8), dtype=np.float32)
    for lane in range(WARP):
        for i in range(4):
            D[_isa_element("c", lane, i)] = d[lane, i]
    want = A.astype(np.float64) @ B.astype(np.float64) + C
    np.testing.assert_allclose(D, want, rtol=1e-5, atol=1e-6)


def test_a_wrong_lane_placement_gives_a_wrong_d():
    rng = np.random.default_rng(8)
    A = rng.random((16, 16)).astype(np.float16).astype(np.float32)
    B = rng.random((16, 8)).astype(np.float16).astype(np.float32)
    C = np.zeros((16, 8), dtype=np.float32)
    a = _distribute("a", A)
    right = warp_mma(a, _distribute("b", B), _distribute("c", C))
    swapped = a[np.arange(WARP) ^ 1]           # neighbouring lanes' registers exchanged
    wrong = warp_mma(swapped, _distribute("b", B), _distribute("c", C))
    assert np.abs(right - wrong).max() > 1e-3
