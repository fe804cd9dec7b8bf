"""The printed CUDA text, run by the CPU runtime: exactly what cuda_source(*args) returns,
and mutations of it (a deleted barrier, a weakened wait, an index shifted by one) reported as
a race, a missing wait, an out-of-bounds or misaligned access, or a wrong result naming the
first differing element, never passed silently."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import polypipe as pp
from polypipe import GpuConfig, KernelRuntimeError
from tests.kernels.contractions import CASES

ROOT = Path(__file__).resolve().parent.parent
GEMM = GpuConfig(block=(16, 16), threads=(4, 4), reduction=4, shared_stages=3,
                 register_stages=2)
CONV = GpuConfig(block=(16, 8), threads=(4, 2), reduction=4, shared_stages=2,
                 register_stages=2)
WORKLOADS = {"gemm": (GEMM, (37, 29, 23)), "conv2d_s2": (CONV, (6, 8, 12))}
_optimized: dict = {}


def _setup(name):
    config, (m, n, k) = WORKLOADS[name]
    if name not in _optimized:
        _optimized[name] = pp.optimize(pp.kernel(CASES[name].func), config)
    args = CASES[name].make(np.random.default_rng(1), m, n, k, np.float64)
    want = CASES[name].expect([a.copy() if isinstance(a, np.ndarray) else a for a in args])
    return _optimized[name], args, want


def _outcome(opt, args, want, source) -> str:
    """'ok', 'wrong' or the runtime's report for running ``source`` on copies of ``args``."""
    got = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    try:
        opt.run(*got, source=source)
    except KernelRuntimeError as exc:
        return str(exc)
    ok = all(np.allclose(got[i], w, rtol=1e-10, atol=1e-10) for i, w in want.items())
    return "ok" if ok else "wrong"


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_the_printed_text_is_what_runs(name):
    opt, args, want = _setup(name)
    source = opt.cuda_source(*args)
    assert _outcome(opt, args, want, source) == "ok"
    assert _outcome(opt, args, want, None) == "ok"
    executable = opt._compiled[next(k for k in opt._compiled
                                    if isinstance(k, tuple) and k[0] == "emulate")]
    assert executable.source == source   # byte for byte


def _lines(source: str, pattern: str) -> list[int]:
    return [i for i, line in enumerate(source.splitlines()) if re.search(pattern, line)]


def _replace_line(source: str, index: int, old: str, new: str) -> str:
    lines = source.splitlines()
    assert old in lines[index]
    lines[index] = lines[index].replace(old, new, 1)
    return "\n".join(lines) + "\n"


def _mutants(source: str):
    """(label, mutated source): every barrier deleted, every wait weakened by one, every
    global and shared subscript of the main loop shifted by one (one at a time)."""
    for index in _lines(source, r"__syncthreads\(\);"):
        yield f"barrier@{index}", _replace_line(source, index, "__syncthreads();", "")
    for index in _lines(source, r"pp_cp_async_wait<\d+>\(\);"):
        pending = int(re.search(r"wait<(\d+)>", source.splitlines()[index]).group(1))
        yield f"wait@{index}", _replace_line(source, index, f"wait<{pending}>",
                                             f"wait<{pending + 1}>")
    for index in _lines(source, r"(PP_LD|PP_ST)\(a_\w+, |&a_\w+\["):
        line = source.splitlines()[index]
        match = re.search(r"(PP_LD|PP_ST)\((a_\w+), |&(a_\w+)\[", line)
        old = match.group(0)
        new = (f"{match.group(1)}({match.group(2)}, 1 + " if match.group(1)
               else f"&{match.group(3)}[1 + ")
        yield f"shift@{index}", _replace_line(source, index, old, new)


REPORTED = re.compile(r"missing barrier|missing wait|out of bounds|misaligned|divergen|"
                      r"race between blocks")


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_every_mutation_of_the_text_is_caught(name):
    opt, args, want = _setup(name)
    source = opt.cuda_source(*args)
    mutants = list(_mutants(source))
    kinds = {label.split("@")[0] for label, _ in mutants}
    assert kinds == {"barrier", "wait", "shift"}, kinds
    caught = set()
    for label, mutant in mutants:
        outcome = _outcome(opt, args, want, mutant)
        if outcome == "ok" and label.startswith("barrier"):
            # The barriers of the pipeline's prologue separate copies into different slots
            # (and, with an outer reduction loop, the previous pipeline's reads): without one
            # the kernel may still be right. Then it must be right and race-free under every
            # thread order, not only the default one.
            for order in ("forward", "reverse"):
                got = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
                opt.run(*got, source=mutant, thread_order=order)
                assert all(np.allclose(got[i], w) for i, w in want.items()), (label, order)
            continue
        assert outcome == "wrong" or REPORTED.search(outcome), (label, outcome)
        if label.startswith(("barrier", "wait")):
            # a needed barrier or wait missing is a synchronisation error, whatever the data
            assert re.search("missing (barrier|wait)", outcome), (label, outcome)
        caught.add(label.split("@")[0])
    assert caught == {"barrier", "wait", "shift"}, caught


def test_cli_prints_runs_and_judges_a_hand_edited_file(tmp_path):
    sizes, config = "NI=40,NJ=36,NK=20", "block=16x16,threads=4x4,reduction=4,shared_stages=3"
    cu = tmp_path / "gemm.cu"

    def polypipe(*args):
        return subprocess.run([sys.executable, "-m", "polypipe.cli", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)

    printed = polypipe("cuda", "examples/gemm.py", "--size", sizes, "--config", config,
                       "-o", str(cu))
    assert printed.returncode == 0, printed.stderr
    text = cu.read_text()
    assert re.search(r"// gemm_k0: grid \(3, 3, 1\), block \(4, 4, 1\), dynamic shared "
                     r"memory 0 bytes", text)
    run = ("run", "examples/gemm.py", "--backend", "emulate", "--size", sizes, "--config",
           config, "--check", "--cuda")
    good = polypipe(*run, str(cu))
    assert good.returncode == 0 and "matches the Python result" in good.stdout, good.stderr
    broken = tmp_path / "broken.cu"
    index = _lines(text, r"pp_cp_async_wait<1>\(\);")[0]
    broken.write_text(_replace_line(text, index, "wait<1>", "wait<2>"))
    weak = polypipe(*run, str(broken))
    assert weak.returncode == 2 and "missing wait" in weak.stderr, weak.stderr
    # An edit that keeps every access legal but computes something else: a wrong result
    # naming the first differing element.
    index = _lines(text, r"\(s_alpha \* a_A_r\[")[0]
    wrong = tmp_path / "wrong.cu"
    wrong.write_text(_replace_line(text, index, "(s_alpha * ", "((2.0 * s_alpha) * "))
    result = polypipe(*run, str(wrong))
    assert result.returncode == 1 and "DIFFERS" in result.stdout
    assert re.search(r"first at \[\d+, \d+\]: got ", result.stdout), result.stdout
