"""Compile generated C with the system compiler and load it with ctypes, cached by source hash.

The cache directory is ``$POLYPIPE_CACHE_DIR`` or ``~/.cache/polypipe``; the compiler is ``$CC``
or the first of ``cc``, ``gcc``, ``clang`` on the PATH. Compiled libraries are written to a
temporary name and renamed, so concurrent processes never load a half-written file.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from polypipe.errors import CodegenError

# -ffp-contract=off: no fused multiply-adds, so results round as Python's do;
# -fno-strict-aliasing: the same memory may be passed as arrays of two dtypes.
C_FLAGS = ("-O2", "-std=c11", "-fPIC", "-shared", "-ffp-contract=off", "-fno-strict-aliasing",
           "-w")
_loaded: dict[str, ctypes.CDLL] = {}


def cache_key(*parts: str) -> str:
    """The file-name key of a cached build: a hash of everything that determines it."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def cache_dir() -> Path:
    root = os.environ.get("POLYPIPE_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "polypipe")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def first_on_path(variable: str, defaults: list[str]) -> tuple[str | None, list[str]]:
    """The program ``$variable`` names, else the first of ``defaults`` on PATH (None if
    none is), and the candidates looked for."""
    candidates = [os.environ[variable]] if os.environ.get(variable) else defaults
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found, candidates
    return None, candidates


def find_compiler() -> str:
    found, candidates = first_on_path("CC", ["cc", "gcc", "clang"])
    if found:
        return found
    raise CodegenError(
        "no C compiler found (looked for " + ", ".join(candidates) + "); the CPU backend "
        "compiles generated C: install gcc or clang, or set CC to a compiler's path")


def compile_shared_library(source: str, flags: tuple[str, ...] = C_FLAGS) -> Path:
    """Compile ``source`` to a shared library in the cache (or reuse the cached one)."""
    compiler = find_compiler()
    key = cache_key(source, compiler, *flags)
    directory = cache_dir()
    library = directory / f"pp_{key}.so"
    if library.exists():
        return library
    with tempfile.TemporaryDirectory(dir=directory) as work:
        src = Path(work) / "kernel.c"
        src.write_text(source)
        out = Path(work) / "kernel.so"
        result = subprocess.run([compiler, *flags, "-o", str(out), str(src), "-lm"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise CodegenError(f"the C compiler ({compiler}) rejected the generated code:\n"
                               f"{result.stderr.strip()}\n--- generated source ---\n{source}")
        os.replace(out, library)
    return library


KERNEL_ARGTYPES = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


def load_kernel(source: str, symbol: str = "pp_kernel", argtypes=KERNEL_ARGTYPES,
                restype=None):
    """The ctypes function for ``symbol`` in ``source``, compiled once per process and source."""
    library = compile_shared_library(source)
    handle = _loaded.get(str(library))
    if handle is None:
        handle = ctypes.CDLL(str(library))
        _loaded[str(library)] = handle
    function = getattr(handle, symbol)
    function.restype = restype
    function.argtypes = argtypes
    return function
