"""Which promoted buffers of a GPU kernel can be pipelined, how deep, and why not.

A shared buffer B filled by copy statement P inside the pipelined tile loop L is pipelinable
when (docs/design.md, "Buffers and stages"), each checked with isl on the kernel:

1. P is a pure copy: its value is a load of a global array;
2. that source array is not written anywhere in the kernel;
3. every value a consumer reads from B was copied for the consumer's own tile of L (flow
   distance 0 on L: nothing reads B across iterations);
4. no statement other than P writes B.

The deepest pipeline is limited by the shared memory of the target: that is the one real
limit, and :func:`require_stages_fit` refuses beyond it. At given sizes, stages beyond one more
than the trip count of L are also reported (:func:`max_stages`) as the deepest pipeline that
is of use; more stages are not refused: one group of copies is committed per pipeline
iteration whether or not it holds copies, so every wait counts the same groups, and the kernel
(its proof holds for every value of the sizes, trip counts of 0 and 1 included) only leaves
the extra slots unfilled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import islpy as isl

from polypipe.errors import ScheduleError


@dataclass(frozen=True)
class BufferVerdict:
    buffer: str
    source: str
    copy: str
    pipelinable: bool
    reason: str
    stages: int
    bytes_per_stage: int

    def line(self) -> str:
        verdict = "pipelinable" if self.pipelinable else "NOT pipelinable"
        return (f"{self.buffer:10} <- {self.source:8} by {self.copy:10} {verdict:16} "
                f"stages={self.stages}  {self.bytes_per_stage} B/stage  {self.reason}")


def _flow_pairs(program, copy, consumers) -> isl.UnionMap:
    schedule = program.schedule_map.intersect_domain(program.domain)
    writes = isl.UnionMap.empty(copy.target.relation.get_space().params())
    for stmt in program.statements:
        writes = writes.union(isl.UnionMap.from_map(stmt.target.relation))
    pairs = None
    for stmt, access in consumers:
        info = isl.UnionAccessInfo.from_sink(isl.UnionMap.from_map(access.relation))
        flow = info.set_must_source(writes).set_schedule_map(schedule).compute_flow()
        part = flow.get_must_dependence().intersect_domain(isl.UnionSet.from_set(copy.domain))
        pairs = part if pairs is None else pairs.union(part)
    return pairs


def check_buffers(kernel, itemsize: int = 4) -> list[BufferVerdict]:
    """A verdict for every shared buffer of ``kernel`` (see the module docstring)."""
    program = kernel.program
    config = kernel.config
    verdicts = []
    for array in program.arrays:
        if array.memory != "shared":
            continue
        writers = [s for s in program.statements if s.target.array == array.name]
        copies = [s for s in writers if s.kind == "async_copy"]
        per_stage = itemsize
        for extent in (array.extents or ())[1:]:
            per_stage *= extent
        copy = copies[0] if copies else writers[0]
        source = copy.reads[0].array if copy.reads else "?"
        reason = "copy, source read-only in the kernel, consumed in its own tile"
        ok = True
        others = [s.name for s in writers if s is not copy]
        if not copies or len(copy.reads) != 1 or program.array(source).memory != "global":
            ok, reason = False, f"{copy.name} is not a pure copy of a global array"
        elif any(s.target.array == source for s in program.statements):
            writer = next(s for s in program.statements if s.target.array == source)
            ok, reason = False, (f"source {source} is written inside the loop by {writer.name}; "
                                 "a prefetched copy could read a stale value")
        elif others:
            ok, reason = False, f"{array.name} is also written by {', '.join(others)}"
        else:
            consumers = [(s, a) for s in program.statements for a in s.reads
                         if a.array == array.name]
            pairs = _flow_pairs(program, copy, consumers)
            if pairs is not None and not pairs.is_empty():
                same_tile = _same_tile(kernel, pairs)
                if not pairs.is_subset(same_tile):
                    bad = pairs.subtract(same_tile)
                    sample = bad.get_map_list().get_at(0)
                    ok, reason = False, (
                        f"{array.name} is read across iterations of the tile loop (a consumer "
                        f"reads a tile copied for another iteration), e.g. "
                        f"{isl.Set.from_point(sample.wrap().params().sample_point())}: "
                        f"{sample.wrap().sample_point()}")
        verdicts.append(BufferVerdict(array.name, source, copy.name, ok, reason,
                                      config.shared_stages if ok else 1, per_stage))
    return verdicts


def _same_tile(kernel, pairs: isl.UnionMap) -> isl.UnionMap:
    """Pairs (copy of tile t -> consumer in reduction step kk) with t = kk div BK."""
    bk = kernel.config.reduction
    result = None
    for i in range(pairs.get_map_list().n_map()):
        piece = pairs.get_map_list().get_at(i)
        copy_dims = [piece.get_dim_name(isl.dim_type.in_, d) or f"a{d}"
                     for d in range(piece.dim(isl.dim_type.in_))]
        load_dims = [piece.get_dim_name(isl.dim_type.out, d) or f"b{d}"
                     for d in range(piece.dim(isl.dim_type.out))]
        load_dims = [f"q_{d}" for d in load_dims]
        copy_name = piece.get_tuple_name(isl.dim_type.in_)
        load_name = piece.get_tuple_name(isl.dim_type.out)
        t = copy_dims.index("pp_t")
        kk = load_dims.index("q_pp_kk")
        text = (f"{{ {copy_name}[{', '.join(copy_dims)}] -> {load_name}[{', '.join(load_dims)}]"
                f" : {copy_dims[t]} = floor({load_dims[kk]}/{bk}) }}")
        same = isl.UnionMap.from_map(isl.Map(text).align_params(piece.get_space()))
        result = same if result is None else result.union(same)
    return result


def max_stages(kernel, itemsize: int, sizes: Mapping[str, int] | None = None
               ) -> tuple[int, str]:
    """The deepest useful number of shared stages and what limits it: shared memory, and at
    concrete ``sizes`` the trip count (more than one stage per tile plus one only leaves slots
    unfilled; :func:`require_stages_fit` does not refuse that)."""
    limit, why = _memory_limit(kernel, itemsize)
    if sizes is not None and kernel.contraction.update is not None:
        trips = tile_trip_count(kernel, sizes)
        if trips + 1 < limit:
            limit, why = trips + 1, (f"trip count: {trips} reduction tile(s) of "
                                     f"{kernel.config.reduction} at these sizes")
    return max(limit, 1), why


def _memory_limit(kernel, itemsize: int) -> tuple[int, str]:
    """The most shared stages the target's shared memory per block holds, and why."""
    config = kernel.config
    per_stage = 0
    for verdict in check_buffers(kernel, itemsize):
        per_stage += verdict.bytes_per_stage
    by_memory = config.target.shared_bytes // per_stage if per_stage else 1 << 30
    return by_memory, (f"shared memory: {per_stage} bytes per stage, "
                       f"{config.target.shared_bytes} on {config.target.name}")


