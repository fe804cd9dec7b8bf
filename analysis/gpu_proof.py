"""Proofs that a GPU kernel computes what its loop nest computes, in isl, or a counterexample.

Three obligations, each an exact isl computation:

1. **Dataflow.** Under the GPU schedule (run sequentially, copies taking effect at once),
   every read of every source statement gets its value from the same statement instance as in
   the source program, or from the same array element that was there before the nest. Reads
   that go through copies (global -> shared -> registers, accumulator copy-in) are followed
   back through the copies to their origin. A slot refilled too early, a fragment loaded from
   the wrong stage or a tile copied from the wrong place all change some read's origin.
2. **Results.** Every array element the nest writes ends up with the value of the same
   statement instance (followed back through the accumulator's copy-out).
3. **Parallel execution.** Instances in different blocks share no memory dependence; two
   instances of different threads linked by a memory dependence (flow, anti or output) are
   separated by a barrier; and a read of an asynchronously copied element comes after a wait
   of the copying thread that completes the copy's group (and, for another thread, after a
   barrier following that wait). Groups are counted from the schedule: every thread commits
   exactly one group per pipeline iteration, checked as part of the proof.

Together these say: the GPU program, with threads running in parallel between barriers and
copies landing only when waited for, reads and writes exactly what the source program does.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import islpy as isl

from polypipe import ir
from polypipe.errors import InternalError, LegalityError


@dataclass(frozen=True)
class ProofReport:
    kernel: str
    reads_checked: int
    access_pairs_checked: int
    note: str = ""   # how the proved kernel differs from the one asked for, if it does
    warp_groups: str = ""   # tensor cores: analysis.warp_proof's summary

    def __str__(self) -> str:
        text = (f"{self.kernel}: dataflow of {self.reads_checked} reads and the final values "
                f"match the source; all {self.access_pairs_checked} pairs of accesses that "
                "can link two threads are ordered by barriers and waits")
        text += f"; {self.warp_groups.split(': ', 1)[1]}" if self.warp_groups else ""
        return text + (f" ({self.note})" if self.note else "")


def _umap(maps) -> isl.UnionMap:
    return _union_of(isl.UnionMap.from_map(m) for m in maps)


def _union_of(parts) -> isl.UnionMap:
    result = None
    for part in parts:
        result = part if result is None else result.union(part)
    return result


def _schedule_of(program: ir.Program, names: set[str]) -> isl.UnionMap:
    full = program.schedule_map
    domain = None
    for stmt in (*program.statements, *program.syncs):
        if stmt.name in names:
            piece = isl.UnionSet.from_set(stmt.domain)
            domain = piece if domain is None else domain.union(piece)
    return full.intersect_domain(domain)


def _origins(program: ir.Program, statements: list[ir.Statement], schedule: isl.UnionMap,
             located=None) -> dict[tuple[str, int], tuple[isl.UnionMap, isl.UnionMap]]:
    """For each (statement, read index): sink -> source instance, and sink -> live-in element.

    ``located`` (access -> instance-to-location relation) gives where an access lands when
    that is more than the array element (a buffer element of one block).
    """
    located = located or (lambda access: isl.UnionMap.from_map(access.relation))
    writes: dict[str, isl.UnionMap] = {}
    for stmt in statements:
        target = located(stmt.target)
        array = stmt.target.array
        writes[array] = target if array not in writes else writes[array].union(target)
    result = {}
    for stmt in statements:
        for index, access in enumerate(stmt.reads):
            sink = located(access)
            # Only writers of the same array can be sources. (Restricting the schedule to the
            # sink's and sources' instances as well made isl slower on the convolutions.)
            sources = writes.get(access.array)
            if sources is None:
                sources = isl.UnionMap.empty(sink.get_space())
            info = isl.UnionAccessInfo.from_sink(sink).set_must_source(sources)
            flow = info.set_schedule_map(schedule).compute_flow()
            result[(stmt.name, index)] = (flow.get_must_dependence().reverse(),
                                          flow.get_may_no_source())
    return result


def _resolve(origins, statements: dict[str, ir.Statement], key: tuple[str, int], depth: int = 0
             ) -> tuple[isl.UnionMap, isl.UnionMap]:
    """Follow sources that are copies back to a computing statement or a live-in element."""
    sources, live_in = origins[key]
    assert depth < 8, "copy chain too long"
    resolved_sources = None
    resolved_live = live_in
    for name, stmt in statements.items():
        if stmt.kind == "compute":
            continue
        space = isl.UnionSet.from_set(stmt.domain)
        through = sources.intersect_range(space)
        if through.is_empty():
            continue
        sources = sources.subtract(through)
        copy_sources, copy_live = _resolve(origins, statements, (name, 0), depth + 1)
        composed = through.apply_range(copy_sources)
        resolved_sources = composed if resolved_sources is None else resolved_sources.union(
            composed)
        resolved_live = resolved_live.union(through.apply_range(copy_live))
    if resolved_sources is not None:
        sources = sources.union(resolved_sources)
    return sources, resolved_live


def _fail(kind: str, relation: isl.UnionMap | isl.UnionSet, explain,
          error: type = LegalityError) -> Exception:
    """A LegalityError (or, for a broken premise of the proof, an InternalError) with one
    concrete element of ``relation`` (parameters fixed)."""
    if isinstance(relation, isl.UnionSet):
        pieces = relation.get_set_list()
        count, wrap = pieces.n_set(), (lambda piece: piece)
    else:
        pieces = relation.get_map_list()
        count, wrap = pieces.n_map(), (lambda piece: piece.wrap())
    for position in range(count):
        piece = pieces.get_at(position)
        if piece.is_empty():
            continue
        wrapped = wrap(piece)
        params = wrapped.params().sample_point()
        fixed = wrapped.intersect_params(isl.Set.from_point(params))
        point = fixed.sample_point()
        return error(f"{kind}: {explain(point, params)}")
    return error(f"{kind} (no sample could be drawn)")


def _describe_point(point: isl.Point, params: isl.Point) -> str:
    text = str(isl.Set.from_point(point))
    values = str(isl.Set.from_point(params))
    return f"{text} at {values}"


def _block_located(kernel):
    """Buffers (shared and register) exist once per block: their elements carry the block.

    The sequential GPU schedule would otherwise let one block's buffer reads see another
    block's writes; with the block in the location they cannot, as on the GPU, and isl's
    dataflow need not look across blocks (which also keeps its problems small).
    """
    gpu = kernel.program

    def located(access: ir.Access) -> isl.UnionMap:
        relation = isl.UnionMap.from_map(access.relation)
        if gpu.array(access.array).is_buffer:
            return kernel.block_of.range_product(relation)
        return relation
    return located


def kernel_origins(kernel) -> dict[tuple[str, int], tuple[isl.UnionMap, isl.UnionMap]]:
    """The GPU program's dataflow, sequentially and with buffers per block (see _origins);
    shared by both halves of the proof."""
    gpu = kernel.program
    schedule = gpu.schedule_map.intersect_domain(gpu.domain)
    return _origins(gpu, list(gpu.statements), schedule, _block_located(kernel))


@dataclass(frozen=True)
class _SourceFacts:
    """What the proof needs of the source nest: its dataflow (each read's origins, checked to
    be one per instance) and each written element's last writer. None of it depends on the
    GPU configuration, so it is computed once per nest and reused by every configuration
    proved for it (a tuner proves hundreds)."""

    origins: dict
    final_writers: isl.UnionMap | None   # None: the nest writes only local scalars
    arrays: frozenset = frozenset()       # the arrays it writes (not local scalars)


_SOURCE_FACTS: "weakref.WeakKeyDictionary[ir.Program, dict]" = weakref.WeakKeyDictionary()


def _source_facts(original: ir.Program, names: tuple[str, ...]) -> _SourceFacts:
    known = _SOURCE_FACTS.setdefault(original, {})
    if names not in known:
        nest = [original.statement(n) for n in names]
        schedule = _schedule_of(original, set(names))
        origins = _origins(original, nest, schedule)
        for stmt in nest:
            for index, access in enumerate(stmt.reads):
                _require_function_partition(stmt, access, *origins[(stmt.name, index)])
        arrays = {s.target.array for s in nest if not original.array(s.target.array).is_local}
        writers = _final_writers(nest, schedule, arrays) if arrays else None
        known[names] = _SourceFacts(origins, writers, frozenset(arrays))
    return known[names]


def prove_dataflow(original: ir.Program, kernel, gpu_origins=None) -> int:
    """Obligations 1 and 2; returns the number of reads checked."""
    gpu = kernel.program
    names = tuple(kernel.contraction.statements)
    source = _source_facts(original, names)
    gpu_statements = {s.name: s for s in gpu.statements}
    gpu_origins = gpu_origins or kernel_origins(kernel)
    _require_every_read_has_an_origin(gpu, gpu_origins)
    checked = 0
    for stmt in (original.statement(n) for n in names):
        _require_same_instances(stmt, gpu.statement(stmt.name))
        for index, access in enumerate(stmt.reads):
            got = _resolve(gpu_origins, gpu_statements, (stmt.name, index))
            _require_same_origins(stmt, access, source.origins[(stmt.name, index)], got)
            checked += 1
    if source.final_writers is not None:
        _prove_results(source, kernel, gpu_origins, gpu_statements)
    return checked


# Comparing origins. Each side maps every read instance to exactly one origin: the writer
# instance it takes its value from (sources) or the element it reads from before the nest
# (live-in). With both sides such partitions into functions, inclusion of the GPU's sources
# and live-ins in the source's implies equality: a read with a source in the source program
# cannot be live-in on the GPU (its live-in would lie in the source's live-ins, which are
# disjoint from its sources), so the GPU gives it a source, and that must be the same one.
# Inclusion is the cheap direction: it subtracts the source's simple relations from the
# GPU's, which were composed through up to three copies and carry many existentially
# quantified block, thread, group and stage coordinates; the converse (what is_equal also
# computes) ran for minutes on the stride-2 convolution with grouped ownership.


def _require_same_instances(stmt: ir.Statement, gpu_stmt: ir.Statement) -> None:
    """The GPU kernel runs exactly the source's instances of each nest statement."""
    if gpu_stmt.domain.is_equal(stmt.domain):
        return
    differ = gpu_stmt.domain.subtract(stmt.domain).union(stmt.domain.subtract(gpu_stmt.domain))
    raise _fail(f"the GPU kernel runs other instances of {stmt.name} than the source",
                isl.UnionSet.from_set(differ), _describe_point, InternalError)


