"""The C helpers behind :mod:`codegen.semantics`, written once for C and CUDA.

``PP_FN`` is ``static inline`` in C and ``static __device__ __forceinline__`` in CUDA. Every
helper is total (no undefined behaviour for any input: no signed overflow, no division by zero,
no out-of-range float-to-int conversion): where Python raises, a helper records the fault code
in ``*e`` (the first one wins) and returns 0, and the statement that called it does not store.
NumPy integer arithmetic wraps through unsigned arithmetic, as NumPy's does.
"""

from __future__ import annotations

from .half_c import HALF_HELPERS
from .semantics import FAULTS, MATH_CAN_OVERFLOW, MATH_UNARY, WARN_DIVIDE


def fault_macros() -> str:
    lines = [f"#define PP_E_{fault.name} {fault.code}" for fault in FAULTS.values()]
    lines.append(f"#define PP_W_DIVIDE {WARN_DIVIDE}")
    return "\n".join(lines) + "\n"


_HELPERS = r"""
#define PP_I64_MIN (-9223372036854775807LL - 1)
#define PP_I64_MAX 9223372036854775807LL
#define PP_TWO63 9223372036854775808.0

PP_FN int64_t pp_raise(int64_t code, int64_t *e) { if (!*e) *e = code; return 0; }
/* Operations that always raise when they run (NumPy refuses `-` on booleans). */
PP_FN int64_t pp_fault1_i64(int64_t a, int64_t code, int64_t *e) { (void)a; return pp_raise(code, e); }
PP_FN int64_t pp_fault2_i64(int64_t a, int64_t b, int64_t code, int64_t *e) {
  (void)a; (void)b; return pp_raise(code, e);
}

/* ---- integer division helpers (no checks: callers exclude b == 0 and MIN / -1) ---- */
PP_FN int64_t pp_floordiv_i64(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
PP_FN int64_t pp_mod_i64(int64_t a, int64_t b) {
  int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
PP_FN int pp_mul_overflows(int64_t a, int64_t b) {
  if (a == 0 || b == 0) return 0;
  if (a > 0) return b > 0 ? a > PP_I64_MAX / b : b < PP_I64_MIN / a;
  return b > 0 ? a < PP_I64_MIN / b : b < PP_I64_MAX / a;
}

/* ---- Python ints: int64 with overflow checks ---- */
PP_FN int64_t pp_py_add_i64(int64_t a, int64_t b, int64_t *e) {
  if ((b > 0 && a > PP_I64_MAX - b) || (b < 0 && a < PP_I64_MIN - b))
    return pp_raise(PP_E_PYINT_OVERFLOW, e);
  return a + b;
}
PP_FN int64_t pp_py_sub_i64(int64_t a, int64_t b, int64_t *e) {
  if ((b < 0 && a > PP_I64_MAX + b) || (b > 0 && a < PP_I64_MIN + b))
    return pp_raise(PP_E_PYINT_OVERFLOW, e);
  return a - b;
}
PP_FN int64_t pp_py_mul_i64(int64_t a, int64_t b, int64_t *e) {
  if (pp_mul_overflows(a, b)) return pp_raise(PP_E_PYINT_OVERFLOW, e);
  return a * b;
}
PP_FN int64_t pp_py_neg_i64(int64_t a, int64_t *e) {
  if (a == PP_I64_MIN) return pp_raise(PP_E_PYINT_OVERFLOW, e);
  return -a;
}
PP_FN int64_t pp_py_abs_i64(int64_t a, int64_t *e) {
  if (a == PP_I64_MIN) return pp_raise(PP_E_PYINT_OVERFLOW, e);
  return a < 0 ? -a : a;
}
PP_FN int64_t pp_py_floordiv_i64(int64_t a, int64_t b, int64_t *e) {
  if (b == 0) return pp_raise(PP_E_INT_ZERODIV, e);
  if (a == PP_I64_MIN && b == -1) return pp_raise(PP_E_PYINT_OVERFLOW, e);
  return pp_floordiv_i64(a, b);
}
PP_FN int64_t pp_py_mod_i64(int64_t a, int64_t b, int64_t *e) {
  if (b == 0) return pp_raise(PP_E_INT_ZERODIV, e);
  if (b == -1) return 0;
  return pp_mod_i64(a, b);
}
PP_FN int64_t pp_py_pow_i64(int64_t b, int64_t x, int64_t *e) {
  if (x < 0) return pp_raise(PP_E_DYNAMIC_POW, e);
  int64_t r = 1;
  while (x > 0) {
    if (x & 1) { if (pp_mul_overflows(r, b)) return pp_raise(PP_E_PYINT_OVERFLOW, e); r *= b; }
    x >>= 1;
    if (x > 0) { if (pp_mul_overflows(b, b)) return pp_raise(PP_E_PYINT_OVERFLOW, e); b *= b; }
  }
  return r;
}
PP_FN double pp_py_div_f64(double a, double b, int64_t *e) {
  if (b == 0) return pp_raise(PP_E_FLOAT_DIV_ZERO, e);
  return a / b;
}

/* ---- NumPy integers: wrap like NumPy; // and % by zero give 0 and a warning ---- */
PP_FN int64_t pp_np_add_i64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
PP_FN int64_t pp_np_sub_i64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
PP_FN int64_t pp_np_mul_i64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
PP_FN int64_t pp_np_neg_i64(int64_t a) { return (int64_t)(0 - (uint64_t)a); }
PP_FN int64_t pp_np_abs_i64(int64_t a) { return a < 0 ? pp_np_neg_i64(a) : a; }
PP_FN int64_t pp_np_square_i64(int64_t a) { return pp_np_mul_i64(a, a); }
PP_FN int64_t pp_np_floordiv_i64(int64_t a, int64_t b, int64_t *w) {
  if (b == 0) { *w |= PP_W_DIVIDE; return 0; }
  if (b == -1) return pp_np_neg_i64(a);
  return pp_floordiv_i64(a, b);
}
PP_FN int64_t pp_np_mod_i64(int64_t a, int64_t b, int64_t *w) {
  if (b == 0) { *w |= PP_W_DIVIDE; return 0; }
  if (b == -1) return 0;
  return pp_mod_i64(a, b);
}
PP_FN int64_t pp_np_pow_i64(int64_t b, int64_t x, int64_t *e) {
  if (x < 0) return pp_raise(PP_E_NP_NEG_POW, e);
  uint64_t r = 1, base = (uint64_t)b;
  while (x > 0) { if (x & 1) r *= base; base *= base; x >>= 1; }
  return (int64_t)r;
}
PP_FN int32_t pp_np_wrap_i32(int64_t a) { return (int32_t)(uint32_t)(uint64_t)a; }
PP_FN int32_t pp_np_add_i32(int32_t a, int32_t b) { return pp_np_wrap_i32((int64_t)a + b); }
PP_FN int32_t pp_np_sub_i32(int32_t a, int32_t b) { return pp_np_wrap_i32((int64_t)a - b); }
PP_FN int32_t pp_np_mul_i32(int32_t a, int32_t b) { return pp_np_wrap_i32((int64_t)a * b); }
PP_FN int32_t pp_np_neg_i32(int32_t a) { return pp_np_wrap_i32(-(int64_t)a); }
PP_FN int32_t pp_np_abs_i32(int32_t a) { return a < 0 ? pp_np_neg_i32(a) : a; }
PP_FN int32_t pp_np_square_i32(int32_t a) { return pp_np_mul_i32(a, a); }
PP_FN int32_t pp_np_floordiv_i32(int32_t a, int32_t b, int64_t *w) {
  return pp_np_wrap_i32(pp_np_floordiv_i64(a, b, w));
}
PP_FN int32_t pp_np_mod_i32(int32_t a, int32_t b, int64_t *w) {
  return pp_np_wrap_i32(pp_np_mod_i64(a, b, w));
}
PP_FN int32_t pp_np_pow_i32(int32_t b, int32_t x, int64_t *e) {
  return pp_np_wrap_i32(pp_np_pow_i64(b, x, e));
}

/* ---- floats: CPython's and NumPy's divmod (1.0 // 0.1 is 9.0) ---- */
PP_FN double pp_floordiv_f64(double a, double b) {
  double mod = fmod(a, b), div = (a - mod) / b;
  if (mod && ((b < 0) != (mod < 0))) div -= 1.0;
  if (div) { double f = floor(div); return div - f > 0.5 ? f + 1.0 : f; }
  return copysign(0.0, a / b);
}
PP_FN double pp_mod_f64(double a, double b) {
  double mod = fmod(a, b);
  if (mod) { if ((b < 0) != (mod < 0)) mod += b; } else mod = copysign(0.0, b);
  return mod;
}
PP_FN float pp_floordiv_f32(float a, float b) {
  float mod = fmodf(a, b), div = (a - mod) / b;
  if (mod && ((b < 0) != (mod < 0))) div -= 1.0f;
  if (div) { float f = floorf(div); return div - f > 0.5f ? f + 1.0f : f; }
  return copysignf(0.0f, a / b);
}
PP_FN float pp_mod_f32(float a, float b) {
  float mod = fmodf(a, b);
  if (mod) { if ((b < 0) != (mod < 0)) mod += b; } else mod = copysignf(0.0f, b);
  return mod;
}
PP_FN double pp_py_floordiv_f64(double a, double b, int64_t *e) {
  if (b == 0) return pp_raise(PP_E_FLOAT_FLOORDIV_ZERO, e);
  return pp_floordiv_f64(a, b);
}
PP_FN double pp_py_mod_f64(double a, double b, int64_t *e) {
  if (b == 0) return pp_raise(PP_E_FLOAT_MOD_ZERO, e);
  return pp_mod_f64(a, b);
}
PP_FN double pp_np_floordiv_f64(double a, double b) { return b == 0 ? a / b : pp_floordiv_f64(a, b); }
PP_FN double pp_np_mod_f64(double a, double b) { return b == 0 ? fmod(a, b) : pp_mod_f64(a, b); }
PP_FN float pp_np_floordiv_f32(float a, float b) { return b == 0 ? a / b : pp_floordiv_f32(a, b); }
PP_FN float pp_np_mod_f32(float a, float b) { return b == 0 ? fmodf(a, b) : pp_mod_f32(a, b); }
PP_FN double pp_np_pow_f64(double a, double b) { return pow(a, b); }
PP_FN float pp_np_pow_f32(float a, float b) { return powf(a, b); }
PP_FN double pp_np_square_f64(double a) { return a * a; }
PP_FN float pp_np_square_f32(float a) { return a * a; }
PP_FN double pp_py_pow_f64(double a, double b, int64_t *e) {
  if (b == 0) return 1.0;
  if (a == 0 && b < 0) return pp_raise(PP_E_ZERO_NEG_POW, e);
  if (a < 0 && isfinite(a) && isfinite(b) && b != floor(b)) return pp_raise(PP_E_COMPLEX_POW, e);
  double r = pow(a, b);
  if (isinf(r) && isfinite(a) && isfinite(b)) return pp_raise(PP_E_POW_OVERFLOW, e);
  return r;
}
/* np.minimum / np.maximum propagate NaN; ties keep the second operand, as NumPy does. */
PP_FN double pp_np_minimum_f64(double a, double b) { return (a < b || a != a) ? a : b; }
PP_FN double pp_np_maximum_f64(double a, double b) { return (a > b || a != a) ? a : b; }
PP_FN float pp_np_minimum_f32(float a, float b) { return (a < b || a != a) ? a : b; }
PP_FN float pp_np_maximum_f32(float a, float b) { return (a > b || a != a) ? a : b; }
/* np.fmin / np.fmax ignore NaN; on a tie of zeros NumPy's float64 scalar loop keeps the
   first operand and its float32 one the second (checked against NumPy, not libm's fmin). */
PP_FN double pp_np_fmin_f64(double a, double b) { return (a <= b || b != b) ? a : b; }
PP_FN double pp_np_fmax_f64(double a, double b) { return (a >= b || b != b) ? a : b; }
PP_FN float pp_np_fmin_f32(float a, float b) { return (a < b || b != b) ? a : b; }
PP_FN float pp_np_fmax_f32(float a, float b) { return (a > b || b != b) ? a : b; }

/* Python compares an int and a float exactly; code: < <= > >= == != */
PP_FN int pp_cmp_order(int64_t i, double d) {   /* -1, 0, 1, or 2 when unordered */
  if (d != d) return 2;
  if (d >= PP_TWO63) return -1;
  if (d < -PP_TWO63) return 1;
  double f = floor(d);
  int64_t fi = (int64_t)f;
  if (i != fi) return i < fi ? -1 : 1;
  return d > f ? -1 : 0;
}
PP_FN int pp_cmp_holds(int order, int code) {
  switch (code) {
    case 0: return order == -1;
    case 1: return order == -1 || order == 0;
    case 2: return order == 1;
    case 3: return order == 1 || order == 0;
    case 4: return order == 0;
    default: return order != 0;
  }
}
PP_FN int pp_cmp_if(int64_t i, double d, int code) { return pp_cmp_holds(pp_cmp_order(i, d), code); }
PP_FN int pp_cmp_fi(double d, int64_t i, int code) {
  int order = pp_cmp_order(i, d);
  return pp_cmp_holds(order == 2 ? 2 : -order, code);
}

/* ---- conversions to integers ---- */
PP_FN int64_t pp_int_check(double v, int64_t range_code, int64_t *e) {
  if (v != v) return pp_raise(PP_E_INT_NAN, e);
  if (isinf(v)) return pp_raise(PP_E_INT_INF, e);
  if (!(v >= -PP_TWO63 && v < PP_TWO63)) return pp_raise(range_code, e);
  return (int64_t)v;
}
PP_FN int64_t pp_py_int_f64(double v, int64_t *e) { return pp_int_check(v, PP_E_PYINT_OVERFLOW, e); }
PP_FN int64_t pp_py_floor_f64(double v, int64_t *e) { return pp_py_int_f64(floor(v), e); }
PP_FN int64_t pp_py_ceil_f64(double v, int64_t *e) { return pp_py_int_f64(ceil(v), e); }
PP_FN int64_t pp_store_i64_f64(double v, int64_t *e) { return pp_int_check(v, PP_E_INT64_RANGE, e); }
PP_FN int32_t pp_store_i32_i64(int64_t v, int64_t *e) {
  if (v < -2147483648LL || v > 2147483647LL) return (int32_t)pp_raise(PP_E_INT32_RANGE, e);
  return (int32_t)v;
}
PP_FN int32_t pp_store_i32_f64(double v, int64_t *e) {
  if (v != v || isinf(v)) return (int32_t)pp_int_check(v, PP_E_INT32_RANGE, e);
  if (!(v > -2147483649.0 && v < 2147483648.0)) return (int32_t)pp_raise(PP_E_INT32_RANGE, e);
  return (int32_t)v;
}
/* NumPy's float -> int casts, as they come out on x86: NaN and out of range give the minimum */
PP_FN int64_t pp_np_cast_i64_f64(double v) {
  return (v >= -PP_TWO63 && v < PP_TWO63) ? (int64_t)v : PP_I64_MIN;
}
PP_FN int32_t pp_np_cast_i32_f64(double v) {
  return (v > -2147483649.0 && v < 2147483648.0) ? (int32_t)v : (int32_t)(-2147483647 - 1);
}

/* ---- math: CPython's math_1 and math_2 error rules ---- */
PP_FN double pp_math_result(double r, double x, int can_overflow, int64_t *e) {
  if (r != r && x == x) return pp_raise(PP_E_MATH_DOMAIN, e);
  if (isinf(r) && isfinite(x)) return pp_raise(can_overflow ? PP_E_MATH_RANGE : PP_E_MATH_DOMAIN, e);
  return r;
}
PP_FN double pp_math_fmod(double x, double y, int64_t *e) {
  if (isinf(y) && isfinite(x)) return x;
  double r = fmod(x, y);
  if (r != r && x == x && y == y) return pp_raise(PP_E_MATH_DOMAIN, e);
  return r;
}
PP_FN double pp_math_pow(double x, double y, int64_t *e) {
  double r = pow(x, y);
  if (isfinite(x) && isfinite(y) && !isfinite(r)) {
    if (r != r || x == 0) return pp_raise(PP_E_MATH_DOMAIN, e);
    return pp_raise(PP_E_MATH_RANGE, e);
  }
  return r;
}
"""


def math_helpers() -> str:
    lines = []
    for func in MATH_UNARY:
        overflow = 1 if func in MATH_CAN_OVERFLOW else 0
        lines.append(f"PP_FN double pp_math_{func}(double x, int64_t *e) {{ "
                     f"return pp_math_result({func}(x), x, {overflow}, e); }}")
    return "\n".join(lines) + "\n"


def semantics_runtime(function_prefix: str) -> str:
    """The helpers for one target; ``function_prefix`` is what PP_FN expands to."""
    return (f"#include <string.h>\n#define PP_FN {function_prefix}\n" + fault_macros() + _HELPERS
            + math_helpers() + HALF_HELPERS)
