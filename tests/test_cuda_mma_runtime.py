"""Tensor cores in the device interface (ldmatrix, mma.sync m16n8k16) on the CPU runtime's warp
collectives: every lane's ldmatrix registers against polypipe.gpu_mma's isl maps, mma tiles
against NumPy (bit for bit against the runtime's documented float32 k-order sum, within a
K-based bound against float64 and gpu_mma.warp_mma), wrong lane mappings giving wrong
results, and the reports of warps that diverge, partial warps and bad ldmatrix rows; the same
text compiled by nvcc for sm_80 and sm_90 has HMMA and LDSM instructions."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from polypipe.codegen.cuda_cpu import CudaCpuError, GlobalArray, compile_cuda_cpu
from polypipe.codegen.nvcc import compile_cubin, find_nvcc
from polypipe.codegen.sass import disassemble, find_nvdisasm
from polypipe.gpu_mma import WARP, fragment_map, ldmatrix_map, points, warp_mma
from tests.test_cuda_cpu import pointer
from tests.test_cuda_cpu import source as fixture_source

FIXTURE = Path(__file__).parent / "cuda_cpu" / "mma.cu"
ORDERS = ("scrambled", "forward", "reverse")

needs_cxx = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
    reason="no C++ compiler: the CPU CUDA runtime compiles CUDA as C++17")
needs_nvcc = pytest.mark.skipif(find_nvcc() is None or find_nvdisasm() is None,
                                reason="nvcc or nvdisasm not installed")


def source(replacements: dict[str, str] | None = None) -> str:
    """The fixture's translation unit, each replaced text occurring exactly once."""
    return fixture_source(FIXTURE.name, replacements)


# ---- data and references -------------------------------------------------------------------
def sixteen_bit(dtype: str):
    if dtype == "f16":
        return np.float16
    return pytest.importorskip("ml_dtypes").bfloat16


def operands(dtype: str, M: int, N: int, K: int, seed: int = 0):
    """Random A (M x K), B (K x N) of the 16-bit type, and C (M x N) float32; A includes
    zeros, negative zeros and (for f16) subnormals, so that the widening is tested too."""
    rng = np.random.default_rng(seed)
    kind = sixteen_bit(dtype)
    A = rng.standard_normal((M, K)).astype(kind)
    B = rng.standard_normal((K, N)).astype(kind)
    A[0, :4] = np.array([0.0, -0.0, 2.0**-20, -(2.0**-18)], dtype=np.float32).astype(kind)
    C = rng.standard_normal((M, N)).astype(np.float32)
    return A, B, C


def sequential(A, B, C) -> np.ndarray:
    """The CPU runtime's documented semantics: exact float32 products summed in float32 in k
    order, starting from C (across mma steps too: each continues the sum)."""
    A32, B32 = A.astype(np.float32), B.astype(np.float32)
    acc = C.astype(np.float32).copy()
    for k in range(A.shape[1]):
        acc = acc + A32[:, k:k + 1] * B32[k:k + 1, :]
    return acc


def bound(A, B, C) -> np.ndarray:
    """|D - (A B + C)| for a sum of K + 1 terms in float32, each rounding at most 2^-24."""
    K = A.shape[1]
    magnitude = np.abs(A.astype(np.float64)) @ np.abs(B.astype(np.float64)) + np.abs(C)
    return (K + 1) * 2.0**-24 * magnitude * 1.01 + 1e-30


def exact(A, B, C) -> np.ndarray:
    return A.astype(np.float64) @ B.astype(np.float64) + C.astype(np.float64)


