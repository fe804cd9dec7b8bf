"""The pictures committed under docs/ are those today's examples draw.

Each committed picture embeds the sha256 of the text it was drawn from (the DOT text of a
dependence graph, the text timeline of a pipeline timeline); this test recomputes that text
from the example and compares hashes, which is independent of the renderer and of the
matplotlib / freetype / Graphviz versions, unlike a pixel comparison. The list of pictures and
how each is made live in docs/make_pictures.py; regenerate with `python docs/make_pictures.py`.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from polypipe.analysis.render import read_provenance, text_sha256

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("make_pictures", ROOT / "docs" / "make_pictures.py")
make_pictures = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("make_pictures", make_pictures)   # dataclasses look the module up
_spec.loader.exec_module(make_pictures)
REGENERATE = "python docs/make_pictures.py"


@pytest.mark.parametrize("picture", make_pictures.PICTURES, ids=lambda p: p.path)
def test_committed_picture_is_current(picture):
    file = ROOT / picture.path
    assert file.is_file(), f"{picture.path} is missing; regenerate it with: {REGENERATE}"
    data = file.read_bytes()
    signature = b"\x89PNG" if picture.format == "png" else b"<svg"
    assert signature in data[:600], f"{picture.path} is not a {picture.format.upper()} picture"
    recorded = read_provenance(data)
    assert recorded is not None, (f"{picture.path} holds no polypipe provenance line; "
                                  f"regenerate it with: {REGENERATE}")
    expected = text_sha256(make_pictures.source_text(picture))
    assert recorded == expected, (
        f"{picture.path} is stale: it was drawn from {picture.kind} text with sha256 "
        f"{recorded}, today's {picture.example} gives {expected}; regenerate the pictures "
        f"with: {REGENERATE}")


def test_every_picture_under_docs_is_covered():
    listed = {p.path for p in make_pictures.PICTURES}
    on_disk = {str(f.relative_to(ROOT)) for f in (ROOT / "docs").iterdir()
               if f.suffix in (".svg", ".png")}
    assert on_disk <= listed, (f"pictures not listed in docs/make_pictures.py (so not checked): "
                               f"{sorted(on_disk - listed)}")


def test_docs_reference_the_committed_pictures():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in re.findall(r"docs/[\w./-]+\.(?:svg|png)", text):
        assert path in {p.path for p in make_pictures.PICTURES}, path


def test_a_stale_picture_is_reported(tmp_path, monkeypatch):
    """The check is not vacuous: a picture drawn from other text is reported as stale."""
    import shutil

    picture = make_pictures.PICTURES[0]
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "docs").mkdir()
    data = (ROOT / picture.path).read_bytes()
    (tmp_path / picture.path).write_bytes(data.replace(read_provenance(data).encode(),
                                                       b"0" * 64))
    monkeypatch.setattr(make_pictures, "ROOT", tmp_path)
    assert "was drawn from other dependences text" in make_pictures.stale(picture)
    changed = make_pictures.source_text(picture).replace("C[i, j] *= beta", "C[i, j] *= 2")
    assert text_sha256(changed) != read_provenance(data)


def test_the_check_mode_reports_up_to_date(capsys):
    assert make_pictures.main(["--check"]) == 0
    assert "all pictures are up to date" in capsys.readouterr().out