def _require_every_read_has_an_origin(gpu: ir.Program, origins) -> None:
    """Every GPU read instance has a writer or is live-in: isl's dataflow partitions the
    sinks, and composing through copies keeps every instance (each copy instance is itself a
    sink with an origin). Checked here for each raw dataflow result, where it is cheap. The
    instances that read are those of the access (a zero-filling copy reads at some)."""
    for (name, index), (sources, live_in) in origins.items():
        stmt = gpu.statement(name)
        domain = isl.UnionSet.from_set(stmt.reads[index].relation.domain().intersect(
            stmt.domain))
        lost = domain.subtract(sources.domain().union(live_in.domain()))
        if not lost.is_empty():
            raise _fail(f"the dataflow of {name}'s read {index} leaves instances without an "
                        "origin", lost, _describe_point, InternalError)


def _require_function_partition(stmt, access, sources, live_in) -> None:
    """The source side's origins are functions of the read instance with disjoint domains."""
    if not (sources.is_single_valued() and live_in.is_single_valued()
            and sources.domain().intersect(live_in.domain()).is_empty()):
        raise InternalError(f"{stmt.name}'s read of {access}: the source dataflow does not "
                            "give one origin per read instance")


def _require_same_origins(stmt, access, want, got) -> None:
    want_sources, want_live = want
    got_sources, got_live = got
    if not got_sources.is_subset(want_sources):   # is_subset is fast; subtract only to explain
        raise _fail(f"the GPU schedule changes where {stmt.name}'s read of {access} gets its "
                    "value", got_sources.subtract(want_sources), lambda p, q: "on the GPU the "
                    f"reader takes its value from this writer, in the source it does not: "
                    f"{_describe_point(p, q)}")
    if got_live.is_subset(want_live):
        return
    extra = got_live.subtract(want_live)
    written = extra.intersect_domain(want_sources.domain())
    if not written.is_empty():
        raise _fail(f"the GPU schedule changes where {stmt.name}'s read of {access} gets its "
                    "value", written, lambda p, q: "in the source the reader takes its value "
                    "from a writer, on the GPU it reads this element as it was before the "
                    f"nest: {_describe_point(p, q)}")
    raise _fail(f"the GPU schedule changes which input element {stmt.name}'s read of {access} "
                "sees", extra, _describe_point)


