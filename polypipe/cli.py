"""The ``polypipe`` command line.

    polypipe show FILE.py[:KERNEL]                      print the polyhedral model
    polypipe deps FILE.py[:KERNEL] [--format text|dot|svg|png] [-o OUT]   dependences
    polypipe pipeline FILE.py[:KERNEL] [--config ...] [--size ...] [--timeline OUT.svg|OUT.png]
                                                        pipelinable reads, GPU buffers, timeline
    polypipe run FILE.py[:KERNEL] --size N=64 --check [--backend emulate --config ...]
                                                        run on random inputs, compare, time
    polypipe cuda FILE.py[:KERNEL] --size N=64 [--config ...] [-o K.cu]
                                                        the CUDA translation unit for those sizes
    polypipe run FILE.py --backend emulate --cuda K.cu --size ... --config ... --check
                                                        run a (hand-edited) CUDA file on the CPU
    polypipe demo [--size N]                            walk through the embedded GEMM example

``deps -o OUT`` takes the format from OUT's extension (``.txt``, ``.dot``/``.gv``, ``.svg``,
``.png``) unless ``--format`` names it; a ``--format`` that contradicts the extension is an
error.

Exit status:

    0  success
    1  ``run --check`` or ``demo``: a result differs from the Python function's (or the Python
       function raised on the random inputs, so nothing could be compared)
    2  bad input or a refused request: a bad option or file, a kernel outside the subset, a
       schedule or configuration that cannot be honoured, sizes that do not fit in memory, an
       output file that cannot be written; ``polypipe: error: ...`` on stderr, no traceback
    3  an internal error (``polypipe.errors.InternalError``): a bug in polypipe, not in the
       input; ``polypipe: internal error: ...`` on stderr
    130  interrupted (Ctrl-C)
    141  the output's reader went away (``polypipe run ... | head``), as for SIGPIPE
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import InternalError, PolypipeError
from .kernel import Kernel, kernel

EXIT_OK, EXIT_MISMATCH, EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_BROKEN_PIPE = 141                # 128 + SIGPIPE, what a shell reports for one
DTYPES = ("float64", "float32", "int64", "int32", "float16", "bfloat16")
DEFAULT_DTYPE = "float64"        # NumPy's default, for run, pipeline and demo alike
MAX_TIMELINE_TILES = 256         # pipeline: no timeline beyond this many reduction tiles


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
    # Registered while it runs, as `import` does: dataclasses and typing look a module up by
    # name (a file with a @dataclass failed with "'NoneType' object has no attribute
    # '__dict__'").
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except PolypipeError:
        sys.modules.pop(name, None)
        raise
    except (Exception, SystemExit) as exc:  # a file that raises, or calls sys.exit, on import
        sys.modules.pop(name, None)
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise CommandError(f"importing {path} failed: {text}") from None
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


def run_and_check(k: Kernel, sizes: dict[str, int], dtype: str = DEFAULT_DTYPE, seed: int = 0,
                  check: bool = True, repeat: int = 3, backend: str = "c",
                  out=None, config=None, source: str | None = None) -> bool:
    """Run ``k`` on seeded random inputs; with ``check`` compare with the Python function.

    Prints the time of the Python function, of the first compiled call (code generation and
    compilation included) and of the best of ``repeat`` cached calls. Returns whether the
    results matched (True when not checking). Sizes whose arrays (the copies this function
    holds included) exceed physical memory are refused before anything is allocated.
    """
    from .inputs import check_memory, dtype_of, dtype_text, random_arguments, written_arrays

    out = out or sys.stdout
    program = k.program
    # Inputs, a pristine copy, one per timed call and, with check, the Python reference's.
    check_memory(program, sizes, dtype, copies=4 if check else 3)
    args = random_arguments(program, sizes, dtype=dtype, seed=seed)
    fresh = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    outputs = written_arrays(program)
    names = [a.name for a in program.arguments]
    print(f"{program.name}: sizes {', '.join(f'{n}={v}' for n, v in sizes.items()) or 'none'}, "
          f"dtype {dtype_text(dtype)}, backend {backend}", file=out)
    if backend == "emulate":
        from .optimize import optimize

        optimized = optimize(program, config)
        print(f"  {optimized.describe()}".replace("\n", "\n  "), file=out)

        def call(*arguments, backend=backend):
            optimized.run(*arguments, backend=backend, source=source)
    else:
        from .codegen.cpu import c_flags_text

        print(f"  flags {c_flags_text()}", file=out)

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
    for name, got in zip(outputs, result):
        # float16 and bfloat16 results are bit-exact on every backend (codegen.semantics); a
        # float32 sum may be added in another order (tensor cores, say)
        tolerance = 1e-4 if dtype_of(dtype, name) == "float32" else 1e-9
        want = reference[names.index(name)]
        scale = max(1.0, float(np.nanmax(np.abs(want)))) if want.size else 1.0
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        nan_mismatch = bool(np.any(np.isnan(got) != np.isnan(want)))
        error = float(np.nanmax(diff)) / scale if want.size and not np.all(np.isnan(diff)) else 0.0
        good = error <= tolerance and not nan_mismatch
        ok &= good
        status = "matches" if good else "DIFFERS from"
        print(f"  {name}: {status} the Python result (max relative error {error:.2e})"
              + ("" if good else _first_difference(got, want, tolerance * scale)), file=out)
    return ok


def _first_difference(got: np.ndarray, want: np.ndarray, tolerance: float) -> str:
    """``; first at [i, j]: got x, Python y`` for the first element (row-major) that differs."""
    with np.errstate(invalid="ignore"):
        bad = (np.abs(got.astype(np.float64) - want.astype(np.float64)) > tolerance) | (
            np.isnan(got) != np.isnan(want))
    if not bad.any():
        return ""
    index = np.unravel_index(int(np.argmax(bad)), bad.shape)
    where = ", ".join(str(int(i)) for i in index)
    return f"; first at [{where}]: got {got[index]!r}, Python {want[index]!r}"


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
    if options.cuda is not None and options.backend != "emulate":
        raise CommandError("--cuda runs a CUDA file on the CPU runtime: use it with "
                           "--backend emulate (and the --config and --size it was printed for)")
    source = _read_text(options.cuda) if options.cuda is not None else None
    ok = run_and_check(k, sizes, dtype=_checked_dtypes(k, options.dtype), seed=options.seed,
                       check=options.check,
                       repeat=options.repeat, backend=options.backend,
                       config=_config(options) if options.backend == "emulate" else None,
                       source=source)
    return 0 if ok else 1


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from None


def cmd_cuda(options) -> int:
    """The CUDA translation unit for these sizes, a comment header giving each launch."""
    from .inputs import check_memory, parse_sizes, random_arguments
    from .kernel import bind_arguments
    from .optimize import optimize

    k = single_kernel(options.target)
    sizes = parse_sizes(options.size or "")
    dtype = _checked_dtypes(k, options.dtype)
    check_memory(k.program, sizes, dtype, copies=1)
    args = random_arguments(k.program, sizes, dtype=dtype, seed=0)
    optimized = optimize(k.program, _config(options))
    fitted = optimized.for_sizes(bind_arguments(optimized.original, tuple(args)))
    text = _launch_header(fitted, args) + fitted.cuda_source(*args)
    if options.output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(options.output).write_text(text)
    except OSError as exc:
        raise CommandError(f"cannot write {options.output}: {exc}") from None
    print(f"CUDA written to {options.output}")
    return 0


def _launch_header(optimized, args) -> str:
    from .codegen.cuda_runtime import launch_geometry
    from .kernel import bind_arguments

    binding = bind_arguments(optimized.original, tuple(args))
    lines = [f"// {optimized.original.name}: {optimized.config.describe()}",
             "// sizes " + (", ".join(f"{n}={v}" for n, v in binding.params.items()) or
                            "none")]
    for kernel in optimized.kernels:
        geometry = launch_geometry(kernel, binding.params)
        threads = kernel.config.threads
        lines.append(f"// {kernel.name}: grid {geometry.grid}, block ({threads[1]}, "
                     f"{threads[0]}, 1), dynamic shared memory "
                     f"{optimized.dynamic_shared_bytes(kernel, binding)} bytes")
    return "\n".join(lines) + "\n"


def _config(options):
    """The --config given, or None: the default, fitted to the sizes of each run."""
    from .gpu_config import parse_config

    return None if options.config is None else parse_config(options.config)


def cmd_deps(options) -> int:
    from .analysis.dependences import dependences
    from .analysis.render import check_writable, export_dependences, output_format

    fmt = output_format(options.format, options.output)   # refuse a contradiction up front
    if options.output is not None:
        check_writable(options.output)
    text = export_dependences(dependences(single_kernel(options.target).program), fmt,
                              options.output)
    if text is not None:
        sys.stdout.write(text)
    elif options.output is not None:
        print(f"{fmt} written to {options.output}")
    return 0


def _timeline_path(path: str, kernel_name: str, several: bool) -> str:
    if not several:
        return path
    target = Path(path)
    return str(target.with_name(f"{target.stem}_{kernel_name}{target.suffix}"))


def cmd_pipeline(options) -> int:
    """Pipelinable reads of the source, and with --config the GPU kernels' buffers."""
    from .analysis.render import check_writable
    from .codegen.value_types import numpy_dtype
    from .inputs import parameter_values, parse_sizes
    from .gpu_config import GpuConfig
    from .gpu_scheduled import ScheduledKernel
    from .optimize import optimize
    from .timeline import format_timeline, pipeline_timeline, timeline_format, write_timeline
    from polypipe.analysis.pipeline_check import check_buffers, max_stages, tile_trip_count

    from polypipe.analysis.pipelinable import format_table, pipelinable_reads

    if options.timeline:
        timeline_format(options.timeline)       # .svg or .png, before any work
        check_writable(options.timeline)
    k = single_kernel(options.target)
    given = parse_sizes(options.size) if options.size else None
    sizes = parameter_values(k.program, given if given is not None else {
        name: 256 for name in k.program.parameter_names})
    print(f"{k.program.name}: reads that can be streamed along a loop")
    print(format_table(pipelinable_reads(k.program)))
    if options.config is None and not options.timeline:
        return 0
    config = _config(options) or GpuConfig()
    if config.mma is not None:
        from .gpu_warp import warp_plan

        print(f"\nGPU mapping: {config.describe()}")
        print("\n".join(warp_plan(config).describe()))
        print(optimize(k.program, config).describe())   # refused with the reason if it must be
        if options.timeline:
            print("(no timeline for tensor-core kernels yet)")
        return 0
    optimized = optimize(k.program, config)
    print(f"\nGPU mapping: {config.describe()}")
    print(optimized.describe())
    itemsize = numpy_dtype(options.dtype).itemsize
    at = ", ".join(f"{n}={v}" for n, v in sizes.items())
    for gpu_kernel in optimized.kernels:
        if isinstance(gpu_kernel, ScheduledKernel):
            print(f"\n{gpu_kernel.name}: no buffers and no pipeline (a kernel of isl's "
                  "schedule reads and writes global memory)")
            continue
        print(f"\n{gpu_kernel.name}: promoted buffers ({options.dtype}, {itemsize} bytes per "
              "element)")
        for verdict in check_buffers(gpu_kernel, itemsize):
            print("  " + verdict.line())
        limit, why = max_stages(gpu_kernel, itemsize, sizes)
        print(f"  deepest useful shared_stages at {at}: {limit} (limited by {why})")
        tiles = tile_trip_count(gpu_kernel, sizes)
        if tiles > MAX_TIMELINE_TILES and options.timeline:
            raise CommandError(f"{gpu_kernel.name}: {tiles} reduction tiles at these sizes, more "
                               f"than the {MAX_TIMELINE_TILES} a timeline shows; pass smaller "
                               "sizes with --size")
        if tiles > MAX_TIMELINE_TILES:
            print(f"\n{gpu_kernel.name}: no timeline at these sizes: {tiles} reduction tiles, "
                  f"more than the {MAX_TIMELINE_TILES} a timeline shows; pass smaller sizes "
                  "with --size")
            continue
        rows = pipeline_timeline(gpu_kernel, sizes)
        print()
        print(format_timeline(gpu_kernel, rows))
        if options.timeline:
            path = _timeline_path(options.timeline, gpu_kernel.name, len(optimized.kernels) > 1)
            write_timeline(gpu_kernel, rows, path)
            print(f"timeline written to {path}")
    return 0


