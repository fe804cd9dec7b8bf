"""The pipeline timeline of a GPU kernel at concrete sizes, read off its schedule with isl.

For the first block and the first outer reduction iteration, every pipeline iteration T lists
what happens in order: waits, barriers, which tiles are copied into which shared slot, which
reduction steps are loaded into registers and which steps of the update statement (the
contraction's compute statement, e.g. ``S1: C[i, j] += alpha * A[i, k] * B[k, j]``, run by
every thread on its register fragments with CUDA-core multiply-adds) are computed. Nothing is
drawn from the configuration alone: the events are the instances of the kernel's own
statements.

:func:`format_timeline` gives the text; :func:`write_timeline` draws it with matplotlib as SVG
or PNG, with a legend, and embeds the sha256 of the text timeline in the picture (see
:mod:`polypipe.analysis.render`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import islpy as isl

from .errors import PolypipeError


@dataclass
class TimelineRow:
    """What one pipeline iteration T does, in order: (phase, order, kind, detail) events."""

    T: int
    events: list[tuple[int, int, str, str]] = field(default_factory=list)
    loads: list[int] = field(default_factory=list)       # reduction steps loaded to registers
    updates: list[int] = field(default_factory=list)     # reduction steps computed
    copies: dict[str, list[int]] = field(default_factory=dict)   # buffer -> tiles copied

    def ordered(self) -> list[tuple[str, str]]:
        return [(kind, detail) for _, _, kind, detail in sorted(self.events)]


def _points(s: isl.Set) -> list[list[int]]:
    points: list[list[int]] = []

    def visit(point: isl.Point) -> None:
        dims = point.get_space().dim(isl.dim_type.set)
        points.append([point.get_coordinate_val(isl.dim_type.set, i).to_python()
                       for i in range(dims)])

    s.foreach_point(visit)
    return points


def _phase(kernel, stmt) -> int:
    """The pipeline phase a main-loop statement runs in (a constant per statement)."""
    phases = kernel.phase_of.intersect_domain(isl.UnionSet.from_set(stmt.domain))
    piece = phases.get_map_list().get_at(0)
    return isl.PwMultiAff.from_map(piece).get_pw_aff(0).get_pieces()[0][1]\
        .get_constant_val().to_python()


def pipeline_timeline(kernel, sizes: Mapping[str, int]) -> list[TimelineRow]:
    """The events of each pipeline iteration (first block, first outer iteration)."""
    from polypipe.analysis.bounds import fix_parameters

    program = kernel.program
    params = fix_parameters(program.context, sizes)
    block_rank = kernel.block_of.get_map_list().get_at(0).dim(isl.dim_type.out)
    block_zero = isl.UnionSet("{ [" + ", ".join(["0"] * block_rank) + "] }")
    found: dict[tuple, dict[int, TimelineRow]] = {}
    for order, stmt in enumerate((*program.syncs, *program.statements)):
        iteration = kernel.iteration_of.intersect_domain(isl.UnionSet.from_set(stmt.domain))
        if iteration.is_empty():
            continue
        domain = isl.UnionSet.from_set(stmt.domain.intersect_params(params))
        block = kernel.block_of.intersect_domain(domain)
        in_block = block.intersect_range(block_zero.align_params(block.get_space())).domain()
        value_dim = _value_dimension(kernel, stmt)
        coordinates = iteration.intersect_domain(in_block)
        if value_dim is not None:
            extra = isl.UnionMap.from_map(_dimension_map(stmt, value_dim))
            coordinates = coordinates.flat_range_product(extra.intersect_domain(in_block))
        if coordinates.is_empty():
            continue
        phase = _phase(kernel, stmt)
        for point in _points(isl.Set.from_union_set(coordinates.range())):
            value = point.pop() if value_dim is not None else None
            T = point.pop()
            rows = found.setdefault(tuple(point), {})
            row = rows.setdefault(T, TimelineRow(T))
            _record(row, kernel, stmt, value, phase, order)
    if not found:
        return []
    first = found[min(found)]
    return [first[T] for T in sorted(first)]


def _value_dimension(kernel, stmt) -> str | None:
    if getattr(stmt, "kind", None) == "async_copy":
        return "pp_t"
    if getattr(stmt, "kind", None) == "copy" and stmt.name.startswith("load_"):
        return "pp_kk"
    if stmt.name == kernel.contraction.update:
        return kernel.contraction.reduction_iterators[-1]
    return None


def _dimension_map(stmt, name: str) -> isl.Map:
    dims = [stmt.domain.get_dim_name(isl.dim_type.set, i)
            for i in range(stmt.domain.dim(isl.dim_type.set))]
    text = f"{{ {stmt.name}[{', '.join(dims)}] -> [{name}] }}"
    return isl.Map(text).align_params(stmt.domain.get_space())


# Inside one phase, a thread issues its copies, then commits, then waits.
_WITHIN_PHASE = {"copy": 0, "commit": 1, "wait": 2, "barrier": 3}


def _record(row: TimelineRow, kernel, stmt, value, phase: int, order: int) -> None:
    kind = getattr(stmt, "kind", None)
    key = (phase, _WITHIN_PHASE.get("copy" if kind == "async_copy" else kind, 4) * 1000 + order)
    if kind in ("wait", "barrier", "commit"):
        detail = f"({stmt.pending})" if kind == "wait" else ""
        event = (*key, kind, detail)
        if event not in row.events:
            row.events.append(event)
    elif kind == "async_copy":
        tiles = row.copies.setdefault(stmt.target.array, [])
        if value not in tiles:
            tiles.append(value)
            row.events.append((*key, "copy", f"{stmt.target.array} tile {value} -> slot "
                                              f"{value % kernel.config.shared_stages}"))
    elif kind == "copy" and stmt.name.startswith("load_"):
        if value not in row.loads:
            row.loads.append(value)
    elif stmt.name == kernel.contraction.update:
        if value not in row.updates:
            row.updates.append(value)


def _span(values: list[int]) -> str:
    if not values:
        return ""
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}..{high}"


_SPELLING = {"wait": "cp.async.wait_group", "barrier": "__syncthreads()",
             "commit": "cp.async.commit_group", "copy": "cp.async"}


def compute_statement(kernel) -> tuple[str, str] | None:
    """(name, source text) of the kernel's update statement; None for an element-wise kernel."""
    name = kernel.contraction.update
    if name is None:
        return None
    statement = kernel.contraction.program.statement(name)
    return name, (statement.source or str(statement))


