"""How one contraction's output elements are split over blocks, threads and fragments.

:class:`TileMapping` writes the mapping as isl expressions of an output element ``o``: its block
(``floor(o / B)`` per tiled dimension), its local coordinate in the block tile, the thread that
owns it and the slot of that thread's fragment it occupies. Every lowering pass reads these
expressions instead of recomputing them.
"""

from __future__ import annotations

from functools import cached_property

import islpy as isl

from . import ir
from .errors import InternalError
from .gpu_config import GpuConfig
from polypipe.analysis.contraction import Contraction


class TileMapping:
    """isl text for the mapping of one contraction under one configuration: which block,
    thread and fragment slot each output element goes to, as affine expressions."""

    def __init__(self, c: Contraction, config: GpuConfig):
        self.c = c
        self.cfg = config
        self.params = c.program.parameter_names
        self.prefix = f"[{', '.join(self.params)}] -> " if self.params else ""
        self.update = c.program.statement(c.update) if c.update is not None else None
        self.p = c.rank
        self.bm, self.bn = config.block
        self.tm, self.tn = config.threads
        self.rm, self.rn = config.thread_tile
        self.vm, self.vn = config.fragment_vectors
        self.bk = config.reduction
        # Reduction steps a register fragment holds: one for CUDA cores, an instruction's
        # k for tensor cores (ldmatrix and mma.sync take 16 k at a time).
        self.kg = _instruction_k(config)
        # Tensor cores: the threads of each axis are warps of (8, 4) lanes, each warp owning a
        # contiguous part of the block tile (warp-blocked), inside which the ownership is the
        # interleaved one below; CUDA-core kernels are one "warp" per axis.
        self.wm, self.wn = config.warps if config.mma is not None else (1, 1)
        self.S = config.shared_stages
        self.R = config.register_stages
        self.rk = c.reduction_iterators[-1] if c.reduction_iterators else None
        self.r_outer = list(c.reduction_iterators[:-1])
        self.block_dims = [f"pp_b{d}" for d in range(self.p - 2)] + ["pp_bm", "pp_bn"]

    @property
    def pads_tiles(self) -> bool:
        """Whether partial tiles run whole (tensor cores: :mod:`polypipe.gpu_pad`)."""
        return self.kg > 1

    @cached_property
    def run_domain(self) -> isl.Set:
        """The update instances the kernel runs: the nest's, and with tensor cores those of
        whole tiles (:func:`polypipe.gpu_pad.padded_domain`)."""
        if not self.pads_tiles:
            return self.update.domain
        from .gpu_pad import padded_domain

        return padded_domain(self)

    # -- output element coordinates -> mapping ------------------------------------------------
    def update_element(self) -> list[str]:
        return [f"({it} + {off})" if off else it
                for it, off in zip(self.c.output_iterators, self.c.output_offsets)]

    def block_of(self, o: list[str]) -> list[str]:
        return o[:-2] + [f"floor(({o[-2]})/{self.bm})", f"floor(({o[-1]})/{self.bn})"]

    def local_m(self, o: list[str]) -> str:
        return f"(({o[-2]}) mod {self.bm})"

    def local_n(self, o: list[str]) -> str:
        return f"(({o[-1]}) mod {self.bn})"

    # A thread owns groups of ``v`` consecutive rows (columns), ``v * T`` apart: local row
    # ``l`` belongs to thread ``floor(l / v) mod T`` as its fragment row
    # ``v * floor(l / (v T)) + l mod v``; ``local_of`` is the inverse. With ``W`` warps along
    # the axis, warp ``floor(l / E)`` (``E`` = the tile over ``W``) owns ``l``, and inside
    # its part ``l mod E`` is owned that way by its ``T / W`` threads of the axis.
    def _axes(self, o: list[str]) -> list[tuple[str, int, int]]:
        """(local coordinate in the warp's part, group, threads of a warp) of the row and of
        the column axis."""
        return [(self._in_warp(self.local_m(o), 0), self.vm, self.tm // self.wm),
                (self._in_warp(self.local_n(o), 1), self.vn, self.tn // self.wn)]

    def _warp_tile(self, axis: int) -> tuple[int, int]:
        """(warps, extent of a warp's part) along ``axis``."""
        warps = (self.wm, self.wn)[axis]
        return warps, (self.bm, self.bn)[axis] // warps

    def _in_warp(self, local: str, axis: int) -> str:
        warps, extent = self._warp_tile(axis)
        return local if warps == 1 else f"(({local}) mod {extent})"

    def _warp_of(self, o: list[str]) -> list[str | None]:
        locals_ = (self.local_m(o), self.local_n(o))
        found = []
        for axis, local in enumerate(locals_):
            warps, extent = self._warp_tile(axis)
            found.append(None if warps == 1 else f"floor(({local})/{extent})")
        return found

    def thread_of(self, o: list[str]) -> list[str]:
        threads = []
        for axis, (warp, (local, vector, count)) in enumerate(zip(self._warp_of(o),
                                                                    self._axes(o))):
            inside = owner(local, vector, count)
            threads.append(inside if warp is None else f"({count} * {warp} + {inside})")
        return threads

    def fragment_of(self, o: list[str]) -> list[str]:
        return [fragment_index(*axis) for axis in self._axes(o)]

    def fragment_loops(self, o: list[str]) -> list[str]:
        """Schedule dimensions enumerating a thread's fragment: the group and the position in
        it as two loops, so that isl's AST has constant bounds (one loop over ``v * g + l``
        made isl emit thread-dependent bounds and guards, which leave register indices
        non-constant and the fragments in local memory)."""
        loops = []
        for local, vector, threads in self._axes(o):
            loops += ([fragment_index(local, vector, threads)] if vector == 1 else
                      [f"floor({local}/{vector * threads})", f"({local}) mod {vector}"])
        return loops

    def local_of(self, thread: str, fragment: str, axis: int) -> str:
        v, t = (self.vm, self.tm) if axis == 0 else (self.vn, self.tn)
        warps, extent = self._warp_tile(axis)
        if warps > 1:       # the warp's part, then the thread inside it
            t //= warps
            inside = self._local_in_warp(f"(({thread}) mod {t})", fragment, v, t)
            return f"{extent} * floor(({thread})/{t}) + {inside}"
        return self._local_in_warp(thread, fragment, v, t)

    @staticmethod
    def _local_in_warp(thread: str, fragment: str, v: int, t: int) -> str:
        if v == 1:
            return f"{thread} + {t} * {fragment}"
        return f"{v * t} * floor({fragment}/{v}) + {v} * {thread} + ({fragment}) mod {v}"

    def element_space(self) -> str:
        return f"{self.c.accumulator}[{', '.join(f'pp_o{d}' for d in range(self.p))}]"

    def element_vars(self) -> list[str]:
        return [f"pp_o{d}" for d in range(self.p)]

    def element_map(self, outputs: list[str]) -> isl.Map:
        """``{ C[o] -> [outputs(o)] }`` over the accumulator's element space."""
        return isl.Map(f"{self.prefix}{{ {self.element_space()} -> [{', '.join(outputs)}] }}")

    # -- helpers --------------------------------------------------------------------------
    def map_(self, text: str) -> isl.Map:
        try:
            return isl.Map(f"{self.prefix}{{ {text} }}")
        except isl.Error as exc:  # an internal bug: the text is generated here
            raise InternalError(f"bad isl text {text}: {exc}") from None

    def set_(self, text: str) -> isl.Set:
        return isl.Set(f"{self.prefix}{{ {text} }}")

    def update_instance(self) -> str:
        return f"{self.c.update}[{', '.join(self.update.iterators)}]"


def _instruction_k(config: GpuConfig) -> int:
    if config.mma is None:
        return 1
    from .gpu_mma import SHAPES

    return SHAPES[config.mma].k


def owner(local: str, vector: int, threads: int) -> str:
    """The thread (row or column) owning local coordinate ``local`` of the block tile."""
    if vector == 1:
        return f"({local} mod {threads})"
    return f"(floor({local}/{vector}) mod {threads})"


def fragment_index(local: str, vector: int, threads: int) -> str:
    """The owning thread's fragment index of local coordinate ``local``."""
    if vector == 1:
        return f"floor({local}/{threads})"
    return f"({vector} * floor({local}/{vector * threads}) + ({local}) mod {vector})"


def uses(relation: isl.Map, stmt: ir.Statement, iterator: str,
         dims: range | None = None) -> bool:
    """Whether the accessed element (or its subscripts ``dims``) changes with ``iterator``."""
    pma = isl.PwMultiAff.from_map(relation)
    position = stmt.iterators.index(iterator)
    for dim in dims if dims is not None else range(pma.dim(isl.dim_type.out)):
        for _, aff in pma.get_pw_aff(dim).get_pieces():
            if not aff.get_coefficient_val(isl.dim_type.in_, position).is_zero():
                return True
            for div in range(aff.dim(isl.dim_type.div)):
                inner = aff.get_div(div)
                if not inner.get_coefficient_val(isl.dim_type.in_, position).is_zero():
                    return True
    return False


def name_dims(s: isl.Set, names: list[str]) -> isl.Set:
    for pos, dim_name in enumerate(names):
        s = s.set_dim_name(isl.dim_type.set, pos, dim_name)
    return s
