"""Which reads can be streamed through a staging buffer along which loop (software pipelining).

Before (gemm)::

    for i in range(NI):
        for j in range(NJ):
            C[i, j] *= beta                                   # S0
        for k in range(NK):
            for j in range(NJ):
                C[i, j] += alpha * A[i, k] * B[k, j]          # S1

After ``print(format_table(pipelinable_reads(p)))`` (rows of S1 along k)::

    stmt  line  read     loop  kind        per iteration  reused across  verdict
    S1    94    C[i, j]  k     sequential  1 x NJ         -              no (written in loop): ...
    S1    94    A[i, k]  k     sequential  1 x 1          j              pipelinable
    S1    94    B[k, j]  k     sequential  1 x NJ         -              pipelinable

A read R of statement S along an enclosing loop L is *pipelinable* when its elements for
iteration ``l + 1`` (``l + s - 1`` with s stages) can be loaded while iteration ``l`` computes:

1. the array is in memory (a local scalar lives in a register: nothing to stage);
2. S is inside L;
3. no value R reads is produced inside the same run of L: no flow dependence into R from an
   instance inside L with the same outer iterators (exact, value-based: a write that is
   overwritten before R, or that happens in an earlier run of L, does not count). Moving a read
   earlier can only break flow dependences, never anti or output ones, so this is the whole
   legality condition (docs/design.md section 3);
4. the element changes with L (a read that is the same for every iteration of L should be
   hoisted out of L, not streamed).

Each failed condition has its own :class:`Reason`. For every candidate the report also gives the
per-iteration footprint (elements read in one iteration of L, the outer iterators fixed; box
sizes as formulas in the parameters) and the inner loops across which the element is reused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Sequence

import islpy as isl

from polypipe import ir
from polypipe.analysis.dependences import (Dependences, Loop, _BeforeCache, as_program,
                                           check_dependences, check_name, check_statement,
                                           dependences, map_list, type_name)
from polypipe.analysis.legality import concrete_pair, describe_dependence_pair, format_parameters
from polypipe.errors import ArgumentError, PolypipeError, ScheduleError, public

if TYPE_CHECKING:  # annotations only: kernel.py imports the front end
    from polypipe.kernel import Kernel


class Reason(str, Enum):
    """Why a read is or is not pipelinable along a loop (one value per distinct cause)."""

    PIPELINABLE = "pipelinable"
    LOCAL_SCALAR = "local scalar"
    NOT_IN_LOOP = "not in loop"
    WRITTEN_IN_LOOP = "written in loop"
    LOOP_INVARIANT = "loop invariant"


@dataclass(frozen=True, eq=False)
class PipelineCandidate:
    """The verdict on streaming one read of one statement along one loop.

    ``footprint`` is ``S[outer.., l] -> A[..]``: the elements read in one iteration ``l`` of the
    loop, for fixed outer iterators (None for local scalars and loops that do not enclose the
    read). ``extents`` are the sizes of its bounding box per array dimension, as formulas in the
    parameters (largest over the outer iterators, for general sizes): ``("1", "NJ")``;
    ``extent_values`` holds the exact piecewise values (``isl.PwAff``, small sizes included).
    ``reused_across`` lists the
    loops inside this one along which the element does not change (one load serves them all).
    ``loop_parallel`` says whether the loop carries no dependence (None if it does not enclose
    the statement).
    """

    statement: str
    line: int | None
    read: str
    array: str
    read_index: int
    loop: str
    loop_parallel: bool | None
    pipelinable: bool
    reason: Reason
    explanation: str
    footprint: isl.Map | None
    extents: tuple[str, ...]
    reused_across: tuple[str, ...]
    extent_values: tuple[isl.PwAff, ...] = ()

    @property
    def footprint_text(self) -> str:
        """``1 x NJ`` (``-`` when there is none, ``1`` for a scalar element)."""
        if self.footprint is None:
            return "-"
        return " x ".join(self.extents) if self.extents else "1"

    def __str__(self) -> str:
        verdict = "pipelinable" if self.pipelinable else f"not pipelinable ({self.reason.value})"
        return f"{self.statement} {self.read} along {self.loop}: {verdict}: {self.explanation}"


@public
def pipelinable_reads(program: ir.Program | Kernel, *, deps: Dependences | None = None,
                      include_locals: bool = False) -> list[PipelineCandidate]:
    """Every read of an array, along every loop around it, with a verdict (module docstring).

    Parallel loops are reported too (``loop_parallel``): a parallel loop mapped to threads is
    not pipelined, but one that stays sequential inside a thread (after tiling, say) can be.
    Local-scalar reads are left out unless ``include_locals``. A read that occurs twice in a
    statement (``x[i] * x[i]``) is reported once.

    >>> [(c.read, c.loop) for c in pipelinable_reads(gemm.program)
    ...  if c.pipelinable and c.loop == "k"]
    [('A[i, k]', 'k'), ('B[k, j]', 'k')]

    ``program`` may be a ``@polypipe.kernel`` function; ``deps``, when given, must be
    ``dependences(program)``.
    """
    program = as_program(program, "pipelinable_reads")
    if not isinstance(include_locals, bool):
        raise ArgumentError(f"pipelinable_reads(): include_locals must be True or False, got "
                            f"{include_locals!r}"[:200])
    deps = (check_dependences(program, deps, "pipelinable_reads") if deps is not None
            else dependences(program))
    try:
        return _all_candidates(program, deps, include_locals)
    except isl.Error as exc:  # a bug rather than bad input, but say what was being analysed
        raise PolypipeError(f"pipelinability analysis of {program.name} failed inside isl: "
                            f"{exc}") from None


def _all_candidates(program: ir.Program, deps: Dependences,
                    include_locals: bool) -> list[PipelineCandidate]:
    analysis = _Analysis(program, deps)
    result = []
    for stmt in program.statements:
        seen = set()
        for index, access in enumerate(stmt.reads):
            if str(access) in seen:
                continue
            seen.add(str(access))
            if program.array(access.array).is_local and not include_locals:
                continue
            for loop in deps.layout.statement_loops[stmt.name]:
                if loop.iterator(stmt.name) is None:
                    continue  # not a source loop (a tiled or skewed band member)
                result.append(analysis.candidate(stmt, index, loop.iterator(stmt.name)))
    return result


@public
def pipeline_candidate(program: ir.Program | Kernel, statement: str, read: int | str,
                       loop: str, *, deps: Dependences | None = None) -> PipelineCandidate:
    """The verdict for one read (index into ``Statement.reads``, array name or access text such
    as ``"A[i, k]"``) of ``statement`` along the loop over ``loop``.

    >>> pipeline_candidate(gemm.program, "S1", "C", "k").reason
    <Reason.WRITTEN_IN_LOOP: 'written in loop'>

    Raises :class:`ScheduleError` for an unknown statement, read or loop variable (one that no
    loop of the program uses) and for a statement without instances.
    """
    program = as_program(program, "pipeline_candidate")
    check_statement(program, statement)
    check_name(loop, "the loop variable")
    deps = (check_dependences(program, deps, "pipeline_candidate") if deps is not None
            else dependences(program))
    stmt = program.statement(statement)
    index = _read_index(stmt, read)
    if stmt.domain.is_empty():
        raise ScheduleError(f"{stmt.name} {_line_text(stmt)}never runs (its loops have no "
                            "iterations for any sizes); there is nothing to stream")
    if not any(loop in (l.name, *l.iterators) for l in deps.loops):
        known = ", ".join(dict.fromkeys(l.name for l in deps.loops)) or "none"
        raise ScheduleError(f"{program.name} has no loop over {loop!r} (loops: {known})")
    try:
        return _Analysis(program, deps).candidate(stmt, index, loop)
    except isl.Error as exc:
        raise PolypipeError(f"pipelinability analysis of {program.name} failed inside isl: "
                            f"{exc}") from None


def _line_text(stmt: ir.Statement) -> str:
    return f"(line {stmt.location.line}) " if stmt.location else ""


def _read_index(stmt: ir.Statement, read: int | str) -> int:
    if not isinstance(read, str) and hasattr(read, "__index__") and not isinstance(read, bool):
        read = int(read.__index__())
        if 0 <= read < len(stmt.reads):
            return read
    elif not isinstance(read, str):
        raise ScheduleError(f"read must be an index into {stmt.name}'s reads or an array name "
                            f"or access text such as 'A[i, k]', got {read!r}"[:300])
    else:
        by_text = [k for k, a in enumerate(stmt.reads) if str(a) == read]
        by_array = [k for k, a in enumerate(stmt.reads) if a.array == read]
        if by_text:
            return by_text[0]
        if len({str(stmt.reads[k]) for k in by_array}) == 1:
            return by_array[0]
        if by_array:
            options = ", ".join(dict.fromkeys(str(stmt.reads[k]) for k in by_array))
            raise ScheduleError(f"{stmt.name} reads {read} more than once ({options}); name the "
                                "access")
    options = ", ".join(str(a) for a in stmt.reads) or "nothing"
    raise ScheduleError(f"{stmt.name} ({stmt.source or stmt}) has no read {read!r} (it reads "
                        f"{options})"[:500])


class _Analysis:
    def __init__(self, program: ir.Program, deps: Dependences):
        self.program = program
        self.deps = deps
        self.before = _BeforeCache(deps.layout)

    def candidate(self, stmt: ir.Statement, index: int, var: str) -> PipelineCandidate:
        access = stmt.reads[index]
        line = stmt.location.line if stmt.location else None
        common = dict(statement=stmt.name, line=line, read=str(access), array=access.array,
                      read_index=index, loop=var)
        if self.program.array(access.array).is_local:
            return PipelineCandidate(
                **common, loop_parallel=self._parallel(stmt, var), pipelinable=False,
                reason=Reason.LOCAL_SCALAR,
                explanation=f"{access.array} is a local scalar (a register value), not an array "
                            "in memory; there is nothing to stage",
                footprint=None, extents=(), reused_across=())
        if var not in stmt.iterators:
            around = ", ".join(stmt.iterators) or "no loop"
            return PipelineCandidate(
                **common, loop_parallel=None, pipelinable=False, reason=Reason.NOT_IN_LOOP,
                explanation=f"{stmt.name} is not inside a loop over {var} (it runs inside "
                            f"{around})",
                footprint=None, extents=(), reused_across=())
        loop = self.deps.loop(stmt.name, var)
        relation = access.relation.intersect_domain(stmt.domain).coalesce()
        position = stmt.iterators.index(var)
        footprint = _footprint(relation, position, stmt.name)
        extent_values = _extents(footprint, self.program.context)
        extents = tuple(format_pw_aff(value) for value in extent_values)
        reused = tuple(v for p, v in enumerate(stmt.iterators)
                       if p > position and _invariant_along(relation, p))
        details = dict(common, loop_parallel=self._parallel(stmt, var), footprint=footprint,
                       extents=extents, reused_across=reused, extent_values=extent_values)

        written = self._written_inside(stmt, index, loop)
        if written is not None:
            return PipelineCandidate(**details, pipelinable=False,
                                     reason=Reason.WRITTEN_IN_LOOP, explanation=written)
        if _invariant_along(footprint, position):
            # the elements of one iteration are those of every iteration (for fixed outer
            # iterators): a load to hoist, not a stream
            return PipelineCandidate(
                **details, pipelinable=False, reason=Reason.LOOP_INVARIANT,
                explanation=f"{access} reads the same {_footprint_words(extents)} in every "
                            f"iteration of {var}; hoist the load out of loop {var} instead of "
                            "streaming it")
        sources = "no writer in the kernel" if self._is_live_in_only(stmt, index) else \
            f"every value it reads is written before loop {var} starts"
        return PipelineCandidate(
            **details, pipelinable=True, reason=Reason.PIPELINABLE,
            explanation=f"{access.array} is not written inside loop {var} ({sources}); stream "
                        f"{_footprint_words(extents)} per iteration")

    def _parallel(self, stmt: ir.Statement, var: str) -> bool | None:
        try:
            return self.deps.loop_is_parallel(stmt.name, var)
        except ScheduleError:
            return None

    def _written_inside(self, stmt: ir.Statement, index: int, loop: Loop) -> str | None:
        """Why the read gets a value produced inside the same run of ``loop``, or None."""
        flow = self.deps.flow_into.get((stmt.name, index))
        if flow is None:
            return None
        for relation in map_list(flow):
            writer = relation.get_tuple_name(isl.dim_type.in_)
            if writer not in loop.statements:
                continue
            # Same run of the loop: equal time coordinates above it (outer loops and the
            # sequence positions leading to it).
            same_run = self.before.at_dim(writer, stmt.name, loop.time_dim, None)
            inside = relation.intersect(same_run)
            if inside.is_empty():
                continue
            array = stmt.reads[index].array
            pair = concrete_pair(inside, self.program.context)
            _, _, _, lines = describe_dependence_pair(self.program, "flow", array, pair)
            writers = sorted({m.get_tuple_name(isl.dim_type.in_) for m in map_list(flow)
                              if m.get_tuple_name(isl.dim_type.in_) in loop.statements})
            sizes = format_parameters(pair.parameters)
            return (f"{array} is written inside loop {loop.iterator(stmt.name)} (by "
                    f"{', '.join(writers)}): the read gets values produced in the same run of "
                    f"the loop\ne.g." + (f" for {sizes}" if sizes else "") + ":\n" + lines)
        return None

    def _is_live_in_only(self, stmt: ir.Statement, index: int) -> bool:
        flow = self.deps.flow_into.get((stmt.name, index))
        return flow is None or flow.is_empty()


# --------------------------------------------------------------------------------------------
# Footprints (pure isl helpers)
# --------------------------------------------------------------------------------------------


def _footprint(relation: isl.Map, position: int, name: str) -> isl.Map:
    """``S[outer.., l] -> A[..]``: project out the iterators inside the loop at ``position``."""
    n = relation.dim(isl.dim_type.in_)
    inner = relation.project_out(isl.dim_type.in_, position + 1, n - position - 1)
    return inner.set_tuple_name(isl.dim_type.in_, name).coalesce()


def _invariant_along(relation: isl.Map, position: int) -> bool:
    """True if the accessed element does not depend on the iterator at ``position``."""
    name = relation.get_dim_name(isl.dim_type.in_, position)
    stmt = relation.get_tuple_name(isl.dim_type.in_)
    widened = relation.project_out(isl.dim_type.in_, position, 1)
    widened = widened.insert_dims(isl.dim_type.in_, position, 1)
    widened = widened.set_dim_name(isl.dim_type.in_, position, name)
    widened = widened.set_tuple_name(isl.dim_type.in_, stmt)
    return widened.intersect_domain(relation.domain()).is_equal(relation)


def _extents(footprint: isl.Map, context: isl.Set) -> tuple[isl.PwAff, ...]:
    """Per array dimension, the largest box size of the footprint over the outer iterators."""
    sizes = []
    for pos in range(footprint.dim(isl.dim_type.out)):
        if footprint.is_empty():
            sizes.append(isl.PwAff.zero_on_domain(isl.LocalSpace.from_space(
                footprint.get_space().params())))
            continue
        extent = footprint.dim_max(pos) - footprint.dim_min(pos) + 1
        values = isl.Map.from_pw_aff(extent).range()
        sizes.append(values.dim_max(0).gist_params(context.align_params(values.get_space())))
    return tuple(sizes)


_AFF = re.compile(r"\[\((.*)\)\]")

# Sizes at least this large count as "general": a footprint formula is shown for them, the small
# special cases (N = 1, 2, ...) stay available in the exact isl.PwAff.
_GENERAL_SIZE = 64


def format_pw_aff(value: isl.PwAff, general: bool = True) -> str:
    """A piecewise value as text: ``NJ``, or ``5`` for ``{ 5 : N >= 5; N : N <= 4 }``.

    With ``general`` only the pieces that hold for large parameters (all at least 64) are
    shown when that leaves one formula; otherwise every piece, ``a if cond; b if cond``.
    """
    pieces = [(condition, _aff_text(aff)) for condition, aff in value.get_pieces()]
    if not pieces:
        return "0"
    if general:
        large = [text for condition, text in pieces if not _large(condition).is_empty()]
        if len(set(large)) == 1:
            return large[0]
    distinct = list(dict.fromkeys(text for _, text in pieces))
    if len(distinct) == 1:
        return distinct[0]
    return "; ".join(f"{text} if {_condition_text(condition)}" for condition, text in pieces)


def _aff_text(aff: isl.Aff) -> str:
    match = _AFF.search(str(aff))
    return match.group(1) if match else str(aff)


def _condition_text(condition: isl.Set) -> str:
    text = str(condition)
    return text.split(":", 1)[1].rstrip(" }").strip() if ":" in text else "true"


def _large(condition: isl.Set) -> isl.Set:
    ctx = condition.get_ctx()
    for pos in range(condition.dim(isl.dim_type.param)):
        condition = condition.lower_bound_val(isl.dim_type.param, pos,
                                              isl.Val.int_from_si(ctx, _GENERAL_SIZE))
    return condition


def _footprint_words(extents: Sequence[str]) -> str:
    if all(e == "1" for e in extents):
        return "1 element"
    return f"{' x '.join(extents)} box"


# --------------------------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------------------------


def format_table(candidates: Sequence[PipelineCandidate]) -> str:
    """A fixed-width table, one row per candidate; refusals show their reason and first line."""
    if isinstance(candidates, (str, bytes)) or not hasattr(candidates, "__iter__"):
        raise ArgumentError(f"format_table() takes the list pipelinable_reads() returns, not "
                            f"{type_name(candidates)}")
    candidates = list(candidates)
    for c in candidates:
        if not isinstance(c, PipelineCandidate):
            raise ArgumentError(f"format_table() takes PipelineCandidate objects (from "
                                f"pipelinable_reads()), got {type_name(c)}")
    header = ("stmt", "line", "read", "loop", "kind", "per iteration", "reused across",
              "verdict")
    rows = []
    for c in candidates:
        kind = {True: "parallel", False: "sequential", None: "-"}[c.loop_parallel]
        verdict = "pipelinable" if c.pipelinable else \
            f"no ({c.reason.value}): {c.explanation.splitlines()[0]}"
        rows.append((c.statement, str(c.line or "-"), c.read, c.loop, kind, c.footprint_text,
                     ", ".join(c.reused_across) or "-", verdict))
    widths = [max(len(r[k]) for r in rows + [header]) for k in range(len(header) - 1)]
    lines = []
    for row in [header] + rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
