"""PolyBench/C 4.2.1 kernels (all 30) and a few extra kernels, as plain Python loop nests.

Every kernel is a plain top-level function written in the polypipe input subset:

* sizes come only from shape bindings at the top of the function (``N, M = A.shape``,
  ``N = A.shape[0]``, ``n = len(x)``) or from int arguments;
* loops are ``for v in range(...)`` with affine bounds (``min``/``max``/``//`` allowed) and
  constant non-zero steps;
* ``if`` only tests affine conditions on loop variables and parameters; data-dependent choices
  are select expressions (``a if cond else b``);
* statements are single-target assignments / augmented assignments to array elements or local
  scalars; workspace arrays are passed as arguments.

The loop structure and statements follow the ``kernel_*`` functions of PolyBench/C 4.2.1.
Each kernel updates its array arguments in place.  ``KERNELS`` (bottom of the file) maps a name
to a :class:`KernelCase` whose ``make_args(rng, dtype)`` builds a small argument tuple.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np


# ---------------------------------------------------------------------------------------------
# datamining
# ---------------------------------------------------------------------------------------------


def correlation(float_n, data, corr, mean, stddev):
    N, M = data.shape
    eps = 0.1
    for j in range(M):
        mean[j] = 0.0
        for i in range(N):
            mean[j] += data[i, j]
        mean[j] /= float_n
    for j in range(M):
        stddev[j] = 0.0
        for i in range(N):
            stddev[j] += (data[i, j] - mean[j]) * (data[i, j] - mean[j])
        stddev[j] /= float_n
        stddev[j] = math.sqrt(stddev[j])
        stddev[j] = 1.0 if stddev[j] <= eps else stddev[j]
    for i in range(N):
        for j in range(M):
            data[i, j] -= mean[j]
            data[i, j] /= math.sqrt(float_n) * stddev[j]
    for i in range(M - 1):
        corr[i, i] = 1.0
        for j in range(i + 1, M):
            corr[i, j] = 0.0
            for k in range(N):
                corr[i, j] += data[k, i] * data[k, j]
            corr[j, i] = corr[i, j]
    corr[M - 1, M - 1] = 1.0


def covariance(float_n, data, cov, mean):
    N, M = data.shape
    for j in range(M):
        mean[j] = 0.0
        for i in range(N):
            mean[j] += data[i, j]
        mean[j] /= float_n
    for i in range(N):
        for j in range(M):
            data[i, j] -= mean[j]
    for i in range(M):
        for j in range(i, M):
            cov[i, j] = 0.0
            for k in range(N):
                cov[i, j] += data[k, i] * data[k, j]
            cov[i, j] /= float_n - 1.0
            cov[j, i] = cov[i, j]


# ---------------------------------------------------------------------------------------------
# linear-algebra: blas
# ---------------------------------------------------------------------------------------------


def gemm(alpha, beta, C, A, B):
    NI, NK = A.shape
    NJ = B.shape[1]
    for i in range(NI):
        for j in range(NJ):
            C[i, j] *= beta
        for k in range(NK):
            for j in range(NJ):
                C[i, j] += alpha * A[i, k] * B[k, j]


def gemver(alpha, beta, A, u1, v1, u2, v2, w, x, y, z):
    N = A.shape[0]
    for i in range(N):
        for j in range(N):
            A[i, j] = A[i, j] + u1[i] * v1[j] + u2[i] * v2[j]
    for i in range(N):
        for j in range(N):
            x[i] = x[i] + beta * A[j, i] * y[j]
    for i in range(N):
        x[i] = x[i] + z[i]
    for i in range(N):
        for j in range(N):
            w[i] = w[i] + alpha * A[i, j] * x[j]


def gesummv(alpha, beta, A, B, tmp, x, y):
    N = A.shape[0]
    for i in range(N):
        tmp[i] = 0.0
        y[i] = 0.0
        for j in range(N):
            tmp[i] = A[i, j] * x[j] + tmp[i]
            y[i] = B[i, j] * x[j] + y[i]
        y[i] = alpha * tmp[i] + beta * y[i]


def symm(alpha, beta, C, A, B):
    M, N = C.shape
    for i in range(M):
        for j in range(N):
            temp2 = 0.0
            for k in range(i):
                C[k, j] += alpha * B[i, j] * A[i, k]
                temp2 += B[k, j] * A[i, k]
            C[i, j] = beta * C[i, j] + alpha * B[i, j] * A[i, i] + alpha * temp2


def syr2k(alpha, beta, C, A, B):
    N, M = A.shape
    for i in range(N):
        for j in range(i + 1):
            C[i, j] *= beta
        for k in range(M):
            for j in range(i + 1):
                C[i, j] += A[j, k] * alpha * B[i, k] + B[j, k] * alpha * A[i, k]


def syrk(alpha, beta, C, A):
    N, M = A.shape
    for i in range(N):
        for j in range(i + 1):
            C[i, j] *= beta
        for k in range(M):
            for j in range(i + 1):
                C[i, j] += alpha * A[i, k] * A[j, k]


def trmm(alpha, A, B):
    M, N = B.shape
    for i in range(M):
        for j in range(N):
            for k in range(i + 1, M):
                B[i, j] += A[k, i] * B[k, j]
            B[i, j] = alpha * B[i, j]


# ---------------------------------------------------------------------------------------------
# linear-algebra: kernels
# ---------------------------------------------------------------------------------------------


def k2mm(alpha, beta, tmp, A, B, C, D):
    NI, NK = A.shape
    NJ = B.shape[1]
    NL = C.shape[1]
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


def k3mm(E, A, B, F, C, D, G):
    NI, NK = A.shape
    NJ = B.shape[1]
    NM, NL = D.shape
    for i in range(NI):
        for j in range(NJ):
            E[i, j] = 0.0
            for k in range(NK):
                E[i, j] += A[i, k] * B[k, j]
    for i in range(NJ):
        for j in range(NL):
            F[i, j] = 0.0
            for k in range(NM):
                F[i, j] += C[i, k] * D[k, j]
    for i in range(NI):
        for j in range(NL):
            G[i, j] = 0.0
            for k in range(NJ):
                G[i, j] += E[i, k] * F[k, j]


def atax(A, x, y, tmp):
    M, N = A.shape
    for i in range(N):
        y[i] = 0.0
    for i in range(M):
        tmp[i] = 0.0
        for j in range(N):
            tmp[i] = tmp[i] + A[i, j] * x[j]
        for j in range(N):
            y[j] = y[j] + A[i, j] * tmp[i]


def bicg(A, s, q, p, r):
    N, M = A.shape
    for i in range(M):
        s[i] = 0.0
    for i in range(N):
        q[i] = 0.0
        for j in range(M):
            s[j] = s[j] + r[i] * A[i, j]
            q[i] = q[i] + A[i, j] * p[j]


def doitgen(A, C4, sum_):
    NR, NQ, NP = A.shape
    for r in range(NR):
        for q in range(NQ):
            for p in range(NP):
                sum_[p] = 0.0
                for s in range(NP):
                    sum_[p] += A[r, q, s] * C4[s, p]
            for p in range(NP):
                A[r, q, p] = sum_[p]


def mvt(x1, x2, y_1, y_2, A):
    # chained subscripts (A[i][j]) on purpose
    N = len(x1)
    for i in range(N):
        for j in range(N):
            x1[i] = x1[i] + A[i][j] * y_1[j]
    for i in range(N):
        for j in range(N):
            x2[i] = x2[i] + A[j][i] * y_2[j]


# ---------------------------------------------------------------------------------------------
# linear-algebra: solvers
# ---------------------------------------------------------------------------------------------


def cholesky(A):
    N = A.shape[0]
    for i in range(N):
        # j < i
        for j in range(i):
            for k in range(j):
                A[i, j] -= A[i, k] * A[j, k]
            A[i, j] /= A[j, j]
        # i == j
        for k in range(i):
            A[i, i] -= A[i, k] * A[i, k]
        A[i, i] = math.sqrt(A[i, i])


def durbin(r, y, z):
    # z is the workspace array that the C kernel declares locally
    N = len(r)
    y[0] = -r[0]
    beta = 1.0
    alpha = -r[0]
    for k in range(1, N):
        beta = (1.0 - alpha * alpha) * beta
        sum_ = 0.0
        for i in range(k):
            sum_ += r[k - i - 1] * y[i]
        alpha = -(r[k] + sum_) / beta
        for i in range(k):
            z[i] = y[i] + alpha * y[k - i - 1]
        for i in range(k):
            y[i] = z[i]
        y[k] = alpha


def gramschmidt(A, R, Q):
    M, N = A.shape
    for k in range(N):
        nrm = 0.0
        for i in range(M):
            nrm += A[i, k] * A[i, k]
        R[k, k] = math.sqrt(nrm)
        for i in range(M):
            Q[i, k] = A[i, k] / R[k, k]
        for j in range(k + 1, N):
            R[k, j] = 0.0
            for i in range(M):
                R[k, j] += Q[i, k] * A[i, j]
            for i in range(M):
                A[i, j] = A[i, j] - Q[i, k] * R[k, j]


def lu(A):
    # chained subscripts (A[i][j]) on purpose
    N = A.shape[0]
    for i in range(N):
        for j in range(i):
            for k in range(j):
                A[i][j] -= A[i][k] * A[k][j]
            A[i][j] /= A[j][j]
        for j in range(i, N):
            for k in range(i):
                A[i][j] -= A[i][k] * A[k][j]


def ludcmp(A, b, x, y):
    N = A.shape[0]
    for i in range(N):
        for j in range(i):
            w = A[i, j]
            for k in range(j):
                w -= A[i, k] * A[k, j]
            A[i, j] = w / A[j, j]
        for j in range(i, N):
            w = A[i, j]
            for k in range(i):
                w -= A[i, k] * A[k, j]
            A[i, j] = w
    for i in range(N):
        w = b[i]
        for j in range(i):
            w -= A[i, j] * y[j]
        y[i] = w
    for i in range(N - 1, -1, -1):
        w = y[i]
        for j in range(i + 1, N):
            w -= A[i, j] * x[j]
        x[i] = w / A[i, i]


def trisolv(L, x, b):
    N = len(x)
    for i in range(N):
        x[i] = b[i]
        for j in range(i):
            x[i] -= L[i, j] * x[j]
        x[i] = x[i] / L[i, i]


# ---------------------------------------------------------------------------------------------
# medley
# ---------------------------------------------------------------------------------------------


def deriche(alpha, imgIn, imgOut, y1, y2):
    W, H = imgIn.shape
    k = (1.0 - math.exp(-alpha)) * (1.0 - math.exp(-alpha)) / (
        1.0 + 2.0 * alpha * math.exp(-alpha) - math.exp(2.0 * alpha)
    )
    a5 = k
    a1 = a5
    a6 = k * math.exp(-alpha) * (alpha - 1.0)
    a2 = a6
    a7 = k * math.exp(-alpha) * (alpha + 1.0)
    a3 = a7
    a8 = -k * math.exp(-2.0 * alpha)
    a4 = a8
    b1 = math.pow(2.0, -alpha)
    b2 = -math.exp(-2.0 * alpha)
    c2 = 1.0
    c1 = c2

    for i in range(W):
        ym1 = 0.0
        ym2 = 0.0
        xm1 = 0.0
        for j in range(H):
            y1[i, j] = a1 * imgIn[i, j] + a2 * xm1 + b1 * ym1 + b2 * ym2
            xm1 = imgIn[i, j]
            ym2 = ym1
            ym1 = y1[i, j]

    for i in range(W):
        yp1 = 0.0
        yp2 = 0.0
        xp1 = 0.0
        xp2 = 0.0
        for j in range(H - 1, -1, -1):
            y2[i, j] = a3 * xp1 + a4 * xp2 + b1 * yp1 + b2 * yp2
            xp2 = xp1
            xp1 = imgIn[i, j]
            yp2 = yp1
            yp1 = y2[i, j]

    for i in range(W):
        for j in range(H):
            imgOut[i, j] = c1 * (y1[i, j] + y2[i, j])

    for j in range(H):
        tm1 = 0.0
        ym1 = 0.0
        ym2 = 0.0
        for i in range(W):
            y1[i, j] = a5 * imgOut[i, j] + a6 * tm1 + b1 * ym1 + b2 * ym2
            tm1 = imgOut[i, j]
            ym2 = ym1
            ym1 = y1[i, j]

    for j in range(H):
        tp1 = 0.0
        tp2 = 0.0
        yp1 = 0.0
        yp2 = 0.0
        for i in range(W - 1, -1, -1):
            y2[i, j] = a7 * tp1 + a8 * tp2 + b1 * yp1 + b2 * yp2
            tp2 = tp1
            tp1 = imgOut[i, j]
            yp2 = yp1
            yp1 = y2[i, j]

    for i in range(W):
        for j in range(H):
            imgOut[i, j] = c2 * (y1[i, j] + y2[i, j])


def floyd_warshall(path):
    N = path.shape[0]
    for k in range(N):
        for i in range(N):
            for j in range(N):
                path[i][j] = (
                    path[i][j] if path[i][j] < path[i][k] + path[k][j] else path[i][k] + path[k][j]
                )


def nussinov(seq, table):
    # chained subscripts (table[i][j]) on purpose
    N = len(seq)
    for i in range(N - 1, -1, -1):
        for j in range(i + 1, N):
            if j - 1 >= 0:
                table[i][j] = max(table[i][j], table[i][j - 1])
            if i + 1 < N:
                table[i][j] = max(table[i][j], table[i + 1][j])
            if j - 1 >= 0 and i + 1 < N:
                # don't allow adjacent elements to bond
                if i < j - 1:
                    table[i][j] = max(
                        table[i][j], table[i + 1][j - 1] + (1 if seq[i] + seq[j] == 3 else 0)
                    )
                else:
                    table[i][j] = max(table[i][j], table[i + 1][j - 1])
            for k in range(i + 1, j):
                table[i][j] = max(table[i][j], table[i][k] + table[k + 1][j])


# ---------------------------------------------------------------------------------------------
# stencils
# ---------------------------------------------------------------------------------------------


def adi(tsteps, u, v, p, q):
    N = u.shape[0]
    DX = 1.0 / N
    DY = 1.0 / N
    DT = 1.0 / tsteps
    B1 = 2.0
    B2 = 1.0
    mul1 = B1 * DT / (DX * DX)
    mul2 = B2 * DT / (DY * DY)
    a = -mul1 / 2.0
    b = 1.0 + mul1
    c = a
    d = -mul2 / 2.0
    e = 1.0 + mul2
    f = d
    for t in range(1, tsteps + 1):
        # column sweep
        for i in range(1, N - 1):
            v[0, i] = 1.0
            p[i, 0] = 0.0
            q[i, 0] = v[0, i]
            for j in range(1, N - 1):
                p[i, j] = -c / (a * p[i, j - 1] + b)
                q[i, j] = (
                    -d * u[j, i - 1]
                    + (1.0 + 2.0 * d) * u[j, i]
                    - f * u[j, i + 1]
                    - a * q[i, j - 1]
                ) / (a * p[i, j - 1] + b)
            v[N - 1, i] = 1.0
            for j in range(N - 2, 0, -1):
                v[j, i] = p[i, j] * v[j + 1, i] + q[i, j]
        # row sweep
        for i in range(1, N - 1):
            u[i, 0] = 1.0
            p[i, 0] = 0.0
            q[i, 0] = u[i, 0]
            for j in range(1, N - 1):
                p[i, j] = -f / (d * p[i, j - 1] + e)
                q[i, j] = (
                    -a * v[i - 1, j]
                    + (1.0 + 2.0 * a) * v[i, j]
                    - c * v[i + 1, j]
                    - d * q[i, j - 1]
                ) / (d * p[i, j - 1] + e)
            u[i, N - 1] = 1.0
            for j in range(N - 2, 0, -1):
                u[i, j] = p[i, j] * u[i, j + 1] + q[i, j]


def fdtd_2d(tmax, ex, ey, hz, fict):
    NX, NY = ex.shape
    for t in range(tmax):
        for j in range(NY):
            ey[0, j] = fict[t]
        for i in range(1, NX):
            for j in range(NY):
                ey[i, j] = ey[i, j] - 0.5 * (hz[i, j] - hz[i - 1, j])
        for i in range(NX):
            for j in range(1, NY):
                ex[i, j] = ex[i, j] - 0.5 * (hz[i, j] - hz[i, j - 1])
        for i in range(NX - 1):
            for j in range(NY - 1):
                hz[i, j] = hz[i, j] - 0.7 * (ex[i, j + 1] - ex[i, j] + ey[i + 1, j] - ey[i, j])


def heat_3d(tsteps, A, B):
    N = A.shape[0]
    for t in range(1, tsteps + 1):
        for i in range(1, N - 1):
            for j in range(1, N - 1):
                for k in range(1, N - 1):
                    B[i, j, k] = (
                        0.125 * (A[i + 1, j, k] - 2.0 * A[i, j, k] + A[i - 1, j, k])
                        + 0.125 * (A[i, j + 1, k] - 2.0 * A[i, j, k] + A[i, j - 1, k])
                        + 0.125 * (A[i, j, k + 1] - 2.0 * A[i, j, k] + A[i, j, k - 1])
                        + A[i, j, k]
                    )
        for i in range(1, N - 1):
            for j in range(1, N - 1):
                for k in range(1, N - 1):
                    A[i, j, k] = (
                        0.125 * (B[i + 1, j, k] - 2.0 * B[i, j, k] + B[i - 1, j, k])
                        + 0.125 * (B[i, j + 1, k] - 2.0 * B[i, j, k] + B[i, j - 1, k])
                        + 0.125 * (B[i, j, k + 1] - 2.0 * B[i, j, k] + B[i, j, k - 1])
                        + B[i, j, k]
                    )


def jacobi_1d(tsteps, A, B):
    N = len(A)
    for t in range(tsteps):
        for i in range(1, N - 1):
            B[i] = 0.33333 * (A[i - 1] + A[i] + A[i + 1])
        for i in range(1, N - 1):
            A[i] = 0.33333 * (B[i - 1] + B[i] + B[i + 1])


def jacobi_2d(tsteps, A, B):
    N = A.shape[0]
    for t in range(tsteps):
        for i in range(1, N - 1):
            for j in range(1, N - 1):
                B[i, j] = 0.2 * (A[i, j] + A[i, j - 1] + A[i, 1 + j] + A[1 + i, j] + A[i - 1, j])
        for i in range(1, N - 1):
            for j in range(1, N - 1):
                A[i, j] = 0.2 * (B[i, j] + B[i, j - 1] + B[i, 1 + j] + B[1 + i, j] + B[i - 1, j])


def seidel_2d(tsteps, A):
    # chained subscripts (A[i][j]) on purpose
    N = A.shape[0]
    for t in range(tsteps):
        for i in range(1, N - 1):
            for j in range(1, N - 1):
                A[i][j] = (
                    A[i - 1][j - 1] + A[i - 1][j] + A[i - 1][j + 1]
                    + A[i][j - 1] + A[i][j] + A[i][j + 1]
                    + A[i + 1][j - 1] + A[i + 1][j] + A[i + 1][j + 1]
                ) / 9.0


# ---------------------------------------------------------------------------------------------
# extra kernels
# ---------------------------------------------------------------------------------------------


def box_blur(img, out):
    """3x3 mean filter; borders are clamped through min/max loop bounds."""
    H, W = img.shape
    for i in range(H):
        for j in range(W):
            s = 0.0
            cnt = 0.0
            for ii in range(max(0, i - 1), min(H, i + 2)):
                for jj in range(max(0, j - 1), min(W, j + 2)):
                    s += img[ii, jj]
                    cnt += 1.0
            out[i, j] = s / cnt


def sobel(img, out):
    """Sobel gradient magnitude on the interior; border of out is left untouched."""
    H, W = img.shape
    for i in range(1, H - 1):
        for j in range(1, W - 1):
            gx = (img[i - 1, j + 1] + 2.0 * img[i, j + 1] + img[i + 1, j + 1]) - (
                img[i - 1, j - 1] + 2.0 * img[i, j - 1] + img[i + 1, j - 1]
            )
            gy = (img[i + 1, j - 1] + 2.0 * img[i + 1, j] + img[i + 1, j + 1]) - (
                img[i - 1, j - 1] + 2.0 * img[i - 1, j] + img[i - 1, j + 1]
            )
            out[i, j] = math.sqrt(gx * gx + gy * gy)


def prefix_suffix_scan(x, pre, suf, d, B):
    """Forward prefix sum, reverse suffix sum, in-place reverse-order differences, row-wise
    reverse scan of a 2-D array.  The reverse loops must run in reverse order to be correct."""
    n = len(x)
    m = len(d)
    R, C = B.shape
    pre[0] = x[0]
    for i in range(1, n):
        pre[i] = pre[i - 1] + x[i]
    suf[n - 1] = x[n - 1]
    for i in range(n - 2, -1, -1):
        suf[i] = suf[i + 1] + x[i]
    for i in range(m - 1, 0, -1):
        d[i] -= d[i - 1]
    for r in range(R):
        for c in range(C - 2, -1, -1):
            B[r, c] += B[r, c + 1]


def strided_loops(A, y):
    N, M = A.shape
    for i in range(1, N, 2):
        for j in range(M):
            A[i, j] = A[i, j] + 0.5 * A[i - 1, j]
    for i in range(N - 1, 0, -3):
        y[i] = y[i] - 0.25 * y[i - 1]
    for i in range(0, N - 2, 3):
        for j in range(M - 1, 0, -2):
            A[i, j] = 0.5 * A[i, j] + A[i + 2, j - 1]


def minmax_bounds(A, x, y, z, w, v):
    N = len(x)
    # banded matrix-vector product
    for i in range(N):
        for j in range(max(0, i - 2), min(N, i + 3)):
            y[i] += A[i, j] * x[j]
    # pairwise sums, floor-divided bound
    for i in range(N // 2):
        z[i] = x[2 * i] + x[2 * i + 1]
    # floor-divided subscript
    for i in range(N):
        w[i // 2] += 0.5 * x[i]
    # triangle-shaped (min in the bound) and a parameter-dependent middle range
    for i in range(N):
        for j in range(min(i, N - 1 - i) + 1):
            v[i] += A[j, i]
    for i in range(N // 3, N - N // 4):
        v[i] = 2.0 * v[i]


def lcs(a, b, T):
    """Longest common subsequence table; T has shape (len(a) + 1, len(b) + 1)."""
    n = len(a)
    m = len(b)
    for i in range(n + 1):
        T[i, 0] = 0
    for j in range(1, m + 1):
        T[0, j] = 0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            T[i, j] = T[i - 1, j - 1] + 1 if a[i - 1] == b[j - 1] else max(T[i - 1, j], T[i, j - 1])


def batched_matmul(A, B, C):
    NB, NI, NK = A.shape
    NJ = B.shape[2]
    for bb in range(NB):
        for i in range(NI):
            for j in range(NJ):
                C[bb, i, j] = 0.0
                for k in range(NK):
                    C[bb, i, j] += A[bb, i, k] * B[bb, k, j]


def conv2d_nhwc_s2(X, Wt, Y):
    """NHWC convolution, stride 2, no padding: Y[n, oh, ow, co]."""
    NB, H, W, CI = X.shape
    KH = Wt.shape[0]
    KW = Wt.shape[1]
    CO = Wt.shape[3]
    for n in range(NB):
        for oh in range((H - KH) // 2 + 1):
            for ow in range((W - KW) // 2 + 1):
                for co in range(CO):
                    acc = 0.0
                    for kh in range(KH):
                        for kw in range(KW):
                            for c in range(CI):
                                acc += X[n, 2 * oh + kh, 2 * ow + kw, c] * Wt[kh, kw, c, co]
                    Y[n, oh, ow, co] = acc


def straight_line_sum(x, out):
    """Statements outside any loop mixed with loops."""
    n = len(x)
    s = 0.0
    for i in range(n):
        s += x[i]
    out[0] = s
    mean = s / n
    out[1] = mean
    for i in range(n):
        x[i] = x[i] - mean
    out[2] = 2.0 * out[0] - out[1]


# ---------------------------------------------------------------------------------------------
# argument builders
# ---------------------------------------------------------------------------------------------


def _r(rng, dtype, *shape):
    return rng.random(shape).astype(dtype)


def _spd(rng, dtype, n):
    """Symmetric positive definite, diagonally dominant."""
    m = rng.random((n, n))
    a = (m + m.T) / 2.0 + n * np.eye(n)
    return a.astype(dtype)


def _diag_dominant(rng, dtype, n):
    a = rng.random((n, n)) - 0.5 + n * np.eye(n)
    return a.astype(dtype)


def _args_correlation(rng, dtype=np.float64):
    N, M = 17, 13
    data = _r(rng, dtype, N, M)
    data[:, 3] = 0.5  # constant column: exercises the stddev <= eps select
    return (float(N), data, np.zeros((M, M), dtype), np.zeros(M, dtype), np.zeros(M, dtype))


def _args_covariance(rng, dtype=np.float64):
    N, M = 19, 12
    return (float(N), _r(rng, dtype, N, M), np.zeros((M, M), dtype), np.zeros(M, dtype))


def _args_gemm(rng, dtype=np.float64):
    NI, NJ, NK = 13, 17, 11
    return (1.5, 1.2, _r(rng, dtype, NI, NJ), _r(rng, dtype, NI, NK), _r(rng, dtype, NK, NJ))


def _args_gemver(rng, dtype=np.float64):
    N = 21
    return (1.5, 1.2, _r(rng, dtype, N, N)) + tuple(_r(rng, dtype, N) for _ in range(8))


def _args_gesummv(rng, dtype=np.float64):
    N = 23
    return (
        1.5, 1.2, _r(rng, dtype, N, N), _r(rng, dtype, N, N),
        np.zeros(N, dtype), _r(rng, dtype, N), np.zeros(N, dtype),
    )


def _args_symm(rng, dtype=np.float64):
    M, N = 13, 17
    return (1.5, 1.2, _r(rng, dtype, M, N), _r(rng, dtype, M, M), _r(rng, dtype, M, N))


def _args_syr2k(rng, dtype=np.float64):
    N, M = 14, 11
    return (1.5, 1.2, _r(rng, dtype, N, N), _r(rng, dtype, N, M), _r(rng, dtype, N, M))


def _args_syrk(rng, dtype=np.float64):
    N, M = 15, 9
    return (1.5, 1.2, _r(rng, dtype, N, N), _r(rng, dtype, N, M))


def _args_trmm(rng, dtype=np.float64):
    M, N = 12, 16
    return (1.5, _r(rng, dtype, M, M), _r(rng, dtype, M, N))


def _args_2mm(rng, dtype=np.float64):
    NI, NJ, NK, NL = 9, 11, 13, 15
    return (
        1.5, 1.2, np.zeros((NI, NJ), dtype), _r(rng, dtype, NI, NK), _r(rng, dtype, NK, NJ),
        _r(rng, dtype, NJ, NL), _r(rng, dtype, NI, NL),
    )


def _args_3mm(rng, dtype=np.float64):
    NI, NJ, NK, NL, NM = 8, 10, 12, 14, 16
    return (
        np.zeros((NI, NJ), dtype), _r(rng, dtype, NI, NK), _r(rng, dtype, NK, NJ),
        np.zeros((NJ, NL), dtype), _r(rng, dtype, NJ, NM), _r(rng, dtype, NM, NL),
        np.zeros((NI, NL), dtype),
    )


def _args_atax(rng, dtype=np.float64):
    M, N = 19, 23
    return (_r(rng, dtype, M, N), _r(rng, dtype, N), np.zeros(N, dtype), np.zeros(M, dtype))


def _args_bicg(rng, dtype=np.float64):
    N, M = 21, 17
    return (
        _r(rng, dtype, N, M), np.zeros(M, dtype), np.zeros(N, dtype),
        _r(rng, dtype, M), _r(rng, dtype, N),
    )


def _args_doitgen(rng, dtype=np.float64):
    NR, NQ, NP = 7, 9, 11
    return (_r(rng, dtype, NR, NQ, NP), _r(rng, dtype, NP, NP), np.zeros(NP, dtype))


def _args_mvt(rng, dtype=np.float64):
    N = 22
    return tuple(_r(rng, dtype, N) for _ in range(4)) + (_r(rng, dtype, N, N),)


def _args_cholesky(rng, dtype=np.float64):
    return (_spd(rng, dtype, 18),)


def _args_durbin(rng, dtype=np.float64):
    # r[k] ~ rho^(k+1): the Toeplitz matrix [1, r0, r1, ...] is then diagonally dominant.
    N = 24
    rho = 0.3
    r = rho ** np.arange(1, N + 1) * (1.0 + 0.1 * (rng.random(N) - 0.5))
    return (r.astype(dtype), np.zeros(N, dtype), np.zeros(N, dtype))


def _args_gramschmidt(rng, dtype=np.float64):
    M, N = 17, 11
    return (_r(rng, dtype, M, N), np.zeros((N, N), dtype), np.zeros((M, N), dtype))


def _args_lu(rng, dtype=np.float64):
    return (_diag_dominant(rng, dtype, 17),)


def _args_ludcmp(rng, dtype=np.float64):
    N = 16
    return (_diag_dominant(rng, dtype, N), _r(rng, dtype, N), np.zeros(N, dtype), np.zeros(N, dtype))


def _args_trisolv(rng, dtype=np.float64):
    N = 25
    L = (rng.random((N, N)) - 0.5 + N * np.eye(N)).astype(dtype)
    return (L, np.zeros(N, dtype), _r(rng, dtype, N))


def _args_deriche(rng, dtype=np.float64):
    W, H = 19, 14
    return (
        0.25, _r(rng, dtype, W, H), np.zeros((W, H), dtype),
        np.zeros((W, H), dtype), np.zeros((W, H), dtype),
    )


def _args_floyd_warshall(rng, dtype=np.float64):
    N = 16
    path = rng.integers(1, 50, size=(N, N)).astype(dtype)
    path[rng.random((N, N)) < 0.3] = 999
    np.fill_diagonal(path, 0)
    return (path,)


def _args_nussinov(rng, dtype=np.float64):
    N = 25
    return (rng.integers(0, 4, size=N).astype(np.int64), np.zeros((N, N), np.int64))


def _args_adi(rng, dtype=np.float64):
    N = 12
    return (5, _r(rng, dtype, N, N), np.zeros((N, N), dtype), np.zeros((N, N), dtype), np.zeros((N, N), dtype))


def _args_fdtd_2d(rng, dtype=np.float64):
    NX, NY, TMAX = 13, 17, 6
    return (TMAX, _r(rng, dtype, NX, NY), _r(rng, dtype, NX, NY), _r(rng, dtype, NX, NY), _r(rng, dtype, TMAX))


def _args_heat_3d(rng, dtype=np.float64):
    N = 9
    A = _r(rng, dtype, N, N, N)
    return (4, A, A.copy())


def _args_jacobi_1d(rng, dtype=np.float64):
    N = 30
    A = _r(rng, dtype, N)
    return (8, A, _r(rng, dtype, N))


def _args_jacobi_2d(rng, dtype=np.float64):
    N = 14
    return (5, _r(rng, dtype, N, N), _r(rng, dtype, N, N))


def _args_seidel_2d(rng, dtype=np.float64):
    return (4, _r(rng, dtype, 15, 15))


def _args_box_blur(rng, dtype=np.float64):
    H, W = 14, 19
    return (_r(rng, dtype, H, W), np.zeros((H, W), dtype))


def _args_sobel(rng, dtype=np.float64):
    H, W = 16, 21
    return (_r(rng, dtype, H, W), np.zeros((H, W), dtype))


def _args_prefix_suffix_scan(rng, dtype=np.float64):
    n, m = 27, 19
    return (
        _r(rng, dtype, n), np.zeros(n, dtype), np.zeros(n, dtype),
        _r(rng, dtype, m), _r(rng, dtype, 7, 12),
    )


def _args_strided_loops(rng, dtype=np.float64):
    N, M = 20, 11
    return (_r(rng, dtype, N, M), _r(rng, dtype, N))


def _args_minmax_bounds(rng, dtype=np.float64):
    N = 23
    return (
        _r(rng, dtype, N, N), _r(rng, dtype, N), np.zeros(N, dtype),
        np.zeros(N // 2, dtype), np.zeros((N + 1) // 2, dtype), _r(rng, dtype, N),
    )


def _args_lcs(rng, dtype=np.float64):
    n, m = 21, 17
    return (
        rng.integers(0, 4, size=n).astype(np.int64),
        rng.integers(0, 4, size=m).astype(np.int64),
        np.full((n + 1, m + 1), -1, np.int64),
    )


def _args_batched_matmul(rng, dtype=np.float64):
    NB, NI, NK, NJ = 3, 7, 9, 6
    return (_r(rng, dtype, NB, NI, NK), _r(rng, dtype, NB, NK, NJ), np.zeros((NB, NI, NJ), dtype))


def _args_conv2d_nhwc_s2(rng, dtype=np.float64):
    NB, H, W, CI, KH, KW, CO = 2, 13, 11, 3, 3, 2, 4
    OH, OW = (H - KH) // 2 + 1, (W - KW) // 2 + 1
    return (_r(rng, dtype, NB, H, W, CI), _r(rng, dtype, KH, KW, CI, CO), np.zeros((NB, OH, OW, CO), dtype))


def _args_straight_line_sum(rng, dtype=np.float64):
    return (_r(rng, dtype, 29), np.zeros(3, dtype))


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelCase:
    name: str  # e.g. "gemm"
    family: str  # linear-algebra, solver, stencil, medley, datamining, image, dynamic-programming, misc
    func: Callable
    make_args: Callable  # make_args(rng: np.random.Generator, dtype=np.float64) -> tuple


_TABLE = [
    # PolyBench/C 4.2.1
    ("correlation", "datamining", correlation, _args_correlation),
    ("covariance", "datamining", covariance, _args_covariance),
    ("gemm", "linear-algebra", gemm, _args_gemm),
    ("gemver", "linear-algebra", gemver, _args_gemver),
    ("gesummv", "linear-algebra", gesummv, _args_gesummv),
    ("symm", "linear-algebra", symm, _args_symm),
    ("syr2k", "linear-algebra", syr2k, _args_syr2k),
    ("syrk", "linear-algebra", syrk, _args_syrk),
    ("trmm", "linear-algebra", trmm, _args_trmm),
    ("2mm", "linear-algebra", k2mm, _args_2mm),
    ("3mm", "linear-algebra", k3mm, _args_3mm),
    ("atax", "linear-algebra", atax, _args_atax),
    ("bicg", "linear-algebra", bicg, _args_bicg),
    ("doitgen", "linear-algebra", doitgen, _args_doitgen),
    ("mvt", "linear-algebra", mvt, _args_mvt),
    ("cholesky", "solver", cholesky, _args_cholesky),
    ("durbin", "solver", durbin, _args_durbin),
    ("gramschmidt", "solver", gramschmidt, _args_gramschmidt),
    ("lu", "solver", lu, _args_lu),
    ("ludcmp", "solver", ludcmp, _args_ludcmp),
    ("trisolv", "solver", trisolv, _args_trisolv),
    ("deriche", "medley", deriche, _args_deriche),
    ("floyd_warshall", "medley", floyd_warshall, _args_floyd_warshall),
    ("nussinov", "medley", nussinov, _args_nussinov),
    ("adi", "stencil", adi, _args_adi),
    ("fdtd_2d", "stencil", fdtd_2d, _args_fdtd_2d),
    ("heat_3d", "stencil", heat_3d, _args_heat_3d),
    ("jacobi_1d", "stencil", jacobi_1d, _args_jacobi_1d),
    ("jacobi_2d", "stencil", jacobi_2d, _args_jacobi_2d),
    ("seidel_2d", "stencil", seidel_2d, _args_seidel_2d),
    # extra kernels
    ("box_blur", "image", box_blur, _args_box_blur),
    ("sobel", "image", sobel, _args_sobel),
    ("prefix_suffix_scan", "misc", prefix_suffix_scan, _args_prefix_suffix_scan),
    ("strided_loops", "misc", strided_loops, _args_strided_loops),
    ("minmax_bounds", "misc", minmax_bounds, _args_minmax_bounds),
    ("lcs", "dynamic-programming", lcs, _args_lcs),
    ("batched_matmul", "linear-algebra", batched_matmul, _args_batched_matmul),
    ("conv2d_nhwc_s2", "linear-algebra", conv2d_nhwc_s2, _args_conv2d_nhwc_s2),
    ("straight_line_sum", "misc", straight_line_sum, _args_straight_line_sum),
]

KERNELS: dict[str, KernelCase] = {
    name: KernelCase(name, family, func, make_args) for name, family, func, make_args in _TABLE
}

POLYBENCH_NAMES = tuple(name for name, *_ in _TABLE[:30])
EXTRA_NAMES = tuple(name for name, *_ in _TABLE[30:])
