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

from dataclasses import dataclass

import islpy as isl

from polypipe import ir
from polypipe.errors import LegalityError


@dataclass(frozen=True)
class ProofReport:
    kernel: str
    reads_checked: int
    dependences_checked: int

    def __str__(self) -> str:
        return (f"{self.kernel}: dataflow of {self.reads_checked} reads and the final values "
                f"match the source; {self.dependences_checked} dependence kinds between "
                "threads are covered by barriers and waits")


def _empty(space_source) -> isl.UnionMap:
    return isl.UnionMap.empty(space_source.get_space().params())


def _umap(maps) -> isl.UnionMap:
    result = None
    for m in maps:
        piece = isl.UnionMap.from_map(m)
        result = piece if result is None else result.union(piece)
    return result


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


def _origins(program: ir.Program, statements: list[ir.Statement], schedule: isl.UnionMap
             ) -> dict[tuple[str, int], tuple[isl.UnionMap, isl.UnionMap]]:
    """For each (statement, read index): sink -> source instance, and sink -> live-in element."""
    writes = _umap(s.target.relation for s in statements)
    result = {}
    for stmt in statements:
        for index, access in enumerate(stmt.reads):
            sink = isl.UnionMap.from_map(access.relation)
            info = isl.UnionAccessInfo.from_sink(sink).set_must_source(writes)
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


def _fail(kind: str, relation: isl.UnionMap, explain) -> LegalityError:
    """A LegalityError with one concrete element of ``relation`` (parameters fixed)."""
    pieces = relation.get_map_list()
    for position in range(pieces.n_map()):
        piece = pieces.get_at(position)
        if piece.is_empty():
            continue
        wrapped = piece.wrap()
        params = wrapped.params().sample_point()
        fixed = wrapped.intersect_params(isl.Set.from_point(params))
        point = fixed.sample_point()
        return LegalityError(f"{kind}: {explain(point, params)}")
    return LegalityError(f"{kind} (no sample could be drawn)")


def _describe_point(point: isl.Point, params: isl.Point) -> str:
    text = str(isl.Set.from_point(point))
    values = str(isl.Set.from_point(params))
    return f"{text} at {values}"


def prove_dataflow(original: ir.Program, kernel) -> int:
    """Obligations 1 and 2; returns the number of reads checked."""
    gpu = kernel.program
    contraction = kernel.contraction
    nest = [original.statement(n) for n in contraction.statements]
    source_schedule = _schedule_of(original, set(contraction.statements))
    source = _origins(original, nest, source_schedule)

    gpu_statements = {s.name: s for s in gpu.statements}
    gpu_schedule = gpu.schedule_map.intersect_domain(gpu.domain)
    gpu_origins = _origins(gpu, list(gpu.statements), gpu_schedule)
    checked = 0
    for stmt in nest:
        for index, access in enumerate(stmt.reads):
            want_sources, want_live = source[(stmt.name, index)]
            got_sources, got_live = _resolve(gpu_origins, gpu_statements, (stmt.name, index))
            if not got_sources.is_equal(want_sources):
                difference = got_sources.subtract(want_sources).union(
                    want_sources.subtract(got_sources))
                raise _fail(f"the GPU schedule changes where {stmt.name}'s read of {access} "
                            "gets its value", difference,
                            lambda p, q: f"reader -> writer pair only in one program: "
                                         f"{_describe_point(p, q)}")
            if not _live_in_equal(got_live, want_live, contraction):
                raise _fail(f"the GPU schedule changes which input element {stmt.name}'s "
                            f"read of {access} sees", got_live.subtract(want_live).union(
                                want_live.subtract(got_live)),
                            lambda p, q: _describe_point(p, q))
            checked += 1
    _prove_results(original, nest, source_schedule, kernel, gpu_origins, gpu_statements)
    return checked


def _live_in_equal(got: isl.UnionMap, want: isl.UnionMap, contraction) -> bool:
    if got.is_equal(want):
        return True
    # A local accumulator has no element before the nest in either program.
    if contraction.expanded_local:
        return got.is_empty() and want.intersect_range(
            isl.UnionSet.empty(want.get_space())).is_empty() and _only_local(
            want, contraction.expanded_local)
    return False


def _only_local(relation: isl.UnionMap, local: str) -> bool:
    pieces = relation.get_map_list()
    return all(pieces.get_at(i).get_tuple_name(isl.dim_type.out) == local
               for i in range(pieces.n_map()))


def _final_writers(statements, schedule: isl.UnionMap, arrays: set[str]) -> isl.UnionMap:
    """Element -> the instance that writes it last (no later write to the same element)."""
    writes = _umap(s.target.relation for s in statements if s.target.array in arrays)
    same_element = writes.apply_range(writes.reverse())
    overwritten = same_element.intersect(schedule.lex_lt_union_map(schedule)).domain()
    return writes.subtract_domain(overwritten).reverse()


def _prove_results(original, nest, source_schedule, kernel, gpu_origins, gpu_statements):
    gpu = kernel.program
    arrays = {s.target.array for s in nest
              if not original.array(s.target.array).is_local}
    if not arrays:
        return
    want = _final_writers(nest, source_schedule, arrays)
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


