/* CPU definitions of polypipe's CUDA interface (see codegen/cuda_device.py).
 *
 * Included by DEVICE_PRELUDE when PP_CPU is defined, so that the exact translation unit the
 * CUDA printer writes compiles with the system C++ compiler (C++17). Everything checked
 * (memory accesses, barriers, cp.async) is a call into the runtime (pp_cuda_cpu.cpp), compiled
 * once per build flavour: this header stays small so that per-kernel compiles stay fast.
 * Every entry point takes the caller's __LINE__, so that a report names the source line.
 */
#ifndef PP_CUDA_CPU_H
#define PP_CUDA_CPU_H

#include <stddef.h>
#include <stdint.h>

/* ---- CUDA keywords: no address spaces on the CPU, qualifiers become GCC's own ---- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
/* Written after the type (`float __align__(16) r[16]`): GCC then aligns the variable. */
#define __align__(n) __attribute__((aligned(n)))

struct pp_uint3 { unsigned x, y, z; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) double2 { double x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(16) longlong2 { long long x, y; };

/* One array argument of a launch, registered for bounds and race checks and for reports. */
struct pp_array_desc {
  const char *name;
  uint64_t address, nbytes, itemsize;
};

/* A launch: geometry, thread order, the registered arrays, and where a report goes. */
struct pp_launch_desc {
  uint32_t grid[3], block[3];
  uint64_t dynamic_shared;
  int32_t order; /* 0 scrambled (seeded), 1 forward, 2 reverse thread-id order */
  int32_t reserved;
  uint64_t seed;
  uint64_t n_arrays;
  const pp_array_desc *arrays;
  char *report;
  uint64_t report_size;
};

extern "C" {
/* The coordinates of the fiber now running; the scheduler updates them at every switch. */
struct pp_cpu_coordinates { pp_uint3 thread_idx, block_idx, block_dim, grid_dim; };
extern pp_cpu_coordinates pp_cpu_now;

void *pp_cpu_access(const void *base, const void *address, uint32_t bytes, int32_t write,
                    int32_t line);
void *pp_cpu_shared(const char *name, uint32_t itemsize, uint64_t count, int64_t offset,
                    int32_t line);
void pp_cpu_syncthreads(int32_t line);
void pp_cpu_cp_async(void *shared, const void *global, uint32_t bytes, int32_t line);
void pp_cpu_cp_async_zfill(void *shared, const void *global, uint32_t bytes, uint32_t valid,
                           int32_t line);
void pp_cpu_commit(int32_t line);
void pp_cpu_wait(int32_t pending, int32_t line);
void pp_cpu_copy16(void *dst, const void *src, int32_t line);
/* Warp collectives (pp_cuda_cpu_warp.cpp): every lane of the warp calls, each gets its own. */
void pp_cpu_ldmatrix(uint32_t *r, int32_t matrices, int32_t trans, const void *row,
                     int32_t line);
void pp_cpu_mma_m16n8k16(float *d, const uint32_t *a, const uint32_t *b, const float *c,
                         int32_t bf16, int32_t line);
int pp_cpu_run(const pp_launch_desc *desc, const char *kinds, void ***args,
               void (*entry)(void *), void *closure);
}

#define threadIdx (static_cast<const pp_uint3 &>(pp_cpu_now.thread_idx))
#define blockIdx (static_cast<const pp_uint3 &>(pp_cpu_now.block_idx))
#define blockDim (static_cast<const pp_uint3 &>(pp_cpu_now.block_dim))
#define gridDim (static_cast<const pp_uint3 &>(pp_cpu_now.grid_dim))
#define __syncthreads() pp_cpu_syncthreads(__LINE__)

namespace pp_cpu {
template <typename T, typename I>
static inline const T *ld(const T *base, I index, int line) {
  return static_cast<const T *>(pp_cpu_access(base, base + index, sizeof(T), 0, line));
}
template <typename T, typename I>
static inline T *st(T *base, I index, int line) {
  return static_cast<T *>(pp_cpu_access(base, base + index, sizeof(T), 1, line));
}

/* `pp_cp_async<16>(d, s)` becomes `pp_cpu::at{__LINE__}.cp_async<16>(d, s)`: the call keeps
 * its GPU spelling and gains the line. */
struct at {
  int line;
  template <int BYTES> void cp_async(void *shared, const void *global) const {
    static_assert(BYTES == 4 || BYTES == 8 || BYTES == 16, "cp.async copies 4, 8 or 16 bytes");
    pp_cpu_cp_async(shared, global, BYTES, line);
  }
  template <int BYTES> void cp_async_zfill(void *shared, const void *global,
                                           uint32_t valid) const {
    static_assert(BYTES == 4 || BYTES == 8 || BYTES == 16, "cp.async copies 4, 8 or 16 bytes");
    pp_cpu_cp_async_zfill(shared, global, BYTES, valid, line);
  }
  template <int PENDING> void cp_async_wait() const {
    static_assert(PENDING >= 0, "cp.async.wait_group takes a non-negative count");
    pp_cpu_wait(PENDING, line);
  }
  template <typename V> void copy16(void *dst, const void *src) const {
    static_assert(sizeof(V) == 16 && alignof(V) == 16, "pp_copy16 moves one 16-byte vector");
    pp_cpu_copy16(dst, src, line);
  }
  /* The GPU's signatures exactly, so that a wrong register count fails on both targets. */
  void ldmatrix_x1(uint32_t (&r)[1], const void *row) const { pp_cpu_ldmatrix(r, 1, 0, row, line); }
  void ldmatrix_x2(uint32_t (&r)[2], const void *row) const { pp_cpu_ldmatrix(r, 2, 0, row, line); }
  void ldmatrix_x4(uint32_t (&r)[4], const void *row) const { pp_cpu_ldmatrix(r, 4, 0, row, line); }
  void ldmatrix_x1_trans(uint32_t (&r)[1], const void *row) const { pp_cpu_ldmatrix(r, 1, 1, row, line); }
  void ldmatrix_x2_trans(uint32_t (&r)[2], const void *row) const { pp_cpu_ldmatrix(r, 2, 1, row, line); }
  void ldmatrix_x4_trans(uint32_t (&r)[4], const void *row) const { pp_cpu_ldmatrix(r, 4, 1, row, line); }
  void mma_f16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
               const float (&c)[4]) const { pp_cpu_mma_m16n8k16(d, a, b, c, 0, line); }
  void mma_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                const float (&c)[4]) const { pp_cpu_mma_m16n8k16(d, a, b, c, 1, line); }
};
}  // namespace pp_cpu

