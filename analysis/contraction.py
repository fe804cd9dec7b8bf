"""Recognise contraction loop nests: outputs indexed by some loops, reduced over the others.

A top-level loop nest is a contraction when exactly one statement (the *update*) reads and
writes the same element of an accumulator and has loops that do not index that element (the
reduction loops), and every other statement of the nest touches exactly one accumulator element
per instance (initialisations before the update, epilogues after it). Matrix multiply, batched
matrix multiply, convolutions and each nest of 2mm/3mm have this shape. A local scalar
accumulator (``acc = 0; for k: acc += ...; C[i, j] = acc``) is expanded over the loops that
enclose all its uses.

Everything here is read off the model with isl; a nest of another shape gets a
:class:`~polypipe.errors.ScheduleError` that says which condition failed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import islpy as isl

from polypipe import ir
from polypipe.errors import LegalityError, ScheduleError


@dataclass(frozen=True, eq=False)
class Contraction:
    """One contraction nest, with the accumulator element of every statement instance.

    ``output_iterators[d]`` is the update's iterator that indexes accumulator dimension ``d``
    (the element is ``iterator + output_offsets[d]``); ``reduction_iterators`` are the update's
    other iterators in loop order: the last one is streamed (tiled by the reduction tile), the
    others run as sequential loops around the pipeline. ``element_of`` maps each statement of
    the nest to its accumulator element relation.
    """

    program: ir.Program              # the program, with a local accumulator expanded
    statements: tuple[str, ...]      # the nest's statements, in source order
    update: str | None               # None for an element-wise nest (no reduction)
    accumulator: str
    output_iterators: tuple[str, ...]
    output_offsets: tuple[int, ...]
    reduction_iterators: tuple[str, ...]
    element_of: dict[str, isl.Map]
    expanded_local: str | None = None   # the local scalar accumulator that was expanded
    expanded_array: str | None = None   # ... and the array it became

    @property
    def rank(self) -> int:
        return len(self.output_iterators)

    @property
    def inits(self) -> tuple[str, ...]:
        if self.update is None:
            return self.statements
        index = self.statements.index(self.update)
        return self.statements[:index]

    @property
    def epilogues(self) -> tuple[str, ...]:
        if self.update is None:
            return ()
        index = self.statements.index(self.update)
        return self.statements[index + 1:]


def top_level_nests(program: ir.Program) -> list[list[ir.Statement]]:
    """Statements grouped by their outermost loop, in source order; consecutive statements
    outside every loop form a group of their own."""
    groups: list[list[ir.Statement]] = []
    current: object = None
    for stmt in program.statements:
        outer = stmt.loop_ids[0] if stmt.loop_ids else ("straight-line",)
        if outer != current or not groups:
            groups.append([])
            current = outer
        groups[-1].append(stmt)
    return groups


def nest_program(program: ir.Program, nest: list[ir.Statement]) -> ir.Program:
    """``program`` with only the statements of ``nest`` (its schedule restricted to them)."""
    domain = nest[0].domain
    union = isl.UnionSet.from_set(domain)
    for stmt in nest[1:]:
        union = union.union(isl.UnionSet.from_set(stmt.domain))
    return replace(program, statements=tuple(nest),
                   schedule=program.schedule.intersect_domain(union))


def _where(stmt: ir.Statement) -> str:
    line = f"line {stmt.location.line}: " if stmt.location else ""
    return f"{stmt.name} ({line}{stmt.source})"


def affine_function(relation: isl.Map) -> isl.MultiAff | None:
    """One affine function equal to ``relation`` on its domain, or None if there is none.

    isl may write one function differently on the pieces of a domain that is a union
    (``j - 1`` as ``-1`` where ``j = 0``); any piece's expression, or the relation's affine
    hull where that is a function, that gives the same values on the whole domain will do.
    On an empty domain every function is equal to the relation: the zero function is returned.
    """
    if relation.is_empty():
        return isl.MultiAff.zero(relation.get_space())
    domain = relation.domain()
    candidates = []
    isl.PwMultiAff.from_map(relation).foreach_piece(lambda _, ma: candidates.append(ma))
    hull = isl.Map.from_basic_map(relation.affine_hull())
    if hull.is_single_valued():
        isl.PwMultiAff.from_map(hull).foreach_piece(lambda _, ma: candidates.append(ma))
    for candidate in candidates:
        if isl.Map.from_multi_aff(candidate).intersect_domain(domain).is_equal(relation):
            return candidate
    return None


def _unit_index(access: ir.Access, stmt: ir.Statement) -> tuple[list[str], list[int]]:
    """For ``C[i, j + 1]``: (["i", "j"], [0, 1]); refuses anything but iterator + constant."""
    if access.relation.is_empty():
        raise ScheduleError(f"{_where(stmt)} never runs, whatever the sizes (its loops and "
                            "conditions leave no iteration); remove it from the loop nest")
    function = affine_function(access.relation)
    if function is None:
        raise ScheduleError(f"{_where(stmt)}: the accumulator subscripts of {access} are "
                            "piecewise (not one affine function of the loop variables), so "
                            "an output element has no single owning thread")
    iterators, offsets = [], []
    for dim in range(function.dim(isl.dim_type.out)):
        aff = function.get_aff(dim)
        used = [k for k in range(aff.dim(isl.dim_type.in_))
                if not aff.get_coefficient_val(isl.dim_type.in_, k).is_zero()]
        params = [k for k in range(aff.dim(isl.dim_type.param))
                  if not aff.get_coefficient_val(isl.dim_type.param, k).is_zero()]
        if (len(used) != 1 or params or aff.dim(isl.dim_type.div)
                or not aff.get_coefficient_val(isl.dim_type.in_, used[0]).is_one()):
            raise ScheduleError(
                f"{_where(stmt)}: accumulator subscript {dim} of {access} must be a loop "
                "variable plus a constant, so that each output element belongs to one thread")
        iterators.append(stmt.iterators[used[0]])
        offsets.append(aff.get_constant_val().to_python())
    if len(set(iterators)) != len(iterators):
        raise ScheduleError(f"{_where(stmt)}: {access} uses one loop variable twice")
    return iterators, offsets


def _expand_local(program: ir.Program, nest: list[ir.Statement], local: str
                  ) -> tuple[ir.Program, list[ir.Statement]]:
    """The local scalar accumulator expanded over the loops enclosing its uses
    (:func:`polypipe.transform_locals.expand_local`, proved and logged), and the nest's
    statements in the expanded program."""
    from polypipe.transform_locals import expand_local

    users = [s for s in program.statements if any(a.array == local for a in s.accesses)]
    outside = [s for s in users if s not in nest]
    if outside:
        raise ScheduleError(f"local `{local}` is also used by {_where(outside[0])}, outside "
                            "this loop nest; it cannot become a per-output accumulator")
    try:
        expanded = expand_local(program, local)
    except LegalityError as exc:
        raise ScheduleError(f"local `{local}` is not a per-output accumulator: {exc}") from None
    names = {s.name for s in nest}
    return expanded, [s for s in expanded.statements if s.name in names]


def recognise(program: ir.Program, nest: list[ir.Statement]) -> Contraction:
    """The contraction structure of one top-level nest, or a ScheduleError saying why not."""
    for stmt in nest:
        guarded = [a for a in stmt.reads if a.full is not None]
        if guarded:
            raise ScheduleError(f"{_where(stmt)} reads {guarded[0]} only where a select's test "
                                "holds; polypipe.optimize does not map such guarded reads yet "
                                "(the CPU backend runs them)")
    updates = []
    for stmt in nest:
        target = stmt.target
        rereads = [a for a in stmt.reads if a.array == target.array
                   and a.relation.is_equal(target.relation)]
        if rereads and len(stmt.iterators) > 0:
            updates.append(stmt)
    reducing = []
    for stmt in updates:
        if stmt.target.indices == () and program.array(stmt.target.array).is_local:
            reducing.append(stmt)
            continue
        iterators, _ = _unit_index(stmt.target, stmt)
        if len(iterators) < len(stmt.iterators):
            reducing.append(stmt)
    if not reducing:
        return _elementwise(program, nest)
    if len(reducing) != 1:
        first = nest[0]
        names = ", ".join(s.name for s in reducing)
        raise ScheduleError(f"the loop nest starting at {_where(first)} has several reduction "
                            f"statements ({names}); write one contraction per loop nest")
    update = reducing[0]
    expanded_local = None
    if program.array(update.target.array).is_local:
        expanded_local = update.target.array
        program, nest = _expand_local(program, nest, expanded_local)
        update = next(s for s in nest if s.name == update.name)
    accumulator = update.target.array
    output_iterators, offsets = _unit_index(update.target, update)
    if len(output_iterators) < 2:
        raise ScheduleError(f"{_where(update)}: the accumulator {update.target} has "
                            f"{len(output_iterators)} dimension(s); GPU tiling needs at least "
                            "two output dimensions (rows and columns)")
    reduction = tuple(i for i in update.iterators if i not in output_iterators)
    element_of = _elements(nest, accumulator, update)
    return Contraction(program, tuple(s.name for s in nest), update.name, accumulator,
                       tuple(output_iterators), tuple(offsets), reduction, element_of,
                       expanded_local, accumulator if expanded_local else None)


def _elementwise(program: ir.Program, nest: list[ir.Statement]) -> Contraction:
    """A nest without reduction (e.g. ``C[i, j] = 0``): one output element per instance.

    The first statement's target gives the output elements; every statement must touch one
    element of it per instance. Such a nest maps to blocks and threads without a pipeline.
    """
    first = nest[0]
    accumulator = first.target.array
    if program.array(accumulator).is_local or first.target.relation.dim(isl.dim_type.out) < 2:
        raise ScheduleError(
            f"the loop nest starting at {_where(first)} has no reduction statement and does "
            f"not write a 2-D (or higher) array element per instance; polypipe.optimize maps "
            "contractions (matrix multiply, convolution, ...) and element-wise 2-D nests")
    output_iterators, offsets = _unit_index(first.target, first)
    if not first.target.relation.is_injective():
        raise ScheduleError(f"{_where(first)} writes some element of `{accumulator}` more "
                            "than once")
    return Contraction(program, tuple(s.name for s in nest), None, accumulator,
                       tuple(output_iterators), tuple(offsets), (),
                       _elements(nest, accumulator, None))


def _elements(nest: list[ir.Statement], accumulator: str, update: ir.Statement | None
              ) -> dict[str, isl.Map]:
    """Each statement's instance -> accumulator element relation (one element each)."""
    element_of: dict[str, isl.Map] = {}
    for stmt in nest:
        touching = [a for a in stmt.accesses if a.array == accumulator]
        if not touching:
            if update is None:   # element-wise: the output is the first statement's target
                raise ScheduleError(
                    f"{_where(stmt)} does not touch `{accumulator}`, the output of the "
                    f"element-wise nest starting at {_where(nest[0])}; a GPU kernel maps one "
                    "output array per loop nest: split the nest")
            raise ScheduleError(f"{_where(stmt)} does not touch the accumulator "
                                f"`{accumulator}` of {_where(update)}; a GPU kernel holds one "
                                "contraction: split the nest")
        relation = touching[0].relation
        if any(not a.relation.is_equal(relation) for a in touching[1:]):
            raise ScheduleError(f"{_where(stmt)} touches several elements of `{accumulator}`")
        if stmt is not update and not relation.is_injective():
            raise ScheduleError(f"{_where(stmt)} touches each element of `{accumulator}` more "
                                "than once; only a reduction statement (`acc[...] += ...` "
                                "over loops that do not index acc) may do that")
        element_of[stmt.name] = relation
    return element_of