def tile_trip_count(kernel, sizes: Mapping[str, int]) -> int:
    """Tiles of the streamed reduction loop at concrete sizes (0 when the nest is empty)."""
    from polypipe.analysis.bounds import fix_parameters

    if kernel.contraction.update is None:
        return 0
    update = kernel.program.statement(kernel.contraction.update)
    rk = kernel.contraction.reduction_iterators[-1]
    domain = update.domain.intersect_params(fix_parameters(update.domain, sizes))
    if domain.is_empty():
        return 0
    position = update.iterators.index(rk)
    low = domain.dim_min_val(position).to_python()
    high = domain.dim_max_val(position).to_python()
    return high // kernel.config.reduction - low // kernel.config.reduction + 1


def require_stages_fit(kernel, itemsize: int) -> None:
    """Refuse a configuration whose shared stages do not fit in the target's shared memory
    with ``itemsize``-byte elements. The sizes do not matter: the buffers do not depend on
    them, and a short or empty reduction (fewer tiles than stages) is no reason to refuse,
    since the kernel is proved for every value of the sizes (see the module docstring)."""
    config = kernel.config
    limit, why = _memory_limit(kernel, itemsize)
    limit = max(limit, 1)
    if config.shared_stages > limit:
        raise ScheduleError(f"{kernel.name}: shared_stages={config.shared_stages} is more than "
                            f"the {limit} that fit; limited by {why}: lower shared_stages or "
                            "the block or reduction tile")
