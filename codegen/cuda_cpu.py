"""Compile and run a CUDA translation unit on the CPU, with GPU semantics and checks.

The text the CUDA printer writes (``codegen.cuda_device.DEVICE_PRELUDE`` and kernels using
its interface) is compiled unchanged with the system C++ compiler and ``-DPP_CPU``; the
prelude then includes ``pp_cuda_cpu.h``, whose definitions call the runtime in
``pp_cuda_cpu.cpp``, ``pp_cuda_cpu_check.cpp`` and ``pp_cuda_cpu_warp.cpp``. The runtime is
compiled once per flavour (plain, or AddressSanitizer) into a shared library in polypipe's
cache directory; each kernel library links against it, so a kernel's compile parses only the
small header.

A launch runs blocks one after another and each block's threads as fibers, switching only at
``__syncthreads()`` (thread order per barrier interval: seeded permutation, forward or
reverse). Warp collectives (``pp_ldmatrix_*``, ``pp_mma_m16n8k16_*``; a warp is 32
consecutive linear thread ids) are a second, warp-wide switch: each lane deposits its inputs
(an ldmatrix lane reads its 16-byte shared row through the checks, as itself) and waits;
when all 32 lanes of the warp wait at the same collective they resume within the same
barrier interval and each computes its own registers from all lanes' deposits by the PTX
layouts (mma: exact products summed in float32 in k order from C, so the GPU agrees within K
roundings, not bit for bit). Reported as :class:`CudaCpuError` (the first error stops the
launch; the failing access is never made): out-of-bounds accesses, misaligned 16-byte and
cp.async accesses, accesses of one element by two threads of a block in one barrier interval
with a write ("missing barrier") or by two blocks with a write, reads of cp.async
destinations not yet covered by a wait ("missing wait"), divergent barriers, warps whose
lanes do not all execute the same collective (or a partial warp executing one), ldmatrix
rows misaligned or outside shared memory, shared memory beyond the static limit or the
launch's dynamic bytes, and faults inside a fiber (stack overflow). Shared memory and fiber
stacks start as 0xFF bytes (NaN), so reads of never-written data show in the results.

The kernel runs on copies of the global arrays, each mapped between two inaccessible pages at
the caller's address modulo the page size (so alignment is the caller's), with pointer
parameters translated; the copies are written back when the launch ends, also after an error.
So no array has a neighbour an overrun could reach, and an access that bypassed the checks
faults (reported) instead of corrupting the process. Shadow memory costs about 76 bytes per
global element and 52 per shared element.

With ``sanitize="address"`` the kernel and runtime are built with AddressSanitizer, which
also catches out-of-bounds register (local) arrays. Python can load such a library only with
libasan preloaded: ``LD_PRELOAD=$(g++ -print-file-name=libasan.so)
ASAN_OPTIONS=detect_leaks=0``.
"""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polypipe.errors import KernelRuntimeError

from .cpu import cache_dir, cache_key, first_on_path

RUNTIME_DIR = Path(__file__).resolve().parent
RUNTIME_SOURCES = ("pp_cuda_cpu.cpp", "pp_cuda_cpu_check.cpp", "pp_cuda_cpu_warp.cpp")
RUNTIME_HEADERS = ("pp_cuda_cpu.h", "pp_cuda_cpu_rt.h")
RUNTIME_FLAGS = ("-std=c++17", "-O2", "-fPIC", "-shared", "-pthread", "-fno-strict-aliasing")
# -O1: fast compiles; -ffp-contract=off: no fused multiply-adds, so results round as NumPy's
# do; -fno-strict-aliasing: the same memory may be passed as arrays of two dtypes;
# -fstack-clash-protection: a frame larger than a page is probed page by page, so that a
# stack overflow meets the guard page below the fiber's stack instead of another stack.
KERNEL_FLAGS = ("-std=c++17", "-O1", "-fPIC", "-shared", "-DPP_CPU", "-ffp-contract=off",
                "-fno-strict-aliasing", "-fstack-clash-protection", "-w")
SANITIZE_FLAGS = {None: (), "address": ("-fsanitize=address", "-fno-omit-frame-pointer", "-g")}
ORDERS = {"scrambled": 0, "forward": 1, "reverse": 2}
REPORT_BYTES = 16384

