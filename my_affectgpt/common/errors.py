"""The error type for problems the user can fix, and nothing else.

Command-line entry points print a :class:`UserError` as one ``error: ...`` line and exit with
status 2; every other exception is a bug (or an environment failure) and keeps its
traceback. Raise a ``UserError`` subclass only when the message names the config key or the
file at fault and says how to fix it.
"""
from __future__ import annotations


class UserError(Exception):
    """A config, file or command-line problem the user can fix; the message says how."""


class UserFileNotFoundError(UserError, FileNotFoundError):
    """A file or folder the user pointed at does not exist."""
