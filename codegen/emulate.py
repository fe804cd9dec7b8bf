"""CPU emulation of a GPU program with GPU semantics, and a runtime race and wait checker.

The GPU-mapped schedule is printed as C (the same isl AST the CUDA printer uses):

* block bands become ordinary loops; each block starts with NaN-filled shared buffers and no
  copies in flight, so a read of data the block never copied shows up in the result;
* each thread band (one barrier-free phase) runs for every thread of the block before the next
  phase starts, threads visited in a scrambled order (``thread_order``);
* register buffers keep one copy per thread (their leading thread dimensions);
* an asynchronous copy is queued by its thread and only lands in shared memory when a
  ``wait`` of that thread covers its group (``commit`` closes a group, ``wait(n)`` completes
  all but the newest ``n``), exactly as ``cp.async`` groups behave;
* ``barrier`` advances the block's epoch. Every shared-memory access is checked: reading an
  element whose copy is still in flight (a missing wait), or an element another thread wrote
  in the same epoch, or overwriting an element another thread read in the same epoch (a
  missing barrier) is reported with both threads and the element.

A missing barrier or wait therefore fails twice: the checker reports it, and the numbers are
wrong (stale or NaN data).
"""

from __future__ import annotations

import ctypes
import random
from dataclasses import dataclass

import islpy as isl

from polypipe import ir
from polypipe.errors import KernelRuntimeError

from .ast_build import ITERATOR_PREFIX, StatementInstance
from .c_printer import C_PRELUDE, CPrinter, c_name