def prove_parallel(kernel) -> int:
    """Obligation 3; returns the number of dependence kinds checked."""
    gpu = kernel.program
    schedule = gpu.schedule_map.intersect_domain(gpu.domain)
    block = kernel.block_of

    def located(access: ir.Access) -> isl.UnionMap:
        """Shared and register buffers exist once per block: their elements carry the block."""
        relation = isl.UnionMap.from_map(access.relation)
        if gpu.array(access.array).is_buffer:
            return block.range_product(relation)
        return relation

    writes = _union_of(located(s.target) for s in gpu.statements)
    reads = _union_of(located(a) for s in gpu.statements for a in s.reads)
    before = schedule.lex_lt_union_map(schedule)
    async_domain = None
    for stmt in gpu.statements:
        if stmt.kind == "async_copy":
            piece = isl.UnionSet.from_set(stmt.domain)
            async_domain = piece if async_domain is None else async_domain.union(piece)
    flow = writes.apply_range(reads.reverse()).intersect(before)
    anti = reads.apply_range(writes.reverse()).intersect(before)
    output = writes.apply_range(writes.reverse()).intersect(before)

    thread = kernel.thread_of
    same_block = block.apply_range(block.reverse())
    same_thread = thread.apply_range(thread.reverse()).intersect(same_block)
    for kind, deps in (("flow", flow), ("anti", anti), ("output", output)):
        across = deps.subtract(same_block)
        if not across.is_empty():
            raise _fail(f"{kind} dependence between different thread blocks (blocks run in "
                        "parallel and cannot synchronise)", across, _describe_point)

    barrier_names = {s.name for s in gpu.syncs if s.kind == "barrier"}
    barriers = _schedule_of(gpu, barrier_names) if barrier_names else isl.UnionMap.empty(
        schedule.get_space())
    separated = schedule.lex_lt_union_map(barriers).apply_range(
        barriers.lex_lt_union_map(schedule))

    async_flow = flow.intersect_domain(async_domain) if async_domain is not None else None
    plain_flow = flow.subtract(async_flow) if async_flow is not None else flow
    for kind, deps in (("flow", plain_flow), ("anti", anti), ("output", output)):
        unguarded = deps.subtract(same_thread).subtract(separated)
        if not unguarded.is_empty():
            raise _fail(f"missing barrier: a {kind} dependence between two threads of a block "
                        "is not separated by a barrier", unguarded, _describe_point)
    if async_flow is not None and not async_flow.is_empty():
        _prove_waits(kernel, schedule, async_flow, same_thread, barriers)
    return 3


def _prove_waits(kernel, schedule, async_flow, same_thread, barriers) -> None:
    gpu = kernel.program
    waits = [s for s in gpu.syncs if s.kind == "wait"]
    commits = [s for s in gpu.syncs if s.kind == "commit"]
    iteration = kernel.iteration_of
    _check_one_commit_per_iteration(kernel, commits)
    covers = None
    for wait in waits:
        wait_set = isl.UnionSet.from_set(wait.domain)
        # Commits strictly between a copy's own commit (same iteration T_a) and the wait at
        # T_w: T_w - T_a - 1, plus the wait's own iteration's commit if the wait follows it.
        after = 1 if wait.name in kernel.waits_after_commit else 0
        width = iteration.get_map_list().get_at(0).dim(isl.dim_type.out)
        outer = [f"o{i}" for i in range(width - 1)]
        gap = isl.Map(
            f"{{ [{', '.join(outer + ['ta'])}] -> [{', '.join(outer + ['tw'])}] : "
            f"tw - ta - 1 + {after} >= {wait.pending} }}")
        gap = gap.align_params(iteration.get_space())
        pairs = iteration.apply_range(isl.UnionMap.from_map(gap)).apply_range(
            iteration.intersect_domain(wait_set).reverse())
        pairs = pairs.intersect(same_thread)
        covers = pairs if covers is None else covers.union(pairs)
    if covers is None:
        raise _fail("missing wait: asynchronous copies are read but no wait exists",
                    async_flow, _describe_point)
    wait_schedule = _schedule_of(gpu, {w.name for w in waits})
    wait_then_read = wait_schedule.lex_lt_union_map(schedule)
    wait_barrier_read = wait_schedule.lex_lt_union_map(barriers).apply_range(
        barriers.lex_lt_union_map(schedule))
    own = covers.apply_range(wait_then_read).intersect(same_thread)
    shared = covers.apply_range(wait_barrier_read)
    unguarded = async_flow.subtract(own).subtract(shared)
    if not unguarded.is_empty():
        raise _fail("missing wait: a read of an asynchronously copied element is not preceded "
                    "by a wait that completes its copy (and a barrier, for another thread)",
                    unguarded, _describe_point)


def _check_one_commit_per_iteration(kernel, commits) -> None:
    """The group count above assumes every thread commits once per pipeline iteration."""
    if len(commits) != 1:
        raise LegalityError(f"{kernel.name}: expected one commit statement, found "
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
                    isl.UnionMap.from_domain(issued.subtract(committed)), _describe_point)
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
    reads = prove_dataflow(original, kernel)
    kinds = prove_parallel(kernel)
    return ProofReport(kernel.name, reads, kinds)
