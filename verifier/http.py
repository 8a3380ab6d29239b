"""Careful HTTP GET for did:web documents and status lists, and POST for what a node sends to an address
(``Fetcher.post``: webhooks, witnesses).

HTTPS only (unless ``allow_http``), never to loopback/private/link-local addresses (unless ``allow_private``),
bounded in total time and in size. Redirects are followed by hand (at most a few) so every hop gets the same
checks. The address is checked when the name is resolved and again on the connected socket, before the request is
sent (DNS rebinding). Environment proxies are ignored.
Every failure is a ``CeadError`` with an ``http.*`` code.
"""
from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection

from .results import CeadError

MAX_REDIRECTS = 3
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchResult:
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    status: int = 200
    url: str = ""


# What to do about a refused private address: on one machine for a test, allow it; in production, never. Whoever
# builds a Fetcher names the setting that governs it (``private_fix``): the node's config.yaml, a trust policy, a
# command's flag. PRIVATE_FIX is for a Fetcher built without one, so it names both places settings come from.
def private_fix(setting: str) -> str:
    """The sentence appended to ``http.address_refused``: allow private addresses by ``setting``, for a local test."""
    return f" For a local test only (e.g. nodes on 127.0.0.1), allow private addresses with {setting}."


PRIVATE_FIX = private_fix("network.allow_private: true in the node's config.yaml (`cead init "
                          "--allow-private-addresses` sets it) or in the verifier's trust policy")
NODE_PRIVATE_FIX = private_fix("network.allow_private: true in this node's config.yaml (what `cead init "
                               "--allow-private-addresses` sets); each command reads it when it runs, a running "
                               "`cead issuer serve` when it starts")


def untrusted_certificate(url: str, exc: Exception) -> CeadError:
    """``http.certificate_untrusted``: a TLS failure, said as what it means and how to fix it."""
    reason = str(exc)
    detail = next((part.strip() for part in re.split(r"[()\[\]]", reason)
                   if "certificate" in part.lower() or "hostname" in part.lower()), reason[:200])
    return CeadError("http.certificate_untrusted", f"The TLS certificate of {url} is not trusted ({detail}). If it "
                     "is signed by a CA of your own (such as `cead dev-ca`'s test CA), name that CA's PEM file: "
                     "network.ca_bundle in the node's config.yaml or the gateway's trust policy, or --ca-bundle "
                     "on the command line.", url=url)


