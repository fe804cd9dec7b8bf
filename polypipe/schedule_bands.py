"""Band members and loops of a schedule tree: the isl helpers under polypipe.transform.

A band member (:class:`Dim`) is a name, a partial schedule (``isl.UnionPwAff``) and a
coincidence flag. A transformation reads the chain of nested bands it acts on
(:func:`read_band`, :func:`band_chain`), computes new members (:func:`tile_dim`,
:func:`skewed_dim`) and rebuilds that chain in place (:func:`rebuild_chain`); loops are found
by name on the path from the root to a statement's leaf (:func:`loops_of`, :func:`find`,
:func:`select`). The two read-only queries users call, :func:`statement_loops` and
:func:`describe_schedule`, live here too (``polypipe.transform`` exports them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import islpy as isl

from . import ir
from .analysis.dependences import as_program, check_statement
from .errors import ScheduleError, public
from .marks import USER_KINDS

if TYPE_CHECKING:  # annotations only: kernel.py imports the front end
    from .kernel import Kernel

_NodeType = isl.schedule_node_type

# --------------------------------------------------------------------------------------------
# Band members: reading and building bands (pure isl helpers)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Dim:
    """One band member: its name (None if it has none), its partial schedule (one time
    coordinate per statement instance) and whether it is known to carry no dependence."""

    name: str | None
    schedule: isl.UnionPwAff
    coincident: bool = False


def statement_names(uset: isl.UnionSet) -> list[str]:
    names = []
    sets = uset.get_set_list()
    for k in range(sets.n_set()):
        names.append(sets.get_at(k).get_tuple_name())
    return names


def member_pieces(upa: isl.UnionPwAff) -> dict[str, isl.Map]:
    """Per statement, its piece of a one-dimensional partial schedule, as a map."""
    maps = isl.UnionMap.from_union_pw_aff(upa).get_map_list()
    pieces = {}
    for k in range(maps.n_map()):
        piece = maps.get_at(k)
        pieces[piece.get_tuple_name(isl.dim_type.in_)] = piece
    return pieces


def plain_variable(piece: isl.Map) -> str | None:
    """``"i"`` if the piece is ``S[.., i, ..] -> [i]`` or ``[-i]``, else None (tiled, skewed)."""
    space = piece.get_space()
    piece = piece.reset_tuple_id(isl.dim_type.out)
    for pos in range(space.dim(isl.dim_type.in_)):
        for sign in (1, -1):
            local = isl.LocalSpace.from_space(piece.get_space())
            equality = (isl.Constraint.equality_alloc(local)
                        .set_coefficient_val(isl.dim_type.out, 0, 1)
                        .set_coefficient_val(isl.dim_type.in_, pos, -sign))
            candidate = isl.Map.universe(piece.get_space()).add_constraint(equality)
            if candidate.intersect_domain(piece.domain()).is_equal(piece):
                return space.get_dim_name(isl.dim_type.in_, pos)
    return None


def member_name(mupa: isl.MultiUnionPwAff, pos: int, statement: str | None) -> str | None:
    """The name of a band member for ``statement`` (for every statement of the band if None):
    the isl dimension name polypipe gave it, else the loop variable it iterates."""
    name = mupa.get_space().get_dim_name(isl.dim_type.set, pos)
    if name:
        return name
    pieces = member_pieces(mupa.get_union_pw_aff(pos))
    if statement is not None:
        return plain_variable(pieces[statement]) if statement in pieces else None
    variables = {plain_variable(piece) for piece in pieces.values()}
    return variables.pop() if len(variables) == 1 else None


def read_band(node: isl.ScheduleNode) -> list[Dim]:
    """The members of a band node, each named (where a name exists)."""
    mupa = node.band_get_partial_schedule()
    return [Dim(member_name(mupa, pos, None), mupa.get_union_pw_aff(pos),
                 bool(node.band_member_get_coincident(pos)))
            for pos in range(node.band_n_member())]


def band_schedule(dims: Sequence[Dim]) -> isl.MultiUnionPwAff:
    """The partial schedule of a band made of ``dims``, every dimension named."""
    mupa = isl.MultiUnionPwAff.from_union_pw_aff(dims[0].schedule)
    for dim in dims[1:]:
        mupa = mupa.flat_range_product(isl.MultiUnionPwAff.from_union_pw_aff(dim.schedule))
    for pos, dim in enumerate(dims):
        if dim.name:
            mupa = mupa.set_dim_name(isl.dim_type.set, pos, dim.name)
    return mupa


def val(like, value: int) -> isl.Val:
    """``value`` as an exact isl integer (``int_from_si`` stops at a C long)."""
    return isl.Val(str(int(value)), context=like.get_ctx())


def tile_dim(dim: Dim, size: int, name: str | None) -> Dim:
    """The tile loop of a member: ``floor(coordinate / size)``."""
    return Dim(name, dim.schedule.scale_down_val(val(dim.schedule, size)).floor(),
                dim.coincident)


def skewed_dim(dim: Dim, by: Dim, factor: int) -> Dim:
    """``dim + factor * by`` on the statements of ``dim`` (``by`` covers at least those)."""
    skewed = dim.schedule.add(by.schedule.scale_val(val(by.schedule, factor)))
    return Dim(dim.name, skewed, False)


def node_at(schedule: isl.Schedule, path: Sequence[int]) -> isl.ScheduleNode:
    node = schedule.get_root()
    for position in path:
        node = node.child(position)
    return node


def rebuild_chain(schedule: isl.Schedule, top: Sequence[int], count: int,
                   bands: Sequence[Sequence[Dim]]) -> isl.Schedule:
    """Replace the ``count`` nested band nodes starting at ``top`` by ``bands`` (outer to
    inner; empty ones are left out). Everything below and around the chain is kept."""
    node = node_at(schedule, top)
    for _ in range(count):
        assert node.get_type() == _NodeType.band, "a chain holds only band nodes"
        node = node.delete()
    for dims in reversed([b for b in bands if b]):
        node = node.insert_partial_schedule(band_schedule(dims))
        for pos, dim in enumerate(dims):
            if dim.coincident:
                node = node.band_member_set_coincident(pos, 1)
    return node.get_schedule()


def insert_mark(schedule: isl.Schedule, path: Sequence[int], kind: str) -> isl.Schedule:
    node = node_at(schedule, path)
    return node.insert_mark(isl.Id(kind, context=node.get_ctx())).get_schedule()


# --------------------------------------------------------------------------------------------
# Finding loops in the tree
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loop:
    """A band member on one statement's path from the root to its leaf."""

    path: tuple[int, ...]      # child positions from the root to the band node
    position: int              # the member's index in the band
    time_dim: int              # its dimension in the flat time vector (as schedule_layout)
    name: str | None
    marks: tuple[str, ...]     # the marks on the path above the band, outer to inner

    @property
    def key(self) -> tuple:
        return (self.path, self.position)

    @property
    def label(self) -> str:
        return f"loop {self.name}" if self.name else f"the loop at time dimension {self.time_dim}"


