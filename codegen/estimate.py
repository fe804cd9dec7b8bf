"""A static performance estimate of one kernel launch: an upper bound on its throughput and the
unit of the GPU that bounds it.

The estimate is a function of recorded counts (:class:`KernelCounts`) and of the target's
rates (:class:`Target`), nothing else, so that a tuner can rank candidates with it and GPU
measurements can later be compared with it (rank correlation). The counts come from the
machine code (:func:`counts_from_sass`: the main loop's static instruction mix, ptxas's
registers and shared memory) together with the schedule at concrete sizes (grid, main-loop
trips, useful multiply-adds, compulsory bytes).

Every unit gives a lower bound on the time, assuming it alone is busy and never waits:

* **issue**: each SM dispatches at most one warp instruction per sub-partition per clock (4);
* **fma**: FP32 multiply-adds at 128 lanes per SM per clock (FP64 at 64);
* **tensor**: ``mma.sync`` m16n8k16 (HMMA.16816, 4096 FLOP each) at the dense FP16/BF16
  tensor-core rate, 4096 FLOP per SM per clock on GH100 (989 TFLOP/s at 132 SMs and 1.83 GHz,
  NVIDIA's figure). That is the rate Hopper's ``wgmma`` reaches; ``mma.sync`` is reported to
  reach less of it on Hopper, so this bound is optimistic there until measured;
* **shared**: the shared-memory pipe moves 128 bytes per SM per clock; a shared load takes at
  least one such wavefront (a warp whose lanes read few distinct words, as fragment loads do,
  needs only one), an asynchronous copy writes its bytes (all distinct);
* **L2**: every operand byte copied into shared memory crosses L2 (16-byte copies bypass L1);
* **DRAM**: every array the kernel reads or writes crosses DRAM at least once (timed runs
  flush L2 first).

SM-local units are charged to the busiest SM, which runs ``ceil(blocks / SMs)`` blocks: this is
the tail of the last wave. Occupancy (blocks resident per SM, from registers, shared memory,
threads and the block limit) decides whether the kernel fits at all; more resident blocks hide
latency, which this bound does not model, so it is reported beside the bound, not folded in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


MMA_FLOPS = 2 * 16 * 8 * 16      # one m16n8k16


@dataclass(frozen=True)
class Target:
    """Rates and limits of one GPU. H100/H200 (GH100, compute capability 9.0): the SM figures
    are NVIDIA's (Hopper tuning guide, CUDA programming guide's compute-capability table); the
    clock is the maximum boost clock of the SXM parts; the DRAM bandwidth is the datasheet's;
    L2 bandwidth is not published: 5.5 TB/s is an assumption of the order that
    microbenchmarks report, to be replaced by a measured figure."""

    name: str
    sms: int = 132
    clock_ghz: float = 1.98
    issue_per_sm: int = 4               # warp instructions per clock (one per sub-partition)
    fp32_lanes: int = 128               # FP32 FMA per SM per clock
    fp64_lanes: int = 64
    tensor_flops: int = 4096            # dense FP16/BF16 tensor-core FLOP per SM per clock
    shared_bytes_per_clock: int = 128   # per SM
    dram_gbs: float = 3350.0
    l2_gbs: float = 5500.0
    registers_per_sm: int = 65536
    register_granule: int = 256         # registers are allocated per warp in these units
    max_registers: int = 255
    threads_per_sm: int = 2048
    blocks_per_sm: int = 32
    shared_per_sm: int = 233472         # 228 KiB
    shared_per_block: int = 232448      # 227 KiB: the most one block may ask for
    shared_reserved_per_block: int = 1024
    # Between two launches issued back to back from Python (PyCUDA's prepared call, one
    # stream): the driver's few microseconds plus the interpreter's. An assumption of that
    # order, to be replaced by a measured figure; only kernels of a host sequence use it.
    launch_s: float = 5e-6

    @property
    def fp32_tflops(self) -> float:
        return 2 * self.fp32_lanes * self.sms * self.clock_ghz / 1e3


H100 = Target("H100 SXM", dram_gbs=3350.0)
H200 = Target("H200 SXM", dram_gbs=4800.0)
TARGETS = {"H100": H100, "H200": H200}


@dataclass(frozen=True)
class LoopCounts:
    """Warp instructions of one main-loop iteration (per warp), as recorded."""

    total: float = 0
    fma: float = 0
    shared_loads: float = 0        # LDS instructions
    copy_bytes: float = 0          # bytes one warp's LDGSTS write into shared memory
    mma: float = 0                 # HMMA.16816 instructions (m16n8k16)
    ldsm_matrices: float = 0       # 8x8 matrices of 16-bit values LDSM loads (128 bytes each)


@dataclass(frozen=True)
class KernelCounts:
    """Everything the estimate reads about one kernel launch."""

    name: str
    threads: int                   # per block
    blocks: int                    # in the grid
    trips: int                     # main-loop iterations per block
    loop: LoopCounts
    other_instructions: int        # per warp, outside the main loop (each once)
    registers: int                 # per thread (ptxas)
    shared_bytes: int              # per block, static and dynamic
    fmas: int                      # useful multiply-adds of the launch
    dram_bytes: int                # compulsory: the arrays it reads and writes, once
    double: bool = False

    @property
    def warps(self) -> int:
        return -(-self.threads // 32)


@dataclass(frozen=True)
class Occupancy:
    blocks: int                    # resident per SM; 0: it cannot launch
    limit: str                     # what limits it
    reason: str = ""               # why it cannot launch, when blocks == 0


@dataclass(frozen=True)
class Estimate:
    kernel: str
    target: str
    seconds: dict                  # unit -> lower bound on the time
    occupancy: Occupancy
    waves: float
    fmas: int
    flops: int | None = None       # where not 2 x fmas (kernels of isl's schedule)
    note: str = ""                 # what the counts could not do exactly
    launches: int = 1              # launches of the kernel it covers (host loops)

    @property
    def bound(self) -> str:
        if not self.occupancy.blocks:
            return "does not fit"
        return max(self.seconds, key=self.seconds.get)

    @property
    def time(self) -> float:
        return max(self.seconds.values()) if self.occupancy.blocks else math.inf

    @property
    def tflops(self) -> float:
        return self.flop_count / self.time / 1e12 if self.time > 0 else 0.0

    @property
    def flop_count(self) -> int:
        return 2 * self.fmas if self.flops is None else self.flops

    def describe(self) -> str:
        if not self.occupancy.blocks:
            return f"estimate on {self.target}: cannot launch ({self.occupancy.reason})"
        units = ", ".join(f"{unit} {seconds * 1e3:.3g}" for unit, seconds in
                          sorted(self.seconds.items(), key=lambda item: -item[1]))
        over = f" over {self.launches} launches" if self.launches > 1 else ""
        return (f"estimate on {self.target}{over}: >= {self.time * 1e3:.3g} ms, <= "
                f"{_rate(self.tflops)}, bound by "
                f"{self.bound} (ms: {units}); {self.occupancy.blocks} block(s)/SM "
                f"({self.occupancy.limit}), {self.waves:.2f} waves"
                + (f"; {self.note}" if self.note else ""))


def occupancy(counts: KernelCounts, target: Target) -> Occupancy:
    """Blocks resident per SM and the resource that limits them (the CUDA occupancy rules,
    register allocation per warp in granules)."""
    if counts.shared_bytes > target.shared_per_block:
        return Occupancy(0, "shared memory", f"{counts.shared_bytes} B of shared memory per "
                         f"block; {target.name} allows {target.shared_per_block}")
    if counts.registers > target.max_registers:
        return Occupancy(0, "registers", f"{counts.registers} registers per thread")
    per_warp = -(-counts.registers * 32 // target.register_granule) * target.register_granule
    limits = {"threads": target.threads_per_sm // (counts.warps * 32),
              "block limit": target.blocks_per_sm,
              "registers": target.registers_per_sm // max(per_warp * counts.warps, 1),
              "shared memory": target.shared_per_sm // (counts.shared_bytes
                                                        + target.shared_reserved_per_block)}
    limit = min(limits, key=limits.get)
    if limits[limit] == 0:
        return Occupancy(0, limit, f"one block needs more {limit} than an SM has")
    return Occupancy(limits[limit], limit)


def estimate(counts: KernelCounts, target: Target = H200) -> Estimate:
    """The throughput bound of one launch on ``target``: see the module's docstring."""
    resident = occupancy(counts, target)
    busiest = -(-counts.blocks // target.sms)          # blocks on the busiest SM
    clock = target.clock_ghz * 1e9
    loop, warps = counts.loop, counts.warps
    per_block_issue = warps * (counts.trips * loop.total + counts.other_instructions)
    lanes = target.fp64_lanes if counts.double else target.fp32_lanes
    per_block_shared = warps * counts.trips * (
        loop.shared_loads + loop.ldsm_matrices + loop.copy_bytes / target.shared_bytes_per_clock)
    copied = counts.blocks * warps * counts.trips * loop.copy_bytes
    seconds = {
        "issue": busiest * per_block_issue / target.issue_per_sm / clock,
        "fma": busiest * warps * counts.trips * loop.fma / (lanes / 32) / clock,
        "tensor": busiest * warps * counts.trips * loop.mma * MMA_FLOPS / target.tensor_flops
        / clock,
        "shared": busiest * per_block_shared / clock,
        "L2": copied / (target.l2_gbs * 1e9),
        "DRAM": counts.dram_bytes / (target.dram_gbs * 1e9),
    }
    waves = counts.blocks / (target.sms * resident.blocks) if resident.blocks else math.inf
    return Estimate(counts.name, target.name, seconds, resident, waves, counts.fmas)


def program_tflops(estimates: list[Estimate]) -> float:
    """The bound of a sequence of launches, whose times add up (0 if one cannot launch)."""
    time = sum(e.time for e in estimates)
    flops = sum(e.flop_count for e in estimates)
    return flops / time / 1e12 if 0 < time < math.inf else 0.0


def program_estimate(estimates: list[Estimate]) -> str:
    """One line for a sequence of launches."""
    if len(estimates) == 1:
        return estimates[0].describe()
    if any(not e.occupancy.blocks for e in estimates):
        return f"estimate on {estimates[0].target}: a kernel cannot launch"
    launches = sum(e.launches for e in estimates)
    return (f"estimate on {estimates[0].target}, {len(estimates)} kernels, {launches} "
            f"launches: "
            f">= {sum(e.time for e in estimates) * 1e3:.3g} ms, "
            f"<= {_rate(program_tflops(estimates))}")


def _rate(tflops: float) -> str:
    """TFLOP/s, GFLOP/s below 0.1 TFLOP/s (memory-bound kernels and host sequences)."""
    return f"{tflops:.1f} TFLOP/s" if tflops >= 0.1 else f"{tflops * 1e3:.3g} GFLOP/s"


def counts_from_sass(name: str, sass, resources, threads: int, blocks: int, trips: int,
                     fmas: int, dram_bytes: int, double: bool = False, fma_per_trip: int = 0,
                     shared_bytes: int | None = None) -> KernelCounts:
    """Counts from a kernel's SASS (:class:`polypipe.codegen.sass.KernelSass`) and ptxas's
    resources (:class:`polypipe.codegen.nvcc.KernelResources`).

    ``trips`` counts reduction tiles; where ptxas unrolled the main loop over several tiles
    (its multiply-adds are a multiple ``u`` of ``fma_per_trip``, a thread's per tile), the
    loop's counts are divided by ``u`` so that they stay per tile."""
    loop_mix = sass.loop_mix if sass.main_loop is not None else None
    if loop_mix is None or trips == 0:
        loop, other = LoopCounts(), sass.kernel_mix.total
    else:
        unroll = 1
        if fma_per_trip and loop_mix.ffma % fma_per_trip == 0 and loop_mix.ffma > fma_per_trip:
            unroll = loop_mix.ffma // fma_per_trip
        copy_bytes = sum(width // 8 * 32 * count for width, count in loop_mix.ldgsts)
        loop = LoopCounts(loop_mix.total / unroll, loop_mix.ffma / unroll,
                          loop_mix.lds_instructions / unroll, copy_bytes / unroll,
                          loop_mix.hmma / unroll, loop_mix.ldsm / unroll)
        other = max(sass.kernel_mix.total - loop_mix.total, 0)
    shared = resources.shared_bytes if shared_bytes is None else shared_bytes
    return KernelCounts(name, threads, blocks, trips, loop, other, resources.registers,
                        shared, fmas, dram_bytes, double)
