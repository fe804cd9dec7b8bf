"""Grouped bar charts of benchmark records (``gpu.py`` and ``cpu.py`` draw theirs with it)."""

from __future__ import annotations

from pathlib import Path


def grouped_bars(png: Path, names: list[str], impls: list[str], value, ylabel: str,
                 title: str, redraw: str, log_scale: bool = False) -> Path | None:
    """Bars of ``value(name, impl)`` (0 where absent) per name, one colour per
    implementation, written to ``png``; None, saying ``redraw`` (the command that draws it
    later), where matplotlib is not importable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib not importable: run `{redraw}` where it is")
        return None
    fig, ax = plt.subplots(figsize=(max(8, len(names) * 0.8), 5))
    width = 0.8 / max(len(impls), 1)
    for index, impl in enumerate(impls):
        xs = [n + (index - (len(impls) - 1) / 2) * width for n in range(len(names))]
        ax.bar(xs, [value(name, impl) for name in names], width, label=impl)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    if log_scale:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    print(f"wrote {png}")
    return png
