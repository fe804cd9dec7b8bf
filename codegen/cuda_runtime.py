"""Run the CUDA translation unit through PyCUDA: compile, launch, time.

The grid is read off the schedule at the concrete sizes: the block coordinates every kernel
instance falls in form a box (isl), whose extents give gridDim (x: column tiles, y: row tiles,
z: the outer output dimensions flattened) and whose corner the kernel adds to blockIdx.
Arguments may be NumPy arrays (copied in and out) or device arrays: anything with
``__cuda_array_interface__`` (CuPy, PyTorch, PyCUDA's GPUArray), passed without copies.

Status: written and unit-tested on a machine without a GPU (grid geometry, argument packing,
the errors below); the launch path itself has not yet run on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import islpy as isl
import numpy as np

from polypipe.errors import KernelRuntimeError


@dataclass(frozen=True)
class LaunchGeometry:
    """Block-coordinate box of one kernel at concrete sizes, and the grid that covers it."""

    lows: tuple[int, ...]
    counts: tuple[int, ...]

    @property
    def grid(self) -> tuple[int, int, int]:
        counts = self.counts
        z = 1
        for count in counts[:-2]:
            z *= count
        y = counts[-2] if len(counts) >= 2 else 1
        return (counts[-1], y, z)

    @property
    def empty(self) -> bool:
        return any(count <= 0 for count in self.counts)


def launch_geometry(kernel, params: Mapping[str, int]) -> LaunchGeometry:
    """The box of block coordinates the kernel's instances occupy for these sizes."""
    from polypipe.analysis.bounds import fix_parameters

    fixed = fix_parameters(kernel.program.context, params)
    blocks = kernel.block_of.intersect_domain(kernel.program.domain).intersect_params(
        fixed).range()
    width = kernel.contraction.rank
    if blocks.is_empty():
        return LaunchGeometry((0,) * width, (0,) * width)
    box = isl.Set.from_union_set(blocks.coalesce()) if blocks.n_set() == 1 else None
    if box is None:
        pieces = blocks.get_set_list()
        box = pieces.get_at(0)
        for index in range(1, pieces.n_set()):
            box = box.union(pieces.get_at(index).reset_tuple_id())
    lows, counts = [], []
    for dim in range(width):
        low = box.dim_min_val(dim).to_python()
        high = box.dim_max_val(dim).to_python()
        lows.append(low)
        counts.append(high - low + 1)
    return LaunchGeometry(tuple(lows), tuple(counts))


def cuda_unavailable_reason() -> str | None:
    """Why ``backend="cuda"`` cannot run here, or None when PyCUDA sees a GPU."""
    try:
        import pycuda.driver as driver  # type: ignore
    except ImportError:
        return ("backend='cuda' needs PyCUDA (pip install 'polypipe[cuda]') and an NVIDIA "
                "GPU with its driver; PyCUDA is not installed")
    try:
        driver.init()
        if driver.Device.count() == 0:
            return "backend='cuda': the CUDA driver reports no GPU"
    except Exception as exc:  # the driver's own error, e.g. no libcuda
        return f"backend='cuda': the CUDA driver could not start ({exc})"
    return None


def device_pointer(value) -> int | None:
    """The device address of a GPU array (``__cuda_array_interface__``), else None."""
    interface = getattr(value, "__cuda_array_interface__", None)
    if interface is None:
        return None
    return int(interface["data"][0])


class CudaExecutable:
    """All kernels of an optimized program compiled for the current GPU."""

    def __init__(self, optimized, binding):
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise KernelRuntimeError(reason)
        import pycuda.autoprimaryctx  # type: ignore  # noqa: F401  (shares CuPy/PyTorch's)
        import pycuda.driver as driver  # type: ignore
        from pycuda.compiler import SourceModule  # type: ignore

        self.driver = driver
        self.optimized = optimized
        self.source = optimized.cuda_source_for(binding)
        self.shared = [optimized.dynamic_shared_bytes(kernel, binding)
                       for kernel in optimized.kernels]
        self.packers = optimized.cuda_packers(binding)
        major, minor = driver.Context.get_device().compute_capability()
        try:
            self.module = SourceModule(self.source, no_extern_c=True,
                                       arch=f"sm_{major}{minor}", options=["-O3"])
        except driver.CompileError as exc:
            raise KernelRuntimeError(f"nvcc rejected the generated CUDA: {exc}") from None
        self.functions = [self.module.get_function(k.name) for k in optimized.kernels]

    def run(self, args, binding) -> float:
        """Launch every kernel in order; returns the GPU time in milliseconds."""
        driver = self.driver
        staged, copies = [], []
        for value in args:
            pointer = device_pointer(value)
            if isinstance(value, np.ndarray):
                buffer = driver.mem_alloc(max(value.nbytes, 1))
                driver.memcpy_htod(buffer, value)
                staged.append(buffer)
                copies.append((buffer, value))
            elif pointer is not None:
                staged.append(pointer)
            else:
                staged.append(value)
        start, end = driver.Event(), driver.Event()
        start.record()
        for function, kernel, packer, dynamic in zip(self.functions, self.optimized.kernels,
                                                     self.packers, self.shared):
            geometry = launch_geometry(kernel, binding.params)
            if geometry.empty:
                continue
            parameters = cuda_parameters(packer, staged, args, geometry)
            if dynamic:
                function.set_attribute(
                    driver.function_attribute.MAX_DYNAMIC_SHARED_SIZE_BYTES, dynamic)
            function(*parameters, block=(kernel.config.threads[1], kernel.config.threads[0], 1),
                     grid=geometry.grid, shared=dynamic)
        end.record()
        end.synchronize()
        for buffer, value in copies:
            driver.memcpy_dtoh(value, buffer)
        return start.time_till(end)


def cuda_parameters(packer, staged, args, geometry: LaunchGeometry) -> list:
    """Kernel parameters in the order CudaPrinter.parameters declares them.

    ``staged[i]`` is the device address (or allocation) standing for argument ``i``.
    """
    parameters: list = [np.uintp(int(staged[slot])) for slot in packer.array_slots]
    parameters += [np.int64(args[slot].shape[dim] if dim is not None else int(args[slot]))
                   for slot, dim in packer.int_getters]
    parameters += [np.float64(float(args[slot])) for slot in packer.float_slots]
    parameters += [np.int64(low) for low in geometry.lows]
    parameters += [np.int64(count) for count in geometry.counts]
    return parameters