def _final_writers(statements, schedule: isl.UnionMap, arrays: set[str]) -> isl.UnionMap:
    """Element -> the instance that writes it last (no later write to the same element)."""
    writes = _umap(s.target.relation for s in statements if s.target.array in arrays)
    same_element = writes.apply_range(writes.reverse())
    writers = schedule.intersect_domain(writes.domain())   # the order of the others is moot
    overwritten = same_element.intersect(writers.lex_lt_union_map(writers)).domain()
    return writes.subtract_domain(overwritten).reverse()


def _prove_results(source: _SourceFacts, kernel, gpu_origins, gpu_statements):
    """The GPU leaves in every element the value of the source's last writer."""
    gpu = kernel.program
    want, arrays = source.final_writers, source.arrays
    gpu_schedule = gpu.schedule_map.intersect_domain(gpu.domain)
    writers = _final_writers(list(gpu.statements), gpu_schedule, arrays)
    resolved = None
    for name, stmt in gpu_statements.items():
        part = writers.intersect_range(isl.UnionSet.from_set(stmt.domain))
        if part.is_empty():
            continue
        if stmt.kind != "compute":
            sources, _ = _resolve(gpu_origins, gpu_statements, (name, 0))
            part = part.apply_range(sources)
        resolved = part if resolved is None else resolved.union(part)
    if resolved is None or not resolved.is_equal(want):
        difference = want if resolved is None else resolved.subtract(want).union(
            want.subtract(resolved))
        raise _fail(f"the GPU kernel leaves different final values in "
                    f"{', '.join(sorted(arrays))}", difference,
                    lambda p, q: f"element -> last writer differs: {_describe_point(p, q)}")


