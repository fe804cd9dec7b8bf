"""The model: statement naming, domains, access relations and schedule, compared with isl."""

import islpy as isl
import numpy as np

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


@pp.kernel
def reverse_strided(x, y, T):
    N = len(x)
    for t in range(T):
        for i in range(N - 1, 0, -2):
            y[i] = x[i] + t


@pp.kernel
def triangular_conditional(A):
    N, M = A.shape
    for i in range(N):
        for j in range(i + 1, min(M, 2 * i + 3)):
            if (i + j) % 3 == 0 and not i == 2:
                A[i, j] = 1.0
            elif j >= N // 2:
                A[i, j] = 2.0
            else:
                A[i, j] = 3.0


@pp.kernel
def scalars_outside_loops(x, out):
    eps = 0.5
    s = 0.0
    N = x.shape[0]
    for i in range(N):
        s += x[i] * eps
    out[0] = s


def same(a, b) -> bool:
    return a.is_equal(b)


def test_model_gemm_statements_and_domains():
    p = gemm.program
    assert [s.name for s in p.statements] == ["S0", "S1"]
    assert p.parameter_names == ("NI", "NJ", "NK")
    assert same(p.statements[1].domain, isl.Set(
        "[NI, NJ, NK] -> { S1[i, k, j] : 0 <= i < NI and 0 <= k < NK and 0 <= j < NJ }"))
    assert p.statements[1].iterators == ("i", "k", "j")
    assert p.statements[1].domain.get_dim_name(isl.dim_type.set, 1) == "k"


def test_model_gemm_access_relations_are_exact():
    s1 = gemm.program.statements[1]
    reads = {a.array: a.relation for a in s1.reads}
    domain = "0 <= i < NI and 0 <= k < NK and 0 <= j < NJ"
    assert same(reads["A"], isl.Map(f"[NI, NJ, NK] -> {{ S1[i, k, j] -> A[i, k] : {domain} }}"))
    assert same(reads["B"], isl.Map(f"[NI, NJ, NK] -> {{ S1[i, k, j] -> B[k, j] : {domain} }}"))
    assert same(s1.target.relation,
                isl.Map(f"[NI, NJ, NK] -> {{ S1[i, k, j] -> C[i, j] : {domain} }}"))
    # An augmented assignment reads its target first.
    assert s1.reads[0].array == "C" and s1.op == "+"


def test_model_gemm_schedule_is_source_order():
    expected = isl.UnionMap("[NI, NJ, NK] -> { S0[i, j] -> [i, 0, j, 0]; "
                            "S1[i, k, j] -> [i, 1, k, j] }")
    assert gemm.program.schedule_map.is_equal(expected)


def test_model_reverse_loop_keeps_values_and_negates_schedule():
    p = reverse_strided.program
    s = p.statements[0]
    assert same(s.domain, isl.Set(
        "[T, N] -> { S0[t, i] : 0 <= t < T and 0 < i <= N - 1 and (N - 1 - i) mod 2 = 0 }"))
    assert p.schedule_map.is_equal(isl.UnionMap("[T, N] -> { S0[t, i] -> [t, -i] }"))
    assert [param.source for param in p.parameters] == [("argument", "T"), ("shape", "x", 0)]


def test_model_conditions_restrict_domains():
    p = triangular_conditional.program
    base = "0 <= i < N and i < j < M and j < 2i + 3"
    s0, s1, s2 = p.statements
    assert same(s0.domain, isl.Set(
        f"[N, M] -> {{ S0[i, j] : {base} and (i + j) mod 3 = 0 and i != 2 }}"))
    assert same(s1.domain, isl.Set(
        f"[N, M] -> {{ S1[i, j] : {base} and not ((i + j) mod 3 = 0 and i != 2) "
        "and j >= floor(N/2) }"))
    assert same(s2.domain, isl.Set(
        f"[N, M] -> {{ S2[i, j] : {base} and not ((i + j) mod 3 = 0 and i != 2) "
        "and j < floor(N/2) }"))
    # The three branches partition the loop domain.
    union = s0.domain.reset_tuple_id().union(s1.domain.reset_tuple_id()).union(
        s2.domain.reset_tuple_id())
    assert same(union, isl.Set(f"[N, M] -> {{ [i, j] : {base} }}"))


def test_model_statements_outside_loops_and_local_scalars():
    p = scalars_outside_loops.program
    assert [str(s.source) for s in p.statements] == [
        "eps = 0.5", "s = 0.0", "s += x[i] * eps", "out[0] = s"]
    assert p.array("s").is_local and p.array("s").rank == 0
    assert same(p.statements[0].domain, isl.Set("[N] -> { S0[] }"))
    read_of_s = [a for a in p.statements[3].reads if a.array == "s"][0]
    assert same(read_of_s.relation, isl.Map("[N] -> { S3[] -> s[] }"))
    order = p.schedule_map
    assert order.is_equal(isl.UnionMap(
        "[N] -> { S0[] -> [0, 0]; S1[] -> [1, 0]; S2[i] -> [2, i]; S3[] -> [3, 0] }"))


def test_model_print_shows_everything():
    text = str(gemm.program)
    for piece in ("program gemm(alpha, beta, C, A, B)", "NI = C.shape[0]", "NK = A.shape[1]",
                  "S1: C[i, j] += alpha * A[i, k] * B[k, j]", "S1[i, k, j] -> B[k, j]",
                  "schedule:", "context:"):
        assert piece in text


def test_model_kernel_is_still_plain_python():
    rng = np.random.default_rng(0)
    C, A, B = rng.random((3, 4)), rng.random((3, 5)), rng.random((5, 4))
    want = 1.5 * A @ B + 0.5 * C
    gemm.python(1.5, 0.5, C, A, B)
    assert np.allclose(C, want)
    assert gemm.__name__ == "gemm" and gemm.__doc__ == gemm.python.__doc__


@pp.kernel
def nested_len_and_numpy_casts(A, B, s):
    N = len(A)
    M = len(A[0])
    for i in range(N):
        for j in range(M):
            B[i][j] = np.float32(A[i][j] * s) + np.float64(i) / M + np.int32(j * 2.7)


def test_model_len_of_row_is_second_dimension_and_numpy_casts_match_python():
    from tests.helpers import assert_matches_python

    p = nested_len_and_numpy_casts.program
    assert [param.source for param in p.parameters] == [("shape", "A", 0), ("shape", "A", 1)]
    assert p.array("A").rank == 2
    for dtype in (np.float64, np.float32):
        A = np.random.default_rng(0).random((5, 7)).astype(dtype)
        assert_matches_python(nested_len_and_numpy_casts, [A, np.zeros((5, 7), dtype), 0.3],
                              dtype)
