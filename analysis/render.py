"""Show dependences: text lines, Graphviz DOT, SVG / PNG pictures, Jupyter display.

Before: ``deps = dependences(gemm.program)``. After ``print(dependences_text(deps))``::

    dependences of gemm (parameters NI, NK, NJ)
    flow    S0 -> S1  C  carried by: none  distance (i): (0)        { S0[i, j] -> S1[i' = i, ...
    flow    S1 -> S1  C  carried by: k     distance (i, k, j): (0, 1, 0)  { S1[i, k, j] -> ...
    ...
    loops:
      i  around S0, S1  parallel
      k  around S1      sequential: carries flow C, anti C, output C

Pictures use the Graphviz ``dot`` program when it is on PATH, else matplotlib (drawing the
networkx graph) when it can be imported; with neither, :class:`RenderError` says what to install.
"""

from __future__ import annotations

import html
import io
import shutil
import subprocess
from typing import TYPE_CHECKING

from polypipe.errors import PolypipeError

if TYPE_CHECKING:  # only for annotations: dependences imports this module lazily
    from polypipe.analysis.dependences import Dependence, Dependences

KIND_STYLE = {  # kind -> (DOT color, DOT style, matplotlib line style)
    "flow": ("#1f1f1f", "solid", "solid"),
    "anti": ("#c0392b", "dashed", "dashed"),
    "output": ("#2563c9", "dotted", "dotted"),
}
INSTALL_HINT = ("install Graphviz (the `dot` program: `apt-get install graphviz`, `brew install "
                "graphviz` or `conda install graphviz`) or matplotlib (`pip install matplotlib`)")


class RenderError(PolypipeError):
    """A picture was asked for but no renderer (Graphviz, matplotlib) is available or it failed."""


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def dependences_text(deps: "Dependences", loops: bool = True) -> str:
    """One aligned line per dependence; then each loop, parallel or what it carries."""
    from polypipe.analysis.dependences import strip_parameters

    program = deps.program
    params = ", ".join(program.parameter_names)
    lines = [f"dependences of {program.name}" + (f" (parameters {params})" if params else "")]
    rows = []
    for dep in deps.records:
        loops_text = ", ".join(dep.common_loops)
        rows.append((dep.kind, f"{dep.source} -> {dep.sink}", dep.array,
                     f"carried by: {dep.carrying_loop or 'none'}",
                     f"distance ({loops_text}): {dep.distance_text}",
                     strip_parameters(str(dep.relation))))
    if not rows:
        lines.append("  no dependences")
    widths = [max((len(r[k]) for r in rows), default=0) for k in range(5)]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[5])
    if loops and deps.loops:
        lines.append("loops:")
        loop_rows = []
        for loop in deps.loops:
            carried = [d for d in deps.records if d.loop is not None and d.loop.key == loop.key]
            what = "parallel" if not carried else "sequential: carries " + ", ".join(
                dict.fromkeys(f"{d.kind} {d.array}" for d in carried))
            name = loop.name + (" (reverse)" if loop.reverse else "")
            loop_rows.append((name, "around " + ", ".join(loop.statements), what))
        w0 = max(len(r[0]) for r in loop_rows)
        w1 = max(len(r[1]) for r in loop_rows)
        for name, around, what in loop_rows:
            lines.append(f"  {name.ljust(w0)}  {around.ljust(w1)}  {what}")
    return "\n".join(line.rstrip() for line in lines)


# --------------------------------------------------------------------------------------------
# DOT
# --------------------------------------------------------------------------------------------


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def edge_label(dep: "Dependence") -> str:
    """``flow C, carried by k`` over ``(i, k, j) = (0, 1, 0)``."""
    carried = f"carried by {dep.carrying_loop}" if dep.carrying_loop else "loop-independent"
    loops = ", ".join(dep.common_loops)
    distance = f"\n({loops}) = {dep.distance_text}" if dep.common_loops else ""
    return f"{dep.kind} {dep.array}, {carried}{distance}"


