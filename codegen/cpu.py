"""Compile generated C with the system compiler and load it with ctypes, cached by source hash.

The cache directory is ``$POLYPIPE_CACHE_DIR`` or ``~/.cache/polypipe``; the compiler is ``$CC``
or the first of ``cc``, ``gcc``, ``clang`` on the PATH, the flags :func:`c_flags`. Compiled libraries are written to a
temporary name and renamed, so concurrent processes never load a half-written file.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from polypipe.errors import CodegenError

# Why each flag (c_flags_text prints this):
# -O3: the vectoriser (loops over independent elements; a reduction's order is kept, since no
#      -ffast-math allows reassociating it); -march=native (where the compiler takes it): the
#      host's vector width, the cache key then names the host (host_id);
# -ffp-contract=off: no fused multiply-adds, so results round as Python's do;
# -fno-strict-aliasing: the same memory may be passed as arrays of two dtypes.
BASE_FLAGS = ("-std=c11", "-fPIC", "-shared", "-ffp-contract=off", "-fno-strict-aliasing", "-w")
SOURCE_ORDER_FLAGS = ("-O2",) + BASE_FLAGS     # before issue 18: kept for the benchmark
_loaded: dict[str, ctypes.CDLL] = {}


@functools.lru_cache(maxsize=None)
def c_flags(compiler: str | None = None) -> tuple[str, ...]:
    """The flags generated C is compiled with: ``-O3 -march=native`` and :data:`BASE_FLAGS`
    (``-march=native`` left out where the compiler rejects it)."""
    compiler = compiler or find_compiler()
    native = ("-march=native",) if _accepts(compiler, "-march=native") else ()
    return ("-O3",) + native + BASE_FLAGS


def _accepts(compiler: str, flag: str) -> bool:
    with tempfile.TemporaryDirectory() as work:
        src = Path(work) / "probe.c"
        src.write_text("int pp_probe(int x) { return x + 1; }\n")
        result = subprocess.run([compiler, flag, "-c", "-o", str(Path(work) / "probe.o"),
                                 str(src)], capture_output=True, text=True)
    return result.returncode == 0


@functools.lru_cache(maxsize=None)
def host_id() -> str:
    """What ``-march=native`` depends on: the machine and its CPU's model and features (a
    library built for one host is not loaded on another that shares the cache)."""
    text = platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            lines = [line for line in info if line.startswith(("model name", "flags",
                                                                "Features", "CPU part"))]
        text += "".join(sorted(set(lines)))
    except OSError:
        text += platform.processor()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def c_flags_text() -> str:
    """The flags and why, for reports."""
    flags = c_flags()
    native = "-march=native" in flags
    return (f"{' '.join(f for f in flags if f not in ('-fPIC', '-shared', '-w'))}: -O3 "
            "vectorises loops over independent elements"
            + (", -march=native for this host's vector width" if native else
               " (the compiler rejects -march=native)")
            + "; -ffp-contract=off and no -ffast-math keep every rounding and every sum's "
            "order Python's")


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


def compile_shared_library(source: str, flags: tuple[str, ...] | None = None) -> Path:
    """Compile ``source`` to a shared library in the cache (or reuse the cached one), with
    ``flags`` or :func:`c_flags`."""
    compiler = find_compiler()
    flags = c_flags(compiler) if flags is None else flags
    key = cache_key(source, compiler, *flags,
                    *((host_id(),) if "-march=native" in flags else ()))
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
                restype=None, flags: tuple[str, ...] | None = None):
    """The ctypes function for ``symbol`` in ``source``, compiled once per process, source and
    flags (default :func:`c_flags`)."""
    library = compile_shared_library(source, flags)
    handle = _loaded.get(str(library))
    if handle is None:
        handle = ctypes.CDLL(str(library))
        _loaded[str(library)] = handle
    function = getattr(handle, symbol)
    function.restype = restype
    function.argtypes = argtypes
    return function
