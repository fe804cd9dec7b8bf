"""The machine code of a compiled kernel: its main loop found from the SASS control flow, and
the instruction mix of one iteration.

``nvdisasm`` (the ``nvidia-cuda-nvdisasm`` wheel of the test extra, or a CUDA toolkit on PATH)
turns a cubin into SASS. Each backward branch closes a loop that spans the addresses from its
target to the branch; the *main loop* is the innermost loop that issues asynchronous copies
(LDGSTS), waits at a barrier and multiplies-adds: one pipeline iteration of the steady state.
Where there is no pipeline (one shared stage has no LDGSTS in a loop of its own), it is the
innermost loop with the most multiply-adds. Counts are static: every instruction between the
loop's head and its back branch once, guarded or not, so they are per iteration of the path
that runs them all (the steady state's).

This is what the tests check and the static estimate (:mod:`polypipe.codegen.estimate`)
reads: local-memory traffic, copy and shared-load widths, multiply-adds per shared-load
instruction, integer instructions per multiply-add.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from polypipe.errors import CodegenError

_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);")
_LABEL = re.compile(r"^(\.L_x_\d+):")
_FUNCTION = re.compile(r"^\s*\.text\.(\S+):")
_TARGET = re.compile(r"`\((\.L_x_\d+)\)")

# Per-thread integer arithmetic (the ALU and the FMA pipe's integer multiply-add); moves
# (IMAD.MOV, MOV) and the uniform datapath (U*) are counted apart.
INTEGER = frozenset({"IADD3", "IMAD", "LEA", "SHF", "LOP3", "ISETP", "IMNMX", "IABS", "SEL",
                     "IADD", "ISCADD", "SHL", "SHR", "BMSK", "BREV", "FLO", "POPC", "PRMT",
                     "I2F", "F2I", "IDP", "VIADD", "VIMNMX"})


@dataclass(frozen=True)
class Instruction:
    address: int
    opcode: str                 # with modifiers: "LDGSTS.E.BYPASS.128"
    operands: str
    predicate: str | None = None
    target: str | None = None   # the label a branch jumps to

    @property
    def base(self) -> str:
        return self.opcode.split(".")[0]


@dataclass(frozen=True)
class Function:
    name: str
    instructions: tuple[Instruction, ...]
    labels: dict[str, int] = field(default_factory=dict)   # label -> address


@dataclass(frozen=True)
class Loop:
    head: int    # address of the first instruction
    tail: int    # address of the backward branch

    @property
    def span(self) -> int:
        return self.tail - self.head


@dataclass(frozen=True)
class InstructionMix:
    """Static instruction counts of one stretch of SASS (a loop body, or a whole kernel)."""

    ffma: int = 0                   # FFMA and DFMA
    hmma: int = 0
    ldsm: int = 0                   # 8x8 matrices LDSM loads (LDSM.16.M88.4 counts 4)
    lds: tuple[tuple[int, int], ...] = ()      # (width in bits, count)
    ldgsts: tuple[tuple[int, int], ...] = ()
    bar: int = 0
    depbar: int = 0
    integer: int = 0
    local: int = 0                  # LDL and STL: register spills or stack arrays
    total: int = 0

    @property
    def lds_instructions(self) -> int:
        return sum(count for _, count in self.lds)

    @property
    def ldgsts_instructions(self) -> int:
        return sum(count for _, count in self.ldgsts)

    def ffma_per_lds(self) -> float:
        return self.ffma / self.lds_instructions if self.lds_instructions else float("inf")

    def integer_per_ffma(self) -> float:
        return self.integer / self.ffma if self.ffma else float("inf")

    def widths(self, kind: str) -> str:
        pairs = self.lds if kind == "lds" else self.ldgsts
        return " ".join(f"{count}x{width}" for width, count in pairs) or "-"


@dataclass(frozen=True)
class KernelSass:
    """One kernel's SASS facts: its main loop (None if it has no loop) and their mixes."""

    name: str
    main_loop: Loop | None
    loop_mix: InstructionMix
    kernel_mix: InstructionMix
    loops: int


def find_nvdisasm() -> str | None:
    """nvdisasm on PATH, else the one the ``nvidia-cuda-nvdisasm`` wheel installs."""
    found = shutil.which("nvdisasm")
    if found:
        return found
    for root in map(Path, sys.path):
        for candidate in (root / "nvidia" / "cu13" / "bin" / "nvdisasm",
                          root / "nvidia" / "cuda_nvdisasm" / "bin" / "nvdisasm"):
            if candidate.is_file():
                return str(candidate)
    return None


