/* Internal state of the CPU CUDA runtime, shared by pp_cuda_cpu.cpp (launches, fibers,
 * barriers, shared memory), pp_cuda_cpu_check.cpp (bounds, races, cp.async, reports) and
 * pp_cuda_cpu_warp.cpp (warp collectives: ldmatrix, mma.sync).
 * Kernels never include this file: they see only pp_cuda_cpu.h. */
#ifndef PP_CUDA_CPU_RT_H
#define PP_CUDA_CPU_RT_H

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>

#include <memory>
#include <string>
#include <vector>

#include "pp_cuda_cpu.h"

#if defined(__x86_64__) && !defined(PP_CPU_UCONTEXT)
#define PP_RT_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

namespace pp_rt {

constexpr uint64_t STATIC_SHARED_LIMIT = 48 * 1024;  // codegen/cuda_printer.py's limit
constexpr uint64_t SHARED_LIMIT = 227 * 1024;        // the most one sm_90 block may opt in to
// Static shared arrays are laid out with gaps between them, so that a small overrun reaching
// through an address (cp.async, pp_copy16) meets no array rather than the next one.
constexpr uint64_t REDZONE = 128;
constexpr uint64_t STATIC_REGION = STATIC_SHARED_LIMIT + 64 * REDZONE;

enum Kind : uint8_t { K_PLAIN, K_COPY16, K_ASYNC, K_LAND, K_LDMATRIX };
enum Touch { T_READ, T_WRITE, T_ISSUE, T_LAND };

// One access, as the shadow remembers it. block1 == 0 means nobody.
struct Who {
  uint32_t block1;
  uint32_t line : 24, kind : 8;
  uint16_t thread, array;
};
// Accesses of one block's threads within the barrier interval `epoch`.
struct Cell { uint32_t epoch; Who w, r1, r2; };
// Accesses of the whole launch by block (global memory: blocks never synchronise).
struct BlockCell { Who w, r1, r2; };

struct FreeDeleter { void operator()(void *p) const { free(p); } };
template <typename T> using Zeroed = std::unique_ptr<T[], FreeDeleter>;
template <typename T> Zeroed<T> zeroed(size_t n) {
  return Zeroed<T>(static_cast<T *>(calloc(n ? n : 1, sizeof(T))));  // lazily zero pages
}

// Shadow memory of one piece of memory: a shared array, or global arrays that overlap.
struct Region {
  uintptr_t base, end;
  uint32_t gran;            // bytes per cell: the smallest element size of its arrays
  Zeroed<Cell> cells;
  Zeroed<BlockCell> blocks;  // global memory only
  Zeroed<Who> pending;       // shared memory only: the cp.async in flight into each cell
  uintptr_t original = 0;    // global memory: where the caller's data is (base is our copy)
  void *mapping = nullptr;   // global memory: the copy, between two guard pages
  size_t mapping_bytes = 0;
};

struct Array {
  std::string name;
  uintptr_t base, end;
  uint32_t itemsize;
  bool shared;
  int region;
  int64_t offset;  // dynamic shared: byte offset; static shared: -1
  int line;
};

struct Copy {  // a cp.async issued and not yet landed
  uintptr_t dst;
  uint32_t bytes, line;
  uint64_t group;
  int array;
  unsigned char data[16];
};

// WAITING: at a __syncthreads(); COLLECTIVE: at a warp collective, until its warp is there.
enum State { READY, RUNNING, WAITING, COLLECTIVE, EXITED };

// What one lane deposits at a warp collective: ldmatrix its 16-byte row (words 0-3); mma its
// a (words 0-3), b (4-5) and c (6-9, float bits).
struct Slot { uint32_t w[10]; };
// A warp's exchange buffer: collective n of the warp uses half n % 2 (pp_cuda_cpu_warp.cpp).
struct WarpExchange { Slot half[2][32]; };

struct Fiber {
  void *sp = nullptr;
  char *stack = nullptr;
  uint32_t tid = 0;
  pp_uint3 idx = {0, 0, 0};
  State state = READY;
  int barrier_line = 0, last_line = 0;
  uint64_t barriers = 0, committed = 0;
  // The warp collective it waits at or last executed (line, name) and how many it executed.
  int collective_line = 0;
  const char *collective = nullptr;
  uint64_t collectives = 0;
  std::vector<Copy> copies;
  void *fake_stack = nullptr;  // AddressSanitizer's, across switches
#ifndef PP_RT_ASM_SWITCH
  ucontext_t context;
#endif
};

struct Launch {
  pp_launch_desc desc;
  void (*entry)(void *);
  void *closure;
  uint32_t nthreads = 0;
  uint64_t nblocks = 0;
  std::vector<Array> arrays;
  std::vector<Region> regions;
  int last_array = -1;
  std::vector<Fiber> fibers;
  std::vector<uint32_t> order;
  uintptr_t pool_lo = 0, pool_hi = 0;
  size_t stack_size = 0, stack_stride = 0;
  Zeroed<unsigned char> arena;  // static region, then the launch's dynamic bytes
  uint64_t arena_bytes = 0, static_used = 0, static_next = 0;
  uint64_t block = 0;
  uint32_t epoch = 0, interval = 0;
  std::vector<WarpExchange> warps;  // one per whole warp; allocated by the first collective
  std::vector<char> warp_ready;
  uint32_t collective_waiting = 0;  // fibers in state COLLECTIVE
  Fiber *current = nullptr;
  bool in_fiber = false, failed = false;
  std::string report;
  void *sched_sp = nullptr;
#ifndef PP_RT_ASM_SWITCH
  ucontext_t sched_context;
#endif
  const void *sched_bottom = nullptr;
  size_t sched_size = 0;
  void *sched_fake = nullptr;
  sigjmp_buf jump;
  void *fault_address = nullptr;
};

extern Launch *g;

// Reports. fail() is called from a fiber: it records the report and abandons the launch (it
// never returns, so the access that failed never happens; the temporaries of its caller are
// never destroyed: a few hundred bytes per report).
[[noreturn]] void fail(const char *format, ...) __attribute__((format(printf, 1, 2)));
void set_report(const char *format, va_list args);
std::string thread_text(uint64_t block, uint32_t thread);
std::string element_text(int array, uintptr_t address);
std::string interval_text();

// Switches (pp_cuda_cpu.cpp).
[[noreturn]] void abandon_fiber();
void yield_fiber();             // from a fiber, back to the scheduler (it set its own state)
void resume_fiber(Fiber &f);    // from the scheduler, run f until it yields or exits

// Warp collectives (pp_cuda_cpu_warp.cpp): after a round of the block, run the warps whose
// lanes all wait at one collective; false (with a report) when a warp cannot complete.
bool run_warp_collectives();

// Checks (pp_cuda_cpu_check.cpp).
void land_all(Fiber &fiber, int line);
bool build_global_regions(std::string &why);
uintptr_t relocated(uintptr_t pointer);
std::string guard_text(uintptr_t address);
void restore_globals();
int add_region(uintptr_t base, uintptr_t end, uint32_t gran, bool shared);
void read_shared_row(const void *row, void *to, const char *what, int line);

}  // namespace pp_rt

#endif
