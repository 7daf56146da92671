"""Keep freed memory in the process (glibc): the detector allocates and frees many arrays of
tens of megabytes; by default glibc hands each back to the kernel and takes it again, and the page
faults of touching fresh pages cost more than the arithmetic. Called by the CLI and the benchmark,
not on import: a library should not change its host process."""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Ask glibc to serve large arrays from its heap and keep freed pages; True if it agreed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)  # glibc's largest: arrays up to 32 MB
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, 2**30)
        ok &= libc.mallopt(_M_TOP_PAD, 64 * 2**20)
        return bool(ok)
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
