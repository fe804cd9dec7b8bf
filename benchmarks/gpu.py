"""FP32 GPU benchmark: cuBLAS (CuPy), Triton, polypipe pipelined, polypipe with pipelining off.

    python benchmarks/gpu.py [--quick] [--out DIR]      # on a GPU host, one process, one run
    python benchmarks/gpu.py --dry-run [--quick]         # no GPU: prove, print and nvcc-compile
    python benchmarks/gpu.py --chart RESULTS.json        # redraw the bar chart of a run
    python benchmarks/gpu.py --half [--session]          # FP16/BF16, FP32 accumulation
    python benchmarks/gpu.py --dry-run --half            # no GPU: the FP16/BF16 sections only

For every workload of :mod:`gpu_workloads` (ALCOP's shapes) it times each implementation with
CUDA events (warm-up, then the median of single runs, each after an L2 flush: :class:`Timer`;
cuBLAS and cuDNN with TF32 off) and prints TFLOP/s with the ratios polypipe / cuBLAS,
polypipe / Triton and
pipelined / not pipelined. Every polypipe result is compared with cuBLAS's before it is
recorded. Results go to ``DIR/gpu_<device>.json`` (records with op, shape, dtype, device,
impl, config, tflops, ms) and a bar chart ``DIR/gpu_<device>.png``.

Convolutions: polypipe runs the implicit GEMM on the padded NHWC input; cuBLAS and Triton run
the same GEMM on a pre-built im2col matrix (its construction not timed), and cuDNN (PyTorch,
TF32 off) runs the convolution itself.

The baseline without pipelining keeps the best configuration's tiles with one shared and one
register stage, built both at ptxas's register choice and for two blocks per SM; the faster
of the two is recorded (:func:`nopipe_variants`).

The configuration search (:func:`search`) is deliberately small: tile shapes and reduction
tiles at 3 shared / 2 register stages on a representative shape, then stage counts (and
``blocks_per_sm=1``, and strided fragment ownership) for the best tiles, then the finalists on
every shape of the class. The dry run also prints the static instruction mix that grouped
fragment ownership changes: multiply-adds per shared-memory load instruction.

FP16 and BF16 (:mod:`gpu_half`): ``--half`` times cuBLAS (PyTorch, FP32 compute type), Triton
and polypipe's tensor-core (``mma.sync``) and CUDA-core kernels on float16/bfloat16 inputs with
float32 accumulation, in ``DIR/gpu_<device>_half[_session].json`` (the same records, ``dtype``
"float16"/"bfloat16"). Every ``--dry-run`` ends with more sections: the tensor-core plans (each
plan's registers, shared memory, instruction mix, swizzle and conflict degrees, static
estimate at 4096^3, 8192^3 and a BERT GEMM, and the configurations refused, with the reason),
the tensor-core builds for 4096^3 (optimized, printed, nvcc-compiled: registers, spills, the
main loop's HMMA/LDSM/LDGSTS.128 against the plan, the built kernel's estimate; with
``--session`` only the session's configurations) and the half-precision runs a GPU run makes;
``--dry-run --half`` prints only those.
``--session`` does not draw the chart (a session brings back 8 files): ``--chart`` redraws it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import polypipe as pp  # noqa: E402
from polypipe.gpu_config import format_config  # noqa: E402
from gpu_workloads import (Workload, all_workloads, batched_matmul, conv_kernel,  # noqa: E402
                           host_arrays, im2col, matmul)

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path.home() / ".cache" / "polypipe" / "bench_kernels"

TILES = [((128, 128), (16, 16)), ((128, 64), (16, 16)), ((64, 128), (16, 16)),
         ((64, 64), (16, 16))]
REDUCTIONS = (8, 16, 32)
STAGES = ((2, 2), (3, 2), (4, 2), (3, 1), (4, 1))
# (stages, blocks per SM, fragment ownership): ptxas's default may cap 128x128 tiles at 128
# registers and spill; strided ownership (fragment_vector=1) loads fragments one element at a
# time but copies A with 16-byte cp.async, grouped ownership (the default, 4) the reverse.
VARIANTS = ([(s, 0, 4) for s in STAGES] + [((3, 2), 1, 4), ((4, 2), 1, 4)]
            + [((3, 2), 0, 1), ((4, 2), 0, 1)])
FINALISTS = 3
# The session benchmark (gpu_session.py) has no time for a search: these configurations on four
# workloads, one per class plus a small GEMM.
SESSION_CONFIGS = (
    pp.GpuConfig(block=(128, 128), threads=(16, 16), reduction=16, shared_stages=3,
                 register_stages=2),
    pp.GpuConfig(block=(128, 64), threads=(16, 16), reduction=16, shared_stages=4,
                 register_stages=2))
SESSION_WORKLOADS = ("square-4096", "bert-base-ffn1-512", "attention-12x512x512x64",
                     "resnet50-3x3-28x28x128")


def base_configs(quick: bool) -> list[pp.GpuConfig]:
    tiles = TILES[:2] if quick else TILES
    reductions = (16, 32) if quick else REDUCTIONS
    return [pp.GpuConfig(block=b, threads=t, reduction=k, shared_stages=3, register_stages=2)
            for b, t in tiles for k in reductions]


def nopipe(config: pp.GpuConfig) -> pp.GpuConfig:
    return replace(config, shared_stages=1, register_stages=1)


def nopipe_variants(config: pp.GpuConfig) -> list[pp.GpuConfig]:
    """Pipelining off with the same tiles, at ptxas's register choice and at two blocks per
    SM: one stage frees shared memory for a second block, but ptxas may take just over 128
    registers (the implicit-GEMM convolutions do) and keep it out. The faster one is the
    baseline, so the pipelining ratio is not flattered by the baseline's occupancy."""
    off = nopipe(config)
    return [off] if off.blocks_per_sm == 2 else [off, replace(off, blocks_per_sm=2)]


