/* Small kernels for single checks of the CPU runtime. */
extern "C" __global__ void store_at(float *__restrict__ pp_a_X, int64_t pp_i0) {
  if (threadIdx.x == 0) PP_ST(pp_a_X, pp_i0) = 7.0f;
}

/* Never-written shared memory and an unwritten register array read back as 0xFF bytes. */
extern "C" __global__ void unwritten(float *__restrict__ pp_a_X, float *__restrict__ pp_a_Y) {
  PP_SHARED(float, pp_a_S, 64);
  float __align__(16) pp_a_r[4];
  const int t = (int)threadIdx.x;
  PP_ST(pp_a_X, t) = PP_LD(pp_a_S, t);
  if (t % 4 == 0) pp_copy16<float4>(&pp_a_Y[t], &pp_a_r[0]);
}

/* A copy of the open group: no wait completes it before a commit. */
extern "C" __global__ void uncommitted(float *__restrict__ pp_a_X, float *__restrict__ pp_a_Y) {
  PP_SHARED(float, pp_a_S, 64);
  const int t = (int)threadIdx.x;
  pp_cp_async<4>(&pp_a_S[t], &pp_a_X[t]);
  pp_cp_async_wait<0>();
  PP_ST(pp_a_Y, t) = PP_LD(pp_a_S, t);
}

/* A register array indexed by a parameter: pp_i0 = 4 reaches past its end. */
extern "C" __global__ void register_overrun(float *__restrict__ pp_a_X, int64_t pp_i0) {
  float __align__(16) pp_a_r[4];
  #pragma unroll
  for (int i = 0; i < 4; i++) pp_a_r[i] = (float)i;
  PP_ST(pp_a_X, (int)threadIdx.x) = pp_a_r[pp_i0];
}

/* Far more stack than a fiber has. */
extern "C" __global__ void deep(float *__restrict__ pp_a_X, int64_t pp_i0) {
  volatile float pp_a_big[200000];
  for (int64_t i = 0; i < pp_i0; i++) pp_a_big[pp_i0 - 1 - i] = (float)i;
  PP_ST(pp_a_X, (int)threadIdx.x) = pp_a_big[0];
}

/* One interval's worth of shared traffic per barrier: for the launch-time figure. */
extern "C" __global__ void barriers(float *__restrict__ pp_a_X, int64_t pp_i0) {
  PP_SHARED(float, pp_a_S, 256);
  const int t = (int)threadIdx.x;
  float acc = 0.0f;
  for (int64_t k = 0; k < pp_i0; k++) {
    PP_ST(pp_a_S, (t + (int)k) % 256) = (float)k;
    __syncthreads();
    acc += PP_LD(pp_a_S, (t + 1) % 256);
    __syncthreads();
  }
  PP_ST(pp_a_X, (int)blockIdx.x * 256 + t) = acc;
}

/* A store that bypasses PP_ST (a printer bug): the guard page after the array's copy. */
extern "C" __global__ void raw_store(float *__restrict__ pp_a_X, int64_t pp_i0) {
  pp_a_X[pp_i0] = 1.0f;
}

/* X and Y may be one array under two names: a shift makes a race through the two names. */
extern "C" __global__ void alias(float *pp_a_X, float *pp_a_Y, int64_t pp_i0) {
  const int t = (int)threadIdx.x;
  PP_ST(pp_a_X, t) = PP_LD(pp_a_Y, (t + (int)pp_i0) % 64) + 1.0f;
}
