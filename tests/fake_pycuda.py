"""A stand-in for PyCUDA that runs ``backend="cuda"`` on the CPU runtime, with the CUDA
driver's launch rules, so that everything the GPU path computes before a launch (module,
attribute, allocations, parameters, grid, block, dynamic shared bytes) is checked without a
GPU: a launch the driver would refuse raises here, and the results must be Python's.

It models only what :mod:`polypipe.codegen.cuda_runtime` uses, as PyCUDA 2026.1 spells it:
``driver.init``, ``Device.count``, ``Context.get_device().compute_capability()``,
``mem_alloc``/``memcpy_htod``/``memcpy_dtoh``/``memset_d8``, ``Event``,
``function_attribute.MAX_DYNAMIC_SHARED_SIZE_BYTES``, ``Function.set_attribute`` and the call
``function(*args, block=, grid=, shared=)``, ``compiler.SourceModule`` and
``autoprimaryctx``. Device memory is host memory (NumPy buffers at their own addresses).
"""

from __future__ import annotations

import sys
import types

import numpy as np

# Limits of compute capability 9.0 (CUDA programming guide, "Technical specifications").
MAX_THREADS, MAX_BLOCK = 1024, (1024, 1024, 64)
MAX_GRID = (2**31 - 1, 65535, 65535)
DEFAULT_SHARED, MAX_SHARED = 48 * 1024, 227 * 1024


class Allocation:
    def __init__(self, nbytes: int):
        self.buffer = np.zeros(max(nbytes, 1), dtype=np.uint8)
        self.itemsize = 8    # the CPU runtime checks element sizes: fault records are int64,
        # an array copied in sets its own (memcpy_htod)

    def __int__(self) -> int:
        return int(self.buffer.ctypes.data)

    __index__ = __int__


class FakeDriver(types.ModuleType):
    """``pycuda.driver``: records every launch in ``launches``."""

    class Error(Exception):
        pass

    class CompileError(Error):
        pass

    class LaunchRefused(Error):
        """What the driver would answer (CUDA_ERROR_INVALID_VALUE and the like)."""

    def __init__(self):
        super().__init__("pycuda.driver")
        self.launches: list[dict] = []
        self.allocations: list[Allocation] = []
        self.function_attribute = types.SimpleNamespace(MAX_DYNAMIC_SHARED_SIZE_BYTES=8)

        class Device:
            @staticmethod
            def count() -> int:
                return 1

        class Context:
            @staticmethod
            def get_device():
                return types.SimpleNamespace(compute_capability=lambda: (9, 0))

        class Event:
            def record(self, stream=None):
                pass

            def synchronize(self):
                pass

            def time_till(self, other) -> float:
                return 0.0

        self.Device, self.Context, self.Event = Device, Context, Event

    def init(self) -> None:
        pass

    def mem_alloc(self, nbytes: int) -> Allocation:
        allocation = Allocation(nbytes)
        self.allocations.append(allocation)
        return allocation

    @staticmethod
    def memcpy_htod(allocation: Allocation, array: np.ndarray) -> None:
        allocation.buffer[:array.nbytes] = np.frombuffer(array.tobytes(), np.uint8)
        allocation.itemsize = array.itemsize

    @staticmethod
    def memcpy_dtoh(array: np.ndarray, allocation: Allocation) -> None:
        array.reshape(-1).view(np.uint8)[:] = allocation.buffer[:array.nbytes]

    @staticmethod
    def memset_d8(allocation: Allocation, value: int, count: int) -> None:
        allocation.buffer[:count] = value


class FakeFunction:
    def __init__(self, driver: FakeDriver, module, name: str):
        self.driver, self.module, self.name = driver, module, name
        self.max_dynamic = DEFAULT_SHARED

    def set_attribute(self, attribute, value: int) -> None:
        if attribute != self.driver.function_attribute.MAX_DYNAMIC_SHARED_SIZE_BYTES:
            raise self.driver.LaunchRefused(f"unknown attribute {attribute}")
        if value > MAX_SHARED:
            raise self.driver.LaunchRefused(f"{self.name}: {value} B of dynamic shared memory "
                                            f"exceed the {MAX_SHARED} B a block may have")
        self.max_dynamic = value

    def __call__(self, *parameters, block, grid, shared=0, stream=None):
        from polypipe.codegen.cuda_cpu import GlobalArray

        grid = tuple(grid) + (1,) * (3 - len(grid))
        if np.prod(block) > MAX_THREADS or any(b > m for b, m in zip(block, MAX_BLOCK)):
            raise self.driver.LaunchRefused(f"{self.name}: block {block} is too large")
        if any(g > m for g, m in zip(grid, MAX_GRID)):
            raise self.driver.LaunchRefused(f"{self.name}: grid {grid} exceeds {MAX_GRID}")
        if shared > self.max_dynamic:
            raise self.driver.LaunchRefused(f"{self.name}: {shared} B of dynamic shared memory "
                                            f"without the attribute (limit "
                                            f"{self.max_dynamic} B)")
        self.driver.launches.append({"kernel": self.name, "block": tuple(block),
                                     "grid": grid, "shared": shared,
                                     "parameters": list(parameters)})
        arrays = [GlobalArray(f"allocation{k}", int(a), a.buffer.nbytes, a.itemsize)
                  for k, a in enumerate(self.driver.allocations)]
        self.module.launch(self.name, grid=grid, block=tuple(block), dynamic_shared=shared,
                           parameters=[np.uintp(int(p)) if isinstance(p, Allocation) else p
                                       for p in parameters], arrays=arrays)


def install(monkeypatch) -> FakeDriver:
    """Put the fake in ``sys.modules`` for one test; returns its driver (launch records)."""
    from polypipe.codegen.cuda_cpu import compile_cuda_cpu

    driver = FakeDriver()

    class SourceModule:
        def __init__(self, source, no_extern_c=False, arch=None, options=None, **_):
            if not no_extern_c or arch != "sm_90":
                raise driver.CompileError(f"unexpected no_extern_c={no_extern_c} arch={arch}")
            self.cpu = compile_cuda_cpu(source)

        def get_function(self, name: str) -> FakeFunction:
            if name not in self.cpu.kernels:
                raise driver.Error(f"named symbol not found: {name}")
            return FakeFunction(driver, self.cpu, name)

    package = types.ModuleType("pycuda")
    compiler = types.ModuleType("pycuda.compiler")
    compiler.SourceModule = SourceModule
    package.driver, package.compiler = driver, compiler
    package.autoprimaryctx = types.ModuleType("pycuda.autoprimaryctx")
    for name, module in (("pycuda", package), ("pycuda.driver", driver),
                         ("pycuda.compiler", compiler),
                         ("pycuda.autoprimaryctx", package.autoprimaryctx)):
        monkeypatch.setitem(sys.modules, name, module)
    return driver
