"""User-facing errors: one clear line naming the file and line or the config key, never a traceback.

The CLI catches ``MetarecError`` and prints ``error: <message>`` with exit status 2; everything else is a bug and
keeps its traceback.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class MetarecError(Exception):
    """Base class for errors caused by user input (files, names, options)."""


class DataError(MetarecError):
    """A dataset file is missing, unreadable or malformed."""

    def __init__(self, message: str, path=None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path, self.line = path, line


class ConfigError(MetarecError):
    """A bad option, parameter or config key."""


class UnknownNameError(ConfigError):
    """An unknown dataset / method / protocol / metric name; lists the valid choices."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]):
        choices = sorted(choices)
        close = difflib.get_close_matches(str(name), choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        super().__init__(f"unknown {kind} {name!r}{hint}; valid: {', '.join(choices)}")
        self.kind, self.name, self.choices = kind, name, choices


class TrainingError(MetarecError):
    """Training diverged (NaN/inf loss) or otherwise could not produce a model."""
