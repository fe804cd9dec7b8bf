"""What the static estimate (:mod:`polypipe.codegen.estimate`) needs to know about each launch
of an optimized program at concrete sizes, and the estimate itself.

The schedule gives the grid, the main-loop trips per block (the outer reduction loops times the
reduction tiles of the streamed one), the useful multiply-adds and the bytes of the arrays each
kernel touches; the machine code (nvcc, nvdisasm) gives the instruction mix of one main-loop
iteration, the registers and the shared memory.
"""

from __future__ import annotations

import math

import numpy as np

from polypipe.errors import CodegenError
from polypipe.gpu_scheduled import ScheduledKernel


def _update_box(kernel, params) -> tuple[dict[str, int], int]:
    """Extent of every update iterator at these sizes (its bounding box) and the number of
    update instances: the box's volume when the domain is a box, else counted by isl up to
    10**7 points in the box, beyond which the box's volume stands in."""
    from polypipe.analysis.bounds import fix_parameters

    c = kernel.contraction
    statement = c.program.statement(c.update)
    domain = statement.domain.intersect_params(fix_parameters(statement.domain, params))
    if domain.is_empty():
        return {name: 0 for name in statement.iterators}, 0
    extents = {}
    for dim, name in enumerate(statement.iterators):
        extents[name] = (domain.dim_max_val(dim).to_python()
                         - domain.dim_min_val(dim).to_python() + 1)
    volume = math.prod(extents.values())
    # Counting enumerates points: bounded so that describe() stays quick; beyond, the box.
    exact = volume if domain.is_box() or volume > 10**7 else domain.count_val().to_python()
    return extents, exact


def trips_and_fmas(kernel, params) -> tuple[int, int]:
    """Main-loop iterations of one block and multiply-adds of the whole launch."""
    c = kernel.contraction
    if c.update is None:
        return 0, 0
    extents, fmas = _update_box(kernel, params)
    *outer, streamed = c.reduction_iterators
    trips = math.prod(extents[name] for name in outer)
    return trips * -(-extents[streamed] // kernel.config.reduction), fmas


def kernel_bytes(kernel, binding) -> int:
    """Bytes of the argument arrays the kernel's statements read or write."""
    program = kernel.contraction.program
    arrays = set()
    for name in kernel.contraction.statements:
        statement = program.statement(name)
        arrays.update(access.array for access in (statement.target, *statement.reads))
    dtypes = dict(binding.dtypes)
    return sum(math.prod(binding.extents[name]) * np.dtype(dtypes[name]).itemsize
               for name in arrays if name in binding.extents and name in dtypes)


def launch_counts(optimized, binding, arch: str = "sm_90") -> list:
    """:class:`~polypipe.codegen.estimate.KernelCounts` of every non-empty launch, from the
    text ``run`` would launch for these arguments compiled by nvcc. Raises CodegenError
    when nvcc or nvdisasm is missing."""
    from polypipe.codegen.cuda_runtime import launch_geometry
    from polypipe.codegen.estimate import counts_from_sass
    from polypipe.codegen.nvcc import compile_cubin
    from polypipe.codegen.sass import find_nvdisasm, kernel_sass

    if find_nvdisasm() is None:
        raise CodegenError("nvdisasm not found (pip install nvidia-cuda-nvdisasm): the "
                           "estimate reads the machine code")
    cubin, resources = compile_cubin(optimized.cuda_source_for(binding), arch)
    sass = kernel_sass(cubin)
    by_name = {r.name: r for r in resources}
    dtypes = dict(binding.dtypes)
    result = []
    for kernel in optimized.kernels:
        if isinstance(kernel, ScheduledKernel):
            continue     # no model of these kernels yet (estimate_lines says so)
        geometry = launch_geometry(kernel, binding.params)
        if geometry.empty:
            continue
        trips, fmas = trips_and_fmas(kernel, binding.params)
        config = kernel.config
        threads = config.threads[0] * config.threads[1]
        per_trip = config.block[0] * config.block[1] * config.reduction // threads
        shared = max(by_name[kernel.name].shared_bytes,
                     optimized.dynamic_shared_bytes(kernel, binding))
        double = dtypes.get(kernel.contraction.accumulator) == "float64"
        result.append(counts_from_sass(
            kernel.name, sass[kernel.name], by_name[kernel.name], threads,
            math.prod(geometry.counts), trips, fmas, kernel_bytes(kernel, binding),
            double=double, fma_per_trip=per_trip, shared_bytes=shared))
    return result


def estimate_lines(optimized, binding, target: str = "H200") -> list[str]:
    """One line per launch and one for the program, or the reason there is no estimate."""
    from polypipe.codegen.estimate import TARGETS, estimate, program_estimate

    try:
        counts = launch_counts(optimized, binding)
    except CodegenError as exc:
        return [f"  estimate: none ({str(exc).splitlines()[0]})"]
    estimates = [estimate(c, TARGETS[target]) for c in counts]
    lines = [f"  {e.kernel}: {e.describe()}" for e in estimates]
    lines += [f"  {k.name}: no estimate (kernels of isl's schedule are not modelled yet)"
              for k in optimized.kernels if isinstance(k, ScheduledKernel)]
    if len(estimates) > 1 and not any(isinstance(k, ScheduledKernel)
                                      for k in optimized.kernels):
        lines.append(f"  {program_estimate(estimates)}")
    return lines