def loops_of(schedule: isl.Schedule, statement: str) -> list[Loop]:
    """The band members around ``statement``, outer to inner."""
    node, path, depth, marks = schedule.get_root(), (), 0, ()
    loops: list[Loop] = []
    while True:
        kind = node.get_type()
        if kind == _NodeType.band:
            mupa = node.band_get_partial_schedule()
            n_members = node.band_n_member()
            loops.extend(Loop(path, pos, depth + pos, member_name(mupa, pos, statement),
                               marks) for pos in range(n_members))
            depth += n_members
        elif kind in (_NodeType.sequence, _NodeType.set):
            for position in range(node.n_children()):
                if statement in statement_names(node.child(position).filter_get_filter()):
                    break
            else:  # not under this node (an extension introduced it): stop here
                return loops
            node, path, depth = node.child(position), path + (position,), depth + 1
            continue
        elif kind == _NodeType.mark:
            marks = marks + (node.mark_get_id().get_name(),)
        if kind == _NodeType.leaf or node.n_children() == 0:
            return loops
        node, path = node.child(0), path + (0,)


def program_statements(program: ir.Program) -> list[str]:
    return [s.name for s in program.statements]


def describe_loops(loops: Sequence[Loop]) -> str:
    return ", ".join(l.name or f"t{l.time_dim}" for l in loops) or "none"


def find(program: ir.Program, schedule: isl.Schedule, names: Sequence[str],
          statement: str | None) -> tuple[str, list[Loop]]:
    """The statement and the band members that ``names`` address (in the order given)."""
    statements = program_statements(program)
    if statement is not None:
        if not isinstance(statement, str) or statement not in statements:
            raise ScheduleError(f"no statement {statement!r} in {program.name} (statements: "
                                f"{', '.join(statements)})")
        candidates = [statement]
    else:
        candidates = statements
    found: dict[str, list[Loop]] = {}
    loops_by_statement = {}
    for stmt in candidates:
        loops = loops_by_statement[stmt] = loops_of(schedule, stmt)
        by_name: dict[str, list[Loop]] = {}
        for loop in loops:
            if loop.name:
                by_name.setdefault(loop.name, []).append(loop)
        if not all(name in by_name for name in names):
            continue
        for name in names:
            if len(by_name[name]) > 1:
                raise ScheduleError(f"{len(by_name[name])} loops around {stmt} are named "
                                    f"{name!r}; its loops, outer to inner: "
                                    f"{describe_loops(loops)}")
        found[stmt] = [by_name[name][0] for name in names]
    wanted = ", ".join(repr(n) for n in names)
    if not found:
        if statement is not None:
            missing = [n for n in names
                       if n not in {l.name for l in loops_by_statement[statement]}]
            raise ScheduleError(f"statement {statement} is not inside a loop named "
                                f"{missing[0]!r}; its loops, outer to inner: "
                                f"{describe_loops(loops_by_statement[statement])}")
        around = "; ".join(f"{s}: {describe_loops(loops_by_statement[s])}" for s in candidates)
        raise ScheduleError(f"no statement of {program.name} is inside loops named {wanted}; "
                            f"loops around each statement, outer to inner: {around}")
    keys = {tuple(l.key for l in loops) for loops in found.values()}
    if len(keys) > 1:
        options = " or ".join(f"statement={s!r}" for s in found)
        raise ScheduleError(f"the loop name(s) {wanted} mean different loops around "
                            f"{', '.join(found)}; say which with {options}")
    first = next(iter(found))
    return first, found[first]