EMULATION_RUNTIME = r"""
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <math.h>

typedef struct { int32_t w_tid, w_epoch, r_tid, r_epoch, pending_tid; uint8_t pending; } pp_shadow;
typedef struct { int32_t buf; int64_t idx; double value; int64_t ivalue; int64_t group; } pp_copy;

typedef struct {
  int64_t epoch, nthreads, nbuf;
  pp_copy *queue; int64_t *qlen; int64_t cap;
  int64_t *committed;
  void **data; int *kind; int64_t *size; pp_shadow **shadow; const char **names;
  int error; char *message;
} pp_state;

static void pp_fail(pp_state *st, const char *text) {
  if (!st->error) { st->error = 1; snprintf(st->message, 1024, "%s", text); }
}

/* Integer copies travel as integers: a double would round int64 values beyond 2**53. */
static void pp_store(pp_state *st, int32_t buf, int64_t idx, double value, int64_t ivalue) {
  switch (st->kind[buf]) {
    case 0: ((float *)st->data[buf])[idx] = (float)value; break;
    case 1: ((double *)st->data[buf])[idx] = value; break;
    case 2: ((int32_t *)st->data[buf])[idx] = (int32_t)ivalue; break;
    default: ((int64_t *)st->data[buf])[idx] = ivalue; break;
  }
}

static void pp_fill_nan(void *data, int kind, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    if (kind == 0) ((float *)data)[i] = NAN;
    else if (kind == 1) ((double *)data)[i] = NAN;
    else if (kind == 2) ((int32_t *)data)[i] = -1234567;
    else ((int64_t *)data)[i] = -1234567;
  }
}

static void pp_block_begin(pp_state *st) {
  for (int64_t t = 0; t < st->nthreads; t++) { st->qlen[t] = 0; st->committed[t] = 0; }
  for (int64_t b = 0; b < st->nbuf; b++) {
    pp_fill_nan(st->data[b], st->kind[b], st->size[b]);
    memset(st->shadow[b], 0, sizeof(pp_shadow) * st->size[b]);
    for (int64_t i = 0; i < st->size[b]; i++) st->shadow[b][i].w_epoch = st->shadow[b][i].r_epoch = -1;
  }
  st->epoch += 1;
}

static void pp_barrier(pp_state *st) { st->epoch += 1; }

static void pp_check_read(pp_state *st, int64_t tid, int32_t buf, int64_t idx) {
  pp_shadow *sh = &st->shadow[buf][idx];
  char text[512];
  if (sh->pending) {
    snprintf(text, sizeof text, "missing wait: thread %lld reads %s[%lld] while thread %d's "
             "asynchronous copy to it is still in flight", (long long)tid, st->names[buf],
             (long long)idx, sh->pending_tid);
    pp_fail(st, text);
  } else if (sh->w_epoch == st->epoch && sh->w_tid != tid) {
    snprintf(text, sizeof text, "missing barrier: thread %lld reads %s[%lld], written by "
             "thread %d with no barrier in between", (long long)tid, st->names[buf],
             (long long)idx, sh->w_tid);
    pp_fail(st, text);
  }
  if (sh->r_epoch != st->epoch) { sh->r_epoch = (int32_t)st->epoch; sh->r_tid = (int32_t)tid; }
  else if (sh->r_tid != tid) sh->r_tid = -1;
}

static void pp_check_write(pp_state *st, int64_t tid, int32_t buf, int64_t idx) {
  pp_shadow *sh = &st->shadow[buf][idx];
  char text[512];
  if (sh->r_epoch == st->epoch && sh->r_tid != tid) {
    char reader[32];
    if (sh->r_tid < 0) snprintf(reader, sizeof reader, "several threads");
    else snprintf(reader, sizeof reader, "thread %d", sh->r_tid);
    snprintf(text, sizeof text, "missing barrier: thread %lld overwrites %s[%lld], read by "
             "%s with no barrier in between", (long long)tid, st->names[buf],
             (long long)idx, reader);
    pp_fail(st, text);
  } else if ((sh->w_epoch == st->epoch && sh->w_tid != tid) || (sh->pending && sh->pending_tid != tid)) {
    snprintf(text, sizeof text, "missing barrier: threads %lld and %d both write %s[%lld] "
             "with no barrier in between", (long long)tid, sh->pending ? sh->pending_tid : sh->w_tid,
             st->names[buf], (long long)idx);
    pp_fail(st, text);
  }
}

static void pp_async(pp_state *st, int64_t tid, int32_t buf, int64_t idx, double value,
                     int64_t ivalue) {
  pp_check_write(st, tid, buf, idx);
  if (st->qlen[tid] == st->cap) {
    int64_t cap = st->cap * 2;
    pp_copy *queue = (pp_copy *)malloc(sizeof(pp_copy) * cap * st->nthreads);
    for (int64_t t = 0; t < st->nthreads; t++)
      memcpy(queue + t * cap, st->queue + t * st->cap, sizeof(pp_copy) * st->qlen[t]);
    free(st->queue); st->queue = queue; st->cap = cap;
  }
  pp_copy *c = &st->queue[tid * st->cap + st->qlen[tid]++];
  c->buf = buf; c->idx = idx; c->value = value; c->ivalue = ivalue;
  c->group = st->committed[tid];
  st->shadow[buf][idx].pending = 1; st->shadow[buf][idx].pending_tid = (int32_t)tid;
}

static void pp_commit(pp_state *st, int64_t tid) { st->committed[tid] += 1; }

static void pp_wait(pp_state *st, int64_t tid, int64_t pending) {
  int64_t keep = 0;
  pp_copy *q = st->queue + tid * st->cap;
  for (int64_t i = 0; i < st->qlen[tid]; i++) {
    if (q[i].group < st->committed[tid] - pending) {
      pp_store(st, q[i].buf, q[i].idx, q[i].value, q[i].ivalue);
      pp_shadow *sh = &st->shadow[q[i].buf][q[i].idx];
      sh->pending = 0; sh->w_tid = (int32_t)tid; sh->w_epoch = (int32_t)st->epoch;
    } else {
      q[keep++] = q[i];
    }
  }
  st->qlen[tid] = keep;
}
"""

_KIND = {"float": 0, "double": 1, "int32_t": 2, "int64_t": 3}


def thread_permutation(count: int, order: str, seed: int) -> list[int]:
    if order == "forward":
        return list(range(count))
    if order == "reverse":
        return list(range(count - 1, -1, -1))
    if order == "scrambled":
        values = list(range(count))
        random.Random(seed).shuffle(values)
        return values
    raise ValueError(f"thread_order must be 'scrambled', 'forward' or 'reverse', not {order!r}")


