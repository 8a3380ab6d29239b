"""The provider: serves each dataset series behind the gateway (pull with paging and ``since``, one release, a
server-sent-events stream of new releases) and pushes new releases to recipients.

Every data response is decided first by ``verifier.middleware.CeadMiddleware`` with the provider's trust policy:
the release list, each release and the event stream. Only ``/healthz`` and ``/series`` (the names and dataset IRIs
of the series, public catalogue metadata) answer without a presentation.

A watcher thread polls each series' source every ``poll_seconds``: each release it has not seen is announced to
the stream's subscribers and pushed to the series' recipients (``deliveries``), through the provider's node's
network rules (``Node.fetcher()``). A push that fails is tried again after ``poll_seconds``, then after twice as
long each time, up to ``RETRY_MAX_SECONDS``. The watcher must run in the process that serves the streams (under
``cead provider serve``, the server's worker: ``after_fork`` then ``start``).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Iterable
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import get_current_url

from verifier.decision import DECISION_HEADER
from verifier.http import Fetcher
from verifier.middleware import CeadMiddleware
from verifier.results import CeadError, Problem

from .config import ProviderConfig, Series, bad
from .deliveries import DELIVERED, FAILED, Delivery, DeliveryLog, deliver, refusal
from .sources import Release, page, parse_time

log = logging.getLogger(__name__)

SERIES_ENV = "cead.provider.series"
RETRY_MAX_SECONDS = 300.0     # a recipient that stays unreachable is tried at least this often


def request_url(environ, public_url: str | None = None) -> str:
    """The URL the client called, as it sent it (the presentation is bound to it): ``public_url`` (behind a proxy)
    or the scheme and host of this request, then the path and query exactly as received. (Werkzeug's
    ``get_current_url`` decodes ``%3A`` in a query, so ``?since=2026-01-01T00%3A00%3A00Z`` would not match.)"""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        query = environ.get("QUERY_STRING")
        raw = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
    if public_url:
        return public_url + raw
    return f"{environ['wsgi.url_scheme']}://{environ.get('HTTP_HOST') or environ['SERVER_NAME']}{raw}" \
        if environ.get("HTTP_HOST") or environ.get("SERVER_NAME") else get_current_url(environ)


class Announcer:
    """New releases, per series, for the stream's subscribers (each waits on one shared condition)."""

    def __init__(self, keep: int = 1000):
        self._cond = threading.Condition()
        self._events: list[tuple[int, str, Release]] = []
        self._seq = 0
        self.keep = keep
        self._closed = False

    def close(self) -> None:
        """The server is stopping: every subscriber waiting is woken at once (``wait`` no longer waits)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False

    @property
    def seq(self) -> int:
        with self._cond:
            return self._seq

    def announce(self, series: str, release: Release) -> None:
        with self._cond:
            self._seq += 1
            self._events.append((self._seq, series, release))
            del self._events[:-self.keep]
            self._cond.notify_all()

    def wait(self, series: str, after: int, timeout: float) -> tuple[int, list[Release]]:
        """Releases of ``series`` announced after ``after`` (waiting up to ``timeout`` for one)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [r for seq, s, r in self._events if seq > after and s == series]
                left = deadline - time.monotonic()
                if found or left <= 0 or self._closed:
                    return self._seq, found
                self._cond.wait(left)


def _without_key(message: str, series: Series) -> str:
    """A source's message without the ``series.<name>.source:`` it may start with (the log line names the series)."""
    prefix = f"series.{series.name}.source: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _problem(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    body = json.dumps({"problems": [Problem(code, message).to_dict()]})
    return Response(body, status=status, mimetype="application/json", headers=headers)


