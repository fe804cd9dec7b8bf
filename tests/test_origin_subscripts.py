"""Copies of quasi-affine reads print their subscripts over the update's iterators
(ir.OriginSubscript): short, exact, checked against the access relation and range-checked."""

from dataclasses import replace

import islpy as isl
import numpy as np
import pytest

import polypipe as pp
from polypipe import GpuConfig, ir
from polypipe.codegen.ast_build import build_ast
from polypipe.codegen.index_range import Let, check_index_range, index_tree
from polypipe.errors import InternalError
from tests.kernels.contractions import CASES

CASE = CASES["conv_igemm"]
PIPELINED = GpuConfig(block=(64, 64), threads=(16, 16), reduction=16, shared_stages=3,
                      register_stages=2)
_built: dict = {}


def optimized(config: GpuConfig):
    if config not in _built:
        _built[config] = pp.optimize(pp.kernel(CASE.func), config)
    return _built[config]


def _copy_lines(source: str, array: str) -> list[str]:
    return [line.strip() for line in source.splitlines()
            if "pp_cp_async<" in line and f"&a_{array}[" in line]   # the source operand


def test_quasi_affine_copy_prints_over_bound_update_iterators():
    opt = optimized(PIPELINED)
    args = CASE.make(np.random.default_rng(0), 100, 72, 0, np.float32)
    source = opt.cuda_source(*args)
    copies = _copy_lines(source, "Xp")
    assert copies
    for line in copies:
        source_operand = line.split(", &a_Xp[", 1)[1]
        # The divisions of the Python subscript by constants, over the bound locals: no
        # floord, no case split (composed with the schedule, isl printed both, ~2 KB).
        assert "pp_u_p / 25" in source_operand and "pp_u_r % 8" in source_operand
        assert "pp_floord" not in source_operand and "?" not in source_operand
        assert "pp_c" not in source_operand
        assert len(line) < 400, line
    # Only the iterators the subscript reads are bound (not the output column co), once per
    # copy, right before it.
    assert "pp_u_co" not in source
    assert source.count("const int pp_u_p = ") == source.count("const int pp_u_r = ") == len(copies)
    # The affine read of Wt composes into an affine subscript: printed as before.
    for line in _copy_lines(source, "Wt"):
        assert "pp_u_" not in line and "/" not in line.split("&a_Wt[", 1)[1]


@pytest.mark.parametrize("shared_stages, register_stages", [(1, 1), (2, 2), (3, 2), (4, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_igemm_copies_read_the_elements_python_reads(shared_stages, register_stages, dtype):
    config = GpuConfig(block=(64, 64), threads=(16, 16), reduction=16,
                       shared_stages=shared_stages, register_stages=register_stages)
    # 75 or 100 pixels against 64-row tiles, 40 or 72 channels against 64 columns, a
    # reduction of 72 against tiles of 16: every tile kind, full and partial.
    for images, channels in ((3, 40), (4, 72)):
        args = CASE.make(np.random.default_rng(images), 25 * images, channels, 0, dtype)
        want = CASE.expect(args)[0]
        optimized(config).run(*args)
        tolerance = 2e-5 if dtype == np.float32 else 1e-12
        assert np.abs(args[0] - want).max() <= tolerance * max(1.0, np.abs(want).max())


def test_vector_copies_of_a_quasi_affine_read():
    # Stored (m, k), the copy runs along r % 8: four channels are one proved 16-byte cp.async
    # whose address is lane 0's, printed over the bound locals.
    config = replace(PIPELINED, fragment_vector=1)
    args = CASE.make(np.random.default_rng(1), 100, 72, 0, np.float32)
    want = CASE.expect(args)[0]
    source = optimized(config).cuda_source(*args)
    assert any("pp_cp_async<16>" in line and "pp_u_p / 25" in line
               for line in _copy_lines(source, "Xp"))
    optimized(config).run(*args)
    assert np.abs(args[0] - want).max() <= 2e-5 * max(1.0, np.abs(want).max())


def _copy_statement(program: ir.Program) -> ir.Statement:
    [stmt] = [s for s in program.statements
              if s.kind == "async_copy" and s.reads[0].origin is not None]
    return stmt


def test_origin_only_for_dividing_subscripts():
    program = optimized(PIPELINED).kernels[0].program
    stmt = _copy_statement(program)
    assert stmt.reads[0].array == "Xp"
    origin = stmt.reads[0].origin
    assert origin.index.get_dim_id(isl.dim_type.in_, 0).get_name() == "pp_u_p"
    gemm = pp.optimize(pp.kernel(CASES["gemm"].func), PIPELINED, prove=False)
    assert all(s.reads[0].origin is None for s in gemm.kernels[0].program.statements
               if s.kind == "async_copy")


def _with_origin_index(program: ir.Program, text: str) -> ir.Program:
    stmt = _copy_statement(program)
    origin = stmt.reads[0].origin
    wrong = isl.PwMultiAff(text, context=origin.index.get_ctx())
    for pos in range(wrong.dim(isl.dim_type.in_)):
        wrong = wrong.set_dim_id(isl.dim_type.in_, pos,
                                 origin.index.get_dim_id(isl.dim_type.in_, pos))
    read = replace(stmt.reads[0], origin=ir.OriginSubscript(origin.instance, wrong))
    changed = replace(stmt, reads=(read,), value=ir.Read(read))
    return replace(program, statements=tuple(changed if s is stmt else s
                                             for s in program.statements))


def test_origin_that_is_not_the_access_is_an_internal_error():
    program = optimized(PIPELINED).kernels[0].program
    params = ", ".join(program.parameter_names)
    update = _copy_statement(program).reads[0].origin.index.get_tuple_name(isl.dim_type.in_)
    # p // 26 for p // 25: one image boundary off, caught before anything prints it.
    wrong = _with_origin_index(program, (
        f"[{params}] -> {{ {update}[p, co, r] -> Xp[floor(p/26), (floor(p/5) mod 5) + floor(r/24),"
        " (p mod 5) + (floor(r/8) mod 3), r mod 8] }"))
    with pytest.raises(InternalError, match="not the access it prints"):
        build_ast(wrong)
    build_ast(program)   # the recorded one is


def test_bound_locals_are_range_checked():
    program = optimized(PIPELINED).kernels[0].program
    tree = index_tree(build_ast(program))

    def lets(parts):
        for part in parts:
            if isinstance(part, Let):
                yield part
            elif hasattr(part, "body"):
                yield from lets(part.body)

    found = list(lets(tree))
    assert found and all({name for name, _ in let.bindings} == {"pp_u_p", "pp_u_r"}
                         for let in found)
    sizes = {"P": 100, "CO": 72, "RSC": 72}
    check_index_range(tree, sizes, "conv")
    with pytest.raises(pp.ArgumentError, match="too large for the generated loops"):
        check_index_range(tree, {**sizes, "P": 2**62}, "conv")


def test_an_overflowing_local_is_refused_even_if_no_loop_bound_overflows():
    big = ("op", isl.ast_expr_op_type.mul, (("id", "N"), ("int", 4)))
    tree = (Let((("pp_u_x", big),), (("id", "pp_u_x"),)),)
    check_index_range(tree, {"N": 2**40}, "k")
    with pytest.raises(pp.ArgumentError):
        check_index_range(tree, {"N": 2**62}, "k")
    with pytest.raises(InternalError):   # a local used outside its Let is a bug
        check_index_range((("id", "pp_u_x"),), {"N": 1}, "k")

