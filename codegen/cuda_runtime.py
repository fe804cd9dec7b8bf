"""Run the CUDA translation unit: on the GPU through PyCUDA, or on the CPU runtime.

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
from polypipe.gpu_scheduled import launch_sequence

from .value_printer import c_name


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
    blocks = kernel.block_of.intersect_domain(kernel.launch_domain).intersect_params(
        fixed).range()
    width = kernel.block_rank
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


# gridDim limits of every GPU since compute capability 3.0 (x, y, z).
MAX_GRID = (2**31 - 1, 65535, 65535)


def check_grid(kernel, geometry: LaunchGeometry) -> None:
    """KernelRuntimeError where the grid exceeds what CUDA can launch, on either backend (the
    CPU runtime runs what the GPU would)."""
    for axis, count, limit in zip("xyz", geometry.grid, MAX_GRID):
        if count > limit:
            raise KernelRuntimeError(
                f"{kernel.name}: the grid needs {count} blocks along {axis} "
                f"(grid {geometry.grid}), more than CUDA's {limit}; choose a larger block "
                f"tile (GpuConfig(block=...)) for these sizes")


def array_address(value) -> int | None:
    """Where an array argument's data starts: the device address of a GPU array, the host
    address of a NumPy array; None for a scalar."""
    if isinstance(value, np.ndarray):
        return int(value.__array_interface__["data"][0])
    return device_pointer(value)


def unaligned_arrays(program, addresses: list) -> frozenset:
    """Names of the array arguments whose data (``addresses``, in argument order, None for
    scalars) does not start on a 16-byte boundary: their copies must stay scalar."""
    return frozenset(arg.name for arg, address in zip(program.arguments, addresses)
                     if address is not None and address % 16)


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


class _Launches:
    """What a launch of every kernel needs at one set of sizes, on either target: the
    translation unit (per set of arrays whose address is not 16-byte aligned), dynamic shared
    bytes, parameter packing, grid geometry, and the fault records read back afterwards."""

    def __init__(self, optimized, binding, source: str | None = None):
        self.optimized = optimized
        self.given_source = source      # a translation unit to run instead of the printed one
        self.binding = binding
        self.shared = [optimized.dynamic_shared_bytes(kernel, binding)
                       for kernel in optimized.kernels]
        self.packers = optimized.cuda_packers(binding)
        self.geometries = [launch_geometry(kernel, binding.params)
                           for kernel in optimized.kernels]
        # (kernel index, host values) in order: host loops launch a kernel many times.
        self.sequence = launch_sequence(optimized.kernels, binding.params)
        self._modules: dict[frozenset, object] = {}   # unaligned arrays -> compiled module
        self.source = ""

    def module(self, addresses: list[int]):
        """The compiled translation unit for arrays at these addresses (argument order;
        ``None`` for scalars): copies from or to an array that is not 16-byte aligned stay
        scalar, so such a set of arrays gets its own source."""
        unaligned = (frozenset() if self.given_source is not None
                     else unaligned_arrays(self.optimized.original, addresses))
        module = self._modules.get(unaligned)
        if module is None:
            self.source = self.given_source or self.optimized.cuda_source_for(
                self.binding, unaligned=unaligned)
            module = self._modules[unaligned] = self.compile(self.source)
        return module

    def compile(self, source: str):
        raise NotImplementedError

    def launches(self, addresses: list, args, faults: list) -> list:
        """(kernel, parameters, block, grid, dynamic shared bytes) of every non-empty kernel,
        ``addresses[i]`` standing for argument ``i`` and ``faults[k]`` the fault record of
        kernel ``k``. The block is (x, y, z) = (threads[1], threads[0], 1)."""
        result = []
        for index, host in self.sequence:
            kernel, geometry = self.optimized.kernels[index], self.geometries[index]
            if geometry.empty:
                continue
            check_grid(kernel, geometry)
            threads = kernel.threads
            parameters = cuda_parameters(self.packers[index], addresses, args, geometry,
                                         faults[index], host)
            result.append((kernel, parameters,
                           (threads[-1], threads[-2] if len(threads) > 1 else 1, 1),
                           geometry.grid, self.shared[index]))
        return result

    def check_faults(self, records: list) -> None:
        """Raise what Python raises where a kernel recorded a fault (or warned)."""
        from .semantics import check_fault_record

        typed = [program for _, program, _, _ in self.optimized._typed_kernels(self.binding)]
        for program, record in zip(typed, records):
            if record[0] or record[2]:
                check_fault_record(program, [int(v) for v in record], in_source_order=False)


class CudaExecutable(_Launches):
    """All kernels of an optimized program compiled for the current GPU and one set of sizes.

    The source is specialised to the sizes (constants, 32-bit indices, proved 16-byte copies);
    arrays whose device address is not 16-byte aligned get a variant with scalar copies from
    them (compiled once per such set). The compiled module is cached by PyCUDA by source and
    device.
    """

    def __init__(self, optimized, binding, source: str | None = None):
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise KernelRuntimeError(reason)
        import pycuda.autoprimaryctx  # type: ignore  # noqa: F401  (shares CuPy/PyTorch's)
        import pycuda.driver as driver  # type: ignore

        self.driver = driver
        super().__init__(optimized, binding, source)

    def compile(self, source: str) -> tuple:
        from pycuda.compiler import SourceModule  # type: ignore

        driver = self.driver
        major, minor = driver.Context.get_device().compute_capability()
        try:
            module = SourceModule(source, no_extern_c=True, arch=f"sm_{major}{minor}",
                                  options=["-O3"])
        except driver.CompileError as exc:
            raise KernelRuntimeError(f"nvcc rejected the generated CUDA: {exc}") from None
        functions = {k.name: module.get_function(k.name) for k in self.optimized.kernels}
        for kernel, dynamic in zip(self.optimized.kernels, self.shared):
            if not dynamic:
                continue
            try:   # above 48 KiB a launch must be allowed first, else it fails
                functions[kernel.name].set_attribute(
                    driver.function_attribute.MAX_DYNAMIC_SHARED_SIZE_BYTES, dynamic)
            except driver.Error as exc:
                raise KernelRuntimeError(
                    f"{kernel.name} needs {dynamic} B of dynamic shared memory, which this "
                    f"GPU does not grant ({exc}); choose fewer shared stages or smaller "
                    f"tiles") from None
        return module, functions   # the module owns the functions

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

    def run(self, args, binding=None, repeat: int = 1) -> float:
        """Launch every kernel in order ``repeat`` times; returns the GPU milliseconds of one
        repetition (CUDA events around the launches only). A kernel that met an operation at
        which Python raises is reported as codegen.semantics.check_fault_record says."""
        from .value_printer import FAULT_SLOTS

        driver = self.driver
        staged, copies = self._stage(args)
        faults = []
        for _ in self.optimized.kernels:
            faults.append(driver.mem_alloc(FAULT_SLOTS * 8))
            driver.memset_d8(faults[-1], 0, FAULT_SLOTS * 8)
        # Device arrays passed by the caller may sit at any address; staged copies are
        # allocations (aligned).
        addresses = [device_pointer(arg) for arg in args]
        _, functions = self.module(addresses)
        launches = self.launches(staged, args, faults)
        start, end = driver.Event(), driver.Event()
        start.record()
        for _ in range(repeat):
            for kernel, parameters, block, grid, dynamic in launches:
                try:
                    functions[kernel.name](*parameters, block=block, grid=grid, shared=dynamic)
                except driver.Error as exc:
                    raise KernelRuntimeError(
                        f"the CUDA driver refused to launch {kernel.name} (grid {grid}, "
                        f"block {block}, {dynamic} B dynamic shared memory): {exc}") from None
        end.record()
        try:
            end.synchronize()   # where a fault inside a kernel (a bad address) surfaces
        except driver.Error as exc:
            raise KernelRuntimeError(f"a kernel failed on the GPU: {exc}") from None
        for buffer, value in copies:
            driver.memcpy_dtoh(value, buffer)
        records = []
        for buffer in faults:
            records.append(np.zeros(FAULT_SLOTS, dtype=np.int64))
            driver.memcpy_dtoh(records[-1], buffer)
        self.check_faults(records)
        return start.time_till(end) / repeat


class EmulatedExecutable(_Launches):
    """The same translation unit run by the CPU runtime (:mod:`codegen.cuda_cpu`): every
    block and thread of each launch, with GPU semantics and its race, wait, divergence and
    bounds checks. Arrays are used in place (host addresses)."""

    def compile(self, source: str):
        from .cuda_cpu import compile_cuda_cpu

        return compile_cuda_cpu(source)

    def run(self, args, thread_order: str = "scrambled", seed: int = 0) -> None:
        from .cuda_cpu import GlobalArray
        from .value_printer import FAULT_SLOTS

        names = [a.name for a in self.optimized.original.arguments]
        addresses = [array_address(arg) for arg in args]
        arrays = [GlobalArray(c_name("array", name), address, arg.nbytes, arg.itemsize)
                  for name, address, arg in zip(names, addresses, args) if address is not None]
        module = self.module(addresses)
        records = [np.zeros(FAULT_SLOTS, dtype=np.int64) for _ in self.optimized.kernels]
        faults = [record.ctypes.data for record in records]
        for kernel, parameters, block, grid, dynamic in self.launches(addresses, args, faults):
            module.launch(kernel.name, grid=grid, block=block, dynamic_shared=dynamic,
                          parameters=parameters, arrays=arrays, order=thread_order,
                          seed=seed % 2**64)   # any Python int: its low 64 bits
        self.check_faults(records)


def cuda_parameters(packer, staged, args, geometry: LaunchGeometry, fault,
                    host: tuple = ()) -> list:
    """Kernel parameters in the order CudaPrinter.parameters declares them.

    ``staged[i]`` is the device address (or allocation) standing for argument ``i``;
    ``fault`` the kernel's fault record on the device; ``host`` the launch's host values.
    """
    parameters: list = [np.uintp(int(staged[slot])) for slot in packer.array_slots]
    parameters += [np.int64(args[slot].shape[dim] if dim is not None else int(args[slot]))
                   for slot, dim in packer.int_getters]
    parameters += [np.float64(float(args[slot])) for slot in packer.float_slots]
    parameters += [np.int64(low) for low in geometry.lows]
    parameters += [np.int64(count) for count in geometry.counts]
    parameters += [np.int64(value) for value in host]
    parameters.append(np.uintp(int(fault)))
    return parameters
