"""The device interface every printed CUDA translation unit starts with.

The printed text uses nothing device-specific beyond these (so that the same text compiles for
the GPU with nvcc and, with ``-DPP_CPU``, for the checked CPU runtime of
:mod:`codegen.cuda_cpu`, whose definitions are in ``pp_cuda_cpu.h``):

``PP_LD(array, index)``
    every read of a global or shared array element (an rvalue);
``PP_ST(array, index)``
    every write of one (an lvalue). Register arrays are plain locals, indexed directly;
``PP_SHARED(type, name, count)``
    a static shared array (all of a kernel's static shared arrays together at most
    ``STATIC_SHARED_LIMIT`` bytes);
``PP_SHARED_DYNAMIC(type, name, count, offset)``
    a shared array carved from dynamic shared memory at a byte offset (used when the total
    is above the static limit; then every shared array of the kernel is dynamic);
``pp_cp_async<BYTES>(shared, global)``, ``pp_cp_async_commit()``, ``pp_cp_async_wait<N>()``
    asynchronous 4-, 8- or 16-byte copies global -> shared, their groups, and waiting for all
    committed groups of the thread but the newest N;
``pp_cp_async_zfill<BYTES>(shared, global, valid)``
    the same copy reading only the first ``valid`` bytes (a multiple of the source's element
    size) and zero-filling the rest, for the edges of partial tiles (PTX's ``src-size``); with
    ``valid`` 0 nothing is read, but the address must still lie in a global array;
``pp_copy16<V>(dst, src)``
    one 16-byte access, ``V`` one of float4, double2, int4, longlong2; either side a register,
    shared or global address;
``pp_claim_fault(fault, code)``, ``pp_fault_or(slot, bits)``
    the fault record (codegen.value_printer): the first fault wins; warnings are or-ed;
``pp_ldmatrix_x1/x2/x4(uint32_t (&r)[N], const void *row)``, ``pp_ldmatrix_x1/x2/x4_trans``
    warp-collective ``ldmatrix.sync.aligned.m8n8.x{1,2,4}{,.trans}.shared.b16``: lane
    ``8 j + r`` passes the shared address of row ``r`` (16 bytes, 16-byte aligned) of matrix
    ``j`` (only lanes ``0 .. 8 N - 1`` are read); half ``h`` of ``r[j]`` of lane ``L`` is row
    ``L / 4``, column ``2 (L % 4) + h`` of matrix ``j`` (``_trans``: row and column swapped);
``pp_mma_m16n8k16_f16(d, a, b, c)``, ``pp_mma_m16n8k16_bf16(d, a, b, c)``
    warp-collective ``mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32``, with
    ``float (&d)[4]``, ``const uint32_t (&a)[4]``, ``const uint32_t (&b)[2]``,
    ``const float (&c)[4]`` in the PTX fragment layouts (polypipe.gpu_mma); ``d`` may be
    ``c``. Every lane of the warp must execute the same collectives (the CPU runtime reports
    a warp whose lanes do not, and a block whose thread count is not a multiple of 32);

plus CUDA's own ``__global__``, ``__launch_bounds__``, ``__restrict__``, ``__align__``,
``__device__ __forceinline__``, ``threadIdx``/``blockIdx``/``blockDim``/``gridDim`` and
``__syncthreads()``.
"""

from __future__ import annotations

STATIC_SHARED_LIMIT = 48 * 1024

DEVICE_PRELUDE = r"""#include <stdint.h>
#include <math.h>
#ifdef PP_CPU
#include "pp_cuda_cpu.h"
#else
#define PP_LD(array, index) ((array)[index])
#define PP_ST(array, index) ((array)[index])
#define PP_SHARED(type, name, count) __shared__ __align__(16) type name[count]
#define PP_SHARED_DYNAMIC(type, name, count, offset) type *name = reinterpret_cast<type *>(pp_dynamic_shared() + (offset))
static __device__ __forceinline__ unsigned char *pp_dynamic_shared() { extern __shared__ __align__(16) unsigned char pp_shared[]; return pp_shared; }
template <int BYTES> static __device__ __forceinline__ void pp_cp_async(void *shared, const void *global) {
  unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  if constexpr (BYTES == 16)  /* whole 16-byte vectors may bypass L1 */
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(address), "l"(global));
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" :: "r"(address), "l"(global), "n"(BYTES));
}
template <int BYTES> static __device__ __forceinline__ void pp_cp_async_zfill(void *shared, const void *global, unsigned valid) {
  unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  if constexpr (BYTES == 16)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(address), "l"(global), "r"(valid));
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" :: "r"(address), "l"(global), "n"(BYTES), "r"(valid));
}
static __device__ __forceinline__ void pp_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int PENDING> static __device__ __forceinline__ void pp_cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(PENDING)); }
template <typename V> static __device__ __forceinline__ void pp_copy16(void *dst, const void *src) { *reinterpret_cast<V *>(dst) = *reinterpret_cast<const V *>(src); }
static __device__ __forceinline__ bool pp_claim_fault(int64_t *fault, int64_t code) { return atomicCAS((unsigned long long *)fault, 0ULL, (unsigned long long)code) == 0ULL; }
static __device__ __forceinline__ void pp_fault_or(int64_t *slot, int64_t bits) { atomicOr((unsigned long long *)slot, (unsigned long long)bits); }
/* ldmatrix: "memory", since the rows are memory the compiler must have stored by then. */
static __device__ __forceinline__ void pp_ldmatrix_x1(uint32_t (&r)[1], const void *row) { asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(static_cast<unsigned>(__cvta_generic_to_shared(row))) : "memory"); }
static __device__ __forceinline__ void pp_ldmatrix_x2(uint32_t (&r)[2], const void *row) { asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(static_cast<unsigned>(__cvta_generic_to_shared(row))) : "memory"); }
static __device__ __forceinline__ void pp_ldmatrix_x4(uint32_t (&r)[4], const void *row) { asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(static_cast<unsigned>(__cvta_generic_to_shared(row))) : "memory"); }
static __device__ __forceinline__ void pp_ldmatrix_x1_trans(uint32_t (&r)[1], const void *row) { asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(static_cast<unsigned>(__cvta_generic_to_shared(row))) : "memory"); }
static __device__ __forceinline__ void pp_ldmatrix_x2_trans(uint32_t (&r)[2], const void *row) { asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(static_cast<unsigned>(__cvta_generic_to_shared(row))) : "memory"); }
static __device__ __forceinline__ void pp_ldmatrix_x4_trans(uint32_t (&r)[4], const void *row) { asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(static_cast<unsigned>(__cvta_generic_to_shared(row))) : "memory"); }
/* mma: every input is read before d is written, so d may be c. */
#define PP_MMA_M16N8K16(types) asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." types ".f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n" : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]))
static __device__ __forceinline__ void pp_mma_m16n8k16_f16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) { PP_MMA_M16N8K16("f16.f16"); }
static __device__ __forceinline__ void pp_mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) { PP_MMA_M16N8K16("bf16.bf16"); }
#undef PP_MMA_M16N8K16
#endif
"""
