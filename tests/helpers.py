"""Shared test helpers: run a kernel compiled and as plain Python on copies of the same inputs."""

from __future__ import annotations

import numpy as np

import polypipe as pp


def copy_args(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def max_relative_error(got, want) -> float:
    """Largest |got - want| over max(1, |want|max), NaNs required in the same places."""
    if want.size == 0:
        return 0.0
    assert np.array_equal(np.isnan(got), np.isnan(want)), "NaNs differ"
    scale = max(1.0, float(np.nanmax(np.abs(want))) if not np.all(np.isnan(want)) else 1.0)
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    return float(np.nanmax(diff)) / scale if not np.all(np.isnan(diff)) else 0.0


def tolerance(dtype) -> float:
    return 1e-4 if np.dtype(dtype) == np.float32 else 1e-9


def assert_matches_python(k: pp.Kernel, args, dtype=np.float64, backend: str = "c") -> None:
    """Run ``k`` compiled and ``k.python`` on equal inputs; every array must agree."""
    compiled = copy_args(args)
    reference = copy_args(args)
    k(*compiled, backend=backend)
    with np.errstate(all="ignore"):
        k.python(*reference)
    for index, (got, want) in enumerate(zip(compiled, reference)):
        if isinstance(want, np.ndarray):
            error = max_relative_error(got, want)
            assert error <= tolerance(dtype), (
                f"argument {index} ({k.program.arguments[index].name}) differs: {error:.3e}")


def assert_optimized_matches_python(opt, python, args, dtype=np.float64, **run) -> None:
    """Run the optimized program on the CPU runtime (GPU semantics) and ``python`` on equal
    inputs; every array must agree."""
    got, want = copy_args(args), copy_args(args)
    opt.run(*got, **run)
    with np.errstate(all="ignore"):
        python(*want)
    for index, (g, w) in enumerate(zip(got, want)):
        if isinstance(w, np.ndarray):
            error = max_relative_error(g, w)
            assert error <= tolerance(dtype), f"argument {index} differs: {error:.3e}"


def assert_scheduled(opt, reason: str) -> None:
    """Every kernel of ``opt`` comes from isl's schedule, and describe() gives ``reason`` for
    not taking the contraction mapping."""
    from polypipe.gpu_scheduled import ScheduledKernel

    assert opt.kernels and all(isinstance(k, ScheduledKernel) for k in opt.kernels)
    text = opt.describe()
    assert "not a contraction" in text and reason in text, text
    assert len(opt.proofs) >= 1


def load_source(directory, source: str, name: str = "f"):
    """The function ``name`` of a module with ``source`` (numpy as np and math imported),
    written to ``directory`` and imported, so that polypipe can read its source."""
    import importlib.util
    import sys
    import uuid
    from pathlib import Path

    module_name = f"polypipe_test_{uuid.uuid4().hex}"
    path = Path(directory) / f"{module_name}.py"
    path.write_text("import math\nimport numpy as np\n\n" + source)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return getattr(module, name)
