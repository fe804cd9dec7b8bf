"""A BERT feed-forward block, fused by polypipe into two kernels, against PyTorch eager.

    python benchmarks/gpu_fused.py --check      # CPU: polypipe's GPU program (CPU runtime)
                                                #      and the eager formula equal Python
    python benchmarks/gpu_fused.py --dry-run    # no GPU: build, prove, compile, estimate
    python benchmarks/gpu_fused.py [--session]  # on a GPU (PyTorch, PyCUDA): JSON lines;
                                                #      --session: the default GpuConfig only

The block (``tests/kernels/contractions.py``, ``bert_ffn``) is ``Y = GELU(X W1 + b1) W2 + b2
+ X`` written as four loop nests (GEMM, bias + GELU in its tanh form with ``math.tanh``, GEMM,
bias + residual). polypipe fuses each element-wise nest into the copy-out of the GEMM before
it: two kernels, each proved. PyTorch eager runs ``addmm``, ``gelu(approximate="tanh")``,
``addmm`` and an add: four kernels, intermediates through DRAM. Shapes: BERT-base and
BERT-large at 512 tokens, float32 (TF32 off), each polypipe configuration of ``CONFIGS``.

On a GPU each record has the milliseconds of both (median, L2 flushed before each run, as
``benchmarks/gpu.py`` times), their ratio and the largest relative difference of ``Y``; the
dry run prints each build's kernels, fusion decisions, registers, spills and the static
estimate of both launches.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import polypipe as pp  # noqa: E402
from polypipe.gpu_config import format_config  # noqa: E402
from tests.kernels.contractions import bert_ffn  # noqa: E402

SHAPES = {"bert-base-ffn-512": (512, 768, 3072), "bert-large-ffn-512": (512, 1024, 4096)}
CONFIGS = (pp.GpuConfig(),
           pp.GpuConfig(block=(128, 128), threads=(16, 16), reduction=16, shared_stages=3,
                        register_stages=2))
GELU_C = 0.7978845608028654


def arguments(m: int, d: int, f: int, rng, dtype=np.float32) -> list:
    """X, W1, b1, H, W2, b2, Y with weights scaled as a trained layer's (GELU's argument of
    order one), H and Y filled with NaN: every element must be written."""
    def normal(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    return [normal(m, d), normal(d, f, scale=d ** -0.5), normal(f, scale=0.1),
            np.full((m, f), np.nan, dtype), normal(f, d, scale=f ** -0.5), normal(d, scale=0.1),
            np.full((m, d), np.nan, dtype)]


def eager(xp, X, W1, b1, H, W2, b2, Y) -> None:
    """The block as an eager framework runs it (NumPy here; ``torch_eager`` on the GPU)."""
    h = X @ W1 + b1
    H[...] = 0.5 * h * (1.0 + xp.tanh(GELU_C * (h + 0.044715 * h ** 3)))
    Y[...] = H @ W2 + b2 + X


def torch_eager(torch, X, W1, b1, H, W2, b2, Y) -> None:
    torch.addmm(b1, X, W1, out=H)
    H.copy_(torch.nn.functional.gelu(H, approximate="tanh"))
    torch.addmm(b2, H, W2, out=Y)
    Y.add_(X)


def max_relative_difference(got, want) -> float:
    return float(np.abs(got - want).max() / max(1.0, float(np.abs(want).max())))


def check() -> int:
    """Small shapes that do not divide the tiles, in float64 and float32: polypipe's GPU
    program on the CPU runtime, and the eager formula, against the Python function."""
    failures = 0
    for dtype, tolerance in ((np.float64, 1e-12), (np.float32, 1e-5)):
        for m, d, f in ((37, 24, 40), (70, 48, 96)):
            args = arguments(m, d, f, np.random.default_rng(m), dtype)
            want = [a.copy() for a in args]
            bert_ffn(*want)
            opt = pp.optimize(pp.kernel(bert_ffn),
                              pp.GpuConfig(block=(32, 32), threads=(8, 8), reduction=8))
            got = [a.copy() for a in args]
            opt.run(*got)
            formula = [a.copy() for a in args]
            eager(np, *formula)
            errors = (max_relative_difference(got[6], want[6]),
                      max_relative_difference(formula[6], want[6]))
            ok = len(opt.kernels) == 2 and max(errors) <= tolerance
            failures += not ok
            print(f"{np.dtype(dtype).name} {m}x{d}x{f}: {len(opt.kernels)} kernels, "
                  f"polypipe {errors[0]:.1e}, eager {errors[1]:.1e} "
                  f"{'ok' if ok else 'DIFFERS'}")
    return failures


def dry_run() -> int:
    from polypipe.codegen.nvcc import compile_cubin
    from polypipe.kernel import bind_arguments
    from polypipe.performance import estimate_lines

    for label, (m, d, f) in SHAPES.items():
        args = arguments(m, d, f, np.random.default_rng(0))
        for config in CONFIGS:
            started = time.perf_counter()
            opt = pp.optimize(pp.kernel(bert_ffn), config)
            _, resources = compile_cubin(opt.cuda_source(*args), "sm_90")
            built = time.perf_counter() - started
            print(f"{label} {format_config(config)}: {len(opt.kernels)} kernels, "
                  f"{sum(x.fused for x in opt.fusions)} fused pairs, built, proved and "
                  f"compiled in {built:.1f} s")
            for r in resources:
                print(f"  {r.name}: {r.registers} registers, "
                      f"{r.spill_stores + r.spill_loads} spill bytes")
            for decision in opt.fusions:
                print(f"  {decision}")
            binding = bind_arguments(opt.original, args, device_arrays=True)
            print("\n".join(estimate_lines(opt, binding)), flush=True)
    return 0


def gpu_run(configs) -> int:
    import torch

    from gpu import Timer, fp32_baselines

    fp32_baselines(torch)
    timer = Timer(torch)
    for label, (m, d, f) in SHAPES.items():
        host = arguments(m, d, f, np.random.default_rng(0))
        dev = [torch.from_numpy(a).cuda() for a in host]
        eager_ms = timer.launch_ms(lambda: torch_eager(torch, *dev))
        want = dev[6].cpu().numpy()
        for config in configs:
            opt = pp.optimize(pp.kernel(bert_ffn), config)
            got = [torch.from_numpy(a).cuda() for a in host]
            opt.run(*got, backend="cuda")
            ms = timer.polypipe_ms(opt, got)
            print(json.dumps({"workload": label, "dtype": "float32",
                              "config": format_config(config), "kernels": len(opt.kernels),
                              "polypipe_ms": ms, "torch_eager_ms": eager_ms,
                              "speedup": eager_ms / ms,
                              "max_relative_difference": max_relative_difference(
                                  got[6].cpu().numpy(), want)}), flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="CPU: results equal Python")
    parser.add_argument("--dry-run", action="store_true", help="no GPU: build and compile")
    parser.add_argument("--session", action="store_true",
                        help="the default configuration only (a GPU session's time limit)")
    options = parser.parse_args(argv)
    if options.check:
        return 1 if check() else 0
    if options.dry_run:
        return dry_run()
    return gpu_run(CONFIGS[:1] if options.session else CONFIGS)


if __name__ == "__main__":
    sys.exit(main())
