"""Prove a new schedule legal, or refuse it with one concrete counterexample.

Before (gemm, source order ``{ S0[i, j] -> [i, 0, j, 0]; S1[i, k, j] -> [i, 1, k, j] }``)::

    for i in range(NI):
        for j in range(NJ):
            C[i, j] *= beta                                   # S0
        for k in range(NK):
            for j in range(NJ):
                C[i, j] += alpha * A[i, k] * B[k, j]          # S1

After ``check_schedule(p, "{ S0[i, j] -> [i, 0, j, 0]; S1[i, k, j] -> [i, 1, j, k] }")``
(interchange k and j): returns normally, every dependence still runs forward. After
``check_schedule(p, "{ S0[i, j] -> [i, 0, j, 0]; S1[i, k, j] -> [i, 1, -k, j] }")`` (reverse
the reduction): raises :class:`DependenceViolation`::

    the schedule breaks a flow dependence on C (for NI = 1, NJ = 1, NK = 2):
      S1[i=0, k=0, j=0] (line 94: C[i, j] += alpha * A[i, k] * B[k, j]) writes C[0, 0]
      S1[i=0, k=1, j=0] (line 94: C[i, j] += alpha * A[i, k] * B[k, j]) reads that value
    but the new schedule runs the first at time [0, 1, 0, 0] and the second earlier, at
    [0, 1, -1, 0]

The pair, the element and the sizes are computed by isl (the lexicographically smallest
violating pair for the smallest parameter values), not searched for.

Which dependences are checked: value-based flow (each read with its last writer) and
memory-based anti and output. That set is complete: a memory-based flow pair W -> R whose value
was overwritten by W' in between is implied by the output pair W -> W' and the flow pair W' -> R,
and strict time order is transitive, so checking memory-based flow too would only add work (and
counterexamples that are not real dataflow).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Collection, Mapping, Sequence

import islpy as isl

from polypipe import ir
from polypipe.analysis.bounds import describe_instance, fix_parameters, point_values
from polypipe.analysis.dependences import (Dependence, Dependences, ScheduleLayout,
                                           as_program, check_dependences, dependences,
                                           empty_time, map_list, schedule_layout,
                                           time_space_relation, type_name)
from polypipe.errors import ArgumentError, LegalityError, ScheduleError, public

if TYPE_CHECKING:  # annotations only: kernel.py imports the front end
    from polypipe.kernel import Kernel


class DependenceViolation(LegalityError):
    """A schedule runs a dependence backwards, or a required-parallel dimension carries one.

    Besides the message, the counterexample is kept as data: ``kind``, ``array``, ``source`` and
    ``sink`` (instances such as ``"S1[i=0, k=0, j=0]"``), ``element`` (``"C[0, 0]"``),
    ``parameters`` (the sizes it fails for) and ``parallel_dim`` (the time dimension that was
    required to be parallel, or None for an order violation).
    """

    def __init__(self, message: str, *, kind: str, array: str, source: str, sink: str,
                 element: str, parameters: Mapping[str, int], parallel_dim: int | None):
        self.kind = kind
        self.array = array
        self.source = source
        self.sink = sink
        self.element = element
        self.parameters = dict(parameters)
        self.parallel_dim = parallel_dim
        super().__init__(message)


@dataclass(frozen=True)
class InstancePair:
    """One concrete source/sink pair of a relation, for concrete parameter values."""

    parameters: dict[str, int]
    source: str                 # statement name
    source_values: tuple[int, ...]
    sink: str
    sink_values: tuple[int, ...]


def concrete_pair(relation: isl.Map, context: isl.Set) -> InstancePair:
    """The lexicographically smallest pair of a non-empty ``relation``, for the smallest sizes.

    Parameters are fixed first (lexicographic minimum of the relation's parameter domain
    within ``context`` and non-negative values, when that exists; otherwise an isl sample), so
    the example is as small as isl can make it: gemm's reversed reduction fails first for
    ``NI = 1, NK = 2, NJ = 1`` at ``S1[0, 0, 0] -> S1[0, 1, 0]``.
    """
    params = relation.params().intersect(context.align_params(relation.get_space().params()))
    values = _smallest_parameters(params)
    fixed = relation.intersect_params(fix_parameters(relation, values))
    point = fixed.wrap().lexmin().sample_point()
    coordinates = point_values(point)
    n_in = relation.dim(isl.dim_type.in_)
    return InstancePair(values, relation.get_tuple_name(isl.dim_type.in_),
                        tuple(coordinates[:n_in]),
                        relation.get_tuple_name(isl.dim_type.out), tuple(coordinates[n_in:]))


def _smallest_parameters(params: isl.Set) -> dict[str, int]:
    n = params.dim(isl.dim_type.param)
    names = [params.get_dim_name(isl.dim_type.param, k) for k in range(n)]
    as_set = params.move_dims(isl.dim_type.set, 0, isl.dim_type.param, 0, n)
    nonnegative = as_set
    for k in range(n):
        nonnegative = nonnegative.lower_bound_val(isl.dim_type.set, k,
                                                  isl.Val.int_from_si(as_set.get_ctx(), 0))
    candidates = [nonnegative, as_set] if not nonnegative.is_empty() else [as_set]
    for candidate in candidates:
        try:
            point = candidate.lexmin().sample_point()
        except isl.Error:  # unbounded below (an int argument with no lower bound)
            point = candidate.sample_point()
        if not point.is_void():
            return dict(zip(names, point_values(point)))
    raise AssertionError("sampling parameters of a non-empty relation failed")


def element_between(program: ir.Program, kind: str, array: str, pair: InstancePair) -> str:
    """The element of ``array`` that both instances of a dependence pair touch: ``C[0, 0]``."""
    first, second = program.statement(pair.source), program.statement(pair.sink)
    first_accesses = ([first.target] if kind in ("flow", "output")
                      else [a for a in first.reads if a.array == array])
    second_accesses = ([second.target] if kind in ("anti", "output")
                       else [a for a in second.reads if a.array == array])
    touched = []
    for stmt, accesses, values in ((first, first_accesses, pair.source_values),
                                   (second, second_accesses, pair.sink_values)):
        elements = None
        for access in accesses:
            if access.array != array:
                continue
            relation = access.relation.intersect_params(
                fix_parameters(access.relation, pair.parameters))
            image = relation.intersect_domain(_instance(relation.domain(), values)).range()
            elements = image if elements is None else elements.union(image)
        touched.append(elements)
    common = touched[0].intersect(touched[1])
    index = point_values(common.sample_point())
    return f"{array}[{', '.join(map(str, index))}]" if index else array


def _instance(domain: isl.Set, values: Sequence[int]) -> isl.Set:
    ctx = domain.get_ctx()
    for pos, value in enumerate(values):
        # exact: coordinates may lie beyond a C long (range(10**30, 10**30 + N))
        domain = domain.fix_val(isl.dim_type.set, pos, isl.Val(str(int(value)), context=ctx))
    return domain


def describe_pair(program: ir.Program, pair: InstancePair) -> tuple[str, str]:
    return (describe_instance(program.statement(pair.source), pair.source_values),
            describe_instance(program.statement(pair.sink), pair.sink_values))


def statement_line(stmt: ir.Statement) -> str:
    """``(line 94: C[i, j] += alpha * A[i, k] * B[k, j])``"""
    text = stmt.source or str(stmt)
    return f"(line {stmt.location.line}: {text})" if stmt.location else f"({text})"


_VERBS = {"flow": ("writes {e}", "reads that value"),
          "anti": ("reads {e}", "overwrites it"),
          "output": ("writes {e}", "overwrites it")}


def describe_dependence_pair(program: ir.Program, kind: str, array: str,
                             pair: InstancePair) -> tuple[str, str, str, str]:
    """(source text, sink text, element, two indented lines naming both instances)."""
    source, sink = describe_pair(program, pair)
    element = element_between(program, kind, array, pair)
    first_verb, second_verb = _VERBS[kind]
    lines = (f"  {source} {statement_line(program.statement(pair.source))} "
             f"{first_verb.format(e=element)}\n"
             f"  {sink} {statement_line(program.statement(pair.sink))} {second_verb}")
    return source, sink, element, lines


def format_parameters(values: Mapping[str, int]) -> str:
    return ", ".join(f"{name} = {value}" for name, value in values.items())


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------


@public
def check_schedule(program: ir.Program | Kernel, schedule: isl.Schedule | isl.UnionMap | str,
                   *, parallel: Collection[int | str] | int | str = (),
                   deps: Dependences | None = None) -> None:
    """Raise :class:`DependenceViolation` unless ``schedule`` respects every dependence.

    ``schedule`` maps each statement instance to a time vector: an ``isl.Schedule`` (a tree,
    compared through its flat map), an ``isl.UnionMap`` or its text. Time vectors of different
    lengths are padded with zeros, as isl does for schedule trees. Every flow, anti and output
    dependence of ``program`` (on its own schedule) must go strictly forward in the new time.

    ``parallel`` names time dimensions that must carry no dependence (their iterations may run
    concurrently): an ``int`` is a position in the flat time vector; a ``str`` is a loop variable
    of a band in an ``isl.Schedule`` (every band member iterating it) or the name of a time
    dimension of a union map (``{ S[i, j] -> [t = j, u = i] }``).

    Before/after (gemm)::

        check_schedule(p, p.schedule, parallel=["i", "j"])     # fine: returns None
        check_schedule(p, p.schedule, parallel=["k"])          # DependenceViolation: loop k
        # (dimension 2) carries a flow dependence on C: S1[i=0, k=0, j=0] -> S1[i=0, k=1, j=0]

    ``program`` may be a ``@polypipe.kernel`` function (its ``.program`` is checked); ``deps``,
    when given, must be ``dependences(program)`` (or of a program with the same statements).

    A schedule that misses statements or instances, maps one instance to several times or is
    not an isl object raises :class:`ScheduleError`; a program, ``parallel`` or ``deps`` of the
    wrong type raises :class:`~polypipe.errors.ArgumentError`.
    """
    program = as_program(program, "check_schedule")
    parallel = _parallel_items(parallel)
    if deps is not None:
        check_dependences(program, deps, "check_schedule")
    layout, dims_of, labels = _normalise(program, schedule, parallel)
    deps = deps if deps is not None else dependences(program)
    try:
        _check(program, deps, layout, dims_of, labels)
    except isl.Error as exc:
        raise ScheduleError(f"cannot compare the schedule with the dependences of "
                            f"{program.name}: isl failed ({exc})") from None


def _check(program: ir.Program, deps: Dependences, layout: ScheduleLayout,
           dims_of: Mapping[int, frozenset[str] | None], labels: Mapping[int, str]) -> None:
    time = layout.time
    backwards: dict[tuple[str, str], isl.Map] = {}
    for dep in deps.records:
        key = (dep.source, dep.sink)
        if key not in backwards:
            # sink not strictly after source: the same time counts, the order is then undefined
            backwards[key] = time[dep.source].lex_ge_map(time[dep.sink])
        violated = dep.relation.intersect(backwards[key])
        if not violated.is_empty():
            _raise(program, dep, violated, layout, None)
    for dim, statements in sorted(dims_of.items()):
        across = None
        crossing: dict[tuple[str, str], isl.Map] = {}
        for dep in deps.records:
            if statements is not None and not {dep.source, dep.sink} <= statements:
                continue
            key = (dep.source, dep.sink)
            if key not in crossing:
                # equal on the outer dimensions, different at `dim`: the pair would run in two
                # different (concurrent) iterations of that dimension
                if across is None:
                    across = time_space_relation(layout.n_dims, time[dep.source], dim, "!=")
                crossing[key] = time[dep.source].apply_range(across).apply_range(
                    time[dep.sink].reverse())
            violated = dep.relation.intersect(crossing[key])
            if not violated.is_empty():
                _raise(program, dep, violated, layout, dim, labels.get(dim))


def _raise(program: ir.Program, dep: Dependence, violated: isl.Map, layout: ScheduleLayout,
           parallel_dim: int | None, parallel_label: str | None = None) -> None:
    pair = concrete_pair(violated, program.context)
    source, sink, element, lines = describe_dependence_pair(program, dep.kind, dep.array, pair)
    times = [_time_of(layout, stmt, values, pair.parameters)
             for stmt, values in ((pair.source, pair.source_values),
                                  (pair.sink, pair.sink_values))]
    sizes = format_parameters(pair.parameters)
    where = f" (for {sizes})" if sizes else ""
    if parallel_dim is None:
        if times[0] == times[1]:
            tail = f"but the new schedule gives both the same time {times[0]}, so their order " \
                   "is undefined"
        else:
            tail = (f"but the new schedule runs the first at time {times[0]} and the second "
                    f"earlier, at {times[1]}")
        message = f"the schedule breaks {_article(dep.kind)} {dep.kind} dependence on " \
                  f"{dep.array}{where}:\n{lines}\n{tail}"
    else:
        label = parallel_label or f"time dimension {parallel_dim}"
        message = (f"{label} must be parallel but carries "
                   f"{_article(dep.kind)} {dep.kind} dependence on {dep.array}{where}:\n{lines}\n"
                   f"they run in different iterations of {label}: times {times[0]} and "
                   f"{times[1]}")
    raise DependenceViolation(message, kind=dep.kind, array=dep.array, source=source,
                              sink=sink, element=element, parameters=pair.parameters,
                              parallel_dim=parallel_dim)


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def _time_of(layout: ScheduleLayout, stmt: str, values: Sequence[int],
             parameters: Mapping[str, int]) -> str:
    relation = layout.time[stmt]
    relation = relation.intersect_params(fix_parameters(relation, parameters))
    image = relation.intersect_domain(_instance(relation.domain(), values)).range()
    return f"[{', '.join(map(str, point_values(image.sample_point())))}]"


# --------------------------------------------------------------------------------------------
# Schedules in, flat time maps out
# --------------------------------------------------------------------------------------------


def _parallel_items(parallel) -> tuple:
    """``parallel`` as a tuple of items (one int or name on its own is one item)."""
    if isinstance(parallel, str) or (hasattr(parallel, "__index__")
                                     and not isinstance(parallel, bool)):
        return (parallel,)
    if not isinstance(parallel, (bytes, bytearray, Mapping)):
        try:
            return tuple(parallel)
        except TypeError:
            pass
    raise ArgumentError(f"parallel must be a time dimension (an int or a loop name) or a "
                        f"collection of them, got {parallel!r}"[:200]
                        + ("" if parallel is None else f" ({type_name(parallel)})"))


def _normalise(program: ir.Program, schedule, parallel: Sequence[int | str]
               ) -> tuple[ScheduleLayout, dict[int, frozenset[str] | None], dict[int, str]]:
    """The schedule as per-statement time maps of one length, and the parallel dimensions
    (dimension -> statements it applies to, None for all; dimension -> how the user named it).
    """
    try:
        if isinstance(schedule, str):
            schedule = isl.UnionMap(schedule)
        elif isinstance(schedule, isl.Map):
            schedule = isl.UnionMap.from_map(schedule)
        schedule = _in_context(schedule, program.context.get_ctx())
        if isinstance(schedule, isl.Schedule):
            layout = schedule_layout(schedule)
            named = {}
            for loop in layout.loops:
                for stmt, var in zip(loop.statements, loop.iterators):
                    for name in {var, loop.name} - {None}:
                        named.setdefault(name, {}).setdefault(loop.time_dim, set()).add(stmt)
        elif isinstance(schedule, isl.UnionMap):
            layout, named = _layout_of_map(program, schedule)
        else:
            raise ScheduleError(f"a schedule must be an isl.Schedule or an isl.UnionMap "
                                f"(statement instance -> time vector) or its text, got "
                                f"{type_name(schedule)}")
        layout = _check_coverage(program, layout)
    except isl.Error as exc:
        raise ScheduleError(f"cannot read the schedule: {exc}") from None

    dims_of: dict[int, frozenset[str] | None] = {}
    labels: dict[int, str] = {}
    for item in parallel:
        if not isinstance(item, str) and hasattr(item, "__index__") \
                and not isinstance(item, bool):
            item = int(item.__index__())  # NumPy integers count as ints
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise ScheduleError(f"parallel dimensions are ints (positions in the time vector) "
                                f"or names, got {item!r}"[:300])
        if isinstance(item, int):
            if not 0 <= item < layout.n_dims:
                span = (f"dimensions 0 to {layout.n_dims - 1}" if layout.n_dims
                        else "it has no dimensions")
                raise ScheduleError(f"parallel dimension {item} is outside the time vector "
                                    f"({span})"[:300])
            dims_of[item] = None
            continue
        if item not in named:
            known = ", ".join(sorted(named)) or "none"
            raise ScheduleError(f"no loop or time dimension named {item!r} in the schedule "
                                f"(named ones: {known})")
        for dim, statements in named[item].items():
            labels.setdefault(dim, f"loop {item} (time dimension {dim})")
            if dim in dims_of and dims_of[dim] is None:
                continue
            dims_of[dim] = frozenset((dims_of.get(dim) or frozenset()) | statements)
    return layout, dims_of, labels


def strip_parameters_text(relation: isl.Map) -> str:
    text = str(relation)
    return text[text.find("{"):] if "{" in text else text


def _in_context(schedule, ctx: isl.Context):
    """An isl schedule made in another isl context, re-read in the program's (isl objects of
    two contexts cannot be combined)."""
    if isinstance(schedule, (isl.Schedule, isl.UnionMap)) and not schedule.get_ctx() == ctx:
        reader = (isl.Schedule.read_from_str if isinstance(schedule, isl.Schedule)
                  else isl.UnionMap.read_from_str)
        return reader(ctx, str(schedule))
    return schedule


def _layout_of_map(program: ir.Program, schedule: isl.UnionMap
                   ) -> tuple[ScheduleLayout, dict[str, dict[int, set[str]]]]:
    schedule = schedule.align_params(program.context.get_space())
    maps = map_list(schedule)
    n_dims = max((m.dim(isl.dim_type.out) for m in maps), default=0)
    time: dict[str, isl.Map] = {}
    named: dict[str, dict[int, set[str]]] = {}
    for relation in maps:
        stmt = relation.get_tuple_name(isl.dim_type.in_)
        if not stmt:
            raise ScheduleError(f"the schedule maps an unnamed tuple "
                                f"({strip_parameters_text(relation)}); name each statement's "
                                f"instances like S0[i, j]"[:300])
        if stmt in time:
            raise ScheduleError(f"the schedule maps {stmt} to time vectors of different "
                                "shapes; give each statement one map")
        n = relation.dim(isl.dim_type.out)
        for pos in range(n):
            name = relation.get_dim_name(isl.dim_type.out, pos)
            if name:
                named.setdefault(name, {}).setdefault(pos, set()).add(stmt)
        relation = relation.reset_tuple_id(isl.dim_type.out)
        if n < n_dims:
            relation = relation.add_dims(isl.dim_type.out, n_dims - n)
            for pos in range(n, n_dims):
                relation = relation.fix_val(isl.dim_type.out, pos, 0)
        for pos in range(n_dims):
            relation = relation.set_dim_name(isl.dim_type.out, pos, f"t{pos}")
        time[stmt] = relation.coalesce()
    return ScheduleLayout(n_dims, time, (), {s: () for s in time}), named


def _check_coverage(program: ir.Program, layout: ScheduleLayout) -> ScheduleLayout:
    """The layout restricted to the program's instances, after checking it covers them all."""
    time: dict[str, isl.Map] = {}
    for stmt in program.statements:
        relation = layout.time.get(stmt.name)
        if relation is None and stmt.domain.is_empty():
            # no instance to schedule: isl leaves such a statement out of a schedule tree's
            # domain (for i in range(0)), so the program's own schedule has no map for it
            relation = empty_time(stmt.domain, layout.n_dims)
        if relation is None:
            raise ScheduleError(f"the schedule does not schedule {stmt.name} "
                                f"{statement_line(stmt)}; give every statement a time")
        if relation.dim(isl.dim_type.in_) != len(stmt.iterators):
            raise ScheduleError(f"the schedule maps {stmt.name} with "
                                f"{relation.dim(isl.dim_type.in_)} iterator(s), but "
                                f"{stmt.name} has {len(stmt.iterators)} "
                                f"({', '.join(stmt.iterators) or 'none'})")
        missing = stmt.domain.subtract(relation.domain())
        if not missing.is_empty():
            raise ScheduleError(f"the schedule has no time for "
                                f"{describe_instance(stmt, _example_point(missing, program))} "
                                f"{statement_line(stmt)}")
        relation = relation.intersect_domain(stmt.domain).coalesce()
        if not relation.is_single_valued():
            raise ScheduleError(f"the schedule gives some instances of {stmt.name} several "
                                "times; a schedule must be a function")
        time[stmt.name] = relation
    extra = set(layout.time) - set(time)
    if extra:
        raise ScheduleError(f"the schedule names statements that {program.name} does not have: "
                            f"{', '.join(sorted(extra))}")
    return replace(layout, time=time)


def _example_point(instances: isl.Set, program: ir.Program) -> list[int]:
    params = instances.params().intersect(
        program.context.align_params(instances.get_space().params()))
    values = _smallest_parameters(params)
    fixed = instances.intersect_params(fix_parameters(instances, values))
    return point_values(fixed.lexmin().sample_point())
