"""The tensor-core plans and builds of the FP16/BF16 benchmark (no GPU): what ``--dry-run``
prints (:func:`tensor_core_listing`) and the forked, time-limited builds a GPU run's search
starts from (:func:`forked_builds`). ``benchmarks/gpu_half.py``'s docstring says what they
print and why; this module holds the search space and the build.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import polypipe as pp  # noqa: E402
import gpu  # noqa: E402
from gpu_workloads import (Workload, half_batched_matmul, half_matmul,  # noqa: E402
                           half_workloads)

TYPESTR = {"float16": "<f2", "bfloat16": "bfloat16", "float32": "<f4"}

TC_BLOCKS = ((128, 128), (128, 256), (256, 128), (64, 128))
TC_WARPS = ((2, 2), (2, 4), (4, 2))
TC_REDUCTION = 32
TC_STAGED = (((128, 128), (2, 2)), ((128, 256), (2, 4)))
TC_STAGE_VARIANTS = ((2, 2), (4, 2), (3, 1), (4, 1))      # (shared, register) stages
TC_OUTSIDE = (dict(block=(128, 128), warps=(2, 2), reduction=24),
              dict(block=(128, 128), warps=(2, 2), register_stages=3),
              dict(block=(128, 256), warps=(2, 4), reduction=64, shared_stages=6),
              dict(block=(256, 256), warps=(8, 8)),
              dict(block=(96, 128), warps=(4, 2)))
TC_ESTIMATE_SHAPES = ("square-4096", "square-8192", "bert-base-ffn1-512")
TC_TARGET = "H200"
TC_FINALISTS = 3                 # configurations of the search timed on every workload
# The session's tensor-core configurations, in the order they are tried (each is built and
# timed only if TENSORCORE_NEEDS_S seconds are left), from the dry run's builds
# (benchmarks/results/cpu_gpu_dryrun.txt): no spills, the planned HMMA/LDSM/LDGSTS.128;
# 128x128 over 2x2 warps (2 blocks per SM, estimated <= 352 TFLOP/s at 4096^3), then
# 128x256 over 2x4 and 256x128 over 4x2 warps (1 block per SM, <= 469 TFLOP/s each).
SESSION_TC_CONFIGS = (
    pp.GpuConfig(block=(128, 128), warps=(2, 2), reduction=32, shared_stages=3,
                 register_stages=2, mma="m16n8k16"),
    pp.GpuConfig(block=(128, 256), warps=(2, 4), reduction=32, shared_stages=3,
                 register_stages=2, mma="m16n8k16"),
    pp.GpuConfig(block=(256, 128), warps=(4, 2), reduction=32, shared_stages=3,
                 register_stages=2, mma="m16n8k16"))
TC_BUILD_SHAPE = "square-4096"   # the dry run builds every configuration at these sizes
# A dry-run build (optimize, print, nvcc) is stopped after this: a proof that does not finish
# (the 128x256 tiles' ran for over 6 minutes before the swizzle check went to chunks) must not
# hold up the rest; the slowest build now takes 5.5 s alone.
TC_BUILD_LIMIT_S = 90
TC_BUILD_JOBS = max(1, min(8, os.cpu_count() or 1))     # forked builds at a time

def log(text: str) -> None:
    print(text, flush=True)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def kernel_of(workload: Workload):
    return half_matmul if workload.op == "gemm" else half_batched_matmul


def shapes_only(workload: Workload, dtype: str) -> list:
    """polypipe's arguments (C, A, B) as descriptions without memory."""
    batch, m, n, k = workload.gemm
    lead = () if workload.op == "gemm" else (batch,)
    return [gpu.ShapeOnly(*lead, m, n), gpu.ShapeOnly(*lead, m, k, typestr=TYPESTR[dtype]),
            gpu.ShapeOnly(*lead, k, n, typestr=TYPESTR[dtype])]



# -- the tensor-core plans (no GPU) ------------------------------------------------------------


def tc_configs() -> list[pp.GpuConfig]:
    """The search space of the tensor-core builds (see the module's docstring)."""
    base = dict(reduction=TC_REDUCTION, shared_stages=3, register_stages=2, mma="m16n8k16")
    configs = [pp.GpuConfig(block=b, warps=w, **base) for b in TC_BLOCKS for w in TC_WARPS]
    for block, warps in TC_STAGED:
        configs += [pp.GpuConfig(block=block, warps=warps, **dict(
            base, shared_stages=shared, register_stages=registers))
            for shared, registers in TC_STAGE_VARIANTS]
    return configs


def outside_configs() -> list[pp.GpuConfig]:
    base = dict(reduction=TC_REDUCTION, shared_stages=3, register_stages=2, mma="m16n8k16")
    return [pp.GpuConfig(**dict(base, **changes)) for changes in TC_OUTSIDE]


