"""The one exception type for failures a user can mend: what went wrong, where, and the command that mends it.

The CLI turns a `ColorlabError` into one line on stderr and a non-zero exit
status; the Python API raises it like any other exception.
"""

from __future__ import annotations

from pathlib import Path


class ColorlabError(Exception):
    """`problem` (what is wrong), `path` (the file or folder concerned), `fix` (a command or action that mends it)."""

    def __init__(self, problem: str, *, path: str | Path | None = None, fix: str | None = None):
        self.problem, self.path, self.fix = problem, None if path is None else Path(path), fix
        super().__init__(self.line())

    def line(self) -> str:
        where = f"{self.path}: " if self.path is not None else ""
        return where + self.problem + (f" (to mend: {self.fix})" if self.fix else "")


class CorruptFileError(ColorlabError):
    """A file colorlab wrote earlier that no longer reads back (truncated, edited, or not ours)."""
