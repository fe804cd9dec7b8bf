"""What the static estimate (:mod:`polypipe.codegen.estimate`) needs to know about each launch
of an optimized program at concrete sizes, and the estimate itself.

The schedule gives the grid, the main-loop trips per block (the outer reduction loops times the
reduction tiles of the streamed one), the useful multiply-adds and the bytes of the arrays each
kernel touches; the machine code (nvcc, nvdisasm) gives the instruction mix of one main-loop
iteration, the registers and the shared memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import islpy as isl

from polypipe.codegen.value_types import numpy_dtype
from polypipe.errors import CodegenError
from polypipe.gpu_scheduled import ScheduledKernel


def _update_box(kernel, params) -> tuple[dict[str, int], int]:
    """Extent of every update iterator at these sizes (its bounding box) and the number of
    update instances: the box's volume when the domain is a box, else counted by isl up to
    10**7 points in the box, beyond which the box's volume stands in."""
    from polypipe.analysis.counting import statement_extents

    c = kernel.contraction
    domain, extents = statement_extents(c.program.statement(c.update), params)
    if domain.is_empty():
        return extents, 0
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


def size_fit_lines(optimized, binding, target: str = "H200") -> list[str]:
    """Where these sizes fit a contraction's configuration badly, said plainly (the kernel is
    correct either way): the streamed reduction has fewer tiles than shared stages, so fewer
    copies are ever in flight; or the grid has fewer blocks than the target has SMs."""
    from polypipe.codegen.cuda_runtime import launch_geometry
    from polypipe.codegen.estimate import TARGETS

    lines = []
    for kernel in optimized.kernels:
        if isinstance(kernel, ScheduledKernel) or kernel.contraction.update is None:
            continue
        extents, _ = _update_box(kernel, binding.params)
        streamed = kernel.contraction.reduction_iterators[-1]
        config = kernel.config
        tiles = -(-extents[streamed] // config.reduction)
        if tiles < config.shared_stages:
            lines.append(f"  {kernel.name}: at these sizes the reduction over {streamed} "
                         f"({extents[streamed]}) is {tiles} tile(s) of {config.reduction}, "
                         f"fewer than the {config.shared_stages} shared stages: at most "
                         f"{tiles} in flight")
        blocks = math.prod(launch_geometry(kernel, binding.params).counts)
        sms = TARGETS[target].sms
        if 0 < blocks < sms:
            lines.append(f"  {kernel.name}: {blocks} block(s) of {config.block[0]}x"
                         f"{config.block[1]} at these sizes, for the {sms} SMs of "
                         f"{TARGETS[target].name}: a smaller block would spread the work")
    return lines


def kernel_bytes(kernel, binding) -> int:
    """Bytes of the argument arrays the kernel's statements read or write."""
    program = kernel.contraction.program
    arrays = set()
    for name in kernel.contraction.statements:
        statement = program.statement(name)
        arrays.update(access.array for access in (statement.target, *statement.reads))
    dtypes = dict(binding.dtypes)
    return sum(math.prod(binding.extents[name]) * numpy_dtype(dtypes[name]).itemsize
               for name in arrays if name in binding.extents and name in dtypes)


def _compiled(optimized, binding, arch: str):
    """The SASS and ptxas resources (by kernel name) of the text ``run`` would launch for
    these arguments. Raises CodegenError when nvcc or nvdisasm is missing."""
    from polypipe.codegen.nvcc import compile_cubin
    from polypipe.codegen.sass import find_nvdisasm, kernel_sass

    if find_nvdisasm() is None:
        raise CodegenError("nvdisasm not found (pip install nvidia-cuda-nvdisasm): the "
                           "estimate reads the machine code")
    cubin, resources = compile_cubin(optimized.cuda_source_for(binding), arch)
    return kernel_sass(cubin), {r.name: r for r in resources}


def launch_counts(optimized, binding, arch: str = "sm_90", compiled=None) -> list:
    """:class:`~polypipe.codegen.estimate.KernelCounts` of every non-empty launch of a
    contraction kernel (kernels of isl's schedule: :func:`scheduled_counts`), from the
    machine code. Raises CodegenError when nvcc or nvdisasm is missing."""
    from polypipe.codegen.cuda_runtime import launch_geometry
    from polypipe.codegen.estimate import counts_from_sass

    sass, by_name = compiled or _compiled(optimized, binding, arch)
    dtypes = dict(binding.dtypes)
    result = []
    for kernel in optimized.kernels:
        if isinstance(kernel, ScheduledKernel):
            continue
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


def launch_estimates(optimized, binding, target: str = "H200") -> list:
    """An :class:`~polypipe.codegen.estimate.Estimate` per kernel that launches at these
    sizes, in the program's order. Raises CodegenError when nvcc or nvdisasm is missing."""
    from polypipe.codegen.estimate import TARGETS, estimate

    compiled = _compiled(optimized, binding, "sm_90")
    contractions = {c.name: c for c in launch_counts(optimized, binding, compiled=compiled)}
    registers = {name: r.registers for name, r in compiled[1].items()}
    estimates = []
    for kernel in optimized.kernels:
        if isinstance(kernel, ScheduledKernel):
            counts = scheduled_counts(kernel, binding)
            if counts.launches:
                estimates.append(scheduled_estimate(counts, registers[kernel.name],
                                                    TARGETS[target]))
        elif kernel.name in contractions:      # launch_counts leaves out empty launches
            estimates.append(estimate(contractions[kernel.name], TARGETS[target]))
    return estimates


def estimate_lines(optimized, binding, target: str = "H200") -> list[str]:
    """One line per launch and one for the program, or the reason there is no estimate."""
    from polypipe.codegen.estimate import program_estimate

    try:
        estimates = launch_estimates(optimized, binding, target)
    except CodegenError as exc:
        return [f"  estimate: none ({str(exc).splitlines()[0]})"]
    lines = [f"  {e.kernel}: {e.describe()}" for e in estimates]
    if len(estimates) > 1:
        lines.append(f"  {program_estimate(estimates)}")
    return lines


# -- kernels of isl's schedule ------------------------------------------------------------------
#
# No main loop, no pipeline: a thread runs the instances of one point of the mapped band,
# launched once per value of the host loops. What isl counts at the sizes (analysis/counting.py:
# exact, or a bounding box it says is one) gives lower bounds on the time of the launches:
#
# * launch: launches x the target's gap between two launches from Python;
# * issue: warp instructions / (4 per SM and clock x the SMs the average launch's blocks
#   occupy); a statement instance costs at least its loads and store and half its arithmetic
#   (one FMA does two operations), address arithmetic and control flow not counted;
# * thread: a warp issues at most one instruction per clock, so each launch takes at least its
#   average thread's instructions in clocks (what bounds one-thread kernels);
# * DRAM: the elements the kernel touches, once; L2: the elements each launch touches, summed
#   over the launches (a launch cannot keep data in L1 for the next).


@dataclass(frozen=True)
class ScheduledCounts:
    """What isl counts of one scheduled kernel at concrete sizes (all launches together)."""

    name: str
    launches: int
    thread_points: int       # (launch, point of the mapped band) pairs: threads that work
    threads_per_block: int
    thread_instructions: int  # the lower bound of the instances' instructions
    flops: int
    dram_bytes: int
    l2_bytes: int
    inexact: tuple[str, ...] = ()   # what only a bounding box counted (an upper bound)


def scheduled_counts(kernel: ScheduledKernel, binding) -> ScheduledCounts:
    from polypipe.analysis.counting import count_points

    params = binding.params
    inexact: list[str] = []

    def count(points, what: str) -> int:
        result = count_points(points, params)
        if not result.exact:
            inexact.append(what)
        return result.value

    domain = kernel.launch_domain
    launch_of = kernel.launch_of.intersect_domain(domain)
    launches = count(launch_of.range(), "launches")
    points = count(launch_of.range_product(kernel.point_of).range(), "threads")
    instructions = flops = 0
    footprint: dict[str, isl.UnionMap] = {}
    for statement in kernel.program.statements:
        instances = domain.extract_set(statement.domain.get_space())
        if instances.is_empty():
            continue
        cost, operations = _instance_cost(kernel.program, statement)
        n = count(instances, f"instances of {statement.name}")
        instructions += n * cost
        flops += n * operations
        for access in statement.accesses:
            if kernel.program.array(access.array).is_local:
                continue
            relation = isl.UnionMap.from_map(access.relation.intersect_domain(instances))
            footprint[access.array] = footprint.get(access.array, relation).union(relation)
    dram = l2 = 0
    for array, relation in footprint.items():
        size = numpy_dtype(dict(binding.dtypes)[array]).itemsize
        dram += size * count(relation.range(), f"elements of {array}")
        per_launch = relation.reverse().apply_range(launch_of).reverse().wrap()
        l2 += size * count(per_launch, f"elements of {array} per launch")
    threads = math.prod(kernel.threads)
    return ScheduledCounts(kernel.name, launches, points, threads, instructions, flops, dram,
                           l2, tuple(inexact))


def program_operations(program, params) -> tuple[int, bool]:
    """(arithmetic operations of all the program's statement instances at ``params``, whether
    isl counted every domain exactly): what a benchmark's GFLOP/s divides (the operations of
    :func:`_instance_cost`, every operation of the value and an augmented assignment's)."""
    from polypipe.analysis.counting import count_points

    total, exact = 0, True
    for statement in program.statements:
        count = count_points(statement.domain, params)
        total += count.value * _instance_cost(program, statement)[1]
        exact &= count.exact
    return total, exact


def _instance_cost(program, statement) -> tuple[int, int]:
    """(instructions at least, arithmetic operations) of one instance: see above."""
    from polypipe import ir

    def memory(access) -> bool:
        return not program.array(access.array).is_local

    loads = {(a.array, a.indices) for a in statement.reads if memory(a)}
    operations = sum(isinstance(e, (ir.Binary, ir.Unary, ir.Call, ir.Select, ir.Compare))
                     for e in ir.walk_expr(statement.value)) + (statement.op is not None)
    return len(loads) + memory(statement.target) + -(-operations // 2), operations


def scheduled_estimate(counts: ScheduledCounts, registers: int, target):
    """The :class:`~polypipe.codegen.estimate.Estimate` of a scheduled kernel's launches."""
    from polypipe.codegen.estimate import Estimate, KernelCounts, LoopCounts, occupancy

    fit = occupancy(KernelCounts(counts.name, counts.threads_per_block, 1, 0, LoopCounts(), 0,
                                 registers, 0, 0, 0), target)
    clock = target.clock_ghz * 1e9
    launches = max(counts.launches, 1)
    blocks = counts.thread_points / launches / counts.threads_per_block   # per launch
    busy_sms = min(target.sms, max(math.ceil(blocks), 1))
    seconds = {
        "launch": counts.launches * target.launch_s,
        "issue": counts.thread_instructions / 32 / (target.issue_per_sm * busy_sms * clock),
        "thread": (launches * counts.thread_instructions / max(counts.thread_points, 1)
                   / clock),
        "DRAM": counts.dram_bytes / (target.dram_gbs * 1e9),
        "L2": counts.l2_bytes / (target.l2_gbs * 1e9),
    }
    waves = blocks / (target.sms * fit.blocks) if fit.blocks else math.inf
    note = (f"bounding boxes (upper bounds) count the {', '.join(counts.inexact)}"
            if counts.inexact else "")
    return Estimate(counts.name, target.name, seconds, fit, waves, counts.flops // 2,
                    flops=counts.flops, note=note, launches=counts.launches)
