"""Code generation (installed as ``polypipe.codegen``): isl AST, C printer, CPU runner."""
