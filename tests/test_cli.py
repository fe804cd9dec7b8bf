"""The command line: show, run --check and demo, as a user would call them."""

import subprocess
import sys
from pathlib import Path

import pytest

from polypipe.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def test_cli_show_prints_the_model(capsys):
    assert main(["show", str(EXAMPLES / "gemm.py")]) == 0
    out = capsys.readouterr().out
    assert "S1: C[i, j] += alpha * A[i, k] * B[k, j]" in out
    assert "[NI, NJ, NK] -> { S1[i, k, j] -> A[i, k]" in out


def test_cli_show_named_plain_function(tmp_path, capsys):
    source = tmp_path / "plain.py"
    source.write_text("def axpy(a, x, y):\n    N = len(x)\n    for i in range(N):\n"
                      "        y[i] += a * x[i]\n")
    assert main(["show", f"{source}:axpy"]) == 0
    assert "S0: y[i] += a * x[i]" in capsys.readouterr().out


@pytest.mark.parametrize("example, sizes", [
    ("gemm.py", "NI=20,NJ=17,NK=9"),
    ("jacobi_2d.py", "N=12,TSTEPS=3"),
    ("deriche.py", "W=9,H=7"),
    ("conv2d_nhwc.py", "N=1,OH=4,OW=3,CO=2,KH=3,KW=3,CI=2,H=8,W=6"),
    ("batched_matmul.py", "BATCH=2,M=5,N=4,K=3"),
    ("cholesky.py", "N=6"),
])
def test_cli_run_check_on_every_example(example, sizes, capsys):
    assert main(["run", str(EXAMPLES / example), "--size", sizes, "--check"]) == 0
    out = capsys.readouterr().out
    assert "matches the Python result" in out and "DIFFERS" not in out
    assert "first call" in out and "cached call" in out and "python" in out


def test_cli_run_float32(capsys):
    assert main(["run", str(EXAMPLES / "gemm.py"), "--size", "NI=8,NJ=8,NK=8", "--check",
                 "--dtype", "float32"]) == 0
    assert "dtype float32" in capsys.readouterr().out


def test_cli_run_rejects_missing_size(capsys):
    assert main(["run", str(EXAMPLES / "gemm.py"), "--size", "NI=4"]) == 2
    err = capsys.readouterr().err
    assert "missing NJ, NK" in err


def test_cli_rejects_unknown_kernel(capsys):
    assert main(["show", f"{EXAMPLES / 'gemm.py'}:nope"]) == 2
    assert "no kernel or function named 'nope'" in capsys.readouterr().err


def test_cli_reports_frontend_error_with_location(tmp_path, capsys):
    source = tmp_path / "bad.py"
    source.write_text("import polypipe as pp\n\n@pp.kernel\ndef bad(A):\n    N = len(A)\n"
                      "    i = 0\n    while i < N:\n        A[i] = 0.0\n")
    assert main(["show", str(source)]) == 2
    err = capsys.readouterr().err
    assert f"{source}:7:5: a while loop is not supported" in err and "^" in err


def test_cli_demo_runs_and_explains():
    result = subprocess.run([sys.executable, "-m", "polypipe.cli", "demo", "--size", "24"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    for piece in ("The polyhedral model", "S1[i, k, j]", "flow    S1 -> S1  C  carried by: k",
                  "for (int64_t pp_c0", "cp.async A_s tile 0 -> slot 0", "proof:",
                  "backend emulate", "every run matches the Python function"):
        assert piece in result.stdout, piece
    assert "DIFFERS" not in result.stdout


def test_cli_deps_text_and_dot(capsys):
    assert main(["deps", str(EXAMPLES / "gemm.py")]) == 0
    text = capsys.readouterr().out
    assert "flow    S1 -> S1  C  carried by: k" in text
    assert main(["deps", str(EXAMPLES / "gemm.py"), "--format", "dot"]) == 0
    assert capsys.readouterr().out.lstrip().startswith("digraph")


def test_cli_pipeline_with_config_and_timeline(tmp_path, capsys):
    picture = tmp_path / "timeline.svg"
    assert main(["pipeline", str(EXAMPLES / "gemm.py"), "--config",
                 "block=32x32,threads=8x8,reduction=8,shared_stages=3", "--size",
                 "NI=40,NJ=36,NK=30", "--timeline", str(picture)]) == 0
    out = capsys.readouterr().out
    assert "A[i, k]  k     sequential" in out and "pipelinable" in out
    assert "A_s        <- A        by copy_A     pipelinable      stages=3" in out
    assert "largest legal shared_stages" in out and "limited by trip count: 4" in out
    assert "cp.async A_s tile 2 -> slot 2" in out
    assert picture.read_text().startswith("<svg")


def test_cli_run_emulate_with_config(capsys):
    assert main(["run", str(EXAMPLES / "batched_matmul.py"), "--size", "BATCH=2,M=20,N=18,K=13",
                 "--check", "--backend", "emulate", "--config",
                 "block=8x8,threads=2x4,reduction=4,shared_stages=2,register_stages=2"]) == 0
    out = capsys.readouterr().out
    assert "backend emulate" in out and "proof:" in out and "matches the Python result" in out


def test_cli_rejects_bad_config(capsys):
    assert main(["run", str(EXAMPLES / "gemm.py"), "--size", "NI=8,NJ=8,NK=8",
                 "--backend", "emulate", "--config", "blocks=8x8"]) == 2
    assert "unknown config item 'blocks'" in capsys.readouterr().err
