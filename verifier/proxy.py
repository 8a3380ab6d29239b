"""The checking reverse proxy: the gateway forwards an allowed request to the data API and checks what comes back
before it leaves, for gateways (nginx, Envoy) that cannot hand a response to an authorisation service.

nginx's ``auth_request`` and Envoy's ``ext_authz`` ask before the upstream answers, so a pull whose table must be
checked (a threshold's minimum cell count, pseudonymisation, a run attestation's output) could only be denied
(``protocol.payload_missing``). Behind ``cead verifier serve --upstream URL`` such requests go to the verifier's
``/proxy`` prefix instead: the verifier decides the request, forwards it to the data API, checks the returned table
against the approval and only then returns it; a table that fails is replaced by a 403 with the decision's reasons
(``Cead-Decision-Reasons`` and a JSON body, both of which reach the client through nginx and Envoy).

The decision, the request binding and the response check are those of the WSGI middleware: the proxy is
``verifier.middleware.CeadMiddleware`` around a WSGI app that forwards to the upstream (``Forwarder``). The URL a
presentation is bound to is rebuilt from ``X-Original-Proto`` (else ``X-Forwarded-Proto``), ``X-Original-Host``
(else ``Host``) and the request target after the prefix, exactly as it arrived (never decoded and re-encoded).
The gateway in front must set those headers itself, overwriting any the client sent.
"""
from __future__ import annotations

import json
import logging
import ssl
from http import HTTPStatus
from typing import Iterable
from urllib.parse import quote, urlsplit

import urllib3

from .binding import PRESENTATION_HEADER
from .middleware import CeadMiddleware
from .results import Problem

log = logging.getLogger(__name__)

PREFIX = "/proxy"
ORIGINAL_URI = "cead.original_uri"     # environ key: the request target after the prefix, as it arrived

# never forwarded either way (RFC 9110 7.6.1), plus what only the hop to the verifier needs
_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade"}
_NOT_UPSTREAM = _HOP | {"host", "content-length", "accept-encoding", PRESENTATION_HEADER.lower(),
                        "x-original-host", "x-original-proto", "x-original-uri", "x-original-method"}
# what the gateway says about its decision: never taken from the data API's answer
_NOT_DOWNSTREAM = _HOP | {"cead-decision", "cead-decision-reasons", "cead-receipt", "cead-output-receipt"}