@dataclass
class EmulationPrinter(CPrinter):
    """Prints a GPU program as C with the semantics described in the module docstring."""

    thread_order: str = "scrambled"
    seed: int = 0
    block_dims: int = 0

    def translation_unit(self, ast: isl.AstNode) -> str:
        launch = self.program.launch
        assert launch is not None, "emulation needs a GPU program"
        self._threads = launch.threads
        self._shared = [a for a in self.program.arrays if a.memory == "shared"]
        self._registers = [a for a in self.program.arrays if a.memory == "register"]
        self._buffer_id = {a.name: i for i, a in enumerate(self._shared)}
        self._in_thread_phase = False
        self._block_depth = None
        self._lines = []
        self._emit(0, f"int {self.function_name}(void **pp_arrays, const int64_t *pp_ints, "
                      "const double *pp_floats, int64_t *pp_fault, char *pp_message) {")
        for line in self.prologue() + self.fault_prologue() + self._emulation_prologue():
            self._emit(1, line)
        self.node(ast, 1)
        self._emit(0, "pp_done:")
        self._emit(1, "pp_fault[2] = pp_warn;")
        for line in self._emulation_epilogue():
            self._emit(1, line)
        self._emit(0, "}")
        count = launch.thread_count
        perm = thread_permutation(count, self.thread_order, self.seed)
        table = (f"static const int64_t pp_perm[{count}] = "
                 f"{{{', '.join(map(str, perm))}}};\n")
        return C_PRELUDE + EMULATION_RUNTIME + table + "\n" + "\n".join(self._lines) + "\n"

    # -- set-up and tear-down --------------------------------------------------------------
    def _emulation_prologue(self) -> list[str]:
        count = self.program.launch.thread_count
        nbuf = max(len(self._shared), 1)
        lines = [
            "pp_state pp_st_v; pp_state *pp_st = &pp_st_v;",
            "memset(pp_st, 0, sizeof pp_st_v);",
            f"pp_st->nthreads = {count}; pp_st->nbuf = {len(self._shared)}; pp_st->cap = 64;",
            "pp_st->message = pp_message;",
            f"pp_st->queue = (pp_copy *)malloc(sizeof(pp_copy) * 64 * {count});",
            f"pp_st->qlen = (int64_t *)calloc({count}, sizeof(int64_t));",
            f"pp_st->committed = (int64_t *)calloc({count}, sizeof(int64_t));",
            f"void *pp_data[{nbuf}]; int pp_kind[{nbuf}]; int64_t pp_size[{nbuf}];",
            f"pp_shadow *pp_shadows[{nbuf}]; const char *pp_names[{nbuf}];",
            "pp_st->data = pp_data; pp_st->kind = pp_kind; pp_st->size = pp_size;",
            "pp_st->shadow = pp_shadows; pp_st->names = pp_names;",
        ]
        for index, array in enumerate(self._shared):
            ctype = self.types.storage_type(array.name).c_name
            size = _product(array.extents)
            lines += [
                f"{ctype} *{c_name('array', array.name)} = ({ctype} *)malloc(sizeof({ctype}) * "
                f"{size});",
                f"pp_data[{index}] = {c_name('array', array.name)}; pp_kind[{index}] = "
                f"{_KIND[ctype]}; pp_size[{index}] = {size}; pp_names[{index}] = "
                f"\"{array.name}\";",
                f"pp_shadows[{index}] = (pp_shadow *)malloc(sizeof(pp_shadow) * {size});",
            ]
        for array in self._registers:
            ctype = self.types.storage_type(array.name).c_name
            size = _product(array.extents)
            lines += [
                f"{ctype} *{c_name('array', array.name)} = ({ctype} *)malloc(sizeof({ctype}) * "
                f"{size});",
                f"pp_fill_nan({c_name('array', array.name)}, {_KIND[ctype]}, {size});",
            ]
        lines.append("int64_t pp_tid = 0; (void)pp_tid;")
        return lines

    def _emulation_epilogue(self) -> list[str]:
        lines = [f"free({c_name('array', a.name)});" for a in self._shared + self._registers]
        lines += [f"free(pp_shadows[{i}]);" for i in range(len(self._shared))]
        lines += ["free(pp_st->queue); free(pp_st->qlen); free(pp_st->committed);",
                  "return pp_st->error;"]
        return lines

    # -- marks: blocks and threads ------------------------------------------------------------
    def mark_node(self, node: isl.AstNode, depth: int) -> None:
        name = node.mark_get_id().get_name()
        if name == "block":
            self._block_depth = self.block_dims
            if self._block_depth == 0:
                self._emit(depth, "pp_block_begin(pp_st);")
                self._block_depth = None
            self.node(node.mark_get_node(), depth)
            return
        if name.startswith("thread:"):
            # isl may put guards or several loop nests between the mark and its thread loops:
            # every for loop reached under the mark (outside a thread loop) starts one.
            self._thread_depth = int(name.split(":")[1])
            self._in_thread_phase = True
            self.node(node.mark_get_node(), depth)
            self._in_thread_phase = False
            return
        self.node(node.mark_get_node(), depth)

    def for_node(self, node: isl.AstNode, depth: int) -> None:
        if self._in_thread_phase:
            self._thread_loops(node, depth)
            return
        if self._block_depth:
            self._block_depth -= 1
            if self._block_depth == 0:
                self._block_depth = None
                self._block_loop(node, depth)
                return
        super().for_node(node, depth)

    def _block_loop(self, node: isl.AstNode, depth: int) -> None:
        """The innermost block loop: every iteration is a fresh block."""
        iterator = self.expr(node.for_get_iterator())
        init = self.expr(node.for_get_init())
        if node.for_is_degenerate():
            self._emit(depth, "{")
            self._emit(depth + 1, f"const int64_t {iterator} = {init};")
        else:
            cond = self.expr(node.for_get_cond())
            inc = self.expr(node.for_get_inc())
            self._emit(depth, f"for (int64_t {iterator} = {init}; {cond}; {iterator} += {inc}) {{")
        self._emit(depth + 1, "pp_block_begin(pp_st);")
        self.node(node.for_get_body(), depth + 1)
        self._emit(depth, "}")

    def _thread_loops(self, node: isl.AstNode, depth: int) -> None:
        """The thread loops of one phase (a loop nest or a lone statement), visited in the
        emulation's thread order.

        All thread coordinates are enumerated through one permutation of the block's thread
        ids; each loop's own bounds and stride become guards.
        """
        # The thread loops are the loops over iterators pp_c<depth>, pp_c<depth+1>, ...; isl
        # emits no loop for a thread dimension whose coordinate is constant over the phase:
        # extent 1, or a phase whose one copy group goes to thread 0. Either way the
        # coordinate is 0, as the CUDA printer also assumes (CudaPrinter.node).
        names = {f"{ITERATOR_PREFIX}{self._thread_depth + d}": d
                 for d in range(len(self._threads))}
        loops: list[tuple[isl.AstNode, int]] = []
        current = node
        while current.get_type() == isl.ast_node_type.for_:
            dim = names.get(current.for_get_iterator().get_id().get_name())
            if dim is None:
                break
            loops.append((current, dim))
            current = current.for_get_body()
        missing = set(range(len(self._threads))) - {dim for _, dim in loops}
        body = current
        self._in_thread_phase = False
        self._emit(depth, f"for (int64_t pp_p = 0; pp_p < {self.program.launch.thread_count}; "
                          "pp_p++) {")
        self._emit(depth + 1, "pp_tid = pp_perm[pp_p];")
        stride = 1
        strides = []
        for extent in reversed(self._threads):
            strides.insert(0, stride)
            stride *= extent
        for dim in sorted(missing):
            if self._threads[dim] > 1:
                self._emit(depth + 1, f"if ((pp_tid / {strides[dim]}) % {self._threads[dim]} "
                                      "!= 0) continue;")
        for loop, dim in loops:
            extent, step = self._threads[dim], strides[dim]
            iterator = self.expr(loop.for_get_iterator())
            init = self.expr(loop.for_get_init())
            self._emit(depth + 1, f"const int64_t {iterator} = (pp_tid / {step}) % {extent};")
            if loop.for_is_degenerate():
                self._emit(depth + 1, f"if ({iterator} != {init}) continue;")
                continue
            cond = self.expr(loop.for_get_cond())
            inc = self.expr(loop.for_get_inc())
            self._emit(depth + 1, f"if ({iterator} < {init} || !{cond}) continue;")
            if inc != "1":
                self._emit(depth + 1, f"if (({iterator} - {init}) % {inc} != 0) continue;")
        self.node(body, depth + 1)
        self._emit(depth, "}")
        self._in_thread_phase = True

    # -- statements ---------------------------------------------------------------------------
    def user_node(self, node: isl.AstNode, depth: int) -> None:
        if self._in_thread_phase:  # no thread loop printed around it: see _thread_loops
            self._thread_loops(node, depth)
            return
        instance: StatementInstance = node.get_annotation().user
        stmt = instance.statement
        if isinstance(stmt, ir.Sync):
            if stmt.kind == "barrier":
                self._emit(depth, "pp_barrier(pp_st);")
            elif stmt.kind == "commit":
                self._emit(depth, "pp_commit(pp_st, pp_tid);")
            else:
                self._emit(depth, f"pp_wait(pp_st, pp_tid, {stmt.pending});")
            return
        self._emit(depth, self.statement(instance) + ";")

    def statement(self, instance: StatementInstance) -> str:
        stmt = instance.statement
        target_info = self.program.array(stmt.target.array)
        if target_info.memory != "shared":
            return super().statement(instance)
        buffer_id = self._buffer_id[target_info.name]
        index = self._index_of(instance.access_exprs[id(stmt.target)], target_info)
        value = self.stored_value(instance)
        if stmt.kind == "async_copy":
            if self.types.storage_type(target_info.name).is_float:
                return f"pp_async(pp_st, pp_tid, {buffer_id}, {index}, (double)({value}), 0)"
            return f"pp_async(pp_st, pp_tid, {buffer_id}, {index}, 0.0, (int64_t)({value}))"
        target = f"{c_name('array', target_info.name)}[{index}]"
        return (f"pp_check_write(pp_st, pp_tid, {buffer_id}, {index}); "
                + self.store(instance, target, value))

    def _index_of(self, access_expr: isl.AstExpr, info: ir.Array) -> str:
        args = [access_expr.get_op_arg(i) for i in range(1, access_expr.get_op_n_arg())]
        return self.linear_index(info, [self.expr(a) for a in args])

    def _value(self, expr, instance, have):
        if isinstance(expr, ir.Read):
            info = self.program.array(expr.access.array)
            if info.memory == "shared":
                index = self._index_of(instance.access_exprs[id(expr.access)], info)
                return (f"(pp_check_read(pp_st, pp_tid, {self._buffer_id[info.name]}, {index}), "
                        f"{c_name('array', info.name)}[{index}])")
        return super()._value(expr, instance, have)


def _product(values) -> int:
    result = 1
    for value in values or ():
        result *= value
    return result


def run_emulated(program: ir.Program, function, pointers, ints, floats) -> None:
    """Call an emulation kernel; a detected race or missing wait raises KernelRuntimeError,
    an instance at which Python raises the error the fault record names."""
    from .semantics import check_fault_record
    from .value_printer import FAULT_SLOTS

    message = ctypes.create_string_buffer(1024)
    record = (ctypes.c_int64 * FAULT_SLOTS)()
    status = function(pointers, ints, floats, record, message)
    if status:
        raise KernelRuntimeError("GPU emulation found a synchronisation error: "
                                 + message.value.decode(errors="replace"))
    if record[0] or record[2]:
        check_fault_record(program, record, in_source_order=False)
