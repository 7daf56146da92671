"""Delivery with hard deadlines: one child process per channel (:mod:`sleuth._sender`), killed
when an attempt overruns its ``timeout``, so a channel that hangs or drips bytes costs at most
that, never a stalled run; channels are sent to from threads of their own, so a slow one never
delays another.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from typing import Callable

#: seconds a new sender process may take to start (import apprise) before the attempt fails
START_TIMEOUT = 30.0


class Sender:
    """The parent side of one channel's sender process, started on first use."""

    def __init__(self, url: str):
        self._url = url
        self._proc: subprocess.Popen | None = None
        self._buf = b""
        self._ready = False

    def start(self) -> None:
        """Start the process ahead of the first message (it imports apprise: a fraction of a second)."""
        if self._proc is None:
            self._launch()

    def _launch(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "sleuth._sender", str(os.getpid())], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
        self._buf = b""
        self._ready = False

    def _start(self, deadline: float) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            self._launch()
        if not self._write({"url": self._url}):
            return False
        answer = self._read(deadline)
        self._ready = bool(answer and answer.get("ready"))
        return self._ready

    def _write(self, obj: dict) -> bool:
        try:
            self._proc.stdin.write((json.dumps(obj) + "\n").encode())
            return True
        except (BrokenPipeError, OSError):
            return False

    def _read(self, deadline: float) -> dict | None:
        """One answer line before ``deadline`` (monotonic), or None (timed out or the child died)."""
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def attempt(self, title: str, body: str, kind: str, timeout: float, until: float | None = None) -> str:
        """One attempt: ``sent``, ``failed`` (the channel refused) or ``timeout`` (no answer in time:
        the process is killed, which closes the connection). Starting the process is sleuth's own
        work, not the channel's: it has its own allowance (:data:`START_TIMEOUT`, within ``until``)."""
        until = until if until is not None else time.monotonic() + START_TIMEOUT + timeout
        if self._proc is None or self._proc.poll() is not None or not self._ready:
            started = min(until, time.monotonic() + START_TIMEOUT)
            if not self._start(started):
                self.kill()
                return "timeout" if time.monotonic() >= started else "failed"
        deadline = min(until, time.monotonic() + timeout)
        if not self._write({"title": title, "body": body, "kind": kind}):
            self.kill()
            return "failed"
        answer = self._read(deadline)
        if answer is None:
            self.kill()
            return "timeout"
        return "sent" if answer.get("ok") else "failed"

    def kill(self) -> None:
        self._ready = False
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                pipe.close()
            self._proc = None

    def close(self) -> None:
        """Let the process finish (its stdin closes), killing it if it does not within 2 s."""
        if self._proc is None:
            return
        try:
            self._proc.stdin.close()
            self._proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def __enter__(self) -> "Sender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def send(sender: Sender, title: str, body: str, kind: str, *, retries: int, backoff: float, timeout: float,
         until: float, sleep: Callable[[float], None] = time.sleep) -> tuple[bool, int, int]:
    """Send with retries and exponential backoff, each attempt at most ``timeout`` seconds and none
    begun after ``until`` (monotonic): the channel's budget for this run. Returns ``(delivered,
    attempts, timeouts)``."""
    attempts = timeouts = 0
    for attempt in range(retries + 1):
        left = until - time.monotonic()
        if left <= 0.05:
            break
        attempts += 1
        outcome = sender.attempt(title, body, kind, timeout, until)
        if outcome == "sent":
            return True, attempts, timeouts
        timeouts += outcome == "timeout"
        if attempt < retries:
            pause = backoff * 2 ** attempt
            if time.monotonic() + pause >= until:
                break
            sleep(pause)
    return False, attempts, timeouts
