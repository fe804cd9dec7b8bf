"""Recursive filter in the style of PolyBench deriche: local scalars and a reverse sweep.

    polypipe run examples/deriche.py --size W=64,H=48 --check
"""
import math

import polypipe as pp


@pp.kernel
def edge_filter(alpha, img_in, img_out, y1, y2):
    W, H = img_in.shape
    k = (1.0 - math.exp(-alpha)) * (1.0 - math.exp(-alpha)) / (1.0 + 2.0 * alpha * math.exp(-alpha) - math.exp(2.0 * alpha))
    b1 = math.pow(2.0, -alpha)
    b2 = -math.exp(-2.0 * alpha)
    for i in range(W):
        ym1 = 0.0
        ym2 = 0.0
        for j in range(H):
            y1[i, j] = k * img_in[i, j] + b1 * ym1 + b2 * ym2
            ym2 = ym1
            ym1 = y1[i, j]
    for i in range(W):
        yp1 = 0.0
        yp2 = 0.0
        for j in range(H - 1, -1, -1):
            y2[i, j] = k * img_in[i, j] + b1 * yp1 + b2 * yp2
            yp2 = yp1
            yp1 = y2[i, j]
    for i in range(W):
        for j in range(H):
            img_out[i, j] = y1[i, j] + y2[i, j]
