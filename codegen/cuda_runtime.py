"""Run the CUDA translation unit through PyCUDA: compile, launch, time.

The grid is read off the schedule at the concrete sizes: the block coordinates every kernel
instance falls in form a box (isl), whose extents give gridDim (x: column tiles, y: row tiles,
z: the outer output dimensions flattened) and whose corner the kernel adds to blockIdx.
Arguments may be NumPy arrays (copied in and out) or device arrays: anything with
``__cuda_array_interface__`` (CuPy, PyTorch, PyCUDA's GPUArray), passed without copies.

Status: the grid geometry, argument packing and errors are unit-tested without a GPU; the
launch path runs only in the ``gpu``-marked tests.
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
    """All kernels of an optimized program compiled for the current GPU and one set of sizes.

    The source is specialised to the sizes (constants, 32-bit indices, proved 16-byte copies);
    arrays whose device address is not 16-byte aligned get a variant with scalar copies from
    them (compiled once per such set). The compiled module is cached by PyCUDA by source and
    device.
    """

    def __init__(self, optimized, binding):
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise KernelRuntimeError(reason)
        import pycuda.autoprimaryctx  # type: ignore  # noqa: F401  (shares CuPy/PyTorch's)
        import pycuda.driver as driver  # type: ignore

        self.driver = driver
        self.optimized = optimized
        self.binding = binding
        self.shared = [optimized.dynamic_shared_bytes(kernel, binding)
                       for kernel in optimized.kernels]
        self.packers = optimized.cuda_packers(binding)
        self.geometries = [launch_geometry(kernel, binding.params)
                           for kernel in optimized.kernels]
        self._modules: dict[frozenset, tuple] = {}   # unaligned arrays -> (module, functions)
        self.faults: list = []                       # one device fault record per kernel
        self.source = ""

    def _functions(self, unaligned: frozenset) -> list:
        if unaligned in self._modules:
            return self._modules[unaligned][1]
        from pycuda.compiler import SourceModule  # type: ignore

        driver = self.driver
        source = self.optimized.cuda_source_for(self.binding, unaligned=unaligned)
        major, minor = driver.Context.get_device().compute_capability()
        try:
            module = SourceModule(source, no_extern_c=True, arch=f"sm_{major}{minor}",
                                  options=["-O3"])
        except driver.CompileError as exc:
            raise KernelRuntimeError(f"nvcc rejected the generated CUDA: {exc}") from None
        functions = [module.get_function(k.name) for k in self.optimized.kernels]
        for function, dynamic in zip(functions, self.shared):
            if dynamic:
                function.set_attribute(
                    driver.function_attribute.MAX_DYNAMIC_SHARED_SIZE_BYTES, dynamic)
        self._modules[unaligned] = (module, functions)   # the module owns the functions
        self.source = source
        return functions

    def _stage(self, args):
        """Device addresses for ``args`` (NumPy arrays copied in) and the copies to bring back."""
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
        return staged, copies

    def _launches(self, staged, args) -> list:
        """(function, parameters, block, grid, shared bytes) of every non-empty kernel."""
        names = [a.name for a in self.optimized.original.arguments]
        unaligned = frozenset(
            name for name, value, arg in zip(names, staged, args)
            if device_pointer(arg) is not None and int(value) % 16)
        functions = self._functions(unaligned)
        launches = []
        for function, kernel, packer, dynamic, geometry, fault in zip(
                functions, self.optimized.kernels, self.packers, self.shared, self.geometries,
                self.faults):
            if geometry.empty:
                continue
            threads = kernel.config.threads
            launches.append((function, cuda_parameters(packer, staged, args, geometry, fault),
                             (threads[1], threads[0], 1), geometry.grid, dynamic))
        return launches

    def run(self, args, binding=None, repeat: int = 1) -> float:
        """Launch every kernel in order ``repeat`` times; returns the GPU milliseconds of one
        repetition (CUDA events around the launches only). A kernel that met an operation at
        which Python raises is reported as codegen.semantics.check_fault_record says."""
        driver = self.driver
        staged, copies = self._stage(args)
        self.faults = [self._fault_record() for _ in self.optimized.kernels]
        launches = self._launches(staged, args)
        start, end = driver.Event(), driver.Event()
        start.record()
        for _ in range(repeat):
            for function, parameters, block, grid, dynamic in launches:
                function(*parameters, block=block, grid=grid, shared=dynamic)
        end.record()
        end.synchronize()
        for buffer, value in copies:
            driver.memcpy_dtoh(value, buffer)
        self._check_faults()
        return start.time_till(end) / repeat

    def _fault_record(self):
        from .value_printer import FAULT_SLOTS

        record = self.driver.mem_alloc(FAULT_SLOTS * 8)
        self.driver.memset_d8(record, 0, FAULT_SLOTS * 8)
        return record

    def _check_faults(self) -> None:
        from .semantics import check_fault_record
        from .value_printer import FAULT_SLOTS

        typed = [program for _, program, _, _ in self.optimized._typed_kernels(self.binding)]
        for program, buffer in zip(typed, self.faults):
            record = np.zeros(FAULT_SLOTS, dtype=np.int64)
            self.driver.memcpy_dtoh(record, buffer)
            if record[0] or record[2]:
                check_fault_record(program, [int(v) for v in record], in_source_order=False)


def cuda_parameters(packer, staged, args, geometry: LaunchGeometry, fault) -> list:
    """Kernel parameters in the order CudaPrinter.parameters declares them.

    ``staged[i]`` is the device address (or allocation) standing for argument ``i``;
    ``fault`` the kernel's fault record on the device.
    """
    parameters: list = [np.uintp(int(staged[slot])) for slot in packer.array_slots]
    parameters += [np.int64(args[slot].shape[dim] if dim is not None else int(args[slot]))
                   for slot, dim in packer.int_getters]
    parameters += [np.float64(float(args[slot])) for slot in packer.float_slots]
    parameters += [np.int64(low) for low in geometry.lows]
    parameters += [np.int64(count) for count in geometry.counts]
    parameters.append(np.uintp(int(fault)))
    return parameters
