"""Contraction loop nests for the GPU tests, each with a NumPy formula for its result.

Every kernel is plain Python within the subset of README.md ("The subset"); ``CASES`` pairs it with a function that
makes arguments for given sizes and a NumPy reference of the outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np


def gemm(alpha, beta, C, A, B):
    NI, NJ = C.shape
    NK = A.shape[1]
    for i in range(NI):
        for j in range(NJ):
            C[i, j] *= beta
        for k in range(NK):
            for j in range(NJ):
                C[i, j] += alpha * A[i, k] * B[k, j]


def batched_gemm(C, A, B):
    NB, M, N = C.shape
    K = A.shape[2]
    for b in range(NB):
        for i in range(M):
            for j in range(N):
                C[b, i, j] = 0.0
                for k in range(K):
                    C[b, i, j] += A[b, i, k] * B[b, k, j]


def gemm_tt_local(C, A, B):
    """C = A^T @ B^T with a local scalar accumulator (operands read transposed)."""
    M, N = C.shape
    K = A.shape[0]
    for i in range(M):
        for j in range(N):
            acc = 0.0
            for k in range(K):
                acc += A[k, i] * B[j, k]
            C[i, j] = acc


def conv2d_nhwc_s1_p1(Y, X, W):
    N, OH, OW, CO = Y.shape
    KH, KW, CI, _ = W.shape
    H, WI = X.shape[1], X.shape[2]
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for co in range(CO):
                    Y[n, oh, ow, co] = 0.0
                    for kh in range(KH):
                        for kw in range(KW):
                            if 0 <= oh + kh - 1 < H and 0 <= ow + kw - 1 < WI:
                                for ci in range(CI):
                                    Y[n, oh, ow, co] += X[n, oh + kh - 1, ow + kw - 1, ci] * W[kh, kw, ci, co]


def conv2d_nhwc_s2_p1(Y, X, W):
    N, OH, OW, CO = Y.shape
    KH, KW, CI, _ = W.shape
    H, WI = X.shape[1], X.shape[2]
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for co in range(CO):
                    Y[n, oh, ow, co] = 0.0
                    for kh in range(KH):
                        for kw in range(KW):
                            if 0 <= 2 * oh + kh - 1 < H and 0 <= 2 * ow + kw - 1 < WI:
                                for ci in range(CI):
                                    Y[n, oh, ow, co] += X[n, 2 * oh + kh - 1, 2 * ow + kw - 1, ci] * W[kh, kw, ci, co]


def conv3x3_igemm(Y, Xp, Wt):
    """Implicit-GEMM 3x3 convolution (5x5 outputs per image, 8 input channels, input padded):
    the quasi-affine subscripts of the benchmark's ResNet layers."""
    P, CO = Y.shape
    RSC = Wt.shape[0]
    for p in range(P):
        for co in range(CO):
            Y[p, co] = 0.0
            for r in range(RSC):
                Y[p, co] += Xp[p // 25, (p // 5) % 5 + r // 24, p % 5 + (r // 8) % 3, r % 8] * Wt[r, co]


def two_mm(alpha, beta, tmp, A, B, C, D):
    """PolyBench 2mm: D = alpha * A @ B @ C + beta * D, two nests, two GPU kernels."""
    NI, NJ = tmp.shape
    NK = A.shape[1]
    NL = D.shape[1]
    for i in range(NI):
        for j in range(NJ):
            tmp[i, j] = 0.0
            for k in range(NK):
                tmp[i, j] += alpha * A[i, k] * B[k, j]
    for i in range(NI):
        for j in range(NL):
            D[i, j] *= beta
            for k in range(NJ):
                D[i, j] += tmp[i, k] * C[k, j]


def syrk_lower(alpha, beta, C, A):
    """PolyBench syrk: a triangular output domain, both operands from A."""
    N, M = A.shape
    for i in range(N):
        for j in range(i + 1):
            C[i, j] *= beta
        for k in range(M):
            for j in range(i + 1):
                C[i, j] += alpha * A[i, k] * A[j, k]


def half_matmul(C, A, B):
    """``C = A @ B`` of float16 or bfloat16 ``A`` and ``B`` into float32 ``C``: each product
    formed from the widened values, summed in float32 (what cuBLAS computes with FP32 compute
    type and the tensor cores' FP32 accumulators)."""
    M, N = C.shape
    K = A.shape[1]
    for i in range(M):
        for j in range(N):
            C[i, j] = 0.0
            for k in range(K):
                C[i, j] += np.float32(A[i, k]) * B[k, j]


def half_batched_matmul(C, A, B):
    NB, M, N = C.shape
    K = A.shape[2]
    for b in range(NB):
        for i in range(M):
            for j in range(N):
                C[b, i, j] = 0.0
                for k in range(K):
                    C[b, i, j] += np.float32(A[b, i, k]) * B[b, k, j]


@dataclass(frozen=True)
class Case:
    func: Callable
    make: Callable      # make(rng, M, N, K, dtype) -> args
    expect: Callable    # expect(args) -> {argument index: expected array}


def bert_ffn(X, W1, b1, H, W2, b2, Y):
    """A BERT feed-forward block: GEMM, bias, GELU (tanh form), GEMM, bias, residual."""
    M, D = X.shape
    F = W1.shape[1]
    for i in range(M):
        for f in range(F):
            H[i, f] = 0.0
            for d in range(D):
                H[i, f] += X[i, d] * W1[d, f]
    for i in range(M):
        for f in range(F):
            H[i, f] = 0.5 * (H[i, f] + b1[f]) * (1.0 + math.tanh(
                0.7978845608028654 * ((H[i, f] + b1[f]) + 0.044715 * (H[i, f] + b1[f]) ** 3)))
    for i in range(M):
        for e in range(D):
            Y[i, e] = 0.0
            for f in range(F):
                Y[i, e] += H[i, f] * W2[f, e]
    for i in range(M):
        for e in range(D):
            Y[i, e] = Y[i, e] + b2[e] + X[i, e]


def _rand(rng, shape, dtype):
    return rng.random(shape).astype(dtype)


def _conv_reference(X, W, stride):
    N, H, WI, CI = X.shape
    KH, KW, _, CO = W.shape
    pad = np.zeros((N, H + 2, WI + 2, CI), dtype=np.float64)
    pad[:, 1:H + 1, 1:WI + 1, :] = X
    OH = (H + 2 - KH) // stride + 1
    OW = (WI + 2 - KW) // stride + 1
    Y = np.zeros((N, OH, OW, CO))
    for kh in range(KH):
        for kw in range(KW):
            window = pad[:, kh:kh + stride * (OH - 1) + 1:stride, kw:kw + stride * (OW - 1) + 1:stride, :]
            Y += np.einsum("nhwc,co->nhwo", window, W[kh, kw].astype(np.float64))
    return Y


def _conv_case(func, stride):
    def make(rng, M, N, K, dtype):
        # M output pixels per image row pair, N output channels, K input channels.
        H, WI = max(2, M // 10), max(2, M // 9)
        OH = (H + 2 - 3) // stride + 1
        OW = (WI + 2 - 3) // stride + 1
        return [np.zeros((2, OH, OW, N), dtype), _rand(rng, (2, H, WI, K), dtype),
                _rand(rng, (3, 3, K, N), dtype)]

    def expect(args):
        return {0: _conv_reference(args[1], args[2], stride)}

    return Case(func, make, expect)


def _igemm_case():
    def make(rng, M, N, K, dtype):
        # M rounds up to whole images of 25 output pixels; the reduction is fixed by the
        # kernel's constants (3 * 3 * 8 = 72), whatever K says.
        images = max(1, -(-M // 25))
        return [np.zeros((25 * images, N), dtype), _rand(rng, (images, 7, 7, 8), dtype),
                _rand(rng, (72, N), dtype)]

    def expect(args):
        _, Xp, Wt = args
        p, r = np.arange(args[0].shape[0])[:, None], np.arange(72)[None, :]
        im2col = Xp[p // 25, (p // 5) % 5 + r // 24, p % 5 + (r // 8) % 3, r % 8]
        return {0: im2col.astype(np.float64) @ Wt}

    return Case(conv3x3_igemm, make, expect)


CASES = {
    "gemm": Case(
        gemm,
        lambda rng, M, N, K, dt: [1.5, 0.5, _rand(rng, (M, N), dt), _rand(rng, (M, K), dt),
                                  _rand(rng, (K, N), dt)],
        lambda a: {2: a[0] * a[3].astype(np.float64) @ a[4] + a[1] * a[2]}),
    "batched_gemm": Case(
        batched_gemm,
        lambda rng, M, N, K, dt: [np.zeros((3, M, N), dt), _rand(rng, (3, M, K), dt),
                                  _rand(rng, (3, K, N), dt)],
        lambda a: {0: np.einsum("bik,bkj->bij", a[1].astype(np.float64), a[2])}),
    "gemm_tt_local": Case(
        gemm_tt_local,
        lambda rng, M, N, K, dt: [np.zeros((M, N), dt), _rand(rng, (K, M), dt),
                                  _rand(rng, (N, K), dt)],
        lambda a: {0: a[1].T.astype(np.float64) @ a[2].T}),
    "conv2d_s1": _conv_case(conv2d_nhwc_s1_p1, 1),
    "conv2d_s2": _conv_case(conv2d_nhwc_s2_p1, 2),
    "conv_igemm": _igemm_case(),
    "2mm": Case(
        two_mm,
        lambda rng, M, N, K, dt: [1.5, 0.5, np.zeros((M, N), dt), _rand(rng, (M, K), dt),
                                  _rand(rng, (K, N), dt), _rand(rng, (N, 31), dt),
                                  _rand(rng, (M, 31), dt)],
        lambda a: {6: (a[0] * a[3].astype(np.float64) @ a[4]) @ a[5] + a[1] * a[6]}),
    "syrk": Case(
        syrk_lower,
        lambda rng, M, N, K, dt: [1.5, 0.5, _rand(rng, (M, M), dt), _rand(rng, (M, K), dt)],
        lambda a: {2: np.where(np.tri(a[2].shape[0], dtype=bool),
                               a[0] * a[3].astype(np.float64) @ a[3].T + a[1] * a[2], a[2])}),
}


def matmul_separate_init(C, A, B):
    """Zero-fill in its own nest (an element-wise GPU kernel), then the contraction."""
    M, N = C.shape
    K = A.shape[1]
    for i in range(M):
        for j in range(N):
            C[i, j] = 0.0
    for i in range(M):
        for j in range(N):
            for k in range(K):
                C[i, j] += A[i, k] * B[k, j]


CASES["matmul_separate_init"] = Case(
    matmul_separate_init,
    lambda rng, M, N, K, dt: [_rand(rng, (M, N), dt), _rand(rng, (M, K), dt),
                              _rand(rng, (K, N), dt)],
    lambda a: {0: a[1].astype(np.float64) @ a[2]})


def matmul(C, A, B):
    """C = A @ B, the benchmark's GEMM (no alpha/beta: what cuBLAS SGEMM computes with 1, 0)."""
    M, N = C.shape
    K = A.shape[1]
    for i in range(M):
        for j in range(N):
            C[i, j] = 0.0
            for k in range(K):
                C[i, j] += A[i, k] * B[k, j]


CASES["matmul"] = Case(
    matmul,
    lambda rng, M, N, K, dt: [np.zeros((M, N), dt), _rand(rng, (M, K), dt),
                              _rand(rng, (K, N), dt)],
    lambda a: {0: a[1].astype(np.float64) @ a[2]})


def matmul_every_other_column(C, A, B):
    """Reads A[i, 2k]: its tile rows are not contiguous, so no wide copies."""
    M, N = C.shape
    K = B.shape[0]
    for i in range(M):
        for j in range(N):
            C[i, j] = 0.0
            for k in range(K):
                C[i, j] += A[i, 2 * k] * B[k, j]
