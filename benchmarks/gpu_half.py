"""FP16 and BF16 GEMMs with FP32 accumulation on the GPU: the baselines, polypipe's CUDA-core and
tensor-core kernels, and the dry run's plans and builds of the tensor-core configurations.

    python benchmarks/gpu.py --half [--session] [--only NAMES] [--out DIR]   # on a GPU host
    python benchmarks/gpu.py --dry-run [--half] [--session] [--only NAMES]   # no GPU

**What a GPU run times** (:func:`benchmark_half`) on :func:`gpu_workloads.half_workloads`
(ALCOP's GEMMs, 4096^3 and 8192^3 among them, and the batched attention GEMMs): the FP32
benchmark's JSON records with ``dtype`` "float16" or "bfloat16", ``accumulate`` "float32" and
``out_dtype``, in ``DIR/gpu_<device>_half[_session].json``:

* ``cublas``: ``torch.matmul`` of float16/bfloat16 tensors with PyTorch's
  ``allow_fp16_reduced_precision_reduction`` and ``allow_bf16_reduced_precision_reduction``
  off, so cuBLAS computes in FP32 (the log says so); the output is in the input dtype. This
  is the HGEMM of issue 17's goal: polypipe at >= 0.6x cuBLAS at 4096^3 and 8192^3;
* ``cublas-out-f32``: ``torch.mm`` / ``torch.bmm`` with ``out_dtype=torch.float32`` where this
  PyTorch has it (logged and skipped where not): the same product stored as float32;
* ``triton``: :func:`gpu_triton.matmul`, float32 accumulator, float32 output;
* ``polypipe-tensorcore``: polypipe's ``mma.sync`` kernel of :func:`gpu_workloads.half_matmul`
  (``ldmatrix.x4`` fragments, ``mma.sync.m16n8k16``, float32 accumulators, float32 output),
  the fastest of a small search (:func:`time_tensorcore`): the configurations of
  :func:`tc_configs` that build for the largest workload of each class (square-4096 for the
  GEMMs; :func:`tc_buildable`, in forked processes before CUDA starts, each stopped after
  :data:`TC_BUILD_LIMIT_S` seconds) timed on it in float16, then its :data:`TC_FINALISTS`
  fastest on every workload and dtype. A configuration ``optimize`` refuses (ScheduleError)
  or a call it cannot run (ArgumentError) is logged with the reason and skipped; the record's ``config`` is the configuration
  (:func:`polypipe.gpu_config.format_config`), ``estimate_tflops`` the static estimate of
  that build;
* ``polypipe-cudacore``: polypipe's CUDA-core kernel of the same loop nest (16-bit tiles in
  shared memory, products of the widened values, float32 sums), float32 output.

polypipe binds a device array through ``__cuda_array_interface__`` and NumPy's dtype of its
type string; NumPy knows bfloat16 only once ml_dtypes is imported, so without ml_dtypes (the
GPU host has none) polypipe's bfloat16 runs are skipped, saying why.

Every result is compared with the FP32 product of the same 16-bit inputs (cuBLAS, TF32 off)
before it is recorded: within :data:`TOLERANCE` of its output dtype, relative to the largest
element. An implementation that fails is logged and skipped. ``--session`` (the GPU session's
step, :data:`SESSION_DEADLINE_S` seconds): :data:`SESSION_WORKLOADS` with two Triton
configurations; first the baselines on square-4096, then polypipe-tensorcore on square-4096 in
float16 (:data:`SESSION_TC_CONFIGS` in order, each started only with
:data:`TENSORCORE_NEEDS_S` seconds left), then the other workloads' baselines, then
polypipe-cudacore if time is left; no new work after :data:`SESSION_DEADLINE_S` seconds; the
JSON is rewritten after every workload.

**Tensor-core plans and builds** (``gpu_half_builds.py``: :func:`tensor_core_listing`, printed
by every ``--dry-run``;
``--dry-run --half`` prints only this module's sections, without the FP32 builds). The
configurations a GPU search times: every block tile of :data:`TC_BLOCKS` over every warp grid
of :data:`TC_WARPS` at reduction 32, 3 shared and 2 register stages, then
:data:`TC_STAGE_VARIANTS` for the :data:`TC_STAGED` tiles, and a few just outside
(:data:`TC_OUTSIDE`). First each one's plan (:mod:`polypipe.gpu_warp`): registers per lane,
shared memory, the instruction mix of one main-loop iteration, the swizzle and its
bank-conflict degrees, the plan's static estimate on an H200 at :data:`TC_ESTIMATE_SHAPES`,
the ranking by the 8192^3 estimate and each refusal with its ScheduleError text. Then each
configuration is built for :data:`TC_BUILD_SHAPE` in float16 (:func:`tc_build`): optimized
(proved), its CUDA printed for the sizes and nvcc-compiled for sm_90; the build's registers,
spills, LDL/STL, the main loop's HMMA, LDSM (8x8 matrices) and LDGSTS.128 beside the plan's
``instruction_counts`` ("matches", or the differences), and the static estimate of the built
kernel; what ``optimize`` refuses or fails is listed with the reason. Each build runs in a
forked process, :data:`TC_BUILD_JOBS` at a time, stopped after :data:`TC_BUILD_LIMIT_S`
seconds (a proof that has not finished is listed as such). With ``--session`` only
:data:`SESSION_TC_CONFIGS` are built (what the session times). The dry run also builds and
prints (with ``--session``: nvcc-compiles) the polypipe-cudacore kernels a GPU run launches.
"""

