"""Schedule transformations for experts: tile, interchange, skew, split and fuse bands, fuse
sibling loops, mark bands as GPU blocks or threads.

Each transformation is one function ``Program -> Program`` (a ``@polypipe.kernel`` function is
accepted in place of its ``.program``; anything else raises
:class:`~polypipe.errors.ArgumentError`). It rewrites the program's schedule
tree (``Program.schedule``, an ``isl.Schedule``), proves the new schedule legal with
:func:`polypipe.analysis.legality.check_schedule` (every flow, anti and output dependence still
runs forward; every band marked ``block`` or ``thread`` still carries no dependence) and returns
a new program whose transform log ``Program.transforms`` ends with the call that made it, e.g.
``"tile(loops=('i', 'j'), sizes=(32, 32), statement='S1')"``. The log replays with
:func:`replay_transforms`. A refusal raises
:class:`~polypipe.analysis.legality.DependenceViolation` (a ``LegalityError``) that quotes the
transformation and names both statement instances, the array element they conflict on and the
sizes it fails for; a malformed request (an unknown loop or statement, a tile size or skew
factor that is not an integer of at most 64 bits, ...) raises
:class:`~polypipe.errors.ScheduleError`.

**Addressing loops.** A loop is a *band member* of the schedule tree, named after the loop
variable it iterates for the statement (``"i"``), found on the path from the root to the
statement's leaf. ``statement=`` chooses the statement; without it a name must mean the same
band member for every statement that has a loop of that name (gemm's ``"k"`` does; its ``"j"``
names two different loops, around ``S0`` and around ``S1``). Members keep their names through
the transformations and polypipe names the members it creates:

- after ``interchange``, ``split_band``, ``fuse_bands``: unchanged names;
- after ``tile``: the tile loops are ``"<loop>_tile"`` (or ``tile_names=``), the point loops
  keep the loop's name;
- after ``skew(loop="i", by="t")``: the skewed loop ``i + t`` is still called ``"i"``;
- after ``fuse_loops``: the fused loop takes the first loop's name.

:func:`statement_loops` lists the names around a statement, outer to inner.

**Schedule coordinates.** Transformations act on the band's schedule coordinates. For a loop
that runs downwards (``range(n, 0, -1)``) the coordinate is ``-i`` (so that time runs
forward), so ``skew`` adds ``factor * by`` to ``-i`` and tiles of a reverse loop are
``floor(-i / size)``.

**Tile loops.** ``tile`` makes tile loops ``floor(i / size)`` (the tile's index, not its first
iteration: a GPU block index is a tile loop value) and point loops ``i`` (the original
coordinate), so generated code reads ``for (c0 = 0; c0 <= floord(N - 1, 32); c0++) for (c1 =
32 * c0; c1 <= min(N - 1, 32 * c0 + 31); c1++)``. Sizes need not divide the extents, and the
tree does not depend on isl's global tiling options.

The isl work is done by small pure helpers on band members in
:mod:`polypipe.schedule_bands`: a transformation reads the chain of nested bands it acts on,
computes new members, and rebuilds that chain in place; the rest of the tree (sequences,
filters, marks, other statements) is untouched.
"""

from __future__ import annotations

import ast
import inspect
import keyword
import re
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import islpy as isl

from . import ir, marks
from . import schedule_bands as bands
from .schedule_bands import describe_schedule, statement_loops
from .transform_locals import expand_local
from .ir import fresh_name
from .analysis.dependences import as_program
from .analysis.legality import DependenceViolation, check_schedule
from .errors import LegalityError, ScheduleError, public

if TYPE_CHECKING:  # annotations only: kernel.py imports the front end
    from .kernel import Kernel

__all__ = ["MARK_KINDS", "TRANSFORMATIONS", "describe_schedule", "expand_local", "fuse_bands",
           "fuse_loops", "interchange", "mark_band", "replay_transforms", "skew", "split_band",
           "statement_loops", "tile"]

MARK_KINDS = marks.USER_KINDS   # block and thread bands (polypipe.marks)
"""The mark names :func:`mark_band` inserts; the GPU printers map them to blockIdx/threadIdx."""

_NodeType = isl.schedule_node_type


# --------------------------------------------------------------------------------------------
# Accepting a new schedule; quoting the transformation in errors
# --------------------------------------------------------------------------------------------


