"""A float16 (or bfloat16) GEMM with float32 accumulation, the form tensor cores compute:
each product of the widened inputs is exact in float32, as the tensor core forms it.

    polypipe pipeline examples/half_gemm.py --config block=64x64,warps=2x2,reduction=32,mma=m16n8k16
"""
import numpy as np

import polypipe as pp


@pp.kernel
def half_gemm(C, A, B):
    M, N = C.shape
    K = A.shape[1]
    for i in range(M):
        for j in range(N):
            C[i, j] = 0.0
            for k in range(K):
                C[i, j] += np.float32(A[i, k]) * B[k, j]
