"""float16 and bfloat16 conversions in C, bit by bit, written once for C and CUDA (issue 17).

A 16-bit float is stored as its ``uint16_t`` bits and computed on as float32 (every operation
of two 16-bit values is exact or correctly rounded in float32 before it is rounded back: 24
bits hold more than twice 11 + 1, so the double rounding is harmless, which is also how NumPy
and ml_dtypes compute on them). The helpers below are the two directions of each format:
widening is exact; narrowing rounds to nearest, ties to even, as NumPy's ``astype`` and the
GPU's ``__float2half_rn`` / ``__float2bfloat16_rn`` do, overflow to infinity, NaN to a quiet
NaN of the same sign. They are bitwise rather than gcc's ``_Float16``: gcc 12 on x86-64
evaluates ``_Float16`` arithmetic in float (excess precision) and has no ``__bf16``
arithmetic, and the same text must serve the CUDA printer and the CPU runtime of CUDA.

Computing on 16-bit values (:mod:`codegen.semantics`): a value of type float16 or bfloat16 is
a float (``pp_f16`` / ``pp_bf16``, typedefs of float) holding a value of that format; every
operation is computed in float and rounded back (``pp_round_f16``). Conversions from double
and int64 round once, directly, as NumPy and ml_dtypes convert: double -> float by rounding to
odd (truncate, and set the last bit when anything was dropped) keeps 29 more bits than any
16-bit format, so the following round-to-nearest is the one rounding of the exact value;
int64 -> double by rounding to odd likewise.

On the GPU (``__CUDA_ARCH__``) the four conversions are the hardware's ``cvt`` instructions,
which round the same way; the CPU runtime of CUDA and the C backend run the bitwise versions.

``PP_FN`` and ``<string.h>`` (``memcpy``, the defined way to reinterpret bits in C; nvcc
accepts it in device code) come from the prelude that includes these helpers.
"""

from __future__ import annotations

HALF_HELPERS = r"""
#ifdef __CUDA_ARCH__
/* The GPU converts with one instruction each way (cvt.f32.f16 is exact; cvt.rn is IEEE round
   to nearest even, the rounding of the bitwise helpers below): the bitwise versions, inlined
   at every use, made nvcc take 20 times as long on a GEMM tile and cost about twenty
   instructions per element. The CPU runtime of CUDA runs the bitwise versions, tested bit
   for bit against NumPy and ml_dtypes; only NaN payloads may differ. */
PP_FN uint32_t pp_f32_bits(float f) { return __float_as_uint(f); }
PP_FN float pp_bits_f32(uint32_t u) { return __uint_as_float(u); }
PP_FN float pp_bf16_to_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }
PP_FN uint16_t pp_f32_to_bf16(float f) {
  uint16_t h; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
}
PP_FN float pp_f16_to_f32(uint16_t h) {
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f;
}
PP_FN uint16_t pp_f32_to_f16(float f) {
  uint16_t h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
}
#else
PP_FN uint32_t pp_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
PP_FN float pp_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* ---- bfloat16: the upper half of a float32 ---- */
PP_FN float pp_bf16_to_f32(uint16_t h) { return pp_bits_f32((uint32_t)h << 16); }
PP_FN uint16_t pp_f32_to_bf16(float f) {
  uint32_t u = pp_f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);  /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u);           /* to nearest, ties to even; overflow -> inf */
  return (uint16_t)(u >> 16);
}

/* ---- float16 (IEEE binary16): 5 exponent bits, bias 15, 10 fraction bits ---- */
PP_FN float pp_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu,
           fraction = h & 0x3ffu;
  if (exponent == 0) {          /* zero or subnormal: fraction * 2^-24, exact in float32 */
    float magnitude = (float)fraction * 5.9604644775390625e-8f;
    return pp_bits_f32(pp_f32_bits(magnitude) | sign);
  }
  if (exponent == 31) return pp_bits_f32(sign | 0x7f800000u | (fraction << 13));
  return pp_bits_f32(sign | ((exponent + 112u) << 23) | (fraction << 13));
}
PP_FN uint16_t pp_f32_to_f16(float f) {
  uint32_t u = pp_f32_bits(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  /* NaN */
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);   /* >= 65520: rounds to inf */
  if (a < 0x38800000u) {                                       /* below 2^-14: subnormal */
    if (a <= 0x33000000u) return (uint16_t)sign;               /* <= 2^-25: ties to 0 */
    uint32_t exponent = a >> 23, mantissa = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - exponent, r = mantissa >> shift;
    uint32_t rest = mantissa & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (r & 1u))) r += 1u;
    return (uint16_t)(sign | r);
  }
  uint32_t h = (a - 0x38000000u) >> 13, rest = a & 0x1fffu;  /* rebias 127 -> 15 */
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h += 1u;
  return (uint16_t)(sign | h);
}
#endif

/* ---- arithmetic on 16-bit values held in floats ---- */
typedef float pp_f16;
typedef float pp_bf16;
PP_FN float pp_round_f16(float f) { return pp_f16_to_f32(pp_f32_to_f16(f)); }
PP_FN float pp_round_bf16(float f) { return pp_bf16_to_f32(pp_f32_to_bf16(f)); }
PP_FN float pp_f32_odd(double d) {               /* double -> float, rounded to odd */
  float f = (float)d;
  if ((double)f == d || f != f || f - f != 0.0f) return f;    /* exact, NaN or overflow */
  uint32_t u = pp_f32_bits(f);
  if (fabs((double)f) > fabs(d)) u -= 1u;        /* rounded away from zero: truncate */
  return pp_bits_f32(u | 1u);
}
PP_FN double pp_f64_odd_i64(int64_t n) {         /* int64 -> double, rounded to odd */
  uint64_t a = n < 0 ? 0u - (uint64_t)n : (uint64_t)n;
  if (a < (1ull << 53)) return (double)n;
  int drop = 0;                                  /* bits beyond the 53 a double keeps */
  while ((a >> drop) >= (1ull << 53)) drop++;
  uint64_t kept = (a >> drop) | ((a & ((1ull << drop) - 1u)) != 0u);
  double d = ldexp((double)kept, drop);
  return n < 0 ? -d : d;
}
PP_FN float pp_round_f16_f64(double d) { return pp_round_f16(pp_f32_odd(d)); }
PP_FN float pp_round_bf16_f64(double d) { return pp_round_bf16(pp_f32_odd(d)); }
PP_FN float pp_round_f16_i64(int64_t n) { return pp_round_f16_f64(pp_f64_odd_i64(n)); }
PP_FN float pp_round_bf16_i64(int64_t n) { return pp_round_bf16_f64(pp_f64_odd_i64(n)); }
"""
