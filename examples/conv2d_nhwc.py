"""2-D convolution, NHWC layout, with stride and zero padding (bounds keep reads in range).

Y[n, oh, ow, co] = sum over kh, kw, ci of X[n, oh*S + kh - P, ow*S + kw - P, ci] * W[kh, kw, ci, co]
for stride S = 2 and padding P = 1; taps that fall in the padding are skipped by the condition.

    polypipe run examples/conv2d_nhwc.py --size N=2,OH=8,OW=8,CO=16,KH=3,KW=3,CI=8,H=16,W=16 --check
"""
import polypipe as pp


@pp.kernel
def conv2d_nhwc(Y, X, Wt):
    N, OH, OW, CO = Y.shape
    KH, KW, CI, _ = Wt.shape
    H, W = X.shape[1], X.shape[2]
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for co in range(CO):
                    Y[n, oh, ow, co] = 0.0
                    for kh in range(KH):
                        for kw in range(KW):
                            if 0 <= 2 * oh + kh - 1 < H and 0 <= 2 * ow + kw - 1 < W:
                                for ci in range(CI):
                                    Y[n, oh, ow, co] += X[n, 2 * oh + kh - 1, 2 * ow + kw - 1, ci] * Wt[kh, kw, ci, co]
