"""Every failure a user can cause is a :class:`CqlError`, carrying where it happened.

The CLI prints ``str(error)`` (position, message and a caret under the source line) and exits 2;
nothing else ever reaches a user as a traceback.
"""

from __future__ import annotations

from cqlx.ast import NO_SPAN, Span


class CqlError(Exception):
    """Base of every error a user can cause: bad syntax, unsupported construct, bad profile or file."""

    def __init__(self, message: str, span: Span = NO_SPAN, source: str | None = None,
                 filename: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.source = source
        self.filename = filename

    def located(self, source: str | None = None, filename: str | None = None) -> CqlError:
        """Attach the query text and file name (kept when already set); returns self."""
        if self.source is None:
            self.source = source
        if self.filename is None:
            self.filename = filename
        return self

    def __str__(self) -> str:
        where = self.filename or ("<query>" if self.span.line else "")
        if self.span.line:
            where += f":{self.span.line}:{self.span.column}"
        text = f"{where}: {self.message}" if where else self.message
        context = caret_context(self.source, self.span)
        return f"{text}\n{context}" if context else text


class CqlSyntaxError(CqlError):
    """The query text does not follow the CQL grammar."""


class CqlValueError(CqlError):
    """A construct is well-formed but an argument or value is wrong (``sort(order=sideways)``)."""


class UnsupportedError(CqlError):
    """A target cannot express a construct, and the lossy-conversion policy refuses it."""


class RuleFileError(CqlError):
    """A rule card, LogScale package or event file that cannot be read."""


class ProfileError(CqlError):
    """A target profile that does not validate."""


class LookupFileError(CqlError):
    """A lookup file a rule's ``match()`` reads: not given, unreadable, lacking a column, or with
    two rows for one event that say different things; or a ``join()`` whose subquery has such rows."""


def caret_context(source: str | None, span: Span) -> str:
    """The source line of ``span`` with a caret under its first column (empty when unknown)."""
    if not source or span.line <= 0:
        return ""
    lines = source.splitlines()
    if span.line > len(lines):
        return ""
    line = lines[span.line - 1].replace("\t", " ")
    width = 1
    if span.end_line == span.line and span.end_column > span.column:
        width = min(span.end_column - span.column, max(1, len(line) - span.column + 1))
    gutter = f"{span.line:>4} | "
    return f"{gutter}{line}\n{' ' * (len(gutter) + span.column - 1)}{'^' * width}"