class Optimizer:
    """optimize() once per (kernel, config): the proof is parametric in the sizes."""

    def __init__(self):
        self.cache: dict = {}
        self.proof_seconds = 0.0

    def __call__(self, func, config: pp.GpuConfig):
        key = (func.__module__, func.__name__, config)
        if key not in self.cache:
            start = time.perf_counter()
            try:
                self.cache[key] = pp.optimize(pp.kernel(func), config)
            except pp.PolypipeError as exc:
                self.cache[key] = exc
            self.proof_seconds += time.perf_counter() - start
        return self.cache[key]


def kernel_for(workload: Workload):
    if workload.op == "gemm":
        return matmul
    if workload.op == "batched_gemm":
        return batched_matmul
    return conv_kernel(workload, CACHE)


def polypipe_arrays(workload: Workload, host: dict) -> list:
    if workload.op == "conv2d":
        return [host["Y"], host["Xp"], host["Wt"]]
    return [host["C"], host["A"], host["B"]]


# -- GPU timing --------------------------------------------------------------------------------


# Timed runs start from a cold L2: this many bytes are written between runs, several times
# the 50 MB L2 of an H100/H200, so operands come from DRAM as in a network's layer sequence.
L2_FLUSH_BYTES = 256 << 20


class Timer:
    """Median GPU milliseconds of single runs, each after an L2 flush, following a warm-up
    (the first call compiles); as many runs as fit in about 100 ms, between 10 and 200.

    Everything runs on the legacy default stream: PyTorch's and CuPy's work (the flush, the
    baselines) and PyCUDA's launches and events (stream None), so a run's start event is
    recorded after the flush before it has finished."""

    def __init__(self, torch):
        self.torch = torch
        self.scratch = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.float32, device="cuda")

    def flush(self) -> None:
        self.scratch.zero_()

    def median(self, run_once) -> float:
        """``run_once()`` runs once and returns its GPU milliseconds."""
        run_once()
        first = max(run_once(), 1e-3)
        runs = max(10, min(200, math.ceil(100.0 / first)))
        times = []
        for _ in range(runs):
            self.flush()
            times.append(run_once())
        return statistics.median(times)

    def launch_ms(self, launch) -> float:
        """``median`` of a launch timed with CUDA events around it."""
        torch = self.torch
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def once() -> float:
            start.record()
            launch()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)

        return self.median(once)

    def polypipe_ms(self, opt, args) -> float:
        """``median`` of a polypipe program (its own events around its launches)."""
        return self.median(lambda: opt.time_cuda(*args, repeat=1))


