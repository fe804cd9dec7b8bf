"""The SASS of generated kernels: the main loop from the control flow, and its instruction mix.

The parser is tested on a listing written here; the machine-code checks compile the CUDA text
of each test configuration with nvcc and disassemble it with nvdisasm (the test extra's
``nvidia-cuda-nvdisasm``), and skip where either is missing.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import polypipe as pp
from polypipe.codegen.nvcc import compile_cubin, find_nvcc
from polypipe.codegen.sass import Loop, find_nvdisasm, kernel_sass, main_loop, mix, parse_sass
from tests.kernels.contractions import CASES

LISTING = """
//--------------------- .text.k0             --------------------------
.text.k0:
        /*0000*/                   S2R R0, SR_TID.X ;
.L_x_0:
        /*0010*/                   LDGSTS.E.BYPASS.128 [R3], desc[UR4][R4.64] ;
        /*0020*/                   LDGSTS.E [R3+0x10], desc[UR4][R6.64] ;
        /*0030*/                   DEPBAR.LE SB0, 0x1 ;
        /*0040*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;
.L_x_1:
        /*0050*/                   LDS.128 R8, [R2] ;
        /*0060*/                   FFMA R10, R8, R9, R10 ;
        /*0070*/                   FFMA R11, R8, R9, R11 ;
        /*0080*/                   IADD3 R2, R2, 0x10, RZ ;
        /*0090*/                   IMAD.MOV.U32 R5, RZ, RZ, R2 ;
        /*00a0*/               @P0 BRA `(.L_x_1) ;
        /*00b0*/                   STL [R1], R10 ;
        /*00c0*/              @!P1 BRA `(.L_x_0) ;
        /*00d0*/                   EXIT ;