def plan_of(config: pp.GpuConfig):
    """(plan, None), or (None, the ScheduleError's text) for a refused configuration."""
    from polypipe.gpu_warp import warp_plan

    try:
        config.validate()
        return warp_plan(config), None
    except pp.PolypipeError as exc:
        return None, str(exc).splitlines()[0]


def plan_estimates(plan, workloads: list[Workload]) -> list:
    """The static estimate (:mod:`polypipe.codegen.estimate`) of ``plan`` on each workload."""
    from polypipe.codegen.estimate import TARGETS, estimate
    from polypipe.gpu_warp import plan_counts

    result = []
    for workload in workloads:
        batch, m, n, k = workload.gemm
        result.append(estimate(plan_counts(plan, m, n, k, batch), TARGETS[TC_TARGET]))
    return result


def estimate_row(name: str, est) -> str:
    if not est.occupancy.blocks:
        return f"{name}: cannot launch ({est.occupancy.reason})"
    return (f"{name}: >= {est.time * 1e3:.3f} ms, <= {est.tflops:.0f} TFLOP/s, bound by "
            f"{est.bound} (tensor {est.seconds['tensor'] * 1e3:.3f} ms); "
            f"{est.occupancy.blocks} block(s)/SM ({est.occupancy.limit}), {est.waves:.2f} waves")


def tensor_core_plans(out=log) -> tuple[int, int]:
    """Print the plans of :func:`tc_configs` and :func:`outside_configs`; returns (plans,
    refusals)."""
    by_name = {w.name: w for w in half_workloads()}
    shapes = [by_name[name] for name in TC_ESTIMATE_SHAPES]
    start = time.perf_counter()
    out(f"== tensor-core plans (mma.sync m16n8k16: float16/bfloat16 in, float32 accumulators; "
        f"estimates on {TC_TARGET}) ==")
    out("polypipe lowers a configuration the plan accepts to ldmatrix.x4 and mma.sync and "
        "proves it like every kernel; partial tiles are not built (sizes must divide the "
        f"block and reduction tiles). Each configuration is built for {TC_BUILD_SHAPE} in "
        "the next section.")
    ranked, refused, described = [], [], {}
    for config in tc_configs() + outside_configs():
        plan, reason = plan_of(config)
        if plan is None:
            refused.append((config, reason))
            continue
        estimates = plan_estimates(plan, shapes)
        ranked.append((config, estimates))
        out(config.describe())
        tile = (config.block, config.warps, config.reduction)
        if tile in described:     # a stage variant: the tile's layouts and mix are above
            out(f"  as {described[tile]} but per lane {plan.accumulator_registers} "
                f"accumulators + {plan.fragment_registers} fragment registers, "
                f"{plan.shared_bytes} B shared")
        else:
            described[tile] = f"shared_stages={config.shared_stages} " \
                              f"register_stages={config.register_stages}"
            for line in plan.describe():
                out(f"  {line}")
        for name, est in zip(TC_ESTIMATE_SHAPES, estimates):
            out(f"  estimate {estimate_row(name, est)}")
    out(f"ranked by the plan's estimate at {TC_ESTIMATE_SHAPES[1]} (TFLOP/s at "
        f"{', '.join(TC_ESTIMATE_SHAPES)}):")
    for config, estimates in sorted(ranked, key=lambda item: -item[1][1].tflops):
        out(f"  {' / '.join(f'{e.tflops:5.0f}' for e in estimates)}  {config.describe()}")
    for config, reason in refused:
        out(f"refused {config.describe()}: {reason}")
    out(f"{len(ranked)} tensor-core plans, {len(refused)} refused "
        f"({time.perf_counter() - start:.1f} s)")
    return len(ranked), len(refused)


# -- the tensor-core builds (no GPU) -----------------------------------------------------------


def sass_against_plan(loop, counts: dict) -> tuple[str, list[str]]:
    """The main loop's HMMA, LDSM and LDGSTS.128 of a build's SASS beside the plan's
    ``instruction_counts`` of one main-loop iteration: (the row, the differences)."""
    wide = dict(loop.ldgsts).get(128, 0)
    pairs = (("HMMA", loop.hmma, counts["mma"]),
             ("LDSM matrices", loop.ldsm, 4 * (counts["ldmatrix_a"] + counts["ldmatrix_b"])),
             ("LDGSTS.128", wide, counts["cp_async_16"]))
    differences = [f"{name} {got} vs {want} ({got - want:+d})" for name, got, want in pairs
                   if got != want]
    others = [f"LDGSTS {loop.widths('ldgsts')}"] if any(w != 128 for w, _ in loop.ldgsts) else []
    others += [f"LDS {loop.widths('lds')}"] if loop.lds else []
    others += [f"{loop.ffma} FFMA"] if loop.ffma else []
    row = (f"SASS main loop: {loop.hmma} HMMA, {loop.ldsm} LDSM matrices, {wide} LDGSTS.128"
           + (f" (also {', '.join(others)})" if others else "")
           + f", {loop.bar} BAR; plan per iteration: {counts['mma']} mma.sync, "
           f"{counts['ldmatrix_a']}+{counts['ldmatrix_b']} ldmatrix.x4 "
           f"({4 * (counts['ldmatrix_a'] + counts['ldmatrix_b'])} matrices), "
           f"{counts['cp_async_16']} cp.async 16 B: "
           + ("matches" if not differences else "differs: " + ", ".join(differences)))
    return row, differences