from __future__ import annotations

import importlib
import json
import math
import signal
import sys
import threading
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import polypipe as pp  # noqa: E402
from polypipe.gpu_config import format_config  # noqa: E402
import gpu  # noqa: E402
from gpu_workloads import Workload, half_workloads  # noqa: E402
from gpu_half_builds import (SESSION_TC_CONFIGS, TC_BUILD_JOBS, TC_FINALISTS,  # noqa: E402
                             TYPESTR, first_line, forked_builds, kernel_of, log, shapes_only,
                             tc_configs, tensor_core_listing)

DTYPES = ("float16", "bfloat16")
# Largest relative error accepted, by the output's dtype (its rounding, relative to the
# largest element, plus the float32 sums' reordering).
TOLERANCE = {"float32": 1e-4, "float16": 2e-3, "bfloat16": 1e-2}
IMPLS = ("cublas", "cublas-out-f32", "triton", "polypipe-tensorcore", "polypipe-cudacore")
POLYPIPE_IMPLS = ("polypipe-tensorcore", "polypipe-cudacore")    # the summary's "polypipe"
GOAL = 0.6                                      # issue 17: >= 0.6x cuBLAS HGEMM
GOAL_SHAPES = ("square-4096", "square-8192")

# polypipe's CUDA-core kernels: the FP32 session's configurations (the first alone in a session).
CUDACORE_CONFIGS = gpu.SESSION_CONFIGS
SESSION_WORKLOADS = ("square-4096", "square-8192", "bert-base-ffn1-512")
SESSION_POLYPIPE = (("square-4096", "float16"),)
SESSION_TENSORCORE = (("square-4096", "float16"),)
SESSION_DEADLINE_S = 62          # from this module's import; the session step's limit is 70 s
POLYPIPE_NEEDS_S = 20            # optimize + nvcc + timing of one CUDA-core build
# One tensor-core build timed: optimize (the proof) 3 to 6 s alone for each of the session's
# configurations on a 2-core CPU (about twice that under load), the size check 2 s, the CUDA
# text 1.3 s; then nvcc and the timed runs, about 2 s.
TENSORCORE_NEEDS_S = 25
ESTIMATE_NEEDS_S = 5             # the static estimate of a timed build (nvcc, nvdisasm)

TC_OPTIMIZE_LIMIT_S = 120        # a GPU run's optimize of one configuration (soft_limit)
IMPORTED = time.monotonic()


# -- what a GPU run times, and polypipe's CUDA-core builds (no GPU) ----------------------------