def prove_parallel(kernel, gpu_origins=None) -> int:
    """Obligation 3; returns the number of access pairs checked.

    Register buffers are proved private (every access indexes the accessing thread's own
    registers), so only shared buffers and global arrays can link two threads; those are
    checked access pair by access pair, which keeps every isl relation small.
    """
    _check_registers_private(kernel)
    return _ParallelProof(kernel, gpu_origins or kernel_origins(kernel)).run()


class _ParallelProof:
    """The pairwise part of obligation 3, with what the pairs share built once and lazily."""

    def __init__(self, kernel, origins):
        self.kernel = kernel
        self.origins = origins
        self.gpu = gpu = kernel.program
        self.schedule = gpu.schedule_map.intersect_domain(gpu.domain)
        self.located = _block_located(kernel)
        self.barrier_names = {s.name for s in gpu.syncs if s.kind == "barrier"}
        self.barriers = _schedule_of(gpu, self.barrier_names) if self.barrier_names else None
        self._waits: _Waits | None = None
        self._between: _Barriers | None = None

    def same(self, coordinates: isl.UnionMap, first, second) -> isl.UnionMap:
        """first instance -> second instance with equal coordinates (block or thread)."""
        a = coordinates.intersect_domain(isl.UnionSet.from_set(first.domain))
        b = coordinates.intersect_domain(isl.UnionSet.from_set(second.domain))
        return a.apply_range(b.reverse())

    @property
    def waits(self) -> "_Waits":
        if self._waits is None:
            self._waits = _Waits(self.kernel, self.schedule, self.barriers, self.same)
        return self._waits

    def run(self) -> int:
        by_array: dict[str, list] = {}
        for stmt in self.gpu.statements:
            for access in (*stmt.reads, stmt.target):
                if self.gpu.array(access.array).memory != "register":
                    by_array.setdefault(access.array, []).append((stmt, access))
        checked = 0
        for accesses in by_array.values():
            for first, first_access in accesses:
                for second, second_access in accesses:
                    if first_access.is_write or second_access.is_write:
                        checked += self.check(first, first_access, second, second_access)
        return checked

    def check(self, first, first_access, second, second_access) -> int:
        """Check one ordered pair of accesses to one array; 1 if they can conflict, else 0."""
        located = self.located
        pairs = located(first_access).apply_range(located(second_access).reverse())
        order = _schedule_of(self.gpu, {first.name}).lex_lt_union_map(
            _schedule_of(self.gpu, {second.name}))
        pairs = pairs.intersect(order)
        if pairs.is_empty():
            return 0
        array = first_access.array
        kind = ("output" if second_access.is_write else "flow") \
            if first_access.is_write else "anti"
        same_block = self.same(self.kernel.block_of, first, second)
        if not pairs.is_subset(same_block):   # is_subset is fast; subtract only to explain
            raise _fail(f"{kind} dependence on {array} between different thread blocks "
                        "(blocks run in parallel and cannot synchronise)",
                        pairs.subtract(same_block), _describe_point)
        same_thread = self.same(self.kernel.thread_of, first, second)
        if first.kind == "async_copy" and kind == "flow":
            # The value a read sees comes from its last writer: that copy must have landed
            # (wait, and barrier for another thread). Older writes of the element are covered
            # by the output rule below.
            self.waits.require(first, second, self.last_writer_pairs(first, second,
                                                                     second_access))
        elif first.kind == "async_copy" and kind == "output":
            # Groups of one thread land in order; another thread's older copy must have landed
            # before the newer write is issued.
            cross = pairs.subtract(same_thread)
            if not cross.is_empty():
                self.waits.require(first, second, cross)
        else:
            self.require_barrier(kind, array, pairs.subtract(same_thread), first, second)
        return 1

    def last_writer_pairs(self, copy, reader, read) -> isl.UnionMap:
        """copy instance -> reader instance, where the copy is the reader's last writer."""
        index = next(i for i, access in enumerate(reader.reads) if access is read)
        sources, _ = self.origins[(reader.name, index)]
        return sources.reverse().intersect_domain(isl.UnionSet.from_set(copy.domain))

    def require_barrier(self, kind, array, unguarded, first, second) -> None:
        """Pairs of different threads of one block need a barrier between them."""
        if self.barriers is not None and not unguarded.is_empty():
            if self._between is None:
                self._between = _Barriers(self.gpu, self.barrier_names)
            separated = self._between.separated(unguarded, first, second)
            if unguarded.is_subset(separated):
                return
            unguarded = unguarded.subtract(separated)
        if not unguarded.is_empty():
            raise _fail(f"missing barrier: a {kind} dependence on {array} between two threads "
                        "of a block is not separated by a barrier", unguarded, _describe_point)


