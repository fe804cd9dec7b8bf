"""Kernel fusion (the pass before lowering): an element-wise nest that consumes a contraction's
output joins the contraction's kernel as its epilogue.

Memory-bound consumers belong in their producer's kernel (the first lesson of XLA's fusion
study): ``mm`` then ``C = max(C + bias, 0)`` as two kernels writes and rereads all of ``C``;
fused, the bias and the activation are applied to the accumulator registers before the one
copy-out. A nest ``B`` that follows a contraction nest ``A`` is fused when

1. ``A + B`` is recognised as one contraction (:func:`~polypipe.analysis.contraction.recognise`)
   whose epilogues include all of ``B``: every instance of ``B`` touches exactly one element
   of ``A``'s accumulator, so it can run where that element is final, in the thread that
   holds it; and
2. the fused kernel is proved equal to the source (:func:`~polypipe.analysis.gpu_proof.
   prove_kernel`: every read sees the value it sees in Python, every final value is Python's),
   which is what "each element is final there and nothing reads the intermediate" means.

A pair that fails either test stays two kernels, and the decision says why
(``OptimizedProgram.describe()`` lists every pair). Without the proof (``prove=False``) nothing
is fused: fusion is a transformation, and transformations are applied only when proved.
"""

from __future__ import annotations

from dataclasses import dataclass

from polypipe import ir
from polypipe.analysis.contraction import Contraction, _where, recognise
from polypipe.errors import LegalityError, ScheduleError


@dataclass(frozen=True)
class FusionDecision:
    """Whether the nest starting at ``consumer`` joined the kernel of ``producer``, and why."""

    producer: str        # the producer nest's update statement, as "S1 (line 7: ...)"
    consumer: str        # the consumer nest's first statement
    fused: bool
    reason: str

    def __str__(self) -> str:
        verdict = "fused into" if self.fused else "not fused with"
        return f"{self.consumer} {verdict} {self.producer}: {self.reason}"


def fusion_candidate(program: ir.Program, producer: Contraction, group: list[ir.Statement],
                     nest: list[ir.Statement]) -> tuple[FusionDecision, Contraction | None] | None:
    """Whether ``nest`` may join ``group``, the nest of ``producer``, as epilogues (``fused``:
    still to be proved), why, and the contraction of the two together; None when the producer
    has no reduction (there is nothing to fuse into)."""
    if producer.update is None:
        return None
    update = _where(program.statement(producer.update))
    consumer = _where(nest[0])
    try:
        alone = recognise(program, nest)
    except (ScheduleError, LegalityError):
        alone = None
    if alone is not None and alone.update is not None:
        return FusionDecision(update, consumer, False, "it is a contraction of its own"), None
    try:
        merged = recognise(program, group + nest)
    except (ScheduleError, LegalityError) as refusal:
        return FusionDecision(update, consumer, False,
                              f"not one contraction with it: {refusal}"), None
    if merged.update != producer.update or not {s.name for s in nest} <= set(merged.epilogues):
        return FusionDecision(update, consumer, False,
                              "its statements are not epilogues of the producer's update"), None
    return FusionDecision(update, consumer, True,
                          f"each instance touches one element of {merged.accumulator}: applied "
                          "in the registers before the copy-out, proved"), merged
