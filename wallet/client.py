"""The pipeline client: every request carries a fresh presentation bound to it, so a scheduled job pulls (or pushes)
each update with no manual step.

``requests``::

    session.get(url, auth=CeadAuth(wallet, dataset=IRI, purpose=IRI))

``httpx``::

    httpx.Client(auth=CeadHttpxAuth(wallet, dataset=IRI)).get(url)

A denial by the gateway (401/403) raises :class:`TransferDenied` carrying the verifier's reasons.

With ``discover=True`` the pipeline needs only the URL: the first request to a URL path goes without a
presentation; the gateway's 401 publishes ``presentation_definition`` (DIF Presentation
Exchange 2.0) and the dataset it is for; the wallet selects from it and sends the request again with the
presentation. The definition is kept per origin and path for the life of the auth object.
"""
from __future__ import annotations

import json
from typing import Any

import httpx
import requests

from schemas.values import strict_json
from schemas.vocab import expand
from verifier.binding import MANIFEST_HEADER, PRESENTATION_HEADER, normalise_url, request_binding
from verifier.http import unreachable_reason, untrusted_certificate
from verifier.results import CeadError, Problem

from .present import build_presentation, manifest_overlay, present_for_request

class TransferDenied(CeadError):
    """The gateway refused the transfer; ``reasons`` are the verifier's problems."""

    def __init__(self, status: int, reasons: list[Problem], url: str):
        text = "; ".join(f"{p.code}: {p.message}" for p in reasons) or "no reason given"
        super().__init__("transfer.denied", f"The transfer to {url} was denied (HTTP {status}): {text}",
                         status=status, url=url, reasons=[p.to_dict() for p in reasons])
        self.status = status
        self.reasons = reasons


def _reasons(body: bytes) -> list[Problem]:
    """The problems in a denial body: ``{"problems": [...]}`` or ``{"reasons": [...]}`` or ``{"error": ...}``."""
    try:
        data = strict_json(body, "the denial")
    except (ValueError, RecursionError, CeadError):
        text = body.decode("utf-8", "replace").strip()[:500]
        return [Problem("transfer.denied", text)] if text else []
    if not isinstance(data, dict):
        return []
    items = data.get("problems") or data.get("reasons") or []
    if not items and isinstance(data.get("error"), (str, dict)):
        items = [data["error"]]
    out = []
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, dict):
            out.append(Problem(str(item.get("code", "transfer.denied")), str(item.get("message", "")),
                               item.get("detail") or {}))
        elif isinstance(item, str):
            out.append(Problem("transfer.denied", item))
    return out


def keep_receipt(wallet, headers, sent: bytes | str | None, received: bytes | None) -> None:
    """Keep the gateway's receipt (``Cead-Receipt``) in the wallet's database (issue 15; issuer.evidence)."""
    token = headers.get("Cead-Receipt") if headers is not None else None
    engine = getattr(wallet, "engine", None)
    if token and engine is not None:
        from issuer.evidence.receipts import keep_copy
        verifier = getattr(wallet, "verifier", None)   # the gateway's signature checked as it arrives
        keep_copy(engine, token, sent.encode() if isinstance(sent, str) else sent, received,
                  resolver=getattr(verifier, "resolver", None))


def _receipt_hashes_pull(token: str) -> bool:
    """Whether a receipt records the hash of a pulled payload (only then are the received bytes worth reading)."""
    try:
        from verifier.receipts import unverified_receipt_claims
        payload = unverified_receipt_claims(token).get("payload") or {}
    except CeadError:
        return False
    return isinstance(payload, dict) and payload.get("direction") == "pull" and bool(payload.get("sha256"))


REASONS_HEADER = "Cead-Decision-Reasons"


def _header_reasons(headers) -> list[Problem]:
    """The reason codes a gateway passed on in ``Cead-Decision-Reasons`` (nginx replaces the verifier's JSON body
    with its own error page, but forwards this header): one problem per code."""
    value = headers.get(REASONS_HEADER) if headers is not None else None
    codes = [c.strip() for c in value.split(",")] if isinstance(value, str) else []
    return [Problem(code, f"The gateway's verifier denied the transfer: {code} (the reason's details are in the "
                    "verifier's log and receipt).") for code in codes if code]


