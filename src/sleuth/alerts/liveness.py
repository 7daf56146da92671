"""Is the process that started a run still running it? Tells a live run from one killed with
``kill -9``, so the next run can mark it abandoned and take over what it left in flight at once.

A process is named by its host, its pid and its start time (``/proc/PID/stat`` field 22, in clock
ticks since boot): a pid that the system gave to another process since is not the same process.
On another host nothing can be checked from here: the run's heartbeat tells instead.
"""
from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from typing import Callable


def _start_time(pid: int) -> str | None:
    """The process's start time from /proc, or None where there is no /proc (or no such pid)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the name (field 2) may hold spaces and parentheses
    if len(fields) < 20 or fields[0] == "Z":  # a zombie has ended: only its exit status is left
        return None
    return fields[19]


@dataclass(frozen=True)
class Process:
    host: str
    pid: int
    start: str | None

    @classmethod
    def me(cls) -> "Process":
        return cls(socket.gethostname(), os.getpid(), _start_time(os.getpid()))


def alive(host: str | None, pid: int | None, start: str | None) -> bool | None:
    """True or False for a process of this host; None when it runs elsewhere (cannot tell)."""
    if host != socket.gethostname() or pid is None:
        return None
    if os.path.isdir("/proc"):
        now = _start_time(pid)
        return now is not None and (start is None or now == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Heartbeat:
    """Calls ``beat`` every ``every`` seconds in a daemon thread until stopped; failures (the
    database away for a moment) are ignored: the next beat tries again."""

    def __init__(self, beat: Callable[[], None], every: float = 15.0):
        self._beat, self._every = beat, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sleuth-heartbeat", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - a missed beat is harmless; the run reports real errors
                pass

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