def selection(only: str | None, session: bool) -> tuple[list[Workload], list[tuple],
                                                         list[tuple]]:
    """(workloads of the baselines, (workload, dtype) pairs of polypipe-cudacore, those of
    polypipe-tensorcore)."""
    workloads = half_workloads()
    if session:
        names = SESSION_WORKLOADS if not only else [n for n in SESSION_WORKLOADS
                                                     if n in only.split(",")]
        by_name = {w.name: w for w in workloads if w.name in names}
        chosen = [by_name[n] for n in names]             # in the session's order of priority
        return (chosen, [(by_name[n], d) for n, d in SESSION_POLYPIPE if n in by_name],
                [(by_name[n], d) for n, d in SESSION_TENSORCORE if n in by_name])
    if only:
        workloads = [w for w in workloads if w.name in only.split(",")]
    pairs = [(w, d) for w in workloads for d in DTYPES]
    return workloads, pairs, list(pairs)



def bfloat16_reason() -> str | None:
    """Why polypipe cannot bind bfloat16 device arrays here, or None."""
    try:
        importlib.import_module("ml_dtypes")      # registers NumPy's "bfloat16"
    except ImportError:
        return ("ml_dtypes not importable: polypipe reads a device array's dtype with NumPy, "
                "which has no bfloat16 without it")
    return None



def _pairs_text(pairs: list[tuple]) -> str:
    return (", ".join(f"{w.name} {d}" for w, d in pairs[:6])
            + (f" ... ({len(pairs)})" if len(pairs) > 6 else ""))


