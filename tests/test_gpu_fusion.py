"""Kernel fusion (polypipe.gpu_fusion): element-wise consumers of a contraction join its
kernel when recognised and proved; every other pair stays two kernels, with the reason."""


import numpy as np
import pytest

import polypipe as pp
from polypipe import GpuConfig, LegalityError
from polypipe.codegen.nvcc import compile_cubin, find_nvcc
from tests.kernels import contractions, polybench as pb


@pp.kernel
def mm_bias_relu(C, A, B, bias):
    M, K = A.shape
    N = B.shape[1]
    for i in range(M):
        for j in range(N):
            C[i, j] = 0.0
            for k in range(K):
                C[i, j] += A[i, k] * B[k, j]
    for i in range(M):
        for j in range(N):
            C[i, j] = max(C[i, j] + bias[j], 0.0)


@pp.kernel
def mm_then_scaled_copy(D, C, A, B, scale):
    M, K = A.shape
    N = B.shape[1]
    for i in range(M):
        for j in range(N):
            C[i, j] = 0.0
            for k in range(K):
                C[i, j] += A[i, k] * B[k, j]
    for p in range(M):
        for q in range(N):
            D[p, q] = scale * C[p, q] + 1.0
    for p in range(M):
        for q in range(N):
            D[p, q] = D[p, q] * D[p, q]


@pp.kernel
def mm_then_neighbour(D, C, A, B):
    M, K = A.shape
    N = B.shape[1]
    for i in range(M):
        for j in range(N):
            C[i, j] = 0.0
            for k in range(K):
                C[i, j] += A[i, k] * B[k, j]
    for i in range(M):
        for j in range(N - 1):
            D[i, j] = C[i, j + 1] - C[i, j]


def _mm_args(rng, M, N, K):
    return rng.random((M, K)) - 0.5, rng.random((K, N)) - 0.5


CONFIGS = [GpuConfig(), GpuConfig(block=(32, 64), threads=(8, 16), reduction=8,
                                  shared_stages=2, register_stages=1)]


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "small"])
@pytest.mark.parametrize("sizes", [(100, 72, 53), (64, 64, 16), (5, 3, 2)])
def test_bias_and_activation_run_in_the_contractions_kernel(config, sizes):
    opt = pp.optimize(mm_bias_relu, config)
    assert len(opt.kernels) == 1 and opt.kernels[0].contraction.epilogues == ("S2",)
    [decision] = opt.fusions
    assert decision.fused and "S2" in decision.consumer and "S1" in decision.producer
    assert "fused into" in opt.describe()
    rng = np.random.default_rng(sum(sizes))
    A, B = _mm_args(rng, *sizes)
    bias = rng.random(sizes[1]) - 0.5
    C = np.full((sizes[0], sizes[1]), np.nan)
    opt.run(C, A, B, bias)
    assert np.abs(C - np.maximum(A @ B + bias, 0.0)).max() <= 1e-12


def test_a_consumer_writing_another_array_is_fused_its_own_consumer_not():
    # D = scale * C + 1 reads one element of C per instance: fused. D = D * D touches no
    # element of C, so it has no place among C's epilogues: a kernel of its own.
    opt = pp.optimize(mm_then_scaled_copy)
    assert len(opt.kernels) == 2 and [d.fused for d in opt.fusions] == [True, False]
    assert "does not touch the accumulator `C`" in opt.fusions[1].reason
    rng = np.random.default_rng(1)
    A, B = _mm_args(rng, 70, 40, 30)
    C, D = np.zeros((70, 40)), np.zeros((70, 40))
    opt.run(D, C, A, B, 0.5)
    assert np.abs(C - A @ B).max() <= 1e-12            # the intermediate is still stored
    assert np.abs(D - (0.5 * (A @ B) + 1.0) ** 2).max() <= 1e-12


def test_a_consumer_reading_a_neighbour_element_stays_a_kernel_of_its_own():
    opt = pp.optimize(mm_then_neighbour)
    assert len(opt.kernels) == 2
    [decision] = opt.fusions
    assert not decision.fused and "not one contraction" in decision.reason
    assert "not fused with" in opt.describe()


def test_two_contractions_are_not_fused():
    opt = pp.optimize(pp.kernel(pb.k2mm))
    assert len(opt.kernels) == 2
    assert [d.reason for d in opt.fusions] == ["it is a contraction of its own"]


def test_without_the_proof_nothing_is_fused():
    opt = pp.optimize(mm_bias_relu, prove=False)
    assert len(opt.kernels) == 2
    assert "only when proved" in opt.fusions[0].reason


def test_a_refused_proof_keeps_the_nests_apart(monkeypatch):
    import polypipe.analysis.gpu_proof as gpu_proof

    real = gpu_proof.prove_kernel

    def refuse_fused(original, kernel):
        if len(kernel.contraction.epilogues) > 0:
            raise LegalityError("dataflow differs: (a refusal made up by the test)")
        return real(original, kernel)

    monkeypatch.setattr(gpu_proof, "prove_kernel", refuse_fused)
    opt = pp.optimize(mm_bias_relu)
    assert len(opt.kernels) == 2 and len(opt.proofs) == 2
    assert opt.fusions[0].reason.startswith("the fused kernel is refused: the proof refused")
    rng = np.random.default_rng(2)
    A, B = _mm_args(rng, 33, 20, 9)
    bias = rng.random(20)
    C = np.zeros((33, 20))
    opt.run(C, A, B, bias)
    assert np.abs(C - np.maximum(A @ B + bias, 0.0)).max() <= 1e-12


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc not installed")
def test_the_fused_kernel_compiles_as_one_function():
    opt = pp.optimize(mm_bias_relu)
    rng = np.random.default_rng(3)
    A, B = _mm_args(rng, 128, 64, 32)
    args = (np.zeros((128, 64), np.float32), A.astype(np.float32), B.astype(np.float32),
            np.zeros(64, np.float32))
    source = opt.cuda_source(*args)
    assert source.count("__global__") == 1
    _, resources = compile_cubin(source, "sm_90")
    assert [r.name for r in resources] == ["mm_bias_relu_k0"]
    assert resources[0].spill_stores == resources[0].spill_loads == 0


bert_ffn = pp.kernel(contractions.bert_ffn)


@pytest.mark.parametrize("M, D, F", [(37, 24, 40), (16, 32, 64)])
def test_bert_feed_forward_is_two_proved_kernels_matching_numpy(M, D, F):
    opt = pp.optimize(bert_ffn, GpuConfig(block=(32, 32), threads=(8, 8), reduction=8))
    assert len(opt.kernels) == 2 and len(opt.proofs) == 2
    assert sum(decision.fused for decision in opt.fusions) == 2
    rng = np.random.default_rng(M)
    X, W1, W2 = (rng.standard_normal((M, D)), 0.2 * rng.standard_normal((D, F)),
                 0.2 * rng.standard_normal((F, D)))
    b1, b2 = rng.standard_normal(F), rng.standard_normal(D)
    H, Y = np.full((M, F), np.nan), np.full((M, D), np.nan)
    opt.run(X, W1, b1, H, W2, b2, Y)
    h = X @ W1 + b1
    gelu = 0.5 * h * (1.0 + np.tanh(0.7978845608028654 * (h + 0.044715 * h ** 3)))
    assert np.abs(Y - (gelu @ W2 + b2 + X)).max() <= 1e-12
    assert np.abs(H - gelu).max() <= 1e-12