def check_response(status: int, body: bytes, url: str, headers=None) -> None:
    """Raise ``TransferDenied`` for a 401/403 (or a 5xx carrying the verifier's reasons), with the verifier's
    reasons: from the JSON body, else from the ``Cead-Decision-Reasons`` header (behind nginx the body is nginx's
    own page), so the analyst sees the real reason."""
    from_header = _header_reasons(headers)
    if status in (401, 403) or (status >= 500 and from_header):
        reasons = _reasons(body)
        if from_header and not any(p.code != "transfer.denied" for p in reasons):
            reasons = from_header
        raise TransferDenied(status, reasons, url)


class _Presenting:
    """``manifest``: the whole transfer manifest (instead of the one the wallet makes); ``manifest_fields``: fields
    laid over the manifest (the given one, or the one the wallet makes), e.g. ``{"protocolRun": [...]}``;
    ``row_count``: the manifest's ``rowCount`` (the rows sent, or for a pull at most how many are asked for), which
    an approval with ``maxRowsPerTransfer`` requires."""

    def __init__(self, wallet, *, dataset: str | None = None, purpose: str | None = None,
                 definition: dict | None = None, manifest: dict | None = None, format: str = "jwt",
                 lifetime: int = 60, raise_on_denial: bool = True, discover: bool = False,
                 manifest_fields: dict | None = None, row_count: int | None = None):
        self.wallet = wallet
        self.options: dict[str, Any] = dict(dataset=dataset, purpose=purpose, definition=definition,
                                            format=format, lifetime=lifetime,
                                            manifest_fields=manifest_overlay(manifest_fields, row_count))
        self.manifest = manifest
        self.raise_on_denial = raise_on_denial
        self.discover = discover and definition is None
        self.discovered: dict[str, dict] = {}   # origin + path -> {"definition", "dataset", "purpose"}

    def headers(self, method: str, url: str, body: bytes | None) -> dict[str, str] | None:
        """The presentation headers; None when the gateway must first be asked what to present (``discover``)."""
        options = self.options
        if self.discover:
            found = self.discovered.get(_path_key(url))
            if found is None:
                return None
            # what the caller gave wins over what the gateway published
            options = {**options, **{k: v for k, v in found.items() if options.get(k) is None}}
        return present_for_request(self.wallet, method, url, body, self.manifest, **options)

    def _named_dataset(self) -> tuple[str | None, str]:
        """The dataset the caller said this transfer is for, and where: ``dataset``, else the one the manifest
        names (the fields laid over it, else the whole manifest given); None when neither names one."""
        if self.options.get("dataset") is not None:
            return self.options["dataset"], "this transfer is for"
        for source in (self.options.get("manifest_fields"), self.manifest):
            if isinstance(source, dict) and isinstance(source.get("dataset"), str):
                return source["dataset"], "the transfer manifest names"
        return None, ""

    def _learn(self, status: int, body: bytes, url: str) -> bool:
        """Read the definition from a 401 to an unauthenticated request; False when the answer is not a 401.
        Raises ``pex.definition_missing`` when the gateway publishes none."""
        if status != 401:
            return False
        try:
            data = strict_json(body, "the gateway's answer")
        except (ValueError, RecursionError, CeadError):
            data = None
        data = data if isinstance(data, dict) else {}
        definition, dataset = data.get("presentation_definition"), data.get("dataset")
        if not isinstance(definition, dict) or not isinstance(dataset, str):
            why = data.get("presentation_definition_error")
            why = f" ({why.get('code')}: {why.get('message')})" if isinstance(why, dict) else ""
            wanted, _ = self._named_dataset()
            fix = (f"the dataset is named ({wanted}), so leave out discovery (--discover, discover=True) and the "
                   "wallet presents for it" if wanted is not None else "name the dataset instead (--dataset)")
            raise CeadError("pex.definition_missing", f"{url} asks for a presentation but publishes no presentation "
                            f"definition{why}; {fix}.", url=url)
        wanted, named = self._named_dataset()
        if wanted is not None and expand(dataset) != expand(wanted):
            # the gateway would have the wallet show what it holds for another dataset: present nothing
            raise CeadError("pex.definition_mismatch", f"{url} asks for credentials for {dataset}, but {named} "
                            f"{wanted}; nothing was presented.", url=url, asked=dataset, wanted=wanted)
        purpose = data.get("purpose")
        self.discovered[_path_key(url)] = {"definition": definition, "dataset": dataset,
                                           "purpose": purpose if isinstance(purpose, str) else None}
        return True


