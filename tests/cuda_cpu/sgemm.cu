/* A tiled, pipelined SGEMM in the printed interface: C += A @ B (row-major, M x K by K x N),
 * 32 x 32 tiles of C per block, 8 x 8 threads with a 4 x 4 register tile each, K in steps of
 * 16 through 3 shared stages filled by 16-byte cp.async copies (two tiles in flight).
 * Sizes: M, N multiples of 32, K a multiple of 16. tests/test_cuda_cpu.py mutates the lines
 * marked MUTATE; keep their text unique. */
extern "C" __global__ void __launch_bounds__(64, 2) sgemm(float *__restrict__ pp_a_C, float *__restrict__ pp_a_A, float *__restrict__ pp_a_B, int64_t pp_i0, int64_t pp_i1, int64_t pp_i2, int64_t pp_block_low0, int64_t pp_block_low1, int64_t pp_block_count0, int64_t pp_block_count1, int64_t *pp_fault) {
  (void)pp_i0; (void)pp_block_count0; (void)pp_block_count1; (void)pp_fault;
  PP_SHARED(float, pp_a_A_s, 1536);  /* MUTATE shared A */
  PP_SHARED(float, pp_a_B_s, 1536);  /* MUTATE shared B */
  float __align__(16) pp_a_C_r[16];
  float __align__(16) pp_a_A_r[4];
  float __align__(16) pp_a_B_r[4];
  const int pp_block1 = (int)pp_block_low1 + (int)blockIdx.x;
  const int pp_block0 = (int)pp_block_low0 + (int)blockIdx.y;
  const int N = (int)pp_i1, K = (int)pp_i2;
  const int tid = (int)threadIdx.y * 8 + (int)threadIdx.x;
  const int tiles = K / 16;
  #pragma unroll
  for (int r = 0; r < 16; r++) pp_a_C_r[r] = 0.0f;
  /* prologue: tiles 0 and 1 into stages 0 and 1 */
  for (int t = 0; t < 2; t++) {
    if (t < tiles) {
      for (int v = tid; v < 128; v += 64) {
        const int row = v / 4, seg = v % 4;
        pp_cp_async<16>(&pp_a_A_s[t * 512 + row * 16 + seg * 4], &pp_a_A[(pp_block0 * 32 + row) * K + t * 16 + seg * 4]);
      }
      for (int v = tid; v < 128; v += 64) {
        const int row = v / 8, seg = v % 8;
        pp_cp_async<16>(&pp_a_B_s[t * 512 + row * 32 + seg * 4], &pp_a_B[(t * 16 + row) * N + pp_block1 * 32 + seg * 4]);
      }
    }
    pp_cp_async_commit();
  }
  for (int k = 0; k < tiles; k++) {
    pp_cp_async_wait<1>();  /* MUTATE wait: tile k has landed (tile k + 1 may be in flight) */
    __syncthreads();  /* MUTATE barrier: tile k seen by all; stage (k + 2) % 3 read by none */
    if (k + 2 < tiles) {
      const int t = k + 2, s = (k + 2) % 3;
      for (int v = tid; v < 128; v += 64) {
        const int row = v / 4, seg = v % 4;
        pp_cp_async<16>(&pp_a_A_s[s * 512 + row * 16 + seg * 4], &pp_a_A[(pp_block0 * 32 + row) * K + t * 16 + seg * 4]);  /* MUTATE A source */
      }
      for (int v = tid; v < 128; v += 64) {
        const int row = v / 8, seg = v % 8;
        pp_cp_async<16>(&pp_a_B_s[s * 512 + row * 32 + seg * 4], &pp_a_B[(t * 16 + row) * N + pp_block1 * 32 + seg * 4]);
      }
    }
    pp_cp_async_commit();
    const int s = k % 3;
    /* MUTATE divergence */
    for (int kk = 0; kk < 16; kk++) {
      pp_copy16<float4>(&pp_a_B_r[0], &pp_a_B_s[s * 512 + kk * 32 + (int)threadIdx.x * 4]);  /* MUTATE fragment */
      #pragma unroll
      for (int i = 0; i < 4; i++) pp_a_A_r[i] = PP_LD(pp_a_A_s, s * 512 + ((int)threadIdx.y * 4 + i) * 16 + kk);
      #pragma unroll
      for (int i = 0; i < 4; i++) {
        #pragma unroll
        for (int j = 0; j < 4; j++) pp_a_C_r[i * 4 + j] += pp_a_A_r[i] * pp_a_B_r[j];
      }
    }
  }
  #pragma unroll
  for (int i = 0; i < 4; i++) {
    const int row = pp_block0 * 32 + (int)threadIdx.y * 4 + i;  /* MUTATE output row */
    #pragma unroll
    for (int j = 0; j < 4; j++) {
      const int col = pp_block1 * 32 + (int)threadIdx.x * 4 + j;
      PP_ST(pp_a_C, row * N + col) = PP_LD(pp_a_C, row * N + col) + pp_a_C_r[i * 4 + j];
    }
  }
}
