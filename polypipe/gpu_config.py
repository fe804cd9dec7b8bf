"""GPU mapping configurations and target limits, validated before any schedule is built."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ScheduleError


@dataclass(frozen=True)
class GpuTarget:
    """Limits of the GPU the schedule is built for (defaults: an H100, sm_90)."""

    name: str = "sm_90"
    shared_bytes: int = 227 * 1024     # per block, opt-in maximum
    registers_per_thread: int = 255
    max_threads: int = 1024
    sms: int = 132                     # streaming multiprocessors (H100 and H200 SXM: 132)

    def problems(self) -> list[str]:
        """What is wrong with these limits (nothing for H100, A100)."""
        found = [] if isinstance(self.name, str) else [
            f"target name={self.name!r} must be a string like 'sm_90'"]
        for label in ("shared_bytes", "registers_per_thread", "max_threads", "sms"):
            if not _is_int(getattr(self, label), 1):
                found.append(f"target {label}={getattr(self, label)!r} must be a positive "
                             "integer")
        return found


H100 = GpuTarget()
A100 = GpuTarget(name="sm_80", shared_bytes=163 * 1024, sms=108)


@dataclass(frozen=True)
class GpuConfig:
    """How a contraction is mapped to the GPU.

    ``block`` = (BM, BN): the output tile of one thread block (rows, columns of the two
    innermost output dimensions; outer output dimensions get one block each). ``threads`` =
    (TM, TN): the thread block shape; each thread computes (BM/TM) x (BN/TN) outputs.
    ``reduction`` = BK: the tile of the innermost reduction loop streamed through shared memory.
    ``shared_stages``: buffers in flight in shared memory (1 = no pipelining).
    ``register_stages``: fragment buffers in flight in registers (1 = no prefetch).
    ``blocks_per_sm``: the minimum resident blocks per SM asked of ptxas through
    ``__launch_bounds__`` (0 = ptxas's choice; 1 lets large tiles use up to 255 registers
    instead of spilling, at the cost of occupancy). It changes code generation only.
    ``fragment_vector``: each thread owns groups of this many consecutive rows (and columns)
    of the block tile: with 4, thread row ``ty`` owns rows ``4 ty .. 4 ty + 3``, then the same
    ``4 TM`` rows further on, and operand tiles are stored reduction-major so that one group of
    a fragment is one 16-byte shared-memory load. 1 gives the strided ownership (rows ``ty``,
    ``ty + TM``, ...). An axis whose per-thread tile is not a multiple of it uses 1. A pair
    ``(rows, columns)`` sets the two axes apart: ``threads=(8, 4), fragment_vector=(1, 2)``
    is the ownership of one warp's ``mma.sync`` accumulators (rows strided, columns in pairs).

    Tensor cores: ``mma="m16n8k16"`` with ``warps`` = (WM, WN) splits the block tile over a
    WM x WN grid of warps (the thread block is their 32 WM WN threads; ``threads`` is implied),
    each warp tile into 16 x 8 instruction tiles, the reduction tile into steps of 16
    (:mod:`polypipe.gpu_warp` plans it and refuses what cannot be honoured).
    """

    block: tuple[int, int] = (64, 64)
    threads: tuple[int, int] = (16, 16)
    reduction: int = 16
    shared_stages: int = 3
    register_stages: int = 2
    target: GpuTarget = H100
    blocks_per_sm: int = 0
    fragment_vector: int | tuple[int, int] = 4
    warps: tuple[int, int] = (2, 2)
    mma: str | None = None

    @property
    def thread_tile(self) -> tuple[int, int]:
        return (self.block[0] // self.threads[0], self.block[1] // self.threads[1])

    @property
    def fragment_vectors(self) -> tuple[int, int]:
        """The group of consecutive rows and of columns one thread owns (see the class)."""
        vectors = (self.fragment_vector if isinstance(self.fragment_vector, tuple)
                   else (self.fragment_vector,) * 2)
        return tuple(vector if tile % vector == 0 else 1
                     for tile, vector in zip(self.thread_tile, vectors))

    @property
    def thread_count(self) -> int:
        if self.mma is not None:
            return 32 * self.warps[0] * self.warps[1]
        return self.threads[0] * self.threads[1]

    def validate(self) -> None:
        """Refuse configurations that cannot be honoured, saying why."""
        problems = []
        for label, values in (("block", self.block), ("threads", self.threads)):
            if not isinstance(values, tuple) or len(values) != 2 or any(
                    not _is_int(v, 1) for v in values):
                problems.append(f"{label}={values!r} must be two positive integers (a tuple)")
        if not _is_int(self.reduction, 1):
            problems.append(f"reduction={self.reduction!r} must be a positive integer")
        for label, value in (("shared_stages", self.shared_stages),
                             ("register_stages", self.register_stages)):
            if not _is_int(value, 1):
                problems.append(f"{label}={value!r} must be at least 1 (an integer; "
                                "1 = no pipelining)")
        if not _is_int(self.blocks_per_sm, 0):
            problems.append(f"blocks_per_sm={self.blocks_per_sm!r} must be 0 (ptxas's choice) "
                            "or a positive integer")
        vectors = self.fragment_vector
        if not (_is_int(vectors, 1) or isinstance(vectors, tuple) and len(vectors) == 2
                and all(_is_int(v, 1) for v in vectors)):
            problems.append(f"fragment_vector={vectors!r} must be a positive integer (1 = "
                            "strided ownership) or two of them (rows, columns) as a tuple")
        if not isinstance(self.target, GpuTarget):
            problems.append(f"target={self.target!r} must be a GpuTarget (polypipe.H100, "
                            "polypipe.A100)")
        else:
            problems += self.target.problems()
        if not isinstance(self.warps, tuple) or len(self.warps) != 2 or any(
                not _is_int(v, 1) for v in self.warps):
            problems.append(f"warps={self.warps!r} must be two positive integers (a tuple)")
        if problems:
            raise ScheduleError("invalid GpuConfig: " + "; ".join(problems))
        if self.mma is not None:
            from .gpu_warp import warp_plan

            warp_plan(self)             # refuses, with the reason, what cannot be honoured
            return
        for axis, (tile, count) in enumerate(zip(self.block, self.threads)):
            if tile % count:
                raise ScheduleError(
                    f"invalid GpuConfig: block[{axis}]={tile} is not a multiple of "
                    f"threads[{axis}]={count}; each thread must own a whole number of outputs")
        if self.thread_count > self.target.max_threads:
            raise ScheduleError(f"invalid GpuConfig: {self.thread_count} threads per block "
                                f"exceed the {self.target.max_threads} of {self.target.name}")
        if self.register_stages > self.reduction:
            raise ScheduleError(
                f"invalid GpuConfig: register_stages={self.register_stages} exceeds the "
                f"{self.reduction} reduction steps of a shared tile (reduction={self.reduction})")

    def describe(self) -> str:
        text = (f"block={self.block} threads={self.threads} reduction={self.reduction} "
                f"shared_stages={self.shared_stages} register_stages={self.register_stages}")
        text += f" blocks_per_sm={self.blocks_per_sm}" if self.blocks_per_sm else ""
        if self.mma is not None:
            text = text.replace(f"threads={self.threads}", f"warps={self.warps}")
            return text + f" mma={self.mma}"
        return text + (f" fragment_vector={self.fragment_vector}"
                       if self.fragment_vector != 4 else "")


def _vector_text(vector) -> str:
    """``fragment_vector`` as ``parse_config`` reads it: ``2`` or ``1x2``."""
    return f"{vector[0]}x{vector[1]}" if isinstance(vector, tuple) else str(vector)


def _is_int(value, low: int) -> bool:
    """An int (not a bool) of at least ``low``, below 2**31 (no GPU tile is larger)."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < 2**31