class GpuSession:
    """Device arrays and the reference implementations of one workload."""

    def __init__(self, workload: Workload, rng, timer: Timer):
        import cupy
        import torch

        self.torch, self.cupy, self.timer = torch, cupy, timer
        self.workload = workload
        self.host = host_arrays(workload, rng)
        self.dev = {name: torch.from_numpy(value).cuda() for name, value in self.host.items()}
        batch, m, n, k = workload.gemm
        if workload.op == "conv2d":
            s = workload.shape
            cols = im2col(self.host["Xp"], s["H"], s["W"], s["stride"])
            self.a, self.b = torch.from_numpy(cols).cuda(), self.dev["Wt"]
            self.out = self.dev["Y"]
        else:
            self.a, self.b, self.out = self.dev["A"], self.dev["B"], self.dev["C"]
        self.reference = torch.empty_like(self.out)
        cupy.matmul(cupy.asarray(self.a), cupy.asarray(self.b), out=cupy.asarray(self.reference))
        torch.cuda.synchronize()

    def polypipe_args(self) -> list:
        return polypipe_arrays(self.workload, self.dev)

    def error_of(self, result) -> float:
        scale = float(self.reference.abs().max()) or 1.0
        return float((result - self.reference).abs().max()) / scale

    def cublas_ms(self) -> float:
        cp = self.cupy
        a, b, out = cp.asarray(self.a), cp.asarray(self.b), cp.asarray(self.out)
        return self.timer.launch_ms(lambda: cp.matmul(a, b, out=out))

    def triton_ms(self) -> float:
        import gpu_triton

        result = self.torch.empty_like(self.out)
        gpu_triton.matmul(self.a, self.b, result)
        error = self.error_of(result)
        if error > 1e-4:
            raise RuntimeError(f"Triton's result differs from cuBLAS's by {error:.2e}")
        return self.timer.launch_ms(lambda: gpu_triton.matmul(self.a, self.b, result))

    def cudnn_ms(self) -> float:
        torch = self.torch
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        s = self.workload.shape
        x = self.dev["Xp"][:, 1:-1, 1:-1, :].permute(0, 3, 1, 2).contiguous(
            memory_format=torch.channels_last)
        w = self.dev["Wt"].reshape(3, 3, s["C"], s["K"]).permute(3, 2, 0, 1).contiguous(
            memory_format=torch.channels_last)
        conv = torch.nn.functional.conv2d
        return self.timer.launch_ms(lambda: conv(x, w, padding=s["pad"], stride=s["stride"]))


def run_polypipe(optimizer: Optimizer, session: GpuSession, func, config) -> tuple:
    """(ms, error) of one configuration, or (None, reason) when it cannot run."""
    opt = optimizer(func, config)
    if isinstance(opt, Exception):
        return None, f"refused: {opt}".splitlines()[0]
    args = session.polypipe_args()
    try:
        session.out.zero_()
        opt.time_cuda(*args, repeat=1)
        session.torch.cuda.synchronize()
        error = session.error_of(session.out)
        if error > 1e-4:
            return None, f"wrong result: relative error {error:.2e}"
        return session.timer.polypipe_ms(opt, args), error
    except pp.PolypipeError as exc:
        return None, f"failed: {exc}".splitlines()[0]


def fastest(optimizer: Optimizer, session: GpuSession, func, configs, on_failure=None):
    """(ms, config, max relative error) of the fastest configuration that ran, or None;
    ``on_failure(config, reason)`` hears of each one that did not."""
    best = None
    for config in configs:
        ms, info = run_polypipe(optimizer, session, func, config)
        if ms is None:
            if on_failure is not None:
                on_failure(config, info)
        elif best is None or ms < best[0]:
            best = (ms, config, info)
    return best


