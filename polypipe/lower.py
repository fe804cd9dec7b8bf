"""The GPU compiler's table of contents: a contraction nest -> a :class:`GpuKernel`.

:func:`lower_contraction` runs these passes in order, each a function over the typed GPU IR
(:mod:`polypipe.gpu_ir`) that adds to the :class:`~polypipe.gpu_ir.Draft` and logs one line:

0. fuse                 (:mod:`polypipe.gpu_fusion`, done by the caller): element-wise
                        consumers of a contraction join its nest as epilogues, when proved;
1. recognise            (:func:`polypipe.analysis.contraction.recognise`, done by the caller):
                        the accumulator, output and reduction iterators, the update;
2. select_operands      (:mod:`polypipe.gpu_promote`): the reads streamed through shared
                        memory, from ``pipelinable_reads``' verdicts;
3. place_accumulator    (:mod:`polypipe.gpu_accumulate`): ``<C>_r``, each thread's outputs;
4. promote_to_shared    (:mod:`polypipe.gpu_promote`, :mod:`polypipe.gpu_layout`): per operand,
                        its multi-stage shared buffer, tile layout and ``cp.async`` copies;
5. register_fragment    (:mod:`polypipe.gpu_promote`): per operand, its multi-stage register
                        fragment and the loads that fill it ``R - 1`` steps ahead;
6. rewrite_update, rewrite_element_statements, copy_accumulator
                        (:mod:`polypipe.gpu_accumulate`): the nest on the registers;
7. synchronise          (:mod:`polypipe.gpu_sync`): commits, waits, barriers;
8. schedule_tree        (:mod:`polypipe.gpu_tree`): blocks, pipeline iterations, phases and
                        threads, built with isl's schedule-tree API from the placements.

Proving (:func:`polypipe.analysis.gpu_proof.prove_kernel`) and printing
(:mod:`polypipe.codegen.cuda_printer`) follow in :func:`polypipe.optimize`. Time inside one
(block, outer reduction iteration) is described in :mod:`polypipe.gpu_promote` and
:mod:`polypipe.gpu_sync`.
"""

from __future__ import annotations

from dataclasses import replace

from . import ir
from .gpu_accumulate import (copy_accumulator, place_accumulator, rewrite_element_statements,
                             rewrite_update)
from .gpu_config import GpuConfig
from .gpu_ir import Draft, ElementPlacement, GpuKernel, LoopPlacement, Part
from .gpu_mapping import TileMapping
from .gpu_promote import promote_to_shared, register_fragment, select_operands
from .gpu_sync import synchronise
from .gpu_tree import coordinates, resolve, schedule_tree
from polypipe.analysis.contraction import Contraction


def lower_contraction(c: Contraction, config: GpuConfig, kernel_name: str) -> GpuKernel:
    """The GPU program of one contraction nest (see the module docstring)."""
    config.validate()
    tx = TileMapping(c, config)
    program = c.program
    draft = Draft({a.name for a in program.arrays} | {s.name for s in program.statements},
                  list(program.arrays))
    if c.update is None:
        return _lower_elementwise(tx, draft, kernel_name)
    select_operands(tx, draft)
    acc = place_accumulator(tx, draft)
    register_reads = {}
    for position, op in enumerate(draft.operands):
        layout = promote_to_shared(tx, draft, op, 2 * position)
        register_reads[op.read_index] = register_fragment(tx, draft, op, layout,
                                                          2 * position + 1)
    rewrite_update(tx, draft, acc, register_reads)
    rewrite_element_statements(tx, draft, acc)
    copy_in, copy_out = copy_accumulator(tx, draft, acc)
    waits_after_commit = synchronise(tx, draft)
    return _finish(tx, draft, kernel_name, acc.buffer, copy_in, copy_out, waits_after_commit)


def _lower_elementwise(tx: TileMapping, draft: Draft, kernel_name: str) -> GpuKernel:
    """An element-wise nest: blocks and threads over its output elements, no pipeline."""
    c = tx.c
    for rank, name in enumerate(c.statements):
        stmt = c.program.statement(name)
        draft.add(stmt, ElementPlacement(f"{name}[{', '.join(stmt.iterators)}]",
                                         c.element_of[name],
                                         Part.EPILOGUE if name in c.epilogues else Part.INIT,
                                         rank))
    draft.log.append(f"elementwise: blocks and threads over {c.accumulator}'s elements")
    return _finish(tx, draft, kernel_name, "", False, False, frozenset())


def _finish(tx: TileMapping, draft: Draft, kernel_name: str, accumulator: str, copy_in: bool,
            copy_out: bool, waits_after_commit: frozenset) -> GpuKernel:
    """Freeze the draft: the program with its schedule tree, and the coordinates."""
    c = tx.c
    program = replace(
        c.program, name=kernel_name, statements=tuple(draft.statements.values()),
        syncs=tuple(draft.syncs),
        arrays=tuple(a for a in draft.arrays if a.name != c.expanded_array),
        launch=ir.Launch((tx.tm, tx.tn)),
        transforms=c.program.transforms + (f"gpu_map({tx.cfg.describe()})",))
    where = {name: resolve(tx, p) for name, p in draft.placements.items()}
    program = replace(program, schedule=schedule_tree(program.domain, tx, draft.placements,
                                                      where))

    def loop_only(values):
        return lambda p, w: values(p) if isinstance(p, LoopPlacement) else None

    return GpuKernel(
        program, c, tx.cfg, tuple(draft.operands), accumulator, copy_in, copy_out,
        tuple(draft.unpromoted),
        block_of=coordinates(tx, draft.placements, where, lambda p, w: w.block),
        thread_of=coordinates(tx, draft.placements, where, lambda p, w: w.thread),
        iteration_of=coordinates(tx, draft.placements, where,
                                 loop_only(lambda p: p.outer + (p.tile,))),
        phase_of=coordinates(tx, draft.placements, where,
                             loop_only(lambda p: (str(int(p.phase)),))),
        waits_after_commit=waits_after_commit, copy_layouts=tuple(draft.copy_layouts),
        vector_groups=tuple(draft.vector_groups), log=tuple(draft.log))
