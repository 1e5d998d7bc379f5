"""User-facing errors.

Everything a user can fix (a missing file, a bad column, an unknown config key) raises `TextkdError`
with a message that names where the problem is and what to do. The CLI prints it on one line and
exits with code 2, without a traceback. Programming errors stay ordinary exceptions.
"""

from __future__ import annotations

from pathlib import Path


class TextkdError(Exception):
    """An error the user can fix; `str(err)` is one actionable line."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: str | int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.column = column
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
            if self.column is not None:
                where += f" (column {self.column!r})" if isinstance(self.column, str) else f":{self.column}"
            where += ": "
        text = f"{where}{self.message}"
        if self.hint:
            text += f" — {self.hint}"
        return text.replace("\n", " ")


class DataError(TextkdError):
    """A data file or preset is missing, unreadable or inconsistent."""


class ConfigError(TextkdError):
    """A configuration key or value is invalid."""


class ModelLoadError(TextkdError):
    """A model directory or checkpoint cannot be loaded."""


class HubError(TextkdError):
    """A Hugging Face hub operation (a push) failed: authentication, permissions, network."""
