"""Exceptions that carry a user-facing message naming the file, record or key at fault.

Every error a user can cause with bad input derives from :class:`AgrecError`, so the CLI can print it
as one line instead of a traceback from deep inside pandas or torch.
"""

from __future__ import annotations


class AgrecError(Exception):
    """Base class of all errors caused by user input (files, configs, arguments)."""


class DataError(AgrecError, ValueError):
    """A data file is missing or malformed; the message names the file and the offending record."""


class ConfigError(AgrecError, ValueError):
    """A YAML profile or config value is invalid; the message names the file and the key."""


class StageError(AgrecError, RuntimeError):
    """A pipeline stage (a notebook) failed; the message names the stage and the failing cell."""


def shorten(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to about ``limit`` characters with the full length said, so that an error message
    stays one short line whatever the size of the bad value it quotes."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 24]}… ({len(text)} characters)"
