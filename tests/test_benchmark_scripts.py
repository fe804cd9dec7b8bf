"""The GPU benchmark script's parts that run without a GPU."""

import json
import math
import os
import subprocess
import re
import sys
from pathlib import Path

import pytest

from polypipe.codegen.nvcc import find_nvcc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu  # noqa: E402
import gpu_session  # noqa: E402
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
def test_dry_run_proves_prints_and_compiles(capsys, monkeypatch):
    import gpu_half

    # The tensor-core sections (minutes of proofs) have a test of their own.
    monkeypatch.setattr(gpu_half, "tensor_core_listing", lambda **options: {"built": 1})
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


# -- the GPU session (benchmarks/gpu_session.py) ------------------------------------------------

WHEELS = Path(__file__).resolve().parents[2] / "shared" / "gpu" / "wheels"


def _wheel_folder(tmp_path) -> Path:
    """The shared wheels where this checkout has them, else empty files with their names (the
    plan checks names only)."""
    if WHEELS.is_dir():
        return WHEELS
    folder = tmp_path / "wheels"
    folder.mkdir()
    for name in ("islpy-2026.2.2-cp312-cp312-manylinux_2_28_x86_64.whl",
                 "pycuda-2026.1-cp312-cp312-linux_x86_64.whl", "pytools-2026.1.1-py3-none-any.whl",
                 "platformdirs-4.14.5-py3-none-any.whl", "mako-1.4.3-py3-none-any.whl",
                 "siphash24-1.9-cp312-cp312-manylinux_2_28_x86_64.whl"):
        (folder / name).write_bytes(b"")
    return folder