class _Barriers:
    """Which instance pairs have a barrier strictly between them in the schedule.

    Decided on a prefix of the schedule's time vector: the shortest one that still tells the
    barriers apart (their remaining dimensions are padding). Strict order of two prefixes
    implies strict order of the full times, so a barrier found between two prefixes is one
    between the instances (sound); and it misses none, since the lowering puts each barrier
    alone in its sequence position, where no other instance shares its prefix. The relation
    "a barrier lies between" is then built once per kernel on a short time space, not once
    per access pair on the full one (the convolutions' proofs spent a third of their time
    composing full-schedule orders through the barriers).
    """

    def __init__(self, gpu: ir.Program, barrier_names: set[str]):
        schedule = gpu.schedule_map
        width = schedule.get_map_list().get_at(0).dim(isl.dim_type.out)
        times = _schedule_of(gpu, barrier_names)
        depth = max(_significant_dims(times.get_map_list().get_at(i))
                    for i in range(times.get_map_list().n_map()))
        names = [f"t{i}" for i in range(width)]
        keep = isl.Map(f"{{ [{', '.join(names)}] -> [{', '.join(names[:depth])}] }}")
        self.prefix = isl.UnionMap.from_map(keep.align_params(schedule.get_space()))
        self.gpu = gpu
        stamps = times.apply_range(self.prefix).range()
        lex_lt = isl.UnionMap.from_map(isl.Map.lex_lt(
            stamps.get_set_list().get_at(0).get_space()))
        self.between = lex_lt.intersect_range(stamps).apply_range(
            lex_lt.intersect_domain(stamps)).wrap()

    def separated(self, pairs: isl.UnionMap, first: ir.Statement, second: ir.Statement
                  ) -> isl.UnionMap:
        """The pairs (first instance -> second instance) with a barrier between them."""
        before = _schedule_of(self.gpu, {first.name}).apply_range(self.prefix)
        after = _schedule_of(self.gpu, {second.name}).apply_range(self.prefix)
        return _pairs_whose_times(pairs, before, after, self.between)


