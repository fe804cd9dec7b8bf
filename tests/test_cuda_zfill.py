"""``pp_cp_async_zfill``: a cp.async that reads the first ``valid`` bytes of its source and
zero-fills the rest (the edge of a partial tile), on the CPU runtime of CUDA, and its GPU
spelling compiled with nvcc. The bytes read are checked like any copy's; the ones not read are
not, but the address must still lie in a global array."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from polypipe.codegen.cuda_cpu import CudaCpuError, GlobalArray, compile_cuda_cpu
from polypipe.codegen.cuda_device import DEVICE_PRELUDE
from polypipe.codegen.nvcc import compile_cubin, find_nvcc

needs_cxx = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
    reason="no C++ compiler: the CPU CUDA runtime compiles CUDA as C++17")

# Thread t copies 16-byte chunk t of a row of n halves into shared memory, reading only the
# halves below n (the rest zero), then writes the shared row out.
KERNEL = DEVICE_PRELUDE + r"""
extern "C" __global__ void __launch_bounds__(4) edge(uint16_t *out, const uint16_t *in,
                                                     int64_t n, int64_t shift,
                                                     int64_t idle) {
  PP_SHARED(uint16_t, tile, 32);
  int t = threadIdx.x;
  int64_t first = 8 * t, have = n - first;
  unsigned valid = have <= 0 ? 0u : have >= 8 ? 16u : (unsigned)(2 * have);
  const uint16_t *from = have > 0 ? in + first + shift : in + idle;
  pp_cp_async_zfill<16>(&tile[8 * t], from, valid);
  pp_cp_async_commit();
  pp_cp_async_wait<0>();
  __syncthreads();
  for (int e = 0; e < 8; e++) PP_ST(out, 8 * t + e) = PP_LD(tile, 8 * t + e);
}
"""


def _run(n: int, length: int | None = None, shift: int = 0, idle: int = 0):
    module = compile_cuda_cpu(KERNEL)
    source = np.arange(1, (length or n) + 1, dtype=np.uint16)
    out = np.full(32, 0xFFFF, np.uint16)
    module.launch("edge", grid=(1, 1, 1), block=(4, 1, 1), dynamic_shared=0,
                  parameters=[np.uintp(out.ctypes.data), np.uintp(source.ctypes.data),
                              np.int64(n), np.int64(shift), np.int64(idle)],
                  arrays=[GlobalArray.of("out", out), GlobalArray.of("in", source)])
    return out


@needs_cxx
@pytest.mark.parametrize("n", [32, 24, 19, 8, 1])
def test_the_bytes_past_the_edge_are_zero(n):
    out = _run(n)
    want = np.zeros(32, np.uint16)
    want[:n] = np.arange(1, n + 1)
    assert np.array_equal(out, want)


@needs_cxx
def test_a_read_past_the_array_is_still_reported():
    with pytest.raises(CudaCpuError, match="out of bounds"):
        _run(19, length=19, shift=8)       # thread 1 reads 3 halves from 16, beyond 19


@needs_cxx
def test_an_address_in_no_array_is_reported_even_when_nothing_is_read():
    with pytest.raises(CudaCpuError, match="out of bounds"):
        _run(8, length=8, idle=4096)       # threads 1-3 read nothing, at a wild address
    _run(8, length=16, idle=8)             # ... or at one inside the array: fine


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_zfill_compiles_for_the_gpu(arch):
    _, resources = compile_cubin(KERNEL, arch)
    assert [r.name for r in resources] == ["edge"]