def dependences_dot(deps: "Dependences") -> str:
    """The dependence graph in Graphviz DOT: statements as boxes, one edge per dependence.

    Flow edges are solid black, anti dashed red, output dotted blue; labels give the array,
    the carrying loop and the distance over the common loops.
    """
    program = deps.program
    title = (f"dependences of {program.name}   (flow: solid, anti: dashed red, "
             "output: dotted blue)")
    out = [f"digraph {_quote(program.name)} {{",
           "  graph [rankdir=TB, labelloc=t, nodesep=0.8, ranksep=0.9, fontname=\"Helvetica\", "
           f"fontsize=14, label={_quote(title)}];",
           "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#f4f6f8\", "
           "fontname=\"Helvetica\", fontsize=11];",
           "  edge [fontname=\"Helvetica\", fontsize=10];"]
    for stmt in program.statements:
        line = f"  (line {stmt.location.line})" if stmt.location else ""
        loops = ", ".join(stmt.iterators) or "no loop"
        label = f"{stmt.name}{line}\n{stmt.source or stmt}\nloops: {loops}"
        out.append(f"  {stmt.name} [label={_quote(label)}];")
    loops_at: dict[str, int] = {}
    for dep in deps.records:
        color, style, _ = KIND_STYLE[dep.kind]
        ports = ""
        if dep.source == dep.sink:
            # Several self-loops on one node would stack their labels on top of each other;
            # spreading them over the box's sides keeps every label readable.
            count = loops_at.get(dep.source, 0)
            loops_at[dep.source] = count + 1
            side = ("e", "w", "s", "n")[count % 4]
            ports = f", tailport={side}, headport={side}"
        out.append(f"  {dep.source} -> {dep.sink} [label={_quote(edge_label(dep))}, "
                   f"color={_quote(color)}, fontcolor={_quote(color)}, style={style}{ports}];")
    out.append("}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------------


def available_renderer() -> str | None:
    """``"dot"``, ``"matplotlib"`` or None: what :func:`render_svg` would use."""
    if shutil.which("dot"):
        return "dot"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    return "matplotlib"


def _run_dot(dot_text: str, fmt: str) -> bytes:
    try:
        result = subprocess.run(["dot", f"-T{fmt}"], input=dot_text.encode(),
                                capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RenderError(f"running Graphviz `dot` failed ({exc})") from None
    if result.returncode != 0:
        raise RenderError(f"Graphviz `dot -T{fmt}` failed: "
                          f"{result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def _draw_matplotlib(deps: "Dependences", fmt: str) -> bytes:
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    graph = deps.graph()
    names = list(graph.nodes)
    fig = Figure(figsize=(10, max(2.5, 1.5 * len(names))))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(-len(names) + 0.5, 0.5)
    ax.set_title(f"dependences of {deps.program.name}  (flow: solid, anti: dashed red, "
                 "output: dotted blue)", fontsize=10)
    # Statements top to bottom in source order, as in the program text; edges are drawn
    # between the boxes themselves (annotations anchored on the box artists).
    boxes = {}
    for k, name in enumerate(names):
        data = graph.nodes[name]
        line = f" (line {data['line']})" if data.get("line") else ""
        boxes[name] = ax.text(0.5, -k, f"{name}{line}\n{data['source']}", ha="center",
                              va="center", fontsize=8,
                              bbox=dict(boxstyle="round", facecolor="#f4f6f8",
                                        edgecolor="#555555"))
    self_count: dict[str, int] = {}
    pair_count: dict[tuple[str, str], int] = {}
    for source, sink, data in graph.edges(data=True):
        color, _, linestyle = KIND_STYLE[data["kind"]]
        label = edge_label(data["dependence"]).replace("\n", " ")
        arrow = dict(arrowstyle="-|>", color=color, linestyle=linestyle, shrinkA=2, shrinkB=2)
        if source == sink:
            count = self_count.get(source, 0)
            self_count[source] = count + 1
            ax.annotate("", xy=(1.0, 0.3), xycoords=boxes[source], xytext=(1.0, 0.7),
                        textcoords=boxes[source],
                        arrowprops=dict(arrow, connectionstyle=f"arc3,rad={-1.2 - 0.4 * count}"))
            ax.annotate(label, xy=(1.0, 0.5), xycoords=boxes[source], fontsize=7, color=color,
                        xytext=(24 + 0 * count, 12 - 10 * count), textcoords="offset points",
                        va="center")
            continue
        count = pair_count.get((source, sink), 0)
        pair_count[(source, sink)] = count + 1
        down = names.index(sink) > names.index(source)
        ax.annotate("", xy=(0.25 + 0.05 * count, 1.0 if down else 0.0), xycoords=boxes[sink],
                    xytext=(0.25 + 0.05 * count, 0.0 if down else 1.0),
                    textcoords=boxes[source],
                    arrowprops=dict(arrow, connectionstyle=f"arc3,rad={0.3 + 0.1 * count}"))
        middle = -(names.index(source) + names.index(sink)) / 2
        ax.text(0.02, middle - 0.12 * count + 0.12, f"{source} -> {sink}: {label}", fontsize=7,
                color=color, va="center")
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, bbox_inches="tight")
    return buffer.getvalue()


def _render(deps: "Dependences", fmt: str) -> bytes:
    renderer = available_renderer()
    if renderer == "dot":
        return _run_dot(dependences_dot(deps), fmt)
    if renderer == "matplotlib":
        return _draw_matplotlib(deps, fmt)
    raise RenderError(f"cannot draw the dependence graph as {fmt.upper()}: {INSTALL_HINT}; "
                      "the DOT text (`to_dot()`) and `to_text()` work without them")


def render_svg(deps: "Dependences") -> str:
    """The dependence graph as SVG text (RenderError when no renderer is available)."""
    return _render(deps, "svg").decode("utf-8")


def render_png(deps: "Dependences", path: str) -> None:
    """Write the dependence graph as PNG to ``path`` (RenderError when it cannot)."""
    data = _render(deps, "png")
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise RenderError(f"cannot write {path}: {exc}") from None


def repr_svg(deps: "Dependences") -> str | None:
    """Jupyter's SVG view; None (plain text is shown instead) when no renderer is available."""
    try:
        return render_svg(deps)
    except RenderError:
        return None


def repr_html(deps: "Dependences") -> str:
    """Jupyter's HTML view: the picture when one can be drawn, and the text lines."""
    text = f"<pre>{html.escape(dependences_text(deps))}</pre>"
    svg = repr_svg(deps)
    if svg is None:
        return text
    start = svg.find("<svg")  # drop the XML prolog and DOCTYPE, invalid inside HTML
    return f"<div>{svg[start:]}</div><details><summary>as text</summary>{text}</details>"


# --------------------------------------------------------------------------------------------
# Command-line output
# --------------------------------------------------------------------------------------------

FORMATS = ("text", "dot", "svg", "png")


def export_dependences(deps: "Dependences", fmt: str = "text",
                       path: str | None = None) -> str | None:
    """What ``polypipe deps`` shows: the dependences as ``text``, ``dot``, ``svg`` or ``png``.

    Text formats are returned when ``path`` is None, else written to ``path`` (and None is
    returned); ``png`` needs a ``path``. Raises :class:`RenderError` for an unknown format, a
    PNG without a path, or a picture with no renderer installed.
    """
    if fmt not in FORMATS:
        raise RenderError(f"unknown format {fmt!r}; formats are {', '.join(FORMATS)}")
    if fmt == "png":
        if path is None:
            raise RenderError("a PNG picture needs an output file: pass -o FILE.png")
        render_png(deps, path)
        return None
    text = {"text": lambda: dependences_text(deps) + "\n", "dot": lambda: dependences_dot(deps),
            "svg": lambda: render_svg(deps)}[fmt]()
    if path is None:
        return text
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise RenderError(f"cannot write {path}: {exc}") from None
    return None
