"""FP16 and BF16 GEMMs with FP32 accumulation on the GPU, and the plans of the tensor-core builds.

    python benchmarks/gpu.py --half [--session] [--only NAMES] [--out DIR]   # on a GPU host
    python benchmarks/gpu.py --dry-run [--half] [--session] [--only NAMES]   # no GPU

**Baselines** (:func:`benchmark_half`) on :func:`gpu_workloads.half_workloads` (ALCOP's GEMMs,
4096^3 and 8192^3 among them, and the batched attention GEMMs): the FP32 benchmark's JSON
records with ``dtype`` "float16" or "bfloat16", ``accumulate`` "float32" and ``out_dtype``,
in ``DIR/gpu_<device>_half[_session].json``:

* ``cublas``: ``torch.matmul`` of float16/bfloat16 tensors with PyTorch's
  ``allow_fp16_reduced_precision_reduction`` and ``allow_bf16_reduced_precision_reduction``
  off, so cuBLAS computes in FP32 (the log says so); the output is in the input dtype. This
  is the HGEMM of issue 17's goal: polypipe at >= 0.6x cuBLAS at 4096^3 and 8192^3;
* ``cublas-out-f32``: ``torch.mm`` / ``torch.bmm`` with ``out_dtype=torch.float32`` where this
  PyTorch has it (logged and skipped where not): the same product stored as float32;
* ``triton``: :func:`gpu_triton.matmul`, float32 accumulator, float32 output;
* ``polypipe-cudacore``: polypipe's current kernel of :func:`gpu_workloads.half_matmul` (CUDA
  cores: 16-bit tiles in shared memory, products of the widened values, float32 sums),
  float32 output. polypipe binds a device array through ``__cuda_array_interface__`` and
  NumPy's dtype of its type string; NumPy knows bfloat16 only once ml_dtypes is imported, so
  without ml_dtypes (the GPU host has none) the bfloat16 runs are skipped, saying why.

Every result is compared with the FP32 product of the same 16-bit inputs (cuBLAS, TF32 off)
before it is recorded: within :data:`TOLERANCE` of its output dtype, relative to the largest
element. An implementation that fails is logged and skipped. ``--session`` (the GPU session's
step, about a minute): :data:`SESSION_WORKLOADS` with two Triton configurations, polypipe on
square-4096 in float16 only (one nvcc build), no new work after :data:`SESSION_DEADLINE_S`
seconds; the JSON is rewritten after every workload.

**Tensor-core builds** (:func:`tensor_core_listing`, printed by every ``--dry-run``; ``--dry-run
--half`` prints only this module's sections, without the FP32 builds): polypipe's ``mma.sync``
lowering is not built yet (the listing says what ``optimize`` answers), so the dry run lists
the plans (:mod:`polypipe.gpu_warp`) of the configurations a first GPU search would time:
every block tile of :data:`TC_BLOCKS` over every warp grid of :data:`TC_WARPS` at reduction 32,
3 shared and 2 register stages, then :data:`TC_STAGE_VARIANTS` for the :data:`TC_STAGED`
tiles, and a few configurations just outside (:data:`TC_OUTSIDE`). For each: registers per
lane, shared memory, the instruction mix of one main-loop iteration, the swizzle the plan
chose and its bank-conflict degrees, and the static estimate (time, TFLOP/s, bound) on an H200
at :data:`TC_ESTIMATE_SHAPES`; then the ranking by the 8192^3 estimate, and each refusal with
its ScheduleError text. The dry run also builds and prints (with ``--session``: nvcc-compiles)
the polypipe-cudacore kernels a GPU run launches.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import polypipe as pp  # noqa: E402
from polypipe.gpu_config import format_config  # noqa: E402
import gpu  # noqa: E402
from gpu_workloads import (Workload, half_batched_matmul, half_matmul,  # noqa: E402
                           half_workloads)

DTYPES = ("float16", "bfloat16")
TYPESTR = {"float16": "<f2", "bfloat16": "bfloat16", "float32": "<f4"}
# Largest relative error accepted, by the output's dtype (its rounding, relative to the
# largest element, plus the float32 sums' reordering).
TOLERANCE = {"float32": 1e-4, "float16": 2e-3, "bfloat16": 1e-2}
IMPLS = ("cublas", "cublas-out-f32", "triton", "polypipe-cudacore")
GOAL = 0.6                                      # issue 17: >= 0.6x cuBLAS HGEMM
GOAL_SHAPES = ("square-4096", "square-8192")

# polypipe's CUDA-core kernels: the FP32 session's configurations (the first alone in a session).
CUDACORE_CONFIGS = gpu.SESSION_CONFIGS
SESSION_WORKLOADS = ("square-4096", "square-8192", "bert-base-ffn1-512")
SESSION_POLYPIPE = (("square-4096", "float16"),)
SESSION_DEADLINE_S = 42          # from this module's import; the session step's limit is 50 s
POLYPIPE_NEEDS_S = 20            # optimize + nvcc + timing of one polypipe build

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
IMPORTED = time.monotonic()


def log(text: str) -> None:
    print(text, flush=True)


# -- the tensor-core listing (no GPU) ----------------------------------------------------------


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


def lowering_status() -> str:
    """What ``pp.optimize`` answers for a tensor-core configuration today."""
    config = pp.GpuConfig(block=(128, 128), warps=(2, 2), reduction=32, mma="m16n8k16")
    try:
        pp.optimize(pp.kernel(half_matmul), config)
    except pp.PolypipeError as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return "optimize builds it: time it with gpu.py --half"


def tensor_core_listing(out=log) -> tuple[int, int]:
    """Print the tensor-core section of the dry run; returns (plans, refusals)."""
    by_name = {w.name: w for w in half_workloads()}
    shapes = [by_name[name] for name in TC_ESTIMATE_SHAPES]
    start = time.perf_counter()
    out(f"== tensor-core builds (mma.sync m16n8k16: float16/bfloat16 in, float32 accumulators; "
        f"estimates on {TC_TARGET}) ==")
    out(f"polypipe's lowering today: {lowering_status()}")
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
    out(f"ranked by the estimate at {TC_ESTIMATE_SHAPES[1]} (TFLOP/s at "
        f"{', '.join(TC_ESTIMATE_SHAPES)}):")
    for config, estimates in sorted(ranked, key=lambda item: -item[1][1].tflops):
        out(f"  {' / '.join(f'{e.tflops:5.0f}' for e in estimates)}  {config.describe()}")
    for config, reason in refused:
        out(f"refused {config.describe()}: {reason}")
    out(f"{len(ranked)} tensor-core plans, {len(refused)} refused "
        f"({time.perf_counter() - start:.1f} s)")
    return len(ranked), len(refused)


# -- what a GPU run times, and polypipe's CUDA-core builds (no GPU) ----------------------------


def selection(only: str | None, session: bool) -> tuple[list[Workload], list[tuple]]:
    """(workloads of the baselines, (workload, dtype) pairs of polypipe-cudacore)."""
    workloads = half_workloads()
    if session:
        names = SESSION_WORKLOADS if not only else [n for n in SESSION_WORKLOADS
                                                     if n in only.split(",")]
        by_name = {w.name: w for w in workloads if w.name in names}
        chosen = [by_name[n] for n in names]             # in the session's order of priority
        return chosen, [(by_name[n], d) for n, d in SESSION_POLYPIPE if n in by_name]
    if only:
        workloads = [w for w in workloads if w.name in only.split(",")]
    return workloads, [(w, d) for w in workloads for d in DTYPES]


def kernel_of(workload: Workload):
    return half_matmul if workload.op == "gemm" else half_batched_matmul


def bfloat16_reason() -> str | None:
    """Why polypipe cannot bind bfloat16 device arrays here, or None."""
    try:
        importlib.import_module("ml_dtypes")      # registers NumPy's "bfloat16"
    except ImportError:
        return ("ml_dtypes not importable: polypipe reads a device array's dtype with NumPy, "
                "which has no bfloat16 without it")
    return None


def shapes_only(workload: Workload, dtype: str) -> list:
    """polypipe's arguments (C, A, B) as descriptions without memory."""
    batch, m, n, k = workload.gemm
    lead = () if workload.op == "gemm" else (batch,)
    return [gpu.ShapeOnly(*lead, m, n), gpu.ShapeOnly(*lead, m, k, typestr=TYPESTR[dtype]),
            gpu.ShapeOnly(*lead, k, n, typestr=TYPESTR[dtype])]


