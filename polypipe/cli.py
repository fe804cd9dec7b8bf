"""The ``polypipe`` command line.

    polypipe show FILE.py[:KERNEL]                      print the polyhedral model
    polypipe deps FILE.py[:KERNEL] [--format text|dot|svg|png] [-o OUT]   dependences
    polypipe pipeline FILE.py[:KERNEL] [--config ...] [--timeline OUT.svg]
                                                        pipelinable reads, GPU buffers, timeline
    polypipe run FILE.py[:KERNEL] --size N=64 --check [--backend emulate --config ...]
                                                        run on random inputs, compare, time
    polypipe demo                                       walk through the embedded GEMM example
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import PolypipeError
from .kernel import Kernel, kernel


class CommandError(PolypipeError):
    """A command-line request that cannot be carried out (bad file, unknown kernel, ...)."""


# --------------------------------------------------------------------------------------------
# Loading kernels from files
# --------------------------------------------------------------------------------------------


def load_module(path: str):
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"no such file: {path}")
    name = f"polypipe_user_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise CommandError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except PolypipeError:
        raise
    except Exception as exc:
        raise CommandError(f"importing {path} failed: {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.pop(0)
    return module


def load_kernels(target: str) -> list[Kernel]:
    """``FILE.py`` -> every ``@polypipe.kernel`` in it; ``FILE.py:NAME`` -> that one.

    ``NAME`` may also be a plain function, which is then modelled as if decorated.
    """
    path, _, name = target.rpartition(":") if not Path(target).is_file() else (target, "", "")
    if not path:
        path, name = name, ""
    module = load_module(path)
    if name:
        obj = getattr(module, name, None)
        if isinstance(obj, Kernel):
            return [obj]
        if callable(obj) and hasattr(obj, "__code__"):
            return [kernel(obj)]
        raise CommandError(f"{path} has no kernel or function named {name!r}; "
                           f"its kernels: {', '.join(_kernel_names(module)) or 'none'}")
    found = [getattr(module, n) for n in _kernel_names(module)]
    if not found:
        raise CommandError(f"{path} defines no @polypipe.kernel function; decorate one or name "
                           "a function as FILE.py:FUNCTION")
    return found


def _kernel_names(module) -> list[str]:
    return [n for n, v in vars(module).items() if isinstance(v, Kernel)]


def single_kernel(target: str) -> Kernel:
    kernels = load_kernels(target)
    if len(kernels) > 1:
        names = ", ".join(k.program.name for k in kernels)
        raise CommandError(f"{target} has several kernels ({names}); pick one with "
                           f"{target}:NAME")
    return kernels[0]


# --------------------------------------------------------------------------------------------
# Running and checking
# --------------------------------------------------------------------------------------------


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:8.2f} ms"
    return f"{seconds:8.3f} s "


def run_and_check(k: Kernel, sizes: dict[str, int], dtype: str = "float64", seed: int = 0,
                  check: bool = True, repeat: int = 3, backend: str = "c",
                  out=None, config=None) -> bool:
    """Run ``k`` on seeded random inputs; with ``check`` compare with the Python function.

    Prints the time of the Python function, of the first compiled call (code generation and
    compilation included) and of the best of ``repeat`` cached calls. Returns whether the
    results matched (True when not checking).
    """
    from .inputs import random_arguments, written_arrays

    out = out or sys.stdout
    program = k.program
    args = random_arguments(program, sizes, dtype=dtype, seed=seed)
    fresh = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    outputs = written_arrays(program)
    names = [a.name for a in program.arguments]
    print(f"{program.name}: sizes {', '.join(f'{n}={v}' for n, v in sizes.items()) or 'none'}, "
          f"dtype {dtype}, backend {backend}", file=out)
    if backend == "emulate":
        from .optimize import optimize

        optimized = optimize(program, config)
        print(f"  {optimized.describe()}".replace("\n", "\n  "), file=out)
        call = optimized.run
    else:
        def call(*arguments, backend=backend):
            k(*arguments, backend=backend)
    first = _timed(lambda: call(*args, backend=backend))
    result = [args[names.index(n)].copy() for n in outputs]
    cached = min(_timed(lambda: call(*[a.copy() if isinstance(a, np.ndarray) else a
                                       for a in fresh], backend=backend))
                 for _ in range(max(repeat, 1)))
    print(f"  {backend:6} first call  {_fmt_time(first)}  (generate code, compile or reuse the on-disk cache, run)",
          file=out)
    print(f"  {backend:6} cached call {_fmt_time(cached)}", file=out)
    if not check:
        return True
    reference = [a.copy() if isinstance(a, np.ndarray) else a for a in fresh]
    try:
        with np.errstate(all="ignore"):
            python_time = _timed(lambda: k.python(*reference))
    except Exception as exc:  # the user's function failed on these inputs: nothing to compare
        print(f"  python            raised {type(exc).__name__}: {exc}; the compiled result "
              "cannot be checked on these random inputs", file=out)
        return False
    print(f"  python            {_fmt_time(python_time)}  "
          f"({python_time / max(cached, 1e-9):.0f}x the cached compiled call)", file=out)
    ok = True
    tolerance = 1e-4 if np.dtype(dtype) == np.float32 else 1e-9
    for name, got in zip(outputs, result):
        want = reference[names.index(name)]
        scale = max(1.0, float(np.nanmax(np.abs(want)))) if want.size else 1.0
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        nan_mismatch = bool(np.any(np.isnan(got) != np.isnan(want)))
        error = float(np.nanmax(diff)) / scale if want.size and not np.all(np.isnan(diff)) else 0.0
        good = error <= tolerance and not nan_mismatch
        ok &= good
        status = "matches" if good else "DIFFERS from"
        print(f"  {name}: {status} the Python result (max relative error {error:.2e})", file=out)
    return ok


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def cmd_show(options) -> int:
    for k in load_kernels(options.target):
        print(k.program)
    return 0


def cmd_run(options) -> int:
    from .inputs import parse_sizes

    k = single_kernel(options.target)
    sizes = parse_sizes(options.size or "")
    if options.config is not None and options.backend != "emulate":
        raise CommandError("--config maps the kernel to the GPU: use it with --backend emulate")
    ok = run_and_check(k, sizes, dtype=options.dtype, seed=options.seed, check=options.check,
                       repeat=options.repeat, backend=options.backend,
                       config=_config(options) if options.backend == "emulate" else None)
    return 0 if ok else 1


def _config(options):
    from .gpu_config import parse_config

    return parse_config(options.config or "")


def cmd_deps(options) -> int:
    from .analysis.dependences import dependences
    from .analysis.render import export_dependences

    text = export_dependences(dependences(single_kernel(options.target).program),
                              options.format, options.output)
    if text is not None:
        sys.stdout.write(text)
    return 0


def cmd_pipeline(options) -> int:
    """Pipelinable reads of the source, and with --config the GPU kernels' buffers."""
    from .inputs import parse_sizes
    from .optimize import optimize
    from .timeline import format_timeline, pipeline_timeline, write_timeline
    from polypipe.analysis.pipeline_check import check_buffers, max_stages

    from polypipe.analysis.pipelinable import format_table, pipelinable_reads

    k = single_kernel(options.target)
    print(f"{k.program.name}: reads that can be streamed along a loop")
    print(format_table(pipelinable_reads(k.program)))
    if options.config is None and not options.timeline:
        return 0
    config = _config(options)
    optimized = optimize(k.program, config)
    sizes = parse_sizes(options.size) if options.size else {
        name: 256 for name in k.program.parameter_names}
    print(f"\nGPU mapping: {config.describe()}")
    print(optimized.describe())
    itemsize = 8 if options.dtype == "float64" else 4
    for kernel in optimized.kernels:
        print(f"\n{kernel.name}: promoted buffers")
        for verdict in check_buffers(kernel, itemsize):
            print("  " + verdict.line())
        limit, why = max_stages(kernel, itemsize, sizes)
        print(f"  largest legal shared_stages at {', '.join(f'{n}={v}' for n, v in sizes.items())}"
              f": {limit} (limited by {why})")
        rows = pipeline_timeline(kernel, sizes)
        print()
        print(format_timeline(kernel, rows))
        if options.timeline:
            path = options.timeline
            if len(optimized.kernels) > 1:
                stem, dot, ext = path.rpartition(".")
                path = f"{stem}_{kernel.name}.{ext}"
            write_timeline(kernel, rows, path)
            print(f"timeline written to {path}")
    return 0


