"""polypipe: a polyhedral loop optimizer for GPUs, written in Python.

Describe a loop nest as a plain Python function, decorate it with :func:`kernel`, and polypipe
builds its polyhedral model (``kernel.program``) and runs it as compiled code::

    import polypipe as pp

    @pp.kernel
    def scale(alpha, x):
        N = len(x)
        for i in range(N):
            x[i] *= alpha
"""

from .errors import (ArgumentError, CodegenError, FrontendError, KernelRuntimeError,
                     LegalityError, PolypipeError, ScheduleError, SourceLocation)
from .frontend import build_program
from .ir import Program
from .kernel import Kernel, kernel

__version__ = "0.1.0"

__all__ = [
    "ArgumentError", "CodegenError", "FrontendError", "Kernel", "KernelRuntimeError",
    "LegalityError", "PolypipeError", "Program", "ScheduleError", "SourceLocation",
    "build_program", "kernel",
]