def original_target(environ: dict, prefix: str = PREFIX) -> str | None:
    """The request target (path and query) after ``prefix``, as the client sent it, or None if there is none."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw is None:   # a server that keeps no raw target: rebuild it from the decoded path
        query = environ.get("QUERY_STRING", "")
        raw = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe="/;=,~!$&'()*+:@") + \
            (f"?{query}" if query else "")
    if raw.startswith(("http://", "https://")):   # an absolute-form target
        parts = urlsplit(raw)
        raw = parts.path + (f"?{parts.query}" if parts.query else "")
    if not raw.startswith(prefix + "/"):
        return None
    return raw[len(prefix):]


def public_url(environ: dict) -> str:
    """The URL the client called, as the gateway in front says (see the module docstring)."""
    proto = environ.get("HTTP_X_ORIGINAL_PROTO") or environ.get("HTTP_X_FORWARDED_PROTO") or \
        environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_X_ORIGINAL_HOST") or environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    proto = proto.split(",")[0].strip().lower()
    if proto not in ("http", "https"):
        raise ValueError(f"X-Original-Proto {proto[:10]!r} is not http or https")
    return f"{proto}://{host}{environ[ORIGINAL_URI]}"


def _problem_response(start_response, status: str, code: str, message: str) -> list[bytes]:
    body = json.dumps({"problems": [Problem(code, message).to_dict()]}, separators=(",", ":")).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class Forwarder:
    """A WSGI app that sends each request on to ``upstream`` (``http(s)://host:port[/base]``) over pooled keep-alive
    connections and streams the answer back (status, headers and bytes as the upstream sent them; the body is asked
    for without content coding, so that the table checked is the table sent). The presentation header is not
    forwarded (the API needs neither it nor its size); the transfer manifest is. An unreachable upstream is a 502
    ``gateway.upstream_unavailable``."""

    def __init__(self, upstream: str, *, ca_bundle: str | None = None, timeout: float = 60.0,
                 max_connections: int = 32):
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"--upstream must be an http(s)://host[:port][/path] URL, not {upstream!r}")
        self.upstream = upstream.rstrip("/")
        kwargs: dict = {"maxsize": max_connections, "block": False, "retries": False,
                        "timeout": urllib3.Timeout(connect=5.0, read=timeout)}
        if parts.scheme == "https":
            try:
                kwargs["ssl_context"] = ssl.create_default_context(cafile=ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"--upstream-ca {ca_bundle!r} is not a readable PEM CA bundle: {exc}") from None
        self.pool = urllib3.PoolManager(**kwargs)

    def _headers(self, environ: dict) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                name = key[5:].replace("_", "-").lower()
                if name in _NOT_UPSTREAM or (name == "authorization" and value[:3].lower() == "vp "):
                    continue
                out[name] = value
        if environ.get("CONTENT_TYPE"):
            out["content-type"] = environ["CONTENT_TYPE"]
        out["accept-encoding"] = "identity"     # the table is checked as bytes: no gzip between us and the API
        try:
            url = urlsplit(public_url(environ))
            out["x-forwarded-host"], out["x-forwarded-proto"] = url.netloc, url.scheme
        except ValueError:
            pass
        if environ.get("REMOTE_ADDR"):
            prior = environ.get("HTTP_X_FORWARDED_FOR")
            out["x-forwarded-for"] = f"{prior}, {environ['REMOTE_ADDR']}" if prior else environ["REMOTE_ADDR"]
        return out

    @staticmethod
    def _body(environ: dict) -> bytes | None:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > 0:
            return environ["wsgi.input"].read(length)
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return environ["wsgi.input"].read() or None   # the middleware has read it (bounded) already
        return None

    def __call__(self, environ, start_response) -> Iterable[bytes]:
        target = environ.get(ORIGINAL_URI)
        if target is None:
            return _problem_response(start_response, "404 Not Found", "request.not_found",
                                     f"Nothing to forward: the path must start with {PREFIX}/.")
        try:
            answer = self.pool.urlopen(environ["REQUEST_METHOD"], self.upstream + target, body=self._body(environ),
                                       headers=self._headers(environ), redirect=False, preload_content=False,
                                       decode_content=False)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            log.warning("upstream %s unavailable: %s", self.upstream, exc)
            return _problem_response(start_response, "502 Bad Gateway", "gateway.upstream_unavailable",
                                     f"The data API behind the gateway ({self.upstream}) did not answer "
                                     f"({type(exc).__name__}); nothing was released. Check that it is running.")
        headers = [(k, v) for k, v in answer.headers.items() if k.lower() not in _NOT_DOWNSTREAM]
        try:
            reason = answer.reason or HTTPStatus(answer.status).phrase
        except ValueError:   # a status code Python does not know: WSGI still needs a phrase
            reason = "Unknown"
        start_response(f"{answer.status} {reason}", headers)
        return _Stream(answer)


class _Stream:
    """The upstream's body as the WSGI iterable, its connection returned to the pool when the server closes it."""

    def __init__(self, answer):
        self.answer = answer

    def __iter__(self):
        yield from self.answer.stream(64 * 1024, decode_content=False)

    def close(self) -> None:
        self.answer.release_conn()


class CheckingProxy:
    """WSGI: requests under ``prefix`` are decided, forwarded to the upstream and their answers checked
    (``CeadMiddleware`` around a ``Forwarder``); every other request goes to ``app`` (the verifier service)."""

    def __init__(self, app, decider, upstream: str | None, *, prefix: str = PREFIX, ca_bundle: str | None = None,
                 timeout: float = 60.0):
        self.app = app
        self.prefix = prefix
        self.forwarder = Forwarder(upstream, ca_bundle=ca_bundle, timeout=timeout) if upstream else None
        # the dataset is the manifest's (the gateway in front knows no endpoint's dataset); whether a request is a
        # push is said by its method, as behind the middleware's default
        self.checked = CeadMiddleware(self.forwarder, decider, public_url=public_url) if upstream else None

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            return self.app(environ, start_response)
        if self.checked is None:
            return _problem_response(start_response, "404 Not Found", "gateway.upstream_not_configured",
                                     "This verifier forwards nothing: start it with --upstream URL (the data API) "
                                     f"to have responses checked at {self.prefix}/.")
        target = original_target(environ, self.prefix)
        if target is None:
            return _problem_response(start_response, "404 Not Found", "request.not_found",
                                     f"Send the original request target after {self.prefix}, e.g. "
                                     f"{self.prefix}/datasets/x?y=1.")
        environ[ORIGINAL_URI] = target
        return self.checked(environ, start_response)


__all__ = ["CheckingProxy", "Forwarder", "PREFIX", "original_target", "public_url"]