_KERNEL = re.compile(r"__global__\s+void\s+(?:__launch_bounds__\s*\([^()]*\)\s*)?"
                     r"([A-Za-z_]\w*)\s*\(")
_loaded: dict[tuple[str, str | None], "CudaCpuModule"] = {}


class CudaCpuError(KernelRuntimeError):
    """A CUDA translation unit failed to compile for the CPU, or a launch met an error."""


@dataclass(frozen=True)
class GlobalArray:
    """An array argument of a launch, for the runtime's registry and its messages."""

    name: str
    address: int
    nbytes: int
    itemsize: int

    @classmethod
    def of(cls, name: str, array: np.ndarray) -> "GlobalArray":
        return cls(name, int(array.ctypes.data), int(array.nbytes), int(array.itemsize))


class _ArrayDesc(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("address", ctypes.c_uint64),
                ("nbytes", ctypes.c_uint64), ("itemsize", ctypes.c_uint64)]


class _LaunchDesc(ctypes.Structure):  # pp_launch_desc in pp_cuda_cpu.h
    _fields_ = [("grid", ctypes.c_uint32 * 3), ("block", ctypes.c_uint32 * 3),
                ("dynamic_shared", ctypes.c_uint64), ("order", ctypes.c_int32),
                ("reserved", ctypes.c_int32), ("seed", ctypes.c_uint64),
                ("n_arrays", ctypes.c_uint64), ("arrays", ctypes.POINTER(_ArrayDesc)),
                ("report", ctypes.c_char_p), ("report_size", ctypes.c_uint64)]


def find_cxx() -> str:
    found, candidates = first_on_path("CXX", ["g++", "c++", "clang++"])
    if found:
        return found
    raise CudaCpuError("no C++ compiler found (looked for " + ", ".join(candidates) + "): the "
                       "CPU CUDA runtime compiles CUDA as C++17; install g++ or set CXX")


def asan_library() -> str | None:
    """The path of libasan for LD_PRELOAD, or None when the compiler has none."""
    try:
        found = subprocess.run([find_cxx(), "-print-file-name=libasan.so"],
                               capture_output=True, text=True).stdout.strip()
    except (CudaCpuError, OSError):
        return None
    return found if os.path.isabs(found) and os.path.exists(found) else None


def _asan_loaded() -> bool:
    try:
        return "libasan" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def _compiler_env() -> dict:
    # A test process runs with libasan preloaded; the compiler must not.
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def _first_errors(stderr: str, count: int = 12) -> str:
    lines = stderr.strip().splitlines()
    start = next((k for k, line in enumerate(lines) if "error" in line), 0)
    return "\n".join(lines[start:start + count])


def _build(compiler: str, arguments: list[str], out: Path, what: str) -> None:
    """Compile into ``out`` through a temporary name, so that no process loads half a file."""
    with tempfile.TemporaryDirectory(dir=out.parent) as work:
        temporary = Path(work) / out.name
        result = subprocess.run([compiler, *arguments, "-o", str(temporary)], cwd=work,
                                capture_output=True, text=True, env=_compiler_env())
        if result.returncode != 0:
            raise CudaCpuError(f"the C++ compiler ({compiler}) rejected {what}:\n"
                               f"{_first_errors(result.stderr)}")
        os.replace(temporary, out)


def runtime_library(sanitize: str | None = None) -> Path:
    """The runtime's shared library for this flavour, compiled once into the cache."""
    compiler = find_cxx()
    flags = [*RUNTIME_FLAGS, *SANITIZE_FLAGS[sanitize]]
    texts = [(RUNTIME_DIR / name).read_text() for name in RUNTIME_SOURCES + RUNTIME_HEADERS]
    library = cache_dir() / f"pp_cudacpu_rt_{cache_key(compiler, *flags, *texts)}.so"
    if not library.exists():
        sources = [str(RUNTIME_DIR / name) for name in RUNTIME_SOURCES]
        _build(compiler, [*flags, f"-Wl,-soname,{library.name}", *sources], library,
               "the CPU CUDA runtime")
    return library


