"""Regenerate the pictures committed under docs/ from today's examples.

    python docs/make_pictures.py           # rewrite every picture
    python docs/make_pictures.py --check   # list the stale ones (exit 1 if any), write nothing

Each picture embeds the sha256 of the text it was drawn from (the DOT text of a dependence
graph, the text timeline of a pipeline timeline; see ``polypipe.analysis.render``), and
``tests/test_pictures.py`` recomputes that text from the example to tell when a picture is
stale. The pixels depend on the renderer (Graphviz ``dot`` when on PATH, else matplotlib) and
its version; the hash does not.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Picture:
    path: str                  # relative to the repository root
    example: str               # FILE.py or FILE.py:KERNEL, relative to the root
    kind: str                  # "dependences" or "timeline"
    config: str = ""           # timeline: the GpuConfig text (polypipe.gpu_config.parse_config)
    sizes: str = ""            # timeline: every size, NAME=VALUE,...
    kernel: int = 0            # timeline: which GPU kernel of the optimized program

    @property
    def format(self) -> str:
        return Path(self.path).suffix.lstrip(".")

    def command(self) -> str:
        """The polypipe command that draws the same picture."""
        if self.kind == "dependences":
            return f"polypipe deps {self.example} -o {self.path}"
        return (f"polypipe pipeline {self.example} --config {self.config} --size {self.sizes} "
                f"--timeline {self.path}")


PICTURES = (
    Picture("docs/gemm_dependences.svg", "examples/gemm.py", "dependences"),
    Picture("docs/gemm_dependences.png", "examples/gemm.py", "dependences"),
    # The README's `polypipe pipeline` example draws this timeline.
    Picture("docs/gemm_timeline.svg", "examples/gemm.py", "timeline",
            config="shared_stages=3", sizes="NI=128,NJ=128,NK=96"),
)


def _kernel(picture: Picture):
    from polypipe.cli import single_kernel

    target = picture.example
    path, colon, name = target.partition(":")
    return single_kernel(str(ROOT / path) + (colon + name if colon else ""))


def _timeline(picture: Picture):
    from polypipe.gpu_config import parse_config
    from polypipe.inputs import parameter_values, parse_sizes
    from polypipe.optimize import optimize
    from polypipe.timeline import pipeline_timeline

    program = _kernel(picture).program
    kernel = optimize(program, parse_config(picture.config)).kernels[picture.kernel]
    sizes = parameter_values(program, parse_sizes(picture.sizes))
    return kernel, pipeline_timeline(kernel, sizes)


def source_text(picture: Picture) -> str:
    """The text the picture is drawn from, whose sha256 the picture must hold."""
    if picture.kind == "dependences":
        from polypipe.analysis.dependences import dependences
        from polypipe.analysis.render import dependences_dot

        return dependences_dot(dependences(_kernel(picture).program))
    from polypipe.timeline import format_timeline

    return format_timeline(*_timeline(picture))


def draw(picture: Picture) -> bytes:
    """The picture's bytes as polypipe draws it today."""
    if picture.kind == "dependences":
        from polypipe.analysis.dependences import dependences
        from polypipe.analysis.render import _render

        return _render(dependences(_kernel(picture).program), picture.format)
    from polypipe.timeline import timeline_picture

    return timeline_picture(*_timeline(picture), picture.format)


def stale(picture: Picture) -> str | None:
    """Why the committed picture does not match today's example, or None when it does."""
    from polypipe.analysis.render import read_provenance, text_sha256

    file = ROOT / picture.path
    if not file.is_file():
        return f"{picture.path} is missing"
    recorded = read_provenance(file.read_bytes())
    if recorded is None:
        return f"{picture.path} holds no polypipe provenance line"
    expected = text_sha256(source_text(picture))
    if recorded != expected:
        return (f"{picture.path} was drawn from other {picture.kind} text (sha256 "
                f"{recorded[:12]}..., today {expected[:12]}...)")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only report stale pictures (exit status 1 if any)")
    options = parser.parse_args(argv)
    if options.check:
        problems = [p for p in map(stale, PICTURES) if p]
        for problem in problems:
            print(problem)
        print("all pictures are up to date" if not problems else
              "regenerate them with: python docs/make_pictures.py")
        return 1 if problems else 0
    for picture in PICTURES:
        (ROOT / picture.path).write_bytes(draw(picture))
        print(f"wrote {picture.path}  (same as: {picture.command()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