def _significant_dims(times: isl.Map) -> int:
    """1 + the last output dimension of ``times`` that is not the constant 0 (padding)."""
    zero = isl.Val.zero(times.get_ctx())
    for position in reversed(range(times.dim(isl.dim_type.out))):
        value = times.range().plain_get_val_if_fixed(isl.dim_type.set, position)
        if value.is_nan() or not value.eq(zero):
            return position + 1
    return 0


def _check_registers_private(kernel) -> None:
    """Every register access indexes the accessing thread's registers (leading dimensions)."""
    gpu = kernel.program
    for stmt in gpu.statements:
        for access in (*stmt.reads, stmt.target):
            array = gpu.array(access.array)
            if array.memory != "register":
                continue
            width = access.relation.dim(isl.dim_type.out)
            leading = access.relation.project_out(isl.dim_type.out, array.thread_dims,
                                                  width - array.thread_dims)
            own = kernel.thread_of.intersect_domain(isl.UnionSet.from_set(stmt.domain))
            leading = isl.UnionMap.from_map(leading.reset_tuple_id(isl.dim_type.out))
            if not leading.is_subset(own.reset_tuple_id(isl.dim_type.out)
                                     if hasattr(own, "reset_tuple_id") else own):
                raise _fail(f"{stmt.name} touches registers {access.array} of another thread",
                            leading.subtract(own), _describe_point)


