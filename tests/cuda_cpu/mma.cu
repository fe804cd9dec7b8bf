/* Tensor-core kernels in the printed interface (ldmatrix and mma.sync m16n8k16), for the CPU
 * runtime's warp collectives and for nvcc. tests/test_cuda_mma_runtime.py mutates the lines
 * marked MUTATE; keep their text unique. */

/* D = A B + C, row-major M x K, K x N and M x N; A and B are 16-bit floats (their bits as
 * uint16_t), C and D float. A and B are staged whole in shared memory; warp w computes the
 * 16 x 8 tile (w / (N / 8), w % (N / 8)) of D through a K loop of ldmatrix.x4 (A, pieces
 * gpu_mma.A_PIECES), ldmatrix.x2.trans (B, pieces gpu_mma.B_PIECES) and mma.sync.
 * Sizes: M * K <= 2048, K * N <= 1024, M a multiple of 16, N of 8, K of 16;
 * blockDim.x = 32 * (M / 16) * (N / 8). */
template <bool BF16>
static __device__ __forceinline__ void mma_tiles(float *__restrict__ pp_a_D, const uint16_t *__restrict__ pp_a_A, const uint16_t *__restrict__ pp_a_B, const float *__restrict__ pp_a_C, int64_t pp_i0, int64_t pp_i1, int64_t pp_i2) {
  PP_SHARED(uint16_t, pp_a_A_s, 2048);
  PP_SHARED(uint16_t, pp_a_B_s, 1024);
  const int M = (int)pp_i0, N = (int)pp_i1, K = (int)pp_i2;
  const int tid = (int)threadIdx.x, threads = (int)blockDim.x;
  for (int v = tid; v < M * K; v += threads) PP_ST(pp_a_A_s, v) = PP_LD(pp_a_A, v);
  for (int v = tid; v < K * N; v += threads) PP_ST(pp_a_B_s, v) = PP_LD(pp_a_B, v);
  __syncthreads();  /* MUTATE barrier */
  const int lane = tid % 32, warp = tid / 32;
  const int tm = warp / (N / 8), tn = warp % (N / 8);
  const int g = lane / 4, t = lane % 4;
  float acc[4];
  #pragma unroll
  for (int i = 0; i < 4; i++) acc[i] = PP_LD(pp_a_C, (tm * 16 + g + 8 * (i / 2)) * N + tn * 8 + 2 * t + i % 2);
  /* MUTATE divergence */
  for (int k0 = 0; k0 < K; k0 += 16) {
    uint32_t a[4], b[2];
    const int j = lane / 8, r = lane % 8;  /* lane 8 j + r: row r of matrix j */
    pp_ldmatrix_x4(a, &pp_a_A_s[(tm * 16 + 8 * (j % 2) + r) * K + k0 + 8 * (j / 2)]);  /* MUTATE A rows */
    pp_ldmatrix_x2_trans(b, &pp_a_B_s[(k0 + lane % 16) * N + tn * 8]);  /* MUTATE B rows */
    /* MUTATE registers */
    if (BF16) pp_mma_m16n8k16_bf16(acc, a, b, acc); else pp_mma_m16n8k16_f16(acc, a, b, acc);  /* MUTATE mma */
  }
  #pragma unroll
  for (int i = 0; i < 4; i++) PP_ST(pp_a_D, (tm * 16 + g + 8 * (i / 2)) * N + tn * 8 + 2 * t + i % 2) = acc[i];
}

extern "C" __global__ void mma_f16(float *__restrict__ pp_a_D, const uint16_t *__restrict__ pp_a_A, const uint16_t *__restrict__ pp_a_B, const float *__restrict__ pp_a_C, int64_t pp_i0, int64_t pp_i1, int64_t pp_i2) {
  mma_tiles<false>(pp_a_D, pp_a_A, pp_a_B, pp_a_C, pp_i0, pp_i1, pp_i2);
}

extern "C" __global__ void mma_bf16(float *__restrict__ pp_a_D, const uint16_t *__restrict__ pp_a_A, const uint16_t *__restrict__ pp_a_B, const float *__restrict__ pp_a_C, int64_t pp_i0, int64_t pp_i1, int64_t pp_i2) {
  mma_tiles<true>(pp_a_D, pp_a_A, pp_a_B, pp_a_C, pp_i0, pp_i1, pp_i2);
}

/* Every lane's ldmatrix registers. Warp w stages rows 32 w .. 32 w + 31 of S_in (8 halves a
 * row) in its own part of shared memory: row 8 j + r there is row r of matrix j. Lane L gives
 * row L (lanes from 8 * matrices on give no address: nullptr, which ldmatrix never reads) and
 * writes register j to R[tid * 4 + j]. pp_i0: 1, 2 or 4 matrices, plus 8 for .trans. */
extern "C" __global__ void ldmatrix_lanes(uint32_t *__restrict__ pp_a_R, const uint16_t *__restrict__ pp_a_S_in, int64_t pp_i0) {
  PP_SHARED(uint16_t, pp_a_S, 512);
  const int tid = (int)threadIdx.x, lane = tid % 32, base = tid / 32 * 256;
  for (int v = lane; v < 256; v += 32) PP_ST(pp_a_S, base + v) = PP_LD(pp_a_S_in, base + v);
  __syncthreads();
  const int matrices = (int)(pp_i0 & 7);
  const void *row = lane < 8 * matrices ? (const void *)&pp_a_S[base + lane * 8] : nullptr;
  uint32_t x1[1], x2[2], x4[4];
  switch ((int)pp_i0) {
    case 1: pp_ldmatrix_x1(x1, row); break;
    case 2: pp_ldmatrix_x2(x2, row); break;
    case 4: pp_ldmatrix_x4(x4, row); break;
    case 9: pp_ldmatrix_x1_trans(x1, row); break;
    case 10: pp_ldmatrix_x2_trans(x2, row); break;
    default: pp_ldmatrix_x4_trans(x4, row); break;
  }
  for (int j = 0; j < matrices; j++)
    PP_ST(pp_a_R, tid * 4 + j) = matrices == 1 ? x1[0] : matrices == 2 ? x2[j] : x4[j];
}
