"""Errors polypipe raises for anything a user did wrong.

Every user-facing failure is a :class:`PolypipeError` subclass with a message that says what was
wrong and what is allowed. Errors tied to a place in the user's source carry a
:class:`SourceLocation` and show the offending line with a caret under the column.
"""

from __future__ import annotations

import functools
import sys
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLocation:
    """A place in the user's source: file, 1-based line, 0-based column and the line's text."""

    filename: str
    line: int
    column: int
    text: str = ""

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.column + 1}"

    def excerpt(self) -> str:
        """The source line with a caret under the column (empty when the text is unknown)."""
        if not self.text:
            return ""
        stripped = self.text.rstrip("\n")
        indent = len(stripped) - len(stripped.lstrip())
        shown = stripped.lstrip()
        caret = " " * max(self.column - indent, 0) + "^"
        return f"    {shown}\n    {caret}"


class PolypipeError(Exception):
    """Base class of every error polypipe raises for bad input or an impossible request."""

    def __init__(self, message: str, location: SourceLocation | None = None):
        self.message = message
        self.location = location
        super().__init__(self._render())

    def _render(self) -> str:
        if self.location is None:
            return self.message
        text = f"{self.location}: {self.message}"
        excerpt = self.location.excerpt()
        return f"{text}\n{excerpt}" if excerpt else text


class FrontendError(PolypipeError):
    """The Python function uses something outside polypipe's loop-nest subset."""


class ScheduleError(PolypipeError):
    """A schedule or transformation request is malformed."""


class LegalityError(PolypipeError):
    """A transformation would violate a dependence."""


class CodegenError(PolypipeError):
    """Code could not be generated or compiled (missing compiler, compiler failure)."""


class ArgumentError(PolypipeError):
    """Arguments do not match what is asked of them: a kernel's arguments against its model
    (dtype, rank, shape, bounds), or wrong argument types to polypipe's API."""


class KernelRuntimeError(PolypipeError):
    """A compiled kernel could not be run."""


class PythonRaisesError(KernelRuntimeError):
    """The Python function raises an exception for these inputs, and so does the kernel.

    The generated code checks every operation at which Python raises (an integer division by
    zero between Python ints, ``int(nan)``, ``math.sqrt(-1.0)``, storing an out-of-range value
    into an integer array, ...) and stops at that instance, so on the CPU backend the arrays
    hold exactly what the Python function had written when it raised. ``python_type`` is the
    exception class Python raises; the concrete subclasses below also derive from it, so
    ``except ZeroDivisionError`` catches the kernel's error as it catches Python's.
    """

    python_type: type = Exception


class ZeroDivisionRaised(PythonRaisesError, ZeroDivisionError):
    python_type = ZeroDivisionError


class ValueErrorRaised(PythonRaisesError, ValueError):
    python_type = ValueError


class OverflowErrorRaised(PythonRaisesError, OverflowError):
    python_type = OverflowError


class UnboundLocalRaised(PythonRaisesError, UnboundLocalError):
    python_type = UnboundLocalError


class TypeErrorRaised(PythonRaisesError, TypeError):
    python_type = TypeError


class InternalError(Exception):
    """A broken internal invariant of polypipe: a bug, never a verdict on the user's input.

    Deliberately outside the :class:`PolypipeError` tree, so that no code path that handles
    user errors or refusals (the optimizer's fallbacks included) can swallow it.
    """

    def __init__(self, message: str):
        self.message = message
        super().__init__(f"internal error: {message}\nThis is a bug in polypipe, not in your "
                         "code: please report it with the kernel and the call that raised it.")


@contextmanager
def deep_nesting(what: str):
    """Allow deep recursion over long expressions (a sum of a thousand terms is valid Python;
    polypipe's passes recurse over it); past even that, a clear error, not a RecursionError."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    try:
        yield
    except RecursionError:
        raise CodegenError(f"{what}: an expression is nested too deeply for polypipe; split it "
                           "into several statements through local scalars") from None
    finally:
        sys.setrecursionlimit(old)


def public(function):
    """Decorator of a public entry point: an unexpected exception inside polypipe (a bug)
    reaches the caller as an InternalError asking for a report, with the original chained,
    never as a raw traceback of some library; user errors and refusals pass unchanged."""
    @functools.wraps(function)
    def guarded(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (PolypipeError, InternalError):
            raise
        except Exception as exc:  # noqa: BLE001 - every other exception is polypipe's bug
            raise InternalError(f"{function.__qualname__} failed with "
                                f"{type(exc).__name__}: {exc}") from exc
    return guarded


def user_stacklevel() -> int:
    """The ``warnings.warn`` stacklevel of the first caller outside polypipe (its caller's
    frame counts 1), so that a warning points at the user's call."""
    import os

    import polypipe.analysis
    import polypipe.codegen

    homes = tuple(os.path.dirname(os.path.abspath(module.__file__)) + os.sep
                  for module in (sys.modules["polypipe"], polypipe.analysis, polypipe.codegen))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(homes):
        frame, level = frame.f_back, level + 1
    return level
