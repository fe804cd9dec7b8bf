"""PolyBench cholesky: in-place lower-triangular factorisation (triangular loops, sqrt).

The random inputs of `polypipe run` are not positive definite, so some square roots are of
negative numbers: `np.sqrt` gives NaN there (as C's sqrt does) where `math.sqrt` would raise, and
the check compares NaNs too. Feed a symmetric positive-definite matrix for meaningful numbers.

    polypipe run examples/cholesky.py --size N=40 --check
"""
import numpy as np

import polypipe as pp


@pp.kernel
def cholesky(A):
    N = A.shape[0]
    for i in range(N):
        for j in range(i):
            for k in range(j):
                A[i, j] -= A[i, k] * A[j, k]
            A[i, j] /= A[j, j]
        for k in range(i):
            A[i, i] -= A[i, k] * A[i, k]
        A[i, i] = np.sqrt(A[i, i])