def baselines_plan(workloads: list[Workload], pairs: list[tuple], session: bool) -> None:
    triton = "2 configurations (session)" if session else "the tutorial's 8 configurations"
    log("== FP16/BF16 with FP32 accumulation (gpu.py --half"
        + (" --session" if session else "") + "): what the GPU run times ==")
    log(f"{', '.join(DTYPES)} on {len(workloads)} workloads: "
        + ", ".join(w.name for w in workloads))
    log("  cublas: torch.matmul, FP32 compute (allow_fp16/bf16_reduced_precision_reduction "
        "off), output in the input dtype")
    log("  cublas-out-f32: torch.mm/bmm(out_dtype=torch.float32) where PyTorch has it")
    log(f"  triton: gpu_triton.matmul, float32 accumulator and output, {triton}")
    configs = CUDACORE_CONFIGS[:1] if session else CUDACORE_CONFIGS
    log(f"  polypipe-cudacore on {len(pairs)} (workload, dtype): "
        + ", ".join(f"{w.name} {d}" for w, d in pairs[:6]) + (" ..." if len(pairs) > 6 else "")
        + f"; configurations {', '.join(format_config(c) for c in configs)}"
        + "; bfloat16 only where ml_dtypes imports")


def cudacore_builds(pairs: list[tuple], compile_: bool) -> int:
    """Build (prove, specialise, print; with ``compile_`` nvcc) polypipe's CUDA-core kernels of
    ``pairs`` at the first configuration; returns the number that failed."""
    from polypipe.codegen.nvcc import compile_cubin
    from polypipe.kernel import bind_arguments

    optimizer, failures = gpu.Optimizer(), 0
    config = CUDACORE_CONFIGS[0]
    for workload, dtype in pairs:
        label = f"{workload.name:34s} {dtype:8s} polypipe-cudacore {format_config(config)}"
        if dtype == "bfloat16" and bfloat16_reason():
            log(f"{label}: skipped: {bfloat16_reason()}")
            continue
        opt = optimizer(kernel_of(workload), config)
        try:
            if isinstance(opt, Exception):
                raise opt
            binding = bind_arguments(opt.original, shapes_only(workload, dtype),
                                     device_arrays=True)
            source = opt.cuda_source_for(binding)
            facts = (f"{len(opt.kernels)} kernel(s), 16-bit tiles "
                     f"{'yes' if 'PP_SHARED(uint16_t' in source else 'no'}, cp.async "
                     f"{source.count('pp_cp_async<16>')} of 16 B / "
                     f"{source.count('pp_cp_async<8>')} of 8 B")
            if compile_:
                _, resources = compile_cubin(source, "sm_90")
                facts += "; " + ", ".join(
                    f"{r.registers} registers, {r.spill_stores + r.spill_loads} bytes spilled, "
                    f"{r.shared_bytes} B static shared" for r in resources)
            log(f"{label}: {facts}")
        except pp.PolypipeError as exc:
            log(f"{label}: failed: {str(exc).splitlines()[0]}")
            failures += 1
    log(f"polypipe-cudacore: optimize + proof time {optimizer.proof_seconds:.1f} s")
    return failures