"""


def test_parse_finds_loops_from_backward_branches_and_the_pipelined_one():
    [function] = parse_sass(LISTING)
    assert function.name == "k0" and len(function.instructions) == 14
    assert function.labels == {".L_x_0": 0x10, ".L_x_1": 0x50}
    # The inner loop multiplies but copies nothing; the outer one copies, waits and
    # multiplies: it is the pipeline iteration.
    assert main_loop(function) == Loop(0x10, 0xC0)
    body = mix(i for i in function.instructions if 0x10 <= i.address <= 0xC0)
    assert body.ldgsts == ((32, 1), (128, 1)) and body.lds == ((128, 1),)
    assert (body.ffma, body.bar, body.depbar, body.local) == (2, 1, 1, 1)
    assert body.integer == 1          # IADD3; the IMAD.MOV is a move
    assert body.ffma_per_lds() == 2.0


def test_instructions_predicated_never_are_not_counted():
    """nvcc writes ``@!PT LDS RZ, [RZ]`` after cp.async copies: predicated false, never
    issued, not a shared-memory load."""
    listing = LISTING.replace("        /*0040*/                   BAR.SYNC",
                              "        /*0038*/              @!PT LDS RZ, [RZ] ;\n"
                              "        /*0040*/                   BAR.SYNC")
    [function] = parse_sass(listing)
    body = mix(i for i in function.instructions if 0x10 <= i.address <= 0xC0)
    assert body.lds == ((128, 1),) and body.total == mix(
        i for i in parse_sass(LISTING)[0].instructions if 0x10 <= i.address <= 0xC0).total


def test_without_copies_the_main_loop_is_the_one_with_most_multiply_adds():
    listing = LISTING.replace("LDGSTS.E.BYPASS.128 [R3], desc[UR4][R4.64]", "NOP").replace(
        "LDGSTS.E [R3+0x10], desc[UR4][R6.64]", "NOP")
    [function] = parse_sass(listing)
    assert main_loop(function) == Loop(0x50, 0xA0)   # innermost of the two with 2 FFMA


def test_straight_line_code_has_no_main_loop():
    [function] = parse_sass(LISTING.replace("BRA", "NOP"))
    assert main_loop(function) is None


machine = pytest.mark.skipif(find_nvcc() is None or find_nvdisasm() is None,
                             reason="needs nvcc and nvdisasm (pip install nvidia-cuda-nvdisasm)")

# (case, sizes M, N, K): sizes that divide the default tiles and sizes that leave partial
# tiles (whose register loops isl bounds by min/max, the case that used to go to local memory).
BUILDS = [("gemm", (256, 256, 64)), ("gemm", (100, 72, 40)), ("batched_gemm", (96, 80, 48)),
          ("gemm_tt_local", (128, 128, 32)), ("2mm", (128, 128, 32)),
          ("conv2d_s1", (256, 64, 32)), ("conv2d_s2", (256, 64, 32)),
          ("conv_igemm", (100, 64, 0))]
_COPY = re.compile(r"pp_cp_async<(\d+)>")


def _built(name, sizes, config=None):
    opt = pp.optimize(pp.kernel(CASES[name].func), config or pp.GpuConfig())
    args = CASES[name].make(np.random.default_rng(0), *sizes, np.float32)
    source = opt.cuda_source(*args)
    cubin, resources = compile_cubin(source)
    return opt, source, kernel_sass(cubin), {r.name: r for r in resources}


@machine
@pytest.mark.parametrize("name, sizes", BUILDS)
def test_default_configuration_machine_code(name, sizes):
    opt, source, sass, resources = _built(name, sizes)
    functions = re.split(r"\n(?=extern \"C\" __global__)", source)
    for kernel in opt.kernels:
        facts, used = sass[kernel.name], resources[kernel.name]
        # No local memory: no spills, and no register buffer indexed at run time.
        assert (used.spill_stores, used.spill_loads, used.stack_bytes) == (0, 0, 0), used
        assert facts.kernel_mix.local == 0
        assert facts.main_loop is not None
        loop = facts.loop_mix
        # Every copy width in the text is the width in the machine code: a 16-byte cp.async
        # stays one LDGSTS.128, and no copy is split. (Whole kernel: with as many stages as
        # reduction tiles, every copy is in the prologue.)
        [text] = [f for f in functions if f"{kernel.name}(" in f]
        printed = {8 * int(size) for size in _COPY.findall(text)}
        assert {width for width, _ in facts.kernel_mix.ldgsts} == printed
        # Each k-step of an m x n register tile does m*n multiply-adds on m + n loaded
        # values: at least m*n / (m + n) per shared load instruction, even if every load
        # were scalar.
        m = kernel.config.block[0] // kernel.config.threads[0]
        n = kernel.config.block[1] // kernel.config.threads[1]
        assert loop.ffma_per_lds() >= m * n / (m + n)
        # Address arithmetic is constant offsets once the register loops unroll; a quarter
        # of the multiply-adds' issue slots is the most it may take (before the partial-tile
        # loops were unrolled the convolutions were at 0.5 to 1.05).
        # A copy of a quasi-affine subscript (the implicit GEMM's p // 25, r % 8, ...)
        # divides the changing reduction index by constants in every iteration: about four
        # instructions per division (multiply-high, shift, multiply-subtract), four divisions
        # and the 64-bit address: 20 per scalar copy on top.
        quasi = name == "conv_igemm"
        allowance = 20 * dict(loop.ldgsts).get(32, 0) if quasi else 0
        assert loop.integer <= 0.25 * loop.ffma + allowance, (loop.integer, loop.ffma)


@machine
@pytest.mark.parametrize("name, sizes", [("conv2d_s1", (1024, 128, 64)), ("gemm", (100, 72, 53)),
                                         ("conv_igemm", (1600, 128, 0))])
def test_large_tiles_keep_partial_fragment_loops_in_registers(name, sizes):
    # 8 x 8 register tiles whose fragment groups have run-time trip counts in partial tiles:
    # printed with constant bounds and a guard they unroll (the convolution had 1850 LDL/STL
    # and 2.3 integer instructions per FFMA before).
    config = pp.GpuConfig(block=(128, 128), threads=(16, 16), reduction=16, shared_stages=3,
                          register_stages=2)
    opt, _, sass, resources = _built(name, sizes, config)
    for kernel in opt.kernels:
        used = resources[kernel.name]
        assert (used.spill_stores, used.spill_loads, used.stack_bytes) == (0, 0, 0), used
        assert sass[kernel.name].kernel_mix.local == 0
        assert sass[kernel.name].loop_mix.integer_per_ffma() <= 0.4


@machine
@pytest.mark.parametrize("name", ["atax", "bicg", "mvt", "gesummv", "gemver"])
def test_matrix_vector_rows_reduce_in_registers(name):
    """Rows over threads, each row's sum in a register: the loops that multiply-add load the
    matrix and the vector but store nothing (ptxas keeps ``y[i]`` in a register across the
    reduction because the arrays are ``__restrict__``)."""
    from polypipe.codegen.sass import disassemble, loops
    from tests.kernels.polybench import KERNELS

    opt = pp.optimize(pp.kernel(KERNELS[name].func))
    # The generic text (sizes are parameters): small concrete sizes would unroll the loops.
    cubin, _ = compile_cubin(opt.cuda_source(dtype="float64"), "sm_90")
    reducing = 0
    for function in disassemble(cubin):
        for loop in loops(function):
            body = [i.base for i in function.instructions
                    if loop.head <= i.address <= loop.tail]
            if "DFMA" in body:
                reducing += 1
                assert "STG" not in body and "LDG" in body, (function.name, body)
    assert reducing >= 1