@dataclass(frozen=True)
class Chain:
    """Perfectly nested band nodes (each the only child of the previous one)."""

    top: tuple[int, ...]
    bands: tuple[tuple[Dim, ...], ...]
    first_dim: int             # time dimension of the first member of the top band

    @property
    def members(self) -> list[Dim]:
        return [dim for band in self.bands for dim in band]


def band_chain(schedule: isl.Schedule, outer: Loop, inner: Loop, statement: str) -> Chain:
    """The bands from the one holding ``outer`` to the one holding ``inner``, which must be
    perfectly nested (only band nodes in between)."""
    assert inner.path[:len(outer.path)] == outer.path
    node = node_at(schedule, outer.path)
    bands = [tuple(read_band(node))]
    for position in inner.path[len(outer.path):]:
        node = node.child(position)
        kind = node.get_type()
        if kind in (_NodeType.sequence, _NodeType.set):
            others = sorted(set(statement_names(node.get_domain())) - {statement},
                            key=lambda name: (len(name), name))
            between = (f"{', '.join(others)} {'runs' if len(others) == 1 else 'run'}"
                       if others else "other statements run")
            raise ScheduleError(
                f"{outer.label} and {inner.label} are not perfectly nested around {statement}: "
                f"{between} between them (a sequence node); only loops with nothing but loops "
                f"between them can be transformed together")
        if kind == _NodeType.mark:
            raise ScheduleError(
                f"a {node.mark_get_id().get_name()!r} mark sits between {outer.label} and "
                f"{inner.label}; transform loops before marking them as blocks or threads")
        if kind != _NodeType.band:
            raise ScheduleError(f"a {kind} node sits between {outer.label} and {inner.label}; "
                                "only nested loops (band nodes) can be transformed together")
        bands.append(tuple(read_band(node)))
    return Chain(outer.path, tuple(bands), outer.time_dim - outer.position)


def select(program: ir.Program, schedule: isl.Schedule, names: Sequence[str],
            statement: str | None) -> tuple[str, list[Loop], Chain, int]:
    """Adjacent nested loops, outer to inner: (statement, loops, their chain, index of the
    first selected member among the chain's members)."""
    stmt, loops = find(program, schedule, names, statement)
    order = sorted(loops, key=lambda l: l.time_dim)
    if order != loops:
        raise ScheduleError(f"give the loops outer to inner: around {stmt} they nest as "
                            f"{describe_loops(order)}")
    chain = band_chain(schedule, loops[0], loops[-1], stmt)
    start = loops[0].position
    for offset, loop in enumerate(loops):
        if loop.time_dim != loops[0].time_dim + offset:
            skipped = [l for l in loops_of(schedule, stmt)
                       if loops[offset - 1].time_dim < l.time_dim < loop.time_dim]
            raise ScheduleError(f"loops {loops[offset - 1].name!r} and {loop.name!r} are not "
                                f"adjacent around {stmt}: {describe_loops(skipped)} runs "
                                f"between them; list it too or move it with interchange first")
    return stmt, loops, chain, start


def regroup(members: Sequence[Dim], like: Sequence[Sequence[Dim]]) -> list[list[Dim]]:
    """``members`` cut into bands of the sizes of ``like``."""
    bands, start = [], 0
    for band in like:
        bands.append(list(members[start:start + len(band)]))
        start += len(band)
    return bands


def names_in_use(schedule: isl.Schedule, statements: Sequence[str]) -> set[str]:
    return {loop.name for s in statements for loop in loops_of(schedule, s) if loop.name}


@dataclass(frozen=True)
class Marked:
    """A member of a band marked block or thread: its time dimension, name and statements."""

    time_dim: int
    name: str
    statements: frozenset[str]


