"""The C backend's compiler flags (codegen.cpu.c_flags) and the CPU benchmark that measures them
(benchmarks/cpu.py): -O3 and the host's vector width, with every rounding Python's; a library
built with -march=native is cached per host."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import polypipe as pp
import polypipe.codegen.cpu as cpu

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_the_flags_vectorise_and_keep_pythons_rounding():
    flags = cpu.c_flags()
    assert flags[0] == "-O3" and "-ffp-contract=off" in flags
    assert not any(f in flags for f in ("-ffast-math", "-Ofast", "-funsafe-math-optimizations"))
    text = cpu.c_flags_text()
    assert "-O3" in text and "keep every rounding" in text


def test_polypipe_run_says_which_flags_and_why(capsys):
    from polypipe.cli import main

    examples = Path(__file__).resolve().parents[1] / "examples"
    assert main(["run", str(examples / "gemm.py"), "--size", "NI=8,NJ=8,NK=8", "--check",
                 "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert f"flags {cpu.c_flags_text()}" in out and "matches the Python result" in out


def test_a_native_build_is_cached_per_host(monkeypatch):
    source = "double pp_twice(double x) { return 2.0 * x; }\n"
    if "-march=native" not in cpu.c_flags():
        pytest.skip("the compiler rejects -march=native")
    here = cpu.compile_shared_library(source)
    monkeypatch.setattr(cpu, "host_id", lambda: "another host")
    assert cpu.compile_shared_library(source) != here
    # Without -march=native the host does not matter.
    plain = cpu.compile_shared_library(source, cpu.SOURCE_ORDER_FLAGS)
    monkeypatch.undo()
    assert cpu.compile_shared_library(source, cpu.SOURCE_ORDER_FLAGS) == plain


def test_results_are_bit_identical_to_the_source_order_flags():
    """A vectorised stencil and a reduction: the same bits as -O2 and as Python."""
    import cpu as bench
    from tests.kernels.polybench import KERNELS

    for name in ("jacobi_2d", "gemm", "covariance"):
        args = list(KERNELS[name].make_args(np.random.default_rng(3), np.float64))
        want = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        KERNELS[name].func(*want)
        got = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        pp.kernel(KERNELS[name].func)(*got)
        with bench.source_order_flags():
            older = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            pp.kernel(KERNELS[name].func)(*older)
        for g, o, w in zip(got, older, want):
            if isinstance(w, np.ndarray):
                assert np.array_equal(g, w) and np.array_equal(o, w), name


def test_the_cpu_benchmark_checks_and_records(tmp_path, capsys):
    import cpu as bench

    out = tmp_path / "cpu.json"
    assert bench.main(["--scale", "small", "--repeat", "1", "--only", "gemm,seidel_2d",
                       "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "polypipe's flags: -O3" in text and "geometric mean" in text
    records = json.loads(out.read_text())
    assert [r["name"] for r in records] == ["gemm", "seidel_2d"]
    gemm = records[0]
    assert gemm["operations"] == 13 * 17 + 13 * 17 * 11 * 3 and gemm["operations_exact"]
    assert gemm["impls"]["polypipe"]["ratio"] == 1.0
    assert all(e.get("ok", True) for r in records for e in r["impls"].values())
    assert "absent" in records[1]["impls"]["numpy"]     # seidel has no NumPy equivalent
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    png = out.with_suffix(".png")
    assert png.read_bytes()[:4] == b"\x89PNG" and f"wrote {png}" in text
