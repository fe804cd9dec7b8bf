/* Kernels whose results depend on thread order without a barrier, and the fixed one. */
extern "C" __global__ void neighbour(int32_t *__restrict__ pp_a_out) {
  PP_SHARED(int32_t, pp_a_S, 64);
  const int t = (int)threadIdx.x;
  PP_ST(pp_a_S, t) = t;
  PP_ST(pp_a_out, t) = PP_LD(pp_a_S, (t + 1) % 64);
}

extern "C" __global__ void neighbour_synced(int32_t *__restrict__ pp_a_out) {
  PP_SHARED(int32_t, pp_a_S, 64);
  const int t = (int)threadIdx.x;
  PP_ST(pp_a_S, t) = t;
  __syncthreads();
  PP_ST(pp_a_out, t) = PP_LD(pp_a_S, (t + 1) % 64);
}

/* Every thread stores the same value: looks harmless, is a write race all the same. */
extern "C" __global__ void same_value(int32_t *__restrict__ pp_a_out) {
  PP_ST(pp_a_out, 0) = 1;
}
