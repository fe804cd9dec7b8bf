"""Everything ``backend="cuda"`` computes before a launch, checked on the CPU: a stand-in for
PyCUDA (:mod:`tests.fake_pycuda`) applies the driver's launch rules and runs each launch on
the CPU runtime, so the module, the shared-memory attribute, the allocations, the parameter
bytes, grid, block and dynamic shared memory must be right for the result to be Python's, and
they must be the very launches ``backend="emulate"`` makes."""

from __future__ import annotations

import numpy as np
import pytest

import polypipe as pp
from polypipe.codegen import cuda_cpu
from tests import fake_pycuda
from tests.kernels.contractions import CASES

BIG = pp.GpuConfig(block=(128, 128), threads=(16, 16), reduction=16, shared_stages=3,
                   register_stages=2)   # 49920 B of shared memory: above the 48 KiB default
CASES_RUN = [("gemm", (130, 136, 40), None), ("gemm", (256, 128, 64), BIG),
             ("batched_gemm", (40, 24, 20), None), ("2mm", (40, 36, 20), None),
             ("syrk", (40, 40, 12), None), ("conv2d_s1", (64, 16, 8), None),
             # threads 8 x 16: block (x, y) = (16, 8), so swapping them is caught
             ("gemm", (100, 72, 40), pp.GpuConfig(block=(32, 64), threads=(8, 16),
                                                  reduction=8))]


def _emulated_launches(monkeypatch) -> list:
    records = []
    original = cuda_cpu.CudaCpuModule.launch

    def launch(self, kernel, **kw):
        records.append({"kernel": kernel, "block": tuple(kw["block"]),
                        "grid": tuple(kw["grid"]), "shared": kw["dynamic_shared"],
                        "parameters": list(kw["parameters"])})
        return original(self, kernel, **kw)

    monkeypatch.setattr(cuda_cpu.CudaCpuModule, "launch", launch)
    return records


@pytest.mark.parametrize("name, sizes, config", CASES_RUN)
def test_cuda_path_launches_what_the_emulator_launches(monkeypatch, name, sizes, config):
    driver = fake_pycuda.install(monkeypatch)
    emulated = _emulated_launches(monkeypatch)
    opt = pp.optimize(pp.kernel(CASES[name].func), config or pp.GpuConfig())
    rng = np.random.default_rng(1)
    on_cuda = CASES[name].make(rng, *sizes, np.float32)
    on_cpu = [a.copy() if isinstance(a, np.ndarray) else a for a in on_cuda]
    expected = CASES[name].expect([a.copy() if isinstance(a, np.ndarray) else a
                                   for a in on_cuda])
    opt.run(*on_cuda, backend="cuda")
    cuda_launches = [dict(r) for r in driver.launches]
    emulated.clear()
    opt.run(*on_cpu, backend="emulate")
    assert len(cuda_launches) == len(emulated) == len(opt.kernels)
    for gpu, cpu in zip(cuda_launches, emulated):
        assert {k: gpu[k] for k in ("kernel", "block", "grid", "shared")} == {
            k: cpu[k] for k in ("kernel", "block", "grid", "shared")}
        # Same parameter types and, apart from the addresses, the same values.
        assert [type(p) for p in gpu["parameters"]] == [type(p) for p in cpu["parameters"]]
        pointers = [isinstance(p, np.uintp) for p in cpu["parameters"]]
        assert [p for p, ptr in zip(gpu["parameters"], pointers) if not ptr] == [
            p for p, ptr in zip(cpu["parameters"], pointers) if not ptr]
    for slot, value in expected.items():
        np.testing.assert_allclose(on_cuda[slot], value, rtol=2e-5, atol=2e-5)
        np.testing.assert_array_equal(on_cuda[slot], on_cpu[slot])
    if config is BIG:
        assert cuda_launches[0]["shared"] > 48 * 1024


def test_without_the_attribute_a_big_shared_launch_is_refused_with_the_reason(monkeypatch):
    fake_pycuda.install(monkeypatch)
    monkeypatch.setattr(fake_pycuda.FakeFunction, "set_attribute", lambda *a: None)
    opt = pp.optimize(pp.kernel(CASES["gemm"].func), BIG)
    args = CASES["gemm"].make(np.random.default_rng(0), 256, 128, 64, np.float32)
    with pytest.raises(pp.KernelRuntimeError, match="refused to launch .*49920 B dynamic"):
        opt.run(*args, backend="cuda")


def test_a_grid_beyond_cuda_limits_is_refused_on_both_backends(monkeypatch):
    fake_pycuda.install(monkeypatch)
    opt = pp.optimize(pp.kernel(CASES["gemm"].func),
                      pp.GpuConfig(block=(4, 4), threads=(2, 2), reduction=2, shared_stages=1,
                                   register_stages=1))
    rows = 4 * 65536 + 4     # 65537 row tiles: gridDim.y at most 65535
    args = [1.0, 1.0, np.zeros((rows, 1), np.float32), np.zeros((rows, 1), np.float32),
            np.zeros((1, 1), np.float32)]
    for backend in ("cuda", "emulate"):
        with pytest.raises(pp.KernelRuntimeError, match="65537 blocks along y"):
            opt.run(*args, backend=backend)