@pytest.mark.slow
@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_gpu_session_plan_passes_on_a_cpu_machine(tmp_path):
    # The session benchmark's dry run on one of its workloads (the whole of it takes minutes;
    # test_dry_run_proves_prints_and_compiles covers the dry run itself).
    env = dict(os.environ, OUT=str(tmp_path / "out"), POLYPIPE_PLAN_ONLY="square-4096",
               POLYPIPE_PLAN_ONLY_POLYBENCH="jacobi_2d,atax",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    result = subprocess.run(["bash", "benchmarks/gpu_session.sh", "--plan",
                             str(_wheel_folder(tmp_path))], cwd=gpu_session.ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "[FAIL]" not in out and out.count("[ok]") >= 16
    for step in ("install", "gpu tests", "benchmark", "half", "compute-sanitizer memcheck",
                 "compute-sanitizer racecheck", "compute-sanitizer synccheck"):
        assert f"  {step} (" in out
    assert not (tmp_path / "out").exists()     # a plan writes nothing


def test_gpu_session_plan_fails_on_a_missing_wheel(tmp_path, capsys):
    folder = tmp_path / "wheels"
    folder.mkdir()
    (folder / "islpy-2026.2.2-cp312-cp312-linux_x86_64.whl").write_bytes(b"")
    plan = gpu_session.steps(folder, tmp_path)
    checks = [gpu_session._check(f"wheel {n}", n == "islpy") for n in gpu_session.WHEELS]
    assert checks.count(True) == 1
    assert sum(s.timeout_s for s in plan) <= gpu_session.BUDGET_S
    assert len(gpu_session.outputs(plan)) <= gpu_session.MAX_FILES
    assert "[FAIL] wheel pycuda" in capsys.readouterr().out


def test_a_failing_session_step_leaves_the_others_results(tmp_path):
    Step = gpu_session.Step
    plan = [Step("fails", ["false"], 10, "a.txt"), Step("works", ["echo", "measured"], 10, "b.txt"),
            Step("absent", ["no-such-tool-here"], 10, "c.txt"),
            Step("hangs", ["sleep", "30"], 1, "d.txt"),
            Step("after", ["echo", "still ran"], 10, "b.txt")]
    assert gpu_session.run(plan, tmp_path) == 1
    log = (tmp_path / "session.log").read_text().splitlines()
    assert [line.split(":")[0] for line in log] == ["fails", "works", "absent", "hangs", "after"]
    assert "rc 1," in log[0] and "rc 0," in log[1] and "rc not started" in log[2]
    assert "rc timeout" in log[3] and "rc 0," in log[4]
    text = (tmp_path / "b.txt").read_text()
    assert "measured" in text and "still ran" in text


class _FakeEvent:
    clock = 0.0

    def __init__(self, enable_timing=True):
        self.at = None

    def record(self):
        self.at = _FakeEvent.clock

    def synchronize(self):
        pass

    def elapsed_time(self, other):
        return other.at - self.at


class _FakeTorch:
    """Enough of PyTorch for gpu.Timer: a scratch tensor whose zero_() counts flushes."""

    float32 = "float32"

    def __init__(self):
        self.flushes = 0
        torch = self

        class Scratch:
            def zero_(self):
                torch.flushes += 1

        self.empty = lambda *a, **k: Scratch()
        self.cuda = type("cuda", (), {"Event": _FakeEvent})


def test_timer_flushes_l2_before_every_timed_run_and_takes_the_median():
    torch = _FakeTorch()
    timer = gpu.Timer(torch)
    durations = iter([50.0, 5.0] + [3.0, 1.0, 2.0] * 10 + [9.0] * 100)

    def launch():
        _FakeEvent.clock += next(durations)

    assert timer.launch_ms(launch) == 2.0       # the median of the 20 timed runs
    # 100 ms at 5 ms per run (the second, after the warm-up): 20 runs, each after a flush.
    assert torch.flushes == 20


def test_polybench_equivalents_equal_the_python_kernels(capsys):
    import gpu_polybench

    assert gpu_polybench.check(list(gpu_polybench.LARGE)) == 0
    assert capsys.readouterr().out.count(" ok ") == len(gpu_polybench.EQUIVALENTS)


def test_polybench_large_arguments_have_the_large_sizes():
    import numpy as np
    import gpu_polybench

    args = gpu_polybench.large_args("gemm", np.random.default_rng(0))
    assert [a.shape for a in args[2:]] == [(1000, 1100), (1000, 1200), (1200, 1100)]
    tsteps, A, _ = gpu_polybench.large_args("jacobi_2d", np.random.default_rng(0))
    assert tsteps == 500 and A.shape == (1300, 1300)
    (L,) = gpu_polybench.large_args("cholesky", np.random.default_rng(0))
    assert np.allclose(L, L.T) and np.all(np.linalg.eigvalsh(L[:50, :50]) > 0)


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_polybench_dry_run_builds_counts_launches_and_compiles(tmp_path, capsys):
    import gpu_polybench

    out = tmp_path / "table.txt"
    assert gpu_polybench.main(["--dry-run", "--only", "jacobi_2d,floyd_warshall",
                               "--out", str(out)]) == 0
    rows = {line.split()[0]: line.split() for line in out.read_text().splitlines()[2:]}
    assert rows["jacobi_2d"][1:3] == ["2", "1000"]          # two kernels per time step
    assert rows["floyd_warshall"][2] == str(2800 * (2 * 2800 - 1))   # (k, i + j) launches
    from polypipe.codegen.sass import find_nvdisasm
    if find_nvdisasm() is not None:
        # The estimate: Floyd-Warshall's launches, 5 us each, bound it (and say so).
        est_ms, bound = float(rows["floyd_warshall"][5]), rows["floyd_warshall"][6]
        assert bound == "launch" and est_ms == pytest.approx(2800 * 5599 * 5e-3, rel=1e-3)
        assert rows["jacobi_2d"][6] in ("launch", "L2", "issue", "DRAM")


def test_fused_bert_block_matches_python_on_the_cpu_runtime(capsys):
    import gpu_fused

    assert gpu_fused.check() == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all("2 kernels" in line and line.endswith("ok")
                                   for line in lines)


# -- FP16/BF16 baselines and the tensor-core builds (benchmarks/gpu_half.py) --------------------


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_dry_run_lists_tensor_core_plans_and_builds_them(capsys, monkeypatch):
    import gpu_half

    import gpu_half_builds

    # One of the session's configurations built (each build proves a kernel: seconds).
    for module in (gpu_half, gpu_half_builds):
        monkeypatch.setattr(module, "SESSION_TC_CONFIGS", gpu_half.SESSION_TC_CONFIGS[:1])
    assert gpu.main(["--dry-run", "--half", "--session", "--only", "square-4096"]) == 0
    out = capsys.readouterr().out
    assert "== tensor-core plans" in out and "not built yet" not in out
    assert "wide copies" not in out          # --half: not the FP32 builds
    plans = [line for line in out.splitlines() if line.startswith("block=(")]
    assert 10 <= len(plans) <= 24
    # Each plan: registers per lane, mix per main-loop iteration, swizzle and conflict degrees.
    assert out.count("per main-loop iteration: ") >= 5 and "swizzle(bits=" in out
    assert "ldmatrix 1-way" in out and "fragment registers" in out and "B shared" in out
    for shape in ("square-4096", "square-8192", "bert-base-ffn1-512"):
        rows = re.findall(rf"estimate {shape}: >= ([0-9.]+) ms, <= ([0-9]+) TFLOP/s, bound by "
                          r"(\w+)", out)
        assert len(rows) == len(plans)
        assert all(0 < float(tflops) <= 989 * 1.98 / 1.83 for _, tflops, _ in rows)
    refusals = [line for line in out.splitlines() if line.startswith("refused ")]
    assert len(refusals) >= 5 and all("invalid GpuConfig: " in line for line in refusals)
    assert any("registers per lane" in line for line in refusals)
    assert any("more than the 232448" in line for line in refusals)
    assert f"{len(plans)} tensor-core plans, {len(refusals)} refused" in out
    # The build: optimized, printed for 4096^3, compiled; its SASS has the planned main loop.
    [config] = gpu_half.SESSION_TC_CONFIGS
    section = out[out.index("== tensor-core builds: square-4096 float16"):]
    assert f"built {config.describe()}\n" in section
    resources = re.search(r"half_matmul_k0: (\d+) registers, 0 \+ 0 bytes spilled \(stores \+ "
                          r"loads\), 0 LDL/STL, (\d+) B shared", section)
    assert resources and int(resources.group(1)) <= 255
    [sass] = [line for line in section.splitlines() if "SASS main loop:" in line]
    assert sass.endswith(": matches"), sass
    counts = polypipe_plan_counts(config)
    assert f"{counts['mma']} HMMA, {4 * (counts['ldmatrix_a'] + counts['ldmatrix_b'])} LDSM " \
           f"matrices, {counts['cp_async_16']} LDGSTS.128" in sass
    from polypipe.codegen.sass import find_nvdisasm
    if find_nvdisasm() is not None:
        estimate = re.search(r"half_matmul_k0: estimate on H200 SXM: >= [0-9.]+ ms, <= ([0-9.]+) "
                             r"TFLOP/s, bound by (\w+)", section)
        assert estimate and 0 < float(estimate.group(1)) <= 989 * 1.98 / 1.83
    assert ("1 tensor-core configurations: 1 built (1 with the planned HMMA, LDSM and "
            "LDGSTS.128 in the main loop), 0 refused, 0 failed, 0 stopped") in section
    # What the session times: polypipe-tensorcore on square-4096 float16 first.
    assert "allow_fp16/bf16_reduced_precision_reduction off" in out
    assert "polypipe-tensorcore on 1 (workload, dtype): square-4096 float16; configurations " \
           f"{gpu_half.format_config(config)} in this order" in out
    builds = [line for line in out.splitlines() if " polypipe-cudacore block=" in line]
    assert len(builds) == 1 and "16-bit tiles yes" in builds[0] and "0 bytes spilled" in builds[0]


def polypipe_plan_counts(config):
    from polypipe.gpu_warp import warp_plan

    return warp_plan(config).instruction_counts()


def _fake_build(config, workload, dtype, phase):
    """A tc_build standing in for the real one in forked_builds' children."""
    import time

    phase("optimize")
    if config.block == (64, 128):
        time.sleep(30)                         # a proof that does not finish
    if config.block == (256, 128):
        raise RuntimeError("the child broke\nmore")
    return {"status": "built", "kernels": [], "lines": [f"  {config.block}"]}


def test_forked_builds_keep_order_stop_the_slow_and_report_failures(monkeypatch):
    import polypipe as pp
    import gpu_half

    import gpu_half_builds

    monkeypatch.setattr(gpu_half_builds, "tc_build", _fake_build)
    configs = [pp.GpuConfig(block=block, warps=(2, 2), reduction=32, mma="m16n8k16")
               for block in ((64, 128), (128, 128), (256, 128))]
    workload = gpu_workloads.half_workloads()[0]
    results = list(gpu_half.forked_builds(configs, workload, limit_s=1.5, jobs=2))
    assert [config for config, _ in results] == configs
    slow, quick, broken = (result for _, result in results)
    assert slow == {"status": "stopped",
                    "reason": "optimize did not finish within 2 s (the build was stopped)"}
    assert quick["status"] == "built" and quick["lines"] == ["  (128, 128)"]
    assert broken == {"status": "failed", "reason": "RuntimeError: the child broke"}


def test_sass_is_compared_with_the_plan():
    import gpu_half_builds
    from polypipe.codegen.sass import InstructionMix

    counts = {"mma": 32, "ldmatrix_a": 4, "ldmatrix_b": 8, "cp_async_16": 4}
    row, differences = gpu_half_builds.sass_against_plan(
        InstructionMix(hmma=32, ldsm=48, ldgsts=((128, 4),), bar=1), counts)
    assert differences == [] and row.endswith(": matches")
    row, differences = gpu_half_builds.sass_against_plan(
        InstructionMix(hmma=32, ldsm=72, ldgsts=((128, 4), (32, 2)), lds=((32, 3),)), counts)
    assert differences == ["LDSM matrices 72 vs 48 (+24)"]
    assert "(also LDGSTS 4x128 2x32, LDS 3x32)" in row and row.endswith("differs: " +
                                                                        differences[0])


def _half_records():
    import gpu_half

    by_name = {w.name: w for w in gpu_workloads.half_workloads()}
    records = []
    for name, dtype, values in (
            ("square-4096", "float16", {"cublas": 600, "triton": 480, "polypipe-cudacore": 30,
                                        "polypipe-tensorcore": 420}),
            ("square-8192", "float16", {"cublas": 660, "triton": 330}),
            ("square-4096", "bfloat16", {"cublas": 590, "cublas-out-f32": 580}),
            ("bert-base-ffn1-512", "float16", {"cublas": 400, "polypipe-cudacore": 40})):
        workload = by_name[name]
        for impl, tflops in values.items():
            ms = workload.flops / (tflops * 1e12) * 1e3
            records.append(gpu_half.half_record(
                workload, dtype, "H200", impl, ms,
                "float16" if impl == "cublas" else "float32", max_rel_error=1e-5))
    return records


def test_half_records_are_summarised_per_dtype_with_the_goal():
    import gpu_half

    records = _half_records()
    first = records[0]
    assert first["dtype"] == "float16" and first["accumulate"] == "float32"
    assert first["out_dtype"] == "float16" and first["gemm"] == [1, 4096, 4096, 4096]
    assert first["tflops"] == pytest.approx(600) and set(first) >= {
        "op", "name", "shape", "device", "impl", "config", "ms", "max_rel_error"}
    json.dumps(records)
    records.append({"name": "square-4096", "op": "gemm", "impl": "cublas", "tflops": 50.0,
                    "dtype": "float32"})          # FP32 records are left to gpu.summarise
    lines = []
    ratios = gpu_half.summarise_half(records, lines.append)
    text = "\n".join(lines)
    # polypipe: the faster of its two kernels (tensor cores here, CUDA cores on the BERT GEMM).
    assert ratios[("square-4096", "float16")] == pytest.approx(
        {"triton": 0.8, "tensorcore": 0.7, "cudacore": 0.05, "polypipe": 0.7})
    assert ratios[("bert-base-ffn1-512", "float16")] == pytest.approx(
        {"cudacore": 0.1, "polypipe": 0.1})
    assert ratios[("square-4096", "bfloat16")] == {}
    assert f"float16 GEMMs, triton / cublas: {math.sqrt(0.8 * 0.5):.3f} (2)" in text
    assert "float16 GEMMs, tensorcore / cublas: 0.700 (1)" in text
    assert f"float16 GEMMs, polypipe / cublas: {math.sqrt(0.7 * 0.1):.3f} (2)" in text
    assert ("goal >= 0.6x cuBLAS at square-4096 float16: polypipe 0.70x (met; "
            "polypipe-tensorcore)") in text
    assert "goal >= 0.6x cuBLAS at square-8192 float16: no polypipe record" in text
    assert re.search(r"^square-4096 +float16 +600\.00 +- +480\.00 +420\.00 +30\.00 +0\.80 +0\.70$",
                     text, re.M)
    # The FP32 summary keeps a 16-bit record out of the FP32 row and its means.
    lines = []
    gpu.summarise(records, lines.append)
    text = "\n".join(lines)
    assert re.search(r"^square-4096 +50\.00", text, re.M)
    assert re.search(r"^square-4096 float16 +600\.00", text, re.M)
    assert "geometric mean" not in text


def test_chart_labels_each_dtype(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "gpu_half.json"
    path.write_text(json.dumps(_half_records()))
    png = gpu.chart(path)
    assert png is not None and png.read_bytes()[:4] == b"\x89PNG"


class _FakeHalfSession:
    """A HalfSession whose implementations succeed or fail as told, for time_baselines and
    time_tensorcore: a polypipe build's time is its block's first side, in microseconds."""

    def __init__(self, workload, dtype, torch, timer, generator):
        if workload.name == "square-8192" and dtype == "bfloat16":
            raise MemoryError("CUDA out of memory")
        self.workload, self.dtype = workload, dtype

    def cublas(self):
        return 1.0, 1e-4, self.dtype

    def cublas_out_f32(self):
        raise RuntimeError("torch 2.4 has no out_dtype")

    def triton(self, quick):
        if self.dtype == "bfloat16":
            raise ValueError("triton compile error\nmore")
        return 2.0, 1e-6, "float32"

    def polypipe(self, opt, impl="polypipe-cudacore"):
        import polypipe as pp

        config = opt["config"]
        if config.warps == (4, 2) and self.workload.name == "square-4096":
            raise pp.ArgumentError("the sizes do not divide the block tile\nmore")
        if config.shared_stages == 4:
            raise RuntimeError(f"{impl}'s result differs from the FP32 reference")
        return config.block[0] / 1000 + config.warps[1] / 1e4, 1e-6, "float32"


def _fake_torch():
    return type("torch", (), {"cuda": type("cuda", (), {"empty_cache": staticmethod(
        lambda: None)})})


def test_a_failing_half_implementation_is_logged_and_skipped(tmp_path, monkeypatch, capsys):
    import gpu_half

    monkeypatch.setattr(gpu_half, "HalfSession", _FakeHalfSession)
    torch = _fake_torch()
    workloads, pairs, tc_pairs = gpu_half.selection(None, session=True)
    assert [w.name for w in workloads] == ["square-4096", "square-8192", "bert-base-ffn1-512"]
    assert [(w.name, d) for w, d in pairs] == [("square-4096", "float16")]
    assert [(w.name, d) for w, d in tc_pairs] == [("square-4096", "float16")]
    run = gpu_half.Run(tmp_path / "half.json", "H200", 60.0)
    gpu_half.time_baselines(run, workloads[:2], torch, None, None, True, session=True)
    out = capsys.readouterr().out
    assert [(r["name"], r["dtype"], r["impl"]) for r in run.records] == [
        ("square-4096", "float16", "cublas"), ("square-4096", "float16", "triton"),
        ("square-4096", "bfloat16", "cublas"), ("square-8192", "float16", "cublas"),
        ("square-8192", "float16", "triton")]
    assert out.count("cublas-out-f32 failed: RuntimeError: torch 2.4 has no out_dtype") == 1
    assert "square-4096 bfloat16: triton failed: ValueError: triton compile error" in out
    assert "square-8192 bfloat16: no tensors: MemoryError: CUDA out of memory" in out
    assert json.loads((tmp_path / "half.json").read_text()) == run.records
    past = gpu_half.Run(tmp_path / "late.json", "H200", -1.0)
    gpu_half.time_baselines(past, workloads[:1], torch, None, None, True, session=True)
    assert not past.records and "past the session's deadline" in capsys.readouterr().out


def _fake_optimize(program, config):
    import polypipe as pp

    if config.block == (256, 128) and config.warps == (2, 4):
        raise pp.ScheduleError("invalid GpuConfig: too many registers\nmore")
    return {"config": config}


def test_tensor_core_search_records_the_fastest_and_logs_refusals(tmp_path, monkeypatch,
                                                                  capsys):
    import polypipe as pp
    import gpu_half

    monkeypatch.setattr(gpu_half, "HalfSession", _FakeHalfSession)
    monkeypatch.setattr(pp, "kernel", lambda func: func)
    monkeypatch.setattr(pp, "optimize", _fake_optimize)
    monkeypatch.setattr(gpu_half, "_estimate", lambda opt, hs, device: 123.0)
    monkeypatch.setattr(gpu_half, "bfloat16_reason", lambda: None)
    torch = _fake_torch()
    by_name = {w.name: w for w in gpu_workloads.half_workloads()}
    workloads = [by_name["square-4096"], by_name["bert-base-ffn1-512"]]
    pairs = [(w, d) for w in workloads for d in gpu_half.DTYPES]
    run = gpu_half.Run(tmp_path / "half.json", "H200", math.inf)
    gpu_half.time_tensorcore(run, pairs, torch, None, None, False, workloads)
    out = capsys.readouterr().out
    # The search on square-4096 (float16): 20 configurations, the refused, the sizes that do
    # not divide and the wrong results logged; the three fastest timed on every pair.
    assert "block=256x128,threads=16x16,reduction=32,shared_stages=3,register_stages=2," \
           "warps=2x4,mma=m16n8k16 refused: ScheduleError: invalid GpuConfig: too many " \
           "registers\n" in out
    assert "refused: ArgumentError: the sizes do not divide the block tile\n" in out
    assert "failed: RuntimeError: polypipe-tensorcore's result differs" in out
    finalists = re.search(r"search square-4096 float16: polypipe-tensorcore: (\d+) of 20 "
                          r"configurations ran; finalists (.*)", out)
    assert finalists and finalists.group(2).count("block=64x128") == 2
    records = [r for r in run.records if r["impl"] == "polypipe-tensorcore"]
    assert [(r["name"], r["dtype"]) for r in records] == [(w.name, d) for w, d in pairs]
    assert all(r["config"] == "block=64x128,threads=16x16,reduction=32,shared_stages=3,"
               "register_stages=2,warps=2x2,mma=m16n8k16" and r["estimate_tflops"] == 123.0
               and r["ms"] == pytest.approx(0.0642) for r in records)
    assert json.loads((tmp_path / "half.json").read_text()) == run.records
    # A session: its configurations in order, each only with the time it needs left.
    session = gpu_half.Run(tmp_path / "session.json", "H200", 60.0)
    gpu_half.time_tensorcore(session, pairs[:1], torch, None, None, True)
    [record] = session.records
    assert "256x128" in capsys.readouterr().out.split("refused: ArgumentError")[0][-200:]
    assert record["config"] == gpu_half.format_config(min(
        gpu_half.SESSION_TC_CONFIGS, key=lambda c: c.block[0] + c.warps[1] / 10))
    assert record["estimate_tflops"] == 123.0
    late = gpu_half.Run(tmp_path / "late.json", "H200", gpu_half.TENSORCORE_NEEDS_S - 1.0)
    gpu_half.time_tensorcore(late, pairs[:1], torch, None, None, True)
    assert not late.records and (f"polypipe-tensorcore skipped: "
                                 f"{gpu_half.TENSORCORE_NEEDS_S - 1} s left of the session"
                                 in capsys.readouterr().out)


def test_a_tensor_core_build_past_its_limit_is_kept_as_a_timeout(monkeypatch):
    import time
    import polypipe as pp
    import gpu_half

    calls = []

    def slow(program, config):
        calls.append(config)
        time.sleep(5)

    monkeypatch.setattr(pp, "kernel", lambda func: func)
    monkeypatch.setattr(pp, "optimize", slow)
    builds = gpu_half.TensorCoreBuilds()
    config = gpu_half.SESSION_TC_CONFIGS[0]
    start = time.monotonic()
    first = builds(gpu_workloads.half_matmul, config, 1.0)
    assert time.monotonic() - start < 3
    assert isinstance(first, gpu_half.BuildTimeout)
    assert str(first) == "optimize did not finish within 1 s"
    assert builds(gpu_workloads.half_matmul, config, 1.0) is first and len(calls) == 1


def test_gpu_session_times_the_tensor_cores_within_its_budget(tmp_path):
    plan = gpu_session.steps(tmp_path, tmp_path / "out")
    [half] = [s for s in plan if s.name == "half"]
    assert half.command[1:4] == ["benchmarks/gpu.py", "--half", "--session"]
    import gpu_half

    # The step outlasts the module's deadline, and a tensor-core build fits after square-4096's
    # baselines.
    assert gpu_half.SESSION_DEADLINE_S + 5 <= half.timeout_s
    assert gpu_half.SESSION_DEADLINE_S >= 2 * gpu_half.TENSORCORE_NEEDS_S
    assert 1 <= len(gpu_half.SESSION_TC_CONFIGS) <= 3
    assert all(c.mma == "m16n8k16" for c in gpu_half.SESSION_TC_CONFIGS)
    assert "polypipe-tensorcore" in gpu_half.IMPLS
    assert sum(s.timeout_s for s in plan) <= gpu_session.BUDGET_S
    files = gpu_session.outputs(plan)
    assert "gpu_<device>_half_session.json" in files and len(files) <= gpu_session.MAX_FILES