def baselines_plan(workloads: list[Workload], pairs: list[tuple], tc_pairs: list[tuple],
                   session: bool) -> None:
    triton = "2 configurations (session)" if session else "the tutorial's 8 configurations"
    log("== FP16/BF16 with FP32 accumulation (gpu.py --half"
        + (" --session" if session else "") + "): what the GPU run times ==")
    log(f"{', '.join(DTYPES)} on {len(workloads)} workloads: "
        + ", ".join(w.name for w in workloads))
    log("  cublas: torch.matmul, FP32 compute (allow_fp16/bf16_reduced_precision_reduction "
        "off), output in the input dtype")
    log("  cublas-out-f32: torch.mm/bmm(out_dtype=torch.float32) where PyTorch has it")
    log(f"  triton: gpu_triton.matmul, float32 accumulator and output, {triton}")
    if session:
        search = (f"configurations {', '.join(format_config(c) for c in SESSION_TC_CONFIGS)} "
                  f"in this order, each started with >= {TENSORCORE_NEEDS_S} s of the "
                  f"session's {SESSION_DEADLINE_S} s left, after the baselines on "
                  f"{workloads[0].name if workloads else '-'}")
    else:
        search = (f"a search of {len(tc_configs())} configurations on the largest workload "
                  f"of each class in float16, its {TC_FINALISTS} fastest on each pair")
    log(f"  polypipe-tensorcore on {len(tc_pairs)} (workload, dtype): {_pairs_text(tc_pairs)}"
        f"; {search}; bfloat16 only where ml_dtypes imports")
    configs = CUDACORE_CONFIGS[:1] if session else CUDACORE_CONFIGS
    log(f"  polypipe-cudacore on {len(pairs)} (workload, dtype): {_pairs_text(pairs)}"
        f"; configurations {', '.join(format_config(c) for c in configs)}"
        + ("; last, if time is left" if session else "")
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
    """The dry run's sections of this module; non-zero when a CUDA-core build failed or no
    tensor-core configuration was built."""
    tally = tensor_core_listing(session=session)
    workloads, pairs, tc_pairs = selection(only, session)
    baselines_plan(workloads, pairs, tc_pairs, session)
    failed = cudacore_builds(pairs, compile_=session)
    return 1 if failed or not tally["built"] else 0


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
    """TFLOP/s per (workload, dtype) with Triton / cuBLAS and polypipe / cuBLAS (polypipe: the
    faster of its tensor-core and CUDA-core kernels), geometric means over the GEMMs per dtype,
    and the goal (polypipe >= 0.6x cuBLAS at 4096^3 and 8192^3). Returns the ratios:
    {(name, dtype): {"triton": .., "tensorcore": .., "cudacore": .., "polypipe": ..}}."""
    table: dict[tuple, dict] = {}
    ops: dict[str, str] = {}
    for r in records:
        if r.get("dtype") in DTYPES:
            table.setdefault((r["name"], r["dtype"]), {})[r["impl"]] = r["tflops"]
            ops[r["name"]] = r["op"]
    out(f"{'workload':34s} {'dtype':8s} {'cuBLAS':>8s} {'f32 out':>8s} {'Triton':>8s} "
        f"{'pp-tc':>8s} {'pp-cc':>8s} {'tri/cuBLAS':>10s} {'pp/cuBLAS':>9s}")
    ratios, best_impl = {}, {}
    for (name, dtype), t in table.items():
        cublas = t.get("cublas")
        ratio = {key: t[impl] / cublas for key, impl in (
            ("triton", "triton"), ("tensorcore", "polypipe-tensorcore"),
            ("cudacore", "polypipe-cudacore")) if cublas and t.get(impl)}
        mine = [impl for impl in POLYPIPE_IMPLS if t.get(impl)]
        if mine:
            best_impl[(name, dtype)] = max(mine, key=lambda impl: t[impl])
            if cublas:
                ratio["polypipe"] = t[best_impl[(name, dtype)]] / cublas
        ratios[(name, dtype)] = ratio
        row = [t.get(i) for i in IMPLS] + [ratio.get("triton"), ratio.get("polypipe")]
        out(f"{name:34s} {dtype:8s} "
            + " ".join("       -" if v is None else f"{v:8.2f}" for v in row))
    for dtype in DTYPES:
        for key in ("triton", "tensorcore", "polypipe"):
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
                       f"polypipe {value:.2f}x ({'met' if value >= GOAL else 'not met'}; "
                       f"{best_impl[(name, dtype)]})")
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

    def args(self) -> list:
        return [DeviceView(self.out, "float32"), DeviceView(self.a, self.dtype),
                DeviceView(self.b, self.dtype)]

    def polypipe(self, opt, impl: str = "polypipe-cudacore") -> tuple:
        """A polypipe build: run once (its first call compiles), checked, then timed."""
        args = self.args()
        self.out.zero_()
        opt.time_cuda(*args, repeat=1)
        self.torch.cuda.synchronize()
        error = self.check(self.out, impl)
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
        log(f"  {workload.name:34s} {dtype:8s} {impl:19s} {record['tflops']:7.2f} TFLOP/s  "
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
                log(f"  {workload.name} {dtype}: no tensors: {first_line(exc)}")
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
                    log(f"  {workload.name} {dtype}: {impl} failed: {first_line(exc)}")
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
        hs = _half_session(run, workload, dtype, label, POLYPIPE_NEEDS_S, torch, timer,
                           generator)
        if hs is None:
            continue
        best = None
        for config in configs:
            opt = optimizer(kernel_of(workload), config)
            try:
                if isinstance(opt, Exception):
                    raise opt
                measured = hs.polypipe(opt)
            except Exception as exc:
                log(f"{label} {format_config(config)} failed: {first_line(exc)}")
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


class BuildTimeout(BaseException):
    """optimize ran past its limit (a BaseException: polypipe turns an unexpected Exception
    inside optimize into an InternalError)."""


@contextmanager
def soft_limit(seconds: float):
    """Raise BuildTimeout in this (main) thread after ``seconds``: soft, since the signal is
    handled between Python bytecodes, so one long isl call finishes first (a session step's
    own time limit is the hard one). No limit outside the main thread."""
    if seconds == math.inf or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise BuildTimeout(f"optimize did not finish within {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class TensorCoreBuilds(gpu.Optimizer):
    """optimize() once per (kernel, config), within a soft time limit; a refusal, a failure
    or a timeout is kept (as the exception) so the next workload does not try again."""

    def __call__(self, func, config, limit_s: float = TC_OPTIMIZE_LIMIT_S):
        key = (func.__module__, func.__name__, config)
        if key not in self.cache:
            start = time.perf_counter()
            try:
                with soft_limit(limit_s):
                    self.cache[key] = pp.optimize(pp.kernel(func), config)
            except (Exception, BuildTimeout) as exc:   # ScheduleError, InternalError, timeout
                self.cache[key] = exc
            self.proof_seconds += time.perf_counter() - start
        return self.cache[key]


def measure_tensorcore(builds: TensorCoreBuilds, hs, config, label: str,
                       limit_s: float = TC_OPTIMIZE_LIMIT_S) -> tuple | None:
    """(ms, error, out dtype) of ``config`` on ``hs``'s tensors, or None (logged: a
    refusal, an ArgumentError for sizes the tiles do not divide, a failure, a wrong result)."""
    start = time.perf_counter()
    opt = builds(kernel_of(hs.workload), config, limit_s)
    try:
        if isinstance(opt, BaseException):
            raise opt
        measured = hs.polypipe(opt, "polypipe-tensorcore")
    except (pp.ScheduleError, pp.ArgumentError) as exc:
        log(f"{label} {format_config(config)} refused: {first_line(exc)}")
        return None
    except (Exception, BuildTimeout) as exc:
        log(f"{label} {format_config(config)} failed: {first_line(exc)}")
        return None
    log(f"{label} {format_config(config)}: {measured[0]:.3f} ms "
        f"({time.perf_counter() - start:.1f} s with optimize and nvcc)")
    return measured


def tc_buildable(workloads: list[Workload]) -> dict:
    """The configurations of :func:`tc_configs` that build (optimize, print, nvcc) for the
    largest workload of each class (:func:`gpu.representative`) in float16, found by
    :func:`forked_builds` (hard time limit: some proofs run for many minutes), so before CUDA
    starts in this process. The others are logged. Returns {op: [config, ...]}."""
    buildable = {}
    for op in dict.fromkeys(w.op for w in workloads):
        rep = gpu.representative(workloads, op)
        start = time.perf_counter()
        buildable[op] = []
        for config, result in forked_builds(tc_configs(), rep):
            if result["status"] == "built":
                buildable[op].append(config)
            else:
                log(f"  search {rep.name} float16: polypipe-tensorcore {format_config(config)} "
                    f"{result['status']}: {result['reason']}")
        log(f"  search {rep.name} float16: polypipe-tensorcore: {len(buildable[op])} of "
            f"{len(tc_configs())} configurations build ({time.perf_counter() - start:.0f} s, "
            f"{TC_BUILD_JOBS} at a time)")
    return buildable


def tc_search(builds: TensorCoreBuilds, workloads: list[Workload], torch, timer,
              generator, buildable: dict | None = None) -> dict:
    """The tensor-core configurations to time on each class of workload: every one of
    :func:`tc_configs` (of ``buildable``'s, where given) on the class's largest workload
    (:func:`gpu.representative`) in float16, its :data:`TC_FINALISTS` fastest kept. Returns
    {op: [config, ...]}."""
    finalists = {}
    for op in dict.fromkeys(w.op for w in workloads):
        rep = gpu.representative(workloads, op)
        label = f"  search {rep.name} float16: polypipe-tensorcore"
        configs = tc_configs() if buildable is None else buildable.get(op, [])
        try:
            hs = HalfSession(rep, "float16", torch, timer, generator)
        except Exception as exc:
            log(f"{label}: no tensors: {first_line(exc)}")
            continue
        timed = [(measured[0], config) for config in configs
                 for measured in [measure_tensorcore(builds, hs, config, label)] if measured]
        timed.sort(key=lambda item: item[0])
        finalists[op] = [config for _, config in timed[:TC_FINALISTS]]
        log(f"{label}: {len(timed)} of {len(configs)} configurations ran; finalists "
            + (", ".join(format_config(c) for c in finalists[op]) or "none"))
        del hs
        torch.cuda.empty_cache()
    return finalists


def time_tensorcore(run: Run, pairs: list[tuple], torch, timer, generator, session: bool,
                    workloads: list[Workload] | None = None,
                    buildable: dict | None = None) -> None:
    """polypipe's tensor-core kernels: in a session :data:`SESSION_TC_CONFIGS` in order, each
    only with :data:`TENSORCORE_NEEDS_S` seconds left; otherwise the finalists of
    :func:`tc_search` over ``workloads`` (of :func:`tc_buildable`'s ``buildable``). The
    fastest configuration that ran is recorded, with the static estimate of its build where
    :data:`ESTIMATE_NEEDS_S` seconds are left."""
    builds = TensorCoreBuilds()
    if session:
        candidates = {w.op: list(SESSION_TC_CONFIGS) for w, _ in pairs}
    else:
        candidates = tc_search(builds, workloads or [w for w, _ in pairs], torch, timer,
                               generator, buildable)
    for workload, dtype in pairs:
        label = f"  {workload.name} {dtype}: polypipe-tensorcore"
        hs = _half_session(run, workload, dtype, label, TENSORCORE_NEEDS_S, torch, timer,
                           generator, None if candidates.get(workload.op)
                           else "no configuration of the search ran")
        if hs is None:
            continue
        best = None
        for config in candidates[workload.op]:
            if run.left() < TENSORCORE_NEEDS_S:
                log(f"{label} {format_config(config)} skipped: {run.left():.0f} s left of "
                    "the session")
                break
            measured = measure_tensorcore(builds, hs, config, label,
                                          min(TC_OPTIMIZE_LIMIT_S, run.left()))
            if measured is not None and (best is None or measured[0] < best[0][0]):
                best = (measured, config, builds(kernel_of(workload), config))
        if best is not None:    # the estimate beside it: one more nvcc, where time is left
            extra = ({"estimate_tflops": _estimate(best[2], hs, run.device)}
                     if run.left() > ESTIMATE_NEEDS_S else {})
            run.add(workload, dtype, "polypipe-tensorcore", best[0], format_config(best[1]),
                    **extra)
        del hs
        torch.cuda.empty_cache()
        run.save()
    log(f"polypipe-tensorcore: optimize + proof time {builds.proof_seconds:.1f} s")


def _half_session(run: Run, workload: Workload, dtype: str, label: str, needs_s: float,
                  torch, timer, generator, why_not: str | None = None):
    """The HalfSession a polypipe entry times, or None (and the log says why) where bfloat16
    cannot be bound here, fewer than ``needs_s`` seconds of the session are left, ``why_not``
    says so, or the tensors cannot be made."""
    reason = bfloat16_reason() if dtype == "bfloat16" else None
    if reason or run.left() < needs_s:
        log(f"{label} skipped: {reason or f'{run.left():.0f} s left of the session'}")
        return None
    if why_not:
        log(f"{label} skipped: {why_not}")
        return None
    try:
        return HalfSession(workload, dtype, torch, timer, generator)
    except Exception as exc:
        log(f"{label}: no tensors: {first_line(exc)}")
        return None


def _estimate(opt, hs: HalfSession, device: str) -> float | None:
    """The static estimate's TFLOP/s of a build (None where it cannot be made)."""
    try:
        return gpu.estimated_tflops(opt, hs.args(), device)
    except Exception as exc:   # the estimate is beside the measurement, never instead of it
        log(f"  {hs.workload.name} {hs.dtype}: no estimate: {first_line(exc)}")
        return None


def benchmark_half(out: Path, only: str | None = None, session: bool = False) -> list[dict]:
    """Time the FP16/BF16 baselines and polypipe's tensor-core and CUDA-core kernels (the
    module's docstring); every failure is logged, none ends the run."""
    start = time.monotonic()
    workloads, pairs, tc_pairs = selection(only, session)
    # Outside a session, which of the search's configurations build at all, in forked
    # processes before CUDA starts here (a fork of a CUDA process must not touch the GPU).
    buildable = None if session or not tc_pairs else tc_buildable(workloads)
    import torch

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
    # A session times polypipe's tensor cores right after square-4096's baselines, before the
    # other workloads' baselines: the measurement the session is most for comes first.
    first, rest = (workloads[:1], workloads[1:]) if session else (workloads, [])
    time_baselines(run, first, torch, timer, generator, have_triton, session)
    time_tensorcore(run, tc_pairs, torch, timer, generator, session, workloads, buildable)
    time_baselines(run, rest, torch, timer, generator, have_triton, session)
    time_polypipe(run, pairs, torch, timer, generator, session)
    summarise_half(run.records)
    run.save()
    log(f"wrote {path} ({time.monotonic() - start:.0f} s)")
    return run.records
