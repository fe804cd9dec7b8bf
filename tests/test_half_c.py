"""The C conversions of float16 and bfloat16 (codegen.half_c) against NumPy and ml_dtypes:
every one of the 65536 bit patterns widened, and float32 values narrowed where rounding is
hardest (every midpoint between neighbouring 16-bit values and the float32 values on either
side of it, subnormals, overflow, infinities, NaN) plus a random sweep. The same text compiles
for sm_80 and sm_90 with nvcc."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from polypipe.codegen.cpu import compile_shared_library
from polypipe.codegen.half_c import HALF_HELPERS
from polypipe.codegen.nvcc import find_nvcc

ml_dtypes = pytest.importorskip("ml_dtypes")

FORMATS = {"f16": np.float16, "bf16": ml_dtypes.bfloat16}

_DRIVER = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>
#define PP_FN static inline
""" + HALF_HELPERS + "".join(f"""
void widen_{name}(const uint16_t *in, float *out, long n) {{
  for (long i = 0; i < n; i++) out[i] = pp_{name}_to_f32(in[i]);
}}
void narrow_{name}(const float *in, uint16_t *out, long n) {{
  for (long i = 0; i < n; i++) out[i] = pp_f32_to_{name}(in[i]);
}}
void round_f64_{name}(const double *in, float *out, long n) {{
  for (long i = 0; i < n; i++) out[i] = pp_round_{name}_f64(in[i]);
}}
void round_i64_{name}(const int64_t *in, float *out, long n) {{
  for (long i = 0; i < n; i++) out[i] = pp_round_{name}_i64(in[i]);
}}
""" for name in FORMATS)


@pytest.fixture(scope="module")
def library():
    return ctypes.CDLL(str(compile_shared_library(_DRIVER)))


def _call(library, name, values, out_dtype):
    values = np.ascontiguousarray(values)
    out = np.zeros(values.shape, dtype=out_dtype)
    getattr(library, name)(values.ctypes.data_as(ctypes.c_void_p),
                           out.ctypes.data_as(ctypes.c_void_p), ctypes.c_long(values.size))
    return out


def _same(got, want):
    """Equal bit for bit, except that any NaN matches any NaN."""
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32) if got.dtype == np.float32
                          else got[~nan].view(np.uint16),
                          want[~nan].view(np.uint32) if want.dtype == np.float32
                          else want[~nan].view(np.uint16))


@pytest.mark.parametrize("name", FORMATS)
def test_every_bit_pattern_widens_exactly(library, name):
    bits = np.arange(2 ** 16, dtype=np.uint16)
    got = _call(library, f"widen_{name}", bits, np.float32)
    _same(got, bits.view(FORMATS[name]).astype(np.float32))


