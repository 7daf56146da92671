"""One error family for the library, and the "did you mean" its messages share.

Library code raises these (they subclass builtins so callers can catch ``ValueError``);
only the CLI turns them into a single line and exit code 2.
"""
from __future__ import annotations

import difflib


def did_you_mean(name: str, options: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options``, ignoring case when that is what
    differs ('Purchase' for 'purchase'); empty when nothing is close."""
    close = difflib.get_close_matches(name, options, n=1)
    if not close:
        lower = {o.lower(): o for o in options}
        close = [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n=1)]
    return f" (did you mean {close[0]!r}?)" if close else ""


class SleuthError(Exception):
    """Base of every error sleuth raises on purpose."""


class InputError(SleuthError, ValueError):
    """Bad user input: a file, column, row or config value. The message says what to do."""


class ConfigError(InputError):
    """A bad ``sleuth.yaml`` key or value: names the key, what is allowed and what was given."""


class NotYetError(SleuthError, RuntimeError):
    """A capability that is planned but not built yet; the message says which issue tracks it."""