def search(optimizer: Optimizer, session: GpuSession, func, quick: bool, log) -> list:
    """The finalists: best tiles at 3/2 stages, then stage counts for the best tiles."""
    timed = []

    def measure(config):
        ms, info = run_polypipe(optimizer, session, func, config)
        log(f"    search {format_config(config)}: "
            + (f"{ms:.3f} ms" if ms is not None else str(info)))
        if ms is not None:
            timed.append((ms, config))

    for config in base_configs(quick):
        measure(config)
    timed.sort(key=lambda item: item[0])
    best_tiles = [config for _, config in timed[:2]]
    for config in best_tiles:
        for (shared, registers), blocks, ownership in VARIANTS:
            candidate = replace(config, shared_stages=shared, register_stages=registers,
                                blocks_per_sm=blocks, fragment_vector=ownership)
            if candidate not in [c for _, c in timed]:
                measure(candidate)
    timed.sort(key=lambda item: item[0])
    return [config for _, config in timed[:FINALISTS]]


def representative(workloads: list[Workload], op: str) -> Workload:
    """The largest workload of a class (by FLOPs), capped at square-4096 for GEMMs."""
    candidates = [w for w in workloads if w.op == op]
    capped = [w for w in candidates if w.flops <= 2.0 * 4096 ** 3] or candidates
    return max(capped, key=lambda w: w.flops)


def fp32_baselines(torch) -> None:
    """cuBLAS and cuDNN in true FP32: no TF32 (CuPy reads CUPY_TF32 when it starts)."""
    os.environ["CUPY_TF32"] = "0"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def estimated_tflops(opt, args, device: str) -> float | None:
    """The static estimate's bound for this build on this device (None where nvdisasm is
    missing), recorded beside the measurement so the two can be compared."""
    from polypipe.codegen.estimate import program_tflops
    from polypipe.kernel import bind_arguments
    from polypipe.performance import launch_estimates

    target = "H200" if "H200" in device else "H100"
    try:
        estimates = launch_estimates(
            opt, bind_arguments(opt.original, args, device_arrays=True), target)
    except pp.PolypipeError:
        return None
    return program_tflops(estimates) or None


def benchmark(quick: bool, out: Path, only: str | None = None,
              fixed: bool = False) -> list[dict]:
    """Search (unless ``fixed``: SESSION_CONFIGS on SESSION_WORKLOADS), time, record, chart."""
    import torch

    fp32_baselines(torch)
    import cupy

    device = torch.cuda.get_device_name(0)
    rng = np.random.default_rng(0)
    optimizer = Optimizer()
    workloads = select(all_workloads(), quick, only or (
        ",".join(SESSION_WORKLOADS) if fixed else None))
    records = []
    timer = Timer(torch)

    def log(text):
        print(text, flush=True)

    log(f"device: {device}; CuPy {cupy.__version__}, PyTorch {torch.__version__}; TF32 off, "
        f"L2 flushed ({L2_FLUSH_BYTES >> 20} MiB written) before every timed run")
    try:
        import triton

        log(f"Triton {triton.__version__}")
        have_triton = True
    except ImportError:
        have_triton = False
        log("Triton not importable: no Triton records")
    slug = "".join(ch if ch.isalnum() else "_" for ch in device).strip("_").lower()
    suffix = "_session" if fixed else "_quick" if quick else ""
    path = out / f"gpu_{slug}{suffix}.json"

    def save():   # after every workload: a run cut short keeps what it measured
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records, indent=1) + "\n")

    finalists: dict[str, list] = {}
    for op in ("gemm", "batched_gemm", "conv2d"):
        if not any(w.op == op for w in workloads):
            continue
        if fixed:
            finalists[op] = list(SESSION_CONFIGS)
            continue
        rep = representative(workloads, op)
        log(f"search for {op} on {rep.name}")
        session = GpuSession(rep, rng, timer)
        finalists[op] = search(optimizer, session, kernel_for(rep), quick, log)
        del session
    for workload in workloads:
        session = GpuSession(workload, rng, timer)
        func = kernel_for(workload)
        base = {"op": workload.op, "name": workload.name, "shape": workload.shape,
                "gemm": list(workload.gemm), "dtype": "float32", "device": device}

        def record(impl, ms, config="", **extra):
            tflops = workload.flops / (ms * 1e-3) / 1e12
            records.append({**base, "impl": impl, "config": config, "ms": ms,
                            "tflops": tflops, **extra})
            bound = extra.get("estimate_tflops")
            log(f"  {workload.name:34s} {impl:16s} {tflops:7.2f} TFLOP/s  {ms:8.3f} ms  "
                f"{config}" + (f"  (estimate <= {bound:.1f})" if bound else ""))

        record("cublas", session.cublas_ms())
        if have_triton:
            try:
                record("triton", session.triton_ms())
            except Exception as exc:  # a Triton failure must not hide the others
                log(f"  {workload.name}: triton failed: {exc}")
        if workload.op == "conv2d":
            record("cudnn", session.cudnn_ms())
        best = fastest(optimizer, session, func, finalists.get(workload.op, []))
        if best is None:
            log(f"  {workload.name}: no polypipe configuration ran")
            continue
        ms, config, error = best
        record("polypipe", ms, format_config(config), max_rel_error=error,
               estimate_tflops=estimated_tflops(optimizer(func, config),
                                                session.polypipe_args(), device))
        off = fastest(optimizer, session, func, nopipe_variants(config),
                      lambda candidate, info: log(f"  {workload.name}: polypipe-nopipe "
                                                  f"{format_config(candidate)} {info}"))
        if off is not None:
            record("polypipe-nopipe", off[0], format_config(off[1]), max_rel_error=off[2],
                   estimate_tflops=estimated_tflops(optimizer(func, off[1]),
                                                    session.polypipe_args(), device))
        del session
        torch.cuda.empty_cache()
        save()
    log(f"optimize + proof time, all configurations: {optimizer.proof_seconds:.1f} s")
    summarise(records, log)
    save()
    log(f"wrote {path}")
    if fixed:   # a session brings back 8 files at most: redraw with --chart
        log(f"chart: python benchmarks/gpu.py --chart {path.name}")
    else:
        chart(path)
    return records


