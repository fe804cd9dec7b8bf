"""A standard Triton matmul with a batch axis, autotuned over the usual tile configurations; the
comparison point a Triton user would write.

* float32 inputs: IEEE precision (no TF32), the tiles of :data:`CONFIGS`, blocks in row-major
  launch order;
* float16 / bfloat16 inputs: ``tl.dot`` on the tensor cores with a float32 accumulator, the
  tiles of the Triton tutorial's FP16 matmul (:data:`HALF_CONFIGS`, or the two of
  :data:`HALF_SESSION_CONFIGS` where a session has no time to tune) and its grouped launch
  order (``GROUP`` block rows share the B columns they read through L2).

The output is whatever ``c`` is: the float32 accumulator is converted to ``c``'s element type
when stored (the benchmark passes float32 ``c``, as polypipe writes).
"""

from __future__ import annotations

import triton
import triton.language as tl

CONFIGS = [
    triton.Config({"BM": bm, "BN": bn, "BK": bk, "GROUP": 0}, num_warps=warps,
                  num_stages=stages)
    for bm, bn, bk, warps, stages in (
        (128, 128, 32, 8, 3), (128, 128, 16, 8, 4), (128, 64, 32, 4, 4), (64, 128, 32, 4, 4),
        (64, 64, 32, 4, 4), (128, 256, 16, 8, 3), (256, 128, 16, 8, 3))
]


def _half_config(bm, bn, bk, warps, stages):
    return triton.Config({"BM": bm, "BN": bn, "BK": bk, "GROUP": 8}, num_warps=warps,
                         num_stages=stages)


HALF_TILES = ((128, 256, 64, 8, 3), (256, 128, 64, 8, 3), (128, 128, 64, 4, 4),
              (64, 256, 32, 4, 4), (128, 128, 32, 4, 4), (128, 64, 32, 4, 4),
              (64, 128, 32, 4, 4), (64, 64, 32, 4, 5))
HALF_CONFIGS = [_half_config(*tile) for tile in HALF_TILES]
HALF_SESSION_CONFIGS = [_half_config(*tile) for tile in HALF_TILES[:1] + HALF_TILES[2:3]]


@triton.jit
def _matmul(a, b, c, M, N, K, stride_ab, stride_am, stride_ak, stride_bb, stride_bk,
            stride_bn, stride_cb, stride_cm, stride_cn,
            BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr,
            IEEE: tl.constexpr):
    batch = tl.program_id(2)
    if GROUP == 0:
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
    else:   # grouped order: GROUP block rows walk the block columns together
        pid = tl.program_id(0)
        grid_m = tl.cdiv(M, BM)
        grid_n = tl.cdiv(N, BN)
        width = GROUP * grid_n
        first_m = (pid // width) * GROUP
        rows = min(grid_m - first_m, GROUP)
        pid_m = first_m + (pid % width) % rows
        pid_n = (pid % width) // rows
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    a_ptr = a + batch * stride_ab + rm[:, None] * stride_am + rk[None, :] * stride_ak
    b_ptr = b + batch * stride_bb + rk[:, None] * stride_bk + rn[None, :] * stride_bn
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BK)):
        k_left = K - k * BK
        a_tile = tl.load(a_ptr, mask=(rm[:, None] < M) & (rk[None, :] < k_left), other=0.0)
        b_tile = tl.load(b_ptr, mask=(rk[:, None] < k_left) & (rn[None, :] < N), other=0.0)
        if IEEE:
            acc += tl.dot(a_tile, b_tile, input_precision="ieee")
        else:   # 16-bit inputs: tensor cores, float32 accumulator
            acc = tl.dot(a_tile, b_tile, acc, out_dtype=tl.float32)
        a_ptr += BK * stride_ak
        b_ptr += BK * stride_bk
    c_ptr = c + batch * stride_cb + rm[:, None] * stride_cm + rn[None, :] * stride_cn
    tl.store(c_ptr, acc.to(c.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))


_TUNED = {}


def _tuned(kind: str):
    """The autotuned kernel of a configuration list (``fp32``, ``half`` or ``half-session``);
    the autotuner keys on the sizes and the arguments' dtypes."""
    if kind not in _TUNED:
        configs = {"fp32": CONFIGS, "half": HALF_CONFIGS,
                   "half-session": HALF_SESSION_CONFIGS}[kind]
        _TUNED[kind] = triton.autotune(configs=configs, key=["M", "N", "K"])(_matmul)
    return _TUNED[kind]


def matmul(a, b, c, quick: bool = False) -> None:
    """``c = a @ b`` for 2-D or batched 3-D torch/CuPy-like tensors with ``.stride()``: float32
    inputs in IEEE float32; float16 or bfloat16 inputs (both the same) with a float32
    accumulator, stored as ``c``'s dtype. ``quick``: the two-configuration tuning of a
    session (16-bit inputs only)."""
    if a.ndim == 2:
        a, b, c = a[None], b[None], c[None]
    batch, m, k = a.shape
    n = b.shape[2]
    ieee = str(a.dtype).endswith("float32")
    kernel = _tuned("fp32" if ieee else "half-session" if quick else "half")

    def grid(meta):
        if meta["GROUP"]:
            return (triton.cdiv(m, meta["BM"]) * triton.cdiv(n, meta["BN"]), 1, batch)
        return (triton.cdiv(m, meta["BM"]), triton.cdiv(n, meta["BN"]), batch)

    kernel[grid](a, b, c, m, n, k, *a.stride(), *b.stride(), *c.stride(), IEEE=ieee)