def dry_run_half(only: str | None, session: bool) -> int:
    """The dry run's sections of this module; non-zero when a polypipe build failed."""
    tensor_core_listing()
    workloads, pairs = selection(only, session)
    baselines_plan(workloads, pairs, session)
    return 1 if cudacore_builds(pairs, compile_=session) else 0


# -- records and the summary (pure Python) -----------------------------------------------------


def half_record(workload: Workload, dtype: str, device: str, impl: str, ms: float,
                out_dtype: str = "float32", config: str = "", **extra) -> dict:
    """One JSON record: the FP32 benchmark's fields with this dtype, FP32 accumulation."""
    return {"op": workload.op, "name": workload.name, "shape": workload.shape,
            "gemm": list(workload.gemm), "dtype": dtype, "accumulate": "float32",
            "out_dtype": out_dtype, "device": device, "impl": impl, "config": config,
            "ms": ms, "tflops": workload.flops / (ms * 1e-3) / 1e12, **extra}


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summarise_half(records: list[dict], out=log) -> dict:
    """TFLOP/s per (workload, dtype) with Triton / cuBLAS and polypipe / cuBLAS, geometric means
    over the GEMMs per dtype, and the goal (polypipe >= 0.6x cuBLAS at 4096^3 and 8192^3).
    Returns the ratios: {(name, dtype): {"triton": .., "polypipe": ..}}."""
    table: dict[tuple, dict] = {}
    ops: dict[str, str] = {}
    for r in records:
        if r.get("dtype") in DTYPES:
            table.setdefault((r["name"], r["dtype"]), {})[r["impl"]] = r["tflops"]
            ops[r["name"]] = r["op"]
    out(f"{'workload':34s} {'dtype':8s} {'cuBLAS':>8s} {'f32 out':>8s} {'Triton':>8s} "
        f"{'polypipe':>9s} {'tri/cuBLAS':>10s} {'pp/cuBLAS':>9s}")
    ratios = {}
    for (name, dtype), t in table.items():
        cublas = t.get("cublas")
        ratio = {impl: t[full] / cublas for impl, full in (("triton", "triton"),
                                                           ("polypipe", "polypipe-cudacore"))
                 if cublas and t.get(full)}
        ratios[(name, dtype)] = ratio
        row = [t.get(i) for i in IMPLS] + [ratio.get("triton"), ratio.get("polypipe")]
        out(f"{name:34s} {dtype:8s} "
            + " ".join("       -" if v is None else f"{v:8.2f}" for v in row))
    for dtype in DTYPES:
        for key in ("triton", "polypipe"):
            values = [r[key] for (name, d), r in ratios.items()
                      if d == dtype and key in r and ops[name] == "gemm"]
            if values:
                out(f"geometric mean over {dtype} GEMMs, {key} / cublas: "
                    f"{_geomean(values):.3f} ({len(values)})")
    for name in GOAL_SHAPES:
        for dtype in DTYPES:
            if (name, dtype) not in ratios:
                continue
            value = ratios[(name, dtype)].get("polypipe")
            verdict = ("no polypipe record" if value is None else
                       f"polypipe {value:.2f}x ({'met' if value >= GOAL else 'not met'})")
            out(f"goal >= {GOAL}x cuBLAS at {name} {dtype}: {verdict}")
    return ratios