def select(workloads: list[Workload], quick: bool, only: str | None = None
           ) -> list[Workload]:
    if only:
        return [w for w in workloads if w.name in only.split(",")]
    if not quick:
        return workloads
    keep = {"square-1024", "square-4096", "bert-base-ffn1-512", "attention-12x512x512x64",
            "resnet50-3x3-28x28x128"}
    return [w for w in workloads if w.name in keep]


def summarise(records: list[dict], log) -> None:
    """Ratios side by side: polypipe vs cuBLAS and Triton, pipelined vs not (per workload and
    geometric means over the FP32 GEMMs; float16/bfloat16 records are rows of their own,
    summarised by :func:`gpu_half.summarise_half`)."""
    by_name: dict[str, dict] = {}     # a 16-bit record is its own row: "name dtype"
    gemms = set()
    for r in records:
        dtype = r.get("dtype", "float32")
        name = r["name"] if dtype == "float32" else f"{r['name']} {dtype}"
        by_name.setdefault(name, {})[r["impl"]] = r["tflops"]
        if r.get("op") == "gemm" and dtype == "float32":
            gemms.add(name)
    log(f"{'workload':34s} {'cuBLAS':>8s} {'Triton':>8s} {'polypipe':>9s} {'nopipe':>8s} "
        f"{'pp/cuBLAS':>9s} {'pp/Triton':>9s} {'pipe/off':>8s}")
    ratios: dict[str, list] = {"cublas": [], "triton": [], "pipe": []}
    for name, t in by_name.items():
        pp_ = t.get("polypipe")

        def ratio(other):
            return pp_ / t[other] if pp_ and t.get(other) else None

        row = [t.get("cublas"), t.get("triton"), pp_, t.get("polypipe-nopipe"),
               ratio("cublas"), ratio("triton"), ratio("polypipe-nopipe")]
        log(f"{name:34s} " + " ".join("       -" if v is None else f"{v:8.2f}" for v in row))
        if name in gemms:
            for key, value in zip(("cublas", "triton", "pipe"), row[4:]):
                if value:
                    ratios[key].append(value)
    for key, values in ratios.items():
        if values:
            mean = math.exp(sum(math.log(v) for v in values) / len(values))
            log(f"geometric mean over GEMMs, polypipe / {key}: {mean:.3f} ({len(values)})")