class Provider:
    """``guard``: the ``verifier.http.Fetcher`` pushes go through; by default the network rules of the wallet's
    node (``node.fetcher()``), or production rules (https, public addresses only) for a wallet without a node.
    Pushes trust the configuration's ``ca_bundle``, else the node's ``network.ca_bundle``."""

    def __init__(self, config: ProviderConfig, decider, wallet=None, *, guard: Fetcher | None = None):
        self.config = config
        self.decider = decider
        self.wallet = wallet
        node = getattr(wallet, "_node", None)
        self.guard = guard if guard is not None else (node.fetcher() if node is not None else Fetcher())
        self.setting = f"{node.home / 'config.yaml'}" if node is not None else None   # where allow_private is
        self.verify: str | bool = config.ca_bundle or self.guard.ca_bundle or True
        self._retry: dict[tuple, tuple[int, float]] = {}   # what failed: (failures, when to try again)
        self._down: dict[str, str] = {}                     # series whose source cannot be read: why
        self.announcer = Announcer()
        self.deliveries = DeliveryLog(config.state)
        self.known: dict[str, set[str]] | None = None
        self._streams = threading.BoundedSemaphore(config.stream_max_clients)
        self._count_lock = threading.Lock()
        self._open = 0
        self._stop = threading.Event()
        self._poll_lock = threading.Lock()     # the watcher and a caller never push the same release twice
        self._thread: threading.Thread | None = None

        def public(environ) -> str:
            return request_url(environ, config.public_url)
        dataset_for = lambda environ: environ[SERIES_ENV].dataset        # noqa: E731
        self._data = CeadMiddleware(self._data_app, decider, dataset_for=dataset_for, public_url=public)
        # the release list carries release ids and times, not a table: decided, but not read as one
        self._list = CeadMiddleware(self._data_app, decider, dataset_for=dataset_for, public_url=public,
                                    check_response_payload=False)
        # the stream carries notifications (release ids and times), never a table: nothing to buffer and check
        self._events = CeadMiddleware(self._events_app, decider, dataset_for=dataset_for, public_url=public,
                                      check_response_payload=False)

    # ---- watching the sources ------------------------------------------------------------------------------
    def poll_once(self) -> list[Delivery]:
        """Announce releases not seen before (not on the first poll: those were there already) and push every
        release not yet delivered to each recipient. Returns the deliveries attempted."""
        with self._poll_lock:
            return self._poll()

    def _poll(self) -> list[Delivery]:
        known = self.known if self.known is not None else {}
        self.known = known
        attempted: list[Delivery] = []
        for series in self.config.series.values():
            try:
                releases = series.source.releases()
            except CeadError as exc:
                self._source_down(series, exc)
                continue
            if self._down.pop(series.name, None) is not None:
                log.info("series %s: its source can be read again", series.name)
            first = series.name not in known     # what a source holds when first read was there already
            seen = known.setdefault(series.name, set())
            for release in releases:
                if release.id not in seen:
                    seen.add(release.id)
                    if not first:
                        self.announcer.announce(series.name, release)
            attempted += self._push(series, releases)
        return attempted

    def _source_down(self, series: Series, exc: CeadError) -> None:
        """Say that a source cannot be read, once until what is wrong changes (not at every poll)."""
        if self._down.get(series.name) != exc.message:
            self._down[series.name] = exc.message
            log.warning("series %s: %s", series.name, _without_key(exc.message, series))

    def _due(self, key: tuple, now: float) -> bool:
        return key not in self._retry or self._retry[key][1] <= now

    def _failed(self, key: tuple) -> float:
        """Record one more failure of ``key``; returns how long until it is tried again."""
        failures = self._retry.get(key, (0, 0.0))[0] + 1
        wait = min(self.config.poll_seconds * 2 ** (failures - 1), RETRY_MAX_SECONDS)
        self._retry[key] = (failures, time.monotonic() + wait)
        return wait

    def _push(self, series: Series, releases: list[Release]) -> list[Delivery]:
        out = []
        for target in series.push:
            # a target that did not answer waits as a whole (one attempt, one line in the log, per wait); a release
            # it answered with an error for waits on its own
            reach = (series.name, target.url)
            if not self._due(reach, time.monotonic()):
                continue
            for release in releases:
                key = (series.name, release.id, target.url)
                if self.deliveries.done(*key) or (target.after is not None and release.issued <= target.after) \
                        or not self._due(key, time.monotonic()):
                    continue
                try:
                    body = series.source.body(release.id)
                except CeadError as exc:
                    log.warning("series %s release %s: %s", series.name, release.id, exc.message)
                    continue
                if body is None:
                    continue
                delivery = deliver(self.wallet, series.name, release, body, target, guard=self.guard,
                                   verify=self.verify, setting=self.setting)
                self.deliveries.record(delivery)
                out.append(delivery)
                if delivery.outcome != FAILED:
                    self._retry.pop(key, None)
                    self._retry.pop(reach, None)
                    log.log(logging.INFO if delivery.outcome == DELIVERED else logging.WARNING,
                            "push %s %s to %s: %s%s%s", series.name, release.id, target.url, delivery.outcome,
                            f" (HTTP {delivery.status}{', receipt kept' if delivery.receipt else ''})"
                            if delivery.status else "", "".join(f"; {r.get('code')}: {r.get('message')}"
                                                                for r in delivery.reasons))
                    continue
                unanswered = delivery.status is None
                wait = self._failed(reach if unanswered else key)
                log.warning("push %s %s to %s: failed; %s (tried again in %g s)", series.name, release.id,
                            target.url, "; ".join(str(r.get("message")) for r in delivery.reasons), wait)
                if unanswered:
                    break
        return out

    def check_push_targets(self) -> None:
        """Refuse, before anything is served, a push target the node's network rules would never let a push reach
        (``provider.config_invalid`` naming its key, the address and the setting). A name that does not resolve now
        is left to the pushes (tried again until it does)."""
        for series in self.config.series.values():
            for target in series.push:
                try:
                    self.guard.check(target.url)
                except CeadError as exc:
                    if exc.code == "http.unreachable":
                        continue
                    raise bad(f"{target.key}.url", refusal(target.url, exc, self.setting)) from None

    def start(self) -> "Provider":
        """Note what the sources hold now (there already: not announced), then watch them in a thread, which pushes
        at once and after every ``poll_seconds``."""
        with self._poll_lock:
            self._look()
        self._stop.clear()
        self.announcer.reopen()
        self._thread = threading.Thread(target=self._watch, name="cead-provider-watch", daemon=True)
        self._thread.start()
        return self

    def after_fork(self) -> None:
        """In a server's worker process, before ``start``: no database connection shared with the parent."""
        for series in self.config.series.values():
            dispose = getattr(series.source, "dispose", None)
            if dispose is not None:
                dispose()
        engine = getattr(getattr(self.wallet, "_node", None), "_engine", None)
        if engine is not None:
            engine.dispose(close=False)

    def _look(self) -> None:
        known = self.known if self.known is not None else {}
        self.known = known
        for series in self.config.series.values():
            if series.name in known:
                continue
            try:
                known[series.name] = {r.id for r in series.source.releases()}
            except CeadError as exc:
                self._source_down(series, exc)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:   # keep watching; the fault is in the log
                log.exception("provider poll failed")
            if self._stop.wait(self.config.poll_seconds):
                break

    def stopping(self) -> None:
        """The server is stopping (under ``cead provider serve``, its worker was sent SIGTERM): each event stream
        sends ``event: end`` and ends now, so the server, which waits for every response to end, exits at once; the
        watcher finishes the poll in hand and starts no other."""
        self._stop.set()
        self.announcer.close()

    def stop(self) -> None:
        self.stopping()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # ---- HTTP ----------------------------------------------------------------------------------------------
    def __call__(self, environ, start_response) -> Iterable[bytes]:
        parts = [p for p in environ.get("PATH_INFO", "").split("/") if p]
        if parts == ["healthz"]:
            return Response(json.dumps({"status": "ok"}), mimetype="application/json")(environ, start_response)
        if parts == ["series"]:
            return Response(json.dumps({"series": [
                {"name": s.name, "dataset": s.dataset, **({"title": s.title} if s.title else {}),
                 "releases": f"/series/{s.name}/releases", "events": f"/series/{s.name}/events"}
                for s in self.config.series.values()]}), mimetype="application/json")(environ, start_response)
        if len(parts) < 3 or parts[0] != "series" or parts[1] not in self.config.series or \
                parts[2] not in ("releases", "events") or len(parts) > 4 or (parts[2] == "events" and len(parts) > 3):
            return _problem(404, "request.not_found", "No such series or endpoint; GET /series lists them.")(
                environ, start_response)
        if environ["REQUEST_METHOD"].upper() not in ("GET", "HEAD"):
            return _problem(405, "request.method_not_allowed", "The provider serves GET only; releases are pushed "
                            "by the provider itself.")(environ, start_response)
        environ[SERIES_ENV] = self.config.series[parts[1]]
        if parts[2] == "events":
            return self._events(environ, start_response)
        return (self._data if len(parts) == 4 else self._list)(environ, start_response)

    def _data_app(self, environ, start_response) -> Iterable[bytes]:
        series: Series = environ[SERIES_ENV]
        request = Request(environ)
        parts = [p for p in request.path.split("/") if p]
        extra = {DECISION_HEADER: "allow"}   # the gateway (CeadMiddleware) adds its receipt to the answer itself
        try:
            if len(parts) == 4:
                body = series.source.body(parts[3])
                if body is None:
                    return _problem(404, "provider.release_not_found", f"Series {series.name} has no release "
                                    f"{parts[3]!r}.")(environ, start_response)
                release = next((r for r in series.source.releases() if r.id == parts[3]), None)
                media = release.media_type if release else "text/csv"
                return Response(body, content_type=media, headers=extra)(environ, start_response)
            return Response(json.dumps(self.listing(series, request)), mimetype="application/json",
                            headers=extra)(environ, start_response)
        except CeadError as exc:
            if exc.code in ("provider.source_unavailable", "provider.upstream_failed"):
                # the operator's log has where and why (a database host, an upstream URL); the client, that it failed
                log.warning("series %s: %s", series.name, _without_key(exc.message, series))
                return _problem(503, exc.code, f"The source of series {series.name} cannot be read now; try again "
                                "shortly.", {"Retry-After": "5"})(environ, start_response)
            return _problem(400, exc.code, exc.message)(environ, start_response)

    def _limit(self, request: Request) -> int:
        raw = request.args.get("limit")
        if raw is None:
            return self.config.default_limit
        if not raw.isdigit() or not 1 <= int(raw) <= self.config.max_limit:
            raise CeadError("provider.limit_invalid", f"limit must be a whole number from 1 to "
                            f"{self.config.max_limit}.")
        return int(raw)

    def listing(self, series: Series, request: Request) -> dict[str, Any]:
        since = request.args.get("since")
        since_time = parse_time(since, "since") if since else None
        limit = self._limit(request)
        chosen, cursor = page(series.source.releases(since_time), request.args.get("cursor"), limit)
        base = (self.config.public_url or request.host_url.rstrip("/")) + f"/series/{series.name}/releases"
        query = {k: v for k, v in (("since", since), ("limit", request.args.get("limit"))) if v}
        return {"series": series.name, "dataset": series.dataset,
                "releases": [r.to_dict(base) for r in chosen],
                "next": cursor, "nextUrl": f"{base}?{urlencode({**query, 'cursor': cursor})}" if cursor else None}

    def _events_app(self, environ, start_response) -> Iterable[bytes]:
        series: Series = environ[SERIES_ENV]
        request = Request(environ)
        try:
            since = request.args.get("since")
            since_time = parse_time(since, "since") if since else None
        except CeadError as exc:
            return _problem(400, exc.code, exc.message)(environ, start_response)
        if not self._acquire_stream():
            return _problem(503, "provider.stream_busy", "Too many event streams are open; try again shortly.",
                            {"Retry-After": "5"})(environ, start_response)
        base = (self.config.public_url or request.host_url.rstrip("/")) + f"/series/{series.name}/releases"
        start_response("200 OK", [("Content-Type", "text/event-stream; charset=utf-8"),
                                  ("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")])
        return _Held(self._stream(series, since_time, base), self._release_stream)

    @property
    def open_streams(self) -> int:
        """How many event streams are open now (at most ``stream.max_clients``)."""
        return self._open

    def _acquire_stream(self) -> bool:
        if not self._streams.acquire(blocking=False):
            return False
        with self._count_lock:
            self._open += 1
        return True

    def _release_stream(self) -> None:
        with self._count_lock:
            self._open -= 1
        self._streams.release()

    def _stream(self, series: Series, since, base: str):
        """The events of one subscriber: releases after ``since`` first (when given), then each new one; a comment
        every ``heartbeat_seconds``; closed after ``stream.max_seconds``, or at once when the server stops
        (``stopping``), with ``event: end`` and the reason (the client reconnects with ``since``)."""
        try:
            after = self.announcer.seq
            yield b"retry: 3000\n\n"
            sent: set[str] = set()
            if since is not None:
                for release in series.source.releases(since):
                    sent.add(release.id)
                    yield _event(release, base)
            deadline = time.monotonic() + self.config.stream_max_seconds
            while not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                after, releases = self.announcer.wait(series.name, after,
                                                      min(self.config.heartbeat_seconds, left))
                fresh = [r for r in releases if r.id not in sent]
                for release in fresh:
                    sent.add(release.id)
                    yield _event(release, base)
                if not fresh and not self._stop.is_set():
                    yield b": heartbeat\n\n"
            # the client reconnects (an EventSource after the stream's `retry`) with `since`: to this provider once
            # it is back, or to another behind the same name
            reason = "server stopping" if self._stop.is_set() else "maximum stream duration"
            yield b"event: end\ndata: " + json.dumps({"reason": reason}).encode() + b"\n\n"
        except CeadError as exc:
            log.warning("series %s: %s", series.name, _without_key(exc.message, series))
            problem = Problem(exc.code, f"The source of series {series.name} cannot be read now; reconnect shortly.")
            yield b"event: error\ndata: " + json.dumps(problem.to_dict()).encode() + b"\n\n"


class _Held:
    """A stream that gives its place back when the server closes it (ended, or the client went away), even if it
    never started."""

    def __init__(self, stream, release):
        self.stream, self._release, self._lock = stream, release, threading.Lock()

    def __iter__(self):
        return self.stream

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            with self._lock:
                if self._release is not None:
                    self._release()
                    self._release = None


def _event(release: Release, base: str) -> bytes:
    data = json.dumps(release.to_dict(base), separators=(",", ":"))
    return f"event: release\nid: {release.id}\ndata: {data}\n\n".encode()