def kernel_names(source: str) -> list[str]:
    """The ``__global__`` functions of a translation unit, in order."""
    return list(dict.fromkeys(_KERNEL.findall(source)))


def _launcher(kernels: list[str]) -> str:
    """The file compiled with the translation unit: per kernel, a launcher that unpacks
    cuLaunchKernel-style parameters by the kernel's own types, and its signature."""
    lines = ['#include "kernel.cu"']
    for name in kernels:
        lines.append(f'extern "C" int pp_launch_{name}(const pp_launch_desc *desc, void **args)'
                     f" {{ return pp_cpu::launch({name}, desc, args); }}")
        lines.append(f'extern "C" const char *pp_signature_{name}() '
                     f"{{ return pp_cpu::signature({name}); }}")
    return "\n".join(lines) + "\n"


def compile_library(source: str, *, sanitize: str | None = None) -> tuple[Path, list[str]]:
    """Compile a CUDA translation unit (unchanged) into a cached library, without loading it
    (a process without libasan preloaded may build the AddressSanitizer flavour this way);
    returns its path and its kernels."""
    if sanitize not in SANITIZE_FLAGS:
        raise CudaCpuError(f"sanitize={sanitize!r}: expected None or 'address'")
    kernels = kernel_names(source)
    if not kernels:
        raise CudaCpuError("the translation unit has no __global__ function")
    runtime = runtime_library(sanitize)
    compiler = find_cxx()
    flags = [*KERNEL_FLAGS, *SANITIZE_FLAGS[sanitize], f"-I{RUNTIME_DIR}"]
    library = cache_dir() / f"pp_cudacpu_{cache_key(source, runtime.name, compiler, *flags)}.so"
    if not library.exists():
        with tempfile.TemporaryDirectory(dir=cache_dir()) as work:
            (Path(work) / "kernel.cu").write_text(source)
            (Path(work) / "launch.cpp").write_text(_launcher(kernels))
            _build(compiler, [*flags, str(Path(work) / "launch.cpp"), str(runtime),
                              "-Wl,-rpath,$ORIGIN", "-lm"], library, "the CUDA translation unit")
    return library, kernels


def compile_cuda_cpu(source: str, *, sanitize: str | None = None) -> "CudaCpuModule":
    """Compile a CUDA translation unit (unchanged) for the CPU runtime and load it; cached on
    disk by a hash of the source, the runtime's sources and the flags, and per process."""
    library, kernels = compile_library(source, sanitize=sanitize)
    module = _loaded.get((str(library), sanitize))
    if module is None:
        module = _loaded[(str(library), sanitize)] = CudaCpuModule(library, kernels, sanitize)
    return module


