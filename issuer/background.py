"""A node's background loops (the notifications dispatcher, the witness submitter): one shape, in one place.

``every(work, seconds, name, what)`` runs ``work(stopping)`` now and then every ``seconds`` in a thread of this
process, and returns an event that stops it when set. Start it in the process that stays (under a pre-forking server,
the worker: a thread is not copied into a forked child). The thread also ends once this process's main thread has
ended (a daemon thread waiting on the main thread wakes it at once), after the piece of work in hand (``work`` is
given ``stopping`` to look at between items), so a graceful stop (SIGTERM) neither cuts an item short nor waits for
the rest, nor for the loop's next look. A failure (a database hiccup, a peer refusing) is logged and retried at
the next round, and never ends the loop. Not a daemon thread: the interpreter's exit waits for it, and it ends once
the main thread has.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)


def every(work: Callable[[Callable[[], bool]], object], seconds: float, name: str, what: str) -> threading.Event:
    stop = threading.Event()
    main = threading.main_thread()

    def stopping() -> bool:
        return stop.is_set() or not main.is_alive()

    def loop() -> None:
        while not stopping():
            try:
                work(stopping)
            except Exception:          # logged and retried: never the end of the loop
                log.exception("%s failed", what)
            deadline = time.monotonic() + seconds
            while not stopping() and time.monotonic() < deadline:
                stop.wait(min(0.2, max(deadline - time.monotonic(), 0)))

    def wake_at_main_end() -> None:   # the loop hears of a graceful stop at once, not at its next look (<= 0.2 s)
        main.join()
        stop.set()

    threading.Thread(target=loop, name=name, daemon=False).start()
    threading.Thread(target=wake_at_main_end, name=name + "-stop", daemon=True).start()
    return stop