def chart(path: Path) -> Path | None:
    """A grouped bar chart of TFLOP/s per workload and implementation, next to the JSON."""
    from charts import grouped_bars

    records = json.loads(Path(path).read_text())
    names = list(dict.fromkeys(r["name"] for r in records))
    dtypes = list(dict.fromkeys(r.get("dtype", "float32") for r in records))

    def label(r):     # an implementation per dtype where the JSON has several
        return r["impl"] if len(dtypes) == 1 else f"{r['impl']} {r.get('dtype', 'float32')}"

    order = ("cublas", "cublas-out-f32", "cudnn", "triton", "polypipe", "polypipe-nopipe",
             "polypipe-tensorcore", "polypipe-cudacore")
    impls = sorted({label(r) for r in records},
                   key=lambda i: (order.index(i.split()[0]) if i.split()[0] in order
                                  else len(order), i))
    value = {(r["name"], label(r)): r["tflops"] for r in records}
    kind = "FP32" if dtypes == ["float32"] else "/".join(dtypes) + " (FP32 accumulation)"
    return grouped_bars(Path(path).with_suffix(".png"), names, impls,
                        lambda name, impl: value.get((name, impl), 0.0), f"TFLOP/s ({kind})",
                        f"{kind} on {records[0]['device']}" if records else kind,
                        f"python benchmarks/gpu.py --chart {path}")


def shared_load_mix(ptx: str) -> dict:
    """Static PTX counts: multiply-adds, shared-memory load instructions, the 16-byte ones,
    and global stores (the result's copy-out) with the 16-byte ones.

    Multiply-adds per shared load is what grouped fragment ownership raises: an FP32 SM
    issues four warp FMAs per cycle but serves one warp's 128 bytes of shared memory.
    """
    wide = len(re.findall(r"ld\.shared\.v4\.f32|ld\.shared\.v2\.f64", ptx))
    return {"fma": len(re.findall(r"fma\.rn\.f(32|64)", ptx)), "wide": wide,
            "loads": len(re.findall(r"ld\.shared\.(v[24]\.)?[fbu](32|64)", ptx)),
            "stores": len(re.findall(r"st\.global\.(v[24]\.)?[fbu](32|64)", ptx)),
            "wide_stores": len(re.findall(r"st\.global\.v4\.f32|st\.global\.v2\.f64", ptx))}


def dry_run(quick: bool, only: str | None = None, fixed: bool = False) -> int:
    """Without a GPU: build, prove, specialise and nvcc-compile one configuration per workload,
    and report registers, spills, shared memory, the main loop's SASS and the static estimate
    (:mod:`polypipe.codegen.estimate`) on an H200."""
    from polypipe.codegen.nvcc import compile_cubin, compile_ptx
    from polypipe.codegen.sass import find_nvdisasm, kernel_sass
    from polypipe.kernel import bind_arguments
    from polypipe.performance import estimate_lines

    disassembler = find_nvdisasm()
    if disassembler is None:
        print("nvdisasm not found (pip install nvidia-cuda-nvdisasm): no SASS counts")

    optimizer = Optimizer()
    config = pp.GpuConfig(block=(128, 128), threads=(16, 16), reduction=16,
                          shared_stages=3, register_stages=2)
    builds = [config, replace(config, fragment_vector=1), *nopipe_variants(config)]
    if fixed:   # what the session benchmark builds
        builds = [c for pipelined in SESSION_CONFIGS
                  for c in (pipelined, *nopipe_variants(pipelined))]
        only = only or ",".join(SESSION_WORKLOADS)
    failures = 0
    for workload in select(all_workloads(), quick, only):
        func = kernel_for(workload)
        for cfg in builds:
            opt = optimizer(func, cfg)
            if isinstance(opt, Exception):
                print(f"{workload.name:34s} {format_config(cfg)}: refused: {opt}")
                failures += 1
                continue
            binding = bind_arguments(opt.original,
                                     polypipe_arrays(workload, _shapes_only(workload)),
                                     device_arrays=True)
            source = opt.cuda_source_for(binding)
            cubin, resources = compile_cubin(source, "sm_90")
            mix = shared_load_mix(compile_ptx(source, "sm_90"))
            sass = kernel_sass(cubin) if disassembler else {}
            for r in resources:
                shared = sum(opt.dynamic_shared_bytes(k, binding) for k in opt.kernels)
                print(f"{workload.name:34s} {format_config(cfg)}: {r.registers} registers, "
                      f"{r.spill_stores + r.spill_loads} spill bytes, "
                      f"{max(r.shared_bytes, shared)} B shared, "
                      f"{source.count('pp_cp_async<16>')} wide copies, "
                      f"{mix['fma']} FMA / {mix['loads']} shared loads "
                      f"({mix['wide']} of 16 bytes) = {mix['fma'] / max(mix['loads'], 1):.1f}, "
                      f"{mix['stores']} global stores ({mix['wide_stores']} of 16 bytes)")
                if r.name in sass:
                    print(f"{'':34s}   SASS {sass_row(sass[r.name])}")
            if disassembler:
                for line in estimate_lines(opt, binding, "H200"):
                    print(f"{'':34s} {line}")
    print(f"optimize + proof time: {optimizer.proof_seconds:.1f} s")
    return 1 if failures else 0