def _path_key(url: str) -> str:
    """Where a discovered definition applies: the URL's origin and path (not its query)."""
    return normalise_url(url).split("?", 1)[0]


class CeadAuth(_Presenting, requests.auth.AuthBase):
    """``requests`` auth: binds a fresh presentation to the final prepared request (method, URL, body)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body
        if body is not None and not isinstance(body, (bytes, str)):
            raise CeadError("request.body_unsupported",
                            "A streamed request body cannot be bound to a presentation; pass bytes.")
        headers = self.headers(request.method, request.url, body)
        request.register_hook("response", self._no_redirect)
        request.register_hook("response", self._keep_receipt)
        if headers is None:   # discover: ask without a presentation, learn what to present, send again
            request.register_hook("response", self._retry)
        else:
            request.headers.update(headers)
        if self.raise_on_denial:
            request.register_hook("response", self._check)
        return request

    def _keep_receipt(self, response: requests.Response, *args, stream: bool = False, **kwargs) -> requests.Response:
        # The body is read only to check a pull receipt's payload hash, and never for a streamed response
        # (stream=True: an event stream has no end, and a large download is the caller's to read): reading it here
        # would hold ``requests.get`` until the stream closed. Such a receipt is kept without the payload check.
        token = response.headers.get("Cead-Receipt")
        if token and getattr(self.wallet, "engine", None) is not None:
            received = None if stream or not _receipt_hashes_pull(token) else response.content
            keep_receipt(self.wallet, response.headers, response.request.body, received)
        return response

    def _retry(self, response: requests.Response, **kwargs) -> requests.Response:
        if not self._learn(response.status_code, response.content, response.request.url):
            return response
        response.close()
        retry = response.request.copy()
        retry.headers.update(self.headers(retry.method, retry.url, retry.body))
        answer = response.connection.send(retry, **kwargs)
        answer.history.append(response)
        answer.request = retry
        return self._no_redirect(answer)

    @staticmethod
    def _no_redirect(response: requests.Response, *args, **kwargs) -> requests.Response:
        # requests would follow a redirect with the presentation still attached, handing it (and the credentials
        # in it) to wherever the redirect points; bound to the first URL, it could never be allowed there anyway.
        if response.is_redirect:
            raise CeadError("transfer.redirected", f"{response.url} redirected to {response.headers.get('location')!r};"
                            " a presentation is bound to one URL, so call the final URL directly.",
                            status=response.status_code)
        return response

    @staticmethod
    def _check(response: requests.Response, *args, **kwargs) -> requests.Response:
        # only a denial's body is read: an allowed streamed response (stream=True, an event stream) stays unread
        if response.status_code in (401, 403) or response.status_code >= 500:
            check_response(response.status_code, response.content, response.url, response.headers)
        return response


class CeadHttpxAuth(_Presenting, httpx.Auth):
    """``httpx`` auth: binds a fresh presentation to each request (the request body is read first; the answer's
    body only when needed, so an allowed event stream stays open).

    A redirect is refused (``transfer.redirected``), as with :class:`CeadAuth`: a 3xx answer raises. httpx follows
    redirects (``follow_redirects=True``) without asking the auth again, copying the presentation headers into the
    redirected request; so the presented request carries a guard that lets it go out once only. Through httpx's
    own transport the guard (the ``trace`` extension, which httpx copies into the redirected request) raises before
    the copy's headers are sent; through a transport that reads the body first (``MockTransport``,
    ``WSGITransport``), when the copy's body is read. Either way the caller gets ``transfer.redirected``, never
    the redirected answer."""

    requires_request_body = True
    # The response body is read here only when the flow needs it (a denial's reasons, a 401's definition, a pull
    # receipt's payload hash: a finite body the gateway has already hashed), never for an allowed stream: an event
    # stream has no end, so reading it would hold ``client.stream(...)`` until the provider closed it.
    requires_response_body = False

    def auth_flow(self, request: httpx.Request):
        flow = self._flow(request, asynchronous=False)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            if _body_needed(response):
                response.read()
            try:
                outgoing = flow.send(response)
            except StopIteration:
                break

    async def async_auth_flow(self, request: httpx.Request):
        # httpx's own, with the flow told it is asynchronous (its trace guard must then be a coroutine function)
        await request.aread()
        flow = self._flow(request, asynchronous=True)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            if _body_needed(response):
                await response.aread()
            try:
                outgoing = flow.send(response)
            except StopIteration:
                break

    def _flow(self, request: httpx.Request, *, asynchronous: bool):
        _unpresented(request)
        url = str(request.url)
        headers = self.headers(request.method, url, request.content)
        if headers is None:   # discover: ask without a presentation, learn what to present, send again
            response = yield request
            _not_redirected(response, url)
            if not self._learn(response.status_code, _read_body(response) or b"", url):
                if self.raise_on_denial and _denial(response.status_code):
                    check_response(response.status_code, response.content, url, response.headers)
                return
            headers = self.headers(request.method, url, request.content)
        request.headers.update(headers)
        _send_once(request, url, asynchronous)
        response = yield request
        _not_redirected(response, url)
        keep_receipt(self.wallet, response.headers, request.content, _read_body(response))
        if self.raise_on_denial and _denial(response.status_code):
            check_response(response.status_code, response.content, url, response.headers)


def _denial(status: int) -> bool:
    return status in (401, 403) or status >= 500


def _body_needed(response: httpx.Response) -> bool:
    """Whether the wallet must read this answer's body: a denial or a 401 (reasons, definition), or an allowed
    pull whose receipt records the payload hash (so the body is finite and can be checked against it)."""
    if _denial(response.status_code):
        return True
    token = response.headers.get("Cead-Receipt")
    return bool(token) and _receipt_hashes_pull(token)


def _read_body(response: httpx.Response) -> bytes | None:
    try:
        return response.content
    except httpx.ResponseNotRead:
        return None


def _redirected(url: str, target: Any, status: int | None = None) -> CeadError:
    return CeadError("transfer.redirected", f"{url} redirected to {str(target)!r}; a presentation is bound to one "
                     "URL, so call the final URL directly.", **({"status": status} if status else {}))


def _not_redirected(response: httpx.Response, url: str) -> None:
    """A redirect answer, or an answer reached through one, is refused (as ``CeadAuth`` does for requests)."""
    for answer in [*response.history, response]:
        if answer.has_redirect_location:
            raise _redirected(url, answer.headers.get("location"), answer.status_code)


class _OnceStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """The presented request's body. httpx's transport reads it once, after the trace guard has let its headers
    go; a redirected copy (the same stream object) read without that is refused. A transport that reads the
    request through ``Request.read()`` (``MockTransport``, ``WSGITransport``) has its bytes already and never reads
    this for the request itself; ``ASGITransport`` reads it without a trace, so one asynchronous read is allowed."""

    def __init__(self, body: bytes, url: str, sent: list):
        self.body, self.url, self.sent = body, url, sent

    def _take(self, asynchronous: bool) -> None:
        # [True]: the headers went out once through httpx's transport, and this is that request's body
        if self.sent != [True] and not (asynchronous and not self.sent):
            raise _redirected(self.url, "another request (a redirect httpx follows)")
        self.sent.append(None)

    def __iter__(self):
        self._take(False)
        yield self.body

    async def __aiter__(self):
        self._take(True)
        yield self.body


def _unpresented(request: httpx.Request) -> None:
    """``request`` as the caller made it, whatever an earlier sending of it through the auth left (the same
    ``Request`` sent again, a retry): no presentation headers, the caller's own ``trace`` extension (or none) instead
    of that sending's guard, and a body that can be read again. Each sending presents afresh and guards only
    itself."""
    guard = request.extensions.get("trace")
    if hasattr(guard, "cead_callers_trace"):
        if guard.cead_callers_trace is None:
            del request.extensions["trace"]
        else:
            request.extensions["trace"] = guard.cead_callers_trace
    if isinstance(request.stream, _OnceStream):
        request.stream = httpx.ByteStream(request.stream.body)
    for name in (PRESENTATION_HEADER, MANIFEST_HEADER):
        request.headers.pop(name, None)


def _send_once(request: httpx.Request, url: str, asynchronous: bool) -> None:
    """Let ``request`` (carrying a presentation bound to ``url``) go out once: a copy httpx makes to follow a
    redirect carries the same extensions and body stream, and is refused before its headers are sent.

    Each sending through the auth is guarded on its own: for the same ``Request`` sent again (a retry:
    ``client.send(request, auth=auth)`` twice), :func:`_unpresented` has first put back the caller's own ``trace``
    extension, so that is the only one chained."""
    sent: list = []
    previous = request.extensions.get("trace")

    def check(name: str, info: dict) -> None:
        if name.endswith(".send_request_headers.started"):
            outgoing = info.get("request")
            if getattr(outgoing, "method", None) == b"CONNECT":    # a proxy tunnel's own request
                return
            if sent:
                target = getattr(outgoing, "url", None)
                raise _redirected(url, bytes(target).decode("ascii", "replace") if target is not None else "elsewhere")
            sent.append(True)

    if asynchronous:
        async def trace(name: str, info: dict) -> None:
            check(name, info)
            if previous is not None:
                await previous(name, info)
    else:
        def trace(name: str, info: dict) -> None:
            check(name, info)
            if previous is not None:
                previous(name, info)
    trace.cead_callers_trace = previous   # type: ignore[attr-defined]   # what _unpresented puts back
    request.extensions["trace"] = trace
    request.stream = _OnceStream(request.content, url, sent)


def fetch(wallet, url: str, *, dataset: str | None = None, purpose: str | None = None,
          definition: dict | None = None, method: str = "GET", data: bytes | None = None,
          session: requests.Session | None = None, timeout: float = 30.0, verify: str | bool = True,
          discover: bool = False, manifest: dict | None = None, manifest_fields: dict | None = None,
          row_count: int | None = None) -> requests.Response:
    """One request with a presentation attached; raises :class:`TransferDenied` on denial and ``CeadError``
    (``transfer.failed``) on any other HTTP error or network failure. ``discover=True``: what to present comes
    from the gateway's published presentation definition (see the module docstring). ``manifest``,
    ``manifest_fields`` and ``row_count`` as for :class:`CeadAuth`."""
    session = session or requests.Session()
    auth = CeadAuth(wallet, dataset=dataset, purpose=purpose, definition=definition, discover=discover,
                    manifest=manifest, manifest_fields=manifest_fields, row_count=row_count)
    try:
        response = session.request(method, url, data=data, auth=auth, timeout=timeout, verify=verify)
    except requests.exceptions.SSLError as exc:
        raise CeadError("transfer.failed", untrusted_certificate(url, exc).message, url=url, tls=True) from None
    except requests.RequestException as exc:
        raise CeadError("transfer.failed", f"Could not reach {url}: {unreachable_reason(exc)}.") from None
    if response.status_code >= 400:
        said = _problems_said(response.content)
        raise CeadError("transfer.failed", f"{url} answered HTTP {response.status_code}"
                        + (f": {said}" if said else "."), status=response.status_code, body=response.text[:500])
    return response


def _problems_said(body: bytes) -> str:
    """The codes and messages of a JSON error answer (``{"problems": [...]}``, ``{"error": {...}}`` or
    ``{"reasons": [...]}``), as one line for a person: a provider's ``provider.time_invalid`` must not hide in
    ``detail.body``. Empty when the answer says nothing readable."""
    try:
        data = strict_json(body, "the answer")
    except (ValueError, RecursionError, CeadError):
        return ""
    if not isinstance(data, dict):
        return ""
    items = data.get("problems") or data.get("reasons") or data.get("error")
    items = items if isinstance(items, list) else [items]
    said = []
    for item in items[:5]:
        if isinstance(item, dict) and isinstance(item.get("code"), str):
            message = item.get("message") if isinstance(item.get("message"), str) else ""
            said.append(f"{item['code'][:80]}: {message[:300]}".rstrip(": "))
    text = "; ".join(said)
    return "".join(c if c.isprintable() else "?" for c in text)


# ---- delivering credentials to another node's inbox ------------------------------------------------------------
def deliver(sender_did: str, key, kid: str, credentials: list[dict | str], inbox_url: str, *,
            session: requests.Session | None = None, timeout: float = 30.0, verify: str | bool = True,
            format: str = "jwt", guard=None) -> dict:
    """POST ``credentials`` to a node's inbox, wrapped in a presentation signed by the sender (the issuer) and
    bound to the inbox URL. Returns the inbox's JSON answer; raises ``CeadError("inbox.refused")`` with the
    recipient's reasons if it refused."""
    from verifier.binding import origin
    from .inbox import PRESENTATION_TYPES
    vp = build_presentation(sender_did, key, kid, credentials, format=format, audience=origin(inbox_url),
                            nonce=request_binding("POST", inbox_url))
    if isinstance(vp, str):
        body, ctype = vp.encode(), PRESENTATION_TYPES["jwt"]
    else:
        body, ctype = json.dumps(vp).encode(), PRESENTATION_TYPES["ldp"]
    return post_to_node(session, inbox_url, "inbox", "the delivery", data=body, headers={"Content-Type": ctype},
                        timeout=timeout, verify=verify, guard=guard)