def _call_text(function: str, **options) -> str:
    """``tile(loops=('i', 'j'), sizes=(32, 32), statement='S1')``: the log entry (options that
    are None are left out)."""
    shown = ", ".join(f"{k}={v!r}" for k, v in options.items() if v is not None)
    return f"{function}({shown})"


@contextmanager
def _quoted(entry: str, program: ir.Program) -> Iterator[None]:
    """Errors raised inside name the transformation (and what was applied before it)."""
    history = f" (after {'; '.join(program.transforms)})" if program.transforms else ""
    try:
        yield
    except DependenceViolation as exc:
        raise DependenceViolation(
            f"{entry} is illegal for {program.name}{history}: {exc.message}", kind=exc.kind,
            array=exc.array, source=exc.source, sink=exc.sink, element=exc.element,
            parameters=exc.parameters, parallel_dim=exc.parallel_dim) from None
    except LegalityError as exc:
        raise LegalityError(f"{entry} is illegal for {program.name}{history}: "
                            f"{exc.message}") from None
    except ScheduleError as exc:
        raise ScheduleError(f"{entry} on {program.name}{history}: {exc.message}") from None
    except isl.Error as exc:
        raise ScheduleError(f"{entry} on {program.name}{history}: isl failed ({exc})") \
            from None


def _accept(program: ir.Program, schedule: isl.Schedule, entry: str) -> ir.Program:
    """The program with ``schedule``, after proving it legal: every dependence runs forward
    and every member of a band marked block or thread carries none."""
    marked = bands.marked_members(schedule)
    if not marked:
        check_schedule(program, schedule)
    else:
        flat, names = bands.with_parallel_names(schedule, marked)
        try:
            check_schedule(program, flat, parallel=names)
        except DependenceViolation as exc:
            if exc.parallel_dim is None:
                raise
            raise _relabelled(exc, marked) from None
    return replace(program, schedule=schedule, transforms=program.transforms + (entry,))


def _relabelled(exc: DependenceViolation, marked: Sequence[bands.Marked]) -> DependenceViolation:
    """The violation naming the marked loop of the violating statements: check_schedule labels
    a time dimension with one name even when loops of several nests share that depth."""
    statement = exc.source.split("[", 1)[0]
    names = [m.name for m in marked
             if m.time_dim == exc.parallel_dim and statement in m.statements]
    if not names:
        return exc
    message = re.sub(rf"loop \S+ \(time dimension {exc.parallel_dim}\)",
                     f"loop {names[0]} (time dimension {exc.parallel_dim})", exc.message)
    return DependenceViolation(message, kind=exc.kind, array=exc.array, source=exc.source,
                               sink=exc.sink, element=exc.element, parameters=exc.parameters,
                               parallel_dim=exc.parallel_dim)


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _loop_names(loops, what: str = "loops") -> tuple[str, ...]:
    if isinstance(loops, str):
        loops = (loops,)
    if not isinstance(loops, (tuple, list)):
        raise ScheduleError(f"{what} must be a loop name or a sequence of loop names, got "
                            f"{loops!r}"[:300])
    names = tuple(loops)
    if not names:
        raise ScheduleError(f"{what} must name at least one loop")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ScheduleError(f"{what} must be loop names (strings), got {name!r}"[:300])
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ScheduleError(f"{what} names loop {repeated[0]!r} more than once")
    return names


def _loops_text(names: Sequence[str]) -> str:
    """``loop 'k'`` or ``loops 'i', 'j'``."""
    return ("loop " if len(names) == 1 else "loops ") + ", ".join(repr(n) for n in names)


def _loop_name(loop, what: str) -> str:
    if not isinstance(loop, str) or not loop:
        raise ScheduleError(f"{what} must be a loop name (a string), got {loop!r}"[:300])
    return loop


MAX_INTEGER = 2 ** 63 - 1
"""The largest tile size or skew factor (generated code computes in 64-bit integers)."""


