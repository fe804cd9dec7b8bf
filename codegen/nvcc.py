"""Compile CUDA with nvcc (present on CPU-only machines too) and read its resource usage."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from polypipe.errors import CodegenError

from .cpu import cache_dir, cache_key


@dataclass(frozen=True)
class KernelResources:
    """What ptxas reports for one kernel."""

    name: str
    registers: int
    shared_bytes: int
    stack_bytes: int
    spill_stores: int
    spill_loads: int


def find_nvcc() -> str | None:
    return shutil.which("nvcc")


def compile_cubin(source: str, arch: str = "sm_90") -> tuple[Path, list[KernelResources]]:
    """Compile to a cubin for ``arch``; returns its path and each kernel's resources."""
    out, messages = _nvcc(source, arch, "cubin", ["--resource-usage"])
    return out, parse_resource_usage(messages)


def compile_ptx(source: str, arch: str = "sm_90") -> str:
    """The PTX nvcc makes of ``source`` (to inspect the instructions a kernel uses)."""
    out, _ = _nvcc(source, arch, "ptx", [])
    return out.read_text()


def _nvcc(source: str, arch: str, kind: str, options: list[str]) -> tuple[Path, str]:
    """Run nvcc once per (source, arch, kind); returns the output path and its messages."""
    nvcc = find_nvcc()
    if nvcc is None:
        raise CodegenError("nvcc not found: install the CUDA toolkit to compile CUDA kernels")
    key = cache_key(arch, source)
    out = cache_dir() / f"pp_{key}_{arch}.{kind}"
    with tempfile.TemporaryDirectory(dir=cache_dir()) as work:
        src = Path(work) / "kernel.cu"
        src.write_text(source)
        result = subprocess.run(
            [nvcc, f"-arch={arch}", f"-{kind}", "-O3", *options, "-o",
             str(Path(work) / f"kernel.{kind}"), str(src)], capture_output=True, text=True)
        if result.returncode != 0:
            raise CodegenError(f"nvcc rejected the generated CUDA ({arch}):\n"
                               f"{_with_lines(result.stderr, source)}")
        shutil.move(str(Path(work) / f"kernel.{kind}"), out)
    return out, result.stdout + result.stderr


def _with_lines(errors: str, source: str) -> str:
    """nvcc's messages, each followed by the generated source line it points at."""
    lines = source.splitlines()
    shown = []
    for message in errors.strip().splitlines():
        shown.append(message)
        match = re.search(r"\((\d+)\):", message)
        if match and 0 < int(match.group(1)) <= len(lines):
            shown.append(f"    > {lines[int(match.group(1)) - 1].strip()}")
    return "\n".join(shown)


_FUNCTION = re.compile(r"Compiling entry function '([^']+)'|Function properties for (\S+)")
_USED = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def parse_resource_usage(text: str) -> list[KernelResources]:
    """Registers, shared memory, stack and spills per kernel from ``--resource-usage``."""
    kernels: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        function = _FUNCTION.search(line)
        if function:
            current = function.group(1) or function.group(2)
            kernels.setdefault(current, {"registers": 0, "shared": 0, "stack": 0,
                                         "stores": 0, "loads": 0})
            continue
        if current is None:
            continue
        used = _USED.search(line)
        if used:
            kernels[current]["registers"] = int(used.group(1))
            kernels[current]["shared"] = int(used.group(2) or 0)
        frame = _FRAME.search(line)
        if frame:
            kernels[current].update(stack=int(frame.group(1)), stores=int(frame.group(2)),
                                    loads=int(frame.group(3)))
    return [KernelResources(name, k["registers"], k["shared"], k["stack"], k["stores"],
                            k["loads"]) for name, k in kernels.items()]
