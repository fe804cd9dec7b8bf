"""The CUDA backend: launch geometry and argument packing (CPU-checkable), clear errors where
it cannot run, and results on a GPU (marked `gpu`, skipped without one)."""

import re

import numpy as np
import pytest

import polypipe as pp
from polypipe import KernelRuntimeError
from polypipe.codegen.cuda_runtime import (cuda_parameters, cuda_unavailable_reason,
                                           launch_geometry)
from polypipe.kernel import bind_arguments
from tests.kernels.contractions import CASES

NO_GPU = cuda_unavailable_reason()


def test_cuda_launch_geometry_covers_every_block():
    opt = pp.optimize(pp.kernel(CASES["batched_gemm"].func), pp.GpuConfig(), prove=False)
    kernel = opt.kernels[0]
    geometry = launch_geometry(kernel, {"NB": 3, "M": 100, "N": 72, "K": 53})
    assert geometry.lows == (0, 0, 0) and geometry.counts == (3, 2, 2)
    assert geometry.grid == (2, 2, 3)
    assert launch_geometry(kernel, {"NB": 3, "M": 0, "N": 72, "K": 53}).empty


def test_cuda_launch_geometry_of_triangular_output():
    opt = pp.optimize(pp.kernel(CASES["syrk"].func),
                      pp.GpuConfig(block=(16, 16), threads=(4, 4)), prove=False)
    geometry = launch_geometry(opt.kernels[0], {"N": 40, "M": 7})
    assert geometry.counts == (3, 3)  # the box around the lower-triangular block pattern


class FakeDeviceArray:
    """Stands in for a CuPy/PyTorch array: shape, dtype and a device address."""

    def __init__(self, shape, dtype, address):
        self.shape = shape
        self.__cuda_array_interface__ = {"shape": shape, "typestr": np.dtype(dtype).str,
                                         "data": (address, False), "strides": None,
                                         "version": 3}


def test_cuda_parameters_follow_the_kernel_signature():
    opt = pp.optimize(pp.kernel(CASES["gemm"].func), pp.GpuConfig(), prove=False)
    C = FakeDeviceArray((100, 72), np.float32, 0x1000)
    A = FakeDeviceArray((100, 53), np.float32, 0x2000)
    B = FakeDeviceArray((53, 72), np.float32, 0x3000)
    args = (1.5, 0.5, C, A, B)
    binding = bind_arguments(opt.original, args, device_arrays=True)
    [packer] = opt.cuda_packers(binding)
    geometry = launch_geometry(opt.kernels[0], binding.params)
    parameters = cuda_parameters(packer, [None, None, 0x1000, 0x2000, 0x3000], args, geometry,
                                 0x4000)
    assert [int(p) for p in parameters[:3]] == [0x1000, 0x2000, 0x3000]
    assert [int(p) for p in parameters[3:12]] == [100, 72, 100, 53, 53, 72, 100, 72, 53]
    assert [float(p) for p in parameters[12:14]] == [1.5, 0.5]
    assert [int(p) for p in parameters[14:18]] == [0, 0, 2, 2]
    assert int(parameters[18]) == 0x4000 and len(parameters) == 19   # the fault record
    source = opt.cuda_source_for(binding)
    assert len(re.findall(r"int64_t pp_i\d+[,)]", source)) == 9
    assert "int64_t pp_block_count1, int64_t *pp_fault)" in source


def test_cuda_rejects_device_array_of_wrong_rank():
    opt = pp.optimize(pp.kernel(CASES["gemm"].func), pp.GpuConfig(), prove=False)
    bad = FakeDeviceArray((100,), np.float32, 0x1000)
    with pytest.raises(pp.ArgumentError, match="C-contiguous 2-D array"):
        bind_arguments(opt.original, (1.0, 1.0, bad, bad, bad), device_arrays=True)


@pytest.mark.skipif(NO_GPU is None, reason="a GPU is present")
def test_cuda_backend_says_why_it_cannot_run():
    opt = pp.optimize(pp.kernel(CASES["gemm"].func), pp.GpuConfig(), prove=False)
    args = CASES["gemm"].make(np.random.default_rng(0), 8, 8, 8, np.float32)
    with pytest.raises(KernelRuntimeError, match="backend='cuda'"):
        opt.run(*args, backend="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(NO_GPU is not None, reason=str(NO_GPU))
@pytest.mark.parametrize("name", ["gemm", "batched_gemm", "conv2d_s2", "2mm"])
def test_cuda_matches_numpy_on_gpu(name):
    opt = pp.optimize(pp.kernel(CASES[name].func), pp.GpuConfig())
    case = CASES[name]
    args = case.make(np.random.default_rng(0), 100, 72, 53, np.float32)
    want = case.expect([a.copy() if isinstance(a, np.ndarray) else a for a in args])
    opt.run(*args, backend="cuda")
    for index, expected in want.items():
        assert np.allclose(args[index], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(NO_GPU is None, reason="a GPU is present")
def test_cuda_timing_says_why_it_cannot_run():
    opt = pp.optimize(pp.kernel(CASES["matmul"].func), pp.GpuConfig(), prove=False)
    args = CASES["matmul"].make(np.random.default_rng(0), 8, 8, 8, np.float32)
    with pytest.raises(KernelRuntimeError, match="backend='cuda'"):
        opt.time_cuda(*args)