def _int(value, what: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ScheduleError(f"{what} must be an integer, got {value!r}"[:300])
    try:
        number = int(value.__index__())
    except (TypeError, ValueError, OverflowError):  # e.g. a NumPy array of several values
        raise ScheduleError(f"{what} must be an integer, got {value!r}"[:300]) from None
    if abs(number) > MAX_INTEGER:
        raise ScheduleError(f"{what} must be at most 2**63 - 1 in magnitude (generated code "
                            f"computes in 64-bit integers), got {number}"[:300])
    return number


def _materialised(value):
    """A sequence argument read once, as a tuple (a generator is consumed by the first look);
    strings, None and scalars unchanged."""
    if value is None or isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return value
    if isinstance(value, (dict, set, frozenset)):
        return value  # unordered: refused by the checks with the value shown
    try:
        return tuple(value)
    except Exception:  # noqa: BLE001 - a broken iterable is refused by the checks below
        return value


# --------------------------------------------------------------------------------------------
# The transformations
# --------------------------------------------------------------------------------------------


@public
def interchange(program: ir.Program | Kernel, outer: str, inner: str, *,
                statement: str | None = None) -> ir.Program:
    """Swap two loops of a perfect nest: ``outer`` takes ``inner``'s place and vice versa.

    The loops need not be adjacent, but nothing other than loops may sit between them (no
    statement of another loop body, no mark). The bands keep their shapes; only the two members
    trade places.

    Before (matmul)::

        for i in range(N):
            for j in range(M):
                for k in range(K):
                    C[i, j] += A[i, k] * B[k, j]        # S0[i, j, k] -> [i, j, k]

    After ``interchange(p, "j", "k")``::

        for i in range(N):
            for k in range(K):
                for j in range(M):
                    C[i, j] += A[i, k] * B[k, j]        # S0[i, j, k] -> [i, k, j]

    Refused (``DependenceViolation``) when a dependence would run backwards, e.g. for
    ``A[i, j] = A[i - 1, j + 1]`` (distance ``(1, -1)`` becomes ``(-1, 1)``).
    """
    program = as_program(program, "interchange")
    entry = _call_text("interchange", outer=outer, inner=inner, statement=statement)
    with _quoted(entry, program):
        names = (_loop_name(outer, "outer"), _loop_name(inner, "inner"))
        if outer == inner:
            raise ScheduleError(f"outer and inner are both {outer!r}; name two different loops")
        schedule = program.schedule
        stmt, (first, second) = bands.find(program, schedule, names, statement)
        if first.time_dim > second.time_dim:
            raise ScheduleError(f"loop {outer!r} runs inside loop {inner!r} around {stmt}; "
                                f"pass outer={inner!r}, inner={outer!r}")
        chain = bands.band_chain(schedule, first, second, stmt)
        members = chain.members
        a = first.position
        b = second.time_dim - chain.first_dim
        members[a], members[b] = members[b], members[a]
        new = bands.rebuild_chain(schedule, chain.top, len(chain.bands),
                             bands.regroup(members, chain.bands))
        return _accept(program, new, entry)


@public
def tile(program: ir.Program | Kernel, loops: Sequence[str] | str, sizes: Sequence[int] | int, *,
         statement: str | None = None,
         tile_names: Sequence[str] | None = None) -> ir.Program:
    """Rectangular tiling of adjacent nested loops: tile loops outside, point loops inside.

    ``loops`` are adjacent loops of a perfect nest, outer to inner (they may sit in one band or
    in nested bands); ``sizes`` are positive tile sizes, one per loop. The tile loops
    ``floor(i / size)`` form one band and the point loops (the original coordinates) the band
    below it; other loops of the same bands stay where they were, outside or inside. Sizes need
    not divide the extents: the last tile is partial. Tile loops are named ``"<loop>_tile"``
    (``tile_names=`` overrides); point loops keep their names.

    Before (matmul, N = 37)::

        for i in range(N):
            for j in range(M):
                for k in range(K):
                    C[i, j] += A[i, k] * B[k, j]

    After ``tile(p, ("i", "j"), (8, 8))`` (schedule ``S0[i, j, k] -> [floor(i/8), floor(j/8),
    i, j, k]``)::

        for i_tile in range((N + 7) // 8):
            for j_tile in range((M + 7) // 8):
                for i in range(8 * i_tile, min(N, 8 * i_tile + 8)):
                    for j in range(8 * j_tile, min(M, 8 * j_tile + 8)):
                        for k in range(K):
                            C[i, j] += A[i, k] * B[k, j]

    Refused (``DependenceViolation``) when the band is not permutable, e.g. an in-place
    Gauss-Seidel sweep ``A[i] = A[i - 1] + A[i + 1]`` over ``(t, i)`` (distance ``(1, -1)``):
    at ``t + 1`` the first tile of ``i`` reads ``A[4]``, which the second tile writes at ``t``
    and only runs after it. Skew first (:func:`skew`).
    """
    program = as_program(program, "tile")
    loops = _materialised(loops)
    sizes, tile_names = _materialised(sizes), _materialised(tile_names)
    entry = _call_text("tile", loops=_shown(loops), sizes=_shown(sizes), statement=statement,
                       tile_names=_shown(tile_names))
    with _quoted(entry, program):
        names = _loop_names(loops)
        size_list = tuple(sizes) if isinstance(sizes, (tuple, list)) else (sizes,)
        if len(size_list) != len(names):
            raise ScheduleError(f"give one tile size per loop: {len(names)} loop(s) "
                                f"{names} but {len(size_list)} size(s) {size_list}")
        size_list = tuple(_int(s, "a tile size") for s in size_list)
        if any(s <= 0 for s in size_list):
            raise ScheduleError(f"tile sizes must be positive integers, got {size_list}")
        schedule = program.schedule
        stmt, found, chain, start = bands.select(program, schedule, names, statement)
        covered = bands.statement_names(bands.node_at(schedule, chain.top).get_domain())
        in_use = bands.names_in_use(schedule, covered)
        if tile_names is None:
            chosen = [fresh_name(f"{n}_tile", in_use) for n in names]
        else:
            chosen = list(_loop_names(tile_names, "tile_names"))
            if len(chosen) != len(names):
                raise ScheduleError(f"give one tile name per loop: {len(names)} loop(s), "
                                    f"{len(chosen)} name(s)")
            for name in chosen:
                if not name.isidentifier() or keyword.iskeyword(name):
                    raise ScheduleError(f"tile name {name!r} is not a valid identifier")
                if name in in_use:
                    raise ScheduleError(f"tile name {name!r} is already the name of a loop "
                                        f"around {', '.join(covered)}")
        members = chain.members
        points = members[start:start + len(names)]
        tiles = [bands.tile_dim(dim, size, name)
                 for dim, size, name in zip(points, size_list, chosen)]
        before = members[:start]
        after = members[start + len(names):]
        new = bands.rebuild_chain(schedule, chain.top, len(chain.bands),
                             [before, tiles, points, after])
        return _accept(program, new, entry)


def _shown(value):
    """An argument as the log shows it: sequences as tuples and integers as Python ints, so an
    entry reads the same however it was passed (a list, NumPy integers) and replays."""
    def plain(item):
        if hasattr(item, "__index__") and not isinstance(item, (bool, str)):
            try:
                return int(item.__index__())
            except Exception:  # noqa: BLE001 - shown as given; the checks refuse it
                return item
        return item

    if isinstance(value, (tuple, list)):
        return tuple(plain(item) for item in value)
    return plain(value)


@public
def skew(program: ir.Program | Kernel, loop: str, by: str, *, factor: int = 1,
         statement: str | None = None) -> ir.Program:
    """Skew ``loop`` by ``by``: ``loop := loop + factor * by`` (schedule coordinates).

    ``by`` must run around every statement that ``loop`` runs around (an enclosing loop, or a
    loop of the same perfect nest). The skewed loop keeps the name ``loop``; its bounds now
    depend on ``by``. Skewing by an enclosing loop is legal on its own (that loop still carries
    what it carried, and every other dependence keeps its distance on the skewed loop);
    skewing by an inner loop may be refused. Skewing turns a distance ``(1, -1)`` on
    ``(t, i)`` into ``(1, factor - 1)``, which makes the nest permutable (tileable) and,
    followed by an interchange, can make the inner loop parallel (a wavefront).

    Before (in-place Gauss-Seidel 1-d; distances on ``(t, i)``: ``(0, 1), (1, 0), (1, -1)``)::

        for t in range(T):
            for i in range(1, N - 1):
                A[i] = (A[i - 1] + A[i] + A[i + 1]) / 3        # S0[t, i] -> [t, i]

    After ``skew(p, "i", "t", factor=2)`` (``S0[t, i] -> [t, i + 2t]``, distances ``(0, 1),
    (1, 2), (1, 1)``)::

        for t in range(T):
            for i2 in range(2 * t + 1, 2 * t + N - 1):       # the loop still called "i"
                A[i2 - 2 * t] = ...

    and then ``interchange(p, "t", "i")`` gives distances ``(1, 0), (2, 1), (1, 1)``: every
    dependence is carried by the outer loop, the inner ``t`` loop is parallel.
    """
    program = as_program(program, "skew")
    entry = _call_text("skew", loop=loop, by=by, factor=_shown(factor), statement=statement)
    with _quoted(entry, program):
        names = (_loop_name(loop, "loop"), _loop_name(by, "by"))
        factor_value = _int(factor, "the skew factor")
        if factor_value == 0:
            raise ScheduleError("the skew factor must not be zero (that would change nothing)")
        if loop == by:
            raise ScheduleError(f"cannot skew loop {loop!r} by itself; that is a scaling, not "
                                "a skew")
        schedule = program.schedule
        stmt, (target, source) = bands.find(program, schedule, names, statement)
        target_node = bands.node_at(schedule, target.path)
        source_node = bands.node_at(schedule, source.path)
        inside = set(bands.statement_names(target_node.get_domain()))
        around = set(bands.statement_names(source_node.get_domain()))
        if not inside <= around:
            raise ScheduleError(f"loop {by!r} does not run around "
                                f"{', '.join(sorted(inside - around))}, which loop {loop!r} "
                                f"runs around; skew only by a loop that encloses every "
                                f"statement of the skewed loop")
        dims = bands.read_band(target_node)
        by_dim = bands.read_band(source_node)[source.position]
        dims[target.position] = bands.skewed_dim(dims[target.position], by_dim, factor_value)
        new = bands.rebuild_chain(schedule, target.path, 1, [dims])
        return _accept(program, new, entry)


@public
def split_band(program: ir.Program | Kernel, loop: str, *,
               statement: str | None = None) -> ir.Program:
    """Split the band holding ``loop`` in two: the members before ``loop`` stay in the outer
    band, ``loop`` and the members after it form a new band nested inside.

    The loop nest (and the flat schedule) does not change; the tree does: a band is the unit
    that ``mark_band`` marks and that isl treats as permutable. Inverse of :func:`fuse_bands`.

    Before (one band ``[i, j]`` over ``S0``)::

        for i in range(N):           # band [i, j]
            for j in range(M):
                S0

    After ``split_band(p, "j")``::

        for i in range(N):           # band [i]
            for j in range(M):       # band [j]
                S0
    """
    program = as_program(program, "split_band")
    entry = _call_text("split_band", loop=loop, statement=statement)
    with _quoted(entry, program):
        schedule = program.schedule
        stmt, (member,) = bands.find(program, schedule, (_loop_name(loop, "loop"),), statement)
        if member.position == 0:
            raise ScheduleError(f"loop {loop!r} is already the outermost member of its band "
                                f"around {stmt}; split at a later member (band: "
                                f"{_band_text(schedule, member.path)})")
        node = bands.node_at(schedule, member.path).band_split(member.position)
        return _accept(program, node.get_schedule(), entry)


def _band_text(schedule: isl.Schedule, path: Sequence[int]) -> str:
    dims = bands.read_band(bands.node_at(schedule, path))
    return "[" + ", ".join(d.name or "?" for d in dims) + "]"


@public
def fuse_bands(program: ir.Program | Kernel, loops: Sequence[str] | str, *,
               statement: str | None = None) -> ir.Program:
    """Make adjacent nested loops one band (merge nested bands; not loop fusion, see
    :func:`fuse_loops`). Members of the same bands outside ``loops`` stay in bands of their
    own, outside or inside.

    The loop nest does not change; the tree does. The frontend gives every loop its own band,
    so a band to mark as a 2-d thread block is made with ``fuse_bands``.

    Before (the frontend's tree for a 2-d loop nest)::

        for i in range(N):           # band [i]
            for j in range(M):       # band [j]
                S0

    After ``fuse_bands(p, ("i", "j"))``::

        for i in range(N):           # band [i, j]
            for j in range(M):
                S0
    """
    program = as_program(program, "fuse_bands")
    loops = _materialised(loops)
    entry = _call_text("fuse_bands", loops=_shown(loops), statement=statement)
    with _quoted(entry, program):
        names = _loop_names(loops)
        if len(names) < 2:
            raise ScheduleError("fuse_bands needs at least two loops (to split a band, use "
                                "split_band)")
        schedule = program.schedule
        stmt, found, chain, start = bands.select(program, schedule, names, statement)
        if len(chain.bands) == 1 and len(chain.bands[0]) == len(names):
            raise ScheduleError(f"{_loops_text(names)} already form one band around {stmt}; "
                                "nothing to fuse")
        members = chain.members
        new = bands.rebuild_chain(schedule, chain.top, len(chain.bands),
                             [members[:start], members[start:start + len(names)],
                              members[start + len(names):]])
        return _accept(program, new, entry)


@public
def mark_band(program: ir.Program | Kernel, loops: Sequence[str] | str, kind: str, *,
              statement: str | None = None) -> ir.Program:
    """Mark adjacent nested loops as GPU blocks (``kind="block"``) or threads (``"thread"``).

    The loops become one band (like :func:`fuse_bands`) with a mark node named ``kind`` above
    it. Every marked loop must be parallel: it may carry no dependence (its iterations run
    concurrently on the GPU), which is proved here and again by every later transformation.
    The C backend prints marked bands as ordinary loops. A thread band may not enclose a block
    band, and marks of one kind do not nest.

    Before (matmul after ``tile(p, ("i", "j"), (32, 32))``)::

        for i_tile in ...:           # band [i_tile, j_tile]
            for j_tile in ...:
                for i in ...:        # band [i, j]
                    for j in ...:
                        for k in range(K):
                            S0

    After ``mark_band(p, ("i_tile", "j_tile"), "block")`` and
    ``mark_band(p, ("i", "j"), "thread")``::

        mark "block"
        for i_tile, j_tile:          # blockIdx
            mark "thread"
            for i, j:                # threadIdx
                for k in range(K):
                    S0

    Refused (``DependenceViolation``) for a loop that carries a dependence, e.g. ``k`` above
    (every ``k`` adds into the same ``C[i, j]``).
    """
    program = as_program(program, "mark_band")
    loops = _materialised(loops)
    entry = _call_text("mark_band", loops=_shown(loops), kind=kind, statement=statement)
    with _quoted(entry, program):
        names = _loop_names(loops)
        if kind not in MARK_KINDS:
            raise ScheduleError(f"kind must be one of {', '.join(map(repr, MARK_KINDS))}, got "
                                f"{kind!r}")
        schedule = program.schedule
        stmt, found, chain, start = bands.select(program, schedule, names, statement)
        above = bands.node_at(schedule, chain.top).parent()
        if above.get_type() == _NodeType.mark and above.mark_get_id().get_name() in MARK_KINDS:
            raise ScheduleError(f"{_loops_text(names)} {'is' if len(names) == 1 else 'are'} "
                                f"in a band already marked {above.mark_get_id().get_name()!r}")
        marks = found[0].marks
        if kind in marks:
            raise ScheduleError(f"{_loops_text(names)} {'runs' if len(names) == 1 else 'run'} "
                                f"inside a {kind!r} band around {stmt}; marks of one kind do "
                                "not nest")
        if kind == "block" and "thread" in marks:
            raise ScheduleError(f"{_loops_text(names)} {'runs' if len(names) == 1 else 'run'} "
                                f"inside a 'thread' band around {stmt}; block bands must "
                                "enclose thread bands")
        members = chain.members
        before = members[:start]
        marked = [replace(d, coincident=True) for d in members[start:start + len(names)]]
        after = members[start + len(names):]
        new = bands.rebuild_chain(schedule, chain.top, len(chain.bands), [before, marked, after])
        marked_path = chain.top + ((0,) if before else ())
        new = bands.insert_mark(new, marked_path, kind)
        return _accept(program, new, entry)


@public
def fuse_loops(program: ir.Program | Kernel, first: str, second: str) -> ir.Program:
    """Fuse two sibling loops: the outermost loop around statement ``first`` and the one around
    statement ``second``, which must be consecutive children of one sequence (adjacent loop
    nests at the same level, nothing between them). The fused loop iterates the union of both
    ranges; in each iteration the first body runs before the second. It takes the first loop's
    name.

    Before::

        for i in range(N):
            B[i] = A[i] * 2              # S0
        for j in range(N):
            C[j] = B[j] + 1              # S1

    After ``fuse_loops(p, "S0", "S1")``::

        for i in range(N):
            B[i] = A[i] * 2              # S0
            C[i] = B[i] + 1              # S1

    Refused (``DependenceViolation``) when an iteration of the second loop reads what a later
    iteration of the first writes, e.g. ``C[j] = B[j + 1]``.
    """
    program = as_program(program, "fuse_loops")
    entry = _call_text("fuse_loops", first=first, second=second)
    with _quoted(entry, program):
        schedule = program.schedule
        statements = bands.program_statements(program)
        for name, what in ((first, "first"), (second, "second")):
            if not isinstance(name, str) or name not in statements:
                raise ScheduleError(f"{what} must name a statement of {program.name} "
                                    f"({', '.join(statements)}), got {name!r}")
        if first == second:
            raise ScheduleError("first and second are the same statement")
        sequence, (a, b) = _sibling_positions(schedule, first, second)
        if b != a + 1:
            raise ScheduleError(f"the loops around {first} and {second} are not consecutive "
                                f"children of one sequence (positions {a} and {b}); only "
                                f"adjacent loop nests can be fused")
        seq_node = bands.node_at(schedule, sequence)
        members = []
        for position in (a, b):
            band = seq_node.child(position).child(0)
            if band.get_type() != _NodeType.band:
                stmt = first if position == a else second
                raise ScheduleError(f"{stmt} is not inside a loop below the sequence it shares "
                                    f"with the other statement; there is no loop to fuse")
            members.append(bands.read_band(band))
        new = _fuse_children(schedule, sequence, a, members[0][0], members[1][0])
        return _accept(program, new, entry)


def _sibling_positions(schedule: isl.Schedule, first: str,
                       second: str) -> tuple[tuple[int, ...], tuple[int, int]]:
    """The deepest sequence node both statements are under, and their child positions."""
    node, path, found = schedule.get_root(), (), None
    while True:
        kind = node.get_type()
        if kind in (_NodeType.sequence, _NodeType.set):
            positions = []
            for stmt in (first, second):
                positions.append(next(
                    (p for p in range(node.n_children())
                     if stmt in bands.statement_names(node.child(p).filter_get_filter())), None))
            if None in positions:
                break
            if positions[0] != positions[1]:
                if kind == _NodeType.set:
                    raise ScheduleError(f"{first} and {second} are under a set node (no order "
                                        "between them); fusion needs a sequence")
                found = (path, (positions[0], positions[1]))
                break
            node, path = node.child(positions[0]), path + (positions[0],)
            continue
        if node.n_children() != 1:
            break
        node, path = node.child(0), path + (0,)
    if found is None:
        raise ScheduleError(f"{first} and {second} are in the same loop body already, or in "
                            f"no common sequence; nothing to fuse")
    if found[1][0] > found[1][1]:
        raise ScheduleError(f"{first} runs after {second}; pass first={second!r}, "
                            f"second={first!r}")
    return found


def _fuse_children(schedule: isl.Schedule, sequence: tuple[int, ...], a: int,
                   first: bands.Dim, second: bands.Dim) -> isl.Schedule:
    """Children ``a`` and ``a + 1`` of the sequence at ``sequence``, each a filter over a band
    whose outermost member is ``first`` / ``second``, become one child: a filter over both,
    holding the band ``first ∪ second`` over a sequence of the two (outer members removed)."""
    node = bands.node_at(schedule, sequence)
    for position in (a + 1, a):
        band = node.child(position).child(0)
        if band.band_n_member() > 1:
            band = band.band_split(1)
        node = band.delete().parent().parent()
    fused = bands.band_schedule([bands.Dim(first.name, first.schedule.union_add(second.schedule))])
    n_children = node.n_children()
    if n_children == 2:  # the two loops are the whole sequence: the band goes above it
        return _splice_sequences(node.insert_partial_schedule(fused).child(0))
    # isl has no operation that groups two children of a sequence; inserting a sequence with
    # grouped filters above this one does it (isl drops the children a filter excludes and
    # splices sequences left with one child), then the band goes above the pair.
    filters = [node.child(p).filter_get_filter() for p in range(n_children)]
    grouped = filters[:a] + [filters[a].union(filters[a + 1])] + filters[a + 2:]
    node = node.insert_sequence(_union_set_list(grouped))
    pair = node.child(a).child(0)
    assert pair.get_type() == _NodeType.sequence and pair.n_children() == 2
    return _splice_sequences(pair.insert_partial_schedule(fused).child(0))


def _splice_sequences(node: isl.ScheduleNode) -> isl.Schedule:
    """At a sequence node: children that are sequences themselves (a loop body that lost its
    loop to the fusion) are spliced in, so fusing three loops gives one flat body."""
    for position in reversed(range(node.n_children())):
        if node.child(position).child(0).get_type() == _NodeType.sequence:
            node = node.sequence_splice_child(position)
    return node.get_schedule()


def _union_set_list(sets: Sequence[isl.UnionSet]) -> isl.UnionSetList:
    result = isl.UnionSetList.alloc(sets[0].get_ctx(), len(sets))
    for uset in sets:
        result = result.add(uset)
    return result


# --------------------------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------------------------


TRANSFORMATIONS: dict[str, Callable[..., ir.Program]] = {
    "interchange": interchange, "tile": tile, "skew": skew, "split_band": split_band,
    "fuse_bands": fuse_bands, "mark_band": mark_band, "fuse_loops": fuse_loops,
    "expand_local": expand_local,
}
"""The transformations :func:`replay_transforms` knows, by log name."""


@public
def replay_transforms(program: ir.Program | Kernel, transforms: Sequence[str]) -> ir.Program:
    """Apply logged transformations (``Program.transforms`` entries such as
    ``"tile(loops=('i', 'j'), sizes=(32, 32))"``) to ``program``, in order, each proved again.

    ``replay_transforms(p, q.transforms)`` rebuilds ``q`` from the untransformed ``p``.

    ``transforms`` is a list (any ordered iterable) of entries; an entry that is not a string,
    not a call of a known transformation with literal keyword arguments, or whose keywords
    that transformation does not take (or lacks a required one) raises
    :class:`ScheduleError`.
    """
    program = as_program(program, "replay_transforms")
    if isinstance(transforms, (str, bytes)):
        raise ScheduleError(f"transforms must be a list of transform log entries, not a single "
                            f"string {transforms!r}; pass [{transforms!r}]"[:300])
    entries = None
    if not isinstance(transforms, (dict, set, frozenset)):
        try:
            entries = list(transforms)
        except TypeError:
            pass
    if entries is None:
        raise ScheduleError(f"transforms must be a list of transform log entries (strings such "
                            f"as Program.transforms holds), got {transforms!r}"[:300])
    for position, entry in enumerate(entries):
        function, options = _parse_entry(entry, position)
        program = function(program, **options)
    return program


def _parse_entry(entry, position: int) -> tuple[Callable[..., ir.Program], dict]:
    """The transformation and keyword arguments of one log entry (ScheduleError if it is not
    one that the transformation accepts)."""
    if not isinstance(entry, str):
        raise ScheduleError(f"transform log entry #{position} must be a string such as "
                            f"\"tile(loops='i', sizes=32)\", got {entry!r}"[:300])
    shown = repr(entry) if len(entry) <= 200 else repr(entry[:200]) + "..."
    try:
        call = ast.parse(entry.strip(), mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        raise ScheduleError(f"cannot read transform log entry {shown}") from None
    if (not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name)
            or call.args):
        raise ScheduleError(f"transform log entry {shown} is not a call with keyword "
                            "arguments")
    function = TRANSFORMATIONS.get(call.func.id)
    if function is None:
        raise ScheduleError(f"transform log entry {shown} is not a schedule "
                            f"transformation (known: {', '.join(TRANSFORMATIONS)})")
    if any(k.arg is None for k in call.keywords):
        raise ScheduleError(f"transform log entry {shown} unpacks arguments with **; give "
                            "each argument as name=literal")
    try:
        options = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ScheduleError(f"transform log entry {shown} has a non-literal "
                            "argument") from None
    signature = inspect.signature(function)
    accepted = [name for name in signature.parameters if name != "program"]
    try:
        signature.bind(None, **options)
    except TypeError as exc:
        raise ScheduleError(f"transform log entry {shown} does not fit {call.func.id}(): "
                            f"{exc}; {call.func.id} takes {', '.join(accepted)}") from None
    return function, options