#define PP_LD(array, index) (*::pp_cpu::ld((array), (index), __LINE__))
#define PP_ST(array, index) (*::pp_cpu::st((array), (index), __LINE__))
/* A static array keeps its array type (as `__shared__ T name[count]` has); every thread of a
 * block gets the same storage for the same name. */
#define PP_SHARED(type, name, count)                                                      \
  type(&name)[count] = *reinterpret_cast<type(*)[count]>(                                 \
      pp_cpu_shared(#name, sizeof(type), (count), -1, __LINE__))
#define PP_SHARED_DYNAMIC(type, name, count, offset)                                       \
  type *name = static_cast<type *>(pp_cpu_shared(#name, sizeof(type), (count), (offset),   \
                                                 __LINE__))
#define pp_cp_async ::pp_cpu::at{__LINE__}.cp_async
#define pp_cp_async_zfill ::pp_cpu::at{__LINE__}.cp_async_zfill
#define pp_cp_async_commit() pp_cpu_commit(__LINE__)
#define pp_cp_async_wait ::pp_cpu::at{__LINE__}.cp_async_wait
#define pp_copy16 ::pp_cpu::at{__LINE__}.copy16
#define pp_ldmatrix_x1 ::pp_cpu::at{__LINE__}.ldmatrix_x1
#define pp_ldmatrix_x2 ::pp_cpu::at{__LINE__}.ldmatrix_x2
#define pp_ldmatrix_x4 ::pp_cpu::at{__LINE__}.ldmatrix_x4
#define pp_ldmatrix_x1_trans ::pp_cpu::at{__LINE__}.ldmatrix_x1_trans
#define pp_ldmatrix_x2_trans ::pp_cpu::at{__LINE__}.ldmatrix_x2_trans
#define pp_ldmatrix_x4_trans ::pp_cpu::at{__LINE__}.ldmatrix_x4_trans
#define pp_mma_m16n8k16_f16 ::pp_cpu::at{__LINE__}.mma_f16
#define pp_mma_m16n8k16_bf16 ::pp_cpu::at{__LINE__}.mma_bf16

/* Blocks and fibers never run concurrently: plain operations are the atomics. */
static inline bool pp_claim_fault(int64_t *fault, int64_t code) {
  if (*fault != 0) return false;
  *fault = code;
  return true;
}
static inline void pp_fault_or(int64_t *slot, int64_t bits) { *slot |= bits; }
static inline unsigned long long atomicCAS(unsigned long long *a, unsigned long long compare,
                                           unsigned long long value) {
  unsigned long long old = *a;
  if (old == compare) *a = value;
  return old;
}
static inline unsigned long long atomicOr(unsigned long long *a, unsigned long long bits) {
  unsigned long long old = *a;
  *a = old | bits;
  return old;
}

/* ---- the launcher: cuLaunchKernel's kernelParams, unpacked by the kernel's own types ---- */
namespace pp_cpu {
template <size_t... I> struct seq {};
template <size_t N, size_t... I> struct make_seq : make_seq<N - 1, N - 1, I...> {};
template <size_t... I> struct make_seq<0, I...> { typedef seq<I...> type; };

template <typename... P> struct call {
  void (*kernel)(P...);
  void **args;
};
template <typename... P, size_t... I> static void invoke_with(call<P...> *c, seq<I...>) {
  c->kernel(*static_cast<P *>(c->args[I])...);
}
template <typename... P> static void invoke(void *closure) {
  invoke_with(static_cast<call<P...> *>(closure), typename make_seq<sizeof...(P)>::type());
}
/* One kind letter per parameter: p pointer, f floating, i integer. */
template <typename T> struct kind { static const char value = 'i'; };
template <typename T> struct kind<T *> { static const char value = 'p'; };
template <> struct kind<float> { static const char value = 'f'; };
template <> struct kind<double> { static const char value = 'f'; };

/* The runtime swaps closure.args for a copy whose pointers point at its own copies of the
 * arrays (see relocated() in pp_cuda_cpu_check.cpp): hence the kinds and &closure.args. */
template <typename... P>
static int launch(void (*kernel)(P...), const pp_launch_desc *desc, void **args) {
  static const char kinds[] = {kind<P>::value..., '\0'};
  call<P...> closure = {kernel, args};
  return pp_cpu_run(desc, kinds, &closure.args, &invoke<P...>, &closure);
}

/* The parameter list as text for the driver's checks: the kind letters, then one size digit
 * per parameter. */
template <typename... P> static const char *signature(void (*)(P...)) {
  static const char text[] = {kind<P>::value..., char('0' + sizeof(P))..., '\0'};
  return text;
}
}  // namespace pp_cpu

#endif