def unreachable_reason(exc: BaseException) -> str:
    """Why a request got no answer, in words a person can act on, for "Cannot fetch URL: ..." messages.

    requests nests the cause three deep (ConnectionError > MaxRetryError > NewConnectionError >
    ConnectionRefusedError) and its text is a paragraph of pool internals; this finds the cause and says it."""
    chain: list[BaseException] = []
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is seen for seen in chain):
            continue
        chain.append(e)
        reason = getattr(e, "reason", None)
        todo += [reason if isinstance(reason, BaseException) else None, e.__cause__, e.__context__,
                 *(a for a in e.args if isinstance(a, BaseException))]

    def has(*types) -> bool:
        return any(isinstance(e, types) for e in chain)

    if has(requests.exceptions.HTTPError):
        return str(exc)
    if has(ConnectionRefusedError):
        return "the connection was refused (nothing is listening at that address and port: is the server running?)"
    if has(socket.gaierror, urllib3.exceptions.NameResolutionError):
        return "its host name does not resolve (check the spelling, or the DNS)"
    if has(requests.Timeout, TimeoutError, socket.timeout, urllib3.exceptions.TimeoutError):
        return "it did not answer in time"
    if has(ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        return "the connection was closed before an answer came"
    if has(requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL,
           urllib3.exceptions.LocationParseError):
        return "it is not an http(s) URL (e.g. https://node.example/path)"
    if has(requests.TooManyRedirects):
        return "it redirects too many times"
    said = [e.strerror for e in chain if isinstance(e, OSError) and e.strerror]   # e.g. "Network is unreachable"
    return said[0] if said else type(exc).__name__


def _refusal_in(exc: BaseException) -> CeadError | None:
    """The guard's own refusal (``http.address_refused``) if a client library wrapped it in one of its errors."""
    seen: list[BaseException] = []
    todo: list = [exc]
    while todo and len(seen) < 16:
        e = todo.pop()
        if not isinstance(e, BaseException) or any(e is s for s in seen):
            continue
        if isinstance(e, CeadError):
            return e
        seen.append(e)
        todo += [getattr(e, "reason", None), e.__cause__, e.__context__, *e.args]
    return None


def _address_refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


def _refuse_private_peer(sock: socket.socket, host: str, fix: str = PRIVATE_FIX) -> None:
    """Check the address actually connected to, before anything is sent (defeats DNS rebinding)."""
    ip = ipaddress.ip_address(sock.getpeername()[0].split("%")[0])
    if _address_refused(ip):
        sock.close()
        raise CeadError("http.address_refused", f"Refusing to talk to {host}: connected to non-public address {ip}."
                        + fix, address=str(ip))


class _PublicHTTPConnection(urllib3.connection.HTTPConnection):
    private_fix = PRIVATE_FIX

    def _new_conn(self):
        sock = super()._new_conn()
        _refuse_private_peer(sock, self.host, self.private_fix)
        return sock


class _PublicHTTPSConnection(urllib3.connection.HTTPSConnection):
    private_fix = PRIVATE_FIX

    def _new_conn(self):
        sock = super()._new_conn()
        _refuse_private_peer(sock, self.host, self.private_fix)
        return sock


class _PublicOnlyAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter whose connections refuse non-public peers, saying ``private_fix`` when they do."""

    def __init__(self, private_fix: str = PRIVATE_FIX):
        self.private_fix = private_fix      # before HTTPAdapter.__init__, which calls init_poolmanager
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        fix = getattr(self, "private_fix", PRIVATE_FIX)
        http = type("_PublicHTTPConnection", (_PublicHTTPConnection,), {"private_fix": fix})
        https = type("_PublicHTTPSConnection", (_PublicHTTPSConnection,), {"private_fix": fix})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("_PublicHTTPPool", (urllib3.HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("_PublicHTTPSPool", (urllib3.HTTPSConnectionPool,), {"ConnectionCls": https})}


class Fetcher:
    """``get(url)`` with the safety rules above. Thread-safe: each thread keeps one pooled keep-alive session, so
    repeated fetches from the same host (status lists, DID documents) reuse a TLS connection; a new connection is
    checked (peer address) before anything is sent, a reused one was checked when it was made."""

    def __init__(self, allow_http: bool = False, allow_private: bool = False, ca_bundle: str | None = None,
                 timeout: float = 5.0, max_bytes: int = 512 * 1024, private_fix: str | None = None):
        self.allow_http = allow_http
        self.allow_private = allow_private
        self.private_fix = private_fix or PRIVATE_FIX   # said with http.address_refused: the setting that allows it
        self.ca_bundle = ca_bundle
        self.timeout = float(timeout)
        self.max_bytes = int(max_bytes)
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self.guard(requests.Session())
            self._local.session = session
        return session

    def guard(self, session: requests.Session) -> requests.Session:
        """Put ``session`` (a ``requests.Session`` or a subclass, e.g. a library's OAuth client) under these rules
        on every connection it makes: no environment proxies or .netrc, and unless ``allow_private`` a non-public
        peer refused on the connected socket (``http.address_refused``). Checking the URL first stays the
        caller's part (:meth:`check`)."""
        session.trust_env = False  # no proxies or .netrc from the environment: the checks above must hold
        if not self.allow_private:
            session.mount("https://", _PublicOnlyAdapter(self.private_fix))
            session.mount("http://", _PublicOnlyAdapter(self.private_fix))
        return session

    def session(self) -> requests.Session:
        """This thread's session, with the same rules as ``get`` on every connection it makes (no environment
        proxies; a non-public peer refused unless ``allow_private``): for a POST to a URL :meth:`check` passed."""
        return self._session()

    def close(self) -> None:
        """Close this thread's pooled connections."""
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None

    # ---- checks ---------------------------------------------------------------------------------------------
    def _check_url(self, url: str) -> tuple[str, int]:
        try:
            parts = urlsplit(url)
            port = parts.port
        except (ValueError, TypeError):
            raise CeadError("http.scheme_refused", f"Not a valid URL: {url!r}", url=str(url)) from None
        allowed = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme not in allowed:
            raise CeadError("http.scheme_refused",
                            f"Refusing to fetch {url!r}: only {' and '.join(allowed)} URLs are allowed.", url=url)
        if not parts.hostname:
            raise CeadError("http.scheme_refused", f"URL {url!r} has no host.", url=url)
        if parts.username or parts.password:
            raise CeadError("http.scheme_refused", f"URL {url!r} must not carry credentials.", url=url)
        return parts.hostname, port or (443 if parts.scheme == "https" else 80)

    def _check_addresses(self, url: str, host: str, port: int) -> None:
        if self.allow_private:
            return
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, OSError) as exc:
            raise CeadError("http.unreachable", f"Cannot resolve host {host!r}: {exc}", url=url) from None
        for info in infos:
            ip = ipaddress.ip_address(info[4][0].split("%")[0])
            if _address_refused(ip):
                raise CeadError("http.address_refused",
                                f"Refusing to fetch {url!r}: {host} resolves to non-public address {ip}."
                                + self.private_fix, url=url, address=str(ip))

    def check(self, url: str) -> None:
        """Refuse ``url`` as ``get`` would (scheme, credentials in it, non-public addresses), before another
        client (a POST) is pointed at it."""
        host, port = self._check_url(url)
        self._check_addresses(url, host, port)

    # ---- fetching -------------------------------------------------------------------------------------------
    def get(self, url: str, accept: str = "application/json, application/did+json",
            etag: str | None = None) -> FetchResult:
        """The body at ``url``. With ``etag`` (the ETag of a copy the caller holds), the request is conditional
        (``If-None-Match``) and a 304 Not Modified comes back as a result with status 304 and an empty body."""
        deadline = time.monotonic() + self.timeout
        for _ in range(MAX_REDIRECTS + 1):
            host, port = self._check_url(url)
            self._check_addresses(url, host, port)
            result = self._get_once(url, accept, deadline, etag)
            if result.status == 304 and etag:
                return result
            if result.status in (301, 302, 303, 307, 308) and result.headers.get("Location"):
                url = urljoin(url, result.headers["Location"])
                continue
            if not 200 <= result.status < 300:
                raise CeadError("http.status", f"GET {url} returned HTTP {result.status}.", url=url,
                                status=result.status)
            return result
        raise CeadError("http.status", f"Too many redirects fetching {url!r}.", url=url)

    def post(self, url: str, data: bytes, *, headers: Mapping[str, str] | None = None,
             timeout: float | None = None) -> FetchResult:
        """POST ``data`` to ``url`` under the rules ``get`` follows: the URL checked first (scheme, no credentials,
        no non-public address unless ``allow_private``), the address actually connected to checked again before
        anything is sent (DNS rebinding), the CA bundle, no environment proxies, the answer's size limited. A
        redirect is not followed: it comes back as the result, as does any other status, for the caller to judge.
        ``timeout`` (default: the fetcher's) bounds the whole exchange. Failures are ``CeadError`` ``http.*``."""
        limit = self.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + limit
        host, port = self._check_url(url)
        try:
            self._check_addresses(url, host, port)
        except CeadError as exc:
            if exc.code != "http.address_refused":
                raise
            raise CeadError(exc.code, exc.message.replace("Refusing to fetch", "Refusing to post to", 1),
                            **exc.detail) from None
        sent = {"Accept-Encoding": "identity", **(headers or {})}
        try:
            response = self._session().post(url, data=data, headers=sent, stream=True, allow_redirects=False,
                                            timeout=self._remaining(url, deadline, limit),
                                            verify=self.ca_bundle or True)
        except CeadError:
            raise
        except requests.Timeout:
            raise CeadError("http.timeout", f"Posting to {url} took longer than {limit:g} s.", url=url) from None
        except requests.exceptions.SSLError as exc:
            raise untrusted_certificate(url, exc) from None
        except requests.RequestException as exc:
            refused = _refusal_in(exc)
            if refused is not None:
                raise refused from None
            raise CeadError("http.unreachable", f"Cannot post to {url}: {unreachable_reason(exc)}.",
                            url=url) from None
        with response:
            body = self._read_body(url, response, deadline, limit)
            return FetchResult(body, dict(response.headers), response.status_code, url)

    def _remaining(self, url: str, deadline: float, limit: float | None = None) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise CeadError("http.timeout", f"Fetching {url} took longer than {limit or self.timeout:g} s.",
                            url=url)
        return left

    def _get_once(self, url: str, accept: str, deadline: float, etag: str | None = None) -> FetchResult:
        session = self._session()
        headers = {"Accept": accept, "Accept-Encoding": "identity"}
        if etag:
            headers["If-None-Match"] = etag
        try:
            response = session.get(url, headers=headers, stream=True,
                                   allow_redirects=False, timeout=self._remaining(url, deadline),
                                   verify=self.ca_bundle or True)
        except CeadError:
            raise
        except requests.Timeout:
            raise CeadError("http.timeout", f"Fetching {url} took longer than {self.timeout:g} s.",
                            url=url) from None
        except requests.exceptions.SSLError as exc:
            raise untrusted_certificate(url, exc) from None
        except requests.RequestException as exc:
            raise CeadError("http.unreachable", f"Cannot fetch {url}: {unreachable_reason(exc)}.", url=url) from None
        with response:
            body = self._read_body(url, response, deadline)
            return FetchResult(body, dict(response.headers), response.status_code, url)

    def _read_body(self, url: str, response: requests.Response, deadline: float,
                   limit: float | None = None) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise CeadError("http.too_large", f"{url} is {declared} bytes; the limit is {self.max_bytes}.", url=url)
        body = bytearray()
        sock = _socket_of(response)
        try:
            while True:
                left = self._remaining(url, deadline, limit)
                if sock is not None:
                    try:
                        sock.settimeout(left)  # each read may wait only for what is left of the total time
                    except OSError:
                        sock = None
                chunk = response.raw.read1(_CHUNK)
                if not chunk:
                    # read to the end: closing the response hands the connection back to the pool (keep-alive)
                    # rather than closing it, as requests does for a body it read itself
                    response._content, response._content_consumed = bytes(body), True
                    return bytes(body)
                body += chunk
                if len(body) > self.max_bytes:
                    raise CeadError("http.too_large", f"{url} is larger than {self.max_bytes} bytes.", url=url)
        except CeadError:
            raise
        except (socket.timeout, TimeoutError):
            raise CeadError("http.timeout", f"Fetching {url} took longer than {limit or self.timeout:g} s.",
                            url=url) from None
        except Exception as exc:  # urllib3 wraps socket errors in several ways
            if "timed out" in str(exc).lower():
                raise CeadError("http.timeout", f"Fetching {url} took longer than {limit or self.timeout:g} s.",
                                url=url) from None
            raise CeadError("http.unreachable", f"Connection to {url} failed while reading: {type(exc).__name__}.",
                            url=url) from None


def _socket_of(response: requests.Response):
    """The socket a streamed response reads from, if it can be found (to shorten its timeout as time runs out)."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    if sock is None:  # http.client hands the socket to the response when the server closes the connection
        sock = getattr(getattr(getattr(getattr(response.raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None