def tc_build(config: pp.GpuConfig, workload: Workload, dtype: str = "float16",
             phase=lambda name: None) -> dict:
    """Build ``config`` for ``workload``'s sizes: optimize (and prove), print the CUDA, nvcc
    for sm_90, read the SASS and the static estimate. Returns a dict: ``status`` "built",
    "refused" (ScheduleError, ArgumentError) or "failed", with ``reason`` or the facts and
    printed ``lines``; ``phase(name)`` hears where it is."""
    from polypipe.codegen.estimate import TARGETS, estimate, program_tflops
    from polypipe.codegen.nvcc import compile_cubin
    from polypipe.codegen.sass import find_nvdisasm, kernel_sass
    from polypipe.gpu_warp import warp_plan
    from polypipe.kernel import bind_arguments
    from polypipe.performance import launch_counts

    seconds = {}

    def step(name):
        phase(name)
        seconds[name] = time.perf_counter()

    def took(name):
        return time.perf_counter() - seconds[name]

    try:
        step("optimize")
        opt = pp.optimize(pp.kernel(kernel_of(workload)), config)
        seconds["optimize"] = took("optimize")
        step("printing the CUDA")
        binding = bind_arguments(opt.original, shapes_only(workload, dtype), device_arrays=True)
        source = opt.cuda_source_for(binding)
        step("nvcc")
        cubin, resources = compile_cubin(source, "sm_90")
        seconds["nvcc"] = took("nvcc")
    except (pp.ScheduleError, pp.ArgumentError) as exc:
        return {"status": "refused", "reason": first_line(exc)}
    except Exception as exc:       # a proof's InternalError, nvcc rejecting the text, ...
        return {"status": "failed", "reason": first_line(exc)}
    step("SASS")
    plan_counts = warp_plan(config).instruction_counts()
    sass = kernel_sass(cubin) if find_nvdisasm() else {}
    shared = sum(opt.dynamic_shared_bytes(k, binding) for k in opt.kernels)
    lines = [f"  optimize {seconds['optimize']:.1f} s, CUDA for the sizes "
             f"{source.count(chr(10))} lines, nvcc {seconds['nvcc']:.1f} s"]
    result = {"status": "built", "optimize_s": seconds["optimize"], "kernels": []}
    for r in resources:
        facts = sass.get(r.name)
        local = facts.kernel_mix.local if facts else None
        lines.append(f"  {r.name}: {r.registers} registers, {r.spill_stores} + "
                     f"{r.spill_loads} bytes spilled (stores + loads), "
                     + (f"{local} LDL/STL" if facts else "no SASS (nvdisasm not found)")
                     + f", {max(r.shared_bytes, shared)} B shared")
        entry = {"name": r.name, "registers": r.registers,
                 "spill_bytes": r.spill_stores + r.spill_loads, "local": local,
                 "differences": None}
        if facts:
            row, entry["differences"] = sass_against_plan(facts.loop_mix, plan_counts)
            lines.append(f"    {row}")
        result["kernels"].append(entry)
    if sass:
        try:
            counts = launch_counts(opt, binding, compiled=(sass, {r.name: r for r in resources}))
            estimates = [estimate(c, TARGETS[TC_TARGET]) for c in counts]
            lines += [f"  {e.kernel}: {e.describe()}" for e in estimates]
            result["tflops"] = program_tflops(estimates)
        except Exception as exc:   # the estimate is beside the build, never instead of it
            lines.append(f"  estimate: none ({first_line(exc)})")
    result["lines"] = lines
    return result


def _build_child(config, workload, dtype, connection) -> None:
    """A forked build: sends ("phase", name) as it goes, then ("done", result)."""
    try:
        result = tc_build(config, workload, dtype,
                          lambda name: connection.send(("phase", name)))
    except BaseException as exc:     # anything: the parent must hear of it
        result = {"status": "failed", "reason": first_line(exc)}
    connection.send(("done", result))
    connection.close()


