"""The child process that talks to one notification channel (``python -m sleuth._sender PPID``).

Apprise's HTTP timeouts apply to each read, so a channel that drips one byte a second holds a
request for as long as it likes; only a process can be stopped mid-request. The parent gives
every attempt a deadline and kills this process when it passes (see :mod:`sleuth.alerts.deliver`).

Protocol, one JSON object per line: the parent writes ``{"url": …}`` (on stdin: never in argv,
where ``ps`` shows it), then one ``{"title", "body", "kind"}`` per message; this process answers
``{"ready": true}`` once, then ``{"ok": bool}`` per message. It dies with its parent (Linux:
PR_SET_PDEATHSIG), so a run killed with ``kill -9`` leaves no send going on behind it.
Kept free of sleuth's heavy imports: it starts in a fraction of a second.
"""
from __future__ import annotations

import json
import logging
import os
import sys

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the closed stdin ends the loop instead
        pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(0)


def _say(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> None:
    _die_with_parent(int(sys.argv[1]))
    first = sys.stdin.readline()
    if not first:
        return
    url = json.loads(first)["url"]
    logging.disable(logging.CRITICAL)  # apprise's log names URLs
    import apprise

    app = apprise.Apprise(asset=apprise.AppriseAsset(storage_mode="memory"))
    if not app.add(url):
        _say({"ready": False})
        return
    _say({"ready": True})
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            ok = bool(app.notify(title=msg["title"], body=msg["body"], notify_type=msg["kind"]))
        except Exception:  # noqa: BLE001 - a plugin's crash is a failed attempt, not a dead sender
            ok = False
        _say({"ok": ok})


if __name__ == "__main__":
    main()
