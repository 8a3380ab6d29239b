"""Serve a WSGI app (e.g. Flask) or static files over real HTTPS on 127.0.0.1, with a throwaway trustme CA.

    with https_server(app) as (base_url, ca_bundle):
        Fetcher(allow_private=True, ca_bundle=ca_bundle).get(base_url + "/x")

    with https_server(static={"/.well-known/did.json": doc}) as (base_url, ca_bundle): ...

``base_url`` is ``https://localhost:<port>`` (the certificate covers ``localhost`` and ``127.0.0.1``).
``tls=False`` serves plain HTTP instead (``ca_bundle`` is then None).
"""
from __future__ import annotations

import json
import ssl
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import trustme
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


def static_app(files: dict[str, Any]):
    """A WSGI app serving ``{path: body}``; a dict/list body is served as JSON, str/bytes as is."""
    def app(environ, start_response):
        path = Request(environ).path
        if path not in files:
            return Response("not found", status=404)(environ, start_response)
        body = files[path]
        if isinstance(body, (dict, list)):
            return Response(json.dumps(body), mimetype="application/json")(environ, start_response)
        return Response(body, mimetype="application/octet-stream")(environ, start_response)
    return app


@contextmanager
def https_server(app=None, *, static: dict[str, Any] | None = None, tls: bool = True,
                 host: str = "127.0.0.1") -> Iterator[tuple[str, str | None]]:
    """Run ``app`` (or ``static_app(static)``) in a background thread; yields ``(base_url, ca_bundle_path)``."""
    if (app is None) == (static is None):
        raise ValueError("pass exactly one of app or static")
    app = app or static_app(static)
    context = None
    with tempfile.TemporaryDirectory() as tmp:
        ca_path = None
        if tls:
            ca = trustme.CA()
            cert = ca.issue_cert("localhost", "127.0.0.1")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(context)
            ca_path = str(Path(tmp) / "ca.pem")
            ca.cert_pem.write_to_path(ca_path)
        server = make_server(host, 0, app, threaded=True, ssl_context=context)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield f"{'https' if tls else 'http'}://localhost:{server.server_port}", ca_path
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def vc_api_verify(base_url: str, ca_bundle: str, credential: Any) -> tuple[int, dict]:
    """POST a credential to a VC-API ``/credentials/verify`` (proof checks asked for): (status, JSON answer)."""
    import requests
    response = requests.post(base_url + "/credentials/verify",
                             json={"verifiableCredential": credential, "options": {"checks": ["proof"]}},
                             verify=ca_bundle, timeout=30)
    return response.status_code, response.json()


@contextmanager
def rebinding(host: str = "localhost", public: str = "93.184.215.14") -> Iterator[list]:
    """DNS rebinding on this machine: while the block runs, ``host`` resolves to a public address (``public``) for
    the fetcher's own check of the name (``verifier.http``'s lookup) and to its real loopback address for the lookup
    that makes the connection. A client that checks only the name's address is fooled into connecting to
    127.0.0.1; only a check of the address actually connected to refuses it. The public address is never connected
    to. Yields the list of lookups answered with it (a test can assert the check was made)."""
    import socket
    import sys
    real = socket.getaddrinfo
    fooled: list = []

    def getaddrinfo(name, port, *args, **kwargs):
        if name == host and sys._getframe(1).f_globals.get("__name__") == "verifier.http":
            fooled.append(name)
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (public, int(port or 0)))]
        return real(name, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield fooled
    finally:
        socket.getaddrinfo = real