class _Waits:
    """The wait rule for reads of asynchronously copied elements."""

    def __init__(self, kernel, schedule, barriers, same):
        self.kernel = kernel
        self.schedule = schedule
        self.barriers = barriers
        self.same = same            # same(coordinates, first, second) -> instance pairs
        self.gpu = kernel.program
        self.waits = [s for s in self.gpu.syncs if s.kind == "wait"]
        # Inside one block's main loop, instances are ordered by (outer loops, T, phase)
        # first; the full schedule only matters within one phase, where no guard is counted.
        self.position = kernel.iteration_of.flat_range_product(kernel.phase_of)
        commits = [s for s in self.gpu.syncs if s.kind == "commit"]
        _check_one_commit_per_iteration(kernel, commits)

    def covers(self, copy: ir.Statement) -> isl.UnionMap | None:
        """copy instance -> the first wait of its thread that completes its group.

        Within one outer reduction iteration, a wait at T_w leaves ``pending`` groups in flight
        and every thread commits once per T: commits after the copy's (at T_a) and before the
        wait number T_w - T_a - 1, plus one if the wait follows T_w's own commit. The wait is
        complete for the copy once that count reaches ``pending``; the first such wait is at
        T_w = T_a + pending + 1 - (1 if the wait follows the commit). Later waits come later
        in time, so they can only be worse guards.
        """
        iteration = self.kernel.iteration_of
        of_copy = iteration.intersect_domain(isl.UnionSet.from_set(copy.domain))
        width = of_copy.get_map_list().get_at(0).dim(isl.dim_type.out)
        outer = [f"o{i}" for i in range(width - 1)]
        result = None
        for wait in self.waits:
            after = 1 if wait.name in self.kernel.waits_after_commit else 0
            gap = isl.Map(f"{{ [{', '.join(outer + ['ta'])}] -> [{', '.join(outer + ['tw'])}] "
                          f": tw = ta + {wait.pending + 1 - after} }}")
            gap = isl.UnionMap.from_map(gap.align_params(iteration.get_space()))
            of_wait = iteration.intersect_domain(isl.UnionSet.from_set(wait.domain))
            pairs = of_copy.apply_range(gap).apply_range(of_wait.reverse())
            pairs = pairs.intersect(self.same(self.kernel.thread_of, copy, wait)).intersect(
                self.same(self.kernel.block_of, copy, wait))
            result = pairs if result is None else result.union(pairs)
        return result

    def _barriers_after_waits(self) -> isl.UnionMap:
        """wait instance -> barriers later in the same pipeline iteration of the same block.

        Only same-iteration barriers are considered: sound (a guard found is a real guard),
        and the pipeline always has one right after its wait.
        """
        if getattr(self, "_after", None) is None:
            result = None
            barriers = [s for s in self.gpu.syncs if s.kind == "barrier"]
            for wait in self.waits:
                for barrier in barriers:
                    same = self.same(self.kernel.iteration_of, wait, barrier).intersect(
                        self.same(self.kernel.block_of, wait, barrier))
                    later = _schedule_of(self.gpu, {wait.name}).lex_lt_union_map(
                        _schedule_of(self.gpu, {barrier.name}))
                    part = same.intersect(later)
                    result = part if result is None else result.union(part)
            self._after = result
        return self._after

    def require(self, copy: ir.Statement, reader: ir.Statement, flow: isl.UnionMap) -> None:
        """Every flow pair (copy -> reader) is guarded by the earliest covering wait.

        The earliest wait that completes a copy (and the first barrier after it) are the best
        guards there can be, so checking them against each reader is exact and keeps every
        relation a function of the copy instance.
        """
        covers = self.covers(copy)
        if covers is None:
            raise _fail("missing wait: asynchronous copies are read but no wait exists", flow,
                        _describe_point)
        first_wait = _earliest(covers.apply_range(self.position))
        reader_time = self.position.intersect_domain(isl.UnionSet.from_set(reader.domain))
        uncovered = flow.subtract_domain(first_wait.domain())
        late = _not_before(flow.intersect_domain(first_wait.domain()), first_wait, reader_time)
        unguarded = uncovered.union(late)
        cross = flow.subtract(self.same(self.kernel.thread_of, copy, reader))
        if self.barriers is None:
            unguarded = unguarded.union(cross)
        elif not cross.is_empty():
            first_barrier = _earliest(covers.apply_range(self._barriers_after_waits()).apply_range(
                self.position))
            unguarded = unguarded.union(cross.subtract_domain(first_barrier.domain())).union(
                _not_before(cross.intersect_domain(first_barrier.domain()), first_barrier,
                            reader_time))
        if not unguarded.is_empty():
            raise _fail("missing wait: a read of an asynchronously copied element is not "
                        "preceded by a wait that completes its copy (and a barrier, for "
                        "another thread)", unguarded, _describe_point)


