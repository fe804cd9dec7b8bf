"""The tensor-core lowering (GpuConfig(mma="m16n8k16"), one warp per block): kernels built,
proved and printed with ldmatrix and mma.sync, run on the CPU runtime's warp collectives
against NumPy in float16 and bfloat16 (matmul, attention's Q K^T with K stored n x k, A stored
k x m, 2mm; partial tiles: test_tensor_core_padding); a wrong lane, register or orientation in
the printed text gives a wrong result; what tensor cores cannot honour is refused with the
reason."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import polypipe as pp
from polypipe.codegen.value_types import numpy_dtype
from polypipe.errors import ArgumentError, InternalError, ScheduleError

from .kernels.contractions import half_matmul

MMA = "m16n8k16"


def _config(block=(32, 32), reduction=32, shared_stages=3, register_stages=2, warps=(1, 1),
            **extra):
    return pp.GpuConfig(block=block, warps=warps, reduction=reduction,
                        shared_stages=shared_stages, register_stages=register_stages,
                        mma=MMA, **extra)


matmul = pp.kernel(half_matmul)


@pp.kernel
def scores(S, Q, K):
    """Attention's Q K^T per head: K is stored (keys, features), so B's rows run along k."""
    H, M, N = S.shape
    D = Q.shape[2]
    for h in range(H):
        for i in range(M):
            for j in range(N):
                S[h, i, j] = 0.0
                for d in range(D):
                    S[h, i, j] += np.float32(Q[h, i, d]) * K[h, j, d]


@pp.kernel
def at_b(C, A, B):
    """A stored k x m: its ldmatrix is .trans."""
    M, N = C.shape
    K = A.shape[0]
    for i in range(M):
        for j in range(N):
            C[i, j] = 0.0
            for k in range(K):
                C[i, j] += np.float32(A[k, i]) * B[k, j]


@pp.kernel
def two_mm(D, T, A, B, C16, E):
    """D = (A B) C in two contractions, the first one's float32 result stored as 16-bit
    (E) before the second reads it."""
    M, N = T.shape
    K = A.shape[1]
    L = D.shape[1]
    for i in range(M):
        for j in range(N):
            T[i, j] = 0.0
            for k in range(K):
                T[i, j] += np.float32(A[i, k]) * B[k, j]
    for i in range(M):
        for j in range(N):
            E[i, j] = T[i, j]
    for i in range(M):
        for l in range(L):
            D[i, l] = 0.0
            for j in range(N):
                D[i, l] += np.float32(E[i, j]) * C16[j, l]


def _bound(K: int, a: np.ndarray, b: np.ndarray, axes) -> float:
    """Float32 sums of exact products: |error| <= K u sum |a b| (u = 2^-24), per output."""
    return K * 2.0 ** -24 * np.einsum(axes, np.abs(a.astype(np.float64)),
                                      np.abs(b.astype(np.float64)))


def _random(rng, shape, dtype):
    return rng.standard_normal(shape).astype(numpy_dtype(dtype))


_BUILT: dict = {}


def _optimized(kernel, config):
    """One build per kernel and configuration in a worker (a proof of several warps takes
    seconds)."""
    key = (kernel.python.__name__, config)
    if key not in _BUILT:
        _BUILT[key] = pp.optimize(kernel, config)
    return _BUILT[key]


ONE_WARP = [
    (dict(block=(16, 16), reduction=16, shared_stages=1, register_stages=1), (16, 16, 16)),
    (dict(block=(32, 32), reduction=32), (64, 64, 96)),
    (dict(block=(64, 32), reduction=16, shared_stages=2, register_stages=1), (64, 96, 64)),
    (dict(block=(32, 64), reduction=64, shared_stages=4, register_stages=4), (32, 128, 256)),
]
# Several warps: each shape in one of the two formats (the proofs take seconds each).
WARPS = [
    (dict(block=(64, 64), warps=(2, 2)), (128, 64, 64), "float16"),
    (dict(block=(64, 32), warps=(4, 1), reduction=16, register_stages=1), (64, 64, 48),
     "bfloat16"),
    (dict(block=(32, 128), warps=(1, 4)), (32, 128, 64), "float16"),
    (dict(block=(64, 128), warps=(2, 4), reduction=64, shared_stages=2), (64, 128, 128),
     "bfloat16"),
]
CASES = [(f, s, d) for f, s in ONE_WARP for d in ("float16", "bfloat16")] + WARPS


def _case_id(case) -> str:
    fields, sizes, dtype = case
    return ("x".join(map(str, fields["block"])) + f"k{fields.get('reduction', 32)}w"
            + "x".join(map(str, fields.get("warps", (1, 1)))) + "-"
            + "x".join(map(str, sizes)) + "-" + dtype)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_matmul_matches_numpy(case):
    fields, sizes, dtype = case
    opt = _optimized(matmul, _config(**fields))
    rng = np.random.default_rng(sum(sizes))
    M, N, K = sizes
    A, B = _random(rng, (M, K), dtype), _random(rng, (K, N), dtype)
    C = np.full((M, N), np.nan, np.float32)
    opt.run(C, A, B)
    want = A.astype(np.float64) @ B.astype(np.float64)
    assert np.all(np.abs(C - want) <= _bound(K, A, B, "ik,kj->ij"))
    source = opt.cuda_source(C, A, B)
    assert "pp_ldmatrix_x4(" in source and "pp_ldmatrix_x4_trans(" in source
    assert f"pp_mma_m16n8k16_{'f16' if dtype == 'float16' else 'bf16'}(pp_d" in source


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_attention_scores_with_keys_stored_n_by_k(dtype):
    opt = pp.optimize(scores, _config(block=(32, 32), reduction=32))
    rng = np.random.default_rng(3)
    Q, K = _random(rng, (3, 64, 64), dtype), _random(rng, (3, 32, 64), dtype)
    S = np.full((3, 64, 32), np.nan, np.float32)
    opt.run(S, Q, K)
    want = np.einsum("hid,hjd->hij", Q.astype(np.float64), K.astype(np.float64))
    assert np.all(np.abs(S - want) <= _bound(64, Q, K, "hid,hjd->hij"))
    body = opt.cuda_source(S, Q, K).split("__global__", 1)[1]
    assert "pp_ldmatrix_x4_trans(" not in body    # both operands' rows run along k


def test_a_stored_k_by_m_is_loaded_transposed():
    opt = pp.optimize(at_b, _config(block=(32, 32), reduction=32))
    rng = np.random.default_rng(4)
    A, B = _random(rng, (64, 32), "float16"), _random(rng, (64, 32), "float16")
    C = np.full((32, 32), np.nan, np.float32)
    opt.run(C, A, B)
    want = A.astype(np.float64).T @ B.astype(np.float64)
    assert np.all(np.abs(C - want) <= _bound(64, A.T, B, "ik,kj->ij"))
    body = opt.cuda_source(C, A, B).split("__global__", 1)[1]
    assert "pp_ldmatrix_x4_trans(" in body and "pp_ldmatrix_x4(" not in body   # both .trans


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_two_contractions_in_sequence(dtype):
    opt = pp.optimize(two_mm, _config(block=(32, 32), reduction=32))
    rng = np.random.default_rng(5)
    M, N, K, L = 32, 64, 64, 32
    A, B, C16 = (_random(rng, s, dtype) for s in ((M, K), (K, N), (N, L)))
    T, D = np.zeros((M, N), np.float32), np.zeros((M, L), np.float32)
    E = np.zeros((M, N), numpy_dtype(dtype))
    opt.run(D, T, A, B, C16, E)
    t_want = A.astype(np.float64) @ B.astype(np.float64)
    assert np.all(np.abs(T - t_want) <= _bound(K, A, B, "ik,kj->ij"))
    assert np.all(E == T.astype(E.dtype))       # Python's rounding of the kernel's own T
    want = E.astype(np.float64) @ C16.astype(np.float64)
    assert np.all(np.abs(D - want) <= _bound(N, E, C16, "ij,jl->il"))


OH = OW = 4      # the implicit-GEMM convolution's output image and input channels
CI = 16


@pp.kernel
def conv3x3(Y, Xp, Wt):
    """A 3x3 convolution as an implicit GEMM (rows: output pixels, k: taps x channels) of a
    padded NHWC image, as benchmarks/gpu_workloads.py writes ResNet's layers."""
    P, CO = Y.shape
    RSC = Wt.shape[0]
    for p in range(P):
        for co in range(CO):
            Y[p, co] = 0.0
            for r in range(RSC):
                Y[p, co] += np.float32(Xp[p // (OH * OW), (p // OW) % OH + r // (3 * CI),
                                          p % OW + (r // CI) % 3, r % CI]) * Wt[r, co]


def check_convolution(opt, kernel, image: tuple[int, int, int], batch: int, co: int,
                      dtype: str, seed: int) -> None:
    """Run ``kernel`` (conv3x3's body, ``image`` = its module's OH, OW, CI) optimized as
    ``opt`` against the function itself (float32 sums in its order), within twice the K
    bound of the gathered operands."""
    oh, ow, ci = image
    rng = np.random.default_rng(seed)
    Xp, Wt = _random(rng, (batch, oh + 2, ow + 2, ci), dtype), _random(rng, (9 * ci, co), dtype)
    Y = np.full((batch * oh * ow, co), np.nan, np.float32)
    opt.run(Y, Xp, Wt)
    want = np.zeros_like(Y)
    kernel.python(want, Xp, Wt)
    gathered = np.stack([Xp[p // (oh * ow), (p // ow) % oh + r // (3 * ci),
                            p % ow + (r // ci) % 3, r % ci]
                         for p in range(Y.shape[0]) for r in range(9 * ci)]).reshape(
        Y.shape[0], 9 * ci)
    assert np.all(np.abs(Y - want) <= 2 * _bound(9 * ci, gathered, Wt, "pr,rc->pc"))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_implicit_gemm_convolution(dtype):
    opt = _optimized(conv3x3, _config(block=(32, 32), reduction=16, register_stages=1))
    check_convolution(opt, conv3x3, (OH, OW, CI), batch=2, co=32, dtype=dtype, seed=8)


# -- the printed collectives are what computes: mutations give wrong results ----------------
MUTATIONS = [("(pp_lane % 8)", "((pp_lane + 1) % 8)"),          # a lane's row address
             ("pp_d[1]; a_C_r", "pp_d[2]; a_C_r"),               # an accumulator register
             ("pp_ldmatrix_x4_trans(", "pp_ldmatrix_x4("),      # B's orientation
             ("(pp_slot * 2 + pp_tm) * 4]", "(pp_slot * 2 + 1 - pp_tm) * 4]")]   # A's tile


@pytest.mark.parametrize("old,new", MUTATIONS, ids=["lane", "accumulator", "trans", "tile"])
def test_a_wrong_lane_mapping_gives_a_wrong_result(old, new):
    opt = pp.optimize(matmul, _config(block=(32, 32), reduction=32))
    rng = np.random.default_rng(6)
    A, B = _random(rng, (64, 64), "float16"), _random(rng, (64, 64), "float16")
    C = np.zeros((64, 64), np.float32)
    source = opt.cuda_source(C, A, B)
    head, body = source.split("__global__", 1)
    assert old in body
    opt.run(C, A, B, source=head + "__global__" + body.replace(old, new))
    want = A.astype(np.float64) @ B.astype(np.float64)
    assert np.abs(C - want).max() > 1.0


# -- refusals ----------------------------------------------------------------------------------
@pytest.mark.parametrize("warps,block", [((2, 2), (64, 64))])
def test_each_warp_is_one_hardware_warp(warps, block):
    """Thread (8 wm + g, 4 wn + t) runs as lane 4 g + t of hardware warp wm WN + wn: a text
    that numbers the threads row-major instead mixes two warps' lanes in one collective."""
    from polypipe.codegen.cuda_mma import thread_coordinates

    opt = _optimized(matmul, _config(block=block, warps=warps))
    rng = np.random.default_rng(7)
    M, N, K = block[0], block[1], 32
    A, B = _random(rng, (M, K), "float16"), _random(rng, (K, N), "float16")
    C = np.zeros((M, N), np.float32)
    source = opt.cuda_source(C, A, B)
    ty, tx = thread_coordinates((8 * warps[0], 4 * warps[1]))
    assert source.count(ty) > 0 and "threadIdx.y *" in ty
    opt.run(C, A, B, source=source.replace(ty, "(int)threadIdx.y").replace(tx, "(int)threadIdx.x"))
    assert np.abs(C - A.astype(np.float64) @ B.astype(np.float64)).max() > 1.0


def test_a_plan_that_cannot_be_honoured_is_refused_with_the_reason():
    with pytest.raises(ScheduleError, match="accumulator and .* fragment registers per lane"):
        pp.optimize(matmul, _config(block=(128, 128), warps=(1, 1)))


def test_float32_operands_are_refused_when_the_kernel_runs():
    opt = pp.optimize(matmul, _config())
    A, B = np.ones((32, 32), np.float32), np.ones((32, 32), np.float32)
    with pytest.raises(ArgumentError, match="tensor cores: .*two float16 or two bfloat16"):
        opt.run(np.zeros((32, 32), np.float32), A, B)


def test_an_unwidened_product_is_refused():
    @pp.kernel
    def rounded(C, A, B):
        M, N = C.shape
        K = A.shape[1]
        for i in range(M):
            for j in range(N):
                for k in range(K):
                    C[i, j] += A[i, k] * B[k, j]

    with pytest.raises(ScheduleError, match="cannot use tensor cores: .*np.float32"):
        pp.optimize(rounded, _config())


def test_a_nest_that_is_no_contraction_is_refused_not_mapped_another_way():
    @pp.kernel
    def scale(Y, X):
        N = Y.shape[0]
        for i in range(N):
            Y[i] = 2.0 * X[i]

    with pytest.raises(ScheduleError, match="cannot use tensor cores"):
        pp.optimize(scale, _config())


def test_describe_says_tensor_cores():
    text = pp.optimize(matmul, _config()).describe()
    assert "mma=m16n8k16" in text and "stored [m][k]" in text and "stored [k][n]" in text


# -- the proof of the warp groups (analysis.warp_proof) refuses a wrong printing ------------
def test_the_warp_proof_refuses_a_wrong_lane_address(monkeypatch):
    import polypipe.codegen.cuda_mma as cuda_mma
    from polypipe.analysis.warp_proof import prove_warp_groups
    from polypipe.errors import InternalError

    (kernel,) = pp.optimize(matmul, _config()).kernels
    assert "delivers its mma fragments" in prove_warp_groups(kernel)
    right = cuda_mma.lane_row

    def shifted(op, ownership):
        row = right(op, ownership)
        return cuda_mma.LaneRow(row.thread, row.fragment,
                                row.kin.replace("(pp_lane % 8)", "((pp_lane + 1) % 8)"))

    monkeypatch.setattr(cuda_mma, "lane_row", shifted)
    with pytest.raises(InternalError, match="ldmatrix hands lane"):
        prove_warp_groups(kernel)


def test_the_warp_proof_refuses_a_wrong_orientation(monkeypatch):
    import polypipe.codegen.cuda_mma as cuda_mma
    from polypipe.analysis.warp_proof import prove_warp_groups
    from polypipe.errors import InternalError

    (kernel,) = pp.optimize(matmul, _config()).kernels
    right = cuda_mma.warp_operands
    monkeypatch.setattr(cuda_mma, "warp_operands", lambda k: tuple(
        replace(op, trans=not op.trans) if op.role == "b" else op for op in right(k)))
    with pytest.raises(InternalError, match="ldmatrix hands lane"):
        prove_warp_groups(kernel)


@pytest.mark.parametrize("rows,width", [(32, 16), (32, 32), (64, 64), (32, 128), (16, 256),
                                        (32, 256)])
def test_the_printed_swizzle_is_the_proved_one(rows, width, monkeypatch):
    """TileLayout.swizzle_c at every element against the chunk layout whose bank conflicts
    were counted, for the swizzle operand_tile picks at each row width (and it picks one free
    of conflicts); the warp proof accepts it and refuses a printed swizzle that differs."""
    from types import SimpleNamespace

    import polypipe.codegen.cuda_mma as cuda_mma
    from polypipe.analysis import warp_proof
    from polypipe.analysis.bank_conflicts import conflict_degree, cp_async_rows, ldmatrix_x4
    from polypipe.gpu_ir import LocalDim, TileLayout
    from polypipe.gpu_mma import points
    from polypipe.gpu_warp import operand_tile

    tile = operand_tile("A", rows, width)
    chunks = width // 8
    assert conflict_degree(cp_async_rows(rows, chunks), tile.layout) == 1
    assert conflict_degree(ldmatrix_x4(rows, chunks), tile.layout) == 1
    dims = (LocalDim("pp_lm", "", rows, "i"), LocalDim("pp_lk", "", width, "k"))
    layout = TileLayout(dims, dims, dims, 8 * tile.layout.pad_chunks, 8,
                        swizzle=(tile.layout.bits, tile.layout.shift), chunks=tile.layout)
    if not tile.layout.bits:
        return
    text = layout.swizzle_c("r", "c")
    placed = dict(points(tile.layout.relation))
    assert len(placed) == rows * chunks
    for (r, chunk), (index,) in placed.items():
        for offset in range(8):
            stored = eval(text, {"__builtins__": {}}, {"r": r, "c": 8 * chunk + offset})
            assert stored == 8 * (index - r * chunks) + offset
    tiles = {"A_s": layout}
    monkeypatch.setattr(cuda_mma, "swizzled_tiles", lambda kernel: tiles)
    kernel = SimpleNamespace(name="k")
    assert warp_proof._prove_swizzles(kernel) == ["A_s"]
    tiles["A_s"] = replace(layout, swizzle=(layout.swizzle[0], layout.swizzle[1] + 1))
    with pytest.raises(InternalError, match="the printed swizzle of A_s puts"):
        warp_proof._prove_swizzles(kernel)


# -- nvcc: no spills, and the main loop's SASS is the plan's instruction counts ------------
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("fields", [dict(block=(32, 32), reduction=32),
                                    dict(block=(64, 64), reduction=32),
                                    dict(block=(64, 32), reduction=64, shared_stages=4),
                                    dict(block=(32, 64), reduction=32, register_stages=1),
                                    dict(block=(128, 128), warps=(2, 2), reduction=32)],
                         ids=lambda f: "x".join(map(str, f["block"])) + f"k{f['reduction']}"
                         + "w" + "x".join(map(str, f.get("warps", (1, 1)))))
def test_sass_has_the_planned_hmma_ldsm_and_ldgsts(arch, fields):
    from polypipe.codegen.nvcc import compile_cubin, find_nvcc
    from polypipe.codegen.sass import find_nvdisasm, kernel_sass
    from polypipe.gpu_warp import warp_plan
    from polypipe.kernel import bind_arguments

    if find_nvcc() is None or find_nvdisasm() is None:
        pytest.skip("needs nvcc and nvdisasm")
    config = _config(**fields)
    opt = _optimized(matmul, config)
    shapes = [np.zeros((2048, 2048), np.float32)] + [np.zeros((2048, 2048), np.float16)] * 2
    binding = bind_arguments(opt.original, shapes)
    cubin, (resources,) = compile_cubin(opt.cuda_source_for(binding), arch)
    assert resources.spill_stores + resources.spill_loads == 0
    facts = kernel_sass(cubin)[resources.name]
    counts = warp_plan(config).instruction_counts()
    loop = facts.loop_mix
    assert loop.hmma == counts["mma"]
    assert loop.ldsm == 4 * (counts["ldmatrix_a"] + counts["ldmatrix_b"])
    assert dict(loop.ldgsts) == {128: counts["cp_async_16"]}
    assert loop.lds_instructions == 0        # fragments come from ldmatrix only
    assert facts.kernel_mix.local == 0


def test_shared_stages_are_counted_in_16_bit_elements():
    """5 stages of 64x128 and 128x64 half tiles are 160 KiB: they fit an H100 block (227
    KiB), which they would not as float32; 8 stages (256 KiB) do not fit."""
    opt = pp.optimize(matmul, _config(block=(64, 64), reduction=128, shared_stages=5))
    assert "A_s x5 stages" in opt.describe()
    with pytest.raises(ScheduleError, match="shared"):
        pp.optimize(matmul, _config(block=(64, 64), reduction=128, shared_stages=8))
