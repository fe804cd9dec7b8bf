/* Every item of the device interface once, for nvcc (sm_90) and for the CPU runtime:
 * out[t] = 2 * in[t] + 1 for 64 threads, through shared memory filled by cp.async of each
 * size, 16-byte copies of every vector type, and the fault record. */
extern "C" __global__ void __launch_bounds__(64, 2) interface(float *__restrict__ pp_a_out, float *__restrict__ pp_a_in, double *__restrict__ pp_a_d, int32_t *__restrict__ pp_a_i, int64_t *__restrict__ pp_a_l, int64_t pp_i0, double pp_f0, int64_t *pp_fault) {
  PP_SHARED(float, pp_a_S, 64);
  PP_SHARED_DYNAMIC(double, pp_a_D, 64, 0);
  PP_SHARED_DYNAMIC(int32_t, pp_a_I, 64, 512);
  PP_SHARED_DYNAMIC(int64_t, pp_a_L, 64, 768);
  float __align__(16) pp_a_r[4];
  double __align__(16) pp_a_dr[2];
  int32_t __align__(16) pp_a_ir[4];
  int64_t __align__(16) pp_a_lr[2];
  int64_t pp_err = 0, pp_warn = 0;
  const int t = (int)threadIdx.x + (int)blockIdx.x * (int)blockDim.x;
  (void)gridDim.x;
  pp_cp_async<4>(&pp_a_S[t], &pp_a_in[t]);
  pp_cp_async<8>(&pp_a_D[t], &pp_a_d[t]);
  pp_cp_async_commit();
  if (t % 4 == 0) pp_cp_async<16>(&pp_a_I[t], &pp_a_i[t]);
  pp_cp_async_commit();
  pp_cp_async_wait<1>();
  if (t % 2 == 0) pp_cp_async<16>(&pp_a_L[t], &pp_a_l[t]);
  pp_cp_async_commit();
  pp_cp_async_wait<0>();
  __syncthreads();
  const int q = t / 4 * 4, h = t / 2 * 2;
  pp_copy16<float4>(&pp_a_r[0], &pp_a_S[q]);
  pp_copy16<double2>(&pp_a_dr[0], &pp_a_D[h]);
  pp_copy16<int4>(&pp_a_ir[0], &pp_a_I[q]);
  pp_copy16<longlong2>(&pp_a_lr[0], &pp_a_L[h]);
  const float value = pp_a_r[t % 4] * 2.0f + (float)(pp_a_dr[t % 2] - (double)pp_a_ir[t % 4] - (double)pp_a_lr[t % 2]) + (float)pp_f0;
  if (t >= pp_i0) pp_err = 3;
  if (pp_err) { if (pp_claim_fault(pp_fault, pp_err)) { pp_fault[1] = t; } }
  else PP_ST(pp_a_out, t) = value;
  if (t == 5) pp_warn = 4;
  if (pp_warn) pp_fault_or(&pp_fault[2], pp_warn);
}
