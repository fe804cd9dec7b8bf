/* The CPU CUDA runtime: launches, fibers, barriers and shared memory.
 *
 * A launch runs its blocks one after another; within a block every thread is a fiber. A fiber
 * runs uninterrupted until its next __syncthreads() or its exit; when every thread of the
 * block waits at the same barrier, the barrier completes and the threads resume in the
 * launch's order (a seeded permutation, or thread-id order forward or reverse). Nothing runs
 * concurrently, so the checks in pp_cuda_cpu_check.cpp see accesses one at a time. A fiber
 * also yields at a warp collective (ldmatrix, mma.sync); after each round the warps whose
 * lanes all wait at one are run on within the same barrier interval (pp_cuda_cpu_warp.cpp).
 *
 * Compiled once per build flavour into a shared library that every kernel links against.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>

#include "pp_cuda_cpu_rt.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define PP_RT_ASAN 1
#endif

extern "C" {
pp_cpu_coordinates pp_cpu_now;
}

namespace pp_rt {

Launch *g = nullptr;
static std::mutex launch_mutex;  // one launch at a time: the runtime's state is global

#ifdef PP_RT_ASAN
// AddressSanitizer's frames are larger (red zones around every local array).
static const size_t STACK_SIZE = 512 * 1024;
#else
static const size_t STACK_SIZE = 128 * 1024;
#endif

// ---- context switches ----------------------------------------------------------------------
#ifdef PP_RT_ASM_SWITCH
// swapcontext saves and restores the signal mask with a system call at every switch; these
// switches keep only what the SysV ABI says a call preserves (callee-saved registers, the
// SSE and x87 control words).
extern "C" void pp_rt_switch(void **save, void *next);
extern "C" __attribute__((visibility("hidden"), noreturn)) void pp_rt_fiber_main(Fiber *f);
asm(R"(
  .text
  .globl pp_rt_switch
  .hidden pp_rt_switch
  .type pp_rt_switch, @function
pp_rt_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size pp_rt_switch, .-pp_rt_switch
  .globl pp_rt_fiber_start
  .hidden pp_rt_fiber_start
  .type pp_rt_fiber_start, @function
pp_rt_fiber_start:
  movq %r12, %rdi
  call pp_rt_fiber_main
  ud2
  .size pp_rt_fiber_start, .-pp_rt_fiber_start
)");
extern "C" void pp_rt_fiber_start();

// The frame pp_rt_switch pops on the first switch into the fiber: control words, six
// callee-saved registers (r12 = the fiber), then pp_rt_fiber_start as the return address.
static void prepare_context(Fiber &f) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack) + g->stack_size - 64) & ~uintptr_t(15);
  uint64_t *frame = reinterpret_cast<uint64_t *>(top - 64);
  uint32_t mxcsr;
  uint16_t fpu;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpu));
  frame[0] = uint64_t(mxcsr) | (uint64_t(fpu) << 32);
  for (int k = 1; k < 7; k++) frame[k] = 0;
  frame[4] = reinterpret_cast<uint64_t>(&f);
  frame[7] = reinterpret_cast<uint64_t>(&pp_rt_fiber_start);
  f.sp = frame;
}
static inline void raw_switch_to(Fiber &f) { pp_rt_switch(&g->sched_sp, f.sp); }
static inline void raw_switch_back(Fiber &f) { pp_rt_switch(&f.sp, g->sched_sp); }
#else
extern "C" __attribute__((noreturn)) void pp_rt_fiber_main(Fiber *f);
static void ucontext_entry(unsigned high, unsigned low) {
  pp_rt_fiber_main(reinterpret_cast<Fiber *>((uintptr_t(high) << 32) | uintptr_t(low)));
}
static void prepare_context(Fiber &f) {
  getcontext(&f.context);
  f.context.uc_stack.ss_sp = f.stack;
  f.context.uc_stack.ss_size = g->stack_size;
  f.context.uc_link = nullptr;
  uintptr_t p = reinterpret_cast<uintptr_t>(&f);
  makecontext(&f.context, reinterpret_cast<void (*)()>(&ucontext_entry), 2,
              unsigned(p >> 32), unsigned(p & 0xffffffffu));
}
static inline void raw_switch_to(Fiber &f) { swapcontext(&g->sched_context, &f.context); }
static inline void raw_switch_back(Fiber &f) { swapcontext(&f.context, &g->sched_context); }
#endif

// AddressSanitizer must be told about every switch of stacks, or it takes the fiber's frames
// for a corrupted scheduler stack.
static void switch_to_fiber(Fiber &f) {
#ifdef PP_RT_ASAN
  __sanitizer_start_switch_fiber(&g->sched_fake, f.stack, g->stack_size);
#endif
  raw_switch_to(f);
#ifdef PP_RT_ASAN
  __sanitizer_finish_switch_fiber(g->sched_fake, nullptr, nullptr);
#endif
}

// From a fiber back to the scheduler; `final`: the fiber will never run again.
static void switch_to_scheduler(bool final) {
  Fiber &f = *g->current;
#ifdef PP_RT_ASAN
  __sanitizer_start_switch_fiber(final ? nullptr : &f.fake_stack, g->sched_bottom,
                                 g->sched_size);
#else
  (void)final;
#endif
  raw_switch_back(f);
#ifdef PP_RT_ASAN
  __sanitizer_finish_switch_fiber(f.fake_stack, &g->sched_bottom, &g->sched_size);
#endif
}

void yield_fiber() { switch_to_scheduler(false); }

void abandon_fiber() {
  g->current->state = EXITED;
  switch_to_scheduler(true);
  abort();  // never resumed
}

extern "C" void pp_rt_fiber_main(Fiber *f) {
#ifdef PP_RT_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &g->sched_bottom, &g->sched_size);
#endif
  g->entry(g->closure);
  land_all(*f, f->last_line);  // cp.async copies still in flight land when their thread exits
  abandon_fiber();
}

// ---- fiber stacks --------------------------------------------------------------------------
// One mapping for all stacks of a launch, unmapped when it ends; a PROT_NONE page below each
// stack turns an overflow into a fault that the SIGSEGV handler reports (kernels are built
// with -fstack-clash-protection, so a large frame cannot step over the page).
static bool map_stacks(uint32_t threads, std::string &why) {
  size_t page = size_t(sysconf(_SC_PAGESIZE));
  size_t stride = STACK_SIZE + page, bytes = stride * threads;
  void *p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    why = "could not map the fiber stacks";
    return false;
  }
  char *pool = static_cast<char *>(p);
  for (uint32_t t = 0; t < threads; t++) mprotect(pool + t * stride, page, PROT_NONE);
  g->stack_size = STACK_SIZE;
  g->stack_stride = stride;
  g->pool_lo = reinterpret_cast<uintptr_t>(pool);
  g->pool_hi = g->pool_lo + bytes;
  for (uint32_t t = 0; t < threads; t++) g->fibers[t].stack = pool + t * stride + page;
  return true;
}

static void unmap_stacks() {
  if (g->pool_hi) munmap(reinterpret_cast<void *>(g->pool_lo), g->pool_hi - g->pool_lo);
  g->pool_lo = g->pool_hi = 0;
}

// 0xFF bytes (NaN as floats) make a register read before any write show in the results.
static void start_fiber(Fiber &f) {
#ifdef PP_RT_ASAN
  __asan_unpoison_memory_region(f.stack, g->stack_size);  // an abandoned fiber's red zones
#endif
  memset(f.stack, 0xFF, g->stack_size);
  f.state = READY;
  f.barrier_line = f.last_line = 0;
  f.barriers = f.committed = 0;
  f.collective_line = 0;
  f.collective = nullptr;
  f.collectives = 0;
  f.copies.clear();
  f.fake_stack = nullptr;
  prepare_context(f);
}

// ---- fault signals -------------------------------------------------------------------------
#ifndef PP_RT_ASAN
static struct sigaction previous_segv, previous_bus;
static stack_t previous_altstack;
static char *altstack = nullptr;
static pthread_t launch_thread;

// A fault inside a fiber (a stack overflow, or a wild access outside the checked ones)
// abandons the launch; any other fault goes to the handler that was there before.
static void on_fault(int signal, siginfo_t *info, void *) {
  Launch *launch = g;
  if (launch && launch->in_fiber && pthread_equal(pthread_self(), launch_thread)) {
    launch->fault_address = info->si_addr;
    siglongjmp(launch->jump, signal);
  }
  sigaction(signal, signal == SIGSEGV ? &previous_segv : &previous_bus, nullptr);
}

static void install_fault_handler() {
  const size_t size = 64 * 1024;
  if (!altstack) altstack = static_cast<char *>(malloc(size));
  stack_t stack = {};
  stack.ss_sp = altstack;
  stack.ss_size = size;
  sigaltstack(&stack, &previous_altstack);
  struct sigaction action = {};
  action.sa_sigaction = &on_fault;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  sigaction(SIGSEGV, &action, &previous_segv);
  sigaction(SIGBUS, &action, &previous_bus);
  launch_thread = pthread_self();
}

static void remove_fault_handler() {
  sigaction(SIGSEGV, &previous_segv, nullptr);
  sigaction(SIGBUS, &previous_bus, nullptr);
  sigaltstack(&previous_altstack, nullptr);
}
#else
// AddressSanitizer handles faults itself, with a better report.
static void install_fault_handler() {}
static void remove_fault_handler() {}
#endif

static void report_fault(int signal) {
  Fiber *f = g->current;
  uintptr_t address = reinterpret_cast<uintptr_t>(g->fault_address);
  std::string who = f ? thread_text(g->block, f->tid) : std::string("the scheduler");
  int line = f ? f->last_line : 0;
  bool guard = f && address >= g->pool_lo && address < g->pool_hi &&
               (address - g->pool_lo) % g->stack_stride < g->stack_stride - g->stack_size;
  char text[512];
  if (guard)
    snprintf(text, sizeof text, "stack overflow: %s used more than the %zu KiB of its fiber "
             "stack (last checked operation at line %d); its local arrays are too large",
             who.c_str(), g->stack_size / 1024, line);
  else
    snprintf(text, sizeof text, "%s at address 0x%lx%s in %s (last checked operation at line "
             "%d): an access that bypassed PP_LD/PP_ST, e.g. a register array indexed out of "
             "bounds (build with sanitize='address' to find it)",
             signal == SIGBUS ? "bus error" : "segmentation fault",
             static_cast<unsigned long>(address), guard_text(address).c_str(), who.c_str(),
             line);
  g->report = text;
  g->failed = true;
}

// ---- reports -------------------------------------------------------------------------------
void set_report(const char *format, va_list args) {
  char text[4096];
  vsnprintf(text, sizeof text, format, args);
  g->report = text;
  g->failed = true;
}

void fail(const char *format, ...) {
  va_list args;
  va_start(args, format);
  set_report(format, args);
  va_end(args);
  if (g->in_fiber) abandon_fiber();
  abort();  // fail() is only ever called from a fiber
}

static bool refuse(const char *format, ...) __attribute__((format(printf, 1, 2)));
static bool refuse(const char *format, ...) {
  va_list args;
  va_start(args, format);
  set_report(format, args);
  va_end(args);
  return false;
}

static pp_uint3 unflatten(uint64_t index, const uint32_t *dims) {
  return {unsigned(index % dims[0]), unsigned(index / dims[0] % dims[1]),
          unsigned(index / dims[0] / dims[1])};
}

std::string thread_text(uint64_t block, uint32_t thread) {
  pp_uint3 t = unflatten(thread, g->desc.block), b = unflatten(block, g->desc.grid);
  char text[128];
  snprintf(text, sizeof text, "thread (%u,%u,%u) of block (%u,%u,%u)", t.x, t.y, t.z, b.x, b.y,
           b.z);
  return text;
}

std::string interval_text() {
  char text[160];
  snprintf(text, sizeof text, "barrier interval %u of the block, after %u completed "
           "__syncthreads()", g->interval, g->interval);
  return text;
}

// ---- shared memory -------------------------------------------------------------------------
static int find_shared(const char *name) {
  for (size_t i = 0; i < g->arrays.size(); i++)
    if (g->arrays[i].shared && g->arrays[i].name == name) return int(i);
  return -1;
}

static uintptr_t place_static(const char *name, uint64_t bytes, int line) {
  uint64_t total = g->static_used + bytes;
  if (total > STATIC_SHARED_LIMIT)
    fail("static shared memory: %s (%llu bytes, line %d) brings the kernel's static shared "
         "arrays to %llu bytes, more than the 48 KiB (49152 bytes) a kernel may declare "
         "statically: above that every shared array must be PP_SHARED_DYNAMIC", name,
         static_cast<unsigned long long>(bytes), line, static_cast<unsigned long long>(total));
  if (total + g->desc.dynamic_shared > SHARED_LIMIT)
    fail("shared memory: %llu static and %llu dynamic bytes exceed the 227 KiB (232448 bytes) "
         "of an sm_90 block (%s, line %d)", static_cast<unsigned long long>(total),
         static_cast<unsigned long long>(g->desc.dynamic_shared), name, line);
  uint64_t at = g->static_next;
  if (at + bytes > STATIC_REGION)
    fail("too many static shared arrays (at %s, line %d)", name, line);
  g->static_next = ((at + bytes + 15) & ~uint64_t(15)) + REDZONE;
  g->static_used = total;
  return reinterpret_cast<uintptr_t>(g->arena.get()) + at;
}

static uintptr_t place_dynamic(const char *name, uint64_t bytes, uint32_t itemsize,
                               int64_t offset, int line) {
  uint64_t end = uint64_t(offset) + bytes, given = g->desc.dynamic_shared;
  if (offset % itemsize)
    fail("PP_SHARED_DYNAMIC(%s) at line %d: offset %lld is not a multiple of its %u-byte "
         "elements", name, line, static_cast<long long>(offset), itemsize);
  if (end > given)
    fail("shared memory overflow: PP_SHARED_DYNAMIC(%s) at line %d needs bytes [%lld, %llu) "
         "of dynamic shared memory, but the launch gives %llu bytes (dynamic_shared): the "
         "launch geometry and the kernel disagree", name, line, static_cast<long long>(offset),
         static_cast<unsigned long long>(end), static_cast<unsigned long long>(given));
  for (const Array &a : g->arrays) {
    if (!a.shared || a.offset < 0) continue;
    uint64_t a_end = uint64_t(a.offset) + (a.end - a.base);
    if (uint64_t(offset) < a_end && uint64_t(a.offset) < end)
      fail("PP_SHARED_DYNAMIC(%s) at line %d takes bytes [%lld, %llu) of dynamic shared "
           "memory, overlapping %s (bytes [%lld, %llu), line %d)", name, line,
           static_cast<long long>(offset), static_cast<unsigned long long>(end),
           a.name.c_str(), static_cast<long long>(a.offset),
           static_cast<unsigned long long>(a_end), a.line);
  }
  return reinterpret_cast<uintptr_t>(g->arena.get()) + STATIC_REGION + REDZONE + offset;
}

// The storage of a shared array: placed by the first thread that declares it (the layout is
// the same in every block), the same address for every thread after that.
extern "C" void *pp_cpu_shared(const char *name, uint32_t itemsize, uint64_t count,
                               int64_t offset, int32_t line) {
  if (!g || !g->current) return nullptr;
  g->current->last_line = line;
  if (offset < -1)
    fail("PP_SHARED_DYNAMIC(%s) at line %d: negative offset %lld", name, line,
         static_cast<long long>(offset));
  if (count > SHARED_LIMIT)
    fail("shared array %s at line %d: %llu elements, more than any block's shared memory",
         name, line, static_cast<unsigned long long>(count));
  uint64_t bytes = count * itemsize;
  int found = find_shared(name);
  if (found >= 0) {
    const Array &a = g->arrays[found];
    if (a.itemsize != itemsize || a.end - a.base != bytes || a.offset != offset)
      fail("shared array %s is declared at line %d as %llu elements of %u bytes (offset %lld) "
           "and at line %d as %llu elements of %u bytes (offset %lld)", name, a.line,
           static_cast<unsigned long long>((a.end - a.base) / a.itemsize), a.itemsize,
           static_cast<long long>(a.offset), line, static_cast<unsigned long long>(count),
           itemsize, static_cast<long long>(offset));
    return reinterpret_cast<void *>(a.base);
  }
  uintptr_t base = offset < 0 ? place_static(name, bytes, line)
                              : place_dynamic(name, bytes, itemsize, offset, line);
  int region = add_region(base, base + bytes, itemsize, true);
  if (region < 0) fail("not enough memory for the shadow of shared array %s", name);
  g->arrays.push_back(Array{name, base, base + bytes, itemsize, true, region, offset, line});
  return reinterpret_cast<void *>(base);
}

// ---- barriers and the scheduler ------------------------------------------------------------
extern "C" void pp_cpu_syncthreads(int32_t line) {
  Fiber *f = g ? g->current : nullptr;
  if (!f) return;
  f->state = WAITING;
  f->barrier_line = f->last_line = line;
  f->barriers++;
  switch_to_scheduler(false);
}

static uint64_t mix(uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The order in which the threads of the block run in this barrier interval.
static void arrange(std::vector<uint32_t> &order) {
  uint32_t n = uint32_t(order.size());
  for (uint32_t t = 0; t < n; t++) order[t] = g->desc.order == 2 ? n - 1 - t : t;
  if (g->desc.order != 0) return;
  uint64_t state = mix(g->desc.seed ^ mix(g->block * 0x100000001b3ULL + g->interval));
  for (uint32_t t = n - 1; t > 0; t--) {
    state = mix(state);
    std::swap(order[t], order[state % (t + 1)]);
  }
}

void resume_fiber(Fiber &f) {
  g->current = &f;
  pp_cpu_now.thread_idx = f.idx;
  f.state = RUNNING;
  g->in_fiber = true;
  switch_to_fiber(f);
  g->in_fiber = false;
  g->current = nullptr;
}

static void diverged(const Fiber &waiting, const Fiber &other) {
  std::string a = thread_text(g->block, waiting.tid), b = thread_text(g->block, other.tid);
  char text[1024];
  if (other.state == EXITED)
    snprintf(text, sizeof text, "divergent __syncthreads(): %s waits at the __syncthreads() "
             "at line %d (its barrier %llu), but %s returned from the kernel (after line %d, "
             "having passed %llu barriers): every thread of a block must reach the same "
             "barriers", a.c_str(), waiting.barrier_line,
             static_cast<unsigned long long>(waiting.barriers), b.c_str(), other.last_line,
             static_cast<unsigned long long>(other.barriers));
  else
    snprintf(text, sizeof text, "divergent __syncthreads(): %s waits at the __syncthreads() "
             "at line %d, but %s waits at the one at line %d (%s): every thread of a block "
             "must reach the same barriers", a.c_str(), waiting.barrier_line, b.c_str(),
             other.barrier_line, interval_text().c_str());
  g->report = text;
  g->failed = true;
}

// After every thread ran: true when all of them exited; false when a barrier completes (or
// the threads diverged: then g->failed).
static bool block_finished() {
  const Fiber *waiting = nullptr, *other = nullptr;
  for (const Fiber &f : g->fibers) {
    if (f.state == WAITING && !waiting) waiting = &f;
  }
  if (!waiting) return true;
  for (const Fiber &f : g->fibers)
    if (f.state == EXITED || f.barrier_line != waiting->barrier_line) other = other ? other : &f;
  if (other) diverged(*waiting, *other);
  return false;
}

static bool run_block(uint64_t block) {
  g->block = block;
  pp_cpu_now.block_idx = unflatten(block, g->desc.grid);
  g->epoch++;
  g->interval = 0;
  g->collective_waiting = 0;
  memset(g->arena.get(), 0xFF, g->arena_bytes);  // never-written shared data reads as NaN
  for (Fiber &f : g->fibers) start_fiber(f);
  for (;;) {
    arrange(g->order);
    for (uint32_t t : g->order) {
      resume_fiber(g->fibers[t]);
      if (g->failed) return false;
    }
    // Only a kernel with warp collectives has fibers waiting at them: no cost to others.
    if (g->collective_waiting && !run_warp_collectives()) return false;
    if (block_finished()) return true;
    if (g->failed) return false;
    g->epoch++;
    g->interval++;
  }
}

static bool add_arrays() {
  const pp_launch_desc &d = g->desc;
  for (uint64_t i = 0; i < d.n_arrays; i++) {
    const pp_array_desc &a = d.arrays[i];
    uint64_t size = a.itemsize;
    if (!a.name || size == 0 || size > 16 || (size & (size - 1)) || a.nbytes % size)
      return refuse("array %llu (%s): element size %llu and %llu bytes do not make an array",
                    static_cast<unsigned long long>(i), a.name ? a.name : "unnamed",
                    static_cast<unsigned long long>(size),
                    static_cast<unsigned long long>(a.nbytes));
    if (a.address % size)
      return refuse("array %s at 0x%llx is not aligned to its %llu-byte elements", a.name,
                    static_cast<unsigned long long>(a.address),
                    static_cast<unsigned long long>(size));
    g->arrays.push_back(Array{a.name, uintptr_t(a.address), uintptr_t(a.address + a.nbytes),
                              uint32_t(size), false, -1, -1, 0});
  }
  if (g->arrays.size() > 60000) return refuse("too many arrays");
  std::string why;
  return build_global_regions(why) || refuse("%s", why.c_str());
}

static bool setup() {
  const pp_launch_desc &d = g->desc;
  const uint32_t *b = d.block, *n = d.grid;
  uint64_t threads = uint64_t(b[0]) * b[1] * b[2];
  g->nblocks = uint64_t(n[0]) * n[1] * n[2];
  if (!threads || !g->nblocks || threads > 1024 || b[0] > 1024 || b[1] > 1024 || b[2] > 64 ||
      n[0] > 0x7fffffffu || n[1] > 65535 || n[2] > 65535 || g->nblocks >= (1ULL << 32))
    return refuse("launch geometry: grid (%u,%u,%u) and block (%u,%u,%u) are not a valid "
                  "launch (at most 1024 threads a block, block.z <= 64, grid.y and grid.z "
                  "<= 65535, every dimension at least 1)", n[0], n[1], n[2], b[0], b[1], b[2]);
  if (d.dynamic_shared > SHARED_LIMIT)
    return refuse("dynamic shared memory: %llu bytes asked, more than the 227 KiB (232448 "
                  "bytes) of an sm_90 block", static_cast<unsigned long long>(d.dynamic_shared));
  if (d.order < 0 || d.order > 2) return refuse("thread order %d is not 0, 1 or 2", d.order);
  if (!add_arrays()) return false;
  g->nthreads = uint32_t(threads);
  g->fibers.resize(threads);
  g->order.resize(threads);
  for (uint32_t t = 0; t < threads; t++) {
    g->fibers[t].tid = t;
    g->fibers[t].idx = unflatten(t, b);
  }
  std::string why;
  if (!map_stacks(g->nthreads, why)) return refuse("%s", why.c_str());
  g->arena_bytes = STATIC_REGION + REDZONE + d.dynamic_shared + REDZONE;
  g->arena = zeroed<unsigned char>(g->arena_bytes);
  if (!g->arena) return refuse("not enough memory for shared memory");
  g->static_next = REDZONE;
  pp_cpu_now.block_dim = {b[0], b[1], b[2]};
  pp_cpu_now.grid_dim = {n[0], n[1], n[2]};
  return true;
}

static void run_blocks() {
  for (uint64_t block = 0; block < g->nblocks; block++)
    if (!run_block(block)) return;
}

}  // namespace pp_rt

using namespace pp_rt;

// Run one launch; 0 on success, 1 with desc->report filled on the first error. `kinds` has
// a letter per kernel parameter ('p' for pointers), `*args` the parameters' addresses.
extern "C" int pp_cpu_run(const pp_launch_desc *desc, const char *kinds, void ***args,
                          void (*entry)(void *), void *closure) {
  std::lock_guard<std::mutex> lock(launch_mutex);
  Launch launch;
  launch.desc = *desc;
  launch.entry = entry;
  launch.closure = closure;
  g = &launch;
  void **given = *args;
  size_t count = strlen(kinds);
  std::vector<uintptr_t> pointers(count);
  std::vector<void *> swapped(given, given + count);
  if (setup()) {
    for (size_t k = 0; k < count; k++)
      if (kinds[k] == 'p') {
        pointers[k] = relocated(*static_cast<uintptr_t *>(given[k]));
        swapped[k] = &pointers[k];
      }
    *args = swapped.data();
    install_fault_handler();
    int signal = sigsetjmp(launch.jump, 1);
    if (signal == 0)
      run_blocks();
    else {
      launch.in_fiber = false;
      report_fault(signal);  // a fault inside a fiber: the fibers are abandoned
    }
    remove_fault_handler();
    *args = given;
  }
  restore_globals();
  unmap_stacks();
  if (launch.failed && desc->report && desc->report_size) {
    size_t n = std::min(launch.report.size(), size_t(desc->report_size - 1));
    memcpy(desc->report, launch.report.data(), n);
    desc->report[n] = '\0';
  }
  g = nullptr;
  return launch.failed ? 1 : 0;
}