def cmd_demo(options) -> int:
    from .demo import run_demo

    return run_demo(size=options.size)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polypipe", description="Polyhedral loop optimizer: model, analyse and run "
                                     "Python loop nests.")
    sub = parser.add_subparsers(dest="command", required=True)

    show = sub.add_parser("show", help="print the polyhedral model of a kernel")
    show.add_argument("target", help="FILE.py or FILE.py:KERNEL")
    show.set_defaults(handler=cmd_show)

    run = sub.add_parser("run", help="run a kernel on random inputs")
    run.add_argument("target", help="FILE.py or FILE.py:KERNEL")
    run.add_argument("--size", default="", help="parameter values, e.g. N=64,M=48")
    run.add_argument("--check", action="store_true",
                     help="compare with the plain Python function")
    run.add_argument("--dtype", default="float64",
                     choices=("float64", "float32", "int64", "int32"))
    run.add_argument("--backend", default="c", choices=("c", "emulate"),
                     help="c: compiled C; emulate: the GPU kernels run on the CPU with GPU "
                          "semantics (needs a contraction; see --config)")
    run.add_argument("--config", default=None,
                     help="GPU mapping, e.g. block=64x64,threads=16x16,reduction=16,"
                          "shared_stages=3,register_stages=2 (defaults for the rest)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--repeat", type=int, default=3, help="cached calls to time (best kept)")
    run.set_defaults(handler=cmd_run)

    deps = sub.add_parser("deps", help="show the dependences of a kernel")
    deps.add_argument("target", help="FILE.py or FILE.py:KERNEL")
    deps.add_argument("--format", default="text", choices=("text", "dot", "svg", "png"))
    deps.add_argument("-o", "--output", default=None, help="output file (required for png)")
    deps.set_defaults(handler=cmd_deps)

    pipe = sub.add_parser("pipeline", help="pipelinable reads; with --config the GPU "
                                           "buffers, stages and timeline")
    pipe.add_argument("target", help="FILE.py or FILE.py:KERNEL")
    pipe.add_argument("--config", default=None, help="GPU mapping (see `run --config`)")
    pipe.add_argument("--size", default="", help="sizes for trip counts and the timeline "
                                                 "(default: 256 for every size)")
    pipe.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    pipe.add_argument("--timeline", default=None, help="write the timeline (.svg or .png)")
    pipe.set_defaults(handler=cmd_pipeline)

    demo = sub.add_parser("demo", help="walk through the embedded GEMM example")
    demo.add_argument("--size", type=int, default=96, help="matrix size (default 96)")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    try:
        return options.handler(options)
    except PolypipeError as exc:
        print(f"polypipe: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
