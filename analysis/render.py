"""Show dependences: text lines, Graphviz DOT, SVG / PNG pictures, Jupyter display.

Before: ``deps = dependences(gemm.program)``. After ``print(dependences_text(deps))``::

    dependences of gemm (parameters NI, NK, NJ)
    flow    S0 -> S1  C  carried by: none  distance (i): (0)        { S0[i, j] -> S1[i' = i, ...
    flow    S1 -> S1  C  carried by: k     distance (i, k, j): (0, 1, 0)  { S1[i, k, j] -> ...
    ...
    loops:
      i  around S0, S1  parallel
      k  around S1      sequential: carries flow C, anti C, output C

Pictures use the Graphviz ``dot`` program when it is on PATH, else matplotlib (a dependency of
polypipe, drawing the networkx graph); with neither, :class:`RenderError` says what to install.

Every picture polypipe writes (dependence graphs here, timelines in :mod:`polypipe.timeline`)
carries one provenance line, ``polypipe provenance: ... sha256 <hex>``, the hash of the text it
was drawn from (the DOT text of a dependence graph, the text timeline of a timeline): an XML
comment in an SVG, a ``Description`` text chunk in a PNG. :func:`read_provenance` reads it back,
so a committed picture can be checked against today's model without comparing pixels. SVG
written through matplotlib is deterministic (fixed ``svg.hashsalt``, no date).
"""

from __future__ import annotations

import hashlib
import html
import io
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from polypipe.errors import ArgumentError, PolypipeError, public

if TYPE_CHECKING:  # only for annotations: dependences imports this module lazily
    from polypipe.analysis.dependences import Dependence, Dependences

KIND_STYLE = {  # kind -> (DOT color, DOT style, matplotlib line style)
    "flow": ("#1f1f1f", "solid", "solid"),
    "anti": ("#c0392b", "dashed", "dashed"),
    "output": ("#2563c9", "dotted", "dotted"),
}
INSTALL_HINT = ("install Graphviz (the `dot` program: `apt-get install graphviz`, `brew install "
                "graphviz` or `conda install graphviz`) or matplotlib (`pip install matplotlib`; "
                "it is a dependency of polypipe, so reinstalling polypipe brings it back)")


class RenderError(PolypipeError):
    """A picture was asked for but no renderer (Graphviz, matplotlib) is available or it failed,
    or an output file cannot be written."""


# --------------------------------------------------------------------------------------------
# Provenance, deterministic matplotlib output, writing files
# --------------------------------------------------------------------------------------------

def _require_dependences(deps, function: str) -> None:
    """ArgumentError unless ``deps`` is what :func:`polypipe.dependences` returns."""
    from polypipe.analysis.dependences import Dependences, type_name

    if not isinstance(deps, Dependences):
        raise ArgumentError(f"{function}() takes the Dependences that polypipe.dependences() "
                            f"returns, not {type_name(deps)}")


