"""The workloads of the GPU benchmark (ALCOP's shape set) as polypipe loop nests: FP32, and
the GEMMs of float16/bfloat16 inputs with float32 accumulation (:func:`half_matmul`).

* GEMMs ``C = A @ B`` (A: M x K, B: K x N): BERT-base and BERT-large layer GEMMs at 512 and
  1024 tokens (QKV projection, attention output, the two feed-forward GEMMs) and squares
  1024 ... 8192;
* batched attention GEMMs (heads x seq x seq x head size 64);
* ResNet-50's 3x3 stride-1 convolutions at batch 32 as implicit GEMM: output pixels
  (n, oh, ow) flattened into rows, (kh, kw, ci) into the reduction, read straight from a
  zero-padded NHWC input through quasi-affine subscripts (``//`` and ``%`` by constants).

Each convolution layer is its own module, written to a cache folder, because polypipe reads a
kernel's constants (the layer's spatial size) from its module.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # the repository: tests.kernels
from tests.kernels.contractions import half_batched_matmul, half_matmul  # noqa: E402,F401


def matmul(C, A, B):
    M, N = C.shape
    K = A.shape[1]
    for i in range(M):
        for j in range(N):
            C[i, j] = 0.0
            for k in range(K):
                C[i, j] += A[i, k] * B[k, j]


def batched_matmul(C, A, B):
    NB, M, N = C.shape
    K = A.shape[2]
    for b in range(NB):
        for i in range(M):
            for j in range(N):
                C[b, i, j] = 0.0
                for k in range(K):
                    C[b, i, j] += A[b, i, k] * B[b, k, j]


CONV_TEMPLATE = '''"""Implicit-GEMM 3x3 convolution, stride {stride}, for {oh}x{ow} outputs, {ci} channels in."""

OH = {oh}
OW = {ow}
CI = {ci}
STRIDE = {stride}


def conv3x3_igemm(Y, Xp, Wt):
    P, CO = Y.shape
    RSC = Wt.shape[0]
    for p in range(P):
        for co in range(CO):
            Y[p, co] = 0.0
            for r in range(RSC):
                Y[p, co] += Xp[p // (OH * OW), (p // OW) % OH * STRIDE + r // (3 * CI),
                               p % OW * STRIDE + (r // CI) % 3, r % CI] * Wt[r, co]
'''


@dataclass(frozen=True)
class Workload:
    op: str                 # gemm | batched_gemm | conv2d
    name: str
    shape: dict             # the sizes that define it
    gemm: tuple             # (batch, M, N, K) of the GEMM it computes

    @property
    def flops(self) -> float:
        batch, m, n, k = self.gemm
        return 2.0 * batch * m * n * k


def _bert(tokens: int, hidden: int, ffn: int, model: str) -> list[Workload]:
    shapes = [("qkv", 3 * hidden, hidden), ("attn_out", hidden, hidden),
              ("ffn1", ffn, hidden), ("ffn2", hidden, ffn)]
    return [Workload("gemm", f"{model}-{part}-{tokens}", {"M": tokens, "N": n, "K": k},
                     (1, tokens, n, k)) for part, n, k in shapes]


def gemm_workloads() -> list[Workload]:
    work = []
    for tokens in (512, 1024):
        work += _bert(tokens, 768, 3072, "bert-base")
        work += _bert(tokens, 1024, 4096, "bert-large")
    for n in (1024, 2048, 4096, 8192):
        work.append(Workload("gemm", f"square-{n}", {"M": n, "N": n, "K": n}, (1, n, n, n)))
    return work


def batched_workloads() -> list[Workload]:
    return [Workload("batched_gemm", f"attention-{b}x{m}x{n}x{k}",
                     {"B": b, "M": m, "N": n, "K": k}, (b, m, n, k))
            for b, m, n, k in ((12, 512, 512, 64), (16, 1024, 1024, 64))]


def conv_workloads(batch: int = 32) -> list[Workload]:
    layers = ((56, 64), (28, 128), (14, 256), (7, 512))   # ResNet-50 3x3 stride-1 layers
    return [Workload("conv2d", f"resnet50-3x3-{hw}x{hw}x{c}",
                     {"N": batch, "H": hw, "W": hw, "C": c, "K": c, "R": 3, "S": 3,
                      "stride": 1, "pad": 1},
                     (1, batch * hw * hw, c, 9 * c)) for hw, c in layers]


def all_workloads() -> list[Workload]:
    return gemm_workloads() + batched_workloads() + conv_workloads()


def half_workloads() -> list[Workload]:
    """The workloads the FP16/BF16 benchmark times: ALCOP's GEMMs (squares up to 8192 among
    them) and the batched attention GEMMs; the convolutions stay FP32."""
    return gemm_workloads() + batched_workloads()


def conv_kernel(workload: Workload, folder: Path):
    """The implicit-GEMM loop nest of one convolution layer (a module written to ``folder``)."""
    s = workload.shape
    oh = (s["H"] + 2 * s["pad"] - s["R"]) // s["stride"] + 1
    ow = (s["W"] + 2 * s["pad"] - s["S"]) // s["stride"] + 1
    name = f"conv_{oh}x{ow}_c{s['C']}_s{s['stride']}"
    path = folder / f"{name}.py"
    folder.mkdir(parents=True, exist_ok=True)
    text = CONV_TEMPLATE.format(oh=oh, ow=ow, ci=s["C"], stride=s["stride"])
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.conv3x3_igemm


def host_arrays(workload: Workload, rng: np.random.Generator) -> dict:
    """Inputs and output of one workload in NumPy (float32)."""
    def rand(*shape):
        return (rng.random(shape, dtype=np.float32) - 0.5)

    batch, m, n, k = workload.gemm
    if workload.op == "gemm":
        return {"A": rand(m, k), "B": rand(k, n), "C": np.zeros((m, n), np.float32)}
    if workload.op == "batched_gemm":
        return {"A": rand(batch, m, k), "B": rand(batch, k, n),
                "C": np.zeros((batch, m, n), np.float32)}
    s = workload.shape
    x = np.zeros((s["N"], s["H"] + 2, s["W"] + 2, s["C"]), np.float32)
    x[:, 1:-1, 1:-1, :] = rand(s["N"], s["H"], s["W"], s["C"])
    return {"Xp": x, "Wt": rand(9 * s["C"], s["K"]), "Y": np.zeros((m, n), np.float32)}


def im2col(xp: np.ndarray, oh: int, ow: int, stride: int = 1) -> np.ndarray:
    """The (N*OH*OW) x (9*C) matrix the implicit GEMM reads (for cuBLAS and Triton)."""
    n, _, _, c = xp.shape
    cols = np.empty((n, oh, ow, 3, 3, c), xp.dtype)
    for kh in range(3):
        for kw in range(3):
            cols[:, :, :, kh, kw, :] = xp[:, kh:kh + stride * (oh - 1) + 1:stride,
                                          kw:kw + stride * (ow - 1) + 1:stride, :]
    return cols.reshape(n * oh * ow, 9 * c)
