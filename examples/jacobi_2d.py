"""PolyBench jacobi-2d: a 5-point stencil iterated over time, ping-ponging between A and B.

    polypipe run examples/jacobi_2d.py --size N=64,TSTEPS=10 --check
"""
import polypipe as pp


@pp.kernel
def jacobi_2d(TSTEPS, A, B):
    N = A.shape[0]
    for t in range(TSTEPS):
        for i in range(1, N - 1):
            for j in range(1, N - 1):
                B[i, j] = 0.2 * (A[i, j] + A[i, j - 1] + A[i, j + 1] + A[i + 1, j] + A[i - 1, j])
        for i in range(1, N - 1):
            for j in range(1, N - 1):
                A[i, j] = 0.2 * (B[i, j] + B[i, j - 1] + B[i, j + 1] + B[i + 1, j] + B[i - 1, j])
