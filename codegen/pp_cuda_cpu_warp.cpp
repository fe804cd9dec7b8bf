/* The CPU CUDA runtime's warp collectives: ldmatrix and mma.sync, with each lane's exact
 * registers.
 *
 * A warp is 32 consecutive linear thread ids, as in CUDA. A lane reaching a collective
 * deposits its inputs in its warp's exchange buffer (ldmatrix: the 16-byte row it reads through
 * the checked path, as itself; mma: its a, b and c registers) and yields to the scheduler.
 * After each round of the block, the scheduler resumes the lanes of every warp whose 32 lanes
 * all wait at the same collective (same line, same name, same count of collectives so far),
 * in the interval's thread order and within the same barrier interval, until no warp is
 * complete; each lane then computes its own outputs from what all 32 lanes deposited, by the
 * PTX ISA's fragment layouts, written out below from their definitions (polypipe/gpu_mma.py
 * states the same layouts as isl maps; the tests compare the two). A warp whose lanes wait
 * elsewhere (at a __syncthreads, at another collective, or exited) can never complete: that
 * is reported, like a divergent __syncthreads.
 *
 * The exchange buffer is double: collective n of a warp uses half n % 2. A lane can deposit
 * into that half again only at collective n + 2, after passing collective n + 1, which needs
 * every lane of the warp to have arrived there, i.e. to have finished reading collective n's
 * deposits. So the second warp barrier that reusing one buffer would need is the warp's next
 * collective itself, and a collective costs each lane one switch there and one back.
 */
#include <stdio.h>
#include <string.h>

#include <utility>

#include "pp_cuda_cpu_rt.h"

