"""Errors polypipe raises for anything a user did wrong.

Every user-facing failure is a :class:`PolypipeError` subclass with a message that says what was
wrong and what is allowed. Errors tied to a place in the user's source carry a
:class:`SourceLocation` and show the offending line with a caret under the column.
"""

from __future__ import annotations

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
    """Arguments passed to a kernel do not match its model (dtype, rank, shape, bounds)."""


class KernelRuntimeError(PolypipeError):
    """A compiled kernel could not be run."""