def run_mma(module, dtype: str, A, B, C, *, threads: int | None = None, order="scrambled",
            seed=0) -> np.ndarray:
    (M, K), N = A.shape, B.shape[1]
    D = np.full((M, N), np.nan, np.float32)
    a, b = np.ascontiguousarray(A).view(np.uint16), np.ascontiguousarray(B).view(np.uint16)
    threads = threads or 32 * (M // 16) * (N // 8)
    module.launch(f"mma_{dtype}", grid=(1, 1, 1), block=(threads, 1, 1), dynamic_shared=0,
                  parameters=[pointer(D), pointer(a), pointer(b), pointer(C), np.int64(M),
                              np.int64(N), np.int64(K)],
                  arrays=[GlobalArray.of("pp_a_D", D), GlobalArray.of("pp_a_A", a),
                          GlobalArray.of("pp_a_B", b), GlobalArray.of("pp_a_C", C)],
                  order=order, seed=seed)
    return D


def fragments(operand: str, tile: np.ndarray, elements: int) -> np.ndarray:
    """The warp's registers of a tile by the PTX layout: values[lane, i]."""
    values = np.zeros((WARP, elements), np.float32)
    for (lane, i), (row, col) in points(fragment_map(operand)):
        values[lane, i] = tile[row, col]
    return values


# ---- ldmatrix ------------------------------------------------------------------------------
@needs_cxx
def test_ldmatrix_registers_follow_the_isl_map():
    """Two warps, each its own 32 rows; every lane's every register half against the map."""
    module = compile_cuda_cpu(source())
    S = (np.arange(512, dtype=np.uint16) * 37 + 5).astype(np.uint16)  # distinct values
    for matrices in (1, 2, 4):
        for trans in (False, True):
            R = np.zeros(64 * 4, np.uint32)
            module.launch("ldmatrix_lanes", grid=(1, 1, 1), block=(64, 1, 1), dynamic_shared=0,
                          parameters=[pointer(R), pointer(S), np.int64(matrices + 8 * trans)],
                          arrays=[GlobalArray.of("pp_a_R", R), GlobalArray.of("pp_a_S_in", S)])
            expected = np.zeros_like(R)
            for (lane, i), (j, row, col) in points(ldmatrix_map(matrices, trans)):
                for warp in range(2):
                    half = int(S[warp * 256 + (8 * j + row) * 8 + col])
                    expected[(warp * 32 + lane) * 4 + i // 2] |= half << (16 * (i % 2))
            assert np.array_equal(R, expected), (matrices, trans)


# ---- mma -----------------------------------------------------------------------------------
@needs_cxx
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_one_mma_of_ldmatrix_fragments(dtype):
    A, B, C = operands(dtype, 16, 8, 16)
    D = run_mma(compile_cuda_cpu(source()), dtype, A, B, C)
    assert np.array_equal(D, sequential(A, B, C))       # bit for bit: the widening is exact
    assert (np.abs(D - exact(A, B, C)) <= bound(A, B, C)).all()
    # gpu_mma's reference, fed the fragments the PTX layouts give each lane
    d = warp_mma(fragments("a", A.astype(np.float32), 8),
                 fragments("b", B.astype(np.float32), 4), fragments("c", C, 4))
    assert (np.abs(d - fragments("c", D, 4)) <= fragments("c", 2 * bound(A, B, C), 4)).all()


@needs_cxx
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_four_warps_with_a_k_loop(dtype):
    """4 warps (2 x 2 tiles of 16 x 8), K = 64: four mma accumulating per warp, under every
    thread order."""
    A, B, C = operands(dtype, 32, 16, 64, seed=1)
    module = compile_cuda_cpu(source())
    for order in ORDERS:
        D = run_mma(module, dtype, A, B, C, order=order, seed=3)
        assert np.array_equal(D, sequential(A, B, C)), order
        assert (np.abs(D - exact(A, B, C)) <= bound(A, B, C)).all()


WRONG_MAPPINGS = {
    "registers swapped": {"/* MUTATE registers */": "{ uint32_t s = a[1]; a[1] = a[2]; a[2] = s; }"},
    "piece order": {"8 * (j % 2) + r) * K + k0 + 8 * (j / 2)]);":
                    "8 * (j / 2) + r) * K + k0 + 8 * (j % 2)]);"},
    "B not transposed": {"pp_ldmatrix_x2_trans(b,": "pp_ldmatrix_x2(b,"},
    "B halves swapped": {"/* MUTATE registers */": "{ uint32_t s = b[0]; b[0] = b[1]; b[1] = s; }"},
}


@needs_cxx
@pytest.mark.parametrize("mutation", list(WRONG_MAPPINGS))
def test_a_wrong_lane_mapping_gives_a_wrong_result(mutation):
    A, B, C = operands("f16", 32, 16, 32, seed=2)
    D = run_mma(compile_cuda_cpu(source(WRONG_MAPPINGS[mutation])), "f16", A, B, C)
    assert not np.isnan(D).any()
    assert (np.abs(D - exact(A, B, C)) > bound(A, B, C)).mean() > 0.25


# ---- reports -------------------------------------------------------------------------------
def reported(replacements: dict[str, str], *, M=16, N=8, K=16, threads=None,
             order="scrambled") -> str:
    A, B, C = operands("f16", M, N, K)
    module = compile_cuda_cpu(source(replacements))
    with pytest.raises(CudaCpuError) as caught:
        run_mma(module, "f16", A, B, C, threads=threads, order=order)
    return str(caught.value)


def line_of(marker: str) -> int:
    return next(n for n, text in enumerate(source().splitlines(), 1) if marker in text)


@needs_cxx
@pytest.mark.parametrize("order", ORDERS)
def test_a_lane_skipping_the_mma_is_reported(order):
    message = reported({"if (BF16) pp_mma": "if (lane == 0) {} else if (BF16) pp_mma"},
                       order=order)
    assert "mma.sync/ldmatrix is warp-collective" in message
    assert f"executes the mma.sync.m16n8k16 (f16) at line {line_of('MUTATE mma')}" in message
    assert "but thread (0,0,0) of block (0,0,0) returned from the kernel" in message
    assert "threads 0-31" in message


@needs_cxx
def test_a_lane_at_a_different_collective_or_barrier_is_reported():
    message = reported({"if (BF16) pp_mma": "if (lane == 0) {} else if (BF16) pp_mma"}, K=32)
    assert (f"thread (0,0,0) of block (0,0,0) executes the ldmatrix.x4 at line "
            f"{line_of('MUTATE A rows')} (its warp-collective operation 3), but thread "
            f"(1,0,0) of block (0,0,0) executes the mma.sync.m16n8k16 (f16) at line "
            f"{line_of('MUTATE mma')} (its warp-collective operation 3)") in message
    message = reported({"/* MUTATE divergence */": "if (lane == 5) __syncthreads();"},
                       M=32, N=16)
    assert "mma.sync/ldmatrix is warp-collective" in message
    assert (f"thread (5,0,0) of block (0,0,0) waits at the __syncthreads() at line "
            f"{line_of('MUTATE divergence')}") in message
    assert f"executes the ldmatrix.x4 at line {line_of('MUTATE A rows')}" in message


@needs_cxx
def test_a_partial_warp_is_reported():
    message = reported({}, M=32, N=8, threads=48)  # warp 1 (tile 1) is partial
    assert "the block has 48 threads, not a multiple of 32" in message
    assert "threads 32-47" in message and "of block (0,0,0) executes the ldmatrix.x4" in message


@needs_cxx
def test_a_misaligned_row_is_reported():
    message = reported({"+ tn * 8]);  /* MUTATE B rows */": "+ tn * 8 + 1]);"})
    assert "misaligned access" in message and "ldmatrix.x2.trans reads pp_a_B_s[" in message
    assert "16-byte aligned" in message


@needs_cxx
def test_a_row_past_the_shared_array_is_reported():
    message = reported({"8 * (j % 2) + r) * K": "8 * (j % 2) + r + 1) * K"}, M=32, N=16, K=64)
    assert "out of bounds" in message and "ldmatrix.x4 reads 16 bytes" in message
    assert "pp_a_A_s" in message


@needs_cxx
def test_a_row_in_global_memory_is_reported():
    message = reported({"pp_ldmatrix_x2_trans(b, &pp_a_B_s[": "pp_ldmatrix_x2_trans(b, &pp_a_B["})
    assert "ldmatrix from non-shared memory" in message and "pp_a_B[" in message


@needs_cxx
@pytest.mark.parametrize("order", ORDERS)
def test_ldmatrix_without_the_barrier_is_a_missing_barrier(order):
    message = reported({"__syncthreads();  /* MUTATE barrier */": "/* deleted */"}, order=order)
    assert "missing barrier" in message and "(ldmatrix)" in message
    assert "pp_a_A_s[" in message or "pp_a_B_s[" in message


# ---- the same text for the GPU -------------------------------------------------------------
@needs_nvcc
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_the_kernels_compile_to_tensor_core_instructions(arch):
    cubin, resources = compile_cubin(source(), arch=arch)
    assert {r.name for r in resources} == {"mma_f16", "mma_bf16", "ldmatrix_lanes"}
    opcodes = {f.name: {i.opcode for i in f.instructions} for f in disassemble(cubin)}
    name = {f: next(n for n in opcodes if f in n) for f in ("mma_f16", "mma_bf16",
                                                            "ldmatrix_lanes")}
    assert "HMMA.16816.F32" in opcodes[name["mma_f16"]]
    assert "HMMA.16816.F32.BF16" in opcodes[name["mma_bf16"]]
    for kernel in ("mma_f16", "mma_bf16"):
        assert {"LDSM.16.M88.4", "LDSM.16.MT88.2"} <= opcodes[name[kernel]]
    assert {"LDSM.16.M88", "LDSM.16.M88.2", "LDSM.16.M88.4", "LDSM.16.MT88", "LDSM.16.MT88.2",
            "LDSM.16.MT88.4"} <= opcodes[name["ldmatrix_lanes"]]
