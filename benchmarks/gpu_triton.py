"""A standard Triton FP32 matmul (IEEE precision, no TF32) with a batch axis, autotuned over
the usual tile configurations; the comparison point a Triton user would write."""

from __future__ import annotations

import triton
import triton.language as tl

CONFIGS = [
    triton.Config({"BM": bm, "BN": bn, "BK": bk}, num_warps=warps, num_stages=stages)
    for bm, bn, bk, warps, stages in (
        (128, 128, 32, 8, 3), (128, 128, 16, 8, 4), (128, 64, 32, 4, 4), (64, 128, 32, 4, 4),
        (64, 64, 32, 4, 4), (128, 256, 16, 8, 3), (256, 128, 16, 8, 3))
]


@triton.autotune(configs=CONFIGS, key=["M", "N", "K"])
@triton.jit
def _matmul(a, b, c, M, N, K, stride_ab, stride_am, stride_ak, stride_bb, stride_bk,
            stride_bn, stride_cb, stride_cm, stride_cn,
            BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    batch = tl.program_id(2)
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
        acc += tl.dot(a_tile, b_tile, input_precision="ieee")
        a_ptr += BK * stride_ak
        b_ptr += BK * stride_bk
    c_ptr = c + batch * stride_cb + rm[:, None] * stride_cm + rn[None, :] * stride_cn
    tl.store(c_ptr, acc, mask=(rm[:, None] < M) & (rn[None, :] < N))


def matmul(a, b, c) -> None:
    """``c = a @ b`` for 2-D or batched 3-D torch/CuPy-like tensors with ``.stride()``."""
    if a.ndim == 2:
        a, b, c = a[None], b[None], c[None]
    batch, m, k = a.shape
    n = b.shape[2]

    def grid(meta):
        return (triton.cdiv(m, meta["BM"]), triton.cdiv(n, meta["BN"]), batch)

    _matmul[grid](a, b, c, m, n, k, *a.stride(), *b.stride(), *c.stride())