def sass_row(facts) -> str:
    """The main loop's static SASS per iteration, and the whole kernel's local traffic."""
    loop = facts.loop_mix
    return (f"main loop: {loop.ffma} FFMA, LDS {loop.widths('lds')}, "
            f"LDGSTS {loop.widths('ldgsts')}, {loop.bar} BAR, {loop.depbar} DEPBAR, "
            f"{loop.integer} INT ({loop.integer_per_ffma():.2f}/FFMA), "
            f"{loop.ffma_per_lds():.1f} FFMA/LDS; kernel: {facts.kernel_mix.local} LDL/STL")


class ShapeOnly:
    """An array description (``__cuda_array_interface__``, no memory; float32 unless
    ``typestr`` says otherwise): enough to specialise and print a kernel for its sizes."""

    def __init__(self, *shape, typestr: str = "<f4"):
        self.shape = shape
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr,
                                         "data": (0, False), "strides": None, "version": 3}


def _shapes_only(workload: Workload) -> dict:
    batch, m, n, k = workload.gemm
    if workload.op == "gemm":
        return {"A": ShapeOnly(m, k), "B": ShapeOnly(k, n), "C": ShapeOnly(m, n)}
    if workload.op == "batched_gemm":
        return {"A": ShapeOnly(batch, m, k), "B": ShapeOnly(batch, k, n),
                "C": ShapeOnly(batch, m, n)}
    s = workload.shape
    return {"Xp": ShapeOnly(s["N"], s["H"] + 2, s["W"] + 2, s["C"]),
            "Wt": ShapeOnly(9 * s["C"], s["K"]), "Y": ShapeOnly(m, n)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 workloads, a smaller search")
    parser.add_argument("--dry-run", action="store_true",
                        help="no GPU: prove, print and compile one configuration per workload")
    parser.add_argument("--chart", type=Path, help="redraw the chart of a results JSON")
    parser.add_argument("--only", help="comma-separated workload names")
    parser.add_argument("--session", action="store_true",
                        help="no search: SESSION_CONFIGS on SESSION_WORKLOADS (gpu_session.py)")
    parser.add_argument("--half", action="store_true",
                        help="FP16/BF16 with FP32 accumulation (gpu_half.py); with --dry-run "
                             "only the tensor-core plans and builds and the half-precision "
                             "builds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    options = parser.parse_args(argv)
    if options.chart:
        return 0 if chart(options.chart) else 1
    import gpu_half

    if options.dry_run:
        status = 0 if options.half else dry_run(options.quick, options.only, options.session)
        return gpu_half.dry_run_half(options.only, options.session) or status
    if options.half:
        gpu_half.benchmark_half(options.out, options.only, options.session)
        return 0
    benchmark(options.quick, options.out, options.only, options.session)
    return 0


if __name__ == "__main__":
    sys.exit(main())
