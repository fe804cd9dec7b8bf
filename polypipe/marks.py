"""Schedule-tree marks: the one place their names are made and read.

A mark node names what the band below it becomes on the GPU. Transformations
(:func:`polypipe.transform.mark_band`), the GPU mapping (:mod:`polypipe.lower`) and the printers
(:mod:`polypipe.codegen.cuda_printer`) all go through :func:`mark_name` and :func:`parse_mark`,
so a mark one of them writes is a mark the others read.

* ``block``: the band's members are block coordinates (``blockIdx``);
* ``thread`` or ``thread:<depth>``: the band's members are thread coordinates (``threadIdx``).
  ``<depth>`` is the schedule depth of the band, which is the index isl gives the loop
  iterators (``pp_c<depth>``), so a printer finds the thread loops by name even where isl
  printed no loop for a thread dimension of extent 1. The lowering writes the depth;
  :func:`~polypipe.transform.mark_band` writes plain ``thread`` (later transformations may
  add bands above it), which the legality check reads. A user's marked program is not yet
  printed as CUDA (the CUDA printer refuses a thread mark without its depth as an internal
  error): only :func:`polypipe.optimize`'s kernels are;
* ``vector:<lanes>``: a lane loop whose iterations may be one 16-byte access where alignment
  and contiguity are proved (:mod:`polypipe.analysis.alignment`);
* ``warp``: a statement's per-thread loops that the warp executes as one collective (a
  tensor-core kernel's fragment loads and updates of one k-step: ``ldmatrix`` and
  ``mma.sync``, :mod:`polypipe.codegen.cuda_mma`).
"""

from __future__ import annotations

from dataclasses import dataclass

import islpy as isl

from .errors import InternalError

BLOCK, THREAD, VECTOR, WARP = "block", "thread", "vector", "warp"
KINDS = (BLOCK, THREAD, VECTOR, WARP)
USER_KINDS = (BLOCK, THREAD)   # what mark_band accepts


@dataclass(frozen=True)
class Mark:
    kind: str
    value: int | None = None   # the thread band's depth, or the vector's lanes

    def __str__(self) -> str:
        return mark_name(self.kind, self.value)


def mark_name(kind: str, value: int | None = None) -> str:
    if kind not in KINDS or (kind in (BLOCK, WARP) and value is not None) or (
            kind == VECTOR and value is None):
        raise InternalError(f"no mark {kind!r} with value {value!r}")
    return kind if value is None else f"{kind}:{value}"


def parse_mark(name: str) -> Mark | None:
    """The mark a node's name stands for; None for a mark polypipe does not know."""
    kind, _, value = name.partition(":")
    if kind not in KINDS:
        return None
    if not value:
        return Mark(kind) if kind != VECTOR else None
    if kind in (BLOCK, WARP) or not value.isdigit():
        return None
    return Mark(kind, int(value))


def mark_of(node: isl.AstNode | isl.ScheduleNode) -> Mark | None:
    """The mark of an AST or schedule-tree mark node."""
    identifier = node.mark_get_id()
    return parse_mark(identifier.get_name())
