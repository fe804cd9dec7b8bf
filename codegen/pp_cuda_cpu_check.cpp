/* The CPU CUDA runtime's checks: bounds, alignment, races and cp.async.
 *
 * Every access of a global or shared array element goes through here before it happens. The
 * shadow of each element remembers who touched it: within the current barrier interval of
 * the block (a Cell, for "missing barrier" races between threads of a block) and, for global
 * memory, within the whole launch (a BlockCell, for races between blocks, which never
 * synchronise). Two readers are kept per element, so that any later writer that is not both
 * of them meets one it conflicts with.
 *
 * A cp.async reads its global source when issued (the bytes are kept) and marks its shared
 * destination pending; the bytes land when a pp_cp_async_wait of the same thread covers the
 * copy's group, or when the thread exits. Touching a pending element is a missing wait.
 * An ldmatrix row (read_shared_row) is checked as one 16-byte read of its lane.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "pp_cuda_cpu_rt.h"

namespace pp_rt {

// Where an access goes when there is no launch to stop (a kernel called outside pp_cpu_run).
alignas(64) static unsigned char scratch[64];
static const int STACK = -2;  // locate(): a fiber's stack, i.e. a register array: unchecked

static inline bool in_stacks(uintptr_t p) { return p >= g->pool_lo && p < g->pool_hi; }

static inline Fiber *current(int line) {
  Fiber *f = g ? g->current : nullptr;
  if (f) f->last_line = line;
  return f;
}

// ---- shadow regions ------------------------------------------------------------------------
int add_region(uintptr_t base, uintptr_t end, uint32_t gran, bool shared) {
  Region r;
  r.base = base, r.end = end, r.gran = gran;
  size_t cells = (end - base + gran - 1) / gran;
  r.cells = zeroed<Cell>(cells);
  if (shared)
    r.pending = zeroed<Who>(cells);
  else
    r.blocks = zeroed<BlockCell>(cells);
  if (!r.cells || (shared ? !r.pending : !r.blocks)) return -1;
  g->regions.push_back(std::move(r));
  return int(g->regions.size() - 1);
}

static uint64_t gcd(uint64_t a, uint64_t b) { return b ? gcd(b, a % b) : a; }

// The kernel runs on a copy of each piece of global memory, mapped between two PROT_NONE
// pages at the same address modulo the page size (so alignment is the caller's): no other
// array lies next to it, so an overrun reaching through an address (cp.async, pp_copy16)
// meets no array, and an unchecked one faults instead of corrupting the process.
static bool relocate(Region &r, uintptr_t lo, uintptr_t hi) {
  size_t page = size_t(sysconf(_SC_PAGESIZE)), offset = lo % page;
  size_t data = (offset + (hi - lo) + page - 1) / page * page;
  void *p = mmap(nullptr, data + 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED) return false;
  char *mapping = static_cast<char *>(p);
  mprotect(mapping, page, PROT_NONE);
  mprotect(mapping + page + data, page, PROT_NONE);
  r.mapping = p, r.mapping_bytes = data + 2 * page, r.original = lo;
  r.base = reinterpret_cast<uintptr_t>(mapping + page + offset);
  r.end = r.base + (hi - lo);
  memcpy(reinterpret_cast<void *>(r.base), reinterpret_cast<const void *>(lo), hi - lo);
  return true;
}

// Where the kernel sees a pointer argument: in our copy when it points into an array.
uintptr_t relocated(uintptr_t pointer) {
  for (const Region &r : g->regions)
    if (r.mapping && pointer >= r.original && pointer < r.original + (r.end - r.base))
      return pointer - r.original + r.base;
  for (const Region &r : g->regions)  // an empty array: its base only
    if (r.mapping && pointer == r.original) return r.base;
  return pointer;
}

// " (next to pp_a_A)" when a fault hit the guard pages around an array's copy.
std::string guard_text(uintptr_t address) {
  for (const Region &r : g->regions) {
    uintptr_t lo = reinterpret_cast<uintptr_t>(r.mapping);
    if (!r.mapping || address < lo || address >= lo + r.mapping_bytes) continue;
    for (const Array &a : g->arrays)
      if (!a.shared && &g->regions[a.region] == &r)
        return std::string(address < r.base ? " (before " : " (past the end of ") + a.name + ")";
  }
  return "";
}

// Copy the results back into the caller's arrays (after an error too: what the kernel had
// written by then, as on a GPU).
void restore_globals() {
  for (Region &r : g->regions) {
    if (!r.mapping) continue;
    memcpy(reinterpret_cast<void *>(r.original), reinterpret_cast<const void *>(r.base),
           r.end - r.base);
    munmap(r.mapping, r.mapping_bytes);
    r.mapping = nullptr;
  }
}

// Global arrays that overlap (one NumPy array passed twice, or two views of one buffer) share
// one shadow and one copy, so that a race through two names of the same memory still shows.
bool build_global_regions(std::string &why) {
  std::vector<int> sorted;
  for (size_t i = 0; i < g->arrays.size(); i++) sorted.push_back(int(i));
  std::sort(sorted.begin(), sorted.end(),
            [](int a, int b) { return g->arrays[a].base < g->arrays[b].base; });
  for (size_t k = 0; k < sorted.size();) {
    uintptr_t lo = g->arrays[sorted[k]].base, hi = g->arrays[sorted[k]].end;
    size_t last = k + 1;
    while (last < sorted.size() && g->arrays[sorted[last]].base < hi)
      hi = std::max(hi, g->arrays[sorted[last++]].end);
    uint64_t gran = 0;
    for (size_t m = k; m < last; m++) {
      const Array &a = g->arrays[sorted[m]];
      gran = gcd(gcd(gran, a.itemsize), a.base - lo);
    }
    int region = add_region(lo, hi, uint32_t(gran), false);
    if (region < 0 || !relocate(g->regions[region], lo, hi)) {
      why = "not enough memory for the shadow and copy of " + g->arrays[sorted[k]].name;
      return false;
    }
    for (size_t m = k; m < last; m++) {
      Array &a = g->arrays[sorted[m]];
      a.region = region;
      a.base += g->regions[region].base - lo;
      a.end += g->regions[region].base - lo;
    }
    k = last;
  }
  return true;
}

// ---- finding arrays ------------------------------------------------------------------------
// The array a PP_LD/PP_ST names by its base; exact bases first (an array passed twice has
// two names for one base: prefer the one of the accessed type).
static int array_of_base(uintptr_t base, uint32_t bytes) {
  int last = g->last_array;
  if (last >= 0 && g->arrays[last].base == base && g->arrays[last].itemsize == bytes)
    return last;
  int exact = -1, inside = -1;
  for (size_t i = 0; i < g->arrays.size(); i++) {
    const Array &a = g->arrays[i];
    if (a.base == base && a.itemsize == bytes) return g->last_array = int(i);
    if (a.base == base && exact < 0) exact = int(i);
    if (base > a.base && base < a.end && inside < 0) inside = int(i);
  }
  return exact >= 0 ? exact : inside;
}

static int array_at(uintptr_t address) {
  for (size_t i = 0; i < g->arrays.size(); i++)
    if (address >= g->arrays[i].base && address < g->arrays[i].end) return int(i);
  return -1;
}

static int nearest_array(uintptr_t address) {
  int best = -1;
  uintptr_t distance = ~uintptr_t(0);
  for (size_t i = 0; i < g->arrays.size(); i++) {
    const Array &a = g->arrays[i];
    uintptr_t d = address < a.base ? a.base - address : address - a.end + 1;
    if (d < distance) distance = d, best = int(i);
  }
  return best;
}

std::string element_text(int array, uintptr_t address) {
  const Array &a = g->arrays[array];
  int64_t bytes = int64_t(address - a.base);
  int64_t index = bytes >= 0 ? bytes / a.itemsize : -((-bytes + a.itemsize - 1) / a.itemsize);
  char text[256];
  snprintf(text, sizeof text, "%s[%lld]", a.name.c_str(), static_cast<long long>(index));
  return text;
}

static std::string place_text(uintptr_t address) {
  if (in_stacks(address)) return "a register array";
  int i = array_at(address);
  if (i >= 0) return element_text(i, address);
  char text[64];
  snprintf(text, sizeof text, "address 0x%lx", static_cast<unsigned long>(address));
  return text;
}

static std::string me_text() { return thread_text(g->block, g->current->tid); }

// ---- reports -------------------------------------------------------------------------------
static const char *verb(Touch touch, Kind kind) {
  switch (touch) {
    case T_READ: return kind == K_ASYNC ? "reads (as a cp.async source)"
                      : kind == K_COPY16 ? "reads (pp_copy16)"
                      : kind == K_LDMATRIX ? "reads (ldmatrix)" : "reads";
    case T_WRITE: return kind == K_COPY16 ? "writes (pp_copy16)" : "writes";
    case T_ISSUE: return "issues a cp.async into";
    default: return "lands (pp_cp_async_wait or exit) a cp.async in";
  }
}

static const char *past(const Who &who, bool wrote) {
  if (wrote)
    return who.kind == K_ASYNC ? "issued a cp.async into" : who.kind == K_LAND
               ? "landed a cp.async in" : who.kind == K_COPY16 ? "wrote (pp_copy16)" : "wrote";
  return who.kind == K_ASYNC ? "read (as a cp.async source)"
         : who.kind == K_COPY16 ? "read (pp_copy16)"
         : who.kind == K_LDMATRIX ? "read (ldmatrix)" : "read";
}

[[noreturn]] static void race_in_block(const Who &self, uintptr_t address, Touch touch,
                                       const Who &other, bool wrote, uintptr_t cell) {
  fail("missing barrier: %s %s %s at line %u, and %s %s %s at line %u, in the same barrier "
       "interval (%s): no __syncthreads() separates these accesses of two threads, one of "
       "them a write", me_text().c_str(), verb(touch, Kind(self.kind)),
       element_text(self.array, address).c_str(), unsigned(self.line),
       thread_text(other.block1 - 1, other.thread).c_str(), past(other, wrote),
       element_text(other.array, cell).c_str(), unsigned(other.line), interval_text().c_str());
}

[[noreturn]] static void race_between_blocks(const Who &self, uintptr_t address, Touch touch,
                                             const Who &other, bool wrote, uintptr_t cell) {
  fail("race between blocks: %s %s %s at line %u, and %s %s %s at line %u, in the same "
       "launch: blocks never synchronise within a launch, so no two blocks may touch one "
       "global element when either writes it", me_text().c_str(),
       verb(touch, Kind(self.kind)), element_text(self.array, address).c_str(),
       unsigned(self.line), thread_text(other.block1 - 1, other.thread).c_str(),
       past(other, wrote), element_text(other.array, cell).c_str(), unsigned(other.line));
}

[[noreturn]] static void missing_wait(const Who &self, uintptr_t address, Touch touch,
                                      const Who &issuer) {
  bool same = issuer.thread == self.thread;
  fail("missing wait: %s %s %s at line %u while the cp.async into it that %s issued at line "
       "%u is still in flight: no pp_cp_async_wait of %s has covered that copy's group yet "
       "(%s)", me_text().c_str(), verb(touch, Kind(self.kind)),
       element_text(self.array, address).c_str(), unsigned(self.line),
       same ? "this same thread" : thread_text(issuer.block1 - 1, issuer.thread).c_str(),
       unsigned(issuer.line), same ? "this thread" : "the issuing thread",
       interval_text().c_str());
}

// ---- the shadow ----------------------------------------------------------------------------
// Who accessed: `same` tells whether a recorded access is the current party's own.
template <typename Same>
static const Who *conflict(Who &w, Who &r1, Who &r2, bool write, Same same, bool &wrote) {
  wrote = false;
  if (w.block1 && !same(w)) return wrote = true, &w;
  if (write && r1.block1 && !same(r1)) return &r1;
  if (write && r2.block1 && !same(r2)) return &r2;
  return nullptr;
}

template <typename Same>
static void remember(Who &w, Who &r1, Who &r2, const Who &self, bool write, Same same) {
  if (write) {
    if (!w.block1) w = self;
  } else if (!r1.block1) {
    r1 = self;
  } else if (!same(r1) && !r2.block1) {
    r2 = self;
  }
}

static inline Who who_now(int array, int line, Kind kind) {
  Who w;
  w.block1 = uint32_t(g->block + 1);
  w.line = uint32_t(line) & 0xFFFFFFu;
  w.kind = kind;
  w.thread = uint16_t(g->current->tid);
  w.array = uint16_t(array);
  return w;
}

// Check and record an access of [address, address + bytes) within array `array`.
static void touch(int array, uintptr_t address, uint32_t bytes, Touch what, Kind kind,
                  int line) {
  Region &r = g->regions[g->arrays[array].region];
  const Who self = who_now(array, line, kind);
  const bool write = what != T_READ;
  auto same_thread = [&](const Who &o) { return o.thread == self.thread; };
  auto same_block = [&](const Who &o) { return o.block1 == self.block1; };
  size_t first = (address - r.base) / r.gran, last = (address + bytes - 1 - r.base) / r.gran;
  for (size_t c = first; c <= last; c++) {
    uintptr_t cell = r.base + c * r.gran, at = std::max(cell, address);
    bool wrote;
    if (r.pending) {
      if (r.pending[c].block1 && what != T_LAND) missing_wait(self, at, what, r.pending[c]);
      if (what == T_ISSUE) r.pending[c] = self;
      if (what == T_LAND) r.pending[c] = Who{};
    }
    Cell &s = r.cells[c];
    if (s.epoch != g->epoch) s = Cell{g->epoch, {}, {}, {}};
    if (const Who *o = conflict(s.w, s.r1, s.r2, write, same_thread, wrote))
      race_in_block(self, at, what, *o, wrote, cell);
    remember(s.w, s.r1, s.r2, self, write, same_thread);
    if (r.blocks) {
      BlockCell &b = r.blocks[c];
      if (const Who *o = conflict(b.w, b.r1, b.r2, write, same_block, wrote))
        race_between_blocks(self, at, what, *o, wrote, cell);
      remember(b.w, b.r1, b.r2, self, write, same_block);
    }
  }
}

// ---- PP_LD / PP_ST -------------------------------------------------------------------------
[[noreturn]] static void bad_base(uintptr_t base, uintptr_t address, uint32_t bytes,
                                  bool write, int line) {
  int n = nearest_array(base);
  fail("unregistered pointer: %s %s %u bytes at 0x%lx at line %d through 0x%lx, which points "
       "into no registered array%s%s; PP_LD/PP_ST take a kernel's array parameters and its "
       "shared arrays", me_text().c_str(), write ? "writes" : "reads", bytes,
       static_cast<unsigned long>(address), line, static_cast<unsigned long>(base),
       n >= 0 ? " (the nearest is " : "", n >= 0 ? (g->arrays[n].name + ")").c_str() : "");
}

extern "C" void *pp_cpu_access(const void *base_pointer, const void *address_pointer,
                               uint32_t bytes, int32_t write, int32_t line) {
  if (!current(line)) return scratch;
  uintptr_t base = reinterpret_cast<uintptr_t>(base_pointer);
  uintptr_t address = reinterpret_cast<uintptr_t>(address_pointer);
  if (in_stacks(base)) return const_cast<void *>(address_pointer);  // a register array
  int i = array_of_base(base, bytes);
  if (i < 0) bad_base(base, address, bytes, write, line);
  const Array &a = g->arrays[i];
  if (bytes != a.itemsize)
    fail("type mismatch: %s %s %s at line %d as a %u-byte type, but %s has %u-byte elements",
         me_text().c_str(), write ? "writes" : "reads", element_text(i, address).c_str(), line,
         bytes, a.name.c_str(), a.itemsize);
  if (address < a.base || address + bytes > a.end || (address - a.base) % bytes)
    fail("out of bounds: %s %s %s at line %d, but %s has %llu elements (%u bytes each); the "
         "access was not made", me_text().c_str(), write ? "writes" : "reads",
         element_text(i, address).c_str(), line, a.name.c_str(),
         static_cast<unsigned long long>((a.end - a.base) / a.itemsize), a.itemsize);
  touch(i, address, bytes, write ? T_WRITE : T_READ, K_PLAIN, line);
  return const_cast<void *>(address_pointer);
}

// ---- address-based accesses: cp.async and pp_copy16 ----------------------------------------
// The array that holds all of [address, address + bytes), or STACK; otherwise a report that
// names the nearest array.
static int locate(uintptr_t address, uint32_t bytes, const char *what, int line) {
  if (in_stacks(address)) return STACK;
  int i = array_at(address);
  if (i >= 0 && address + bytes <= g->arrays[i].end) return i;
  if (i >= 0)
    fail("out of bounds: %s %s %u bytes from %s at line %d, reaching past the end of %s (%llu "
         "elements of %u bytes); the access was not made", me_text().c_str(), what, bytes,
         element_text(i, address).c_str(), line, g->arrays[i].name.c_str(),
         static_cast<unsigned long long>((g->arrays[i].end - g->arrays[i].base) /
                                         g->arrays[i].itemsize), g->arrays[i].itemsize);
  int n = nearest_array(address);
  if (n < 0)
    fail("out of bounds: %s %s %u bytes at address 0x%lx at line %d, in no array and no "
         "thread's stack", me_text().c_str(), what, bytes, static_cast<unsigned long>(address),
         line);
  const Array &a = g->arrays[n];
  bool before = address < a.base;
  fail("out of bounds: %s %s %u bytes at %s at line %d: no array holds that address; the "
       "nearest is %s (%llu elements of %u bytes), %llu bytes %s; the access was not made",
       me_text().c_str(), what, bytes, element_text(n, address).c_str(), line, a.name.c_str(),
       static_cast<unsigned long long>((a.end - a.base) / a.itemsize), a.itemsize,
       static_cast<unsigned long long>(before ? a.base - address : address - a.end),
       before ? "before its start" : "past its end");
}

static void check_alignment(uintptr_t address, uint32_t alignment, const char *what,
                            int line) {
  if (address % alignment == 0) return;
  fail("misaligned access: %s %s %s (address 0x%lx) at line %d, %u bytes past a %u-byte "
       "boundary: a %u-byte access must be %u-byte aligned (the GPU raises a "
       "misaligned-address error)", me_text().c_str(), what, place_text(address).c_str(),
       static_cast<unsigned long>(address), line, unsigned(address % alignment), alignment,
       alignment, alignment);
}

extern "C" void pp_cpu_cp_async(void *shared, const void *global, uint32_t bytes,
                                int32_t line) {
  pp_cpu_cp_async_zfill(shared, global, bytes, bytes, line);
}

// A cp.async that reads only the first `valid` bytes and zero-fills the rest (PTX's src-size
// operand), for the edges of partial tiles. The source address is checked as for a full copy
// only over the bytes read; with none read it must still lie in a global array (PTX reads
// nothing then, but polypipe keeps every address it issues valid).
extern "C" void pp_cpu_cp_async_zfill(void *shared, const void *global, uint32_t bytes,
                                      uint32_t valid, int32_t line) {
  Fiber *f = current(line);
  if (!f) return;
  uintptr_t to = reinterpret_cast<uintptr_t>(shared), from = reinterpret_cast<uintptr_t>(global);
  if (valid > bytes)
    fail("cp.async at line %d reads %u source bytes of a %u-byte copy: at most %u", line,
         valid, bytes, bytes);
  check_alignment(from, bytes, "cp.async reads", line);
  check_alignment(to, bytes, "cp.async writes", line);
  int source = locate(from, valid ? valid : 1, "cp.async reads", line);
  int target = locate(to, bytes, "cp.async writes", line);
  if (target < 0 || !g->arrays[target].shared)
    fail("cp.async into non-shared memory: %s at line %d copies into %s; a cp.async writes "
         "shared memory", me_text().c_str(), line, place_text(to).c_str());
  if (source < 0 || g->arrays[source].shared)
    fail("cp.async from non-global memory: %s at line %d copies from %s; a cp.async reads "
         "global memory", me_text().c_str(), line, place_text(from).c_str());
  if (valid && valid % g->arrays[source].itemsize)
    fail("cp.async at line %d reads %u bytes of %s, not a whole number of its %u-byte "
         "elements", line, valid, g->arrays[source].name.c_str(), g->arrays[source].itemsize);
  if (valid) touch(source, from, valid, T_READ, K_ASYNC, line);
  touch(target, to, bytes, T_ISSUE, K_ASYNC, line);
  Copy copy;
  copy.dst = to, copy.bytes = bytes, copy.line = uint32_t(line);
  copy.group = f->committed, copy.array = target;
  memset(copy.data, 0, sizeof copy.data);
  memcpy(copy.data, global, valid);
  f->copies.push_back(copy);
}

extern "C" void pp_cpu_commit(int32_t line) {
  if (Fiber *f = current(line)) f->committed++;
}

static void land(const Copy &copy, int line) {
  touch(copy.array, copy.dst, copy.bytes, T_LAND, K_LAND, line);
  memcpy(reinterpret_cast<void *>(copy.dst), copy.data, copy.bytes);
}

// Land the copies of every committed group but the newest `pending` ones; copies of the open
// (uncommitted) group stay in flight, as on the hardware.
extern "C" void pp_cpu_wait(int32_t pending, int32_t line) {
  Fiber *f = current(line);
  if (!f) return;
  uint64_t done = f->committed > uint64_t(pending) ? f->committed - uint64_t(pending) : 0;
  size_t kept = 0;
  for (size_t k = 0; k < f->copies.size(); k++) {
    if (f->copies[k].group < done)
      land(f->copies[k], line);
    else
      f->copies[kept++] = f->copies[k];
  }
  f->copies.resize(kept);
}

void land_all(Fiber &f, int line) {
  for (const Copy &copy : f.copies) land(copy, line);
  f.copies.clear();
}

extern "C" void pp_cpu_copy16(void *dst, const void *src, int32_t line) {
  if (!current(line)) return;
  uintptr_t to = reinterpret_cast<uintptr_t>(dst), from = reinterpret_cast<uintptr_t>(src);
  check_alignment(from, 16, "pp_copy16 reads", line);
  check_alignment(to, 16, "pp_copy16 writes", line);
  int source = locate(from, 16, "pp_copy16 reads", line);
  int target = locate(to, 16, "pp_copy16 writes", line);
  if (source >= 0) touch(source, from, 16, T_READ, K_COPY16, line);
  if (target >= 0) touch(target, to, 16, T_WRITE, K_COPY16, line);
  memmove(dst, src, 16);
}

// One lane's row of an ldmatrix: 16 aligned bytes of one shared array, checked with this
// lane as the reader (bounds, races, cp.async still in flight) like any other read.
void read_shared_row(const void *row, void *to, const char *what, int line) {
  uintptr_t from = reinterpret_cast<uintptr_t>(row);
  check_alignment(from, 16, what, line);
  int source = locate(from, 16, what, line);
  if (source < 0 || !g->arrays[source].shared)
    fail("ldmatrix from non-shared memory: %s at line %d gives the row address %s; "
         "ldmatrix reads its rows from shared memory", me_text().c_str(), line,
         place_text(from).c_str());
  touch(source, from, 16, T_READ, K_LDMATRIX, line);
  memcpy(to, row, 16);
}

}  // namespace pp_rt