def _hard_values(name) -> np.ndarray:
    """Each finite 16-bit value, the midpoints to its neighbours and the float32 values next
    to those midpoints, the subnormal and overflow edges, infinities and NaNs."""
    dtype = FORMATS[name]
    with np.errstate(all="ignore"):        # NaN patterns among the 65536
        finite = np.arange(2 ** 16, dtype=np.uint16).view(dtype).astype(np.float64)
    finite = np.unique(finite[np.isfinite(finite)])
    midpoints = (finite[:-1] + finite[1:]) / 2
    edges = np.array([65504.0, 65519.99, 65520.0, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26,
                      2.0 ** -14, np.finfo(np.float32).max, np.finfo(np.float32).tiny,
                      np.inf, -np.inf, np.nan, 0.0, -0.0])
    base = np.concatenate([finite, midpoints, -midpoints, edges]).astype(np.float32)
    with np.errstate(all="ignore"):        # the float32 maximum's next is infinity
        up = np.nextafter(base, np.float32(np.inf))
        down = np.nextafter(base, np.float32(-np.inf))
    rng = np.random.default_rng(0)
    sweep = rng.integers(0, 2 ** 32, size=200_000, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([base, up, down, sweep.view(np.float32)])


@pytest.mark.parametrize("name", FORMATS)
def test_narrowing_rounds_to_nearest_even(library, name):
    values = _hard_values(name)
    got = _call(library, f"narrow_{name}", values, np.uint16).view(FORMATS[name])
    with np.errstate(all="ignore"):
        want = values.astype(FORMATS[name])
    _same(got.astype(np.float32), want.astype(np.float32))
    # Signs of zeros and infinities survive too (compared as bits above, but say it).
    assert got.view(np.uint16)[np.where(values == np.float32(-0.0))[0][-1]] & 0x8000


def _doubles_near_midpoints(name) -> np.ndarray:
    """Doubles a hair either side of every midpoint (through float32 they would land on it),
    the midpoints themselves, and a random sweep of doubles."""
    dtype = FORMATS[name]
    with np.errstate(all="ignore"):
        finite = np.arange(2 ** 16, dtype=np.uint16).view(dtype).astype(np.float64)
    finite = np.unique(finite[np.isfinite(finite)])
    middle = (finite[:-1] + finite[1:]) / 2
    rng = np.random.default_rng(1)
    sweep = rng.integers(0, 2 ** 63, size=100_000, dtype=np.uint64).view(np.float64)
    return np.concatenate([middle, middle * (1 + 2.0 ** -40), middle * (1 - 2.0 ** -40),
                           middle * (1 + 2.0 ** -52), sweep, [np.inf, -np.inf, np.nan, 1e300]])


def _integers_near_midpoints(name) -> np.ndarray:
    """int64 values at and beside the midpoints of the format's values at every scale: above
    2**53 those are no doubles, so converting through double would round twice."""
    values = []
    for top in range(0, 63):
        ulp = 2 ** max(top - (10 if FORMATS[name] == np.float16 else 7), 0)
        for j in (1, 3, 5, 101):
            middle = 2 ** top + j * ulp // 2
            values += [middle - 1, middle, middle + 1, -middle, -middle - 1]
    values += [2 ** 63 - 1, -2 ** 63, 0, 65504, 65519, 65520]
    return np.array([v for v in values if -2 ** 63 <= v < 2 ** 63], dtype=np.int64)


@pytest.mark.parametrize("name", FORMATS)
def test_double_and_int64_round_once(library, name):
    for function, values in (("round_f64", _doubles_near_midpoints(name)),
                             ("round_i64", _integers_near_midpoints(name))):
        got = _call(library, f"{function}_{name}", values, np.float32)
        with np.errstate(all="ignore"):
            want = values.astype(FORMATS[name]).astype(np.float32)
        _same(got, want)


@pytest.mark.skipif(find_nvcc() is None, reason="needs nvcc")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_the_helpers_compile_for_the_gpu(arch, tmp_path):
    """On the GPU the four conversions are single instructions (F2FP packs, HADD2.F32 widens
    float16, a shift widens bfloat16): the bitwise branches of the C versions, inlined per
    element, made nvcc take 20 times as long on a GEMM tile."""
    import subprocess

    from polypipe.codegen.sass import disassemble, find_nvdisasm

    source = tmp_path / "half.cu"
    source.write_text("#include <math.h>\n#include <stdint.h>\n#include <string.h>\n"
                      "#define PP_FN static __device__ __forceinline__\n" + HALF_HELPERS +
                      "__global__ void k(const float *x, uint16_t *a, uint16_t *b, float *y) {\n"
                      "  int i = threadIdx.x; a[i] = pp_f32_to_f16(x[i]);\n"
                      "  b[i] = pp_f32_to_bf16(x[i]);\n"
                      "  y[i] = pp_f16_to_f32(a[i + 1]) + pp_bf16_to_f32(b[i + 1]);\n}\n"
                      "__global__ void r(const float *x, float *y) {\n  int i = threadIdx.x;\n"
                      "  y[i] = pp_round_bf16_f64((double)x[i] * 3.0) + pp_round_f16_i64(i);\n}\n")
    cubin = tmp_path / "half.cubin"
    done = subprocess.run([find_nvcc(), f"-arch={arch}", "-cubin", "-o", str(cubin),
                           str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    if find_nvdisasm() is None:
        pytest.skip("compiled; nvdisasm not found for the instruction check")
    (convert,) = [f for f in disassemble(cubin) if f.name.startswith("_Z1k")]
    opcodes = [i.opcode for i in convert.instructions]
    packs = [o for o in opcodes if o.startswith("F2FP.")]     # F2FP[.F16.F32].PACK_AB by arch
    assert len(packs) == 2 and sum(".BF16." in o for o in packs) == 1
    assert opcodes.count("HADD2.F32") == 1
    assert not [i for i in convert.instructions if i.target is not None and i.base != "BRA"]
    assert sum(i.base == "BRA" for i in convert.instructions) <= 1     # the trailing self-loop
