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
    for piece in ("The polyhedral model", "S1[i, k, j]", "pp_kernel", "matches the Python"):
        assert piece in result.stdout
