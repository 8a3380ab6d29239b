"""Decisions over HTTP: read the presentation and manifest headers of a request, decide, and say the answer in
headers. Every HTTP surface (the WSGI middleware, the service's ``/authz`` for nginx and ``/envoy``) comes here.

The status of an answer comes from the error-code catalogue (``verifier.decision.codes``): 200 allow, 401 when no
presentation could be read, 403 for every other denial.
"""
from __future__ import annotations

import logging

from .binding import (MANIFEST_HEADER, PRESENTATION_HEADER, RECEIPT_FORMS_HEADER, accepts_batched_receipts,
                      decode_manifest, decode_presentation)
from .decision.codes import http_status
from .decision.request import PUSH_METHODS, Decision, TransferRequest
from .results import CeadError, Problem

log = logging.getLogger(__name__)

REASONS_HEADER = "Cead-Decision-Reasons"
DECISION_HEADER = "Cead-Decision"
RECEIPT_HEADER = "Cead-Receipt"


def decide_from_headers(decider, headers, method: str, url, body: bytes | None, dataset: str | None = None,
                        response_checked: bool = False, push: bool | None = None,
                        carries_no_rows: bool = False) -> tuple[int, Decision]:
    """Decide a transfer described by HTTP headers; returns (status 200 allow / 401 no presentation / 403 deny,
    decision). ``response_checked``: the caller will pass the response through ``Decider.check_response``;
    ``carries_no_rows``: the operator declares the endpoint's answer carries no records (``TransferRequest``).

    It fails closed: input the decoders do not survive, or any unexpected error, is a 403 denial with a reason,
    never an exception that reaches a server as a 500. ``url`` may be a callable, so that rebuilding it from the
    request is guarded too."""
    try:
        return _decide_from_headers(decider, headers, method, url() if callable(url) else url, body, dataset,
                                    response_checked, push, carries_no_rows)
    except ValueError as exc:  # e.g. a Host header that makes no URL
        return 403, decider.deny(Problem("request.url_invalid", f"The request URL cannot be read: {exc}."))
    except Exception:  # a bug must never become an allow, nor a 500
        log.exception("internal error while deciding a request")
        return 403, decider.deny(Problem("verifier.internal_error",
                                         "The transfer could not be decided because of an internal error."))


def nginx_authz(decider, headers, scheme: str, host: str) -> tuple[int, Decision]:
    """nginx ``auth_request`` (the service's ``/authz``): the original request is described by ``X-Original-Method``,
    ``X-Original-URI``, ``X-Original-Host`` and ``X-Original-Proto`` (``scheme`` and ``host`` are this request's own,
    used when the last two are absent). Returns (status, decision), as :func:`decide_from_headers`."""
    method = headers.get("X-Original-Method", "GET")
    uri = headers.get("X-Original-URI")
    if not uri or not uri.startswith("/"):
        decision = decider.deny(Problem("request.invalid", "X-Original-URI (the original request path) is missing."))
        return 403, decision
    proto = headers.get("X-Original-Proto", scheme)
    host = headers.get("X-Original-Host", host)
    # nginx does not pass the body to auth_request, so a body could never be bound: a method that carries one, or a
    # request whose forwarded Content-Length / Transfer-Encoding says it has one, is denied here, never decided as
    # if it had no body (nginx would forward the real body unchecked).
    # A forwarded header that is present but empty says nothing either way (nginx never sends an empty one: it
    # drops a header whose value is empty; granian hands over a value with a byte outside ASCII as empty), so it is
    # denied too: only an absent header, or a Content-Length of 0, means no body.
    length = headers.get("X-Original-Content-Length")
    if method.upper() in PUSH_METHODS or (length is not None and length.strip() != "0") or \
            headers.get("X-Original-Transfer-Encoding") is not None:
        decision = decider.deny(Problem("request.body_unbound", f"A {method[:10]} request with a body cannot be "
                                        "checked through nginx auth_request (nginx does not pass the body); put "
                                        "pushes behind the middleware or Envoy."))
        return 403, decision
    return decide_from_headers(decider, headers, method, f"{proto}://{host}{uri}", None)


def read_presentation_header(headers) -> str | None:
    """The presentation a request carries (``Cead-Presentation``, or ``Authorization: VP ...``), or None."""
    raw = headers.get(PRESENTATION_HEADER)
    if not raw:
        auth = headers.get("Authorization", "")
        raw = auth if auth[:3].lower() == "vp " else None
    return raw or None


def _decide_from_headers(decider, headers, method: str, url: str, body: bytes | None, dataset: str | None,
                         response_checked: bool, push: bool | None,
                         carries_no_rows: bool = False) -> tuple[int, Decision]:
    raw = read_presentation_header(headers)
    if not raw:
        decision = decider.deny(Problem("presentation.missing", f"The request carries no presentation "
                                        f"({PRESENTATION_HEADER} or Authorization: VP)."))
        return http_status(decision), decision
    try:
        presentation = decode_presentation(raw)
        manifest_header = headers.get(MANIFEST_HEADER)
        manifest = decode_manifest(manifest_header, check_jcs=False) if manifest_header else None
        request = TransferRequest(method=method, url=url, body=body, manifest=manifest, dataset=dataset,
                                  response_checked=response_checked, push=push,
                                  carries_no_rows=carries_no_rows,
                                  receipt_batch=accepts_batched_receipts(headers.get(RECEIPT_FORMS_HEADER)))
        request.binding   # canonicalises the manifest (manifest.invalid here if it cannot be), once per request
    except CeadError as exc:
        decision = decider.deny(exc.problem)
        return http_status(decision), decision
    decision = decider.decide(presentation, request)
    return http_status(decision), decision


def decision_headers(decision: Decision) -> dict[str, str]:
    """The headers that carry a decision: ``Cead-Decision``, ``Cead-Decision-Reasons`` (codes), ``Cead-Receipt``."""
    headers = {DECISION_HEADER: "allow" if decision.allowed else "deny"}
    if decision.reasons:
        headers[REASONS_HEADER] = ", ".join(dict.fromkeys(p.code for p in decision.reasons))
    if decision.receipt:
        headers[RECEIPT_HEADER] = decision.receipt
    return headers
