"""Exact dependences between statement instances: flow (value-based), anti and output.

Before (gemm, examples/gemm.py)::

    for i in range(NI):
        for j in range(NJ):
            C[i, j] *= beta                              # S0
        for k in range(NK):
            for j in range(NJ):
                C[i, j] += alpha * A[i, k] * B[k, j]     # S1

After ``deps = dependences(gemm.program)``::

    deps.flow    # { S0[i, j] -> S1[i' = i, k = 0, j' = j] : NK > 0 and ...;
                 #   S1[i, k, j] -> S1[i' = i, k' = 1 + k, j' = j] : ... }
    deps.loop_is_parallel("S1", "j")     # True
    deps.carried_by("S1", "k")           # (flow S1 -> S1 C, anti S1 -> S1 C, output S1 -> S1 C)
    print(deps.to_text())                # one line per dependence

*Flow* is exact dataflow: each read instance is paired only with the last write instance that
produced its value (isl's ``compute_flow`` on the program's schedule tree). *Anti* (read, then a
later write of the same element) and *output* (write, then a later write) are memory-based: every
such ordered pair. Value-based flow plus memory-based anti and output is a complete set of
ordering constraints (any memory-based flow pair W -> R is implied: W -> last writer of R is an
output pair, last writer -> R a flow pair), so legality checks and parallelism use exactly these.

Every dependence is split by the loop that carries it (the outermost common loop on which the
sink runs strictly later than the source); each :class:`Dependence` record is carried by one loop
or by none (loop-independent: ordered by the source order of the statements only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

import islpy as isl

from polypipe import ir
from polypipe.errors import ArgumentError, PolypipeError, ScheduleError, public

if TYPE_CHECKING:  # annotations only: kernel.py imports the front end
    from polypipe.kernel import Kernel

KINDS = ("flow", "anti", "output")

# --------------------------------------------------------------------------------------------
# Small isl helpers (pure)
# --------------------------------------------------------------------------------------------


def map_list(umap: isl.UnionMap) -> list[isl.Map]:
    """The maps of a union map, one per (domain tuple, range tuple) pair."""
    maps = umap.get_map_list()
    return [maps.get_at(k) for k in range(maps.n_map())]


def set_list(uset: isl.UnionSet) -> list[isl.Set]:
    sets = uset.get_set_list()
    return [sets.get_at(k) for k in range(sets.n_set())]


def union_of(maps: Sequence[isl.Map], like: isl.Set | isl.Map) -> isl.UnionMap:
    result = isl.UnionMap.empty(like.get_space().params())
    for relation in maps:
        result = result.union(isl.UnionMap.from_map(relation))
    return result


def statement_order(name: str) -> tuple:
    """Sort key putting ``S2`` before ``S10`` (statements are numbered in source order)."""
    match = re.fullmatch(r"(.*?)(\d+)", name)
    return (match.group(1), int(match.group(2))) if match else (name, -1)


def strip_parameters(text: str) -> str:
    """``[N] -> { S[i] -> T[i'] }`` without the parameter prefix, for compact display."""
    start = text.find("{")
    return text[start:] if start >= 0 else text


def _name_dims(obj, dim_type, names: Sequence[str]):
    for pos, name in enumerate(names):
        obj = obj.set_dim_name(dim_type, pos, name)
    return obj


def time_space_relation(n_dims: int, params_like, equal_prefix: int,
                        last: str | None) -> isl.Map:
    """``{ [t0..] -> [u0..] : t_k = u_k for k < equal_prefix and t_p <last> u_p }``.

    ``last`` is ``'<'`` (strictly later at dimension ``p = equal_prefix``), ``'!='`` or ``None``
    (only the equal prefix). Dimensions are named ``t*`` (source time) and ``u*`` (sink time).
    """
    space = isl.Space.create_from_names(
        params_like.get_ctx(), in_=[f"t{k}" for k in range(n_dims)],
        out=[f"u{k}" for k in range(n_dims)])
    relation = isl.Map.universe(space)
    for k in range(equal_prefix):
        relation = relation.equate(isl.dim_type.in_, k, isl.dim_type.out, k)
    if last == "<":
        relation = relation.order_lt(isl.dim_type.in_, equal_prefix,
                                     isl.dim_type.out, equal_prefix)
    elif last == "!=":
        lower = relation.order_lt(isl.dim_type.in_, equal_prefix, isl.dim_type.out, equal_prefix)
        upper = relation.order_gt(isl.dim_type.in_, equal_prefix, isl.dim_type.out, equal_prefix)
        relation = lower.union(upper)
    return relation.align_params(params_like.get_space())


# --------------------------------------------------------------------------------------------
# Argument checks shared by the analyses and the transformations
# --------------------------------------------------------------------------------------------


def type_name(value) -> str:
    """``None``, ``str``, ``function``: how messages name what was passed instead."""
    return "None" if value is None else type(value).__name__


def as_program(program, function: str) -> ir.Program:
    """``program`` itself, or the model of a ``@polypipe.kernel`` function (``kernel.program``).

    Every public function that takes a program accepts a :class:`~polypipe.kernel.Kernel` the
    same way; anything else raises :class:`ArgumentError` naming ``function``."""
    if isinstance(program, ir.Program):
        return program
    from polypipe.kernel import Kernel  # kernel -> frontend -> analysis: imported late

    if isinstance(program, Kernel):
        return program.program
    hint = (" (decorate it with @polypipe.kernel first)"
            if callable(program) and not isinstance(program, type) else "")
    raise ArgumentError(f"{function}() takes a @polypipe.kernel function or its program (a "
                        f"polypipe.Program), not {type_name(program)}{hint}")


def check_name(value, what: str) -> str:
    """A statement or loop name: a non-empty string (ScheduleError otherwise, like every other
    malformed part of a request)."""
    if not isinstance(value, str) or not value:
        raise ScheduleError(f"{what} must be a name (a non-empty string), got {value!r}")
    return value


def check_statement(program: ir.Program, statement, what: str = "statement") -> str:
    """The name of a statement of ``program`` (ScheduleError for anything else)."""
    check_name(statement, what)
    names = [s.name for s in program.statements]
    if statement not in names:
        raise ScheduleError(f"no statement {statement!r} in {program.name} (statements: "
                            f"{', '.join(names) or 'none'})")
    return statement


def check_dependences(program: ir.Program, deps, function: str) -> "Dependences":
    """``deps`` if it is a :class:`Dependences` of ``program`` (or of a program with the same
    statements, a transformed one), else ArgumentError / ScheduleError."""
    if not isinstance(deps, Dependences):
        raise ArgumentError(f"{function}(): deps must be the Dependences that "
                            f"polypipe.dependences() returns, not {type_name(deps)}")
    if deps.program is not program:
        ours = [(s.name, len(s.iterators)) for s in program.statements]
        theirs = [(s.name, len(s.iterators)) for s in deps.program.statements]
        if ours != theirs:
            raise ScheduleError(f"{function}(): deps were computed for {deps.program.name}, "
                                f"whose statements ({', '.join(n for n, _ in theirs) or 'none'}) "
                                f"are not those of {program.name} "
                                f"({', '.join(n for n, _ in ours) or 'none'})")
    return deps


# --------------------------------------------------------------------------------------------
# The schedule tree, flattened: time vectors and the loop behind each dimension
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loop:
    """One loop of the schedule: a member of a band node of the schedule tree.

    ``name`` is the loop variable (``"k"``); a band member that is not plus or minus one
    iterator (after tiling, say) is named after its time dimension (``"t3"``). ``key`` identifies
    the band member in the tree (child positions from the root, then the member index), so two
    separate loops that both use ``i`` are different loops. ``time_dim`` is the loop's dimension
    in the flat time vector (``Program.schedule_map``); ``reverse`` is true for a negative-step
    loop, whose time coordinate is ``-i``.
    """

    name: str
    key: tuple[int, ...]
    time_dim: int
    statements: tuple[str, ...]
    iterators: tuple[str | None, ...]  # per statement: the iterator it runs over, if plain
    reverse: bool

    def iterator(self, statement: str) -> str | None:
        return self.iterators[self.statements.index(statement)]

    def __str__(self) -> str:
        return f"loop {self.name}" + (" (reverse)" if self.reverse else "")


@dataclass(frozen=True, eq=False)
class ScheduleLayout:
    """A schedule tree as flat time vectors, as ``isl.Schedule.get_map`` lays them out.

    Before: ``{ domain: .., child: { schedule: [i], child: { sequence: [S0 -> [j]], [S1 -> [k],
    [j]] } } }``. After: ``time["S1"] = S1[i, k, j] -> [t0 = i, t1 = 1, t2 = k, t3 = j]`` and
    ``time["S0"] = S0[i, j] -> [i, 0, j, 0]`` (a sequence node contributes the child's position;
    shorter vectors are padded with zeros), plus the loop behind every band dimension.
    """

    n_dims: int
    time: Mapping[str, isl.Map]
    loops: tuple[Loop, ...]
    statement_loops: Mapping[str, tuple[Loop, ...]]

    def loop(self, statement: str, var: str) -> Loop:
        """The loop that runs ``var`` around ``statement`` (ScheduleError if there is none)."""
        check_name(statement, "statement")
        check_name(var, "the loop variable")
        if statement not in self.statement_loops:
            known = ", ".join(self.statement_loops) or "none"
            raise ScheduleError(f"no statement {statement!r} in the schedule (statements: "
                                f"{known})")
        for loop in self.statement_loops[statement]:
            if loop.iterator(statement) == var or loop.name == var:
                return loop
        names = ", ".join(l.iterator(statement) or l.name for l in self.statement_loops[statement])
        raise ScheduleError(f"statement {statement} is not inside a loop over {var!r} (its "
                            f"loops, outer to inner: {names or 'none'})")

    def common_loops(self, source: str, sink: str) -> tuple[Loop, ...]:
        """The loops around both statements: the shared band prefix of their tree paths."""
        common = []
        for a, b in zip(self.statement_loops[source], self.statement_loops[sink]):
            if a.key != b.key:
                break
            common.append(a)
        return tuple(common)

    def time_union(self) -> isl.UnionMap:
        maps = list(self.time.values())
        return union_of(maps, maps[0]) if maps else isl.UnionMap("{ }")


def schedule_layout(schedule: isl.Schedule) -> ScheduleLayout:
    """Walk a schedule tree: per statement its time map and the loops (band members) around it.

    Works for any tree (band, sequence, set, filter, mark, ... nodes); the layout is the one of
    ``schedule.get_map()`` with dimensions named ``t0, t1, ...``.
    """
    if not isinstance(schedule, isl.Schedule):
        raise ArgumentError(f"schedule_layout() takes an isl.Schedule, not {type_name(schedule)}")
    components: dict[str, list] = {}
    domains: dict[str, isl.Set] = {s.get_tuple_name(): s for s in set_list(schedule.get_domain())}
    band_members: dict[tuple, dict] = {}
    _walk(schedule.get_root(), (), [], components, band_members)
    n_dims = max((len(c) for c in components.values()), default=0)

    loops: dict[tuple, Loop] = {}
    for key, info in band_members.items():
        statements = tuple(sorted(info["statements"], key=statement_order))
        iterators = tuple(info["iterators"][s][0] for s in statements)
        signs = {info["iterators"][s][1] for s in statements}
        plain = [v for v in iterators if v is not None]
        unique = list(dict.fromkeys(plain))
        name = "/".join(unique) if len(plain) == len(iterators) else f"t{info['time_dim']}"
        loops[key] = Loop(name=name, key=key, time_dim=info["time_dim"], statements=statements,
                          iterators=iterators, reverse=signs == {-1})

    time: dict[str, isl.Map] = {}
    statement_loops: dict[str, tuple[Loop, ...]] = {}
    for stmt, parts in components.items():
        domain = domains[stmt]
        relation = isl.Map.from_domain(domain)  # S[..] -> [] : the empty time vector
        for part in parts:
            relation = relation.flat_range_product(part[-1])
        pad = n_dims - len(parts)
        if pad:
            relation = relation.add_dims(isl.dim_type.out, pad)
            for pos in range(len(parts), n_dims):
                relation = relation.fix_val(isl.dim_type.out, pos, 0)
        relation = _name_dims(relation, isl.dim_type.out, [f"t{k}" for k in range(n_dims)])
        time[stmt] = relation.intersect_domain(domain.coalesce()).coalesce()
        statement_loops[stmt] = tuple(loops[p[1]] for p in parts if p[0] == "band")
    return ScheduleLayout(n_dims, time, tuple(sorted(loops.values(), key=lambda l: l.key)),
                          statement_loops)


def _walk(node: isl.ScheduleNode, path: tuple[int, ...], parts: list,
          components: dict[str, list], band_members: dict[tuple, dict]) -> None:
    kind = node.get_type()
    if kind == isl.schedule_node_type.band:
        partial = isl.UnionMap.from_multi_union_pw_aff(node.band_get_partial_schedule())
        n_members = node.band_n_member()
        per_stmt = {m.get_tuple_name(isl.dim_type.in_): m for m in map_list(partial)}
        new_parts = list(parts)
        for member in range(n_members):
            key = path + (member,)
            info = band_members.setdefault(key, {"statements": [], "iterators": {},
                                                 "time_dim": len(parts) + member})
            pieces = {}
            for stmt, relation in per_stmt.items():
                one = relation.project_out(isl.dim_type.out, member + 1,
                                           n_members - member - 1)
                one = one.project_out(isl.dim_type.out, 0, member)
                pieces[stmt] = one
                info["statements"].append(stmt)
                info["iterators"][stmt] = _plain_iterator(one)
            new_parts.append(("band", key, pieces))
        if node.has_children():
            _walk(node.child(0), path + (0,), new_parts, components, band_members)
        else:
            _leaf(node, new_parts, components)
        return
    if kind in (isl.schedule_node_type.sequence, isl.schedule_node_type.set):
        for position in range(node.n_children()):
            _walk(node.child(position), path + (position,), parts + [("seq", position)],
                  components, band_members)
        return
    if kind == isl.schedule_node_type.leaf:
        _leaf(node, parts, components)
        return
    # domain, filter, mark, context, guard, extension, expansion: no time dimension of their own.
    if node.has_children():
        _walk(node.child(0), path + (0,), parts, components, band_members)
    else:
        _leaf(node, parts, components)


def _leaf(node: isl.ScheduleNode, parts: list, components: dict[str, list]) -> None:
    for domain in set_list(node.get_domain()):
        stmt = domain.get_tuple_name()
        if stmt in components:
            # a statement split over several subtrees (filters on its instances): its loops
            # would differ per part; no transformation builds such trees yet
            raise ScheduleError(f"statement {stmt} reaches several leaves of the schedule tree; "
                                "dependence analysis needs each statement under one path")
        maps = []
        for part in parts:
            if part[0] == "band":
                maps.append(("band", part[1], part[2][stmt]))
            else:
                # A sequence node orders its children: child k runs at time coordinate k.
                constant = isl.Map.from_domain(domain).add_dims(isl.dim_type.out, 1)
                constant = constant.fix_val(isl.dim_type.out, 0, part[1])
                maps.append(("seq", part[1], constant))
        components[stmt] = maps


def _plain_iterator(member: isl.Map) -> tuple[str | None, int]:
    """(``"i"``, +1) if this statement's band member is ``S[..] -> [i]``, (``"i"``, -1) for
    ``[-i]``, (None, 0) for anything else (tiled, skewed, ...)."""
    domain_space = member.get_space().domain()
    local = isl.LocalSpace.from_space(domain_space)
    domain = member.domain()
    for pos in range(domain_space.dim(isl.dim_type.set)):
        var = isl.PwAff.from_aff(isl.Aff.var_on_domain(local, isl.dim_type.set, pos))
        for sign, expr in ((1, var), (-1, var.neg())):
            candidate = isl.Map.from_pw_aff(expr).intersect_domain(domain)
            if candidate.is_equal(member.reset_tuple_id(isl.dim_type.out)):
                return domain_space.get_dim_name(isl.dim_type.set, pos), sign
    return None, 0


# --------------------------------------------------------------------------------------------
# Dependence records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Dependence:
    """The instances of ``sink`` that depend on instances of ``source`` through ``array``,
    carried by one loop (or by none).

    ``relation`` is ``source instance -> sink instance``. ``distance`` is the set of differences
    ``time(sink) - time(source)`` over the common loops, in schedule space (for a reverse loop
    the coordinate is ``-i``, so a positive distance always means "later"), as a set named
    ``distance`` with one dimension per common loop. ``directions`` gives each common loop's
    sign: ``'='`` always 0, ``'<'`` always later, ``'>'`` always earlier, ``'<='``/``'>='``,
    ``'*'`` mixed. ``carrying_loop`` is the loop variable of the outermost common loop with a
    nonzero distance (``None``: loop-independent, ordered by statement order only).

    Example (gemm): ``flow S1 -> S1 on C, common_loops ('i', 'k', 'j'), distance { distance[i =
    0, k = 1, j = 0] }, directions ('=', '<', '='), carrying_loop 'k'``.
    """

    kind: str
    source: str
    sink: str
    array: str
    relation: isl.Map
    common_loops: tuple[str, ...]
    distance: isl.Set
    directions: tuple[str, ...]
    carrying_loop: str | None
    loop: Loop | None = field(default=None, repr=False)  # the carrying Loop itself

    @property
    def distance_text(self) -> str:
        """Constant distances as numbers, others as directions: ``(0, 1, *)``."""
        parts = []
        for pos, direction in enumerate(self.directions):
            value = _fixed_value(self.distance, pos)
            parts.append(str(value) if value is not None else direction)
        return f"({', '.join(parts)})"

    def __str__(self) -> str:
        carried = self.carrying_loop or "none"
        loops = ", ".join(self.common_loops)
        return (f"{self.kind:<6} {self.source} -> {self.sink}  {self.array}  carried by: "
                f"{carried}  distance ({loops}): {self.distance_text}  "
                f"{strip_parameters(str(self.relation))}")


def _project_to(dset: isl.Set, pos: int) -> isl.Set:
    n = dset.dim(isl.dim_type.set)
    return dset.project_out(isl.dim_type.set, pos + 1, n - pos - 1).project_out(
        isl.dim_type.set, 0, pos)


def _fixed_value(dset: isl.Set, pos: int) -> int | None:
    one = _project_to(dset, pos).detect_equalities()
    value = one.plain_get_val_if_fixed(isl.dim_type.set, 0)
    return None if value.is_nan() else value.to_python()


def _direction(dset: isl.Set, pos: int) -> str:
    one = _project_to(dset, pos)
    ctx = one.get_ctx()
    minus_one, zero, one_val = (isl.Val.int_from_si(ctx, v) for v in (-1, 0, 1))
    negative = not one.upper_bound_val(isl.dim_type.set, 0, minus_one).is_empty()
    positive = not one.lower_bound_val(isl.dim_type.set, 0, one_val).is_empty()
    is_zero = not one.fix_val(isl.dim_type.set, 0, zero).is_empty()
    return {(False, True, False): "=", (False, False, True): "<", (True, False, False): ">",
            (False, True, True): "<=", (True, True, False): ">="}.get(
        (negative, is_zero, positive), "*")


# --------------------------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Dependences:
    """All dependences of a program (see the module docstring), as union maps and as records.

    ``flow``, ``anti``, ``output``: ``isl.UnionMap`` from source to sink instances.
    ``live_in``: reads with no writer in the kernel, ``read instance -> element`` (values that
    come from outside: the global loads worth promoting). ``records``: :class:`Dependence` per
    (kind, source, sink, array, carrying loop). ``flow_into[(statement, k)]``: the flow into the
    statement's ``k``-th read (``Statement.reads[k]``).
    """

    program: ir.Program
    flow: isl.UnionMap
    anti: isl.UnionMap
    output: isl.UnionMap
    live_in: isl.UnionMap
    records: tuple[Dependence, ...]
    layout: ScheduleLayout
    flow_into: Mapping[tuple[str, int], isl.UnionMap] = field(repr=False)

    # -- queries ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Dependence]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def loops(self) -> tuple[Loop, ...]:
        return self.layout.loops

    def of_kind(self, kind: str) -> tuple[Dependence, ...]:
        if not isinstance(kind, str) or kind not in KINDS:
            raise ScheduleError(f"unknown dependence kind {kind!r}; kinds are "
                                f"{', '.join(KINDS)}"[:300])
        return tuple(d for d in self.records if d.kind == kind)

    def between(self, source: str, sink: str) -> tuple[Dependence, ...]:
        """The dependences from statement ``source`` to statement ``sink``."""
        check_statement(self.program, source, "source")
        check_statement(self.program, sink, "sink")
        return tuple(d for d in self.records if d.source == source and d.sink == sink)

    def loop(self, statement: str, var: str) -> Loop:
        """The loop over ``var`` around ``statement`` (ScheduleError if there is none)."""
        return self.layout.loop(statement, var)

    def carried_by(self, statement: str, var: str) -> tuple[Dependence, ...]:
        """The dependences carried by the loop over ``var`` around ``statement``.

        >>> [str(d.kind) for d in dependences(gemm.program).carried_by("S1", "k")]
        ['flow', 'anti', 'output']
        """
        loop = self.loop(statement, var)
        return tuple(d for d in self.records if d.loop is not None and d.loop.key == loop.key)

    def loop_is_parallel(self, statement: str, var: str) -> bool:
        """True if the loop over ``var`` around ``statement`` carries no flow, anti or output
        dependence (its iterations may run in any order, e.g. on different threads).

        gemm: ``i`` and ``j`` are parallel, ``k`` (the reduction) is not.
        """
        return not self.carried_by(statement, var)

    def parallel_loops(self) -> tuple[Loop, ...]:
        carried = {d.loop.key for d in self.records if d.loop is not None}
        return tuple(loop for loop in self.loops if loop.key not in carried)

    # -- views --------------------------------------------------------------------------------
    def graph(self):
        """A ``networkx.MultiDiGraph``: one node per statement, one edge per dependence record.

        Node attributes: ``domain`` (isl.Set), ``source`` (the statement's text), ``line``,
        ``statement``. Edge attributes: ``kind``, ``array``, ``relation`` (isl.Map),
        ``distance`` (isl.Set), ``directions``, ``common_loops``, ``carrying_loop``,
        ``dependence`` (the :class:`Dependence`).
        """
        import networkx as nx

        graph = nx.MultiDiGraph(name=self.program.name)
        for stmt in self.program.statements:
            graph.add_node(stmt.name, domain=stmt.domain, source=stmt.source or str(stmt),
                           line=stmt.location.line if stmt.location else None, statement=stmt)
        for dep in self.records:
            graph.add_edge(dep.source, dep.sink,
                           key=f"{dep.kind}:{dep.array}:{dep.carrying_loop or '-'}",
                           kind=dep.kind, array=dep.array, relation=dep.relation,
                           distance=dep.distance, directions=dep.directions,
                           common_loops=dep.common_loops, carrying_loop=dep.carrying_loop,
                           dependence=dep)
        return graph

    def to_text(self, loops: bool = True) -> str:
        """One line per dependence, then (``loops=True``) each loop: parallel or what it carries."""
        from polypipe.analysis.render import dependences_text

        return dependences_text(self, loops=loops)

    def to_dot(self) -> str:
        """The dependence graph in Graphviz DOT."""
        from polypipe.analysis.render import dependences_dot

        return dependences_dot(self)

    def to_svg(self) -> str:
        """The dependence graph as SVG text (Graphviz ``dot`` if on PATH, else matplotlib)."""
        from polypipe.analysis.render import render_svg

        return render_svg(self)

    def to_png(self, path: str) -> None:
        """Write the dependence graph as a PNG picture to ``path``."""
        from polypipe.analysis.render import render_png

        render_png(self, path)

    def _repr_svg_(self) -> str | None:
        from polypipe.analysis.render import repr_svg

        return repr_svg(self)

    def _repr_html_(self) -> str:
        from polypipe.analysis.render import repr_html

        return repr_html(self)

    def __str__(self) -> str:
        return self.to_text()


@public
def dependences(program: ir.Program | Kernel) -> Dependences:
    """Flow (exact, value-based), anti and output dependences of ``program`` on its schedule.

    Before: a Python loop nest, e.g. a prefix sum running downwards::

        for i in range(n - 2, -1, -1):
            suf[i] = suf[i + 1] + x[i]        # S0

    After: ``dependences(p).flow`` is ``{ S0[i] -> S0[i' = -1 + i] : 0 < i <= -2 + n }`` (the
    value of ``suf[i]`` is read by the next iteration, which has the smaller ``i``) and
    ``carried_by("S0", "i")`` holds that flow dependence, so loop ``i`` is not parallel.

    ``program`` is a :class:`~polypipe.ir.Program` or a ``@polypipe.kernel`` function (its
    ``.program``); anything else raises :class:`~polypipe.errors.ArgumentError`.
    """
    program = as_program(program, "dependences")
    try:
        return _dependences(program)
    except isl.Error as exc:  # an isl failure here is a bug, but say what was being analysed
        raise PolypipeError(f"dependence analysis of {program.name} failed inside isl: {exc}") \
            from None


def program_layout(program: ir.Program) -> ScheduleLayout:
    """The layout of the program's own schedule, with every statement in it.

    A statement whose domain is empty (``for i in range(0)``) has no instance, so isl leaves
    it out of the schedule's domain; it gets an empty time map (and no loops) here, so that
    every analysis can look any statement up."""
    layout = schedule_layout(program.schedule)
    missing = [s for s in program.statements if s.name not in layout.time]
    if not missing:
        return layout
    time = dict(layout.time)
    statement_loops = dict(layout.statement_loops)
    for stmt in missing:
        if not stmt.domain.is_empty():
            raise ScheduleError(f"the schedule of {program.name} does not schedule "
                                f"{stmt.name}, which has instances")
        time[stmt.name] = empty_time(stmt.domain, layout.n_dims)
        statement_loops[stmt.name] = ()
    return replace(layout, time=time, statement_loops=statement_loops)


def empty_time(domain: isl.Set, n_dims: int) -> isl.Map:
    """``S[..] -> [t0, .., t<n-1>]`` with no pair: the time map of a statement without
    instances (``domain`` is empty)."""
    relation = isl.Map.from_domain(domain).add_dims(isl.dim_type.out, n_dims)
    return _name_dims(relation, isl.dim_type.out, [f"t{k}" for k in range(n_dims)])


def _dependences(program: ir.Program) -> Dependences:
    layout = program_layout(program)
    context = program.context
    statements = {s.name: s for s in program.statements}

    # Access relations restricted to the domain (an unrestricted relation has instances outside
    # the loops, which would act as writers), then coalesced: min/max bounds reach us as many
    # disjuncts, and the quadratic anti/output pairs multiply them.
    writes_of: dict[str, list[tuple[str, isl.Map]]] = {}
    reads_of: dict[str, list[tuple[str, isl.Map]]] = {}
    read_relations: dict[tuple[str, int], isl.Map] = {}
    for stmt in program.statements:
        domain = stmt.domain.coalesce()
        target = stmt.target.relation.intersect_domain(domain).coalesce()
        writes_of.setdefault(stmt.target.array, []).append((stmt.name, target))
        for index, access in enumerate(stmt.reads):
            relation = access.relation.intersect_domain(domain).coalesce()
            read_relations[(stmt.name, index)] = relation
            reads_of.setdefault(access.array, []).append((stmt.name, relation))

    # Flow: one dataflow problem per read access. Sinks do not interact in isl's last-writer
    # computation, so the union over reads is the program's flow, and each read keeps its own
    # sources (pipelinability asks about one read at a time).
    time_union = layout.time_union()
    flow_into: dict[tuple[str, int], isl.UnionMap] = {}
    flow_parts: dict[tuple[str, str, str], isl.Map] = {}
    live_in = isl.UnionMap.empty(context.get_space())
    for stmt in program.statements:
        for index, access in enumerate(stmt.reads):
            sink = isl.UnionMap.from_map(read_relations[(stmt.name, index)])
            sources = union_of([m for _, m in writes_of.get(access.array, [])], context)
            info = isl.UnionAccessInfo.from_sink(sink).set_must_source(sources)
            # The flat time map orders instances exactly as the schedule tree does (it is
            # ``schedule.get_map()``), but coalesced: a tree built from min/max bounds keeps
            # every disjunct in its band schedules, which makes compute_flow 40x slower.
            result = info.set_schedule_map(time_union).compute_flow()
            must = result.get_must_dependence()
            flow_into[(stmt.name, index)] = must
            live_in = live_in.union(result.get_may_no_source())
            for relation in map_list(must):
                key = (relation.get_tuple_name(isl.dim_type.in_), stmt.name, access.array)
                flow_parts[key] = flow_parts[key].union(relation) if key in flow_parts \
                    else relation

    before = _BeforeCache(layout)
    anti_parts: dict[tuple[str, str, str], isl.Map] = {}
    output_parts: dict[tuple[str, str, str], isl.Map] = {}
    for array, writes in writes_of.items():
        for kind, firsts, parts in (("anti", reads_of.get(array, []), anti_parts),
                                    ("output", writes, output_parts)):
            for first_stmt, first in firsts:
                for second_stmt, second in writes:
                    same_element = first.apply_range(second.reverse())
                    if same_element.is_empty():
                        continue
                    pairs = same_element.intersect(before.lex_before(first_stmt, second_stmt))
                    if pairs.is_empty():
                        continue
                    key = (first_stmt, second_stmt, array)
                    parts[key] = parts[key].union(pairs) if key in parts else pairs

    records: list[Dependence] = []
    unions = {}
    for kind, parts in (("flow", flow_parts), ("anti", anti_parts), ("output", output_parts)):
        maps = []
        for (source, sink, array), relation in sorted(
                parts.items(), key=lambda item: (_order(item[0][0], statements),
                                                 _order(item[0][1], statements), item[0][2])):
            relation = _simplify(relation, context)
            maps.append(relation)
            records.extend(_split_by_loop(kind, source, sink, array, relation, layout, before))
        unions[kind] = union_of(maps, context)
    return Dependences(program=program, flow=unions["flow"], anti=unions["anti"],
                       output=unions["output"], live_in=_simplify(live_in, context),
                       records=tuple(records), layout=layout, flow_into=flow_into)


def _simplify(relation, context: isl.Set):
    """The relation simplified for sizes in the program's context (non-negative extents):
    ``M = 0`` rather than ``M <= 0``, no restated ``N >= 0``. Equal to the exact relation on
    the context; compare with ``.intersect_params(program.context)``."""
    context = context.align_params(relation.get_space())
    relation = relation.intersect_params(context).coalesce()
    if _has_divs(relation):
        return relation  # gist is exponential on strided (mod) relations; keep it exact
    return relation.gist_params(context).coalesce()


def _has_divs(relation) -> bool:
    maps = map_list(relation) if isinstance(relation, isl.UnionMap) else [relation]
    for one in maps:
        basics = one.get_basic_map_list()
        if any(basics.get_at(k).dim(isl.dim_type.div) for k in range(basics.n_basic_map())):
            return True
    return False


def _order(name: str, statements: Mapping[str, ir.Statement]) -> int:
    return list(statements).index(name) if name in statements else len(statements)


class _BeforeCache:
    """Instance-level order relations between two statements, built once per pair."""

    def __init__(self, layout: ScheduleLayout):
        self.layout = layout
        self._cache: dict[tuple, isl.Map] = {}

    def lex_before(self, source: str, sink: str) -> isl.Map:
        """``{ s -> t : time(s) << time(t) }``."""
        key = ("lt", source, sink)
        if key not in self._cache:
            time = self.layout.time
            self._cache[key] = time[source].lex_lt_map(time[sink])
        return self._cache[key]

    def at_dim(self, source: str, sink: str, dim: int, last: str | None) -> isl.Map:
        """``{ s -> t : time(s), time(t) equal before dim, and <last> at dim }``."""
        key = (last, source, sink, dim)
        if key not in self._cache:
            time = self.layout.time
            relation = time_space_relation(self.layout.n_dims, time[source], dim, last)
            self._cache[key] = time[source].apply_range(relation).apply_range(
                time[sink].reverse())
        return self._cache[key]


def _split_by_loop(kind: str, source: str, sink: str, array: str, relation: isl.Map,
                   layout: ScheduleLayout, before: _BeforeCache) -> list[Dependence]:
    common = layout.common_loops(source, sink)
    names = tuple((loop.iterator(source) or loop.name) for loop in common)
    project_source = _project_time(layout.time[source], common, names)
    project_sink = _project_time(layout.time[sink], common, names)
    records = []
    # The pieces are disjoint and cover every forward pair: a pair is carried by the common
    # loop where its times first differ, or (equal on all common loops) it is ordered by the
    # statements' positions in a sequence only. Intersections, not subtractions: isl's
    # subtract is exponential on strided and reverse domains.
    for loop in common:
        carried = relation.intersect(before.at_dim(source, sink, loop.time_dim, "<"))
        if not carried.is_empty():
            records.append(_record(kind, source, sink, array, carried.coalesce(), names,
                                   project_source, project_sink, loop))
    equal_prefix = common[-1].time_dim + 1 if common else 0
    independent = relation.intersect(before.at_dim(source, sink, equal_prefix, None))
    if not independent.is_empty():
        records.append(_record(kind, source, sink, array, independent.coalesce(), names,
                               project_source, project_sink, None))
    return records


def _project_time(time: isl.Map, common: Sequence[Loop], names: Sequence[str]) -> isl.Map:
    """``S[..] -> [c_0, ..]``: the statement's time coordinates of the common loops only."""
    keep = {loop.time_dim for loop in common}
    relation = time
    for pos in reversed(range(time.dim(isl.dim_type.out))):
        if pos not in keep:
            relation = relation.project_out(isl.dim_type.out, pos, 1)
    return _name_dims(relation, isl.dim_type.out, names)


def _record(kind: str, source: str, sink: str, array: str, relation: isl.Map,
            names: tuple[str, ...], project_source: isl.Map, project_sink: isl.Map,
            loop: Loop | None) -> Dependence:
    distance = relation.apply_domain(project_source).apply_range(project_sink).deltas()
    distance = _name_dims(distance.set_tuple_name("distance"), isl.dim_type.set, names)
    distance = distance.coalesce()
    directions = tuple(_direction(distance, pos) for pos in range(len(names)))
    carrying = (loop.iterator(source) or loop.name) if loop is not None else None
    return Dependence(kind=kind, source=source, sink=sink, array=array, relation=relation,
                      common_loops=names, distance=distance, directions=directions,
                      carrying_loop=carrying, loop=loop)
