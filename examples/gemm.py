"""PolyBench gemm: C = alpha * A @ B + beta * C.

    polypipe show examples/gemm.py
    polypipe run examples/gemm.py --size NI=200,NJ=180,NK=160 --check
"""
import polypipe as pp


@pp.kernel
def gemm(alpha, beta, C, A, B):
    NI, NJ = C.shape
    NK = A.shape[1]
    for i in range(NI):
        for j in range(NJ):
            C[i, j] *= beta
        for k in range(NK):
            for j in range(NJ):
                C[i, j] += alpha * A[i, k] * B[k, j]