def as_config(config) -> GpuConfig:
    """A validated GpuConfig from a GpuConfig, a dict of its fields, a ``parse_config``
    string or None (the default); ScheduleError for anything else."""
    if config is None:
        config = GpuConfig()
    elif isinstance(config, str):
        config = parse_config(config)
    elif isinstance(config, dict):
        from dataclasses import fields

        known = {f.name for f in fields(GpuConfig)}
        unknown = sorted(str(k) for k in config if k not in known)
        if unknown:
            raise ScheduleError(f"unknown GpuConfig field(s) {', '.join(unknown)}; known: "
                                f"{', '.join(sorted(known))}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
        config = GpuConfig(**values)
    elif not isinstance(config, GpuConfig):
        raise ScheduleError(f"the configuration must be a polypipe.GpuConfig (or a dict of its "
                            f"fields, or a string like 'block=64x64'), not "
                            f"{type(config).__name__}")
    config.validate()
    return config


def parse_config(text: str, base: GpuConfig | None = None) -> GpuConfig:
    """``"block=64x64,threads=16x16,reduction=16,shared_stages=3,register_stages=2"``.

    Unnamed fields keep ``base``'s values (the default configuration when not given).
    """
    from dataclasses import replace

    config = base or GpuConfig()
    values: dict = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ScheduleError(f"config item {part!r} must look like NAME=VALUE")
        try:
            pieces = value.lower().replace("*", "x").split("x")
            if key in ("block", "threads", "warps"):
                values[key] = tuple(int(p) for p in pieces)
            elif key == "fragment_vector":
                values[key] = int(value) if len(pieces) == 1 else tuple(map(int, pieces))
            elif key in ("reduction", "shared_stages", "register_stages", "blocks_per_sm"):
                values[key] = int(value)
            elif key == "mma":
                values[key] = None if value.strip().lower() in ("", "none") else value.strip()
            elif key == "target":
                targets = {"sm_90": H100, "h100": H100, "sm_80": A100, "a100": A100}
                values[key] = targets[value.lower()]
            else:
                raise ScheduleError(
                    f"unknown config item {key!r}; known: block, threads, reduction, "
                    "shared_stages, register_stages, blocks_per_sm, fragment_vector, warps, "
                    "mma, target")
        except (ValueError, KeyError):
            raise ScheduleError(f"config item {part!r} has a bad value") from None
    return replace(config, **values)


def format_config(config: GpuConfig) -> str:
    """The ``parse_config`` text of ``config`` (its inverse; the target is left out)."""
    text = (f"block={config.block[0]}x{config.block[1]},threads={config.threads[0]}x"
            f"{config.threads[1]},reduction={config.reduction},shared_stages="
            f"{config.shared_stages},register_stages={config.register_stages}")
    text += f",blocks_per_sm={config.blocks_per_sm}" if config.blocks_per_sm else ""
    if config.mma is not None:
        return text + f",warps={config.warps[0]}x{config.warps[1]},mma={config.mma}"
    return text + (f",fragment_vector={_vector_text(config.fragment_vector)}"
                   if config.fragment_vector != 4 else "")
