"""The command line: show, run --check and demo, as a user would call them; pictures; and
bad input, which must give `polypipe: error: ...` and exit status 2, never a traceback."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from polypipe import cli
from polypipe.analysis import render
from polypipe.analysis.render import read_provenance, text_sha256
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


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("backend", ["c", "emulate"])
def test_cli_run_16_bit_is_exact(dtype, backend, capsys):
    pytest.importorskip("ml_dtypes")
    assert main(["run", str(EXAMPLES / "gemm.py"), "--size", "NI=9,NJ=7,NK=5", "--check",
                 "--dtype", dtype, "--backend", backend]) == 0
    assert "max relative error 0.00e+00" in capsys.readouterr().out


def test_cli_runs_a_tensor_core_kernel_with_16_bit_inputs_and_a_float32_result(capsys):
    """``--dtype float16,C=float32``: every array float16 but C; sizes that divide no tile."""
    assert main(["run", str(EXAMPLES / "half_gemm.py"), "--size", "M=40,N=24,K=40",
                 "--dtype", "bfloat16,C=float32", "--backend", "emulate", "--config",
                 "block=32x32,warps=1x1,reduction=32,mma=m16n8k16", "--check",
                 "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "dtype bfloat16, C=float32" in out and "C: matches the Python result" in out
    assert "the padding of partial tiles reads zeros" in out


@pytest.mark.parametrize("dtype,error", [
    ("float16,D=float32", "--dtype names D, which half_gemm has no array argument of; its "
                          "arrays are C, A, B"),
    ("float16,C=float31", "'C=float31' is not ARRAY=DTYPE"),
    ("half,C=float32", "'half' is not one of float64"),
])
def test_cli_rejects_bad_per_array_dtypes(dtype, error, capsys):
    assert main(["run", str(EXAMPLES / "half_gemm.py"), "--size", "M=4,N=4,K=4",
                 "--dtype", dtype]) == 2
    assert error in capsys.readouterr().err


def test_cli_pipeline_shows_a_tensor_core_plan(capsys):
    assert main(["pipeline", str(EXAMPLES / "half_gemm.py"), "--config",
                 "block=64x64,warps=2x2,reduction=32,mma=m16n8k16"]) == 0
    out = capsys.readouterr().out
    assert "tensor cores: m16n8k16" in out and "ldmatrix of A and B delivers" in out
    # gemm's update multiplies unwidened values: refused, saying how to write it
    assert main(["pipeline", str(EXAMPLES / "gemm.py"), "--config",
                 "block=64x64,warps=2x2,reduction=32,mma=m16n8k16"]) == 2
    assert "cannot use tensor cores" in capsys.readouterr().err
    assert main(["pipeline", str(EXAMPLES / "gemm.py"), "--config",
                 "block=64x64,warps=3x2,mma=m16n8k16"]) == 2
    assert "whole instruction tiles" in capsys.readouterr().err


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
    # The buffer figures use the itemsize of the dtype the demo runs (float64), not 4 bytes.
    from polypipe.analysis.pipeline_check import check_buffers
    from polypipe.demo import gemm
    from polypipe.gpu_config import GpuConfig
    from polypipe.optimize import optimize

    assert "dtype float64" in result.stdout and "float64 (8 bytes per element" in result.stdout
    config = GpuConfig(block=(32, 32), threads=(8, 8), reduction=16, shared_stages=2,
                       register_stages=2)      # the demo's at --size 24 (one reduction tile)
    kernel = optimize(gemm.program, config).kernels[0]
    for eight, four in zip(check_buffers(kernel, 8), check_buffers(kernel, 4)):
        assert "  " + eight.line() in result.stdout
        assert "  " + four.line() not in result.stdout


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
    # float64 by default, as for `run`: 32 x (8 + 1 padding) x 8 bytes per stage of A_s
    assert "(float64, 8 bytes per element)" in out
    assert "A_s        <- A        by copy_A     pipelinable      stages=3  2304 B/stage" in out
    assert "deepest useful shared_stages" in out and "limited by trip count: 4" in out
    assert "cp.async A_s tile 2 -> slot 2" in out
    assert "compute: S1: C[i, j] += alpha * A[i, k] * B[k, j]" in out and "S1 k 0..6" in out
    assert "mma" not in out and "update k" not in out
    data = picture.read_bytes()
    assert data.startswith(b"<?xml") and b"<svg" in data


def test_cli_pipeline_dtype_sets_the_buffer_sizes(capsys):
    assert main(["pipeline", str(EXAMPLES / "gemm.py"), "--config",
                 "block=32x32,threads=8x8,reduction=8,shared_stages=3", "--size",
                 "NI=40,NJ=36,NK=30", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "(float32, 4 bytes per element)" in out and "1152 B/stage" in out


def test_cli_pipeline_and_run_agree_on_dtypes():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    dtype = {name: next(a for a in sub[name]._actions if a.dest == "dtype")
             for name in ("run", "pipeline")}
    assert dtype["run"].default == dtype["pipeline"].default == "float64"
    for choice in dtype["pipeline"].choices:      # run takes every type pipeline does
        assert dtype["run"].type(choice) == choice
    assert dtype["run"].type("float16,C=float32") == {"*": "float16", "C": "float32"}


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


# --------------------------------------------------------------------------------------------
# Pictures: matplotlib only, format from the extension, provenance, determinism
# --------------------------------------------------------------------------------------------

GEMM = str(EXAMPLES / "gemm.py")


def _gemm_dot():
    from polypipe.analysis.dependences import dependences

    return dependences(cli.single_kernel(GEMM).program).to_dot()


@pytest.fixture
def matplotlib_only(monkeypatch):
    """No Graphviz on PATH and no cairosvg: what `pip install -e .` alone gives."""
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "cairosvg", None)   # importing it raises ImportError


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_cli_deps_pictures_with_matplotlib_only(fmt, tmp_path, matplotlib_only):
    out = tmp_path / f"g.{fmt}"
    assert main(["deps", GEMM, "--format", fmt, "-o", str(out)]) == 0
    data = out.read_bytes()
    assert data[:4] == b"\x89PNG" if fmt == "png" else b"<svg" in data
    assert read_provenance(data) == text_sha256(_gemm_dot())


@pytest.mark.parametrize("name, start", [("g.svg", b"<?xml"), ("g.png", b"\x89PNG"),
                                         ("g.dot", b"digraph"), ("g.gv", b"digraph"),
                                         ("g.txt", b"dependences of gemm")])
def test_cli_deps_format_from_the_extension(name, start, tmp_path, matplotlib_only):
    out = tmp_path / name
    assert main(["deps", GEMM, "-o", str(out)]) == 0
    assert out.read_bytes().startswith(start)


@pytest.mark.parametrize("fmt, name", [("text", "g.svg"), ("svg", "g.png"), ("dot", "g.txt"),
                                       ("png", "g.gv")])
def test_cli_deps_rejects_a_format_that_contradicts_the_extension(fmt, name, tmp_path, capsys):
    assert main(["deps", GEMM, "--format", fmt, "-o", str(tmp_path / name)]) == 2
    assert "polypipe: error: --format " + fmt + " contradicts" in capsys.readouterr().err
    assert not (tmp_path / name).exists()


def test_cli_deps_rejects_an_unknown_extension_without_format(tmp_path, capsys):
    assert main(["deps", GEMM, "-o", str(tmp_path / "g.jpeg")]) == 2
    assert "cannot tell the format" in capsys.readouterr().err
    assert main(["deps", GEMM, "--format", "dot", "-o", str(tmp_path / "g.graph")]) == 0
    assert (tmp_path / "g.graph").read_text().startswith("digraph")


def test_svg_output_is_deterministic(matplotlib_only):
    from polypipe.analysis.dependences import dependences

    deps = dependences(cli.single_kernel(GEMM).program)
    first, second = render.render_svg(deps), render.render_svg(deps)
    assert first == second
    assert "<dc:date>" not in first


def test_graphviz_is_preferred_when_on_path(tmp_path, monkeypatch):
    """A `dot` on PATH draws the graph; polypipe embeds its provenance in dot's output too."""
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys, struct, zlib
        sys.stdin.read()
        if sys.argv[1] == "-Tsvg":
            sys.stdout.write('<svg xmlns="http://www.w3.org/2000/svg"><!-- fake dot --></svg>')
        else:
            def chunk(kind, body):
                return (struct.pack(">I", len(body)) + kind + body
                        + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
            ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
            sys.stdout.buffer.write(b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", ihdr)
                                    + chunk(b"IDAT", zlib.compress(b"\\x00\\x00"))
                                    + chunk(b"IEND", b""))
        """))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert render.available_renderer() == "dot"
    svg, png = tmp_path / "g.svg", tmp_path / "g.png"
    assert main(["deps", GEMM, "-o", str(svg)]) == 0
    assert main(["deps", GEMM, "-o", str(png)]) == 0
    assert "fake dot" in svg.read_text()
    assert read_provenance(svg.read_bytes()) == text_sha256(_gemm_dot())
    assert read_provenance(png.read_bytes()) == text_sha256(_gemm_dot())


def _timeline_rows(config="block=32x32,threads=8x8,reduction=8,shared_stages=3",
                   sizes=None):
    from polypipe.gpu_config import parse_config
    from polypipe.optimize import optimize
    from polypipe.timeline import pipeline_timeline

    program = cli.single_kernel(GEMM).program
    kernel = optimize(program, parse_config(config)).kernels[0]
    return kernel, pipeline_timeline(kernel, sizes or {"NI": 40, "NJ": 36, "NK": 30})


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_cli_timeline_with_matplotlib_only(fmt, tmp_path, matplotlib_only, capsys):
    from polypipe.timeline import format_timeline

    out = tmp_path / f"t.{fmt}"
    assert main(["pipeline", GEMM, "--config",
                 "block=32x32,threads=8x8,reduction=8,shared_stages=3", "--size",
                 "NI=40,NJ=36,NK=30", "--timeline", str(out)]) == 0
    assert f"timeline written to {out}" in capsys.readouterr().out
    data = out.read_bytes()
    assert data[:4] == b"\x89PNG" if fmt == "png" else b"<svg" in data
    assert read_provenance(data) == text_sha256(format_timeline(*_timeline_rows()))


def test_timeline_legend_explains_every_box_and_names_the_statement():
    pytest.importorskip("matplotlib")
    from polypipe.timeline import _boxes, format_timeline, timeline_figure

    kernel, rows = _timeline_rows()
    figure = timeline_figure(kernel, rows)
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    joined = "\n".join(legend)
    for piece in ("cp.async.wait_group", "__syncthreads()", "cp.async:", "commit_group",
                  "into registers", "S1 = the update statement C[i, j] += alpha * A[i, k] * "
                  "B[k, j]"):
        assert piece in joined, piece
    boxes = {kind for row in rows for kind, _ in _boxes(kernel, row)}
    assert boxes == {"wait", "barrier", "copy", "commit", "load", "compute"}
    assert len(legend) == len(boxes)
    labels = [t.get_text() for t in figure.axes[0].texts]
    assert "S1 k 0..6" in labels and not any("mma" in t for t in labels + legend)
    assert "mma" not in format_timeline(kernel, rows)


def test_timeline_svg_is_deterministic(matplotlib_only):
    from polypipe.timeline import timeline_picture

    kernel, rows = _timeline_rows()
    assert timeline_picture(kernel, rows, "svg") == timeline_picture(kernel, rows, "svg")


# --------------------------------------------------------------------------------------------
# Bad input: `polypipe: error: ...`, exit status 2, no traceback
# --------------------------------------------------------------------------------------------


def _error(capsys, argv, code=2):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_cli_rejects_a_negative_seed(capsys):
    err = _error(capsys, ["run", GEMM, "--size", "NI=4,NJ=4,NK=4", "--seed", "-1"])
    assert "polypipe: error: argument --seed: -1 is not allowed" in err


def test_random_arguments_reject_a_negative_seed():
    from polypipe.errors import ArgumentError
    from polypipe.inputs import random_arguments

    with pytest.raises(ArgumentError, match="seed -1 must be an integer >= 0"):
        random_arguments(cli.single_kernel(GEMM).program, {"NI": 2, "NJ": 2, "NK": 2}, seed=-1)


@pytest.mark.parametrize("argv", [
    ["run", GEMM, "--size", "NI=4,NJ=4,NK=4", "--dtype", "float8"],
    ["pipeline", GEMM, "--dtype", "complex128"],
    ["run", GEMM, "--repeat", "0"],
    ["demo", "--size", "0"],
    ["demo", "--size", "-5"],
    ["demo", "--size", "ten"],
    ["frobnicate"],
    [],
])
def test_cli_usage_errors_exit_2(argv, capsys):
    err = _error(capsys, argv)
    assert "polypipe: error: " in err


def test_cli_demo_refuses_huge_sizes(capsys):
    assert "is too large" in _error(capsys, ["demo", "--size", "100000"])


@pytest.mark.parametrize("option", ["--timeline", "-o"])
def test_cli_refuses_an_output_in_a_missing_folder(option, tmp_path, capsys):
    target = str(tmp_path / "missing" / "out.svg")
    command = (["pipeline", GEMM, "--config", "shared_stages=2", "--timeline", target]
               if option == "--timeline" else ["deps", GEMM, "-o", target])
    err = _error(capsys, command)
    assert f"polypipe: error: cannot write {target}: the folder" in err and "does not exist" in err


def test_cli_refuses_a_folder_as_output_and_wraps_os_errors(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "g.svg"
    folder.mkdir()
    assert "it is a folder" in _error(capsys, ["deps", GEMM, "-o", str(folder)])

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(render.RenderError, match="cannot write .*Permission denied"):
        render.write_output(str(tmp_path / "g.dot"), "digraph {}")


def test_cli_refuses_a_timeline_of_another_format(capsys):
    assert "must end in .svg or .png" in _error(
        capsys, ["pipeline", GEMM, "--config", "shared_stages=2", "--timeline", "t.pdf"])


def test_cli_pipeline_rejects_missing_sizes(capsys):
    err = _error(capsys, ["pipeline", GEMM, "--config", "shared_stages=2", "--size", "NI=64"])
    assert "polypipe: error: sizes for gemm: missing NJ, NK" in err


def test_cli_pipeline_without_timeline_for_huge_sizes(capsys):
    assert main(["pipeline", GEMM, "--config", "shared_stages=2", "--size",
                 "NI=64,NJ=64,NK=100000000"]) == 0
    assert "no timeline at these sizes: 6250000 reduction tiles" in capsys.readouterr().out
    err = _error(capsys, ["pipeline", GEMM, "--config", "shared_stages=2", "--size",
                          "NI=64,NJ=64,NK=100000000", "--timeline", "never.svg"])
    assert "6250000 reduction tiles at these sizes, more than the 256" in err
    assert not Path("never.svg").exists()


def test_cli_run_refuses_sizes_beyond_physical_memory(capsys):
    err = _error(capsys, ["run", GEMM, "--size", "NI=1000000,NJ=1000000,NK=1000000"])
    assert "need 24,000,000,000,000 bytes" in err and "physical memory" in err


def test_check_memory_counts_the_bytes_of_every_array():
    from polypipe.errors import ArgumentError
    from polypipe.inputs import check_memory

    program = cli.single_kernel(GEMM).program
    sizes = {"NI": 4, "NJ": 5, "NK": 6}       # C 4x5, A 4x6, B 6x5 float64: 592 bytes
    assert check_memory(program, sizes, "float64", limit=592) == 592
    assert check_memory(program, sizes, "float32", limit=296) == 296
    with pytest.raises(ArgumentError, match=r"need 592 bytes \(C 160 bytes, A 192 bytes, "
                                            r"B 240 bytes\); 2 copies"):
        check_memory(program, sizes, "float64", copies=2, limit=1000)


@pytest.mark.parametrize("config, message", [
    ("blocks=8x8", "unknown config item 'blocks'"),
    ("block=64", "two positive integers"),
    ("block=0x8", "two positive integers"),
    ("shared_stages=three", "has a bad value"),
    ("target=sm_70", "has a bad value"),
    ("shared_stages", "must look like NAME=VALUE"),
])
def test_cli_rejects_bad_config_strings(config, message, capsys):
    err = _error(capsys, ["pipeline", GEMM, "--config", config])
    assert "polypipe: error: " in err and message in err


@pytest.mark.parametrize("source, message", [
    ("def f(:\n", "SyntaxError"),
    ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
    ("import sys\nsys.exit(4)\n", "SystemExit: 4"),
    ("import no_such_module_here\n", "ModuleNotFoundError"),
])
def test_cli_reports_files_that_fail_to_import(source, message, tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    err = _error(capsys, ["show", str(bad)])
    assert f"polypipe: error: importing {bad} failed: {message}" in err


def test_cli_reports_internal_errors_with_exit_3(monkeypatch, capsys):
    from polypipe.errors import InternalError

    def broken(target):
        raise InternalError("an invariant broke")

    monkeypatch.setattr(cli, "load_kernels", broken)
    err = _error(capsys, ["show", GEMM], code=3)
    assert err.startswith("polypipe: internal error: an invariant broke")


def test_cli_exit_codes_are_documented():
    for text in (cli.__doc__, (ROOT / "README.md").read_text()):
        assert "polypipe: error:" in text and "polypipe: internal error:" in text
    for code in ("0", "1", "2", "3"):
        assert f"\n    {code}  " in cli.__doc__


def test_cli_pipeline_of_a_scheduled_nest_and_a_file_with_a_dataclass(tmp_path, capsys):
    """A file defining a dataclass imports (it used to fail: the module was not registered);
    a nest mapped from isl's schedule has no buffers to report."""
    source = tmp_path / "sweep.py"
    source.write_text(textwrap.dedent("""\
        from dataclasses import dataclass

        @dataclass
        class Note:
            text: str

        def sweep(tsteps, A, B):
            N = len(A)
            for t in range(tsteps):
                for i in range(1, N - 1):
                    B[i] = 0.5 * (A[i - 1] + A[i + 1])
                for i in range(1, N - 1):
                    A[i] = B[i]
        """))
    assert main(["pipeline", f"{source}:sweep", "--config", "block=16x16,threads=4x4",
                 "--size", "tsteps=2,N=30"]) == 0
    out = capsys.readouterr().out
    assert "launched per value of the host loops (t)" in out
    assert "no buffers and no pipeline" in out
    assert main(["run", f"{source}:sweep", "--size", "tsteps=3,N=30", "--backend", "emulate",
                 "--check"]) == 0


def test_cli_stops_quietly_when_its_reader_goes_away():
    """``polypipe run ... | head -1``: exit status 141 (as for SIGPIPE), nothing on stderr,
    no internal error."""
    child = subprocess.Popen(
        [sys.executable, "-m", "polypipe.cli", "run", str(EXAMPLES / "gemm.py"), "--size",
         "NI=8,NJ=8,NK=8", "--check", "--repeat", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().startswith("gemm: sizes")
    child.stdout.close()
    assert child.wait(timeout=120) == cli.EXIT_BROKEN_PIPE
    assert child.stderr.read() == ""