def _cead_cause(exc: BaseException) -> CeadError | None:
    """A CeadError inside a requests exception's chain (a guarded connection refused its peer), or None."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, CeadError):
            return exc
        for arg in getattr(exc, "args", ()):
            if isinstance(arg, CeadError):
                return arg
            inner = getattr(arg, "reason", None)
            if isinstance(inner, CeadError):
                return inner
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "reason", None)
        seen += 1
    return None


def post_to_node(session: requests.Session | None, url: str, family: str, what: str, *, guard=None, **post) -> dict:
    """POST a presentation-carrying body to another node (its inbox, its requests) and return its JSON receipt.

    ``family`` names the codes: ``<family>.unreachable`` (no answer, or an answer that is not a Cead receipt) and
    ``<family>.refused`` (a refusal, with the node's reasons). A redirect is a refusal too: the presentation is
    bound to ``url`` and is never sent on elsewhere. ``guard``: a ``verifier.http.Fetcher`` with the sending node's
    network rules (``Node.fetcher()``): the URL is checked as a fetch would be (https only, no credentials in it,
    never a loopback, private or link-local address unless ``network.allow_private``; checked again on the
    connected socket) before anything is sent. An address another party chose (a request's ``replyTo``) must go
    through one: otherwise a requester could have the data holder's node post to its internal network."""
    if guard is not None:
        try:
            guard.check(url)
        except CeadError as exc:
            raise CeadError(f"{family}.unreachable", f"Not sent to {url}: {exc.message}", url=url,
                            cause=exc.code) from None
        session = session or guard.session()
    try:
        response = (session or requests.Session()).post(url, allow_redirects=False, **post)
    except requests.exceptions.SSLError as exc:
        untrusted = untrusted_certificate(url, exc)
        raise CeadError(f"{family}.unreachable", untrusted.message, url=url, tls=True) from None
    except CeadError as exc:   # the guard's session refused the peer it connected to (DNS rebinding)
        raise CeadError(f"{family}.unreachable", f"Not sent to {url}: {exc.message}", url=url,
                        cause=exc.code) from None
    except requests.RequestException as exc:
        refused = _cead_cause(exc)
        if refused is not None:
            raise CeadError(f"{family}.unreachable", f"Not sent to {url}: {refused.message}", url=url,
                            cause=refused.code) from None
        raise CeadError(f"{family}.unreachable", f"Could not reach {url}: {unreachable_reason(exc)}.") from None
    if response.status_code >= 300:
        reasons = _reasons(response.content)
        text = "; ".join(f"{p.code}: {p.message}" for p in reasons) or f"HTTP {response.status_code}"
        raise CeadError(f"{family}.refused", f"{url} refused {what}: {text}", status=response.status_code,
                        reasons=[p.to_dict() for p in reasons])
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise CeadError(f"{family}.unreachable", f"{url} answered HTTP {response.status_code} but not as a Cead "
                        f"{family} (no JSON receipt); {what} may not have been stored.")
    return answer
