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
``pp_copy16<V>(dst, src)``
    one 16-byte access, ``V`` one of float4, double2, int4, longlong2; either side a register,
    shared or global address;
``pp_claim_fault(fault, code)``, ``pp_fault_or(slot, bits)``
    the fault record (codegen.value_printer): the first fault wins; warnings are or-ed;

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
static __device__ __forceinline__ void pp_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int PENDING> static __device__ __forceinline__ void pp_cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(PENDING)); }
template <typename V> static __device__ __forceinline__ void pp_copy16(void *dst, const void *src) { *reinterpret_cast<V *>(dst) = *reinterpret_cast<const V *>(src); }
static __device__ __forceinline__ bool pp_claim_fault(int64_t *fault, int64_t code) { return atomicCAS((unsigned long long *)fault, 0ULL, (unsigned long long)code) == 0ULL; }
static __device__ __forceinline__ void pp_fault_or(int64_t *slot, int64_t bits) { atomicOr((unsigned long long *)slot, (unsigned long long)bits); }
#endif
"""