def disassemble(cubin: Path) -> list[Function]:
    tool = find_nvdisasm()
    if tool is None:
        raise CodegenError("nvdisasm not found: install the test extra "
                           "(nvidia-cuda-nvdisasm) or a CUDA toolkit")
    result = subprocess.run([tool, "-c", str(cubin)], capture_output=True, text=True)
    if result.returncode != 0:
        raise CodegenError(f"nvdisasm failed on {cubin.name}: {result.stderr.strip()}")
    return parse_sass(result.stdout)


def parse_sass(text: str) -> list[Function]:
    """Functions of nvdisasm's listing, each with its instructions and branch labels."""
    functions: list[Function] = []
    name, instructions, labels, pending = None, [], {}, []

    def close() -> None:
        if name is not None:
            functions.append(Function(name, tuple(instructions), dict(labels)))

    for line in text.splitlines():
        function = _FUNCTION.match(line)
        if function:
            close()
            name, instructions, labels, pending = function.group(1), [], {}, []
            continue
        label = _LABEL.match(line.strip())
        if label:
            pending.append(label.group(1))
            continue
        match = _LINE.search(line)
        if match is None or name is None:
            continue
        address = int(match.group(1), 16)
        for waiting in pending:
            labels[waiting] = address
        pending = []
        target = _TARGET.search(match.group(4))
        instructions.append(Instruction(address, match.group(3), match.group(4).strip(),
                                        (match.group(2) or "").strip() or None,
                                        target.group(1) if target else None))
    close()
    return functions


def loops(function: Function) -> list[Loop]:
    """Every loop closed by a backward branch, outermost first."""
    found = set()
    for instruction in function.instructions:
        if instruction.base == "BRA" and instruction.target in function.labels:
            head = function.labels[instruction.target]
            if head <= instruction.address:
                found.add(Loop(head, instruction.address))
    return sorted(found, key=lambda loop: (-loop.span, loop.head))


def mix(instructions) -> InstructionMix:
    counts = {"ffma": 0, "hmma": 0, "ldsm": 0, "bar": 0, "depbar": 0, "integer": 0, "local": 0}
    lds: dict[int, int] = {}
    ldgsts: dict[int, int] = {}
    total = 0
    for instruction in instructions:
        if instruction.predicate == "@!PT":
            # Never executed: nvcc places "@!PT LDS RZ, [RZ]" after cp.async copies (three
            # per group of LDGSTS in the tensor-core kernels), which issue no load.
            continue
        total += 1
        base = instruction.base
        if base in ("FFMA", "DFMA"):
            counts["ffma"] += 1
        elif base == "HMMA":
            counts["hmma"] += 1
        elif base == "LDSM":
            suffix = instruction.opcode.split(".")[-1]
            counts["ldsm"] += int(suffix) if suffix in ("2", "4") else 1
        elif base == "LDS":
            width = _width(instruction.opcode)
            lds[width] = lds.get(width, 0) + 1
        elif base == "LDGSTS":
            width = _width(instruction.opcode)
            ldgsts[width] = ldgsts.get(width, 0) + 1
        elif base == "BAR":
            counts["bar"] += 1
        elif base == "DEPBAR":
            counts["depbar"] += 1
        elif base in ("LDL", "STL"):
            counts["local"] += 1
        elif base in INTEGER and not instruction.opcode.startswith("IMAD.MOV"):
            counts["integer"] += 1
    return InstructionMix(lds=tuple(sorted(lds.items())), ldgsts=tuple(sorted(ldgsts.items())),
                          total=total, **counts)


def _width(opcode: str) -> int:
    for part in opcode.split(".")[1:]:
        if part in ("64", "128"):
            return int(part)
    return 32


def main_loop(function: Function) -> Loop | None:
    """The innermost loop with copies, a barrier and multiply-adds; else the innermost loop
    with the most multiply-adds; None for straight-line code."""
    candidates = loops(function)
    if not candidates:
        return None

    def body(loop: Loop) -> InstructionMix:
        return mix(i for i in function.instructions if loop.head <= i.address <= loop.tail)

    mixes = {loop: body(loop) for loop in candidates}
    pipelined = [loop for loop in candidates if mixes[loop].ldgsts_instructions
                 and mixes[loop].bar and mixes[loop].ffma + mixes[loop].hmma]
    if pipelined:
        return min(pipelined, key=lambda loop: loop.span)
    best = max(mixes[loop].ffma + mixes[loop].hmma for loop in candidates)
    return min((loop for loop in candidates if mixes[loop].ffma + mixes[loop].hmma == best),
               key=lambda loop: loop.span)


def kernel_sass(cubin: Path) -> dict[str, KernelSass]:
    """Per kernel of ``cubin``: the main loop and the instruction mixes."""
    result = {}
    for function in disassemble(cubin):
        loop = main_loop(function)
        body = [i for i in function.instructions
                if loop is not None and loop.head <= i.address <= loop.tail]
        result[function.name] = KernelSass(function.name, loop, mix(body),
                                           mix(function.instructions), len(loops(function)))
    return result
