"""One error family for the library.

Library code raises these (they subclass builtins so callers can catch ``ValueError``);
only the CLI turns them into a single line and exit code 2.
"""
from __future__ import annotations


class SleuthError(Exception):
    """Base of every error sleuth raises on purpose."""


class InputError(SleuthError, ValueError):
    """Bad user input: a file, column, row or config value. The message says what to do."""


class ConfigError(InputError):
    """A bad ``sleuth.yaml`` key or value: names the key, what is allowed and what was given."""


class NotYetError(SleuthError, RuntimeError):
    """A capability that is planned but not built yet; the message says which issue tracks it."""