# -- on the GPU --------------------------------------------------------------------------------


class DeviceView:
    """A torch tensor's memory as polypipe binds it (``__cuda_array_interface__``; torch's own
    has no bfloat16): the type string ``TYPESTR[dtype]``, C-contiguous."""

    def __init__(self, tensor, dtype: str):
        self.tensor = tensor                 # keeps the memory alive
        self.shape = tuple(tensor.shape)
        self.__cuda_array_interface__ = {"shape": self.shape, "typestr": TYPESTR[dtype],
                                         "data": (tensor.data_ptr(), False), "strides": None,
                                         "version": 3}


class HalfSession:
    """Device tensors of one (workload, dtype), its FP32 reference and each implementation's
    (ms, relative error, output dtype)."""

    def __init__(self, workload: Workload, dtype: str, torch, timer, generator):
        self.torch, self.timer, self.workload, self.dtype = torch, timer, workload, dtype
        batch, m, n, k = workload.gemm
        lead = () if workload.op == "gemm" else (batch,)
        self.tdtype = getattr(torch, dtype)

        def rand(*shape):
            return (torch.rand(shape, device="cuda", generator=generator) - 0.5).to(self.tdtype)

        self.a, self.b = rand(*lead, m, k), rand(*lead, k, n)
        self.out = torch.zeros(*lead, m, n, device="cuda", dtype=torch.float32)
        self.reference = torch.matmul(self.a.float(), self.b.float())   # TF32 off
        self.scale = float(self.reference.abs().max()) or 1.0
        torch.cuda.synchronize()

    def check(self, result, impl: str) -> float:
        out_dtype = str(result.dtype).replace("torch.", "")
        error = float((result.float() - self.reference).abs().max()) / self.scale
        if not error <= TOLERANCE[out_dtype]:
            raise RuntimeError(f"{impl}'s result differs from the FP32 reference by "
                               f"{error:.2e} (> {TOLERANCE[out_dtype]:g} for {out_dtype})")
        return error

    def timed(self, impl: str, launch) -> tuple:
        """``launch()`` runs once and returns the result tensor: checked, then timed."""
        result = launch()
        self.torch.cuda.synchronize()
        error = self.check(result, impl)
        return self.timer.launch_ms(launch), error, str(result.dtype).replace("torch.", "")

    def cublas(self) -> tuple:
        torch = self.torch
        result = torch.empty_like(self.out, dtype=self.tdtype)
        return self.timed("cublas", lambda: torch.matmul(self.a, self.b, out=result))

    def cublas_out_f32(self) -> tuple:
        torch = self.torch
        mm = torch.mm if self.a.ndim == 2 else torch.bmm
        try:
            return self.timed("cublas-out-f32",
                              lambda: mm(self.a, self.b, out_dtype=torch.float32))
        except TypeError as exc:      # an older PyTorch: no out_dtype
            raise RuntimeError(f"torch {torch.__version__} has no out_dtype: "
                               f"{str(exc).splitlines()[0]}") from exc

    def triton(self, quick: bool) -> tuple:
        import gpu_triton

        result = self.torch.empty_like(self.out)

        def launch():
            gpu_triton.matmul(self.a, self.b, result, quick)
            return result

        return self.timed("triton", launch)

    def polypipe(self, opt) -> tuple:
        args = [DeviceView(self.out, "float32"), DeviceView(self.a, self.dtype),
                DeviceView(self.b, self.dtype)]
        self.out.zero_()
        opt.time_cuda(*args, repeat=1)
        self.torch.cuda.synchronize()
        error = self.check(self.out, "polypipe-cudacore")
        return self.timer.polypipe_ms(opt, args), error, "float32"


