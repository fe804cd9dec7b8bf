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
from .gpu_config import A100, H100, GpuConfig, GpuTarget
from .ir import Program
from .kernel import Kernel, kernel
from .optimize import OptimizedProgram, optimize
from .analysis.dependences import Dependence, Dependences, dependences
from .analysis.legality import DependenceViolation, check_schedule
from .analysis.pipelinable import PipelineCandidate, pipelinable_reads
from .transform import (fuse_bands, fuse_loops, interchange, mark_band, replay_transforms,
                        skew, split_band, tile)

__version__ = "0.1.0"

__all__ = [
    "A100", "ArgumentError", "CodegenError", "Dependence", "DependenceViolation", "Dependences",
    "FrontendError", "GpuConfig", "GpuTarget", "H100", "Kernel", "KernelRuntimeError",
    "LegalityError", "OptimizedProgram", "PipelineCandidate", "PolypipeError", "Program",
    "ScheduleError", "SourceLocation", "build_program", "check_schedule", "dependences",
    "fuse_bands", "fuse_loops", "interchange", "kernel", "mark_band", "optimize",
    "pipelinable_reads", "replay_transforms", "skew", "split_band", "tile",
]
