"""float16 and bfloat16 value types (codegen.value_types): promotion against what NumPy and
ml_dtypes give for every pair of array types and for arrays with Python scalars, exact
conversions, constants that fit, names and C types (computed on as float typedefs of their own,
stored as 16-bit bits)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from polypipe.codegen.value_types import (BF16, BOOL, F16, F32, F64, HALF_DTYPES, I32, I64,
                                          SUPPORTED_DTYPES, WEAK_BOOL, WEAK_FLOAT, WEAK_INT,
                                          constant_fits, dtype_name, lossless, promote)

ml_dtypes = pytest.importorskip("ml_dtypes")

ARRAYS = {BOOL: np.bool_, I32: np.int32, I64: np.int64, F16: np.float16,
          BF16: ml_dtypes.bfloat16, F32: np.float32, F64: np.float64}
SCALARS = {WEAK_BOOL: True, WEAK_INT: 3, WEAK_FLOAT: 0.5}


def _vtype_of(dtype) -> object:
    return next(v for v, d in ARRAYS.items() if np.dtype(d) == dtype)


@pytest.mark.parametrize("a, b", list(itertools.product(ARRAYS, repeat=2)),
                         ids=lambda v: str(v))
def test_arrays_promote_as_numpy_does(a, b):
    result = (np.ones(2, ARRAYS[a]) * np.ones(2, ARRAYS[b])).dtype
    assert promote(a, b) == _vtype_of(result)


@pytest.mark.parametrize("array", [F16, BF16])
@pytest.mark.parametrize("scalar", list(SCALARS), ids=str)
def test_python_scalars_adapt_to_half_arrays(array, scalar):
    result = (np.ones(2, ARRAYS[array]) * SCALARS[scalar]).dtype
    assert promote(array, scalar) == promote(scalar, array) == _vtype_of(result) == array


def test_exact_conversions():
    assert lossless(F16, F32) and lossless(BF16, F32) and lossless(F16, F64)
    assert not lossless(F16, BF16) and not lossless(BF16, F16)
    assert not lossless(F32, F16) and not lossless(F32, BF16)
    assert lossless(F16, F16) and lossless(BF16, BF16) and lossless(BOOL, BF16)
    assert not lossless(I32, F16)
    # Checked on values: every float16 is a float32, not every float16 a bfloat16.
    halves = np.arange(2 ** 16, dtype=np.uint16).view(np.float16)
    finite = halves[np.isfinite(halves)]
    assert np.array_equal(finite.astype(np.float32).astype(np.float16), finite)
    with np.errstate(over="ignore"):   # 65504 rounds to bfloat16 65536, beyond float16
        narrowed = finite.astype(ml_dtypes.bfloat16).astype(np.float16)
    assert not np.array_equal(narrowed, finite)


def test_constants_that_fit():
    assert constant_fits(0.5, F16) and constant_fits(0.5, BF16)
    assert constant_fits(65504.0, F16) and not constant_fits(65505.0, F16)
    assert constant_fits(256.0, BF16) and not constant_fits(257.0, BF16)
    assert constant_fits(2049.0, F32) and not constant_fits(2049.0, F16)


def test_names_and_c_types():
    assert str(F16) == "float16" and str(BF16) == "bfloat16"
    assert dtype_name(F16) == "float16" and dtype_name(BF16) == "bfloat16"
    assert BF16.strong() == BF16 and F16 != BF16
    assert set(HALF_DTYPES) == {"float16", "bfloat16"} <= set(SUPPORTED_DTYPES)
    # Distinct C names: code that compares C types never takes one for float32.
    assert len({F16.c_name, BF16.c_name, F32.c_name}) == 3
    assert F16.storage_c_name == BF16.storage_c_name == "uint16_t"
    assert F32.storage_c_name == "float" and I64.storage_c_name == "int64_t"