def forked_builds(configs: list, workload: Workload, dtype: str = "float16",
                  limit_s: float = TC_BUILD_LIMIT_S, jobs: int = TC_BUILD_JOBS):
    """Yield (config, result) in ``configs``' order, each :func:`tc_build` in a forked process
    (``jobs`` at a time; the parent's imports and cached plans are the child's), one that runs
    past ``limit_s`` killed and reported as "stopped" in the phase it had reached."""
    context = multiprocessing.get_context("fork")
    results: dict[int, dict] = {}
    running: dict[int, list] = {}       # index -> [process, connection, start, phase]
    waiting = list(range(len(configs)))
    shown = 0
    while shown < len(configs):
        while waiting and len(running) < max(1, jobs):
            index = waiting.pop(0)
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_build_child, daemon=True,
                                      args=(configs[index], workload, dtype, send))
            process.start()
            send.close()
            running[index] = [process, receive, time.monotonic(), "start"]
        multiprocessing.connection.wait([entry[1] for entry in running.values()], timeout=1.0)
        for index, entry in list(running.items()):
            process, receive, started, _ = entry
            try:
                while receive.poll():
                    kind, value = receive.recv()
                    if kind == "phase":
                        entry[3] = value
                    else:
                        results[index] = value
            except (EOFError, OSError):
                if index not in results:
                    process.join(5)
                    results[index] = {"status": "failed", "reason": "the build's process "
                                      f"ended without a result (exit code {process.exitcode})"}
            if index not in results and time.monotonic() - started > limit_s:
                process.kill()
                results[index] = {"status": "stopped", "reason": f"{entry[3]} did not finish "
                                  f"within {limit_s:.0f} s (the build was stopped)"}
            if index in results:
                process.join(5)
                receive.close()
                del running[index]
        while shown < len(configs) and shown in results:
            yield configs[shown], results[shown]
            shown += 1


def tensor_core_builds(configs: list, out=log) -> dict:
    """Build each of ``configs`` for :data:`TC_BUILD_SHAPE` in float16 and print what came of
    it (see the module's docstring); returns the counts by status, with "matching" (builds
    whose SASS has the planned HMMA, LDSM and LDGSTS.128)."""
    workload = {w.name: w for w in half_workloads()}[TC_BUILD_SHAPE]
    start = time.perf_counter()
    out(f"== tensor-core builds: {TC_BUILD_SHAPE} float16 (optimize, CUDA for the sizes, nvcc "
        f"sm_90, SASS against the plan, the built kernel's estimate on {TC_TARGET}; "
        f"{min(TC_BUILD_JOBS, len(configs))} at a time, each stopped after "
        f"{TC_BUILD_LIMIT_S} s) ==")
    tally = {"built": 0, "matching": 0, "refused": 0, "failed": 0, "stopped": 0}
    built = []
    for config, result in forked_builds(configs, workload):
        status = result["status"]
        tally[status] += 1
        if status != "built":
            out(f"{status} {config.describe()}: {result['reason']}")
            continue
        out(f"built {config.describe()}")
        for line in result["lines"]:
            out(line)
        kernels = result["kernels"]
        if kernels and all(k["differences"] == [] for k in kernels):
            tally["matching"] += 1
        built.append((config, result))
    if built:
        out(f"built, ranked by the built kernel's estimate at {TC_BUILD_SHAPE} (TFLOP/s on "
            f"{TC_TARGET}, registers, SASS against the plan):")
        for config, result in sorted(built, key=lambda item: -item[1].get("tflops", 0.0)):
            kernels = result["kernels"]
            sass = ("matches" if all(k["differences"] == [] for k in kernels) else
                    "no SASS" if any(k["differences"] is None for k in kernels) else "differs")
            tflops = result.get("tflops")
            out(f"  {'-' if tflops is None else f'{tflops:5.0f}'}  "
                f"{'/'.join(str(k['registers']) for k in kernels)} registers, "
                f"{sum(k['spill_bytes'] for k in kernels)} spill bytes, SASS {sass}  "
                f"{config.describe()}")
    out(f"{len(configs)} tensor-core configurations: {tally['built']} built "
        f"({tally['matching']} with the planned HMMA, LDSM and LDGSTS.128 in the main loop), "
        f"{tally['refused']} refused, {tally['failed']} failed, {tally['stopped']} stopped "
        f"({time.perf_counter() - start:.1f} s)")
    return tally


def tensor_core_listing(out=log, session: bool = False) -> dict:
    """The dry run's tensor-core sections: the plans, then the builds (with ``session``, of
    :data:`SESSION_TC_CONFIGS` only). Returns :func:`tensor_core_builds`' counts with "plans"
    and "plan_refusals"."""
    plans, refusals = tensor_core_plans(out)
    configs = list(SESSION_TC_CONFIGS) if session else tc_configs() + outside_configs()
    tally = tensor_core_builds(configs, out)
    return dict(tally, plans=plans, plan_refusals=refusals)