def _require_path(path, function: str) -> str:
    """``path`` as a string: a str or an os.PathLike (ArgumentError otherwise)."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise ArgumentError(f"{function}(): the output path must be a file name (a non-empty "
                            f"str or pathlib.Path), got {path!r}"[:300])
    if "\x00" in path:
        raise RenderError(f"cannot write {path!r}: a file name cannot contain a NUL character")
    return path


PROVENANCE_PREFIX = "polypipe provenance:"
_PROVENANCE = re.compile(rb"polypipe provenance:[^\n<>]*?sha256 ([0-9a-f]{64})")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def provenance_line(what: str, source: str, text: str) -> str:
    """``polypipe provenance: <what>, drawn from <source> (sha256 <hash of text>)``."""
    return f"{PROVENANCE_PREFIX} {what}, drawn from {source} (sha256 {text_sha256(text)})"


def embed_provenance(data: bytes, fmt: str, line: str) -> bytes:
    """``data`` (an SVG or PNG picture) with ``line`` embedded, unless it holds it already.

    SVG: an XML comment as the first child of the ``<svg>`` element. PNG: a ``tEXt`` chunk
    ``Description`` right after the header chunk (matplotlib writes the same chunk from
    ``metadata={"Description": ...}``).
    """
    if line.encode() in data:
        return data
    if fmt == "svg":
        start = data.find(b"<svg")
        end = data.find(b">", start)
        if start < 0 or end < 0:
            raise RenderError("the renderer's SVG output has no <svg> element")
        comment = b"\n<!-- " + line.replace("--", "- -").encode() + b" -->"
        return data[:end + 1] + comment + data[end + 1:]
    if fmt == "png":
        if not data.startswith(_PNG_SIGNATURE):
            raise RenderError("the renderer's PNG output is not a PNG")
        header_end = 8 + 12 + struct.unpack(">I", data[8:12])[0]   # signature, then IHDR
        body = b"Description\x00" + line.encode("latin-1")
        chunk = (struct.pack(">I", len(body)) + b"tEXt" + body
                 + struct.pack(">I", zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF))
        return data[:header_end] + chunk + data[header_end:]
    raise RenderError(f"cannot embed provenance in a {fmt!r} file")


def read_provenance(data: bytes) -> str | None:
    """The sha256 recorded in a picture polypipe wrote (SVG or PNG bytes, or SVG text), else
    None."""
    if isinstance(data, str):
        data = data.encode("utf-8", errors="replace")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArgumentError(f"read_provenance() takes the bytes of a picture, not "
                            f"{type(data).__name__}")
    data = bytes(data)
    if data.startswith(_PNG_SIGNATURE):
        position = 8
        while position + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[position:position + 8])
            body = data[position + 8:position + 8 + length]
            if kind == b"tEXt":
                match = _PROVENANCE.search(body.partition(b"\x00")[2])
                if match:
                    return match.group(1).decode()
            position += 12 + length
        return None
    match = _PROVENANCE.search(data)
    return match.group(1).decode() if match else None


def save_figure(fig, fmt: str, line: str, **options) -> bytes:
    """A matplotlib figure as SVG or PNG bytes: deterministic SVG, provenance embedded."""
    import matplotlib

    buffer = io.BytesIO()
    if fmt == "svg":
        with matplotlib.rc_context({"svg.hashsalt": "polypipe", "svg.fonttype": "path"}):
            fig.savefig(buffer, format="svg", metadata={"Date": None}, **options)
    else:
        fig.savefig(buffer, format=fmt, metadata={"Description": line}, **options)
    return embed_provenance(buffer.getvalue(), fmt, line)


def check_writable(path: str) -> None:
    """Refuse an output path whose folder does not exist, or that is a folder, before any work."""
    path = _require_path(path, "check_writable")
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise RenderError(f"cannot write {path}: the folder {str(folder) or '.'} does not exist")
    if target.is_dir():
        raise RenderError(f"cannot write {path}: it is a folder")


def write_output(path: str, data: "bytes | str") -> None:
    """Write ``data`` to ``path``; any OSError becomes a RenderError naming the file."""
    path = _require_path(path, "write_output")
    check_writable(path)
    try:
        if isinstance(data, str):
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(data)
        else:
            with open(path, "wb") as handle:
                handle.write(data)
    except (OSError, ValueError) as exc:
        raise RenderError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") \
            from None


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def dependences_text(deps: "Dependences", loops: bool = True) -> str:
    """One aligned line per dependence; then each loop, parallel or what it carries."""
    from polypipe.analysis.dependences import strip_parameters

    _require_dependences(deps, "to_text")
    if not isinstance(loops, bool):
        raise ArgumentError(f"to_text(): loops must be True or False, got {loops!r}"[:200])

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
    _require_dependences(deps, "to_dot")
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


def _draw_matplotlib(deps: "Dependences", fmt: str, provenance: str) -> bytes:
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
            # A rectangular loop out of the box's right side, nested loops further out.
            arm = 12 + 9 * count
            ax.annotate("", xy=(1.0, 0.3), xycoords=boxes[source], xytext=(1.0, 0.7),
                        textcoords=boxes[source],
                        arrowprops=dict(arrow, connectionstyle=f"arc,angleA=0,angleB=0,"
                                                               f"armA={arm},armB={arm},rad=3"))
            ax.annotate(label, xy=(1.0, 0.5), xycoords=boxes[source], fontsize=7, color=color,
                        xytext=(48, 10 - 10 * count), textcoords="offset points",
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
    return save_figure(fig, fmt, provenance, bbox_inches="tight", dpi=150)


def dependences_provenance(deps: "Dependences") -> str:
    """The provenance line of a dependence picture: the sha256 of its DOT text."""
    return provenance_line(f"dependence graph of {deps.program.name}", "its DOT text",
                           dependences_dot(deps))


def _render(deps: "Dependences", fmt: str) -> bytes:
    _require_dependences(deps, f"to_{fmt}")
    renderer = available_renderer()
    line = dependences_provenance(deps)
    if renderer == "dot":
        return embed_provenance(_run_dot(dependences_dot(deps), fmt), fmt, line)
    if renderer == "matplotlib":
        return _draw_matplotlib(deps, fmt, line)
    raise RenderError(f"cannot draw the dependence graph as {fmt.upper()}: {INSTALL_HINT}; "
                      "the DOT text (`to_dot()`) and `to_text()` work without them")


def render_svg(deps: "Dependences") -> str:
    """The dependence graph as SVG text (RenderError when no renderer is available)."""
    return _render(deps, "svg").decode("utf-8")


def render_png(deps: "Dependences", path: str) -> None:
    """Write the dependence graph as PNG to ``path`` (RenderError when it cannot)."""
    _require_dependences(deps, "to_png")
    path = _require_path(path, "to_png")
    check_writable(path)
    write_output(path, _render(deps, "png"))


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
EXTENSIONS = {".txt": "text", ".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png"}


def output_format(fmt: str | None, path: str | None) -> str:
    """The format to write: ``fmt`` if given, else the one ``path``'s extension names.

    Without a path the default is ``text``. An explicit format that contradicts a known
    extension (``--format text -o g.svg``) is refused, as is a path whose extension names no
    format when no format is given.
    """
    if fmt is not None and (not isinstance(fmt, str) or fmt not in FORMATS):
        raise RenderError(f"unknown format {fmt!r}; formats are {', '.join(FORMATS)}")
    if path is None:
        return fmt or "text"
    path = _require_path(path, "output_format")
    extension = Path(path).suffix.lower()
    implied = EXTENSIONS.get(extension)
    known = ", ".join(EXTENSIONS)
    if fmt is None:
        if implied is None:
            raise RenderError(f"cannot tell the format of {path!r} from its extension "
                              f"({extension or 'none'}); use one of {known} or name the "
                              f"format with --format ({', '.join(FORMATS)})")
        return implied
    if implied is not None and implied != fmt:
        raise RenderError(f"--format {fmt} contradicts the output file {path!r}, whose "
                          f"extension {extension} means {implied}; drop --format or rename "
                          "the file")
    return fmt


@public
def export_dependences(deps: "Dependences", fmt: str | None = None,
                       path: str | None = None) -> str | None:
    """What ``polypipe deps`` shows: the dependences as ``text``, ``dot``, ``svg`` or ``png``.

    ``fmt=None`` takes the format from ``path``'s extension (``.txt``, ``.dot``/``.gv``,
    ``.svg``, ``.png``; text without a path). Text formats are returned when ``path`` is None,
    else written to ``path`` (and None is returned); ``png`` needs a ``path``. Raises
    :class:`RenderError` for an unknown format, a format that contradicts the extension, a PNG
    without a path, a missing output folder, or a picture with no renderer installed.
    """
    _require_dependences(deps, "export_dependences")
    if path is not None:
        path = _require_path(path, "export_dependences")
    fmt = output_format(fmt, path)
    if path is not None:
        check_writable(path)
    if fmt == "png":
        if path is None:
            raise RenderError("a PNG picture needs an output file: pass -o FILE.png")
        render_png(deps, path)
        return None
    text = {"text": lambda: dependences_text(deps) + "\n", "dot": lambda: dependences_dot(deps),
            "svg": lambda: render_svg(deps)}[fmt]()
    if path is None:
        return text
    write_output(path, text)
    return None
