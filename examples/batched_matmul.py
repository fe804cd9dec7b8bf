"""Batched matrix multiply, as in attention: C[b] = A[b] @ B[b].

    polypipe run examples/batched_matmul.py --size BATCH=4,M=64,N=48,K=32 --check
"""
import polypipe as pp


@pp.kernel
def batched_matmul(C, A, B):
    BATCH, M, N = C.shape
    K = A.shape[2]
    for b in range(BATCH):
        for i in range(M):
            for j in range(N):
                acc = 0.0
                for k in range(K):
                    acc += A[b, i, k] * B[b, k, j]
                C[b, i, j] = acc