def _earliest(times: isl.UnionMap) -> isl.UnionMap:
    """Each instance's lexicographically first time. When there is only one (the usual case:
    one covering wait, one barrier after it), that is the relation itself, and the check is
    nearly free where lexmin took a third of a second on the convolutions."""
    return times if times.is_single_valued() else times.lexmin()


def _time_space_lex(times: isl.UnionMap, builder) -> isl.Map:
    piece = times.get_map_list().get_at(0)
    space = piece.get_space().range()
    return builder(space)


def _not_before(pairs: isl.UnionMap, left: isl.UnionMap, right: isl.UnionMap) -> isl.UnionMap:
    """The pairs (a -> b) whose time ``left(a)`` is not lexicographically before ``right(b)``."""
    if pairs.is_empty():
        return pairs
    later_or_equal = isl.UnionSet.from_set(_time_space_lex(left, isl.Map.lex_ge).wrap())
    return _pairs_whose_times(pairs, left, right, later_or_equal)


def _pairs_whose_times(pairs: isl.UnionMap, left: isl.UnionMap, right: isl.UnionMap,
                       related: isl.UnionSet) -> isl.UnionMap:
    """The pairs (a -> b) with ``(left(a), right(b))`` in ``related`` (a wrapped relation)."""
    both = pairs.domain_map().apply_range(left).range_product(
        pairs.range_map().apply_range(right))
    return both.intersect_range(related).domain().unwrap()


def _check_one_commit_per_iteration(kernel, commits) -> None:
    """The group count above assumes every thread commits once per pipeline iteration."""
    if len(commits) != 1:
        raise InternalError(f"{kernel.name}: expected one commit statement, found "
                            f"{len(commits)}")
    commit = commits[0]
    copies = [s for s in kernel.program.statements if s.kind == "async_copy"]
    issued = None
    for copy in copies:
        domain = isl.UnionSet.from_set(copy.domain)
        coords = kernel.block_of.intersect_domain(domain).range_product(
            kernel.iteration_of.intersect_domain(domain)).range()
        issued = coords if issued is None else issued.union(coords)
    committed = kernel.block_of.intersect_domain(isl.UnionSet.from_set(commit.domain)).range_product(
        kernel.iteration_of.intersect_domain(isl.UnionSet.from_set(commit.domain))).range()
    if issued is not None and not issued.is_subset(committed):
        raise _fail("asynchronous copies issued in a pipeline iteration without a commit",
                    issued.subtract(committed), _describe_point)
    domain = commit.domain
    count = domain.dim(isl.dim_type.set)
    dims = [f"d{i}" for i in range(count)]
    config = kernel.config
    box = isl.Set(f"{{ {commit.name}[{', '.join(dims)}] : 0 <= d{count - 2} < "
                  f"{config.threads[0]} and 0 <= d{count - 1} < {config.threads[1]} }}")
    every_thread = domain.project_out(isl.dim_type.set, count - 2, 2).add_dims(
        isl.dim_type.set, 2).set_tuple_name(commit.name)
    every_thread = every_thread.intersect(box.align_params(every_thread.get_space()))
    if not every_thread.is_equal(domain):
        raise LegalityError(f"{kernel.name}: not every thread commits in every pipeline "
                            "iteration, so wait counts would differ between threads")


def prove_kernel(original: ir.Program, kernel) -> ProofReport:
    """Run all obligations; raises LegalityError with a counterexample on the first failure."""
    origins = kernel_origins(kernel)
    reads = prove_dataflow(original, kernel, origins)
    pairs = prove_parallel(kernel, origins)
    return ProofReport(kernel.name, reads, pairs)