def reduced_precision_off(torch) -> str:
    """cuBLAS's FP16/BF16 GEMMs in FP32 compute type (and FP32 references without TF32)."""
    gpu.fp32_baselines(torch)
    matmul = torch.backends.cuda.matmul
    matmul.allow_fp16_reduced_precision_reduction = False
    matmul.allow_bf16_reduced_precision_reduction = False
    return ("cuBLAS: FP32 compute type for FP16/BF16 (allow_fp16_reduced_precision_reduction="
            f"{matmul.allow_fp16_reduced_precision_reduction}, allow_bf16_reduced_precision_"
            f"reduction={matmul.allow_bf16_reduced_precision_reduction}), TF32 off "
            f"(allow_tf32={matmul.allow_tf32})")


def device_slug(device: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in device).strip("_").lower()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


class Run:
    """The records of one run, rewritten to ``path`` after every workload, and its deadline."""

    def __init__(self, path: Path, device: str, seconds: float):
        self.path, self.device, self.records = path, device, []
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def add(self, workload: Workload, dtype: str, impl: str, measured: tuple,
            config: str = "", **extra) -> None:
        ms, error, out_dtype = measured
        record = half_record(workload, dtype, self.device, impl, ms, out_dtype, config,
                             max_rel_error=error, **extra)
        self.records.append(record)
        log(f"  {workload.name:34s} {dtype:8s} {impl:17s} {record['tflops']:7.2f} TFLOP/s  "
            f"{ms:8.3f} ms  out {out_dtype}, error {error:.1e}  {config}")

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.records, indent=1) + "\n")


def time_baselines(run: Run, workloads: list[Workload], torch, timer, generator,
                   have_triton: bool, session: bool) -> None:
    """cuBLAS (both outputs) and Triton on every workload and dtype; a failure is logged."""
    dropped = set()                     # an implementation this PyTorch does not have
    for workload in workloads:
        for dtype in DTYPES:
            if run.left() <= 0:
                log(f"  {workload.name} {dtype}: skipped, past the session's deadline")
                continue
            try:
                hs = HalfSession(workload, dtype, torch, timer, generator)
            except Exception as exc:   # out of memory, say: the other workloads still run
                log(f"  {workload.name} {dtype}: no tensors: {_first_line(exc)}")
                continue
            impls = [("cublas", hs.cublas), ("cublas-out-f32", hs.cublas_out_f32)]
            if have_triton:
                impls.append(("triton", partial(hs.triton, session)))
            for impl, measure in impls:
                if impl in dropped:
                    continue
                try:
                    run.add(workload, dtype, impl, measure())
                except Exception as exc:   # one implementation failing hides no other
                    log(f"  {workload.name} {dtype}: {impl} failed: {_first_line(exc)}")
                    if impl == "cublas-out-f32":
                        dropped.add(impl)
            del hs
            torch.cuda.empty_cache()
        run.save()


