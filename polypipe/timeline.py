"""The pipeline timeline of a GPU kernel at concrete sizes, read off its schedule with isl.

For the first block and the first outer reduction iteration, every pipeline iteration T lists
what happens in order: waits, barriers, which tiles are copied into which shared slot, which
reduction steps are loaded into registers and which are computed. Nothing is drawn from the
configuration alone: the events are the instances of the kernel's own statements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
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


def format_timeline(kernel, rows: list[TimelineRow]) -> str:
    """One line per pipeline iteration, events in execution order."""
    stages = kernel.config.shared_stages
    lines = [f"pipeline timeline of {kernel.name} (first block, first outer iteration; "
             f"{stages} shared stage(s), {kernel.config.register_stages} register stage(s))",
             f"{'T':>4}  events in order"]
    for row in rows:
        events = [f"{_SPELLING[kind]}{' ' if kind == 'copy' else ''}{detail}"
                  for kind, detail in row.ordered()]
        if row.loads:
            slots = sorted({(k // kernel.config.reduction) % stages for k in row.loads})
            events.append(f"registers <- k {_span(row.loads)} (slot "
                          f"{', '.join(map(str, slots))})")
        if row.updates:
            events.append(f"update k {_span(row.updates)}")
        lines.append(f"{row.T:>4}  " + "; ".join(events))
    return "\n".join(lines)


def timeline_svg(kernel, rows: list[TimelineRow]) -> str:
    """The timeline as an SVG picture: one lane per iteration, boxes per kind of work."""
    stages = kernel.config.shared_stages
    colours = {"copy": "#4e79a7", "load": "#f28e2b", "update": "#59a14f", "wait": "#e15759",
               "barrier": "#222222"}
    row_height, x0, unit = 34, 70, 110
    width = x0 + unit * 5 + 40
    height = 60 + row_height * len(rows)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="monospace" font-size="11">',
             f'<text x="10" y="18" font-size="13">{escape(kernel.name)}: {stages} shared / '
             f'{kernel.config.register_stages} register stages (block 0)</text>']
    for index, row in enumerate(rows):
        y = 40 + index * row_height
        parts.append(f'<text x="10" y="{y + 18}">T={row.T}</text>')
        x = x0
        for kind, detail in row.ordered():
            if kind in ("wait", "barrier"):
                parts.append(f'<rect x="{x}" y="{y}" width="6" height="26" '
                             f'fill="{colours[kind]}"><title>{_SPELLING[kind]}{detail}'
                             '</title></rect>')
                x += 9
        x = max(x, x0 + 20)
        for buffer, tiles in row.copies.items():
            for tile in sorted(tiles):
                parts.append(f'<rect x="{x}" y="{y}" width="{unit - 6}" height="26" '
                             f'fill="{colours["copy"]}" rx="3"/><text x="{x + 4}" y="{y + 17}" '
                             f'fill="white">{escape(buffer)} t{tile}&#8594;s{tile % stages}'
                             '</text>')
                x += unit
        if row.loads:
            parts.append(f'<rect x="{x}" y="{y}" width="{unit - 6}" height="26" '
                         f'fill="{colours["load"]}" rx="3"/><text x="{x + 4}" y="{y + 17}" '
                         f'fill="white">reg k {_span(row.loads)}</text>')
            x += unit
        if row.updates:
            parts.append(f'<rect x="{x}" y="{y}" width="{unit - 6}" height="26" '
                         f'fill="{colours["update"]}" rx="3"/><text x="{x + 4}" y="{y + 17}" '
                         f'fill="white">mma k {_span(row.updates)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def write_timeline(kernel, rows: list[TimelineRow], path: str) -> None:
    """Write ``.svg`` (always available) or ``.png`` (needs matplotlib or cairosvg)."""
    svg = timeline_svg(kernel, rows)
    if path.endswith(".svg"):
        with open(path, "w") as handle:
            handle.write(svg)
        return
    if path.endswith(".png"):
        try:
            import cairosvg  # type: ignore

            cairosvg.svg2png(bytestring=svg.encode(), write_to=path)
            return
        except ImportError:
            pass
        try:
            _png_with_matplotlib(kernel, rows, path)
            return
        except ImportError:
            raise PolypipeError("writing a PNG timeline needs matplotlib or cairosvg "
                                "(pip install matplotlib); .svg works without either") from None
    raise PolypipeError(f"timeline file {path!r} must end in .svg or .png")


def _png_with_matplotlib(kernel, rows, path: str) -> None:
    import matplotlib  # type: ignore

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore

    stages = kernel.config.shared_stages
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    for index, row in enumerate(rows):
        y = len(rows) - index
        x = 0.3
        for position, (kind, _) in enumerate(k for k in row.ordered()
                                             if k[0] in ("wait", "barrier")):
            ax.barh(y, 0.05, left=0.07 * position,
                    color="#e15759" if kind == "wait" else "#222222")
        for buffer, tiles in row.copies.items():
            for tile in sorted(tiles):
                ax.barh(y, 0.95, left=x, color="#4e79a7")
                ax.text(x + 0.05, y, f"{buffer} t{tile}->s{tile % stages}", va="center",
                        color="white", fontsize=8)
                x += 1
        if row.loads:
            ax.barh(y, 0.95, left=x, color="#f28e2b")
            ax.text(x + 0.05, y, f"reg k {_span(row.loads)}", va="center", color="white",
                    fontsize=8)
            x += 1
        if row.updates:
            ax.barh(y, 0.95, left=x, color="#59a14f")
            ax.text(x + 0.05, y, f"mma k {_span(row.updates)}", va="center", color="white",
                    fontsize=8)
    ax.set_yticks([len(rows) - i for i in range(len(rows))])
    ax.set_yticklabels([f"T={row.T}" for row in rows])
    ax.set_xticks([])
    ax.set_title(f"{kernel.name}: wait (red), barrier (black), cp.async (blue), "
                 "register loads (orange), updates (green)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
