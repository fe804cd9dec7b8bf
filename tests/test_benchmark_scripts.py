"""The GPU benchmark script's parts that run without a GPU."""

import json
import math
import re
import sys
from pathlib import Path

import pytest

from polypipe.codegen.nvcc import find_nvcc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu  # noqa: E402
import gpu_workloads  # noqa: E402


def test_workloads_cover_alcops_shape_set():
    names = [w.name for w in gpu_workloads.all_workloads()]
    assert len(names) == len(set(names)) == 16 + 4 + 2 + 4
    squares = {w.gemm for w in gpu_workloads.gemm_workloads() if w.name.startswith("square")}
    assert squares == {(1, n, n, n) for n in (1024, 2048, 4096, 8192)}
    [conv56] = [w for w in gpu_workloads.conv_workloads() if "56x56" in w.name]
    assert conv56.gemm == (1, 32 * 56 * 56, 64, 9 * 64)


def test_implicit_gemm_convolution_matches_im2col(tmp_path):
    import numpy as np
    import polypipe as pp

    layer = gpu_workloads.Workload("conv2d", "tiny", {"N": 2, "H": 5, "W": 5, "C": 4, "K": 8,
                                                      "R": 3, "S": 3, "stride": 1, "pad": 1},
                                   (1, 50, 8, 36))
    func = gpu_workloads.conv_kernel(layer, tmp_path)
    host = gpu_workloads.host_arrays(layer, np.random.default_rng(0))
    opt = pp.optimize(pp.kernel(func), pp.GpuConfig(block=(32, 8), threads=(8, 8),
                                                     reduction=8))
    opt.run(host["Y"], host["Xp"], host["Wt"])
    expected = gpu_workloads.im2col(host["Xp"], 5, 5) @ host["Wt"]
    assert np.allclose(host["Y"], expected, rtol=1e-5, atol=1e-5)


def test_summary_ratios_are_geometric_means():
    records = []
    for name, (cublas, triton, pipe, off) in {"g1": (10, 8, 8, 4), "g2": (20, 10, 10, 10)}.items():
        for impl, value in (("cublas", cublas), ("triton", triton), ("polypipe", pipe),
                            ("polypipe-nopipe", off)):
            records.append({"name": name, "op": "gemm", "impl": impl, "tflops": value})
    lines = []
    gpu.summarise(records, lines.append)
    text = "\n".join(lines)
    assert f"polypipe / cublas: {math.sqrt(0.8 * 0.5):.3f}" in text
    assert f"polypipe / pipe: {math.sqrt(2.0 * 1.0):.3f}" in text


def test_chart_is_drawn_from_the_json(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "gpu_test.json"
    path.write_text(json.dumps([{"name": "w", "impl": impl, "tflops": 1.0, "device": "X"}
                                for impl in ("cublas", "polypipe")]))
    png = gpu.chart(path)
    assert png is not None and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_dry_run_proves_prints_and_compiles(capsys):
    assert gpu.main(["--dry-run", "--only", "square-2048"]) == 0
    out = capsys.readouterr().out
    assert "square-2048" in out and "0 spill bytes" in out
    # Grouped ownership (default): B's copies wide, A's transposed; strided: both wide.
    assert "2 wide copies" in out and "4 wide copies" in out
    assert "shared loads (0 of 16 bytes)" not in out
    # The result's copy-out: 16-byte stores with grouped ownership, scalar with strided.
    assert "16 global stores (16 of 16 bytes)" in out and "global stores (0 of 16" in out
    # The baseline without pipelining is also built for two blocks per SM.
    assert "shared_stages=1,register_stages=1,blocks_per_sm=2" in out
    from polypipe.codegen.sass import find_nvdisasm
    if find_nvdisasm() is not None:   # the SASS of every build's main loop, no local memory
        rows = [line for line in out.splitlines() if "SASS main loop" in line]
        assert len(rows) == out.count("spill bytes") and all(
            row.endswith("kernel: 0 LDL/STL") for row in rows)
        # The static estimate of every build, with the unit that bounds it: a square GEMM
        # this large is bound by instruction issue or the FMA pipe, below the FP32 peak.
        estimates = [line for line in out.splitlines() if "estimate on H200" in line]
        assert len(estimates) == len(rows)
        for line in estimates:
            tflops = float(re.search(r"<= ([0-9.]+) TFLOP/s", line).group(1))
            assert 0 < tflops <= 2 * 128 * 132 * 1.98e-3
            assert re.search(r"bound by (issue|fma)", line), line
