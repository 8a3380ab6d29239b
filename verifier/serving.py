"""Serving a WSGI app (the verifier service, an issuer node, a demo data API) with a threaded server, over TLS
when given a certificate. One place for it, so every `cead ... serve` behaves the same."""
from __future__ import annotations

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


def serve_wsgi(app, host: str, port: int, tls_cert: str | None = None, tls_key: str | None = None,
               announce: Callable[[str], None] | None = None) -> None:
    """Serve ``app`` until interrupted (Ctrl-C / SIGTERM via KeyboardInterrupt), then close the socket.

    ``announce`` receives the URL once the socket is bound (port 0 picks a free port).
    """
    if bool(tls_cert) != bool(tls_key):
        raise CeadError("serve.tls", "Give both --tls-cert and --tls-key, or neither.")
    context = None
    if tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise CeadError("serve.tls", f"Cannot use the TLS certificate and key: {exc}") from None
    server = make_bounded_server(host=host, port=port, app=app, ssl_context=context)
    if announce is not None:
        announce(f"{'https' if context else 'http'}://{host}:{server.server_port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