namespace pp_rt {

static const uint32_t WARP = 32;

static const char *const LDMATRIX_NAMES[2][5] = {
    {"", "ldmatrix.x1", "ldmatrix.x2", "", "ldmatrix.x4"},
    {"", "ldmatrix.x1.trans", "ldmatrix.x2.trans", "", "ldmatrix.x4.trans"}};
static const char *const MMA_NAMES[2] = {"mma.sync.m16n8k16 (f16)", "mma.sync.m16n8k16 (bf16)"};

// ---- arriving and waiting ------------------------------------------------------------------
// The calling lane's fiber (nullptr outside a launch) and the half of its warp's exchange
// buffer this collective uses. Only whole warps may execute a collective: a lane of the
// partial last warp of a block is reported.
static Fiber *enter(const char *name, int line, Slot *&slots) {
  Fiber *f = g ? g->current : nullptr;
  if (!f) return nullptr;
  f->last_line = line;
  uint32_t whole = g->nthreads / WARP;
  if (f->tid / WARP >= whole)
    fail("mma.sync/ldmatrix is warp-collective: %s executes the %s at line %d, but the block "
         "has %u threads, not a multiple of 32, so its warp (threads %u-%u by linear id) is "
         "partial: a warp-collective operation needs all 32 lanes of the warp",
         thread_text(g->block, f->tid).c_str(), name, line, g->nthreads, whole * WARP,
         g->nthreads - 1);
  if (g->warps.empty()) {  // once per launch, before any lane holds a pointer into it
    g->warps.resize(whole);
    g->warp_ready.resize(whole);
  }
  slots = g->warps[f->tid / WARP].half[f->collectives % 2];
  return f;
}

// Wait (having deposited) until every lane of the warp has arrived at this collective.
static void wait_for_warp(Fiber &f, const char *name, int line) {
  f.state = COLLECTIVE;
  f.collective_line = line;
  f.collective = name;
  f.collectives++;
  g->collective_waiting++;
  yield_fiber();
}

// ---- the scheduler's part ------------------------------------------------------------------
static bool same_collective(const Fiber &a, const Fiber &b) {
  return b.state == COLLECTIVE && a.collective_line == b.collective_line &&
         a.collectives == b.collectives && a.collective == b.collective;
}

static bool warp_complete(uint32_t warp) {
  const Fiber *lanes = &g->fibers[warp * WARP];
  if (lanes[0].state != COLLECTIVE) return false;
  for (uint32_t k = 1; k < WARP; k++)
    if (!same_collective(lanes[0], lanes[k])) return false;
  return true;
}

// Why the warp of `waiting` cannot complete: what the first lane that is elsewhere does.
static void diverged_warp(const Fiber &waiting) {
  const Fiber *lanes = &g->fibers[waiting.tid / WARP * WARP], *other = nullptr;
  for (uint32_t k = 0; k < WARP && !other; k++)
    if (!same_collective(waiting, lanes[k])) other = &lanes[k];
  char elsewhere[512];
  if (other->state == EXITED)
    snprintf(elsewhere, sizeof elsewhere, "returned from the kernel (after line %d, having "
             "executed %llu warp-collective operations)", other->last_line,
             static_cast<unsigned long long>(other->collectives));
  else if (other->state == WAITING)
    snprintf(elsewhere, sizeof elsewhere, "waits at the __syncthreads() at line %d",
             other->barrier_line);
  else
    snprintf(elsewhere, sizeof elsewhere, "executes the %s at line %d (its warp-collective "
             "operation %llu)", other->collective, other->collective_line,
             static_cast<unsigned long long>(other->collectives));
  char text[1536];
  snprintf(text, sizeof text, "mma.sync/ldmatrix is warp-collective: %s executes the %s at "
           "line %d (its warp-collective operation %llu), but %s %s: all 32 lanes of a warp "
           "(here threads %u-%u by linear id) must execute the same mma.sync and ldmatrix "
           "operations (%s)", thread_text(g->block, waiting.tid).c_str(), waiting.collective,
           waiting.collective_line, static_cast<unsigned long long>(waiting.collectives),
           thread_text(g->block, other->tid).c_str(), elsewhere,
           waiting.tid / WARP * WARP, waiting.tid / WARP * WARP + WARP - 1,
           interval_text().c_str());
  g->report = text;
  g->failed = true;
}

// Resume the lanes of every complete warp (in the interval's order) until none is complete;
// then no fiber may still wait at a collective: nothing else can ever complete its warp.
bool run_warp_collectives() {
  uint32_t warps = uint32_t(g->warps.size());
  for (;;) {
    bool any = false;
    for (uint32_t w = 0; w < warps; w++) {
      g->warp_ready[w] = warp_complete(w);
      any |= bool(g->warp_ready[w]);
    }
    if (!any) break;
    for (uint32_t t : g->order) {  // a lane resumed here may arrive again: not seen twice
      Fiber &f = g->fibers[t];
      if (!g->warp_ready[t / WARP] || f.state != COLLECTIVE) continue;
      g->collective_waiting--;
      resume_fiber(f);
      if (g->failed) return false;
    }
  }
  if (!g->collective_waiting) return true;
  for (const Fiber &f : g->fibers)
    if (f.state == COLLECTIVE) {
      diverged_warp(f);
      break;
    }
  return false;
}

// ---- ldmatrix ------------------------------------------------------------------------------
// Column `col` (a 16-bit element) of a deposited 16-byte row, in memory order.
static uint16_t row_element(const Slot &row, int col) {
  uint16_t h;
  memcpy(&h, reinterpret_cast<const unsigned char *>(row.w) + 2 * col, 2);
  return h;
}

// Lane 8 j + r gives the address of row r of matrix j (lanes from 8 * matrices on give
// none, and their addresses are not looked at). Element h of register j of lane L is row
// L / 4, column 2 (L % 4) + h of matrix j, the lower 16 bits holding h = 0; .trans hands out
// the transposed matrix: row 2 (L % 4) + h, column L / 4.
extern "C" void pp_cpu_ldmatrix(uint32_t *r, int32_t matrices, int32_t trans, const void *row,
                                int32_t line) {
  const char *name = LDMATRIX_NAMES[trans != 0][matrices];
  Slot *slots;
  Fiber *f = enter(name, line, slots);
  if (!f) return;
  uint32_t lane = f->tid % WARP;
  if (lane < uint32_t(8 * matrices)) {
    char what[64];
    snprintf(what, sizeof what, "%s reads", name);
    read_shared_row(row, slots[lane].w, what, line);
  }
  wait_for_warp(*f, name, line);
  for (int j = 0; j < matrices; j++) {
    uint32_t value = 0;
    for (int h = 0; h < 2; h++) {
      int m_row = int(lane / 4), m_col = int(2 * (lane % 4)) + h;
      if (trans) std::swap(m_row, m_col);
      value |= uint32_t(row_element(slots[8 * j + m_row], m_col)) << (16 * h);
    }
    r[j] = value;
  }
}

// ---- mma.sync m16n8k16 ---------------------------------------------------------------------
// Widening a 16-bit float is exact. bfloat16 is the upper half of a float32; float16 has 5
// exponent bits (bias 15) and 10 fraction bits.
static float widen(uint16_t h, bool bf16) {
  uint32_t bits;
  if (bf16) {
    bits = uint32_t(h) << 16;
  } else {
    uint32_t sign = uint32_t(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu,
             fraction = h & 0x3ffu;
    if (exponent == 0) {  // zero or subnormal: fraction * 2^-24, exact in float
      float magnitude = float(fraction) * 5.9604644775390625e-8f;
      memcpy(&bits, &magnitude, 4);
      bits |= sign;
    } else if (exponent == 31) {  // infinity or NaN
      bits = sign | 0x7f800000u | (fraction << 13);
    } else {  // rebias 15 -> 127
      bits = sign | ((exponent + 112u) << 23) | (fraction << 13);
    }
  }
  float value;
  memcpy(&value, &bits, 4);
  return value;
}

static uint16_t half_of(uint32_t reg, int h) { return uint16_t(reg >> (16 * h)); }

// Each tile element is found where the PTX ISA's layout puts it (g = lane / 4, t = lane % 4).
// A (16 x 16): element i of lane 4 g + t is row g + 8 ((i / 2) % 2), column
// 2 t + i % 2 + 8 (i / 4); so A[row, k] is in lane 4 (row % 8) + (k % 8) / 2, element
// i = 4 (k / 8) + 2 (row / 8) + k % 2, i.e. register i / 2, half k % 2.
static float a_element(const Slot *s, int row, int k, bool bf16) {
  int lane = 4 * (row % 8) + (k % 8) / 2, reg = 2 * (k / 8) + row / 8;
  return widen(half_of(s[lane].w[reg], k % 2), bf16);
}

// B (16 x 8, k x n): element i of lane 4 g + t is k = 2 t + i % 2 + 8 (i / 2), n = g; so
// B[k, n] is in lane 4 n + (k % 8) / 2, register k / 8 (words 4-5), half k % 2.
static float b_element(const Slot *s, int k, int n, bool bf16) {
  int lane = 4 * n + (k % 8) / 2, reg = k / 8;
  return widen(half_of(s[lane].w[4 + reg], k % 2), bf16);
}

// C (16 x 8 floats): element i of lane 4 g + t is row g + 8 (i / 2), column 2 t + i % 2; so
// C[row, n] is in lane 4 (row % 8) + n / 2, element 2 (row / 8) + n % 2 (words 6-9).
static float c_element(const Slot *s, int row, int n) {
  int lane = 4 * (row % 8) + n / 2, i = 2 * (row / 8) + n % 2;
  float value;
  memcpy(&value, &s[lane].w[6 + i], 4);
  return value;
}

// D = A B + C over the warp's tiles; each lane computes its own 4 elements of D (C's layout).
// Products of two 16-bit floats are exact in float (11 + 11 or 8 + 8 significand bits; a
// bf16 product may still overflow or underflow float's range); the sum is accumulated in
// float in k order 0..15, starting from C. The tensor cores sum in another order and round
// differently, so the GPU agrees within about K float roundings, not bit for bit.
extern "C" void pp_cpu_mma_m16n8k16(float *d, const uint32_t *a, const uint32_t *b,
                                    const float *c, int32_t bf16, int32_t line) {
  const char *name = MMA_NAMES[bf16 != 0];
  Slot *slots;
  Fiber *f = enter(name, line, slots);
  if (!f) return;
  uint32_t lane = f->tid % WARP;
  Slot &mine = slots[lane];
  memcpy(mine.w, a, 16);
  memcpy(mine.w + 4, b, 8);
  memcpy(mine.w + 6, c, 16);  // before d is written: d may be c
  wait_for_warp(*f, name, line);
  for (int i = 0; i < 4; i++) {
    int row = int(lane / 4) + 8 * (i / 2), n = int(2 * (lane % 4)) + i % 2;
    float sum = c_element(slots, row, n);
    for (int k = 0; k < 16; k++)
      sum += a_element(slots, row, k, bf16 != 0) * b_element(slots, k, n, bf16 != 0);
    d[i] = sum;
  }
}

}  // namespace pp_rt