def marked_members(schedule: isl.Schedule) -> list[Marked]:
    """Every member of a band directly below a ``block`` or ``thread`` mark."""
    marked: list[Marked] = []

    def walk(node: isl.ScheduleNode, depth: int) -> None:
        kind = node.get_type()
        if kind == _NodeType.mark and node.mark_get_id().get_name() in USER_KINDS:
            child = node.child(0)
            if child.get_type() == _NodeType.band:
                mupa = child.band_get_partial_schedule()
                statements = frozenset(statement_names(child.get_domain()))
                for pos in range(child.band_n_member()):
                    name = member_name(mupa, pos, None) or f"t{depth + pos}"
                    marked.append(Marked(depth + pos, name, statements))
        if kind == _NodeType.band:
            depth += node.band_n_member()
        elif kind in (_NodeType.sequence, _NodeType.set):
            depth += 1
        for position in range(node.n_children()):
            walk(node.child(position), depth)

    walk(schedule.get_root(), 0)
    return marked


def with_parallel_names(schedule: isl.Schedule,
                         marked: Sequence[Marked]) -> tuple[isl.UnionMap, list[str]]:
    """The flat schedule with each marked member's time dimension named after the member,
    for the statements below it only (other dimensions stay unnamed), so that
    ``check_schedule(.., parallel=[names])`` requires exactly those loops to be parallel: a
    position alone would also bind a sequential loop at the same depth in another nest.
    Also returns the names given: a marked member of statements that have no instance (``for
    i in range(0)``) appears in no map and has nothing to check."""
    flat = schedule.get_map()
    maps = flat.get_map_list()
    result = isl.UnionMap.empty(flat.get_space())
    used: set[str] = set()
    for k in range(maps.n_map()):
        relation = maps.get_at(k)
        statement = relation.get_tuple_name(isl.dim_type.in_)
        for member in marked:
            if statement in member.statements:
                relation = relation.set_dim_name(isl.dim_type.out, member.time_dim, member.name)
                used.add(member.name)
        result = result.union(isl.UnionMap.from_map(relation))
    return result, sorted(used)




@public
def statement_loops(program: ir.Program | Kernel, statement: str) -> tuple[str | None, ...]:
    """The names of the loops (band members) around ``statement``, outer to inner; None for a
    member without a name (one that iterates different variables for different statements).

    >>> statement_loops(gemm.program, "S1")
    ('i', 'k', 'j')
    >>> statement_loops(tile(gemm.program, ("k", "j"), (8, 8)), "S1")
    ('i', 'k_tile', 'j_tile', 'k', 'j')
    """
    program = as_program(program, "statement_loops")
    check_statement(program, statement)
    return tuple(loop.name for loop in loops_of(program.schedule, statement))


@public
def describe_schedule(program: ir.Program | Kernel) -> str:
    """The schedule tree as an indented outline with loop names, for choosing what to
    transform next. After ``tile(matmul.program, ("i", "j"), (8, 8))`` and
    ``mark_band(.., ("i", "j"), "thread")``::

        band [i_tile, j_tile]
          mark thread
            band [i, j]
              band [k]
                S0
    """
    program = as_program(program, "describe_schedule")
    lines: list[str] = []
    order = {name: k for k, name in enumerate(program_statements(program))}

    def walk(node: isl.ScheduleNode, indent: int) -> None:
        kind = node.get_type()
        pad = "  " * indent
        if kind == _NodeType.band:
            mupa = node.band_get_partial_schedule()
            names = [member_name(mupa, pos, None) or "?" for pos in range(node.band_n_member())]
            lines.append(f"{pad}band [{', '.join(names)}]")
            indent += 1
        elif kind == _NodeType.mark:
            lines.append(f"{pad}mark {node.mark_get_id().get_name()}")
            indent += 1
        elif kind in (_NodeType.sequence, _NodeType.set):
            lines.append(f"{pad}{'sequence' if kind == _NodeType.sequence else 'set'}")
            indent += 1
        elif kind == _NodeType.filter:
            names = sorted(statement_names(node.filter_get_filter()), key=order.get)
            if not names:
                names = ["(no instances)"]
            if node.n_children() and node.child(0).get_type() == _NodeType.leaf:
                lines.append(f"{pad}{', '.join(names)}")
                return
            lines.append(f"{pad}filter {', '.join(names)}")
            indent += 1
        elif kind == _NodeType.leaf:
            parent = node.parent() if node.has_parent() else None
            if parent is None or parent.get_type() != _NodeType.filter:
                names = statement_names(node.get_domain())
                lines.append(f"{pad}{', '.join(names) or '(no instances)'}")
            return
        elif kind != _NodeType.domain:
            lines.append(f"{pad}{kind}")
            indent += 1
        for position in range(node.n_children()):
            walk(node.child(position), indent)

    walk(program.schedule.get_root(), 0)
    return "\n".join(lines)
