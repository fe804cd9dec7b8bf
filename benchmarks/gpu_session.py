"""Everything one GPU session runs, in one device call of at most 8 minutes, writing at most 8
files under $OUT (see ../shared/gpu/README.md and ``benchmarks/gpu_session.sh``):

    bash benchmarks/gpu_session.sh WHEELDIR           # on the GPU machine
    bash benchmarks/gpu_session.sh --plan WHEELDIR    # anywhere: what it will do, checked

Steps, each with its own time limit and output file, each run whatever happened before (a
failure leaves the other steps' results): install the wheels and polypipe into /tmp/site;
record the device and versions; the ``gpu`` tests (two stage counts); the session benchmark
(``gpu.py --session``: fixed configurations, measured TFLOP/s beside the estimate, its JSON
rewritten after every workload; no chart, ``gpu.py --chart`` redraws it); the FP16/BF16
GEMMs with FP32 accumulation (``gpu.py --half --session``, its own JSON: cuBLAS and Triton on
three GEMMs, polypipe's tensor-core kernel on square-4096 in float16 right after that shape's
baselines, its CUDA-core kernel last if time is left; about 60 s); PolyBench kernels against
CuPy; the fused BERT feed-forward against PyTorch eager (``gpu_fused.py --session``);
compute-sanitizer's memcheck, racecheck and synccheck on two pipelined kernels
(:mod:`gpu_sanitize`).
``session.log`` has each step's command, exit status and seconds.

``--plan`` prints the steps and checks what a CPU machine can: the wheels, every path, that the
scripts compile and their imports resolve, that the test selection collects tests, the
session benchmark's builds (proved and compiled: ``gpu.py --dry-run --session``) and the
sanitizer's kernels on the CPU runtime. It exits non-zero if a check fails.
``POLYPIPE_PLAN_ONLY=<workloads>`` limits that dry run to those workloads (the test suite
checks the plan on one; before a GPU session run the whole plan).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = "/tmp/site"
WHEELS = ("islpy", "pycuda", "pytools", "platformdirs", "mako", "siphash24")
GPU_TESTS = ["tests/test_cuda_runtime.py", "tests/test_gpu_device.py"]
TEST_FILTER = ["-m", "gpu", "-k", "not compute_sanitizer"]
TEST_ENV = {"POLYPIPE_GPU_STAGES": "1x1,3x2"}
TOOLS = ("memcheck", "racecheck", "synccheck")
BUDGET_S = 480
POLYBENCH = "gemm,atax,mvt,jacobi_2d,heat_3d,fdtd_2d,covariance,doitgen"
MAX_FILES = 8


@dataclass(frozen=True)
class Step:
    name: str
    command: list[str]
    timeout_s: int
    output: str              # file under $OUT that gets the step's stdout and stderr
    env: tuple = ()          # extra environment (name, value)


def steps(wheels: Path, out: Path) -> list[Step]:
    python = "python3"
    install = [python, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
               "--no-build-isolation", "--target", SITE,
               *sorted(str(p) for p in wheels.glob("*.whl")), str(ROOT)]
    versions = ("import numpy, sys; print('python', sys.version.split()[0], 'numpy', "
                "numpy.__version__)\n"
                "for name in ('islpy', 'pycuda', 'cupy', 'torch', 'triton'):\n"
                "    try: print(name, __import__(name).__version__)\n"
                "    except Exception as exc: print(name, 'not importable:', exc)")
    result = [
        Step("install", install, 40, "session.log"),
        Step("device", ["bash", "-c", "nvidia-smi --query-gpu=name,driver_version,"
                        "clocks.max.sm,memory.total --format=csv; nvcc --version | tail -2; "
                        f"{python} -c \"{versions}\""], 15, "device.txt"),
        Step("gpu tests", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *TEST_FILTER, *GPU_TESTS], 80, "gpu_tests.txt",
             tuple(TEST_ENV.items())),
        # Before the sanitizer: the measurements are what a session is most for. Its builds'
        # CPU time, from `gpu.py --dry-run --session` on a loaded 2-core CPU: optimize 21.5 s
        # for the 24 builds (the dry run: 122 s with three nvcc runs a build); on the GPU one
        # PyCUDA compile a build plus the estimates' nvcc, then Triton's FP32 tuning and the
        # timed runs: an estimate of 90 s in all, not yet measured by a GPU session. The JSON
        # is rewritten after every workload, so a timeout loses the last workload only.
        Step("benchmark", [python, "benchmarks/gpu.py", "--session", "--out", str(out)], 120,
             "benchmark.txt"),
        # FP16/BF16: cuBLAS (FP32 compute), Triton, then polypipe's tensor-core kernel on
        # square-4096 float16, each of its configurations started only with
        # gpu_half.TENSORCORE_NEEDS_S (25 s: optimize 3 to 6 s alone on a 2-core CPU, about
        # twice that under load, the size check, the text, nvcc and the timed runs 5 s) left; its
        # CUDA-core kernel if time is left. It starts no new work after
        # gpu_half.SESSION_DEADLINE_S (62 s) and rewrites its JSON after every workload.
        Step("half", [python, "benchmarks/gpu.py", "--half", "--session", "--out", str(out)], 70,
             "benchmark.txt"),
        # PolyBench kernels of computed schedules and contractions against CuPy (LARGE sizes);
        # the JSON is rewritten after every kernel, so a timeout keeps what was measured.
        Step("polybench", [python, "benchmarks/gpu_polybench.py", "--only", POLYBENCH,
                           "--json", str(out / "gpu_polybench.json")], 39, "benchmark.txt"),
        # The fused BERT feed-forward against PyTorch eager: JSON lines in benchmark.txt.
        Step("fused", [python, "benchmarks/gpu_fused.py", "--session"], 29, "benchmark.txt"),
    ]
    for tool in TOOLS:
        result.append(Step(f"compute-sanitizer {tool}",
                           ["compute-sanitizer", "--tool", tool, "--error-exitcode", "3",
                            python, "benchmarks/gpu_sanitize.py"], 29, "sanitizer.txt"))
    return result


def outputs(plan: list[Step]) -> list[str]:
    """Every file the session writes under $OUT: the steps' logs and the benchmarks' JSON (named
    after the device)."""
    return sorted({s.output for s in plan} | {"gpu_<device>_session.json",
                                              "gpu_<device>_half_session.json",
                                              "gpu_polybench.json"})


def environment(step: Step) -> dict:
    path = [SITE, str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path), **dict(step.env))


def run(plan: list[Step], out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    with open(out / "session.log", "a") as log:
        for step in plan:
            start = time.monotonic()
            with open(out / step.output, "a") as sink:
                sink.write(f"\n== {step.name}: {' '.join(step.command)}\n")
                sink.flush()
                try:
                    rc = subprocess.run(step.command, cwd=ROOT, env=environment(step),
                                        stdout=sink, stderr=subprocess.STDOUT,
                                        timeout=step.timeout_s).returncode
                except subprocess.TimeoutExpired:
                    rc = "timeout"
                except OSError as exc:      # a tool that is not there
                    sink.write(f"could not start: {exc}\n")
                    rc = "not started"
            failed += rc != 0
            log.write(f"{step.name}: rc {rc}, {time.monotonic() - start:.0f} s "
                      f"(limit {step.timeout_s} s) -> {step.output}\n")
            log.flush()
    return 1 if failed else 0


# -- --plan ------------------------------------------------------------------------------------


def _check(label: str, ok: bool, detail: str = "") -> bool:
    print(f"  [{'ok' if ok else 'FAIL'}] {label}" + (f": {detail}" if detail else ""))
    return ok


def _subprocess_check(label: str, command: list[str], env: dict | None = None,
                      expect: str = "") -> bool:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                            env=dict(os.environ, **(env or {})))
    text = result.stdout + result.stderr
    ok = result.returncode == 0 and expect in text
    return _check(label, ok, text.strip().splitlines()[-1] if text.strip() else "")


def _plan_only() -> list[str]:
    only = os.environ.get("POLYPIPE_PLAN_ONLY")
    return ["--only", only] if only else []


def check_plan(plan: list[Step], wheels: Path) -> bool:
    """What a CPU machine can check of the session (see the module's docstring)."""
    checks = []
    found = {p.name.split("-")[0].lower(): p.name for p in wheels.glob("*.whl")}
    for name in WHEELS:
        wheel = found.get(name)
        checks.append(_check(f"wheel {name}", wheel is not None and (
            "cp312" in wheel or "py3-none-any" in wheel), wheel or f"missing in {wheels}"))
    total = sum(s.timeout_s for s in plan)
    checks.append(_check("time limits add up to at most 8 minutes", total <= BUDGET_S,
                         f"{total} s"))
    files = outputs(plan)
    checks.append(_check(f"at most {MAX_FILES} files under $OUT", len(files) <= MAX_FILES,
                         ", ".join(files)))
    scripts = ["benchmarks/gpu.py", "benchmarks/gpu_half.py", "benchmarks/gpu_half_builds.py",
               "benchmarks/gpu_sanitize.py",
               "benchmarks/gpu_triton.py",
               "benchmarks/gpu_workloads.py", "benchmarks/gpu_polybench.py",
               "benchmarks/gpu_fused.py", "benchmarks/charts.py", *GPU_TESTS]
    for script in scripts:
        path = ROOT / script
        try:   # syntax only: no byte code written
            compile(path.read_text(), str(path), "exec")
            checks.append(_check(f"{script} compiles", True))
        except (SyntaxError, OSError) as exc:
            checks.append(_check(f"{script} compiles", False, str(exc)))
    for tool in ("nvidia-smi", "nvcc", "compute-sanitizer"):
        where = shutil.which(tool)
        print(f"  [{'ok' if where else '--'}] {tool}: "
              f"{where or 'not here (the GPU machine has it)'}")
    python = sys.executable
    checks.append(_subprocess_check(
        "the gpu test selection collects tests",
        [python, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
         *TEST_FILTER, *GPU_TESTS], dict(TEST_ENV), expect="collected"))
    checks.append(_subprocess_check(
        "the sanitizer's kernels run on the CPU runtime",
        [python, "benchmarks/gpu_sanitize.py", "--plan"], expect="ran"))
    checks.append(_subprocess_check(
        "the fused BERT block's GPU program equals Python on the CPU runtime",
        [python, "benchmarks/gpu_fused.py", "--check"], expect="ok"))
    checks.append(_subprocess_check(
        "the session's PolyBench kernels build and compile at LARGE sizes",
        [python, "benchmarks/gpu_polybench.py", "--dry-run", "--only",
         os.environ.get("POLYPIPE_PLAN_ONLY_POLYBENCH", POLYBENCH)], expect="kernels"))
    checks.append(_subprocess_check(
        "the session benchmark's builds (FP32, and FP16 on tensor cores and CUDA cores) are "
        "proved, printed and compiled",
        [python, "benchmarks/gpu.py", "--dry-run", "--session", *_plan_only()],
        expect="proof time"))
    return all(checks)


def main(argv: list[str]) -> int:
    plan_only = "--plan" in argv
    rest = [a for a in argv if a != "--plan"]
    if len(rest) != 1:
        print("usage: gpu_session.sh [--plan] WHEELDIR", file=sys.stderr)
        return 2
    wheels = Path(rest[0]).resolve()
    out = Path(os.environ.get("OUT") or ROOT / "gpu_out")
    plan = steps(wheels, out)
    if not plan_only:
        return run(plan, out)
    print(f"gpu_session: {len(plan)} steps, results under $OUT ({out}):")
    for step in plan:
        env = " ".join(f"{k}={v}" for k, v in step.env)
        print(f"  {step.name} ({step.timeout_s} s -> {step.output}): "
              f"{env + ' ' if env else ''}{' '.join(step.command[:8])}"
              + (" ..." if len(step.command) > 8 else ""))
    print("checks:")
    return 0 if check_plan(plan, wheels) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