class CudaCpuModule:
    """A compiled translation unit; ``launch`` runs one of its kernels."""

    def __init__(self, library: Path, kernels: list[str], sanitize: str | None):
        if sanitize == "address" and not _asan_loaded():
            raise CudaCpuError(
                "sanitize='address': Python can load an AddressSanitizer library only with "
                "libasan preloaded; run it as LD_PRELOAD=$(g++ -print-file-name=libasan.so) "
                "ASAN_OPTIONS=detect_leaks=0 python ...")
        self.path = library
        self.kernels = tuple(kernels)
        self._library = ctypes.CDLL(str(library))
        self._signatures: dict[str, list[tuple[str, int]]] = {}

    def signature(self, kernel: str) -> list[tuple[str, int]]:
        """(kind, bytes) per parameter: kind ``p`` pointer, ``i`` integer, ``f`` floating."""
        if kernel not in self.kernels:
            raise CudaCpuError(f"no kernel {kernel!r} in the translation unit (it has "
                               f"{', '.join(self.kernels)})")
        if kernel not in self._signatures:
            function = getattr(self._library, f"pp_signature_{kernel}")
            function.restype = ctypes.c_char_p
            text = function().decode()
            half = len(text) // 2
            self._signatures[kernel] = [(k, int(s)) for k, s in zip(text[:half], text[half:])]
        return self._signatures[kernel]

    def launch(self, kernel: str, *, grid: tuple[int, int, int], block: tuple[int, int, int],
               dynamic_shared: int, parameters: list, arrays: list[GlobalArray],
               order: str = "scrambled", seed: int = 0) -> None:
        """Run one launch; raises CudaCpuError with the runtime's report on the first error."""
        storage = _pack(kernel, self.signature(kernel), parameters)
        args = (ctypes.c_void_p * max(len(storage), 1))(
            *[ctypes.cast(ctypes.pointer(value), ctypes.c_void_p) for value in storage])
        names = [ctypes.c_char_p(a.name.encode()) for a in arrays]
        table = (_ArrayDesc * max(len(arrays), 1))(
            *[_ArrayDesc(name, a.address, a.nbytes, a.itemsize) for name, a in zip(names, arrays)])
        report = ctypes.create_string_buffer(REPORT_BYTES)
        desc = _LaunchDesc()
        desc.grid[:] = _dims("grid", grid)
        desc.block[:] = _dims("block", block)
        if not isinstance(dynamic_shared, (int, np.integer)) or dynamic_shared < 0:
            raise CudaCpuError(f"dynamic_shared={dynamic_shared!r}: expected a byte count >= 0")
        if order not in ORDERS:
            raise CudaCpuError(f"order={order!r}: expected one of {', '.join(ORDERS)}")
        desc.dynamic_shared, desc.order = int(dynamic_shared), ORDERS[order]
        desc.seed = int(seed) % 2**64
        desc.n_arrays, desc.arrays = len(arrays), table
        desc.report = ctypes.cast(report, ctypes.c_char_p)
        desc.report_size = REPORT_BYTES
        function = getattr(self._library, f"pp_launch_{kernel}")
        function.argtypes = [ctypes.POINTER(_LaunchDesc), ctypes.c_void_p]
        function.restype = ctypes.c_int
        if function(ctypes.byref(desc), args):
            raise CudaCpuError(f"{kernel}: {report.value.decode(errors='replace')}")


def _dims(what: str, dims) -> list[int]:
    values = list(dims)
    if len(values) != 3 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in values):
        raise CudaCpuError(f"{what}={tuple(dims)!r}: expected three positive integers")
    if any(v >= 2**32 for v in values):
        raise CudaCpuError(f"{what}={tuple(dims)!r}: a dimension is too large")
    return [int(v) for v in values]


_CTYPES = {("p", 8): ctypes.c_uint64, ("i", 8): ctypes.c_int64, ("i", 4): ctypes.c_int32,
           ("i", 2): ctypes.c_int16, ("i", 1): ctypes.c_int8, ("f", 8): ctypes.c_double,
           ("f", 4): ctypes.c_float}
_NUMPY_KINDS = {"p": (np.unsignedinteger, "np.uintp"), "i": (np.integer, "a NumPy integer"),
                "f": (np.floating, "a NumPy float")}


def _pack(kernel: str, signature: list[tuple[str, int]], parameters: list) -> list:
    """One ctypes value per kernel parameter, checked as the GPU's ABI would need it: the
    value's NumPy type must be of the parameter's kind and size (PyCUDA passes the bytes of
    the NumPy scalar: a wrong size is a wrong argument on the GPU too)."""
    if len(parameters) != len(signature):
        raise CudaCpuError(f"{kernel} takes {len(signature)} parameters but the launch passes "
                           f"{len(parameters)}")
    storage = []
    for index, ((kind, size), value) in enumerate(zip(signature, parameters)):
        expected, spelled = _NUMPY_KINDS[kind]
        if not isinstance(value, np.generic) or not isinstance(value, expected) or (
                value.dtype.itemsize != size):
            raise CudaCpuError(f"{kernel}: parameter {index} is a {size}-byte "
                               f"{ {'p': 'pointer', 'i': 'integer', 'f': 'floating'}[kind]} "
                               f"and takes {spelled} of {size} bytes, but the launch passes "
                               f"{type(value).__name__} {value!r}")
        ctype = _CTYPES.get((kind, size))
        if ctype is None:
            raise CudaCpuError(f"{kernel}: parameter {index} has an unsupported type "
                               f"({kind}, {size} bytes)")
        storage.append(ctype(value.item()))
    return storage