def time_polypipe(run: Run, pairs: list[tuple], torch, timer, generator,
                  session: bool) -> None:
    """polypipe's CUDA-core kernels, the fastest configuration recorded (with the static
    estimate outside a session: it compiles the kernel once more)."""
    optimizer = gpu.Optimizer()
    configs = CUDACORE_CONFIGS[:1] if session else CUDACORE_CONFIGS
    for workload, dtype in pairs:
        label = f"  {workload.name} {dtype}: polypipe-cudacore"
        reason = bfloat16_reason() if dtype == "bfloat16" else None
        if reason or run.left() < POLYPIPE_NEEDS_S:
            log(f"{label} skipped: {reason or f'{run.left():.0f} s left of the session'}")
            continue
        try:
            hs = HalfSession(workload, dtype, torch, timer, generator)
        except Exception as exc:
            log(f"{label}: no tensors: {_first_line(exc)}")
            continue
        best = None
        for config in configs:
            opt = optimizer(kernel_of(workload), config)
            try:
                if isinstance(opt, Exception):
                    raise opt
                measured = hs.polypipe(opt)
            except Exception as exc:
                log(f"{label} {format_config(config)} failed: {_first_line(exc)}")
                continue
            if best is None or measured[0] < best[0][0]:
                best = (measured, config, opt)
        if best is not None:
            extra = {} if session else {"estimate_tflops": _estimate(best[2], hs, run.device)}
            run.add(workload, dtype, "polypipe-cudacore", best[0], format_config(best[1]),
                    **extra)
        del hs
        torch.cuda.empty_cache()
        run.save()
    log(f"polypipe-cudacore: optimize + proof time {optimizer.proof_seconds:.1f} s")


def _estimate(opt, hs: HalfSession, device: str) -> float | None:
    """The static estimate's TFLOP/s of a build (None where it cannot be made)."""
    args = [DeviceView(hs.out, "float32"), DeviceView(hs.a, hs.dtype),
            DeviceView(hs.b, hs.dtype)]
    try:
        return gpu.estimated_tflops(opt, args, device)
    except Exception as exc:   # the estimate is beside the measurement, never instead of it
        log(f"  {hs.workload.name} {hs.dtype}: no estimate: {_first_line(exc)}")
        return None


def benchmark_half(out: Path, only: str | None = None, session: bool = False) -> list[dict]:
    """Time the FP16/BF16 baselines and polypipe's CUDA-core kernels (the module's docstring);
    every failure is logged, none ends the run."""
    import torch

    start = time.monotonic()
    log(reduced_precision_off(torch))
    device = torch.cuda.get_device_name(0)
    log(f"device: {device}; PyTorch {torch.__version__}; L2 flushed before every timed run")
    try:
        import triton

        log(f"Triton {triton.__version__}: float32 accumulator, float32 output")
        have_triton = True
    except ImportError:
        have_triton = False
        log("Triton not importable: no Triton records")
    path = out / f"gpu_{device_slug(device)}_half{'_session' if session else ''}.json"
    run = Run(path, device, IMPORTED + SESSION_DEADLINE_S - time.monotonic()
              if session else math.inf)
    timer = gpu.Timer(torch)
    generator = torch.Generator(device="cuda")
    generator.manual_seed(0)
    workloads, pairs = selection(only, session)
    time_baselines(run, workloads, torch, timer, generator, have_triton, session)
    time_polypipe(run, pairs, torch, timer, generator, session)
    summarise_half(run.records)
    run.save()
    log(f"wrote {path} ({time.monotonic() - start:.0f} s)")
    return run.records