def _step(kernel) -> str:
    """The name of the streamed reduction loop (``k`` for gemm)."""
    return kernel.contraction.reduction_iterators[-1]


def format_timeline(kernel, rows: list[TimelineRow]) -> str:
    """One line per pipeline iteration, events in execution order."""
    stages = kernel.config.shared_stages
    lines = [f"pipeline timeline of {kernel.name} (first block, first outer iteration; "
             f"{stages} shared stage(s), {kernel.config.register_stages} register stage(s))"]
    compute = compute_statement(kernel)
    if compute is not None:
        lines.append(f"compute: {compute[0]}: {compute[1]} (the update statement, run by every "
                     "thread on its register fragments)")
    lines.append(f"{'T':>4}  events in order")
    for row in rows:
        events = [f"{_SPELLING[kind]}{' ' if kind == 'copy' else ''}{detail}"
                  for kind, detail in row.ordered()]
        if row.loads:
            slots = sorted({(k // kernel.config.reduction) % stages for k in row.loads})
            events.append(f"registers <- {_step(kernel)} {_span(row.loads)} (slot "
                          f"{', '.join(map(str, slots))})")
        if row.updates and compute is not None:
            events.append(f"{compute[0]} {_step(kernel)} {_span(row.updates)}")
        lines.append(f"{row.T:>4}  " + "; ".join(events))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------------

_COLOURS = {"wait": "#e15759", "barrier": "#222222", "copy": "#4e79a7", "commit": "#9c9c9c",
            "load": "#f28e2b", "compute": "#59a14f"}
_NARROW, _WIDE = 1.0, 2.3


def _boxes(kernel, row: TimelineRow) -> list[tuple[str, str]]:
    """(kind, label) of every box of one row, left to right in execution order."""
    stages = kernel.config.shared_stages
    boxes = []
    for kind, detail in row.ordered():
        if kind == "wait":
            boxes.append(("wait", f"wait{detail}"))
        elif kind == "barrier":
            boxes.append(("barrier", "sync"))
        elif kind == "commit":
            boxes.append(("commit", "commit"))
        else:
            array, _, rest = detail.partition(" tile ")
            tile, _, slot = rest.partition(" -> slot ")
            boxes.append(("copy", f"{array} t{tile}\u2192s{slot}"))
    if row.loads:
        slots = sorted({(k // kernel.config.reduction) % stages for k in row.loads})
        boxes.append(("load", f"regs {_step(kernel)} {_span(row.loads)} \u2190 s"
                              f"{','.join(map(str, slots))}"))
    compute = compute_statement(kernel)
    if row.updates and compute is not None:
        boxes.append(("compute", f"{compute[0]} {_step(kernel)} {_span(row.updates)}"))
    return boxes


def _legend(kernel) -> list[tuple[str, str]]:
    stages = kernel.config.shared_stages
    entries = [
        ("wait", "wait(n) = cp.async.wait_group(n): the thread waits until all but its n newest "
                 "copy groups have landed in shared memory"),
        ("barrier", "sync = __syncthreads(): all threads of the block meet; the waited-for tiles "
                    "become visible to every thread, and the slot about to be refilled is no "
                    "longer read"),
        ("copy", f"X_s t\u2192s = cp.async: tile t of operand X copied asynchronously from "
                 f"global memory into slot s = t mod {stages} of its shared buffer X_s"),
        ("commit", "commit = cp.async.commit_group: closes this iteration's group of copies "
                   "(one group per T)"),
        ("load", f"regs = fragments of reduction steps {_step(kernel)} loaded from shared slot s "
                 f"into registers ({kernel.config.register_stages} register stage(s))"),
    ]
    compute = compute_statement(kernel)
    if compute is not None:
        entries.append(("compute", f"{compute[0]} = the update statement {compute[1]}, run by "
                                   "every thread on its register fragments (CUDA-core "
                                   "multiply-adds)"))
    return entries


def timeline_figure(kernel, rows: list[TimelineRow]):
    """The timeline as a matplotlib Figure: one lane per iteration T, one box per event."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed
    from matplotlib.patches import Patch, Rectangle

    lanes = [_boxes(kernel, row) for row in rows]
    width = max((sum(_NARROW if k in ("wait", "barrier", "commit") else _WIDE for k, _ in lane)
                 for lane in lanes), default=4.0)
    fig = Figure(figsize=(max(7.0, 0.62 * width + 1.2), 0.42 * max(len(rows), 1) + 2.4))
    ax = fig.add_subplot()
    for index, lane in enumerate(lanes):
        y = len(rows) - index
        x = 0.0
        for kind, label in lane:
            step = _NARROW if kind in ("wait", "barrier", "commit") else _WIDE
            ax.add_patch(Rectangle((x + 0.04, y - 0.36), step - 0.08, 0.72,
                                   facecolor=_COLOURS[kind], edgecolor="none"))
            ax.text(x + step / 2, y, label, ha="center", va="center", fontsize=6.5,
                    color="black" if kind == "commit" else "white")
            x += step
    ax.set_xlim(-0.1, width + 0.1)
    ax.set_ylim(0.4, len(rows) + 0.6)
    ax.set_yticks([len(rows) - i for i in range(len(rows))])
    ax.set_yticklabels([f"T={row.T}" for row in rows], fontsize=8)
    ax.set_xticks([])
    ax.set_xlabel("events of one pipeline iteration, in execution order", fontsize=8)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"{kernel.name}: {kernel.config.shared_stages} shared / "
                 f"{kernel.config.register_stages} register stages (first block, first outer "
                 "iteration)", fontsize=9)
    if not rows:
        ax.text(width / 2, 1, "no pipelined loop: nothing to show", ha="center", va="center")
    handles = [Patch(facecolor=_COLOURS[kind], label=text) for kind, text in _legend(kernel)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.06), fontsize=7,
              frameon=False, handlelength=1.2)
    return fig


def timeline_provenance(kernel, rows: list[TimelineRow]) -> str:
    """The provenance line of a timeline picture: the sha256 of the text timeline."""
    from polypipe.analysis.render import provenance_line

    return provenance_line(f"pipeline timeline of {kernel.name}", "its text timeline",
                           format_timeline(kernel, rows))


def timeline_picture(kernel, rows: list[TimelineRow], fmt: str) -> bytes:
    """The timeline as ``svg`` or ``png`` bytes (matplotlib), provenance embedded."""
    from polypipe.analysis.render import save_figure

    try:
        figure = timeline_figure(kernel, rows)
    except ImportError:
        raise PolypipeError("drawing a timeline needs matplotlib, a dependency of polypipe: "
                            "pip install matplotlib (or reinstall polypipe)") from None
    return save_figure(figure, fmt, timeline_provenance(kernel, rows), bbox_inches="tight",
                       dpi=150)


def timeline_svg(kernel, rows: list[TimelineRow]) -> str:
    """The timeline as SVG text."""
    return timeline_picture(kernel, rows, "svg").decode("utf-8")


TIMELINE_FORMATS = {".svg": "svg", ".png": "png"}


def timeline_format(path: str) -> str:
    """``svg`` or ``png`` from the file name; anything else is refused."""
    fmt = TIMELINE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise PolypipeError(f"timeline file {path!r} must end in .svg or .png")
    return fmt


def write_timeline(kernel, rows: list[TimelineRow], path: str) -> None:
    """Write the timeline picture to ``path`` (``.svg`` or ``.png``)."""
    from polypipe.analysis.render import check_writable, write_output

    fmt = timeline_format(path)
    check_writable(path)
    write_output(path, timeline_picture(kernel, rows, fmt))
