"""Every code block of README.md runs as written.

* Each fenced ```python block runs in a fresh interpreter, in a temporary folder holding a copy
  of ``examples/`` (so paths such as ``examples/gemm.py`` work and nothing is written into the
  checkout).
* Each indented command block is split into commands (``\\`` continues a line, ``#`` starts a
  comment); every ``polypipe ...`` command runs through ``python -m polypipe.cli`` in such a
  folder and must exit 0 without a traceback. The only commands skipped are the two set-up
  commands that create a virtual environment (``python3 -m venv .venv && ...``): they install
  the package and, for the second one, run this whole suite. Any other command is an error
  here, so a new kind of command in the README must be taught to this test.

The README's statement of the stage limits is checked against the code as well.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SETUP_PREFIX = "python3 -m venv"


def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, code, first line number) of every fenced block."""
    blocks, language, lines, start = [], None, [], 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if language is None:
                language, lines, start = line[3:].strip(), [], number + 1
            else:
                blocks.append((language, "\n".join(lines) + "\n", start))
                language = None
        elif language is not None:
            lines.append(line)
    assert language is None, "README.md has an unclosed ``` block"
    return blocks


def indented_commands(text: str) -> list[tuple[str, int]]:
    """(command, line number) of every command in the indented (4-space) code blocks.

    A block starts after a blank line outside fenced blocks and list items; lines ending in
    a backslash continue on the next line.
    """
    commands: list[tuple[str, int]] = []
    in_fence = False
    previous_blank = True
    in_block = False
    pending, pending_line = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_fence = not in_fence
            previous_blank = in_block = False
            continue
        if in_fence:
            continue
        if line.startswith("    ") and (in_block or previous_blank) and line.strip():
            in_block = True
            piece = line.strip()
            if not pending:
                pending_line = number
            if piece.endswith("\\"):
                pending += piece[:-1] + " "
                continue
            commands.append((pending + piece, pending_line))
            pending = ""
        elif line.strip():
            in_block = False
        previous_blank = not line.strip()
    assert not pending, f"README.md line {pending_line}: a command ends with a backslash"
    return commands


TEXT = README.read_text(encoding="utf-8")
PYTHON_BLOCKS = [(code, line) for language, code, line in fenced_blocks(TEXT)
                 if language == "python"]
COMMANDS = indented_commands(TEXT)


def test_the_readme_has_the_blocks_this_test_expects():
    languages = {language for language, _, _ in fenced_blocks(TEXT)}
    assert languages <= {"python", ""}, f"teach tests/test_readme.py to run {languages}"
    assert len(PYTHON_BLOCKS) >= 2
    setups = [c for c, _ in COMMANDS if c.startswith(SETUP_PREFIX)]
    assert len(setups) == 2, setups
    assert sum(1 for c, _ in COMMANDS if c.startswith("polypipe ")) >= 6


@pytest.fixture
def workdir(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


@pytest.mark.parametrize("code, line", PYTHON_BLOCKS,
                         ids=[f"line{line}" for _, line in PYTHON_BLOCKS])
def test_python_block_runs(code, line, workdir):
    script = workdir / f"readme_line{line}.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], cwd=workdir, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, (f"README.md line {line}: the python block failed\n"
                                    f"{result.stdout}\n{result.stderr}")


def _argv(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    assert words, command
    if words[0] in ("polypipe", ".venv/bin/polypipe"):
        return [sys.executable, "-m", "polypipe.cli", *words[1:]]
    raise AssertionError(f"README command {command!r} is not a polypipe command: teach "
                         "tests/test_readme.py how to run it")


RUNNABLE = [(c, line) for c, line in COMMANDS if not c.startswith(SETUP_PREFIX)]


def test_commands_run_in_order(tmp_path):
    """Every README command, in the README's order, in one directory, as a reader typing them
    would: a command may use a file an earlier one wrote (`cuda -o gemm.cu`, then `run --cuda
    gemm.cu`). One test, so that parallel workers cannot split the sequence."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    for command, line in RUNNABLE:
        result = subprocess.run(_argv(command), cwd=tmp_path, capture_output=True, text=True,
                                timeout=300)
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "Traceback" not in output, (
            f"README.md line {line}: `{command}` failed ({result.returncode})\n{output}")
        for target in re.findall(r"(?:-o|--timeline)\s+(\S+)", command):
            assert (tmp_path / target).stat().st_size > 0, f"{command} wrote no {target}"


def test_readme_stage_limits_match_the_code():
    """The README's statement of the shared-stage limits is what max_stages computes."""
    from polypipe.analysis.pipeline_check import check_buffers, max_stages, tile_trip_count
    from polypipe.gpu_config import A100, H100, GpuConfig
    from polypipe.kernel import kernel
    from polypipe.optimize import optimize

    assert f"{H100.shared_bytes // 1024} KiB on `{H100.name}`" in TEXT
    assert f"{A100.shared_bytes // 1024} KiB on `{A100.name}`" in TEXT
    assert f"more threads than the target allows ({H100.max_threads})" in TEXT
    assert "a reduction shorter than the pipeline\n  (even empty) runs correctly" in TEXT

    def gemm(alpha, beta, C, A, B):
        NI, NJ = C.shape
        NK = A.shape[1]
        for i in range(NI):
            for j in range(NJ):
                C[i, j] *= beta
            for k in range(NK):
                for j in range(NJ):
                    C[i, j] += alpha * A[i, k] * B[k, j]

    program = kernel(gemm).program
    config = GpuConfig(block=(32, 32), threads=(8, 8), reduction=8, shared_stages=2)
    gpu = optimize(program, config).kernels[0]
    sizes = {"NI": 40, "NJ": 36, "NK": 30}
    assert tile_trip_count(gpu, sizes) == 4
    assert max_stages(gpu, 8, sizes) == (5, "trip count: 4 reduction tile(s) of 8 at these sizes")
    per_stage = sum(v.bytes_per_stage for v in check_buffers(gpu, 8))
    limit, why = max_stages(gpu, 8, {"NI": 40, "NJ": 36, "NK": 30000})
    assert limit == H100.shared_bytes // per_stage and why.startswith("shared memory")