DEMO_MAX_SIZE = 512


def cmd_demo(options) -> int:
    from .demo import run_demo

    if options.size > DEMO_MAX_SIZE:
        raise CommandError(f"demo --size {options.size} is too large: the demo runs the plain "
                           f"Python function as the reference, which would take hours; use at "
                           f"most {DEMO_MAX_SIZE} (or `polypipe run` without --check)")
    return run_demo(size=options.size)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


class _UsageError(Exception):
    """argparse refused the command line (raised instead of argparse's own exit)."""

    def __init__(self, message: str, usage: str):
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors reach :func:`main` as ``polypipe: error: ...``, exit 2."""

    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(message, self.format_usage())


def _integer(low: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is not allowed: {what}")
        return value
    return parse


def _dtypes(text: str):
    """``float16`` (every array) or ``float16,C=float32`` (every array but C, which is
    float32): what :func:`polypipe.inputs.dtype_of` takes. The array names are checked against
    the kernel by :func:`_checked_dtypes`."""
    default, *overrides = [part.strip() for part in text.split(",")]
    chosen = {"*": default}
    for part in overrides:
        name, sep, dtype = (p.strip() for p in part.partition("="))
        if not sep or not name or dtype not in DTYPES:
            raise argparse.ArgumentTypeError(
                f"{part!r} is not ARRAY=DTYPE with DTYPE one of {', '.join(DTYPES)}")
        chosen[name] = dtype
    if default not in DTYPES:
        raise argparse.ArgumentTypeError(f"{default!r} is not one of {', '.join(DTYPES)} (the "
                                         "element type of every array not named after it)")
    return default if len(chosen) == 1 else chosen


def _checked_dtypes(k: Kernel, dtype):
    if isinstance(dtype, str):
        return dtype
    arrays = [a.name for a in k.program.arguments if a.kind == "array"]
    unknown = sorted(set(dtype) - {"*"} - set(arrays))
    if unknown:
        raise CommandError(f"--dtype names {', '.join(unknown)}, which {k.program.name} has no "
                           f"array argument of; its arrays are {', '.join(arrays) or 'none'}")
    return dtype


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="polypipe", description="Polyhedral loop optimizer: model, analyse and run "
                                     "Python loop nests.",
        epilog="exit status: 0 success, 1 a result differs from Python, 2 bad input or a "
               "refused request, 3 internal error (a polypipe bug)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    show = sub.add_parser("show", help="print the polyhedral model of a kernel")
    show.add_argument("target", help="FILE.py or FILE.py:KERNEL")
    show.set_defaults(handler=cmd_show)

    run = sub.add_parser("run", help="run a kernel on random inputs")
    run.add_argument("target", help="FILE.py or FILE.py:KERNEL")
    run.add_argument("--size", default="", help="parameter values, e.g. N=64,M=48")
    run.add_argument("--check", action="store_true",
                     help="compare with the plain Python function")
    run.add_argument("--dtype", default=DEFAULT_DTYPE, type=_dtypes,
                     help=f"element type of every array (default {DEFAULT_DTYPE}), then "
                          "ARRAY=DTYPE for any other: float16,C=float32")
    run.add_argument("--backend", default="c", choices=("c", "emulate"),
                     help="c: compiled C; emulate: the GPU kernels run on the CPU with GPU "
                          "semantics")
    run.add_argument("--config", default=None,
                     help="GPU mapping, e.g. block=64x64,threads=16x16,reduction=16,"
                          "shared_stages=3,register_stages=2 (defaults for the rest)")
    run.add_argument("--seed", type=_integer(0, "the seed must be 0 or more"), default=0,
                     help="seed of the random inputs (an integer >= 0, default 0)")
    run.add_argument("--repeat", type=_integer(1, "time at least one cached call"), default=3,
                     help="cached calls to time (best kept)")
    run.add_argument("--cuda", default=None, metavar="K.cu",
                     help="with --backend emulate: run this CUDA file (from `polypipe cuda`, "
                          "perhaps edited) instead of the printed one")
    run.set_defaults(handler=cmd_run)

    cuda = sub.add_parser("cuda", help="print the CUDA translation unit for given sizes")
    cuda.add_argument("target", help="FILE.py or FILE.py:KERNEL")
    cuda.add_argument("--size", default="", help="parameter values, e.g. N=64,M=48")
    cuda.add_argument("--config", default=None, help="GPU mapping (see `run --config`)")
    cuda.add_argument("--dtype", default=DEFAULT_DTYPE, type=_dtypes,
                      help="element types (see `run --dtype`)")
    cuda.add_argument("-o", "--output", default=None, help="output file (default: stdout)")
    cuda.set_defaults(handler=cmd_cuda)

    deps = sub.add_parser("deps", help="show the dependences of a kernel")
    deps.add_argument("target", help="FILE.py or FILE.py:KERNEL")
    deps.add_argument("--format", default=None, choices=("text", "dot", "svg", "png"),
                      help="default: from the extension of -o (.txt, .dot/.gv, .svg, .png), "
                           "else text")
    deps.add_argument("-o", "--output", default=None, help="output file (required for png)")
    deps.set_defaults(handler=cmd_deps)

    pipe = sub.add_parser("pipeline", help="pipelinable reads; with --config the GPU "
                                           "buffers, stages and timeline")
    pipe.add_argument("target", help="FILE.py or FILE.py:KERNEL")
    pipe.add_argument("--config", default=None, help="GPU mapping (see `run --config`)")
    pipe.add_argument("--size", default="", help="sizes for trip counts and the timeline, every "
                                                 "size named (default: 256 for every size)")
    pipe.add_argument("--dtype", default=DEFAULT_DTYPE, choices=DTYPES,
                      help=f"element type for buffer sizes (default {DEFAULT_DTYPE}, as run)")
    pipe.add_argument("--timeline", default=None, help="write the timeline (.svg or .png)")
    pipe.set_defaults(handler=cmd_pipeline)

    demo = sub.add_parser("demo", help="walk through the embedded GEMM example")
    demo.add_argument("--size", type=_integer(1, "the matrix size must be at least 1"),
                      default=96, help=f"matrix size, 1 to {DEMO_MAX_SIZE} (default 96)")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (see the module docstring)."""
    try:
        options = build_parser().parse_args(argv)
    except _UsageError as exc:
        sys.stderr.write(exc.usage)
        print(f"polypipe: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        return options.handler(options)
    except PolypipeError as exc:
        print(f"polypipe: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except InternalError as exc:
        return _internal_error(exc.message)
    except MemoryError:
        print("polypipe: error: out of memory; choose smaller sizes", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("polypipe: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of the output went away (`polypipe run ... | head`): stop quietly, as
        # Unix tools do, and keep Python from complaining when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # noqa: BLE001 - anything else escaping polypipe is its bug
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-1]
        return _internal_error(f"{type(exc).__name__}: {exc} (at {where.filename}:"
                               f"{where.lineno})")


def _internal_error(message: str) -> int:
    print(f"polypipe: internal error: {message}\nThis is a bug in polypipe, not in your input: "
          "please report it with the command that raised it.", file=sys.stderr)
    return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
