"""Serving a WSGI app (the verifier service, an issuer node, a demo data API) on a production WSGI server, granian
(or gunicorn when asked): worker processes of threads, TLS when given a certificate, graceful shutdown on SIGTERM,
header limits that admit the largest presentation Cead makes. One place for it, so every `cead ... serve` behaves
the same."""
from __future__ import annotations

import gc
import logging
import signal
import socket
import ssl
import threading
from typing import Callable

from .results import CeadError


def read_bounded(stream, limit: int) -> bytes | None:
    """Read ``stream`` to its end, but never more than ``limit`` + 1 bytes: the bytes, or None when it holds more
    than ``limit``. For request bodies without a Content-Length (chunked), which Werkzeug would otherwise cut at a
    limit without saying so (an oversize body then looks merely malformed): the middleware, the issuing API and the
    wallet's inbox/requests endpoints read chunked bodies with it."""
    chunks, size = [], 0
    while size <= limit:
        chunk = stream.read(min(64 * 1024, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return None if size > limit else b"".join(chunks)


MAX_THREADS = 64   # requests served at once; more connections wait in the listen queue (docs/production.md)


def make_bounded_server(app, host: str, port: int, ssl_context=None, max_threads: int = MAX_THREADS):
    """Werkzeug's threaded server, serving at most ``max_threads`` requests at once: the thread count stays bounded
    however many clients retry (a request that waits on a slow database holds its thread until its bound)."""
    from werkzeug.serving import make_server
    server = make_server(host, port, app, threaded=True, ssl_context=ssl_context)
    slots = threading.BoundedSemaphore(max_threads)
    start, run = server.process_request, server.process_request_thread

    def process_request(request, client_address):
        slots.acquire()           # the accept loop waits here while every slot is busy
        try:
            start(request, client_address)
        except BaseException:
            slots.release()
            raise

    def process_request_thread(request, client_address):
        try:
            run(request, client_address)
        finally:
            slots.release()

    server.process_request, server.process_request_thread = process_request, process_request_thread
    return server


# The largest presentation Cead makes travels in one header: up to MAX_CREDENTIALS credentials in a presentation of
# at most 1 MiB of JSON (verifier.credential.MAX_JSON), base64url-encoded (4/3) with the header name: 1.5 MB admits
# it. nginx needs the same (large_client_header_buffers, docs/gateway.md).
MAX_HEADER_FIELD = 1_500_000
MAX_HEADER_FIELDS = 100
# granian bounds the whole request head (request line and every header field), not each field: a head up to
# MAX_REQUEST_HEAD (the largest presentation and 500 KB for the rest) is always read. hyper checks the bound between
# reads, and one read takes at most that much, so a head of twice it or more is always answered 431; so are more
# than 100 header fields (hyper's limit, the same as MAX_HEADER_FIELDS).
MAX_REQUEST_HEAD = 2_000_000

SERVERS = ("granian", "gunicorn")


def serve_wsgi(app, host: str, port: int, tls_cert: str | None = None, tls_key: str | None = None,
               announce: Callable[[str], None] | None = None, *, workers: int = 1, threads: int = 8,
               post_fork: Callable[[], None] | None = None, graceful_timeout: int = 30,
               server: str = "granian", on_stop: Callable[[], None] | None = None) -> None:
    """Serve ``app`` with ``workers`` processes of ``threads`` threads each until SIGTERM or Ctrl-C, then stop
    gracefully: no new connections, idle keep-alive ones closed, requests in flight finish (up to
    ``graceful_timeout`` s). A worker that dies is forked again (docs/deploy.md, "Stopping, restarting").

    ``server``: granian (Rust: HTTP parsing and TLS outside Python; the default, a third less CPU per request than
    gunicorn in docs/performance.md) or gunicorn (gthread). TLS when given a certificate and key; header fields up
    to ``MAX_HEADER_FIELD`` bytes (the largest presentation Cead makes); keep-alive connections. ``announce``
    receives the URL once the server accepts connections (port 0 picks a free port). ``post_fork`` runs in each
    worker before it serves (e.g. to drop database connections made before the fork). The app is built once, before
    the workers fork. ``on_stop`` runs in each worker (in a thread of its own) as soon as the worker is told to stop
    (SIGTERM or SIGINT, from the main process or sent to the worker itself), before the server waits for the requests
    in flight: an app whose responses never end by themselves (an event stream) ends them there, or the stop waits
    ``graceful_timeout`` s and the worker is killed (granian only; the gunicorn workers watch the signals
    themselves).
    """
    if server not in SERVERS:
        raise ValueError(f"server must be one of {SERVERS}")
    if on_stop is not None and server != "granian":
        raise ValueError("on_stop is run under granian only")
    if bool(tls_cert) != bool(tls_key):
        raise CeadError("serve.tls", "Give both --tls-cert and --tls-key, or neither.")
    if tls_cert:   # check now, with a clear error, rather than in every worker
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise CeadError("serve.tls", f"Cannot use the TLS certificate and key: {exc}") from None
    # Everything built so far (the app, its caches, the imported modules) lives as long as this process and its
    # forked workers: moved out of the garbage collector's sight, it is never walked again. In the workers the
    # collector then leaves those pages shared with this process (copy-on-write), and at a stop the interpreter's
    # last collections no longer walk ~150,000 objects: they were most of a stop (`cead issuer serve`: 0.4 s of
    # CPU, 0.4-2.4 s on a loaded machine, against 0.08 s and about 0.1 s now; tests/test_serve_lifecycle.py).
    gc.freeze()
    try:
        if server == "granian":
            _granian(app, host, port, tls_cert, tls_key, announce, workers=max(int(workers), 1),
                     threads=max(int(threads), 1), post_fork=post_fork, graceful_timeout=graceful_timeout,
                     on_stop=on_stop)
        else:
            _gunicorn(app, host, port, tls_cert, tls_key, announce, workers=max(int(workers), 1),
                      threads=max(int(threads), 1), post_fork=post_fork, graceful_timeout=graceful_timeout)
    except KeyboardInterrupt:
        pass
    except SystemExit as exc:   # the server exits on its own signals; a clean stop is not an error
        if exc.code not in (0, None):
            raise CeadError("serve.failed", f"The server stopped with status {exc.code}; see the messages "
                            "above.") from None


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def when_told_to_stop(on_stop: Callable[[], None]) -> None:
    """Call ``on_stop`` in a thread of this process as soon as it receives SIGTERM or SIGINT, whoever handles the
    signal. Run it in the main thread (``signal.set_wakeup_fd`` may only be set there), in a worker before the
    server serves. The signal's number is written to a socket at once (the interpreter does so for every signal
    that has a Python handler, before the handler runs), and a thread waiting on that socket calls ``on_stop``:
    granian's worker, whose main thread is inside the server until every response has ended, handles the signal
    itself (it stops accepting and waits for the requests in flight) and has no hook of its own for it."""
    told, wakeup = socket.socketpair()
    wakeup.setblocking(False)
    signal.set_wakeup_fd(wakeup.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        try:
            while True:
                got = told.recv(64)
                if not got:
                    return
                if any(number in STOP_SIGNALS for number in got):
                    break
        except OSError:
            return
        try:
            on_stop()
        except Exception:   # the stop goes on regardless; the fault is in the log
            logging.getLogger(__name__).exception("stopping the app failed")
    threading.Thread(target=watch, name="cead-on-stop", daemon=True).start()
    # the sockets live as long as the worker (the wakeup fd is a plain number to the interpreter)
    when_told_to_stop.sockets = (told, wakeup)   # type: ignore[attr-defined]


def _granian(app, host, port, tls_cert, tls_key, announce, *, workers, threads, post_fork, graceful_timeout,
             on_stop=None):
    """granian's WSGI interface: each worker binds its own listening socket to the port (SO_REUSEPORT), so this
    process holds the port (bound, not listening: it receives no connections) from before the workers start until
    they stop, which also fixes the port that 0 picks."""
    import multiprocessing
    import time
    from pathlib import Path

    from granian.constants import HTTPModes, Interfaces, SSLProtocols
    from granian.http import HTTP1Settings
    from granian.log import LOGGING_CONFIG, LogLevels
    from granian.server.mp import MPServer

    try:
        family, *_, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        if port:   # a port something else listens on is refused, as gunicorn does (SO_REUSEPORT alone would share it)
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
        hold = socket.socket(family, socket.SOCK_STREAM)
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        hold.bind(address)
    except OSError as exc:
        raise CeadError("serve.failed", f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    ip, port = hold.getsockname()[:2]
    scheme = "https" if tls_cert else "http"
    # granian's log (warnings and errors, no access log) on stderr, as gunicorn's was
    handlers = {name: {**handler, "stream": "ext://sys.stderr"}
                for name, handler in LOGGING_CONFIG["handlers"].items()}
    server = MPServer(
        "cead", address=ip, port=port, interface=Interfaces.WSGI, workers=workers, blocking_threads=threads,
        http=HTTPModes.http1, websockets=False, http1_settings=HTTP1Settings(max_buffer_size=MAX_REQUEST_HEAD),
        ssl_cert=Path(tls_cert) if tls_cert else None, ssl_key=Path(tls_key) if tls_key else None,
        ssl_protocol_min=SSLProtocols.tls12, workers_kill_timeout=max(int(graceful_timeout), 1),
        respawn_failed_workers=True,   # a worker that dies is forked again, as gunicorn's arbiter does
        log_level=LogLevels.warning, log_dictconfig={"handlers": handlers})

    # granian warns at every start when a worker has more threads than 2 x cores + 1; Cead's threads mostly wait
    # (Redis, status lists, the ledger), and --threads says how many there are
    logging.getLogger("_granian").addFilter(lambda record: "Python threads" not in record.getMessage())

    def ready() -> None:   # announce once a worker listens (this process only holds the port)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((ip, port), timeout=1):
                    announce(f"{scheme}://{host}:{port}")
                    return
            except OSError:
                time.sleep(0.05)   # granian logs why a worker could not start

    if announce is not None:
        server.on_startup(lambda: threading.Thread(target=ready, daemon=True, name="cead-announce").start())

    def terminated(environ, start_response):
        # the body granian hands over ends where the request's does (chunked too), as gunicorn's: Werkzeug and
        # read_bounded may read a body without a Content-Length to its end
        environ["wsgi.input_terminated"] = True
        return app(environ, start_response)

    def load(_target):   # in each worker, after the fork, in its main thread
        if post_fork is not None:
            post_fork()
        if on_stop is not None:
            when_told_to_stop(on_stop)
        return terminated

    # the workers are forked from this process with the app built (as gunicorn's preload): a worker started any
    # other way would have to rebuild it from an import string; Python 3.14 no longer forks by default
    multiprocessing.set_start_method("fork", force=True)
    try:
        server.serve(target_loader=load)
    finally:
        hold.close()


def _gunicorn(app, host, port, tls_cert, tls_key, announce, *, workers, threads, post_fork, graceful_timeout):
    from gunicorn.app.base import BaseApplication

    scheme = "https" if tls_cert else "http"

    def when_ready(server) -> None:
        if announce is not None:
            bound = server.LISTENERS[0].sock.getsockname()[1] if server.LISTENERS else port
            announce(f"{scheme}://{host}:{bound}")

    options = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers, "threads": threads, "worker_class": "gthread",
        "graceful_timeout": graceful_timeout, "timeout": 60, "keepalive": 5,
        "limit_request_field_size": MAX_HEADER_FIELD, "limit_request_fields": MAX_HEADER_FIELDS,
        "limit_request_line": 8190, "accesslog": None, "errorlog": "-", "loglevel": "warning",
        "when_ready": when_ready, "proc_name": "cead",
        "post_fork": (lambda server, worker: post_fork()) if post_fork else (lambda server, worker: None),
    }
    if tls_cert:
        options.update(certfile=tls_cert, keyfile=tls_key)

    class _Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)
            # gunicorn 25.1+ opens a control socket (gunicornc) in $HOME or $XDG_RUNTIME_DIR: nothing in Cead uses
            # it, and in a container with a read-only root filesystem it only logs an error at every start
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self):
            return app

    _Server().run()
