"""Exceptions raised by terracarbon.

Every error caused by bad user input is a :class:`TerracarbonError`; the CLI turns it into a one-line red message and
exit code 2, never a traceback. Messages name the offending file and say what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path


class TerracarbonError(Exception):
    """Base class of all errors terracarbon raises on purpose."""


class InputError(TerracarbonError):
    """An input file is missing, unreadable or does not hold what the command needs."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class ConfigError(TerracarbonError):
    """An option or parameter is invalid or inconsistent."""


class BusyError(TerracarbonError):
    """Another live process is writing the same output (see :func:`terracarbon.utils.output_lock`)."""
