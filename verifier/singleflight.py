"""Single-flight: one call per key at a time. While one thread fetches a DID document or a status list, the others
asking for the same one wait (for at most ``wait`` seconds) and share its result or its error, so a cold start
under load costs one fetch per document rather than one per request."""
from __future__ import annotations

import threading
from typing import Any, Callable, Hashable


class _Call:
    __slots__ = ("done", "result", "error", "leader")

    def __init__(self) -> None:
        self.leader = threading.get_ident()
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class SingleFlight:
    """``do(key, fn)`` runs ``fn()`` once for all concurrent callers with the same ``key``."""

    def __init__(self, wait: float = 30.0):
        self.wait = wait
        self._lock = threading.Lock()
        self._calls: dict[Hashable, _Call] = {}

    def do(self, key: Hashable, fn: Callable[[], Any], on_timeout: Callable[[], BaseException]) -> Any:
        """The result of ``fn()`` (run by the first caller; the others wait for it, bounded by ``wait`` seconds,
        then get ``on_timeout()`` raised)."""
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if leader:
                call = self._calls[key] = _Call()
        if leader:
            try:
                call.result = fn()
            except BaseException as exc:   # shared with the waiters, then re-raised here
                call.error = exc
            finally:
                with self._lock:
                    self._calls.pop(key, None)
                call.done.set()
        elif call.leader == threading.get_ident() or not call.done.wait(self.wait):
            raise on_timeout()   # (asked again by the thread fetching it: waiting would wait for ever)
        if call.error is not None:
            raise call.error
        return call.result

    def in_flight(self) -> int:
        with self._lock:
            return len(self._calls)
